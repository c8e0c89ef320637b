"""Tests of musicsearch/hits.py: a ``Hit``'s JSON shape (the one ``query --json`` and the HTTP
API print), its rounding, and the frozen ``Segment``."""

import dataclasses
import json

import pytest

from musicsearch.hits import Hit, Segment
from musicsearch.store import Track

TRACK = Track(7, "/m/Jazz/a.flac", "Blue", "Ann", "Nights", "Ann & Co", "Jazz", 1995, 3, 181.25, 18)
TRACK = dataclasses.replace(TRACK, bpm=124.02, bpm_source="estimate", key="A minor", key_source="tag", energy=-14.5)
TRACK = dataclasses.replace(TRACK, bpm_confidence=0.8)


def test_to_dict_is_the_exact_json_shape():
    hit = Hit(2, 0.123456789, TRACK, Segment(40.0, 50.0, 0.98765432), (("piano", 0.3333333333),), "artist+sound")
    assert hit.to_dict() == {
        "rank": 2,
        "score": 0.123457,
        "track_id": 7,
        "path": "/m/Jazz/a.flac",
        "title": "Blue",
        "artist": "Ann",
        "album": "Nights",
        "albumartist": "Ann & Co",
        "genre": "Jazz",
        "year": 1995,
        "tracknumber": 3,
        "duration": 181.25,
        "bpm": 124.02,
        "bpm_source": "estimate",
        "bpm_confidence": 0.8,
        "key": "A minor",
        "camelot": "8A",
        "key_source": "tag",
        "key_confidence": None,
        "energy": -14.5,
        "segment_start": 40.0,
        "segment_end": 50.0,
        "segment_score": 0.987654,
        "tags": [{"label": "piano", "score": 0.333333}],
        "matched": "artist+sound",
    }
    assert list(hit.to_dict()) == [  # the key order JSON readers see
        "rank",
        "score",
        "track_id",
        "path",
        "title",
        "artist",
        "album",
        "albumartist",
        "genre",
        "year",
        "tracknumber",
        "duration",
        "bpm",
        "bpm_source",
        "bpm_confidence",
        "key",
        "camelot",
        "key_source",
        "key_confidence",
        "energy",
        "segment_start",
        "segment_end",
        "segment_score",
        "tags",
        "matched",
    ]


def test_defaults_and_unknown_tags_serialize_as_null():
    track = Track(1, "/x.wav", "x")  # no tags at all
    hit = Hit(1, 0.5, track, Segment(0.0, 10.0, -0.25))
    d = hit.to_dict()
    assert (d["tags"], d["matched"]) == ([], "")
    assert [d[k] for k in ("artist", "album", "albumartist", "genre", "year", "tracknumber", "duration")] == [None] * 7
    assert (d["score"], d["segment_score"]) == (0.5, -0.25)
    assert json.loads(json.dumps(d)) == d  # plain JSON types only


def test_rounding_is_to_six_decimals_for_every_score():
    tags = (("calm", 0.1234565001), ("dark", -0.9999996))
    d = Hit(1, 0.9999996, TRACK, Segment(1.5, 2.5, 1e-7), tags).to_dict()
    assert (d["score"], d["segment_score"]) == (1.0, 0.0)
    assert d["tags"] == [{"label": "calm", "score": 0.123457}, {"label": "dark", "score": -1.0}]
    assert (d["segment_start"], d["segment_end"]) == (1.5, 2.5)  # times are not rounded


def test_hits_and_segments_are_frozen_values():
    seg = Segment(0.0, 10.0, 0.5)
    with pytest.raises(dataclasses.FrozenInstanceError):
        seg.score = 1.0  # type: ignore[misc]
    hit = Hit(1, 0.5, TRACK, seg)
    with pytest.raises(dataclasses.FrozenInstanceError):
        hit.rank = 2  # type: ignore[misc]
    assert hit == Hit(1, 0.5, TRACK, Segment(0.0, 10.0, 0.5)) and hash(hit) == hash(Hit(1, 0.5, TRACK, seg))
    assert hit != dataclasses.replace(hit, matched="title")


def test_numpy_scores_become_json_numbers():
    import numpy as np

    hit = Hit(1, np.float32(0.25), TRACK, Segment(0.0, 10.0, np.float32(0.5)), (("rain", np.float32(0.125)),))
    d = json.loads(json.dumps(hit.to_dict()))
    assert (d["score"], d["segment_score"], d["tags"]) == (0.25, 0.5, [{"label": "rain", "score": 0.125}])
