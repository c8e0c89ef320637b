"""The vector search under every query: a query vector -> FAISS (restricted to the tracks that
pass the filters) -> Hits, each naming the window of the track that matches best.

``by="track"`` ranks tracks by their mean vector; ``by="window"`` ranks a track by its best
window (searching the windows index and keeping each track's first, i.e. best, window).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import numpy as np

from ..errors import MusicSearchError
from ..filters import Filters
from ..hits import Hit, Segment
from ..search.classify import shown_tags
from ..store import Store, Track
from .protocol import VectorIndex, range_search, search

GetIndex = Callable[[str], VectorIndex]  # kind ("tracks" or "windows") -> its index, loaded on first use


def best_segments(store: Store, query: np.ndarray, track_ids: list[int]) -> dict[int, Segment]:
    """For each track, the window whose vector is closest to ``query``."""
    out = {}
    for tid, (starts, ends, vecs) in store.window_vectors(track_ids).items():
        if len(vecs):
            sims = vecs @ query
            j = int(np.argmax(sims))
            out[tid] = Segment(float(starts[j]), float(ends[j]), float(sims[j]))
    return out


POST_FILTER_MIN = 0.05  # a filter keeping at least this share of tracks is applied after an unfiltered search
POST_FILTER_NPROBE = 4  # ...which scans this many times the tuned number of IVF lists
VIA_TRACKS = 200  # by window on approximate indexes: every window of this many candidate tracks is scored
VIA_TRACKS_FILTERED = 6400  # ...of this many when a broad filter then keeps >= 5 % of them (3,200: 0.976 R@10)
EXACT_WINDOWS_MAX = 5000  # a narrow filter by window scores every window of at most this many tracks


def _window_owners(
    store: Store, index: VectorIndex, ids: np.ndarray
) -> tuple[np.ndarray, dict[int, tuple[int, float, float]] | None]:
    """The track id of each window id: from the index when it knows them (an approximate
    index's sidecar, in memory), else from SQLite (with each window's (track id, start, end), returned too)."""
    owners = index.owner_of(ids)
    if owners is not None and (owners >= 0).all():
        return owners, None
    info = store.windows_by_id(int(i) for i in ids)
    return np.array([info[int(w)][0] for w in ids], dtype=np.int64), info


def _first_per_track(
    store: Store, index: VectorIndex, ids: np.ndarray, scores: np.ndarray, k: int, keep: np.ndarray | None = None
) -> dict[int, Segment]:
    """The best window of each track among ranked windows (``ids``, ``scores``, best first),
    of at most ``k`` tracks (only tracks in sorted ``keep`` when given), best first."""
    owners, info = _window_owners(store, index, ids)
    ok = np.ones(len(ids), bool)
    if keep is not None:
        pos = np.minimum(np.searchsorted(keep, owners), max(len(keep) - 1, 0))
        ok = keep[pos] == owners if len(keep) else np.zeros(len(ids), bool)
    chosen: dict[int, tuple[int, float]] = {}
    for wid, tid, score, good in zip(ids.tolist(), owners.tolist(), scores.tolist(), ok.tolist()):
        if good and tid not in chosen:
            chosen[tid] = (wid, score)
            if len(chosen) == k:
                break
    if info is None:
        info = store.windows_by_id(w for w, _ in chosen.values())
    return {tid: Segment(info[w][1], info[w][2], float(s)) for tid, (w, s) in chosen.items()}


class _Matching:
    """The tracks that pass ``filters``: with ``columnar`` (an approximate index: past 150k
    tracks), year and duration bounds, genre/artist/album substrings (and their exclusions)
    and track ids are matched in numpy over the store's filter columns (``Store.filter_mask``:
    a boolean mask by track id, a few ms at 1M tracks; the columns read once per
    generation), a path glob or tags in SQLite (counting up to a cap, or checking given ids)."""

    def __init__(self, store: Store, filters: Filters, columnar: bool = True):
        self.store, self.filters = store, filters
        self.mask: np.ndarray | None = store.filter_mask(filters) if columnar else None

    def count(self, cap: int) -> int:
        """How many tracks pass, counted up to ``cap``."""
        if self.mask is not None:
            return min(int(np.count_nonzero(self.mask)), int(cap))
        return self.store.count_filtered(self.filters, cap)

    def ids(self) -> np.ndarray:
        """Every track id that passes (sorted when evaluated in numpy)."""
        if self.mask is not None:
            return np.flatnonzero(self.mask).astype(np.int64)
        return self.store.filtered_ids(self.filters)

    def passing(self, track_ids: np.ndarray) -> np.ndarray:
        """Those of ``track_ids`` that pass, sorted."""
        wanted = np.unique(np.asarray(track_ids, np.int64))
        if self.mask is not None:
            wanted = wanted[(wanted >= 0) & (wanted < len(self.mask))]
            return wanted[self.mask[wanted]]
        return self.store.filtered_ids(self.filters, among=wanted)


def _post_filtered(
    store: Store,
    index: VectorIndex,
    q: np.ndarray,
    k: int,
    matching: _Matching | None,
    excluded: set[int],
    windows: bool,
) -> dict[int, Segment] | list[tuple[int, float]] | None:
    """On an approximate index with a broad filter (at least ``POST_FILTER_MIN`` of the tracks
    pass, counted up to there): the unfiltered candidates of one IVF search (16k / that share
    of them, growing, as 4-bit PQ ranks coarsely; ``POST_FILTER_NPROBE`` times the tuned
    nprobe, as the k best that pass rank lower), kept when their track passes the filter
    (checked for those tracks only; tracks are checked before the re-rank, so only those that
    pass are read from the sidecar), instead of listing every matching id. The k best (track id, score) pairs, or for windows
    the k best tracks' segments, best first; None when this does not apply or does not find
    k (the caller then lists the matching ids)."""
    if matching is None or not index.approximate:
        return None
    if not _broad(store, matching, k, excluded):
        return None
    drop = np.array(sorted(excluded), dtype=np.int64)
    want = min(math.ceil(16 * k / POST_FILTER_MIN), index.ntotal)  # 3,200 for k = 10: PQ ranks coarsely
    for _ in range(3):
        if windows:
            ids, scores = index.candidates(q, want, widen=POST_FILTER_NPROBE)
            owners = _window_owners(store, index, ids)[0]
            keep = np.setdiff1d(matching.passing(owners), drop)
            segments = _first_per_track(store, index, ids, scores, k, keep)
            if len(segments) == k:
                return segments
        else:
            ids, scores = index.candidates(
                q, want, widen=POST_FILTER_NPROBE, passes=lambda c: np.isin(c, np.setdiff1d(matching.passing(c), drop))
            )
            if len(ids) >= k:
                return [(int(i), float(sc)) for i, sc in zip(ids[:k], scores[:k])]
        if want >= index.ntotal:
            return None
        want = min(want * 4, index.ntotal)
    return None


def _broad(store: Store, matching: _Matching, k: int, excluded: set[int]) -> bool:
    """At least ``POST_FILTER_MIN`` of the tracks pass (counted up to there)."""
    n_tracks = store.max_id("tracks")
    cap = max(math.ceil(POST_FILTER_MIN * n_tracks), k + len(excluded))
    return matching.count(cap) >= cap


def _windows_via_tracks(
    store: Store,
    get_index: GetIndex,
    windows_index: VectorIndex,
    q: np.ndarray,
    k: int,
    matching: _Matching | None,
    excluded: set[int],
) -> dict[int, Segment] | None:
    """By window on approximate indexes, unfiltered or with a broad filter: the best
    ``VIA_TRACKS`` tracks by their mean vector (one search of the tracks index; with a filter
    ``VIA_TRACKS_FILTERED`` at ``POST_FILTER_NPROBE`` times its nprobe, those that pass kept),
    then every window of those tracks scored exactly from the sidecar, the k tracks with the
    best window first. A track's best window rarely ranks far below its mean: on clustered
    vectors, 200 candidates held 0.99 R@10 against exact search by window, where the windows
    IVF index needed half its lists scanned for text-like queries. None when this does not
    apply (exact indexes, no owners) or finds fewer than k (the caller then searches the
    windows)."""
    if not (windows_index.approximate and windows_index.lists_windows):
        return None
    tracks_index = get_index("tracks")
    if not tracks_index.approximate:
        return None
    depth = max(VIA_TRACKS, 20 * k) if matching is None else max(VIA_TRACKS_FILTERED, 640 * k)
    depth += len(excluded)
    widen = 1 if matching is None else POST_FILTER_NPROBE
    if matching is None:
        cand, _ = tracks_index.candidates(q, min(depth, tracks_index.ntotal), widen=widen)
    else:  # every window of the candidates that pass is scored: no need to re-rank them by mean first
        cand = tracks_index.coarse(q, min(depth, tracks_index.ntotal), widen=widen)
        cand = cand[np.isin(cand, matching.passing(cand))]
    if excluded:
        cand = cand[~np.isin(cand, np.array(sorted(excluded), dtype=np.int64))]
    best = windows_index.best_windows(q, cand, k) if len(cand) >= k else None
    if best is None or len(best) < k:
        return None
    info = store.windows_by_id(w for _, w, _ in best)
    return {tid: Segment(info[w][1], info[w][2], score) for tid, w, score in best}


def _approx_windows(
    store: Store,
    get_index: GetIndex,
    index: VectorIndex,
    q: np.ndarray,
    k: int,
    matching: _Matching | None,
    excluded: set[int],
) -> dict[int, Segment] | None:
    """By window on an approximate index, narrow filter or excluded tracks: with a filter,
    every window of the matching tracks scored exactly (the sidecar lists each track's
    windows; no window id comes from SQLite), or of the ``VIA_TRACKS`` best of them by mean
    vector when more than ``EXACT_WINDOWS_MAX`` match; without one, the re-ranked candidates
    minus the excluded tracks. None when the sidecar cannot list windows by track."""
    drop = np.array(sorted(excluded), dtype=np.int64)
    if matching is None:
        want = min(4 * k + 64 * len(excluded), index.ntotal)
        while True:
            ids, scores = index.candidates(q, want)
            owners = _window_owners(store, index, ids)[0]
            keep = np.setdiff1d(owners, drop)
            segments = _first_per_track(store, index, ids, scores, k, keep)
            if len(segments) >= k or want >= index.ntotal:
                return segments
            want = min(want * 4, index.ntotal)
    tracks = np.setdiff1d(matching.ids(), drop)
    if len(tracks) > EXACT_WINDOWS_MAX and (tracks_index := get_index("tracks")).approximate:
        # the VIA_TRACKS best of them by mean vector (exact over a small share), then their windows
        tracks = search(tracks_index, q, max(VIA_TRACKS, 20 * k), tracks)[0][0]
    best = index.best_windows(q, tracks, k)
    if best is None:
        return None
    info = store.windows_by_id(w for _, w, _ in best)
    return {tid: Segment(info[w][1], info[w][2], score) for tid, w, score in best}


def _listed_windows(
    store: Store, index: VectorIndex, q: np.ndarray, k: int, filters: Filters | None, excluded: set[int]
) -> dict[int, Segment]:
    """By window: the windows of the matching tracks listed from SQLite (an exact index, or
    a sidecar without owners), searched, the best window of each track kept."""
    allowed = store.filtered_ids(filters, windows=True) if (filters is not None or excluded) else None
    if allowed is not None and excluded:
        allowed = np.setdiff1d(allowed, store.filtered_ids(among=excluded, windows=True))
    total = index.ntotal if allowed is None else len(allowed)
    want = min(4 * k, total)
    segments: dict[int, Segment] = {}
    while want > 0:
        if allowed is None:
            ids, scores = index.candidates(q, want)  # approximate: every re-ranked candidate of one IVF search
        else:
            ids, scores = search(index, q, want, allowed)[0]
        segments = _first_per_track(store, index, ids, scores, k)
        if len(segments) >= k or want >= total or len(ids) >= total:
            break
        want = min(max(want, len(ids)) * 4, total)
    return segments


def search_vector(
    store: Store,
    get_index: GetIndex,
    query: np.ndarray,
    k: int,
    *,
    filters: Filters | None = None,
    by: str = "track",
    exclude: Sequence[int] = (),
    min_score: float | None = None,
) -> list[Hit]:
    """The ``k`` best tracks for ``query``.

    Args:
        store: the index's SQLite store.
        get_index: ``kind -> FAISS index`` for ``tracks`` or ``windows`` (ids are track or
            window ids); only the kind in use is loaded.
        query: a unit vector of the index's dimension.
        k: how many hits at most; fewer only when fewer tracks pass the filters.
        filters: the tracks allowed (metadata, exclusions, track ids), or None for all.
        by: ``track`` (mean vector) or ``window`` (best window).
        exclude: track ids never returned (the seeds of a similarity search).
        min_score: drop hits scoring below this.
    """
    if by not in ("track", "window"):
        raise MusicSearchError(f"--by must be track or window, not {by!r}")
    q = np.ascontiguousarray(query, dtype=np.float32)
    excluded = {int(e) for e in exclude}
    if filters is not None and not filters.active:
        filters = None
    pairs: list[tuple[int, float]] = []
    segments: dict[int, Segment] = {}
    if by == "track":
        faiss_index = get_index("tracks")
        matching = _Matching(store, filters, faiss_index.approximate) if filters is not None else None
        post = _post_filtered(store, faiss_index, q, k, matching, excluded, windows=False)
        if isinstance(post, list):
            pairs = post
        else:
            allowed = None
            if matching is not None:
                allowed = np.setdiff1d(matching.ids(), np.array(sorted(excluded), dtype=np.int64))
            n = faiss_index.ntotal if allowed is None else len(allowed)
            want = min(k + (len(excluded) if allowed is None else 0), n)
            if want > 0:
                ids, scores = search(faiss_index, q, want, allowed)[0]
                pairs = [(int(i), float(s)) for i, s in zip(ids, scores) if int(i) not in excluded][:k]
        segments = best_segments(store, q, [i for i, _ in pairs])
    else:
        windows_index = get_index("windows")
        matching = _Matching(store, filters, windows_index.approximate) if filters is not None else None
        found: dict[int, Segment] | None = None
        if windows_index.approximate and (matching is None or _broad(store, matching, k, excluded)):
            found = _windows_via_tracks(store, get_index, windows_index, q, k, matching, excluded)
        post = (
            None if found is not None else _post_filtered(store, windows_index, q, k, matching, excluded, windows=True)
        )
        if isinstance(post, dict):
            found = post
        elif found is None and windows_index.approximate and (matching is not None or excluded):
            found = _approx_windows(store, get_index, windows_index, q, k, matching, excluded)
        segments = found if found is not None else _listed_windows(store, windows_index, q, k, filters, excluded)
        pairs = [(tid, seg.score) for tid, seg in segments.items()]
    if min_score is not None:
        pairs = [(i, s) for i, s in pairs if s >= min_score]
    tracks = store.tracks(i for i, _ in pairs)
    tags = store.tags_of(i for i, _ in pairs)
    hits: list[Hit] = []
    for i, s in pairs:
        if i in tracks and i in segments:
            top = shown_tags(tags[i])
            hits.append(Hit(len(hits) + 1, s, tracks[i], segments[i], top))
    return hits


def duplicate_groups(store: Store, index: VectorIndex, threshold: float) -> list[list[tuple[Track, float]]]:
    """Groups of tracks whose vectors have cosine >= ``threshold`` with another member
    (single linkage), largest groups first. Each member comes with its best cosine to the
    rest of its group."""
    ids, vecs = store.track_vectors()
    if len(ids) < 2:
        return []
    lims, scores, found = range_search(index, vecs, threshold)
    parent = {int(i): int(i) for i in ids}

    def root(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    best: dict[int, float] = {}
    for row, tid in enumerate(ids):
        for j in range(lims[row], lims[row + 1]):
            other = int(found[j])
            if other == int(tid):
                continue
            best[int(tid)] = max(best.get(int(tid), -1.0), float(scores[j]))
            a, b = root(int(tid)), root(other)
            if a != b:
                parent[a] = b
    groups: dict[int, list[int]] = {}
    for tid in best:
        groups.setdefault(root(tid), []).append(tid)
    tracks = store.tracks(best)
    out = [sorted(((tracks[t], best[t]) for t in members), key=lambda p: p[0].path) for members in groups.values()]
    out.sort(key=lambda g: (-len(g), g[0][0].path))
    return out
