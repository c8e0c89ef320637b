"""Tests of musicsearch/store/names.py: phrase matches in the FTS index of names."""

from dataclasses import replace

import pytest

from musicsearch.store import NAME_FIELDS


@pytest.fixture
def named(store, rec):
    tags = [
        {"title": "Blue in Green", "artist": "Miles Davis", "album": "Kind of Blue"},
        {"title": "So What", "artist": "Miles Davis", "album": "Kind of Blue"},
        {"title": 'The "Blue" Note', "artist": "Cannonball", "genre": "Jazz"},
    ]
    with store.write():
        return [store.put_track(replace(rec(f"/m/{i}.flac", [[1, 0]]), tags=t), "now") for i, t in enumerate(tags)]


def test_a_phrase_matches_within_the_fields_asked(store, named):
    a, b, c = named
    assert store.has_name_index() and NAME_FIELDS == ("title", "artist", "album", "albumartist", "genre", "file")
    assert store.name_matches(["miles", "davis"], ["artist"], 10) == [(a, "Miles Davis"), (b, "Miles Davis")]
    assert store.name_matches(["davis", "miles"], ["artist"], 10) == []  # a phrase: in order
    assert [r[0] for r in store.name_matches(["blue"], ["title"], 10)] == [a, c]
    assert [r[0] for r in store.name_matches(["blue"], ["title", "album"], 10)] == [a, b, c]
    assert store.name_matches(["blue"], ["title", "album"], 1) == [(a, "Blue in Green", "Kind of Blue")]
    # a quote in a word is plain text, not FTS syntax
    assert store.name_matches(['"blue'], ["title"], 10) == [(a, "Blue in Green"), (c, 'The "Blue" Note')]
    assert store.name_matches(["2"], ["file"], 10) == [(c, "2.flac")]


def test_unknown_fields_are_refused(store):
    with pytest.raises(ValueError, match=r"the name fields are .*, not \['path'\]"):
        store.name_matches(["x"], ["title", "path"], 10)
