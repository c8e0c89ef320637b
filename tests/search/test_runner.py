"""The one runner: a SearchRequest against an open index, whichever front end built it."""

from __future__ import annotations

import numpy as np
import pytest

from musicsearch import Filters, MusicIndex, SearchRequest, Settings
from musicsearch.errors import MusicSearchError
from musicsearch.playlist import m3u_text
from musicsearch.search.request import Prompt, parse_request
from musicsearch.search.runner import query_of, run, search_vectors
from musicsearch.search.variety import Variety


@pytest.fixture
def idx(tmp_path, catalog, fake):
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake)
    assert len(index.index(catalog).added) == 20
    return index


def titles(hits):
    return [h.track.title for h in hits]


class NoText:
    """An index context whose text model must not be loaded."""

    def __init__(self, ctx):
        self.ctx = ctx

    def ready(self):
        raise AssertionError("the text model was loaded")

    def __getattr__(self, name):
        return getattr(self.ctx, name)


def test_a_text_request_ranks_the_matching_band_first(idx):
    hits = run(idx.context, parse_request({"q": "600 Hz", "k": 5, "lexical": "false"}))
    assert sorted(titles(hits)) == [f"Song {i:02d}" for i in range(1, 20, 4)]
    assert [h.rank for h in hits] == [1, 2, 3, 4, 5] and all(h.matched == "sound" for h in hits)


def test_every_front_end_form_gives_the_same_hits(idx):
    keywords = idx.search("600 Hz", k=6, filters=Filters(genre="rock"), variety=Variety(max_per_artist=2))
    parsed = parse_request({"q": "600 Hz", "k": "6", "genre": "rock", "max_per_artist": "2"})
    direct = SearchRequest(
        prompts=(Prompt("600 Hz", 1.0),), k=6, filters=Filters(genre="rock"), variety=Variety(max_per_artist=2)
    )
    assert parsed == direct
    assert titles(idx.search(parsed)) == titles(run(idx.context, direct)) == titles(keywords)
    assert len(keywords) == 4 and {h.track.artist for h in keywords} == {"Ann Arbor", "Bob Beat"}


def test_seeds_need_no_text_model_and_are_left_out(idx, catalog):
    request = parse_request({"like": [str(catalog / "jazz" / "song01.flac")], "k": 4})
    hits = run(NoText(idx.context), request)
    assert sorted(titles(hits)) == ["Song 05", "Song 09", "Song 13", "Song 17"]
    q = query_of(NoText(idx.context), request)
    assert len(q.exclude) == 1 and q.names == () and q.allowed is None


def test_names_resolve_only_when_asked(idx):
    named = query_of(idx.context, parse_request({"q": "by Ann Arbor"}))
    assert named.allowed is not None and len(named.allowed) == 10 and named.matched == "artist"
    plain = query_of(idx.context, parse_request({"q": "by Ann Arbor", "lexical": False}))
    assert plain.allowed is None and plain.matched == "sound"


def test_a_path_request_runs_between_its_two_ends(idx):
    hits = run(idx.context, parse_request({"between": ["Song 01", "Song 03"], "k": 4}))
    assert titles(hits)[0] == "Song 01" and titles(hits)[-1] == "Song 03" and len(set(titles(hits))) == 4


def test_smooth_order_keeps_the_hits(idx):
    by_score = run(idx.context, parse_request({"q": "600 Hz", "k": 8}))
    smooth = run(idx.context, parse_request({"q": "600 Hz", "k": 8, "order": "smooth"}))
    assert sorted(titles(smooth)) == sorted(titles(by_score)) and [h.rank for h in smooth] == list(range(1, 9))


def test_search_vectors_takes_k_filters_and_by_from_the_request(idx, fake):
    q = fake.embed_texts(["600 Hz", "2400 Hz"])
    lists = search_vectors(NoText(idx.context), q, SearchRequest(k=3, filters=Filters(genre="jazz")))
    assert [len(h) for h in lists] == [3, 3] and all(h.track.genre == "Jazz" for hs in lists for h in hs)
    with pytest.raises(MusicSearchError, match="must be finite"):
        search_vectors(idx.context, np.full((1, 3), np.nan), SearchRequest())


# -- filters, ranking modes and score bounds, through MusicIndex ----------------------


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
