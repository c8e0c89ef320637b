"""Tempo and key filters in the store (musicsearch/store/selection.py): half and double time
unless strict, the exact key, the Camelot neighbours; and what the tracks read back carry."""

from dataclasses import replace

import pytest

from musicsearch.errors import MusicSearchError
from musicsearch.filters import Filters, parse_filters
from musicsearch.store import Musical

TRACKS = {  # path: (bpm, key)
    "/a": (124.0, "A minor"),
    "/half": (62.0, "E minor"),  # 9A
    "/double": (250.0, "D minor"),  # 7A
    "/slow": (100.0, "C major"),  # 8B: relative of A minor
    "/far": (128.5, "F# major"),  # 2B
    "/unknown": (None, None),
}


@pytest.fixture
def tempo_store(store, rec):
    with store.write():
        for path, (bpm, key) in TRACKS.items():
            musical = Musical(bpm=bpm, bpm_source="estimate" if bpm else None, key=key, analysed=1)
            store.put_track(replace(rec(path, [[1.0, 0.0]]), musical=musical), "now")
    return store


def paths(store, filters):
    ids = store.filtered_ids(filters)
    return sorted(t.path for t in store.tracks(int(i) for i in ids).values())


def test_a_tempo_range_matches_half_and_double_time_unless_strict(tempo_store):
    assert paths(tempo_store, Filters(bpm="120-128")) == ["/a", "/double", "/half"]
    assert paths(tempo_store, Filters(bpm="120-128", strict_bpm=True)) == ["/a"]
    assert paths(tempo_store, Filters(bpm=(120, 130), strict_bpm=True)) == ["/a", "/far"]
    assert paths(tempo_store, Filters(bpm="124")) == ["/a", "/double", "/half"]  # 121.52-126.48, x2, /2
    assert paths(tempo_store, Filters(bpm="-110", strict_bpm=True)) == ["/half", "/slow"]
    assert paths(tempo_store, parse_filters(bpm="99-101")) == ["/slow"]
    assert tempo_store.count_filtered(Filters(bpm="120-128"), 100) == 3


def test_key_and_compatible_keys(tempo_store):
    assert paths(tempo_store, Filters(key="8A")) == ["/a"]
    assert paths(tempo_store, Filters(key="Am")) == ["/a"]
    assert paths(tempo_store, Filters(key_compatible="8A")) == ["/a", "/double", "/half", "/slow"]
    assert paths(tempo_store, Filters(key_compatible="2B")) == ["/far"]
    assert paths(tempo_store, parse_filters(key_compatible="A minor", bpm="60-64", strict_bpm=True)) == ["/half"]


def test_tracks_read_back_with_tempo_and_key(tempo_store):
    (track,) = [t for t in tempo_store.tracks(range(1, 10)).values() if t.path == "/a"]
    assert (track.bpm, track.bpm_source, track.key, track.key_source) == (124.0, "estimate", "A minor", None)


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"bpm": "fast"}, "bad bpm 'fast'"),
        ({"bpm": "128-120"}, "bad bpm range '128-120'"),
        ({"bpm": 0}, "a tempo is a positive number"),
        ({"key": "13A"}, "bad key '13A'"),
        ({"key_compatible": 8}, "bad key_compatible filter 8"),
    ],
)
def test_bad_tempo_and_key_filters_are_one_line(kw, message):
    with pytest.raises(MusicSearchError, match=message):
        Filters(**kw)


def test_strict_without_a_tempo_is_no_filter():
    assert Filters(strict_bpm=True) == Filters() and not Filters(strict_bpm=True).active
    assert Filters(bpm="120-").bpm == (120.0, 1000.0) and Filters(bpm=(None, 90)).bpm == (0.0, 90.0)


def test_bulk_added_tracks_keep_tempo_and_key_and_an_old_track_awaits_analysis(store, rec, tmp_path):
    musical = Musical(bpm=90.0, bpm_confidence=0.8, bpm_source="estimate", key="C major", key_source="tag", analysed=1)
    with store.write():
        store.add_tracks([replace(rec("/m/new", [[0.0, 1.0]]), musical=musical), rec("/m/old", [[1.0, 0.0]])], "now")
    got = {t.path: t for t in store.tracks(range(1, 3)).values()}
    assert (got["/m/new"].bpm, got["/m/new"].bpm_source, got["/m/new"].key, got["/m/new"].key_source) == (
        90.0,
        "estimate",
        "C major",
        "tag",
    )
    assert got["/m/old"].bpm is None
    from pathlib import Path

    assert [p for _, p in store.unanalysed_under(Path("/m"))] == ["/m/old"]
    (old_id,) = [t.id for t in got.values() if t.path == "/m/old"]
    with store.write(vectors=False):
        store.set_musical(old_id, Musical(bpm=128.0, bpm_source="estimate", analysed=1))
    assert store.unanalysed_under(Path("/m")) == [] and store.tracks([old_id])[old_id].bpm == 128.0
