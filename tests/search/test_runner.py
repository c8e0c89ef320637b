"""The one runner: a SearchRequest against an open index, whichever front end built it."""

from __future__ import annotations

import numpy as np
import pytest

from musicsearch import Filters, MusicIndex, SearchRequest, Settings
from musicsearch.errors import MusicSearchError
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
