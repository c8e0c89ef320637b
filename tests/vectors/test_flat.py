"""The exact index (musicsearch/vectors/flat.py): exact ids and scores, selectors, FAISS's
padding dropped, range search, memory-mapped reads, in-place updates from an older
generation's file, and the protocol every index answers."""

import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from musicsearch.vectors import VectorIndexes, build, load, range_search, search

IDS = np.array([10, 20, 30, 40], dtype=np.int64)
VECS = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 0.6, 0.8]], dtype=np.float32)
Q1 = np.array([0.8, 0.6, 0], dtype=np.float32)  # scores 0.8, 0.96, 0, 0.36
Q2 = np.array([0, 0, 1], dtype=np.float32)  # scores 0, 0, 1, 0.8


def test_search_exact_ids_and_scores(small, as_lists):
    assert small.ntotal == 4
    assert as_lists(search(small, np.stack([Q1, Q2]), 2)) == [([20, 10], [0.96, 0.8]), ([30, 40], [1.0, 0.8])]
    assert as_lists(search(small, Q1, 3)) == [([20, 10, 40], [0.96, 0.8, 0.36])]  # one (dim,) query


def test_selector_restricts_results(small, as_lists):
    assert as_lists(search(small, Q1, 4, allowed=np.array([10, 30]))) == [([10, 30], [0.8, 0.0])]
    assert as_lists(search(small, Q1, 4, allowed=np.array([], dtype=np.int64))) == [([], [])]


def test_padding_is_dropped_when_k_exceeds_what_exists(small, as_lists):
    assert as_lists(search(small, Q1, 10)) == [([20, 10, 40, 30], [0.96, 0.8, 0.36, 0.0])]
    # 99 is not in the index: FAISS pads the third slot with -1, which must not come back
    allowed = np.array([10, 40, 99])
    _scores, ids = small.index.search(Q1.reshape(1, -1), 3, params=_params(allowed))
    assert ids[0].tolist() == [10, 40, -1]  # what FAISS itself returns
    assert as_lists(search(small, Q1, 3, allowed=allowed)) == [([10, 40], [0.8, 0.36])]
    assert as_lists(search(build(IDS[:0], VECS[:0], 3), Q1, 5)) == [([], [])]


def _params(allowed):
    params = faiss.SearchParameters()
    params.sel = faiss.IDSelectorBatch(allowed.astype(np.int64))
    _params.keep = params.sel  # keep the selector alive
    return params


def test_range_search(small, r6):
    lims, scores, ids = range_search(small, np.stack([Q1, Q2]), 0.5)
    assert lims.tolist() == [0, 2, 4]
    first = sorted(zip(ids[:2].tolist(), r6(scores[:2])))
    second = sorted(zip(ids[2:].tolist(), r6(scores[2:])))
    assert first == [(10, 0.8), (20, 0.96)] and second == [(30, 1.0), (40, 0.8)]
    lims, scores, ids = range_search(build(IDS[:0], VECS[:0], 3), Q1, 0.5)
    assert lims.tolist() == [0, 0] and len(ids) == 0


def test_mmap_load_gives_the_same_results(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(300, dtype=np.int64) * 7 + 3
    build(ids, x, 16).save(tmp_path / "a.faiss")
    build(ids, x, 16).save(tmp_path / "b.faiss")
    mapped, plain = load(tmp_path / "a.faiss"), load(tmp_path / "b.faiss", mmap=False)
    if sys.platform.startswith("linux"):  # the vectors really stay in the file
        maps = Path("/proc/self/maps").read_text()
        assert str(tmp_path / "a.faiss") in maps and str(tmp_path / "b.faiss") not in maps
    q = x[:20] + 0.1 * rng.standard_normal((20, 16)).astype(np.float32)
    allowed = ids[::3]
    for a, b in zip(
        search(mapped, q, 10) + search(mapped, q, 5, allowed), search(plain, q, 10) + search(plain, q, 5, allowed)
    ):
        assert a[0].tolist() == b[0].tolist() and np.array_equal(a[1], b[1])
    assert [r[0][0] for r in search(mapped, x[:20], 1)] == ids[:20].tolist()  # each vector finds itself
    for a, b in zip(range_search(mapped, q, 0.3), range_search(plain, q, 0.3)):
        assert np.array_equal(a, b)


def test_an_exact_index_is_updated_in_place_not_reread_from_sqlite(store, monkeypatch, as_lists, rec, faiss_files):
    cache = VectorIndexes(store)
    assert cache.get("windows").ntotal == 3 and cache.get("tracks").ntotal == 2
    with store.write():
        store.put_track(rec("/c.wav", [[0.6, 0.8]]), "now")
    with store.write():
        store.remove_tracks([1])  # /a.wav and its two windows

    def everything(*a, **kw):
        raise AssertionError("rebuilt from every vector")

    monkeypatch.setattr(store, "all_window_vectors", everything)
    monkeypatch.setattr(store, "track_vectors", everything)
    windows, tracks = cache.get("windows"), cache.get("tracks")
    assert (windows.ntotal, tracks.ntotal) == (2, 2) and faiss_files(store)[-1] == f"windows-g{store.generation}.faiss"
    assert as_lists(search(windows, np.array([0.6, 0.8], np.float32), 5)) == [([4, 3], [1.0, 0.8])]
    assert as_lists(search(tracks, np.array([0.0, 1.0], np.float32), 5)) == [([2, 3], [1.0, 0.8])]
    store.conn.execute("update meta set value = ? where key = 'vector_log_since'", [str(store.generation + 1)])
    with store.write():
        store.remove_tracks([2])
    with pytest.raises(AssertionError, match="rebuilt from every vector"):  # no log back that far: a full rebuild
        cache.get("tracks")


def test_the_exact_index_answers_the_protocol_exactly(small):
    assert small.ntotal == 4 and not small.approximate and not small.lists_windows
    ids, scores = small.candidates(Q1, 3)
    assert ids.tolist() == [20, 10, 40] and np.allclose(scores, [0.96, 0.8, 0.36])
    ids, scores = small.candidates(Q1, 10, widen=4, passes=lambda c: c != 10)  # no lists to widen
    assert ids.tolist() == [20, 40, 30] and np.allclose(scores, [0.96, 0.36, 0.0])
    assert small.coarse(Q1, 2).tolist() == [20, 10]
    assert small.candidates(Q1, 0)[0].tolist() == [] and build(IDS[:0], VECS[:0], 3).candidates(Q1, 5)[0].tolist() == []
    assert small.owner_of(np.array([10, 20])) is None  # windows are listed from SQLite
    assert small.best_windows(Q1, np.array([1, 2]), 2) is None
