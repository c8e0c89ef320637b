"""Saved searches: a name, a query with its filters and an M3U8 file to keep up to date.

They live in ``playlists.json`` in the index folder (written atomically), beside the SQLite
store but outside it, and ``refresh`` regenerates their playlist files: after every index run
of the CLI, in watch mode, and on demand (``musicsearch playlist refresh``)."""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MusicSearchError
from .playlist import parse_path_map, write_m3u
from .search.request import SearchRequest, parse_request

if TYPE_CHECKING:
    from .api import MusicIndex

log = logging.getLogger(__name__)

FILE_NAME = "playlists.json"
FORMAT = 1
TEXT_FILTER_KEYS = (
    "artist",
    "album",
    "genre",
    "year",
    "min_duration",
    "max_duration",
    "path",
    "bpm",
    "key",
    "key_compatible",
)
FILTER_KEYS = (*TEXT_FILTER_KEYS, "strict_bpm", "tags")


@dataclass(frozen=True)
class SavedSearch:
    """One saved search. ``filters`` holds the user's strings (as on the command line), so
    a saved search reads back exactly as it was typed; ``m3u`` is an absolute path."""

    name: str
    text: tuple[str, ...]
    m3u: str
    k: int = 50
    negative: tuple[str, ...] = ()
    by: str = "track"
    min_score: float | None = None
    filters: dict[str, object] = field(default_factory=dict)
    relative: bool = False
    path_map: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if not self.name.strip() or "\n" in self.name:
            raise MusicSearchError(f"bad playlist name {self.name!r}: give a non-empty one-line name")
        if not self.text:
            raise MusicSearchError("a saved search needs at least one prompt")
        if self.k < 1:
            raise MusicSearchError("k must be at least 1")
        if self.relative and self.path_map:
            raise MusicSearchError("--relative and --path-map exclude each other: relative paths need no map")
        parse_path_map(self.path_map)  # refuse a bad map when saving, not at the first refresh
        self.to_request()

    def to_request(self) -> SearchRequest:
        """The search, read back as the user typed it (through the parser every front end uses)."""
        f = self.filters
        tags = f.get("tags")
        fields: dict[str, object] = {key: None if f.get(key) is None else str(f.get(key)) for key in TEXT_FILTER_KEYS}
        fields["tag"] = [str(t) for t in tags] if isinstance(tags, list) else None
        fields["strict_bpm"] = f.get("strict_bpm") is True
        fields |= {"q": list(self.text), "k": self.k, "not": list(self.negative), "by": self.by}
        return parse_request(fields | {"min_score": self.min_score})

    def to_json(self) -> dict:
        out = asdict(self)
        out["text"], out["negative"], out["path_map"] = list(self.text), list(self.negative), list(self.path_map)
        out["filters"] = {k: v for k, v in self.filters.items() if v not in (None, [], "")}
        return out

    @classmethod
    def from_json(cls, data: dict) -> SavedSearch:
        return cls(
            name=str(data["name"]),
            text=tuple(data["text"]),
            m3u=str(data["m3u"]),
            k=int(data.get("k", 50)),
            negative=tuple(data.get("negative", ())),
            by=str(data.get("by", "track")),
            min_score=data.get("min_score"),
            filters=dict(data.get("filters", {})),
            relative=bool(data.get("relative", False)),
            path_map=tuple(data.get("path_map", ())),
        )


def filter_strings(**values: object) -> dict[str, object]:
    """The given filter options (CLI strings; ``tags`` a list) without the empty ones."""
    unknown = set(values) - set(FILTER_KEYS)
    if unknown:
        raise ValueError(f"unknown filters: {sorted(unknown)}")
    out: dict[str, object] = {}
    for key, value in values.items():
        if value is None or value is False or (isinstance(value, (list, tuple)) and not value):
            continue
        out[key] = [str(t) for t in value] if isinstance(value, (list, tuple)) else value
    return out


_lock = threading.Lock()  # the watcher thread and a request may save at once in one process


class SavedSearches:
    """The saved searches of one index folder."""

    def __init__(self, index_dir: Path | str):
        self.path = Path(index_dir) / FILE_NAME

    def load(self) -> dict[str, SavedSearch]:
        if not self.path.exists():
            return {}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format", FORMAT) > FORMAT:
                raise MusicSearchError(f"{self.path} comes from a newer musicsearch; upgrade to use it")
            return {d["name"]: SavedSearch.from_json(d) for d in data.get("playlists", [])}
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MusicSearchError(f"{self.path} is damaged ({exc}); fix or delete it") from exc

    def _write(self, searches: dict[str, SavedSearch]) -> None:
        if not self.path.parent.is_dir():
            raise MusicSearchError(
                f"index {self.path.parent} holds nothing yet; build it with: musicsearch index FOLDER"
            )
        payload = {"format": FORMAT, "playlists": [s.to_json() for _, s in sorted(searches.items())]}
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            json.dump(payload, f, ensure_ascii=False, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def save(self, search: SavedSearch) -> None:
        """Add a saved search or replace the one of that name."""
        with _lock:
            searches = self.load()
            searches[search.name] = search
            self._write(searches)

    def remove(self, name: str) -> None:
        with _lock:
            searches = self.load()
            if name not in searches:
                raise MusicSearchError(f"no saved search named {name!r} (musicsearch playlist list)")
            del searches[name]
            self._write(searches)


def refresh_one(idx: MusicIndex, search: SavedSearch) -> int:
    """Run one saved search and rewrite its playlist; returns the number of tracks written."""
    hits = idx.search(search.to_request())
    write_m3u(hits, search.m3u, relative=search.relative, path_map=search.path_map)
    return len(hits)


def refresh(idx: MusicIndex, names: Sequence[str] = ()) -> dict[str, int | str]:
    """Regenerate the playlist files of the saved searches (all, or those ``names``); each
    name maps to its track count, or to the one-line reason it failed (the others still run;
    a failure is logged at WARNING)."""
    searches = SavedSearches(idx.path).load()
    for name in names:
        if name not in searches:
            raise MusicSearchError(f"no saved search named {name!r} (musicsearch playlist list)")
    out: dict[str, int | str] = {}
    for name, search in searches.items():
        if names and name not in names:
            continue
        try:
            out[name] = refresh_one(idx, search)
        except (MusicSearchError, OSError) as exc:
            log.warning("saved search %r not refreshed: %s", name, exc)
            out[name] = str(exc)
    return out
