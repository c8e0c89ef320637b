import shutil

import numpy as np
import pytest

from musicsearch import Filters, MusicIndex, Settings
from musicsearch.errors import MusicSearchError
from musicsearch.filters import parse_duration, parse_year
from musicsearch.playlist import m3u_text
from musicsearch.search.prompts import combine
from musicsearch.search.request import parse_prompt


@pytest.fixture
def idx(tmp_path, catalog, fake):
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake)
    report = index.index(catalog)
    assert len(report.added) == 20
    return index


def titles(hits):
    return [h.track.title for h in hits]


# -- filters ------------------------------------------------------------------


def test_filters_return_exactly_k_when_enough_match(idx):
    # the five 2400 Hz songs are 03, 07 (Jazz) and 11, 15, 19 (Rock)
    hits = idx.search("2400 Hz", k=5, filters=Filters(genre="jazz"))
    assert len(hits) == 5 and all(h.track.genre == "Jazz" for h in hits)
    assert set(titles(hits[:2])) == {"Song 03", "Song 07"}
    assert len(idx.search("2400 Hz", k=10, filters=Filters(genre="JAZZ"))) == 10
    assert len(idx.search("2400 Hz", k=15, filters=Filters(genre="jazz"))) == 10  # only 10 exist


@pytest.mark.parametrize(
    "filters, expected",
    [
        (Filters(artist="ann"), {f"Song {i:02d}" for i in range(1, 20, 2)}),
        (Filters(album="rock alb"), {f"Song {i:02d}" for i in range(10, 20)}),
        (Filters(year=(1993, 1995)), {"Song 03", "Song 04", "Song 05"}),
        (Filters(min_duration=20), {f"Song {i:02d}" for i in range(15, 20)}),
        (Filters(max_duration=7), {"Song 00", "Song 01", "Song 02"}),
        (Filters(min_duration=10, max_duration=11, genre="jazz"), {"Song 05", "Song 06"}),
        (Filters(path="*/rock/song1[0-2].flac"), {"Song 10", "Song 11", "Song 12"}),
        (Filters(artist="nobody"), set()),
    ],
)
def test_each_filter(idx, filters, expected):
    hits = idx.search("600 hz", k=20, filters=filters)
    assert set(titles(hits)) == expected


def test_parse_year_and_duration():
    assert parse_year("1997") == (1997, 1997)
    assert parse_year("1990-1999") == (1990, 1999)
    assert parse_year("1990-") == (1990, 9999) and parse_year("-1999") == (0, 1999)
    assert parse_duration("1:35") == 95 and parse_duration("95.5") == 95.5 and parse_duration("1:02:03") == 3723
    for bad in ("19x0", "1999-1990"):
        with pytest.raises(MusicSearchError):
            parse_year(bad)
    with pytest.raises(MusicSearchError):
        parse_duration("1::2")


# -- ranking modes and prompts -----------------------------------------------


def test_by_window_ranks_a_track_by_its_best_window(tmp_path, fake, write_audio, tone):
    root = tmp_path / "lib"
    write_audio(root / "mostly_low.wav", np.concatenate([tone(150, 40), tone(2400, 10)]))
    write_audio(root / "mid.wav", tone(600, 20))
    idx = MusicIndex(tmp_path / "i", embedder=fake)
    idx.index(root)
    by_window = idx.search("2400 hz", k=2, by="window")
    assert titles(by_window)[0] == "mostly_low"
    assert (by_window[0].segment.start, by_window[0].segment.end) == (40, 50)
    assert by_window[0].score == pytest.approx(1.0, abs=1e-5)
    by_track = idx.search("2400 hz", k=2)
    assert by_track[0].score < 0.6  # the mean of 5 windows, 4 of them low
    assert (by_track[0].segment.start, by_track[0].segment.end) == (40, 50)


def test_by_window_with_filters(idx):
    hits = idx.search("2400 Hz", k=3, by="window", filters=Filters(genre="rock"))
    assert set(titles(hits)) == {"Song 11", "Song 15", "Song 19"}
    assert len(idx.search("150 Hz", k=10, by="window", filters=Filters(genre="rock"))) == 10


def test_weighted_and_negative_prompts(idx):
    both = idx.search(["600 Hz", "1200 Hz"], k=10)
    assert {h.track.title for h in both[:10]} == {f"Song {i:02d}" for i in range(20) if i % 4 in (1, 2)}
    weighted = idx.search(["600 Hz::2", "1200 Hz"], k=10)
    assert all(h.track.title in {f"Song {i:02d}" for i in range(1, 20, 4)} for h in weighted[:5])
    negative = idx.search("600 Hz", k=20, negative=["1200 Hz::1"])
    assert all(int(h.track.title[-2:]) % 4 == 2 for h in negative[-5:])  # 1200 Hz songs sink to the bottom
    assert negative[-1].score < 0 < negative[0].score


def test_parse_prompt_and_combine():
    assert parse_prompt("warm pads::2") == ("warm pads", 2.0)
    assert parse_prompt("a: b", 0.5) == ("a: b", 0.5)
    with pytest.raises(MusicSearchError):
        parse_prompt("  ::2")
    v = np.array([1.0, 0.0], np.float32)
    with pytest.raises(MusicSearchError, match="cancel"):
        combine([(v, 1.0)], [(v, 1.0)])


def test_min_score_drops_weak_hits(idx):
    hits = idx.search("600 Hz", k=20, min_score=0.9)
    assert len(hits) == 5 and all(h.score >= 0.9 for h in hits)
    assert idx.search("600 Hz", k=20, min_score=1.5) == []


def test_m3u(idx):
    hits = idx.search("600 Hz", k=2)
    text = m3u_text(hits)
    lines = text.splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 5
    t = hits[0].track
    assert lines[1] == f"#EXTINF:{round(t.duration)},{t.artist} - {t.title}"
    assert lines[2] == t.path and lines[2].startswith("/")


# -- similar -----------------------------------------------------------------------


def test_similar_to_an_indexed_track_excludes_it(idx, catalog):
    seed = catalog / "jazz" / "song01.flac"  # 600 Hz
    hits = idx.similar(str(seed), k=4)
    assert len(hits) == 4 and str(seed) not in {h.track.path for h in hits}
    assert {h.track.title for h in hits} == {"Song 05", "Song 09", "Song 13", "Song 17"}
    assert titles(idx.similar("Song 01", k=4)) == titles(hits)  # by title
    assert titles(idx.similar("jazz/song01", k=4)) == titles(hits)  # by part of the path
    rock = idx.similar(str(seed), k=3, filters=Filters(genre="rock"))
    assert set(titles(rock[:2])) == {"Song 13", "Song 17"}
    assert all(h.track.genre == "Rock" for h in rock) and len(rock) == 3


def test_similar_to_an_outside_file(idx, tmp_path, fake, write_audio, tone):
    outside = write_audio(tmp_path / "elsewhere" / "clip.ogg", tone(1200, 8))
    hits = idx.similar(str(outside), k=5)
    assert all(int(h.track.title[-2:]) % 4 == 2 for h in hits)


def test_similar_mixes_text_and_audio(idx, catalog):
    hits = idx.similar("Song 01", k=9, text=["2400 Hz"])  # 4 other 600 Hz songs + 5 at 2400 Hz
    assert {int(h.track.title[-2:]) % 4 for h in hits} == {1, 3}


def test_similar_errors(idx, tmp_path):
    with pytest.raises(MusicSearchError, match="matches several tracks"):
        idx.similar("Song 1")
    with pytest.raises(MusicSearchError, match="no indexed track matches"):
        idx.similar("Nothing like this")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"zzz" * 10)
    with pytest.raises(MusicSearchError, match=r"junk\.wav"):
        idx.similar(str(junk))


# -- duplicates ---------------------------------------------------------------


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


# -- classify and tag ---------------------------------------------------------


def test_classify_indexed_track_and_file(idx, tmp_path, fake, write_audio, tone):
    before = fake.windows_embedded
    result = idx.classify("Song 03", "150 Hz, 600 Hz, 2400 Hz")
    assert fake.windows_embedded == before  # stored vector, no decoding
    assert result.top_label == "2400 Hz" and result.confidence > 0.9
    assert next(lab for lab, _ in result.labels) == "2400 Hz"
    assert sum(p for _, p in result.labels) == pytest.approx(1.0)
    outside = write_audio(tmp_path / "x.wav", tone(150, 3))
    assert idx.classify(str(outside), ["600 Hz", "150 Hz"], template="a {} tone").top_label == "150 Hz"
    with pytest.raises(MusicSearchError, match="at least two labels"):
        idx.classify("Song 03", "rock")
    with pytest.raises(MusicSearchError, match="template"):
        idx.classify("Song 03", "a, b", template="no slot")


def test_tag_then_filter_and_show(idx):
    n = idx.tag(top=1, extra_labels=["150 Hz", "600 Hz", "1200 Hz", "2400 Hz"])
    assert n == 20
    assert idx.tag(top=1) == 0  # nothing new to tag
    hits = idx.search("600 Hz", k=20, filters=Filters(tags=("2400 hz",)))
    assert {h.track.title for h in hits} == {f"Song {i:02d}" for i in range(3, 20, 4)}
    top = idx.search("2400 Hz", k=1)[0]
    assert "2400 Hz" in [label for label, _ in top.tags]
    assert len(top.tags) == 4
    assert top.tags[3][0] == "2400 Hz"  # the best of each vocabulary: genre, mood, instrument, then the user's
    vocabs = idx.context.store().db.execute("select distinct vocab from track_tags order by vocab").fetchall()
    assert [v[0] for v in vocabs] == ["genre", "instrument", "mood", "user"]
    assert idx.tag(top=2, retag=True) == 20
    assert idx.context.store().db.execute("select count(*) from track_tags").fetchone()[0] == 20 * 3 * 2


def test_a_new_labels_file_adds_to_tagged_tracks(idx):
    assert idx.tag(top=1) == 20
    before = {h.track.id: h.tags for h in idx.search("600 Hz", k=20)}
    assert all(len(t) == 3 for t in before.values())  # genre, mood, instrument
    assert idx.tag(top=1, extra_labels=["150 Hz", "600 Hz", "1200 Hz", "2400 Hz"]) == 20  # no --retag needed
    after = {h.track.id: h.tags for h in idx.search("600 Hz", k=20)}
    assert all(after[i][:3] == before[i] for i in before)  # the built-in tags stay shown
    assert {after[i][3][0] for i in after} == {"150 Hz", "600 Hz", "1200 Hz", "2400 Hz"}
    assert idx.tag(top=1, extra_labels=["600 Hz", "2400 Hz"]) == 20  # new custom labels replace the old ones
    assert {idx.search("600 Hz", k=20)[0].tags[3][0]} <= {"600 Hz", "2400 Hz"}
    n = idx.context.store().db.execute("select count(*) from track_tags where vocab = 'user'").fetchone()[0]
    assert n == 20


def test_changed_track_loses_stale_tags(idx, catalog):
    idx.tag(top=1)
    p = catalog / "jazz" / "song00.flac"
    shutil.copy(catalog / "jazz" / "song03.flac", p)
    idx.index(catalog)
    assert idx.tag(top=1) == 1


# -- filters keep k on an approximate (IVF) index ------------------------------------


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
