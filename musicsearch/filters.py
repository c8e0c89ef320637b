"""Metadata filters applied inside the vector search: they become an SQL condition on the
tracks table, whose matching ids restrict the FAISS search (an IDSelector), so that when at
least k tracks match, k results come back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from .errors import MusicSearchError


@dataclass(frozen=True)
class Filters:
    """Every field is optional; all given ones must hold.

    Attributes:
        artist, album, genre: case-insensitive substrings (artist also matches albumartist).
        year: inclusive (first, last) range.
        min_duration, max_duration: seconds.
        path: a glob on the absolute path (``*`` crosses folders), e.g. ``*/Jazz/*``.
        tags: labels assigned by ``musicsearch tag``; a track must have all of them.
    """

    artist: str | None = None
    album: str | None = None
    genre: str | None = None
    year: tuple[int, int] | None = None
    min_duration: float | None = None
    max_duration: float | None = None
    path: str | None = None
    tags: tuple[str, ...] = field(default_factory=tuple)

    @property
    def active(self) -> bool:
        return any(v not in (None, ()) for v in self.__dict__.values())

    def sql(self) -> tuple[str, list]:
        """A WHERE clause over ``tracks`` (aliased ``t``) and its parameters."""
        where: list[str] = []
        params: list = []
        for col, value in (("album", self.album), ("genre", self.genre)):
            if value:
                where.append(f"instr(lower(coalesce(t.{col}, '')), lower(?)) > 0")
                params.append(value)
        if self.artist:
            where.append(
                "(instr(lower(coalesce(t.artist, '')), lower(?)) > 0"
                " or instr(lower(coalesce(t.albumartist, '')), lower(?)) > 0)"
            )
            params += [self.artist, self.artist]
        if self.year:
            where.append("t.year between ? and ?")
            params += list(self.year)
        if self.min_duration is not None:
            where.append("t.duration >= ?")
            params.append(self.min_duration)
        if self.max_duration is not None:
            where.append("t.duration <= ?")
            params.append(self.max_duration)
        if self.path:
            where.append("t.path glob ?")
            params.append(self.path)
        for tag in self.tags:
            where.append("exists (select 1 from track_tags g where g.track_id = t.id and lower(g.label) = lower(?))")
            params.append(tag)
        return (" and ".join(where) or "1"), params


def parse_year(text: str | None) -> tuple[int, int] | None:
    """``1997`` -> (1997, 1997); ``1990-1999`` -> (1990, 1999); ``1990-`` / ``-1999`` open ends."""
    if not text:
        return None
    m = re.fullmatch(r"\s*(\d{4})?\s*(-)?\s*(\d{4})?\s*", text)
    if not m or not (m.group(1) or m.group(3)) or (m.group(2) is None and m.group(3)):
        raise MusicSearchError(f"bad year {text!r}: use 1997, 1990-1999, 1990- or -1999")
    first = int(m.group(1)) if m.group(1) else 0
    last = int(m.group(3)) if m.group(3) else (9999 if m.group(2) else first)
    if first > last:
        raise MusicSearchError(f"bad year range {text!r}: {first} is after {last}")
    return first, last


def parse_duration(text: str | float | None) -> float | None:
    """Seconds from ``95``, ``95.5``, ``1:35`` or ``1:02:03``."""
    if text is None or text == "":
        return None
    if isinstance(text, (int, float)):
        return float(text)
    parts = text.strip().split(":")
    try:
        if len(parts) > 3 or any(p == "" for p in parts):
            raise ValueError
        values = [float(p) for p in parts]
    except ValueError:
        raise MusicSearchError(f"bad duration {text!r}: use seconds (95) or mm:ss (1:35)") from None
    seconds = 0.0
    for v in values:
        seconds = seconds * 60 + v
    return seconds


def parse_filters(
    artist: str | None = None,
    album: str | None = None,
    genre: str | None = None,
    year: str | None = None,
    min_duration: str | None = None,
    max_duration: str | None = None,
    path: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
) -> Filters:
    """Filters from user strings (CLI options, query parameters); blanks mean no filter.

    Raises:
        MusicSearchError: a year or duration that does not parse.
    """
    return Filters(
        artist=artist or None,
        album=album or None,
        genre=genre or None,
        year=parse_year(year),
        min_duration=parse_duration(min_duration),
        max_duration=parse_duration(max_duration),
        path=path or None,
        tags=tuple(t for t in (tags or ()) if t),
    )
