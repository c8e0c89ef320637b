"""Playlists that move: a path from one track to another through the embedding space, and a
smooth order for a list of hits (neighbours close together).

A path of n tracks from A to B: n - 2 waypoints evenly spaced on the line from A's vector to
B's (normalized), each taking the nearest unused track that passes the filters and variety
(per-artist cap, duplicates); the picks are then ordered by how far along A -> B they lie, so
every step moves the same way. Unless asked to move by sound alone, tempo and key count too
where known (search/mixing.py): a waypoint takes the best mix of its nearest few tracks, and
the smooth order adds the mixing cost to the distance in sound.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import replace

import numpy as np

from .. import vectors
from ..errors import MusicSearchError
from ..filters import Filters
from ..hits import Hit, Segment
from ..store import Store, Track
from ..vectors.query import best_segments
from . import mixing
from .classify import shown_tags

MIX_CANDIDATES = 4  # a path's waypoint chooses by tempo and key among its 4 nearest tracks


def smooth_order(store: Store, hits: Sequence[Hit], sound_only: bool = False) -> list[Hit]:
    """``hits`` reordered so that consecutive tracks are close: the best hit first, then each
    time the nearest one not yet placed (greedy chain), improved by 2-opt; renumbered. Close
    in sound, and unless ``sound_only`` in tempo and key where known (search/mixing.py)."""
    if len(hits) < 3:
        return list(hits)
    ids, vecs = store.track_vectors([h.track.id for h in hits])
    where = {int(i): v for i, v in zip(ids, vecs)}
    stacked = np.stack([where[h.track.id] for h in hits])
    dist = 1.0 - stacked @ stacked.T
    tracks = [h.track for h in hits]
    if not sound_only and mixing.known(tracks):
        dist = dist + mixing.cost_matrix(tracks)
    order = _chain(dist, start=0)
    return [replace(hits[i], rank=r + 1) for r, i in enumerate(order)]


def _chain(dist: np.ndarray, start: int, end: int | None = None) -> list[int]:
    """A short open path through all rows of the distance matrix ``dist``, from ``start`` (to
    ``end`` when given): nearest neighbour, then 2-opt over the inner edges."""
    n = len(dist)
    left = set(range(n)) - {start} - ({end} if end is not None else set())
    order = [start]
    while left:
        nxt = min(left, key=lambda j: (dist[order[-1], j], j))
        order.append(nxt)
        left.remove(nxt)
    if end is not None:
        order.append(end)
    improved = True
    while improved:
        improved = False
        for i in range(1, n - 2):
            for j in range(i + 1, n - 1 if end is not None else n):
                a, b = order[i - 1], order[i]
                c, d = order[j], order[j + 1] if j + 1 < n else None
                before = dist[a, b] + (dist[c, d] if d is not None else 0.0)
                after = dist[a, c] + (dist[b, d] if d is not None else 0.0)
                if after < before - 1e-9:
                    order[i : j + 1] = order[i : j + 1][::-1]
                    improved = True
    return order


def path_ids(
    store: Store,
    get_index: Callable[[str], vectors.AnyIndex],
    a: int,
    b: int,
    n: int,
    *,
    filters: Filters | None = None,
    accept: Callable[[list[int], int], bool] | None = None,
    sound_only: bool = False,
) -> list[int]:
    """Track ids of a path of (at most) ``n`` tracks from ``a`` to ``b`` (both included).
    ``accept(chosen, candidate)`` can refuse a candidate (variety). Unless ``sound_only``,
    where the ends' tempo or key is known, each waypoint takes the one of its
    ``MIX_CANDIDATES`` nearest tracks that best adds sound distance and mixing cost (a tempo
    on the way from A's to B's, a key compatible with theirs; search/mixing.py)."""
    if n < 2:
        raise MusicSearchError("a path needs at least 2 tracks (-n 2)")
    if a == b:
        raise MusicSearchError("a path needs two different tracks")
    ids, vecs = store.track_vectors([a, b])
    if len(ids) < 2:
        raise MusicSearchError("both ends of a path must be indexed tracks")
    va, vb = (vecs[0], vecs[1]) if int(ids[0]) == a else (vecs[1], vecs[0])
    index = get_index("tracks")
    allowed = None if filters is None else store.filtered_ids(filters)
    chosen = [a, b]
    picked: list[int] = []
    ends = store.tracks([a, b])
    mix = not sound_only and mixing.known(list(ends.values()))
    for i in range(1, n - 1):
        t = i / (n - 1)
        w = (1 - t) * va.astype(np.float64) + t * vb.astype(np.float64)
        w = (w / max(float(np.linalg.norm(w)), 1e-12)).astype(np.float32)
        want = min(len(chosen) + 8, index.ntotal if allowed is None else len(allowed))
        while want > 0:
            found, _ = vectors.search(index, w, want, allowed)[0]
            fresh = [int(f) for f in found if int(f) not in chosen and (accept is None or accept(chosen, int(f)))]
            total = index.ntotal if allowed is None else len(allowed)
            if fresh or want >= total:
                break
            want = min(want * 4, total)
        if not fresh:
            break  # the library ran out of tracks that qualify
        pick = _mixed_pick(store, w, fresh, ends[a], ends[b], t) if mix else fresh[0]
        chosen.append(pick)
        picked.append(pick)
    # order the picks by how far along A -> B they lie
    _, pv = store.track_vectors(picked)
    pos = {int(i): v for i, v in zip(store.track_vectors(picked)[0], pv)}
    axis = (vb - va).astype(np.float64)
    along = {tid: float((pos[tid] - va) @ axis) for tid in picked}
    return [a, *sorted(picked, key=lambda t: along[t]), b]


def _mixed_pick(store: Store, waypoint: np.ndarray, fresh: list[int], a: Track, b: Track, t: float) -> int:
    """Of the first ``MIX_CANDIDATES`` of ``fresh`` (nearest first), the one whose distance to
    the waypoint plus mixing cost is least."""
    options = fresh[:MIX_CANDIDATES]
    ids, vecs = store.track_vectors(options)
    sound = {int(i): 1.0 - float(v @ waypoint) for i, v in zip(ids, vecs)}
    tracks = store.tracks(options)
    tempo = mixing.waypoint_tempo(mixing.tempo_of(a), mixing.tempo_of(b), t)
    return min(options, key=lambda c: sound.get(c, 2.0) + mixing.waypoint_cost(tracks[c], tempo, a, b))


def path_hits(store: Store, ids: Sequence[int]) -> list[Hit]:
    """Hits for a path: each step's score is its cosine to the previous track (1 for the
    first), its segment the window closest to the next step's direction."""
    tracks = store.tracks(ids)
    tids, vecs = store.track_vectors(ids)
    vec = {int(i): v for i, v in zip(tids, vecs)}
    tags = store.tags_of(ids)
    hits: list[Hit] = []
    for r, tid in enumerate(ids):
        score = 1.0 if r == 0 else float(vec[tid] @ vec[ids[r - 1]])
        seg = best_segments(store, vec[tid], [tid]).get(tid, Segment(0.0, 0.0, 0.0))
        hits.append(Hit(r + 1, score, tracks[tid], seg, shown_tags(tags[tid])))
    return hits


def step_distances(store: Store, ids: Sequence[int]) -> np.ndarray:
    """Cosine distances between consecutive tracks of ``ids``."""
    tids, vecs = store.track_vectors(ids)
    vec = {int(i): v for i, v in zip(tids, vecs)}
    return np.array([1.0 - float(vec[x] @ vec[y]) for x, y in itertools.pairwise(ids)])
