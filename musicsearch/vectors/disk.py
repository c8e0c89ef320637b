"""Index files on disk: named after the store generation they were built from
(``tracks-g<N>.faiss``, and ``tracks-g<N>.json`` for an approximate index's state), written to
a temp file, fsynced and renamed (``atomic_write``), so that a reader finds the complete file
of a generation or none."""

from __future__ import annotations

import json
import logging
import os
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import faiss

log = logging.getLogger(__name__)


def index_path(index_dir: Path, kind: str, generation: int) -> Path:
    """Where the ``kind`` index of store generation ``generation`` lives."""
    return Path(index_dir) / f"{kind}-g{generation}.faiss"


def state_path(index_dir: Path, kind: str, generation: int) -> Path:
    """The JSON that records an approximate index's state (absent for exact ones)."""
    return Path(index_dir) / f"{kind}-g{generation}.json"


def _fsync_dir(folder: Path) -> None:
    try:  # make a rename durable
        dfd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def atomic_write(target: Path, write: Callable[[str], object]) -> None:
    """Call ``write(temp path)`` for a temp file beside ``target``, fsync it, rename it over
    ``target`` and fsync the folder; a failure leaves no temp file and ``target`` as it was."""
    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(target.parent)


def write_index(index: faiss.Index, target: Path) -> None:
    """Write ``index`` to ``target`` atomically: a temp file beside it, fsynced, renamed over
    ``target``, then the folder fsynced. A failure leaves no temp file and ``target`` as it was.

    Raises:
        OSError: the folder is not writable (or the disk is full).
    """
    import faiss

    atomic_write(target, lambda tmp: faiss.write_index(index, tmp))


@dataclass(frozen=True)
class IndexState:
    """What an index is (written as ``<kind>-g<N>.json`` beside an approximate one).

    ``family`` is ``exact`` or ``ivf``; ``recall_at_10`` was measured at build time against
    exact search on out-of-distribution queries (1.0 for exact indexes); ``sidecar``/``rows``:
    the float16 vectors file and how many of its rows this generation uses; ``base``: the
    generation whose index file this one starts from (0: its own), ``pending``: how many ids
    changed since that file was written.
    """

    kind: str
    generation: int
    family: str
    factory: str
    n: int
    dim: int
    nprobe: int = 0
    rerank: int = 0
    recall_at_10: float = 1.0
    trained_n: int = 0
    sidecar: str = ""
    rows: int = 0
    built_at: float = 0.0
    base: int = 0
    pending: int = 0

    @property
    def file_generation(self) -> int:
        """The generation whose ``.faiss`` file holds this index as it was then (``base``);
        the changes since are replayed from the vector log and the sidecar when it is read."""
        return self.base or self.generation

    def write(self, folder: Path) -> None:
        text = json.dumps(asdict(self), indent=1)
        atomic_write(state_path(folder, self.kind, self.generation), lambda tmp: Path(tmp).write_text(text))

    @classmethod
    def read(cls, path: Path) -> IndexState | None:
        try:
            return cls(**json.loads(path.read_text()))
        except (OSError, ValueError, TypeError) as exc:
            log.warning("cannot read %s (%s); the index will be rebuilt", path, exc)
            return None
