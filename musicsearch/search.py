"""Search: a query vector -> FAISS over track vectors -> Hits, each naming the window of the
track that matches the query best."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .store import Store, Track


@dataclass(frozen=True)
class Segment:
    """The best-matching window of a track, in seconds, with its own score."""

    start: float
    end: float
    score: float


@dataclass(frozen=True)
class Hit:
    """One search result."""

    rank: int
    score: float
    track: Track
    segment: Segment


def best_segments(store: Store, query: np.ndarray, track_ids: list[int]) -> dict[int, Segment]:
    """For each track, the window whose vector is closest to ``query``."""
    out = {}
    for tid, (starts, ends, vecs) in store.window_vectors(track_ids).items():
        if len(vecs):
            sims = vecs @ query
            j = int(np.argmax(sims))
            out[tid] = Segment(float(starts[j]), float(ends[j]), float(sims[j]))
    return out


def search_vector(store: Store, index: object, query: np.ndarray, k: int) -> list[Hit]:
    """The ``k`` tracks whose vectors have the highest inner product with ``query``.

    Args:
        store: the index's SQLite store.
        index: the FAISS index over track vectors (ids = track ids).
        query: a unit vector of the index's dimension.
        k: how many hits at most.
    """
    k = min(k, index.ntotal)  # type: ignore[attr-defined]
    if k <= 0:
        return []
    q = np.ascontiguousarray(query, dtype=np.float32).reshape(1, -1)
    scores, ids = index.search(q, k)  # type: ignore[attr-defined]
    pairs = [(int(i), float(s)) for i, s in zip(ids[0], scores[0]) if i >= 0]
    tracks = store.tracks(i for i, _ in pairs)
    segments = best_segments(store, q[0], [i for i, _ in pairs])
    hits = []
    for i, s in pairs:
        if i in tracks and i in segments:
            hits.append(Hit(len(hits) + 1, s, tracks[i], segments[i]))
    return hits
