"""The approximate index (musicsearch/vectors/approx.py): chosen by size with its recall
recorded, filters that keep k, candidates filtered before the re-rank, the exact fallback,
updates in place (state only until enough changed, replayed by a reader), retraining on
drift, windows scored by track, and the sidecar prefetched when read from disk."""

import faiss
import numpy as np
import pytest

from musicsearch import vectors
from musicsearch.filters import Filters
from musicsearch.store import Store
from musicsearch.vectors import VectorIndexes, approx, files, index_path, search

DIM = 32
SMALL = vectors.ScalePolicy(exact_max={"tracks": 500, "windows": 1500}, tune_queries=40)


def exact_ids(store, kind, queries, k=10, allowed=None):
    ids, vecs = store.track_vectors() if kind == "tracks" else store.all_window_vectors()
    if allowed is not None:
        keep = np.isin(ids, allowed)
        ids, vecs = ids[keep], vecs[keep]
    return [ids[np.argsort(-(vecs @ q), kind="stable")[:k]] for q in queries]


def test_the_index_is_chosen_by_size_and_its_recall_recorded(big, store, as_lists):
    assert isinstance(VectorIndexes(store, SMALL).get("tracks"), vectors.FlatIndex)  # 2 tracks: exact, as before
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


def test_candidates_filtered_before_the_re_rank_are_those_filtered_after_it(big, monkeypatch, r6):
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
    monkeypatch.setattr(files, "build_approx", lambda *a, **kw: rebuilt.append(a[1]) or real(*a, **kw))
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


def ivf_ids(index):
    ivf = faiss.extract_index_ivf(index)
    parts = [np.zeros(0, np.int64)]
    for lst in range(ivf.nlist):
        n = ivf.invlists.list_size(lst)
        if n:
            parts.append(faiss.rev_swig_ptr(ivf.invlists.get_ids(lst), n).copy())
    return np.sort(np.concatenate(parts)).tolist()


def test_updates_write_only_the_state_until_enough_changed_and_a_reader_replays_them(
    big, clustered_records, as_lists, faiss_files
):
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


def test_an_approximate_index_read_from_disk_prefetches_its_sidecar(big, monkeypatch):
    VectorIndexes(big, SMALL).get("tracks")  # built (its sidecar just written: in the page cache)
    asked = []
    monkeypatch.setattr(approx, "prefetch", lambda path, share: asked.append((path.name, share)))
    again = VectorIndexes(Store(big.dir), SMALL).get("tracks")  # another process opens it
    assert asked == [(f"{again.state.sidecar}.f16", SMALL.prefetch)]
    asked.clear()
    VectorIndexes(Store(big.dir), vectors.ScalePolicy(**{**SMALL.__dict__, "prefetch": 0.0})).get("tracks")
    assert asked == []
