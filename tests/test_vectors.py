import sys
from pathlib import Path

import faiss
import numpy as np
import pytest

from musicsearch import vectors
from musicsearch.filters import Filters
from musicsearch.store import IndexMeta, Store, TrackRecord
from musicsearch.vectors import VectorIndexes, build, index_path, load, load_or_build, range_search, save, search

IDS = np.array([10, 20, 30, 40], dtype=np.int64)
VECS = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 0.6, 0.8]], dtype=np.float32)
Q1 = np.array([0.8, 0.6, 0], dtype=np.float32)  # scores 0.8, 0.96, 0, 0.36
Q2 = np.array([0, 0, 1], dtype=np.float32)  # scores 0, 0, 1, 0.8


@pytest.fixture
def small():
    return build(IDS, VECS, 3)


def r6(scores):
    return np.round(np.asarray(scores, np.float64), 6).tolist()


def as_lists(result):
    return [(ids.tolist(), r6(scores)) for ids, scores in result]


def test_search_exact_ids_and_scores(small):
    assert small.ntotal == 4
    assert as_lists(search(small, np.stack([Q1, Q2]), 2)) == [([20, 10], [0.96, 0.8]), ([30, 40], [1.0, 0.8])]
    assert as_lists(search(small, Q1, 3)) == [([20, 10, 40], [0.96, 0.8, 0.36])]  # one (dim,) query


def test_selector_restricts_results(small):
    assert as_lists(search(small, Q1, 4, allowed=np.array([10, 30]))) == [([10, 30], [0.8, 0.0])]
    assert as_lists(search(small, Q1, 4, allowed=np.array([], dtype=np.int64))) == [([], [])]


def test_padding_is_dropped_when_k_exceeds_what_exists(small):
    assert as_lists(search(small, Q1, 10)) == [([20, 10, 40, 30], [0.96, 0.8, 0.36, 0.0])]
    # 99 is not in the index: FAISS pads the third slot with -1, which must not come back
    allowed = np.array([10, 40, 99])
    _scores, ids = small.search(Q1.reshape(1, -1), 3, params=_params(allowed))
    assert ids[0].tolist() == [10, 40, -1]  # what FAISS itself returns
    assert as_lists(search(small, Q1, 3, allowed=allowed)) == [([10, 40], [0.8, 0.36])]
    assert as_lists(search(build(IDS[:0], VECS[:0], 3), Q1, 5)) == [([], [])]


def _params(allowed):
    params = faiss.SearchParameters()
    params.sel = faiss.IDSelectorBatch(allowed.astype(np.int64))
    _params.keep = params.sel  # keep the selector alive
    return params


def test_range_search(small):
    lims, scores, ids = range_search(small, np.stack([Q1, Q2]), 0.5)
    assert lims.tolist() == [0, 2, 4]
    first = sorted(zip(ids[:2].tolist(), r6(scores[:2])))
    second = sorted(zip(ids[2:].tolist(), r6(scores[2:])))
    assert first == [(10, 0.8), (20, 0.96)] and second == [(30, 1.0), (40, 0.8)]
    lims, scores, ids = range_search(build(IDS[:0], VECS[:0], 3), Q1, 0.5)
    assert lims.tolist() == [0, 0] and len(ids) == 0


def test_atomic_save_leaves_no_temp_files(tmp_path, small, monkeypatch):
    target = tmp_path / "tracks-g1.faiss"
    save(small, target)
    assert [p.name for p in tmp_path.iterdir()] == ["tracks-g1.faiss"]
    before = target.read_bytes()

    def broken(index, path):  # a write that dies half way
        with open(path, "wb") as f:
            f.write(b"half")
        raise RuntimeError("disk full")

    monkeypatch.setattr(faiss, "write_index", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        save(build(IDS[:1], VECS[:1], 3), target)
    assert [p.name for p in tmp_path.iterdir()] == ["tracks-g1.faiss"]
    assert target.read_bytes() == before


def test_mmap_load_gives_the_same_results(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((300, 16)).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = np.arange(300, dtype=np.int64) * 7 + 3
    save(build(ids, x, 16), tmp_path / "a.faiss")
    save(build(ids, x, 16), tmp_path / "b.faiss")
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


def rec(path, vecs):
    vecs = np.asarray(vecs, np.float32)
    n = len(vecs)
    starts = [10.0 * i for i in range(n)]
    return TrackRecord(path, 1, 1, "h" + path, {"title": path}, 10.0 * n, starts, [s + 10 for s in starts], vecs)


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "idx", create=True)
    s.record_meta(IndexMeta.new("m", None, 2, 10.0, checked=False))
    with s.write():
        s.put_track(rec("/a.wav", [[1, 0], [0.6, 0.8]]), "now")
        s.put_track(rec("/b.wav", [[0, 1]]), "now")
    yield s
    s.close()


def faiss_files(store):
    return sorted(p.name for p in store.dir.glob("*.faiss"))


def test_missing_file_is_built_and_older_generations_removed(store):
    g = store.generation
    save(build(IDS, VECS, 3), index_path(store.dir, "tracks", g - 1))
    index = load_or_build(store, "tracks")
    assert index.ntotal == 2 and faiss_files(store) == [f"tracks-g{g}.faiss"]
    assert load(store.dir / f"tracks-g{g}.faiss").ntotal == 2
    windows = load_or_build(store, "windows")
    assert windows.ntotal == 3 and faiss_files(store) == [f"tracks-g{g}.faiss", f"windows-g{g}.faiss"]
    ((ids, scores),) = search(windows, np.array([0, 1], np.float32), 3)
    assert len(ids) == 3 and r6(scores) == [1.0, 0.8, 0.0]
    assert store.windows_by_id(ids[:1].tolist())[int(ids[0])][0] == 2  # the window of /b.wav


def test_stale_file_is_rebuilt(store):
    path = index_path(store.dir, "tracks", store.generation)
    save(build(np.array([1], np.int64), np.array([[1, 0]], np.float32), 2), path)  # one vector, two rows
    assert load(path).ntotal == 1
    assert load_or_build(store, "tracks").ntotal == 2
    assert load(path).ntotal == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "cut_short", "empty"])
def test_damaged_file_is_rebuilt(store, damage):
    path = index_path(store.dir, "tracks", store.generation)
    save(build(np.array([1, 2], np.int64), np.array([[1, 0], [0, 1]], np.float32), 2), path)
    good = path.read_bytes()
    damaged = {
        "garbage": b"\x00\xffnot a faiss index" * 10,
        "truncated": good[: len(good) // 2],
        "cut_short": good[:-8],  # the last id missing
        "empty": b"",
    }
    path.write_bytes(damaged[damage])
    with pytest.raises(RuntimeError):
        load(path)
    index = load_or_build(store, "tracks")
    assert index.ntotal == 2
    ((ids, _scores),) = search(index, np.array([0, 1], np.float32), 1)
    assert ids.tolist() == [2]
    assert load(path).ntotal == 2


def test_read_only_folder_still_answers(store, monkeypatch):
    def refuse(index, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(vectors, "save", refuse)
    index = load_or_build(store, "tracks")
    assert index.ntotal == 2 and faiss_files(store) == []


def test_cache_rereads_only_when_the_generation_moves(store, monkeypatch):
    reads = []
    real = vectors._load_or_build
    monkeypatch.setattr(
        vectors, "_load_or_build", lambda s, kind, g, *more: reads.append((kind, g)) or real(s, kind, g, *more)
    )
    cache = VectorIndexes(store)
    first = cache.get("tracks")
    assert cache.get("tracks") is first and reads == [("tracks", store.generation)]
    with store.write():
        store.put_track(rec("/c.wav", [[0.6, 0.8]]), "now")
    assert cache.get("tracks").ntotal == 3 and len(reads) == 2
    with store.write(vectors=False):
        store.set_tags(1, [("genre", "rock", 0.5)])
    cache.get("tracks")
    assert len(reads) == 2  # tags change no vector: the index stays
    with pytest.raises(ValueError, match="kind"):
        cache.get("albums")


# approximate indexes (chosen by size), updated in place, filters that keep k ------------------

SMALL = vectors.ScalePolicy(exact_max={"tracks": 500, "windows": 1500}, tune_queries=40)
DIM = 32


@pytest.fixture
def big(tmp_path, clustered_store):
    s = clustered_store(tmp_path / "big", dim=DIM)
    yield s
    s.close()


def exact_ids(store, kind, queries, k=10, allowed=None):
    ids, vecs = store.track_vectors() if kind == "tracks" else store.all_window_vectors()
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, vecs = ids[keep], vecs[keep]
    return [ids[np.argsort(-(vecs @ q), kind="stable")[:k]] for q in queries]


def test_the_index_is_chosen_by_size_and_its_recall_recorded(big, store):
    assert isinstance(VectorIndexes(store, SMALL).get("tracks"), faiss.Index)  # 2 tracks: exact, as before
    assert vectors.describe(store, "tracks").family == "exact"
    cache = VectorIndexes(big, SMALL)
    tracks, windows = cache.get("tracks"), cache.get("windows")
    assert isinstance(tracks, vectors.ApproxIndex) and isinstance(windows, vectors.ApproxIndex)
    assert tracks.state.factory == "IVF178,PQ8x4fsr" and windows.state.factory == "IVF309,PQ8x4fsr"
    state = vectors.describe(big, "tracks")
    assert state == tracks.state and state.family == "ivf" and state.n == 2000
    assert state.recall_at_10 >= SMALL.target_recall and 1 <= state.nprobe <= 256
    queries = vectors.ood_queries(big.track_vectors()[1], 30, seed=5)  # other queries than the tuning ones
    for kind, index in (("tracks", tracks), ("windows", windows)):
        assert vectors.recall_at(search(index, queries, 10), exact_ids(big, kind, queries)) >= 0.97
    # read back from its files: the same answers
    again = VectorIndexes(Store(big.dir), SMALL).get("tracks")
    assert isinstance(again, vectors.ApproxIndex) and again.state == tracks.state
    assert as_lists(search(again, queries, 10)) == as_lists(search(tracks, queries, 10))


@pytest.mark.parametrize("years", [(1000, 1000), (1000, 1009), (1000, 1059)])  # 1 %, 10 %, 60 %
def test_filters_keep_k_on_an_approximate_index(big, years):
    index = VectorIndexes(big, SMALL).get("tracks")
    allowed = big.filtered_ids(Filters(year=years))
    assert len(allowed) == 20 * (years[1] - years[0] + 1)
    queries = vectors.ood_queries(big.track_vectors()[1], 20, seed=7)
    found = search(index, queries, 10, allowed)
    assert all(len(ids) == 10 and set(ids.tolist()) <= set(allowed.tolist()) for ids, _ in found)
    assert vectors.recall_at(found, exact_ids(big, "tracks", queries, allowed=allowed)) >= 0.97
    assert [len(ids) for ids, _ in search(index, queries[:2], 50, allowed[:15])] == [15, 15]  # all there are


def test_candidates_filtered_before_the_re_rank_are_those_filtered_after_it(big, monkeypatch):
    index = VectorIndexes(big, SMALL).get("tracks")
    allowed = big.filtered_ids(Filters(year=(1000, 1009)))  # 10 %
    q = vectors.ood_queries(big.track_vectors()[1], 1, seed=17)[0]
    ids, scores = index.candidates(q, 800)
    keep = np.isin(ids, allowed)
    read = []
    real = index.sidecar.gather
    monkeypatch.setattr(index.sidecar, "gather", lambda rows: read.append(len(rows)) or real(rows))
    got_ids, got_scores = index.candidates(q, 800, passes=lambda c: np.isin(c, allowed))
    assert got_ids.tolist() == ids[keep].tolist() and r6(got_scores) == r6(scores[keep])
    assert read == [int(keep.sum())] and 0 < read[0] < len(ids) // 4  # only the candidates that pass were read
    coarse = index.coarse(q, 800)
    assert len(coarse) == len(ids) and set(coarse.tolist()) == set(ids.tolist())  # the same candidates, not re-ranked


def test_filtered_search_falls_back_to_exact_when_ivf_gives_fewer_than_k(big):
    index = VectorIndexes(big, SMALL).get("tracks")
    index.policy = vectors.ScalePolicy(exact_subset_max=0.0)  # force the IVF path
    index.rerank = 1
    index.state = vectors.IndexState(**{**index.state.__dict__, "nprobe": 1})
    allowed = big.filtered_ids(Filters(year=(1000, 1001)))  # 40 tracks spread over the lists
    queries = vectors.ood_queries(big.track_vectors()[1], 5, seed=3)
    assert any(len(ids) < 10 for ids, _ in index._ivf_search(queries, 10, 1, allowed))  # the bad case exists
    assert all(len(ids) == 10 for ids, _ in search(index, queries, 10, allowed))


def test_adding_and_removing_tracks_updates_in_place(big, monkeypatch, clustered_records):
    cache = VectorIndexes(big, SMALL)
    before = {kind: cache.get(kind).state for kind in vectors.KINDS}
    rebuilt = []
    real = vectors.build_approx
    monkeypatch.setattr(vectors, "build_approx", lambda *a, **kw: rebuilt.append(a[1]) or real(*a, **kw))
    with big.write():
        big.add_tracks(clustered_records(2000, 2100, DIM), "now")
    with big.write():
        big.remove_tracks(range(1, 51))
    with big.write():  # re-embedded in place: same track id, new vectors
        big.put_track(clustered_records(70, 71, DIM, seed=5)[0], "now")
    for kind in vectors.KINDS:
        index = cache.get(kind)
        st = index.state
        assert st.generation == big.generation and index.ntotal == big.counts()[kind]
        assert (st.sidecar, st.trained_n, st.factory) == (
            before[kind].sidecar,
            2000 * (1 if kind == "tracks" else 3),
            before[kind].factory,
        )
    assert rebuilt == []
    queries = vectors.ood_queries(big.track_vectors()[1], 30, seed=9)
    found = search(cache.get("tracks"), queries, 10)
    assert vectors.recall_at(found, exact_ids(big, "tracks", queries)) >= 0.97
    assert not set(np.concatenate([ids for ids, _ in found]).tolist()) & set(range(1, 51))
    _ids, vecs = big.track_vectors([71])  # track /t70.wav kept id 71
    ((top, score),) = search(cache.get("tracks"), vecs, 1)
    assert top.tolist() == [71] and round(float(score[0]), 3) == 1.0  # its new vector, from the sidecar
    assert big.conn.execute("select count(*) from vector_log").fetchone()[0] == 0  # pruned once both were saved
    # a fresh process brings the files forward from disk the same way
    with big.write():
        big.remove_tracks([60])
    assert VectorIndexes(Store(big.dir), SMALL).get("tracks").ntotal == big.counts()["tracks"] and rebuilt == []


def test_drift_or_a_missing_log_retrains(big, clustered_records):
    cache = VectorIndexes(big, SMALL)
    first = cache.get("tracks").state
    with big.write():
        big.add_tracks(clustered_records(2000, 8100, DIM), "now")  # grown more than 4x since training
    st = cache.get("tracks").state
    assert st.sidecar != first.sidecar and st.trained_n == 8100
    with big.write():
        big.remove_tracks([1])
    big.conn.execute("update meta set value = ? where key = 'vector_log_since'", [str(big.generation)])
    big.conn.commit()
    st2 = VectorIndexes(big, SMALL).get("tracks").state
    assert st2.sidecar == f"tracks-e{big.generation}" and st2.trained_n == 8099


def test_a_killed_update_leaves_the_last_good_index_in_use(big, monkeypatch, clustered_records):
    cache = VectorIndexes(big, SMALL)
    good = cache.get("tracks").state
    with big.write():
        big.add_tracks(clustered_records(2000, 2010, DIM), "now")

    def killed(self, folder):
        raise KeyboardInterrupt  # dies after the sidecar append and the index file, before the state

    monkeypatch.setattr(vectors.IndexState, "write", killed)
    with pytest.raises(KeyboardInterrupt):
        VectorIndexes(big, SMALL).get("tracks")
    monkeypatch.undo()
    assert not vectors.state_path(big.dir, "tracks", big.generation).exists()  # not in use: no state
    f16, _ = vectors.Sidecar.paths(big.dir, good.sidecar)
    assert f16.stat().st_size > good.rows * DIM * 2  # the dead run's rows are there...
    index = VectorIndexes(Store(big.dir), SMALL).get("tracks")
    assert index.ntotal == 2010 and index.state.rows == good.rows + 10  # ...and were cut off, then rewritten
    assert f16.stat().st_size == index.state.rows * DIM * 2


def test_an_exact_index_is_updated_in_place_not_reread_from_sqlite(store, monkeypatch):
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


def test_sidecar_later_rows_win_and_each_track_lists_its_windows(tmp_path):
    vecs = np.eye(8, dtype=np.float32)[:, :4]
    rows = vectors.Sidecar.append(
        tmp_path, "w", 4, 0, iter([(np.array([1, 2, 3]), vecs[:3], np.array([10, 10, 11]))]), owners=True
    )
    sc = vectors.Sidecar(tmp_path, "w", 4, rows)
    # track 10 re-embedded (windows 1, 2 -> 4, 5), window 3 of track 11 written again
    chunk = (np.array([3, 4, 5]), vecs[3:6], np.array([11, 10, 10]))
    rows = vectors.Sidecar.append(tmp_path, "w", 4, rows, iter([chunk]), owners=True)
    sc.extend(rows)
    fresh = vectors.Sidecar(tmp_path, "w", 4, rows)
    for s in (sc, fresh):
        got, found = s.rows_of(np.array([1, 2, 3, 4, 5, 9, -1]))
        assert got[found].tolist() == [0, 1, 3, 4, 5] and found.tolist() == [True] * 5 + [False, False]
        listed = s.track_rows(np.array([10, 11, 12]))
        assert listed is not None
        assert [a.tolist() for a in listed] == [[4, 5, 3], [0, 2], [10, 11]]
        assert s.owner_of(np.array([5, 3, 9])).tolist() == [10, 11, -1]
        assert s.gather(np.array([3, 0])).tolist() == [vecs[3].tolist(), vecs[0].tolist()]
    # track 10 re-embedded again, its new windows reusing ids 4, 5 (SQLite gives max(id) + 1): rows 6, 7 follow
    # rows 4, 5 of the same track, yet are a run of their own, not one of four windows
    rows = vectors.Sidecar.append(
        tmp_path, "w", 4, rows, iter([(np.array([4, 5]), vecs[6:8], np.array([10, 10]))]), owners=True
    )
    sc.extend(rows)
    for s in (sc, vectors.Sidecar(tmp_path, "w", 4, rows)):
        listed = s.track_rows(np.array([10]))
        assert listed is not None and [a.tolist() for a in listed] == [[6, 7], [0], [10]]
    # a sidecar written before owners existed has none: nothing is guessed
    vectors.Sidecar.append(tmp_path, "t", 4, 0, iter([(np.array([1]), vecs[:1])]))
    old = vectors.Sidecar(tmp_path, "t", 4, 1)
    assert old.track_rows(np.array([1])) is None and old.owner_of(np.array([1])) is None


def ivf_ids(index):
    ivf = faiss.extract_index_ivf(index)
    parts = [np.zeros(0, np.int64)]
    for lst in range(ivf.nlist):
        n = ivf.invlists.list_size(lst)
        if n:
            parts.append(faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), n).copy())
    return np.sort(np.concatenate(parts)).tolist()


def test_updates_write_only_the_state_until_enough_changed_and_a_reader_replays_them(big, clustered_records):
    policy = vectors.ScalePolicy(**{**SMALL.__dict__, "resave": 0.2})
    cache = VectorIndexes(big, policy)
    first = {kind: cache.get(kind).state for kind in vectors.KINDS}
    files = faiss_files(big)
    with big.write():
        big.add_tracks(clustered_records(2000, 2100, DIM), "now")
    with big.write():
        big.remove_tracks(range(1, 51))
    with big.write():
        big.put_track(clustered_records(70, 71, DIM, seed=5)[0], "now")
    queries = vectors.ood_queries(big.track_vectors()[1], 30, seed=9)
    for kind in vectors.KINDS:
        index = cache.get(kind)
        st = index.state
        assert (st.generation, st.base, st.file_generation) == (big.generation, first[kind].generation, st.base)
        assert st.pending == len(big.changed_ids(kind, first[kind].generation))
        assert vectors.state_path(big.dir, kind, big.generation).exists()
        ids = big.track_vectors()[0] if kind == "tracks" else big.all_window_vectors()[0]
        assert ivf_ids(index.index) == ids.tolist()
        # a fresh process reads the base file and replays the log: the same index, the same answers
        again = VectorIndexes(Store(big.dir), policy).get(kind)
        assert again.state == st and ivf_ids(again.index) == ids.tolist()
        assert as_lists(search(again, queries, 10)) == as_lists(search(index, queries, 10))
        # ...as the same trained index filled from scratch with today's vectors
        fresh = faiss.clone_index(index.index)
        fresh.reset()
        rows, found = index.sidecar.rows_of(ids)
        assert found.all()
        fresh.add_with_ids(index.sidecar.gather(rows), ids)
        rebuilt = vectors.ApproxIndex(fresh, st, index.sidecar, policy)
        # every vector of the probed lists re-ranked: 4-bit fast-scan distances tie, and which of two tied
        # candidates makes the cut depends on the order within a list, which updates change
        rebuilt.rerank = index.rerank = index.ntotal
        assert as_lists(search(rebuilt, queries, 10)) == as_lists(search(index, queries, 10))
        index.rerank = st.rerank
    assert faiss_files(big) == files  # no index file written again
    assert big.conn.execute("select min(generation) from vector_log").fetchone()[0] > first["tracks"].generation
    # past the resave share the whole file is written again and the log pruned
    with big.write():
        big.remove_tracks(range(51, 600))
    for kind in vectors.KINDS:
        st = cache.get(kind).state
        assert (st.base, st.pending) == (0, 0) and index_path(big.dir, kind, big.generation).exists()
    assert faiss_files(big) == [f"tracks-g{big.generation}.faiss", f"windows-g{big.generation}.faiss"]
    assert big.conn.execute("select count(*) from vector_log").fetchone()[0] == 0


def test_a_narrow_filter_by_window_scores_every_window_of_the_matching_tracks(big):
    index = VectorIndexes(big, SMALL).get("windows")
    assert isinstance(index, vectors.ApproxIndex)
    tracks = big.filtered_ids(Filters(year=(1000, 1001)))  # 40 tracks, 120 windows
    queries = vectors.ood_queries(big.track_vectors()[1], 10, seed=13)
    windows = {
        tid: v.astype(np.float16).astype(np.float32) for tid, (_s, _e, v) in big.window_vectors(tracks.tolist()).items()
    }
    for q in queries:
        best = index.best_windows(q, tracks, 10)
        assert best is not None and len(best) == 10
        exact = sorted(((float(np.max(v @ q)), tid) for tid, v in windows.items()), reverse=True)[:10]
        assert [tid for tid, _w, _s in best] == [tid for _s, tid in exact]  # the sidecar's float16 vectors
        assert np.allclose([s for _t, _w, s in best], [s for s, _t in exact], atol=1e-5)
        info = big.windows_by_id(w for _t, w, _s in best)
        assert [info[w][0] for _t, w, _s in best] == [tid for tid, _w, _s in best]  # each window is its track's


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_gather_leaves_no_sidecar_pages_resident(tmp_path, monkeypatch):
    def rss_file_kb():
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(status["RssFile"].split()[0])

    n, dim = 40_000, 512  # 40 MB of float16
    rng = np.random.default_rng(0)
    chunks = (
        (np.arange(a, a + 10_000), rng.standard_normal((10_000, dim)).astype(np.float16)) for a in range(0, n, 10_000)
    )
    rows = vectors.Sidecar.append(tmp_path, "v", dim, 0, chunks)
    sc = vectors.Sidecar(tmp_path, "v", dim, rows)
    (tmp_path / "v.f16").read_bytes()  # in the page cache, as on a serving machine
    picks = [np.sort(rng.choice(n, 2000, replace=False)) for _ in range(3)]
    expected = [sc.vectors[p].astype(np.float32) for p in picks]
    sc.release()
    before = rss_file_kb()
    got = [sc.gather(picks[0])]  # preadv: nothing mapped
    kept = rss_file_kb() - before
    monkeypatch.setattr(sc, "_fd", -1)  # where preadv is missing: the mapping, released after each block
    before = rss_file_kb()
    got.append(sc.gather(picks[1]))
    kept_mapped = rss_file_kb() - before
    monkeypatch.setattr(sc, "release", lambda: None)  # the bad case: pages stay mapped
    before = rss_file_kb()
    got.append(sc.gather(picks[2]))
    unreleased = rss_file_kb() - before
    assert kept < 1024 and kept_mapped < 1024
    assert unreleased > 2000 * dim * 2 // 1024  # at least the rows themselves stay resident
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))


def test_a_gather_reads_runs_of_rows_in_any_order_with_repeats(tmp_path):
    dim = 8
    vecs = np.arange(100 * dim, dtype=np.float16).reshape(100, dim) / 8
    rows = vectors.Sidecar.append(tmp_path, "v", dim, 0, iter([(np.arange(100), vecs)]))
    sc = vectors.Sidecar(tmp_path, "v", dim, rows)
    picks = np.array([5, 6, 7, 99, 0, 6, 50, 51, 3, 4], np.int64)  # runs, a repeat, both ends, unsorted
    assert np.array_equal(sc.gather(picks), vecs[picks].astype(np.float32))
    assert sc.gather(np.zeros(0, np.int64)).shape == (0, dim)
    with pytest.raises(IndexError):
        sc.gather(np.array([100]))


@pytest.mark.parametrize("years", [None, (1000, 1009), (1000, 1003)])  # unfiltered, 10 %, 4 % (narrow)
def test_by_window_on_approximate_indexes_scores_the_windows_of_the_best_tracks(big, years, monkeypatch):
    from musicsearch import vector_search as search
    from musicsearch.vector_search import search_vector

    # a narrow filter matching more than EXACT_WINDOWS_MAX tracks scores the windows of its 40 best by mean
    monkeypatch.setattr(search, "EXACT_WINDOWS_MAX", 50)
    monkeypatch.setattr(search, "VIA_TRACKS", 40)
    cache = VectorIndexes(big, SMALL)
    assert isinstance(cache.get("tracks"), vectors.ApproxIndex) and isinstance(
        cache.get("windows"), vectors.ApproxIndex
    )
    where = None if years is None else Filters(year=years)
    allowed = big.filtered_ids(where).tolist()
    windows = {tid: v for tid, (_s, _e, v) in big.window_vectors(allowed).items()}
    listed = []  # the windows IVF index is not searched: every window of the candidate tracks is scored
    real = cache.get("windows").candidates
    cache.get("windows").candidates = lambda *a, **kw: listed.append(1) or real(*a, **kw)
    recalls = []
    for q in vectors.ood_queries(big.track_vectors()[1], 20, seed=21):
        hits = search_vector(big, cache.get, q, 10, filters=where, by="window")
        exact = sorted(windows, key=lambda t: -float(np.max(windows[t] @ q)))[:10]
        assert len(hits) == 10 and {h.track.id for h in hits} <= set(allowed)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        for h in hits:  # each hit's segment is its best window, scored from the float16 sidecar
            assert abs(h.score - float(np.max(windows[h.track.id] @ q))) < 2e-3
        recalls.append(len({h.track.id for h in hits} & set(exact)) / 10)
    assert np.mean(recalls) >= 0.97 and listed == []


def test_an_approximate_index_read_from_disk_prefetches_its_sidecar(big, monkeypatch):
    VectorIndexes(big, SMALL).get("tracks")  # built (its sidecar just written: in the page cache)
    asked = []
    monkeypatch.setattr(vectors, "prefetch", lambda path, share: asked.append((path.name, share)))
    again = VectorIndexes(Store(big.dir), SMALL).get("tracks")  # another process opens it
    assert asked == [(f"{again.state.sidecar}.f16", SMALL.prefetch)]
    asked.clear()
    VectorIndexes(Store(big.dir), vectors.ScalePolicy(**{**SMALL.__dict__, "prefetch": 0.0})).get("tracks")
    assert asked == []


def test_prefetch_reads_the_file_and_skips_one_too_large(tmp_path, monkeypatch):
    path = tmp_path / "v.f16"
    path.write_bytes(b"\0" * 2500)
    reads = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def readinto(self, buf):
            n = self.f.readinto(buf)
            reads.append(n)
            return n

    monkeypatch.setattr("builtins.open", lambda p, *a, **kw: Counting(real_open(p, *a, **kw)))
    monkeypatch.setattr(vectors, "PREFETCH_CHUNK", 1000)
    monkeypatch.setattr(vectors, "memory_available", lambda: 10_000)
    thread = vectors.prefetch(path, 0.5)
    assert thread is not None
    thread.join(5)
    assert reads == [1000, 1000, 500, 0] * 2  # the whole file, chunk by chunk, twice
    reads.clear()
    assert vectors.prefetch(path, 0.2) is None and reads == []  # 2,500 bytes > 0.2 x 10,000
    monkeypatch.setattr(vectors, "memory_available", lambda: None)
    assert vectors.prefetch(path, 0.5) is None
