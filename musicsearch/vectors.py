"""The vectors stage: FAISS indexes derived from the store (this module owns FAISS).

SQLite (``store.py``) holds every vector; the FAISS files only make search fast and are
rebuilt from it whenever missing, stale or damaged. Each file is named after the store
generation it was built from (``tracks-g<N>.faiss``, ``windows-g<N>.faiss``), written to a
temp file, fsynced and renamed, so a reader finds the file of the current generation or
rebuilds it: a killed run never leaves a half-written or out-of-date index in use.

An index is an ``IndexIDMap2`` over ``IndexFlatIP`` keyed by int64 ids (track ids or window
ids); the vectors are unit vectors, so scores are cosines. Files are memory-mapped when read
(``IO_FLAG_MMAP_IFC``: the flat vectors stay in the page cache instead of being copied into
the process); an index read this way is read-only.
"""

from __future__ import annotations

import logging
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    import faiss

    from .store import Store

log = logging.getLogger(__name__)

KINDS = ("tracks", "windows")

SearchResult = tuple[np.ndarray, np.ndarray]  # (ids int64, scores float32), best first


def index_path(index_dir: Path, kind: str, generation: int) -> Path:
    """Where the ``kind`` index of store generation ``generation`` lives."""
    return Path(index_dir) / f"{kind}-g{generation}.faiss"


def build(ids: np.ndarray, vectors: np.ndarray, dim: int) -> faiss.Index:
    """An ``IndexIDMap2`` over ``IndexFlatIP`` holding ``vectors`` (n, dim) under ``ids``."""
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return index


def save(index: faiss.Index, target: Path) -> None:
    """Write ``index`` to ``target`` atomically: a temp file beside it, fsynced, renamed over
    ``target``, then the folder fsynced. A failure leaves no temp file and ``target`` as it was.

    Raises:
        OSError: the folder is not writable (or the disk is full).
    """
    import faiss

    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def load(path: Path, mmap: bool = True) -> faiss.Index:
    """Read the index at ``path``, memory-mapped when ``mmap`` and FAISS can (flat indexes,
    FAISS >= 1.11: ``IO_FLAG_MMAP_IFC``; the older ``IO_FLAG_MMAP`` maps only on-disk IVF lists
    and still copies a flat index into memory). A mapped index is read-only: never add to it.

    Raises:
        RuntimeError: the file is damaged or not a FAISS index (or another exception FAISS
            raises on garbage, such as MemoryError).
    """
    import faiss

    flag = getattr(faiss, "IO_FLAG_MMAP_IFC", None)
    if mmap and flag is not None:
        try:
            return faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY)
        except Exception as exc:  # a file system without mmap: the plain read decides
            log.debug("memory-mapping %s failed (%s); reading it", path, exc)
    return faiss.read_index(str(path))


def _load_or_build(store: Store, kind: str, generation: int) -> faiss.Index:
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {KINDS}, not {kind!r}")
    path = index_path(store.dir, kind, generation)
    rows = store.counts()[kind]
    if path.exists():
        try:
            index = load(path)
        except Exception as exc:
            log.warning("%s is damaged (%s); rebuilding it from the database", path, str(exc).splitlines()[0])
        else:
            if index.ntotal == rows:
                return index
            log.warning("%s holds %d vectors, the database %d; rebuilding it", path, index.ntotal, rows)
            del index  # unmap before the file is replaced
    ids, vecs = store.track_vectors() if kind == "tracks" else store.all_window_vectors()
    index = build(ids, vecs, vecs.shape[1] if vecs.ndim == 2 and vecs.shape[1] else 1)
    try:
        save(index, path)
    except OSError as exc:
        log.warning("cannot save %s (%s); answering from memory", path, exc)
        return index  # a read-only index folder still answers queries
    for old in store.dir.glob(f"{kind}-g*.faiss"):
        if old != path:
            try:
                old.unlink()
            except OSError:
                pass
    return index


def load_or_build(store: Store, kind: str = "tracks") -> faiss.Index:
    """The ``kind`` index (``tracks`` or ``windows``, keyed by their ids) of the store's
    current generation: read from its file, or rebuilt from SQLite when the file is missing,
    damaged or stale (its size differs from the row count), then saved atomically with the
    files of older generations removed. In a read-only folder the rebuilt index is returned
    without being saved.
    """
    return _load_or_build(store, kind, store.generation)


class VectorIndexes:
    """The FAISS indexes of one store, loaded on first use and kept until the store's
    generation moves (another write), so that repeated queries do not re-read them."""

    def __init__(self, store: Store):
        self.store = store
        self._cache: dict[str, tuple[int, faiss.Index]] = {}

    def get(self, kind: str = "tracks") -> faiss.Index:
        """The ``kind`` index (``tracks`` or ``windows``) of the current generation."""
        generation = self.store.generation
        cached = self._cache.get(kind)
        if cached is None or cached[0] != generation:
            cached = (generation, _load_or_build(self.store, kind, generation))
            self._cache[kind] = cached
        return cached[1]

    def clear(self) -> None:
        """Forget the loaded indexes (and unmap their files)."""
        self._cache.clear()


def _empty() -> SearchResult:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


def search(index: faiss.Index, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[SearchResult]:
    """The ``k`` best ids for each query, best first, and their scores.

    Args:
        index: an index from this module.
        queries: (n, dim) float32 (one (dim,) vector is taken as n = 1).
        k: how many per query at most.
        allowed: the only ids that may be returned (an FAISS ``IDSelectorBatch``), or None.

    Returns:
        One (ids int64, scores float32) per query; fewer than ``k`` when fewer exist (FAISS's
        -1 padding is dropped).
    """
    import faiss

    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    limit = index.ntotal if allowed is None else min(index.ntotal, len(allowed))
    k = min(int(k), limit)
    if k <= 0 or len(q) == 0:
        return [_empty() for _ in range(len(q))]
    params = None
    if allowed is not None:
        selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
        params = faiss.SearchParameters()
        params.sel = selector  # ``selector`` stays referenced until the search returns
    scores, ids = index.search(q, k, params=params)
    out = []
    for row_ids, row_scores in zip(ids, scores):
        keep = row_ids >= 0
        out.append((row_ids[keep], row_scores[keep]))
    return out


def range_search(
    index: faiss.Index, vectors: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stored vector scoring above ``threshold`` (inner product, strictly greater, as
    FAISS does) with each of ``vectors``.

    Returns:
        (lims int64 (n + 1,), scores float32, ids int64): the hits of query ``i`` are
        ``ids[lims[i]:lims[i + 1]]`` with ``scores[lims[i]:lims[i + 1]]``, in no particular order.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if index.ntotal == 0 or len(x) == 0:
        return np.zeros(len(x) + 1, dtype=np.int64), np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
    lims, scores, ids = index.range_search(x, float(threshold))
    return np.asarray(lims, dtype=np.int64), np.asarray(scores, dtype=np.float32), np.asarray(ids, dtype=np.int64)
