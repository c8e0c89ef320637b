"""The one protocol every vector index answers (exact ``FlatIndex``, approximate
``ApproxIndex``), the policy that chooses between them, and the search helpers built on the
protocol alone."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

KINDS = ("tracks", "windows")

SearchResult = tuple[np.ndarray, np.ndarray]  # (ids int64, scores float32), best first
Passes = Callable[[np.ndarray], np.ndarray]  # ids -> a boolean mask of those that pass a filter


@dataclass(frozen=True)
class ScalePolicy:
    """When an index turns approximate, and how it is built.

    Attributes:
        exact_max: the most vectors an exact (flat) index holds, per kind. Flat search costs
            ~0.13 ms per 1,000 512-d vectors on one core (13 ms at 100k, 144 ms at 1M); past
            150k tracks (20 ms) an IVF index answers in ~2 ms with R@10 >= 0.98.
        max_nlist: the most IVF lists, per kind (building costs nlist x N: assigning 6M windows
            to 2,048 lists took ~2 minutes on 2 cores; a 4-bit PQ list scans fast, so lists of
            ~500 tracks or ~6,000 windows at 1M tracks cost little per probe).
        rerank: candidates re-ranked exactly from the sidecar per query (at least; more for k > 10).
        target_recall: the R@10 the build-time nprobe tuning aims for.
        drift: retrain when the index has grown or shrunk this many times since training.
        resave: an in-place update writes the whole index file again only once the ids changed
            since it was last written exceed this share of the index (else only the state
            JSON, and a reader replays those changes: at 1M tracks the files are ~1 GB).
        exact_subset_max: a filter matching at most this share of the vectors is searched exactly.
        tune_queries: out-of-distribution queries used to tune nprobe (``ood_queries``).
        prefetch: an approximate index read from disk has its sidecar read into the page
            cache by a background thread (``prefetch``), when it takes at most this
            share of the memory available (0: never). At 1M tracks a cold page cache cost
            more than the search itself: every re-ranked row not cached is a disk read (window
            search p50 12.6 ms with 3.3 of the 7.2 GB of sidecars cached, 3.7 ms with all).
    """

    exact_max: dict[str, int] = field(default_factory=lambda: {"tracks": 150_000, "windows": 900_000})
    max_nlist: dict[str, int] = field(default_factory=lambda: {"tracks": 2048, "windows": 1024})
    rerank: dict[str, int] = field(default_factory=lambda: {"tracks": 128, "windows": 256})
    target_recall: float = 0.99
    drift: float = 4.0
    resave: float = 0.01
    exact_subset_max: float = 0.02
    tune_queries: int = 100
    seed: int = 0
    prefetch: float = 0.5


DEFAULT_POLICY = ScalePolicy()


class VectorIndex(Protocol):
    """What the search asks of a vector index keyed by int64 ids (track or window ids), exact
    or approximate: it never asks which one it has, only what the index can do."""

    @property
    def ntotal(self) -> int:
        """How many vectors it holds."""
        ...

    @property
    def approximate(self) -> bool:
        """Whether its answers come from a coarse pass (IVF lists) re-ranked exactly: then one
        wide unfiltered pass beats listing the ids of a broad filter, year and duration
        filters are worth matching in numpy, and a search by window goes through the best
        tracks. An exact index answers every search exactly, so none of that pays."""
        ...

    @property
    def lists_windows(self) -> bool:
        """Whether ``best_windows`` can list each track's windows (a windows index whose
        sidecar knows each window's track)."""
        ...

    def search(self, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[SearchResult]:
        """The ``k`` best ids of each of ``queries`` ((n, dim) float32; ``k`` at most what
        exists), only ids in ``allowed`` when given, best first."""
        ...

    def range_search(self, x: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(lims, scores, ids) of the stored vectors scoring above ``threshold`` with each of ``x``."""
        ...

    def candidates(self, q: np.ndarray, depth: int, *, widen: int = 1, passes: Passes | None = None) -> SearchResult:
        """One query's best ids, scored exactly, up to ``depth`` (an approximate index gives
        at least its re-rank depth: take as many as needed from one search), best first.
        ``widen``: how many times the usual number of IVF lists to scan; ``passes``: a filter
        applied before the exact scores are read."""
        ...

    def coarse(self, q: np.ndarray, depth: int, *, widen: int = 1) -> np.ndarray:
        """One query's ``depth`` best ids by the cheapest scores the index has (compressed
        codes for an approximate one), best first."""
        ...

    def owner_of(self, ids: np.ndarray) -> np.ndarray | None:
        """The track id of each window id (-1 where unknown), or None when the index does not
        know (SQLite does)."""
        ...

    def best_windows(self, q: np.ndarray, track_ids: np.ndarray, k: int) -> list[tuple[int, int, float]] | None:
        """The ``k`` tracks of ``track_ids`` whose best window scores highest as (track id,
        window id, score), best first; None when the index cannot list windows by track."""
        ...


AnyIndex = VectorIndex  # the name importers used before the protocol


def empty_result() -> SearchResult:
    return np.empty(0, dtype=np.int64), np.empty(0, dtype=np.float32)


def top_k(ids: np.ndarray, scores: np.ndarray, k: int) -> SearchResult:
    """The ``k`` best of ``ids`` by ``scores``, best first (ties: smaller id first)."""
    if len(ids) > k:
        cut = scores[np.argpartition(-scores, k - 1)[k - 1]]
        keep = scores >= cut  # every id tied at the cut, so that the smaller ids win below
        ids, scores = ids[keep], scores[keep]
    order = np.lexsort((ids, -scores))[:k]
    return ids[order].astype(np.int64), scores[order].astype(np.float32)


def search(index: VectorIndex, queries: np.ndarray, k: int, allowed: np.ndarray | None = None) -> list[SearchResult]:
    """The ``k`` best ids for each query, best first, and their scores.

    Args:
        index: an index from this package (exact, or approximate with re-rank).
        queries: (n, dim) float32 (one (dim,) vector is taken as n = 1).
        k: how many per query at most.
        allowed: the only ids that may be returned (an FAISS ``IDSelectorBatch``; an
            approximate index searches a small set exactly), or None.

    Returns:
        One (ids int64, scores float32) per query; fewer than ``k`` when fewer exist or,
        on an approximate index searched without ``allowed``, when the IVF lists it probes
        hold fewer (FAISS's -1 padding is dropped).
    """
    q = np.ascontiguousarray(queries, dtype=np.float32)
    if q.ndim == 1:
        q = q.reshape(1, -1)
    limit = index.ntotal if allowed is None else min(index.ntotal, len(allowed))
    k = min(int(k), limit)
    if k <= 0 or len(q) == 0:
        return [empty_result() for _ in range(len(q))]
    return index.search(q, k, allowed)


def range_search(
    index: VectorIndex, vectors: np.ndarray, threshold: float
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Every stored vector scoring above ``threshold`` (inner product, strictly greater, as
    FAISS does) with each of ``vectors`` (an approximate index re-scores its candidates
    exactly; it may miss a pair its IVF probes do not reach).

    Returns:
        (lims int64 (n + 1,), scores float32, ids int64): the hits of query ``i`` are
        ``ids[lims[i]:lims[i + 1]]`` with ``scores[lims[i]:lims[i + 1]]``, in no particular order.
    """
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if x.ndim == 1:
        x = x.reshape(1, -1)
    if index.ntotal == 0 or len(x) == 0:
        return np.zeros(len(x) + 1, dtype=np.int64), np.empty(0, dtype=np.float32), np.empty(0, dtype=np.int64)
    return index.range_search(x, threshold)
