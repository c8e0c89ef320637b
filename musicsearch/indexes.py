"""Several libraries, one index each: the indexes named under the user data folder's
``indexes/`` (``--index jazz``, ``MusicIndex("jazz")``; how a name becomes a folder is
``config.index_path``), and what each holds, for ``musicsearch indexes``."""

from __future__ import annotations

import logging
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .config import DEFAULT_INDEX_NAME, Settings, default_index_dir, indexes_dir, legacy_index_dir
from .errors import MusicSearchError
from .store import DB_NAME

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class IndexSummary:
    """One named index: what ``musicsearch indexes`` lists.

    Attributes:
        name: what ``--index`` takes (``default`` for the default index).
        path: its folder.
        tracks: tracks indexed (``None`` where it could not be read).
        model: the model it was built with (``""`` before its first run).
        size_bytes: the files of the folder together.
        last_run: when an index run last wrote it (its database's modification time, UTC).
        error: why it could not be read, else ``None``.
    """

    name: str
    path: Path
    tracks: int | None
    model: str
    size_bytes: int
    last_run: str
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict (the path as a string)."""
        return asdict(self) | {"path": str(self.path)}


def _summary(name: str, folder: Path) -> IndexSummary:
    """What ``folder`` holds, read without loading a model."""
    from .api import MusicIndex  # the API imports most of the package; listing needs it only here

    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    written = max(p.stat().st_mtime for p in folder.iterdir() if p.name.startswith(DB_NAME))
    last_run = datetime.fromtimestamp(written, timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    try:
        with MusicIndex(settings=Settings(index_dir=folder)) as idx:
            info = idx.info()
    except MusicSearchError as exc:
        log.warning("index %s (%s) could not be read: %s", name, folder, exc)
        return IndexSummary(name, folder, None, "", size, last_run, str(exc))
    model = info.model + (f"@{info.revision}" if info.revision else "")
    return IndexSummary(name, folder, info.tracks, model, size, last_run)


def list_indexes() -> list[IndexSummary]:
    """The indexes that have a name: those under ``indexes_dir()``, by name, and the default
    index where it still lives at the older default place (listed as ``default``; by its path
    once ``indexes/default`` exists beside it). An index is a folder holding ``musicsearch.db``."""
    found: dict[str, Path] = {}
    root = indexes_dir()
    if root.is_dir():
        found = {p.name: p for p in sorted(root.iterdir()) if (p / DB_NAME).is_file()}
    legacy = legacy_index_dir()
    if (legacy / DB_NAME).is_file():
        name = DEFAULT_INDEX_NAME if default_index_dir() == legacy else str(legacy)
        found[name] = legacy
    return [_summary(name, folder) for name, folder in sorted(found.items())]
