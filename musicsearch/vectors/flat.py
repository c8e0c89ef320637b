"""The exact index: an ``IndexIDMap2`` over ``IndexFlatIP`` keyed by int64 ids (track or
window ids), memory-mapped when read from its file (read-only then), brought forward from an
older generation's file in place when few vectors changed."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np

from .disk import index_path, state_path, write_index
from .protocol import Passes, SearchResult

if TYPE_CHECKING:
    import faiss

    from ..store import Store

log = logging.getLogger(__name__)


class FlatIndex:
    """Exact search over every vector (``VectorIndex``): candidates are the exact best, there
    is no coarse pass to widen, and windows are listed from SQLite (it knows no owners)."""

    approximate: Literal[False] = False
    lists_windows = False

    def __init__(self, index: faiss.Index):
        self.index = index

    @property
    def ntotal(self) -> int:
        return int(self.index.ntotal)

    @property
    def d(self) -> int:
        """The dimension of its vectors."""
        return int(self.index.d)

    @property
    def keyed(self) -> bool:
        """Whether it is an id-keyed flat index (a file may hold another kind: an approximate
        index whose run stopped before writing its state)."""
        import faiss

        return isinstance(self.index, faiss.IndexIDMap2)

    def save(self, target: Path) -> None:
        """Write it to ``target`` atomically (``disk.write_index``).

        Raises:
            OSError: the folder is not writable (or the disk is full).
        """
        write_index(self.index, target)

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[SearchResult]:
        import faiss

        params = None
        if allowed is not None:
            selector = faiss.IDSelectorBatch(np.ascontiguousarray(allowed, dtype=np.int64))
            params = faiss.SearchParameters()
            params.sel = selector  # ``selector`` stays referenced until the search returns
        scores, ids = self.index.search(queries, k, params=params)
        out = []
        for row_ids, row_scores in zip(ids, scores):
            keep = row_ids >= 0
            out.append((row_ids[keep], row_scores[keep]))
        return out

    def range_search(self, x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        lims, scores, ids = self.index.range_search(x, float(threshold))
        return np.asarray(lims, dtype=np.int64), np.asarray(scores, dtype=np.float32), np.asarray(ids, dtype=np.int64)

    def candidates(self, q: np.ndarray, depth: int, *, widen: int = 1, passes: Passes | None = None) -> SearchResult:
        k = min(int(depth), self.ntotal)
        if k <= 0:
            return np.empty(0, np.int64), np.empty(0, np.float32)
        ids, scores = self.search(np.ascontiguousarray(q, dtype=np.float32).reshape(1, -1), k)[0]
        if passes is not None and len(ids):
            keep = passes(ids)
            ids, scores = ids[keep], scores[keep]
        return ids, scores

    def coarse(self, q: np.ndarray, depth: int, *, widen: int = 1) -> np.ndarray:
        return self.candidates(q, depth)[0]

    def owner_of(self, ids: np.ndarray) -> np.ndarray | None:
        return None

    def best_windows(self, q: np.ndarray, track_ids: np.ndarray, k: int) -> list[tuple[int, int, float]] | None:
        return None


def build(ids: np.ndarray, vectors: np.ndarray, dim: int) -> FlatIndex:
    """An ``IndexIDMap2`` over ``IndexFlatIP`` holding ``vectors`` (n, dim) under ``ids``."""
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), np.asarray(ids, dtype=np.int64))
    return FlatIndex(index)


def load(path: Path, mmap: bool = True) -> FlatIndex:
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
            return FlatIndex(faiss.read_index(str(path), flag | faiss.IO_FLAG_READ_ONLY))
        except Exception as exc:  # a file system without mmap: the plain read decides
            log.debug("memory-mapping %s failed (%s); reading it", path, exc)
    return FlatIndex(faiss.read_index(str(path)))


def update_flat(store: Store, kind: str, generation: int, rows: int) -> FlatIndex | None:
    """The exact index of the newest older generation on disk, brought forward in place
    (``remove_ids`` then ``add_with_ids`` of the ids the vector log names): cheaper than
    re-reading every vector from SQLite. None when there is none, the log does not reach
    it, or most vectors changed."""
    import faiss

    older = []
    for p in store.dir.glob(f"{kind}-g*.faiss"):
        g = p.stem.split("-g")[-1]
        if g.isdigit() and int(g) < generation and not state_path(store.dir, kind, int(g)).exists():
            older.append(int(g))
    if not older:
        return None
    since = max(older)
    changed = store.changed_ids(kind, since)
    if changed is None or len(changed) > rows // 2 + 1000:
        return None
    try:
        index = faiss.read_index(str(index_path(store.dir, kind, since)))  # a writable copy
    except Exception as exc:
        log.warning("cannot read the %s index of generation %d (%s); rebuilding", kind, since, exc)
        return None
    if not isinstance(index, faiss.IndexIDMap2):
        return None
    ids, vecs = store.vectors_by_id(kind, changed)
    if len(changed):
        index.remove_ids(faiss.IDSelectorBatch(np.ascontiguousarray(changed, dtype=np.int64)))
    if len(ids):
        if vecs.shape[1] != index.d:
            return None
        index.add_with_ids(np.ascontiguousarray(vecs, dtype=np.float32), ids)
    if index.ntotal != rows:
        log.warning("%s index holds %d vectors after the update, the database %d; rebuilding", kind, index.ntotal, rows)
        return None
    return FlatIndex(index)
