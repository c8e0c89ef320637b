"""Tests of musicsearch/vectors/protocol.py: ``top_k``, ``empty_result``, the policy's defaults,
and the ``search`` / ``range_search`` helpers on an exact and an approximate index over 64
known vectors (a ring of unit vectors in one plane), with FAISS's -1 padding dropped."""

import dataclasses

import numpy as np
import pytest

from musicsearch.store import IndexMeta, Store, TrackRecord
from musicsearch.vectors import ApproxIndex, FlatIndex, ScalePolicy, VectorIndexes, build
from musicsearch.vectors.protocol import DEFAULT_POLICY, KINDS, empty_result, range_search, search, top_k

N = 64
ANGLES = 2 * np.pi * np.arange(N) / N
_X, _Y = np.cos(ANGLES), np.sin(ANGLES)
_X[33:], _Y[33:] = _X[31:0:-1], -_Y[31:0:-1]  # mirrored exactly: ring[64 - i] scores as ring[i] with E_X
RING = np.stack([_X, _Y, np.zeros(N), np.zeros(N)], axis=1).astype(np.float32)
E_X = np.array([1, 0, 0, 0], dtype=np.float32)  # scores each vector's x exactly
Q = np.array([np.cos(np.pi / 128), np.sin(np.pi / 128), 0, 0], dtype=np.float32)  # a quarter step past ring[0]
BEST = [0, 1, 63, 2, 62]  # Q's best five: 1/4, 3/4, 5/4, 7/4 and 9/4 steps away, no ties
# 64 vectors turn approximate past 10: IVF32 with 4-bit PQ, re-ranked from a float16 sidecar
APPROX = ScalePolicy(exact_max={"tracks": 10, "windows": 10}, tune_queries=8)


@pytest.fixture(scope="module")
def ring_store(tmp_path_factory):
    """The ring as 64 one-window tracks; returns the store and the track id of each vector."""
    store = Store(tmp_path_factory.mktemp("ring") / "idx", create=True)
    store.record_meta(IndexMeta.new("m", None, 4, 10.0, checked=False))
    with store.write():
        ids = [
            store.put_track(
                TrackRecord(f"/t{i}.wav", 1, 1, "h", {"title": f"t{i}"}, 10.0, [0.0], [10.0], RING[i : i + 1]), "now"
            )
            for i in range(N)
        ]
    yield store, np.array(ids, dtype=np.int64)
    store.close()


@pytest.fixture(scope="module", params=["exact", "approximate"])
def ring(request, ring_store):
    """(index, track ids, the vectors as the index scores them): exact float32, or the
    approximate index re-ranking from float16."""
    store, ids = ring_store
    if request.param == "exact":
        index = build(ids, RING, 4)
        assert isinstance(index, FlatIndex)
        return index, ids, RING
    index = VectorIndexes(store, APPROX).get("tracks")
    assert isinstance(index, ApproxIndex) and index.state.factory == "IVF32,PQ1x4fsr"
    return index, ids, RING.astype(np.float16).astype(np.float32)


class Recording:
    """An index that records what ``search`` and ``range_search`` hand it, and answers with
    the index it wraps."""

    def __init__(self, inner):
        self.inner, self.calls = inner, []

    @property
    def ntotal(self):
        return self.inner.ntotal

    def search(self, q, k, allowed=None):
        self.calls.append(("search", q.shape, q.dtype, q.flags.c_contiguous, k))
        return self.inner.search(q, k, allowed)

    def range_search(self, x, threshold):
        self.calls.append(("range_search", x.shape, x.dtype, x.flags.c_contiguous, threshold))
        return self.inner.range_search(x, threshold)


def test_top_k_is_best_first_with_ties_to_the_smaller_id():
    ids = np.array([7, 3, 9, 1, 5], dtype=np.int32)
    scores = np.array([0.5, 0.9, 0.5, 0.1, 0.9], dtype=np.float64)
    best, s = top_k(ids, scores, 10)  # k beyond what exists: all of them, sorted
    assert best.tolist() == [3, 5, 7, 9, 1] and s.tolist() == [np.float32(0.9)] * 2 + [0.5, 0.5, np.float32(0.1)]
    assert (best.dtype, s.dtype) == (np.int64, np.float32)
    best, s = top_k(ids, scores, 4)  # the four best (no tie across the cut)
    assert best.tolist() == [3, 5, 7, 9] and s.tolist() == [np.float32(0.9)] * 2 + [0.5, 0.5]
    assert top_k(ids, scores, 2)[0].tolist() == [3, 5] and top_k(ids, scores, 1)[1].tolist() == [np.float32(0.9)]
    assert [a.tolist() for a in top_k(ids[:0], scores[:0], 3)] == [[], []]


def test_top_k_ties_across_the_cut_go_to_the_smaller_ids():
    ids = np.array([9, 1, 7, 4, 3], dtype=np.int64)
    scores = np.array([0.5, 0.9, 0.5, 0.5, 0.1], dtype=np.float32)
    for _ in range(3):  # whatever argpartition leaves at the cut
        assert top_k(ids, scores, 3)[0].tolist() == [1, 4, 7]
        assert top_k(ids, scores, 2)[0].tolist() == [1, 4]
        ids, scores = ids[::-1].copy(), scores[::-1].copy()


def test_empty_result_and_the_defaults():
    ids, scores = empty_result()
    assert (ids.shape, ids.dtype, scores.shape, scores.dtype) == ((0,), np.int64, (0,), np.float32)
    assert KINDS == ("tracks", "windows")
    p = DEFAULT_POLICY
    assert (p.exact_max, p.max_nlist, p.rerank) == (
        {"tracks": 150_000, "windows": 900_000},
        {"tracks": 2048, "windows": 1024},
        {"tracks": 128, "windows": 256},
    )
    assert (p.target_recall, p.drift, p.resave, p.exact_subset_max, p.tune_queries, p.seed, p.prefetch) == (
        0.99,
        4.0,
        0.01,
        0.02,
        100,
        0,
        0.5,
    )
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.seed = 1  # type: ignore[misc]


def test_search_gives_the_exact_ids_and_scores(ring):
    index, ids, held = ring
    [(found, scores)] = search(index, Q, 5)
    assert found.tolist() == ids[BEST].tolist() and (found.dtype, scores.dtype) == (np.int64, np.float32)
    np.testing.assert_allclose(scores, held[BEST] @ Q, rtol=0, atol=1e-6)
    second = np.array([0, 1, 0, 0], dtype=np.float64)  # a float64 list of queries is taken as float32
    both = search(index, np.stack([Q, second]), 1)
    assert [(r[0].tolist(), r[1].tolist()) for r in both] == [([ids[0]], [scores[0]]), ([ids[16]], [held[16, 1]])]


def test_padding_past_what_exists_is_dropped(ring):
    index, ids, held = ring
    [(found, scores)] = search(index, Q, 1000)  # more than the 64 held: FAISS pads with -1
    assert found[:5].tolist() == ids[BEST].tolist() and np.all(np.diff(scores) <= 0)
    assert len(set(found.tolist())) == len(found) and set(found.tolist()) <= set(ids.tolist())  # no -1
    if not index.approximate:  # (an IVF search sees only the lists it probes)
        assert len(found) == N
    allowed = np.array([ids[5], 9999, ids[2]])  # 9999 is no id of the index
    [(found, scores)] = search(index, E_X, 3, allowed=allowed)
    assert found.tolist() == [ids[2], ids[5]] and scores.tolist() == held[[2, 5], 0].tolist()
    assert [r[0].tolist() for r in search(index, Q, 3, allowed=np.array([9999, 9998]))] == [[]]


def test_search_asks_the_index_for_at_most_what_exists(ring):
    index, ids, _ = ring
    spy = Recording(index)
    search(spy, Q.astype(np.float64), 1000)
    search(spy, np.asfortranarray(np.stack([Q, Q])), 5)  # column-major: made C-contiguous
    search(spy, Q, 9, allowed=ids[:4])
    assert spy.calls == [
        ("search", (1, 4), np.float32, True, N),
        ("search", (2, 4), np.float32, True, 5),
        ("search", (1, 4), np.float32, True, 4),
    ]
    # nothing to ask: k <= 0, no query, nothing allowed
    for got in (search(spy, Q, 0), search(spy, np.stack([Q, Q]), -1), search(spy, Q, 5, allowed=ids[:0])):
        assert [(i.tolist(), s.tolist()) for i, s in got] == [([], [])] * len(got)
    assert search(spy, np.zeros((0, 4), np.float32), 5) == []
    assert len(spy.calls) == 3


def test_range_search_is_strictly_above_the_threshold(ring):
    index, ids, held = ring
    threshold = float(held[2, 0])  # exactly ring[2]'s and ring[62]'s score with E_X: left out
    lims, scores, found = range_search(index, E_X, threshold)
    assert lims.tolist() == [0, 3] and (lims.dtype, scores.dtype, found.dtype) == (np.int64, np.float32, np.int64)
    assert sorted(zip(found.tolist(), scores.tolist())) == sorted(
        zip(ids[[0, 1, 63]].tolist(), held[[0, 1, 63], 0].tolist())
    )
    lims, scores, found = range_search(index, np.stack([E_X, -E_X]), 0.999)
    assert lims.tolist() == [0, 1, 2] and found.tolist() == [ids[0], ids[32]] and scores.tolist() == [1.0, 1.0]


def test_range_search_on_nothing_asks_no_index(ring):
    index, _, _ = ring
    spy = Recording(index)
    lims, scores, found = range_search(spy, np.zeros((0, 4), np.float32), 0.5)
    assert (lims.tolist(), len(scores), len(found)) == ([0], 0, 0)
    empty = Recording(build(np.zeros(0, np.int64), np.zeros((0, 4), np.float32), 4))
    lims, scores, found = range_search(empty, np.stack([Q, Q]), 0.5)
    assert (lims.tolist(), scores.dtype, found.dtype, len(found)) == ([0, 0, 0], np.float32, np.int64, 0)
    assert spy.calls == [] and empty.calls == []
    range_search(spy, Q.astype(np.float64), 0.5)
    assert spy.calls == [("range_search", (1, 4), np.float32, True, 0.5)]
