"""The vector search (musicsearch/vectors/query.py), filters at scale: year, duration, text
substring and track-id filters evaluated in numpy over the store's filter columns give
exactly what SQLite gives, and filtered searches on approximate indexes
find the exact filtered answers without listing ids in SQLite; by window on approximate
indexes, the windows of the best tracks are scored."""

import numpy as np
import pytest

from musicsearch import MusicIndex, vectors
from musicsearch.errors import MusicSearchError
from musicsearch.filters import Filters
from musicsearch.store import TrackRecord
from musicsearch.vectors import VectorIndexes, query
from musicsearch.vectors.query import _Matching, search_vector

DIM = 32
SMALL = vectors.ScalePolicy(exact_max={"tracks": 500, "windows": 1500}, tune_queries=40)


@pytest.fixture
def big(tmp_path, clustered_store):
    s = clustered_store(tmp_path / "big", dim=DIM, gaps=True)
    yield s
    s.close()


def test_numeric_text_and_id_filters_are_matched_in_numpy_globs_and_tags_in_sqlite(big):
    for columnar in (
        Filters(year=(1990, 1999)),
        Filters(year=(1990, 1999), min_duration=60, max_duration=300.5),
        Filters(year=(1990, 1999), genre="rock"),
        Filters(min_duration=60, exclude_genres="rock"),
        Filters(year=(1990, 1999), track_ids=(1, 2)),
        Filters(artist="x", album="y", exclude_artists="z"),
    ):
        assert _Matching(big, columnar).mask is not None
    for other in (Filters(year=(1990, 1999), path="/t1*"), Filters(genre="rock", tags="calm"), Filters()):
        assert _Matching(big, other).mask is None


@pytest.mark.parametrize(
    "filters",
    [
        Filters(year=(1010, 1019)),
        Filters(year=(1007, 1007)),
        Filters(min_duration=33),
        Filters(year=(1000, 1049), min_duration=31, max_duration=34),
        Filters(year=(3000, 3001)),  # none
    ],
)
def test_numeric_filters_in_numpy_equal_sqlite(big, filters):
    fast, slow = _Matching(big, filters), _Matching(big, filters, columnar=False)
    assert fast.mask is not None and slow.mask is None  # the numpy path fires, the other stays in SQLite
    sql_ids = np.sort(big.filtered_ids(filters))
    assert fast.ids().tolist() == sorted(slow.ids().tolist()) == sql_ids.tolist()
    for cap in (1, 5, 10_000):
        assert fast.count(cap) == slow.count(cap) == min(len(sql_ids), cap)
    probe = np.array([7, 3, 57, 5, 999, 1500, 1999, 2500, -1, 3, 10, 17], np.int64)  # unknown year, no such id...
    assert fast.passing(probe).tolist() == slow.passing(probe).tolist() == sorted(set(probe) & set(sql_ids.tolist()))


@pytest.mark.parametrize(
    "filters",
    [
        Filters(year=(1010, 1019), genre="jazz"),
        Filters(genre="JAZ"),
        Filters(exclude_genres="rock", min_duration=33),
        Filters(genre="rock", track_ids=(1, 2, 3, 4, 5, 6, 7, 2500)),
    ],
)
def test_text_filters_in_numpy_equal_sqlite(big, filters):
    fast, slow = _Matching(big, filters), _Matching(big, filters, columnar=False)
    assert fast.mask is not None and slow.mask is None
    sql_ids = np.sort(big.filtered_ids(filters))
    assert fast.ids().tolist() == sorted(slow.ids().tolist()) == sql_ids.tolist()
    for cap in (1, 5, 10_000):
        assert fast.count(cap) == slow.count(cap) == min(len(sql_ids), cap)
    probe = np.array([7, 3, 57, 5, 999, 1500, 1999, 2500, -1, 3, 10, 17], np.int64)
    assert fast.passing(probe).tolist() == slow.passing(probe).tolist() == sorted(set(probe) & set(sql_ids.tolist()))


def test_a_text_filter_matches_its_tracks(big):
    m = _Matching(big, Filters(year=(1010, 1019), genre="jazz"))
    assert m.mask is not None
    assert sorted(m.ids().tolist()) == [
        i + 1 for i in range(2000) if i % 3 == 0 and i % 50 != 7 and 10 <= i % 100 <= 19
    ]


def test_filter_columns_follow_the_generation(big, clustered_records, rec):
    first = big.filter_columns()
    assert first is not None and big.filter_columns() is first  # read once per generation
    assert first.year[11] == 1010 and np.isnan(first.year[8]) and first.duration[11] == 33.0  # id = i + 1
    rec = clustered_records(10, 11, DIM, gaps=True)[0]
    with big.write():
        big.put_track(
            TrackRecord(rec.path, 0, 0, "h2", {"title": "t", "year": 1500}, 99.0, rec.starts, rec.ends, rec.vectors),
            "now",
        )
    again = big.filter_columns()
    assert again is not first and again.year[11] == 1500 and again.duration[11] == 99.0
    assert _Matching(big, Filters(year=(1500, 1500))).ids().tolist() == [11]


def test_a_non_numeric_year_keeps_the_filters_in_sqlite(big, caplog):
    big.conn.execute("update tracks set year = 'unknown' where id = 3")
    assert big.filter_columns() is None and "not a number" in caplog.text
    m = _Matching(big, Filters(year=(1000, 1009)))
    assert m.mask is None
    assert sorted(m.ids().tolist()) == [i + 1 for i in range(2000) if i % 100 < 10 and i % 50 != 7 and i + 1 != 3]


def exact_top(store, q, allowed, k=10, by="track"):
    if by == "track":
        ids, vecs = store.track_vectors(allowed)
        return ids[np.argsort(-(vecs @ q), kind="stable")[:k]].tolist()
    wins = store.window_vectors(allowed)
    best = {t: float(np.max(v @ q)) for t, (_s, _e, v) in wins.items()}
    return sorted(best, key=lambda t: -best[t])[:k]


@pytest.mark.parametrize("by", ["track", "window"])
@pytest.mark.parametrize(
    "where",
    [
        Filters(year=(1000, 1009)),  # 10 %
        Filters(year=(1000, 1001)),  # 2 %
        Filters(year=(1000, 1000)),  # 1 %
        Filters(genre="JAZZ"),  # a third, any case
        Filters(genre="jaz", year=(1000, 1005)),  # 2 %
        Filters(exclude_genres="rock", min_duration=36),  # under 5 %
    ],
)
def test_filtered_search_on_approximate_indexes_equals_exact_without_listing_ids_in_sqlite(big, by, where, monkeypatch):
    cache = VectorIndexes(big, SMALL)
    assert isinstance(cache.get("tracks"), vectors.ApproxIndex)
    assert isinstance(cache.get("windows"), vectors.ApproxIndex)
    allowed = big.filtered_ids(where).tolist()

    def no_sql(*a, **kw):
        raise AssertionError("a year or text filter listed ids in SQLite")

    monkeypatch.setattr(big, "filtered_ids", no_sql)
    recalls = []
    for q in vectors.ood_queries(big.track_vectors()[1], 20, seed=31):
        hits = search_vector(big, cache.get, q, 10, filters=where, by=by)
        assert len(hits) == 10 and {h.track.id for h in hits} <= set(allowed)
        recalls.append(len({h.track.id for h in hits} & set(exact_top(big, q, allowed, by=by))) / 10)
    assert np.mean(recalls) >= 0.98


def test_by_track_segments_are_each_tracks_best_window(big):
    cache = VectorIndexes(big, SMALL)
    q = vectors.ood_queries(big.track_vectors()[1], 1, seed=41)[0]
    hits = search_vector(big, cache.get, q, 10)
    wins = big.window_vectors([h.track.id for h in hits])
    for h in hits:
        starts, ends, v = wins[h.track.id]
        j = int(np.argmax(v @ q))
        assert (h.segment.start, h.segment.end) == (starts[j], ends[j])
        assert abs(h.segment.score - float(v[j] @ q)) < 2e-3


def test_exact_indexes_keep_filters_in_sqlite(big, monkeypatch):
    cache = VectorIndexes(big)  # 2,000 tracks: exact, as below 150k
    assert not isinstance(cache.get("tracks"), vectors.ApproxIndex)

    def no_columns():
        raise AssertionError("an exact index read the filter columns")

    monkeypatch.setattr(big, "filter_columns", no_columns)
    where = Filters(year=(1000, 1009))
    allowed = big.filtered_ids(where).tolist()
    q = vectors.ood_queries(big.track_vectors()[1], 1, seed=43)[0]
    for by in ("track", "window"):
        hits = search_vector(big, cache.get, q, 10, filters=where, by=by)
        assert [h.track.id for h in hits] == exact_top(big, q, allowed, by=by)


@pytest.fixture
def plain_big(tmp_path, clustered_store):
    s = clustered_store(tmp_path / "plain", dim=DIM)
    yield s
    s.close()


@pytest.mark.parametrize("years", [None, (1000, 1009), (1000, 1003)])  # unfiltered, 10 %, 4 % (narrow)
def test_by_window_on_approximate_indexes_scores_the_windows_of_the_best_tracks(plain_big, years, monkeypatch):
    # a narrow filter matching more than EXACT_WINDOWS_MAX tracks scores the windows of its 40 best by mean
    monkeypatch.setattr(query, "EXACT_WINDOWS_MAX", 50)
    monkeypatch.setattr(query, "VIA_TRACKS", 40)
    cache = VectorIndexes(plain_big, SMALL)
    assert isinstance(cache.get("tracks"), vectors.ApproxIndex) and isinstance(
        cache.get("windows"), vectors.ApproxIndex
    )
    where = None if years is None else Filters(year=years)
    allowed = plain_big.filtered_ids(where).tolist()
    windows = {tid: v for tid, (_s, _e, v) in plain_big.window_vectors(allowed).items()}
    listed = []  # the windows IVF index is not searched: every window of the candidate tracks is scored
    real = cache.get("windows").candidates
    cache.get("windows").candidates = lambda *a, **kw: listed.append(1) or real(*a, **kw)
    recalls = []
    for q in vectors.ood_queries(plain_big.track_vectors()[1], 20, seed=21):
        hits = search_vector(plain_big, cache.get, q, 10, filters=where, by="window")
        exact = sorted(windows, key=lambda t: -float(np.max(windows[t] @ q)))[:10]
        assert len(hits) == 10 and {h.track.id for h in hits} <= set(allowed)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        for h in hits:  # each hit's segment is its best window, scored from the float16 sidecar
            assert abs(h.score - float(np.max(windows[h.track.id] @ q))) < 2e-3
        recalls.append(len({h.track.id for h in hits} & set(exact)) / 10)
    assert np.mean(recalls) >= 0.97 and listed == []


# -- moved from test_search_features.py ------------------------------------------------


def test_duplicates_groups_same_recordings(tmp_path, fake, write_audio, tone, noise):
    root = tmp_path / "lib"
    x = noise(12, seed=1) * 0.1 + tone(600, 12)
    write_audio(root / "a.wav", x)
    write_audio(root / "copy" / "a.flac", x)
    write_audio(root / "copy" / "a again.ogg", x)
    write_audio(root / "b.wav", tone(150, 12))
    write_audio(root / "b2.wav", tone(150, 11))
    write_audio(root / "c.wav", tone(2400, 12))
    idx = MusicIndex(tmp_path / "i", embedder=fake)
    idx.index(root)
    groups = idx.duplicates(0.995)
    assert [len(g) for g in groups] == [3, 2]
    assert {t.path.split("/lib/")[1] for t, _ in groups[0]} == {"a.wav", "copy/a.flac", "copy/a again.ogg"}
    assert all(s >= 0.995 for g in groups for _, s in g)
    assert idx.duplicates(1.01 - 0.02) == groups
    with pytest.raises(MusicSearchError):
        idx.duplicates(2)


@pytest.fixture(scope="module")
def ivf(tmp_path_factory):
    """A store of 2,000 tracks of 2 windows (years 1000-1099) whose track and window indexes are
    both approximate (IVF), built once for the module: the tests below only read it."""
    from musicsearch import vectors
    from musicsearch.store import IndexMeta, Store, TrackRecord

    dim, rng = 32, np.random.default_rng(4)
    centres = rng.standard_normal((40, dim))
    store = Store(tmp_path_factory.mktemp("ivf") / "ivf", create=True)
    store.record_meta(IndexMeta.new("m", None, dim, 10.0, checked=False))
    recs = []
    for i in range(2000):
        v = centres[i % 40] + 0.8 * rng.standard_normal((2, dim))
        v = (v / np.linalg.norm(v, axis=1, keepdims=True)).astype(np.float32)
        recs.append(
            TrackRecord(f"/t{i}", 0, 0, "h", {"title": f"t{i}", "year": 1000 + i % 100}, 20, [0, 10], [10, 20], v)
        )
    with store.write():
        store.add_tracks(recs, "now")
    policy = vectors.ScalePolicy(exact_max={"tracks": 500, "windows": 1000}, tune_queries=30)
    cache = vectors.VectorIndexes(store, policy)
    assert isinstance(cache.get("tracks"), vectors.ApproxIndex) and isinstance(
        cache.get("windows"), vectors.ApproxIndex
    )
    return store, cache


@pytest.mark.parametrize("by", ["track", "window"])
@pytest.mark.parametrize("years", [None, (1000, 1000), (1000, 1004), (1000, 1049)])  # all, 1 %, 5 %, 50 %
def test_filters_keep_k_on_an_ivf_index(ivf, by, years, monkeypatch):
    from musicsearch import vectors
    from musicsearch.vectors.query import search_vector

    store, cache = ivf
    where = None if years is None else Filters(year=years)
    matching = 2000 if years is None else 20 * (years[1] - years[0] + 1)
    allowed = set(store.filtered_ids(where).tolist())
    listed = []  # calls that list every matching window
    real = store.filtered_ids
    monkeypatch.setattr(
        store, "filtered_ids", lambda *a, windows=False, **kw: listed.append(windows) or real(*a, windows=windows, **kw)
    )
    for q in vectors.ood_queries(store.track_vectors()[1], 10, seed=11):
        hits = search_vector(store, cache.get, q, 30, filters=where, by=by)
        assert len(hits) == min(30, matching) and {h.track.id for h in hits} <= allowed
        assert [h.rank for h in hits] == list(range(1, len(hits) + 1))
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
    # a broad filter is applied after an unfiltered search; a narrow one by window scores the windows of the
    # matching tracks, which the sidecar lists: no call lists windows from SQLite
    assert True not in listed
