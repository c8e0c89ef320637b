"""Read tags with mutagen: title, artist, album, albumartist, genre, year, track number and
duration. The title falls back to the file name; a file mutagen cannot parse still gets one."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import mutagen


@dataclass(frozen=True)
class Tags:
    title: str
    artist: str | None = None
    album: str | None = None
    albumartist: str | None = None
    genre: str | None = None
    year: int | None = None
    tracknumber: int | None = None
    duration: float | None = None


def _first(tags: object, *keys: str) -> str | None:
    for key in keys:
        try:
            values = tags[key]  # type: ignore[index]
        except (KeyError, ValueError, TypeError):
            continue
        for v in values if isinstance(values, list) else [values]:
            text = str(v).strip()
            if text:
                return text
    return None


def _leading_int(text: str | None) -> int | None:
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else None


def read_tags(path: Path | str) -> Tags:
    """Tags of one file; never raises for a bad or untagged file (title = file stem)."""
    path = Path(path)
    try:
        f = mutagen.File(path, easy=True)
    except Exception:  # mutagen raises many types for damaged files
        f = None
    tags = getattr(f, "tags", None) or {}
    duration = None
    info = getattr(f, "info", None)
    if info is not None and getattr(info, "length", None):
        duration = float(info.length)
    year = _leading_int(_first(tags, "date", "originaldate", "year"))
    return Tags(
        title=_first(tags, "title") or path.stem,
        artist=_first(tags, "artist"),
        album=_first(tags, "album"),
        albumartist=_first(tags, "albumartist", "album artist"),
        genre=_first(tags, "genre"),
        year=year,
        tracknumber=_leading_int(_first(tags, "tracknumber")),
        duration=duration,
    )
