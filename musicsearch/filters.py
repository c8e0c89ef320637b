"""Metadata filters applied inside the vector search: typed values that the store alone turns
into SQL (``Store.filtered_ids``), or matches in numpy when they bound only year and duration
(``FilterColumns.mask``); the matching ids restrict the FAISS search (an IDSelector), so that
when at least k tracks match, k results come back.

``Filters`` parses what it is given with the same parsers as the CLI (``parse_year``,
``parse_duration``) and raises a one-line ``MusicSearchError`` for anything it cannot use, so a
filter never silently matches nothing because of its type.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from typing import Union

import numpy as np

from .errors import MusicSearchError
from .keys import parse_key

FIRST_YEAR = 0  # the open start of "-1999"
LAST_YEAR = 9999  # the open end of "1990-"

YearSpec = Union[int, str, tuple[Union[int, None], Union[int, None]]]
"""2008, "2008", "1990-1999", "1990-", "-1999", or (first, last) with None for an open end."""
DurationSpec = Union[int, float, str]
"""Seconds as a number or a string ("95", "95.5"), or "mm:ss" / "h:mm:ss"."""
BpmSpec = Union[int, float, str, tuple[Union[int, float, None], Union[int, float, None]]]
"""124 or "124" (within ``BPM_NEAR``), "120-128", "120-", "-128", or (low, high) with None open."""
BPM_NEAR = 0.02  # a single tempo matches within 2 %
MAX_BPM = 1000.0  # the open end of "120-"

_YEAR_RE = re.compile(r"\s*(\d{1,4})?\s*(-)?\s*(\d{1,4})?\s*")
_NUMBER = r"\d+(?:\.\d+)?"
_BPM_RE = re.compile(rf"\s*({_NUMBER})?\s*(-)?\s*({_NUMBER})?\s*")
_SEXAGESIMAL = r"(?:[0-5]?\d)(?:\.\d+)?"  # a minutes or seconds part after a colon: under 60
_DURATION_RE = re.compile(rf"({_NUMBER})|(\d+):({_SEXAGESIMAL})|(\d+):([0-5]?\d):({_SEXAGESIMAL})")


def _year(value: object, text: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise MusicSearchError(f"bad year {text!r}: years are whole numbers such as 1997")
    if not FIRST_YEAR <= value <= LAST_YEAR:
        raise MusicSearchError(f"bad year {text!r}: {value} is outside {FIRST_YEAR}-{LAST_YEAR}")
    return value


def parse_year(value: YearSpec | None) -> tuple[int, int] | None:
    """An inclusive (first, last) year range.

    ``1997`` or ``"1997"`` -> (1997, 1997); ``"1990-1999"`` or ``(1990, 1999)`` -> (1990, 1999);
    ``"1990-"`` / ``"-1999"`` / ``(1990, None)`` leave one end open (0 and 9999).

    Raises:
        MusicSearchError: an empty string, a malformed range, a year outside 0-9999, or a
            first year after the last.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if not value.strip():
            raise MusicSearchError("bad year '': use 1997, 1990-1999, 1990- or -1999")
        m = _YEAR_RE.fullmatch(value)
        if not m or not (m.group(1) or m.group(3)) or (m.group(2) is None and m.group(3)):
            raise MusicSearchError(f"bad year {value!r}: use 1997, 1990-1999, 1990- or -1999")
        first = int(m.group(1)) if m.group(1) else FIRST_YEAR
        last = int(m.group(3)) if m.group(3) else (LAST_YEAR if m.group(2) else first)
    elif isinstance(value, (tuple, list)):
        if len(value) != 2:
            raise MusicSearchError(f"bad year range {value!r}: give (first, last)")
        lo, hi = value
        first = FIRST_YEAR if lo is None else _year(lo, value)
        last = LAST_YEAR if hi is None else _year(hi, value)
    else:
        first = last = _year(value, value)
    if first > last:
        raise MusicSearchError(f"bad year range {value!r}: {first} is after {last}")
    return first, last


def parse_duration(value: DurationSpec | None) -> float | None:
    """Seconds from ``95``, ``95.5``, ``"95"``, ``"1:35"`` or ``"1:02:03"`` (minutes and seconds
    after a colon under 60).

    Raises:
        MusicSearchError: an empty string, a negative or non-finite number, or a malformed time.
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise MusicSearchError(f"bad duration {value!r}: use seconds (95) or mm:ss (1:35)")
    if isinstance(value, (int, float)):
        seconds = float(value)
        if not math.isfinite(seconds):
            raise MusicSearchError(f"bad duration {value!r}: not a finite number of seconds")
        if seconds < 0:
            raise MusicSearchError(f"bad duration {value!r}: a duration cannot be negative")
        return seconds
    if not isinstance(value, str):
        raise MusicSearchError(f"bad duration {value!r}: use seconds (95) or mm:ss (1:35)")
    text = value.strip()
    if text.startswith("-") and _DURATION_RE.fullmatch(text[1:]):
        raise MusicSearchError(f"bad duration {value!r}: a duration cannot be negative")
    m = _DURATION_RE.fullmatch(text)
    if not m:
        raise MusicSearchError(
            f"bad duration {value!r}: use seconds (95), mm:ss (1:35) or h:mm:ss (1:02:03), minutes and seconds under 60"
        )
    seconds = 0.0
    for part in (p for p in m.groups() if p is not None):
        seconds = seconds * 60 + float(part)
    return seconds


def parse_bpm(value: BpmSpec | None) -> tuple[float, float] | None:
    """An inclusive tempo range in BPM: ``"120-128"`` or ``(120, 128)``; ``"120-"`` / ``"-128"``
    leave one end open; ``124`` or ``"124"`` mean 124 within 2 % (121.52-126.48).

    Raises:
        MusicSearchError: an empty or malformed range, a tempo that is not a positive finite
            number, or a low end above the high end.
    """
    if value is None:
        return None
    how = "use 124, 120-128, 120- or -128"
    if isinstance(value, bool):
        raise MusicSearchError(f"bad bpm {value!r}: {how}")
    if isinstance(value, (int, float)):
        lo = hi = float(value)
        if not math.isfinite(lo) or lo <= 0:
            raise MusicSearchError(f"bad bpm {value!r}: a tempo is a positive number")
        return round(lo * (1 - BPM_NEAR), 4), round(hi * (1 + BPM_NEAR), 4)
    if isinstance(value, str):
        m = _BPM_RE.fullmatch(value)
        if not value.strip() or not m or not (m.group(1) or m.group(3)):
            raise MusicSearchError(f"bad bpm {value!r}: {how}")
        if m.group(2) is None:
            return parse_bpm(float(m.group(1) or m.group(3)))
        low = float(m.group(1)) if m.group(1) else 0.0
        high = float(m.group(3)) if m.group(3) else MAX_BPM
    elif isinstance(value, (tuple, list)) and len(value) == 2:
        low, high = (_bpm_end(value, v, default) for v, default in zip(value, (0.0, MAX_BPM)))
    else:
        raise MusicSearchError(f"bad bpm {value!r}: {how}")
    if low > high:
        raise MusicSearchError(f"bad bpm range {value!r}: {low:g} is above {high:g}")
    return low, high


def _bpm_end(given: object, end: object, default: float) -> float:
    """One end of a (low, high) tempo range: a number of BPM, or None for ``default``."""
    if end is None:
        return default
    if isinstance(end, bool) or not isinstance(end, (int, float)) or not math.isfinite(end) or end < 0:
        raise MusicSearchError(f"bad bpm range {given!r}: give (low, high) in BPM")
    return float(end)


def bpm_ranges(bpm: tuple[float, float], strict: bool) -> list[tuple[float, float]]:
    """The tempo ranges a ``bpm`` filter matches: itself, and unless ``strict`` half and
    double time (a track at 62 or 248 BPM matches 120-128: DJs mix across the octave, and
    tempo estimates often land an octave off)."""
    lo, hi = bpm
    return [(lo, hi)] if strict else [(lo, hi), (lo / 2, hi / 2), (lo * 2, hi * 2)]


def _key_name(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MusicSearchError(f"bad {name} filter {value!r}: give a key such as 8A, Am or F# minor")
    return parse_key(value).name


def _text(name: str, value: object) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise MusicSearchError(f"bad {name} filter {value!r}: give a string")
    if not value.strip():
        raise MusicSearchError(f"bad {name} filter {value!r}: empty (leave it out to match everything)")
    return value


def texts(name: str, value: object) -> tuple[str, ...]:
    """One text or several as a tuple (``name`` is the option named in the error).

    Raises:
        MusicSearchError: an item that is not a non-empty string.
    """
    if value is None:
        return ()
    items = (value,) if isinstance(value, str) else tuple(value)  # type: ignore[arg-type]
    for item in items:
        if not isinstance(item, str) or not item.strip():
            raise MusicSearchError(f"bad {name} {item!r}: give a non-empty text")
    return items


def _track_ids(value: object) -> tuple[int, ...] | None:
    if value is None:
        return None
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise MusicSearchError(f"bad track_ids filter {value!r}: give a list of track ids")
    ids = tuple(value)
    if not all(isinstance(i, (int, np.integer)) and not isinstance(i, bool) for i in ids):
        raise MusicSearchError(f"bad track_ids filter {value!r}: track ids are whole numbers")
    return tuple(int(i) for i in ids)


def _tags(value: object) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        value = (value,)
    if not isinstance(value, Iterable):
        raise MusicSearchError(f"bad tags filter {value!r}: give a label or a list of labels")
    tags: list[str] = []
    for tag in value:
        if not isinstance(tag, str) or not tag.strip():
            raise MusicSearchError(f"bad tag filter {tag!r}: give a non-empty label")
        tags.append(tag)
    return tuple(tags)


@dataclass(frozen=True)
class Filters:
    """Every field is optional; all given ones must hold. Arguments are parsed and checked at
    construction (a ``MusicSearchError`` otherwise), then stored normalized.

    Attributes:
        artist, album, genre: case-insensitive substrings (artist also matches albumartist).
        year: given as 2008, "2008", "1990-1999", "1990-", "-1999" or (first, last); stored as
            an inclusive (first, last) tuple.
        min_duration, max_duration: given as seconds (number or string), "mm:ss" or "h:mm:ss";
            stored as float seconds.
        path: a glob on the absolute path (``*`` crosses folders), e.g. ``*/Jazz/*``.
        tags: labels assigned by ``musicsearch tag`` (one label or several); a track must have
            all of them. Stored as a tuple.
        exclude_artists, exclude_genres: case-insensitive substrings a track must not contain
            (an artist exclusion checks albumartist too); one text or several, stored as a tuple.
        exclude_paths: globs on the absolute path a track must not match.
        track_ids: only these tracks (e.g. those a "by X" name found); None: any track.
        bpm: a tempo range, given as "120-128", 124 (within 2 %), "120-", (low, high); stored
            as (low, high). It matches half and double time too unless ``strict_bpm``.
        strict_bpm: True: the tempo range alone (stored as None unless True and ``bpm`` given).
        key: tracks in this key, given as Camelot ("8A"), Open Key ("1m") or a name ("Am",
            "A minor"); stored as the key's name ("A minor").
        key_compatible: tracks in a key that mixes with this one: the same, ±1 on the Camelot
            wheel, the relative major or minor (``keys.compatible``); stored as the key's name.
    """

    artist: str | None = None
    album: str | None = None
    genre: str | None = None
    year: YearSpec | None = None
    min_duration: DurationSpec | None = None
    max_duration: DurationSpec | None = None
    path: str | None = None
    tags: tuple[str, ...] | list[str] | str = field(default_factory=tuple)
    exclude_artists: tuple[str, ...] | list[str] | str = field(default_factory=tuple)
    exclude_genres: tuple[str, ...] | list[str] | str = field(default_factory=tuple)
    exclude_paths: tuple[str, ...] | list[str] | str = field(default_factory=tuple)
    track_ids: tuple[int, ...] | list[int] | None = None
    bpm: BpmSpec | None = None
    strict_bpm: bool | None = None
    key: str | None = None
    key_compatible: str | None = None

    def __post_init__(self) -> None:
        for name in ("artist", "album", "genre", "path"):
            object.__setattr__(self, name, _text(name, getattr(self, name)))
        object.__setattr__(self, "year", parse_year(self.year))
        lo, hi = parse_duration(self.min_duration), parse_duration(self.max_duration)
        if lo is not None and hi is not None and lo > hi:
            raise MusicSearchError(f"bad durations: the minimum ({lo:g} s) is above the maximum ({hi:g} s)")
        object.__setattr__(self, "min_duration", lo)
        object.__setattr__(self, "max_duration", hi)
        object.__setattr__(self, "tags", _tags(self.tags))
        for name in ("exclude_artists", "exclude_genres", "exclude_paths"):
            object.__setattr__(self, name, texts(name.replace("_", "-")[:-1], getattr(self, name)))
        object.__setattr__(self, "track_ids", _track_ids(self.track_ids))
        object.__setattr__(self, "bpm", parse_bpm(self.bpm))
        if self.strict_bpm not in (None, True, False):
            raise MusicSearchError(f"bad strict_bpm {self.strict_bpm!r}: give true or false")
        object.__setattr__(self, "strict_bpm", True if self.strict_bpm and self.bpm is not None else None)
        object.__setattr__(self, "key", _key_name("key", self.key))
        object.__setattr__(self, "key_compatible", _key_name("key_compatible", self.key_compatible))

    @property
    def active(self) -> bool:
        """Whether any track can fail these filters."""
        return self.track_ids is not None or any(v not in (None, ()) for v in self.__dict__.values())

    @property
    def numeric_only(self) -> bool:
        """Whether they bound only year and duration (so numpy can match them over the
        store's ``FilterColumns``), and bound at least one."""
        given = {k for k, v in self.__dict__.items() if v not in (None, ()) or (k == "track_ids" and v is not None)}
        return bool(given) and given <= {"year", "min_duration", "max_duration"}

    def restricted_to(self, track_ids: Iterable[int]) -> Filters:
        """These filters, holding only for ``track_ids`` too (and for those already required)."""
        ids = tuple(dict.fromkeys(int(i) for i in track_ids))
        if self.track_ids is not None:
            mine = set(self.track_ids)
            ids = tuple(i for i in ids if i in mine)
        return replace(self, track_ids=ids)


def _blank_to_none(value: str | None) -> str | None:
    return value if value is not None and value.strip() else None


def parse_filters(
    artist: str | None = None,
    album: str | None = None,
    genre: str | None = None,
    year: str | None = None,
    min_duration: str | None = None,
    max_duration: str | None = None,
    path: str | None = None,
    tags: list[str] | tuple[str, ...] | None = None,
    bpm: str | None = None,
    key: str | None = None,
    key_compatible: str | None = None,
    strict_bpm: bool = False,
) -> Filters:
    """Filters from user strings (CLI options, query parameters); blanks mean no filter.

    Raises:
        MusicSearchError: a year or duration that does not parse, or a range whose ends are
            the wrong way round.
    """
    return Filters(
        artist=_blank_to_none(artist),
        album=_blank_to_none(album),
        genre=_blank_to_none(genre),
        year=_blank_to_none(year),
        min_duration=_blank_to_none(min_duration),
        max_duration=_blank_to_none(max_duration),
        path=_blank_to_none(path),
        tags=tuple(t for t in (tags or ()) if t and t.strip()),
        bpm=_blank_to_none(bpm),
        key=_blank_to_none(key),
        key_compatible=_blank_to_none(key_compatible),
        strict_bpm=strict_bpm,
    )
