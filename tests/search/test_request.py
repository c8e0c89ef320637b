"""The one parser of what a user types into a search: exact values and exact refusals."""

from __future__ import annotations

import pytest

from musicsearch import Filters, SearchRequest
from musicsearch.errors import MusicSearchError
from musicsearch.filters import parse_duration, parse_year
from musicsearch.search.request import Prompt, Seed, parse_prompt, parse_request, parse_seed
from musicsearch.search.variety import Variety


def test_prompts_with_weights_and_negatives():
    r = parse_request({"q": ["warm pads", "strings::0.5", " rain :: 2 "], "not": ["vocals", "drums::1"]})
    assert r.prompts == (Prompt("warm pads", 1.0), Prompt("strings", 0.5), Prompt("rain", 2.0))
    assert r.negatives == (Prompt("vocals", 0.5), Prompt("drums", 1.0))
    assert parse_request({"q": "one prompt"}).prompts == (Prompt("one prompt", 1.0),)
    assert parse_prompt("a: b", 0.5) == ("a: b", 0.5)  # one colon is text


def test_defaults():
    r = parse_request({"q": "x"})
    assert r == SearchRequest(prompts=(Prompt("x", 1.0),))
    assert (r.k, r.by, r.order, r.min_score, r.names, r.include_named, r.path) == (
        10,
        "track",
        "score",
        None,
        True,
        False,
        False,
    )
    assert r.filters == Filters() and not r.filters.active and r.variety == Variety() and r.seeds == ()


def test_strings_as_the_cli_and_http_receive_them():
    r = parse_request(
        {
            "q": "x",
            "k": "25",
            "by": "window",
            "order": "smooth",
            "min_score": "0.25",
            "lexical": "false",
            "include_named": "yes",
            "artist": "Ann",
            "album": "",  # blank: no filter
            "year": "1990-1999",
            "min_duration": "3:00",
            "max_duration": "1:02:03",
            "path": "*/Jazz/*",
            "tag": ["calm", "", "piano"],
            "exclude_artist": ["Bob"],
            "exclude_genre": "christmas",
            "exclude_path": ["*/live/*"],
            "max_per_artist": "2",
            "dedupe": "true",
            "variation": "0.5",
            "seed": "7",
        }
    )
    assert (r.k, r.by, r.order, r.min_score, r.names, r.include_named) == (25, "window", "smooth", 0.25, False, True)
    f = r.filters
    assert (f.artist, f.album, f.genre, f.year, f.min_duration, f.max_duration, f.path) == (
        "Ann",
        None,
        None,
        (1990, 1999),
        180.0,
        3723.0,
        "*/Jazz/*",
    )
    assert (f.tags, f.exclude_artists, f.exclude_genres, f.exclude_paths) == (
        ("calm", "piano"),
        ("Bob",),
        ("christmas",),
        ("*/live/*",),
    )
    assert r.variety == Variety(max_per_artist=2, dedupe=True, variation=0.5, seed=7)


def test_typed_filters_and_variety_and_their_exclusions_in_one_place():
    r = parse_request(
        {
            "q": "x",
            "filters": Filters(genre="jazz", year=(1990, None), exclude_genres=["live"]),
            "tag": "calm",
            "variety": Variety(max_per_artist=1, exclude_artists=["Ann"], exclude_paths="*/x/*"),
            "exclude_artist": "Bob",
        }
    )
    assert (r.filters.genre, r.filters.year, r.filters.tags) == ("jazz", (1990, 9999), ("calm",))
    assert r.filters.exclude_artists == ("Bob", "Ann") and r.filters.exclude_genres == ("live",)
    assert r.filters.exclude_paths == ("*/x/*",)
    assert r.variety == Variety(max_per_artist=1)  # the exclusions moved to the filters
    direct = SearchRequest(prompts=(Prompt("x", 1.0),), variety=Variety(exclude_genres="pop"))
    assert direct.filters.exclude_genres == ("pop",) and direct.variety == Variety()


def test_seeds_moments_and_paths(tmp_path):
    r = parse_request({"like": ["Teardrop@1:20-1:40", "Song 01"], "q": "more drums"})
    assert r.seeds == (Seed("Teardrop@1:20-1:40", "Teardrop", 80.0, 100.0), Seed("Song 01", "Song 01"))
    assert r.prompts == (Prompt("more drums", 1.0),) and not r.path
    odd = tmp_path / "take@1:00-2:00"  # a file with that very name is a file, not a moment
    odd.write_bytes(b"")
    assert parse_seed(odd) == Seed(str(odd), str(odd))
    assert parse_seed("clip.flac@0-0:09") == Seed("clip.flac@0-0:09", "clip.flac", 0.0, 9.0)
    p = parse_request({"between": ["A", "B"], "k": 12, "max_per_artist": 1})
    assert p.path and p.seeds == (Seed("A", "A"), Seed("B", "B")) and p.k == 12 and p.prompts == ()


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"q": "  "}, "empty query"),
        ({}, "empty query"),
        ({"q": "::2"}, "empty query"),
        ({"q": "pads::x"}, "must be a number, e.g. 'warm pads::2'"),
        ({"q": "pads::inf"}, "must be a finite number"),
        ({"q": "caf\udce9"}, "not valid text"),
        ({"q": "x", "k": 0}, "k must be at least 1"),
        ({"q": "x", "k": "ten"}, "k must be a whole number, not 'ten'"),
        ({"q": "x", "by": "album"}, "--by must be track or window, not 'album'"),
        ({"q": "x", "order": "random"}, "--order must be score or smooth, not 'random'"),
        ({"q": "x", "year": "soon"}, "bad year 'soon'"),
        ({"q": "x", "min_duration": "5:00", "max_duration": "1:00"}, "the minimum (300 s) is above the maximum"),
        ({"q": "x", "min_score": "nan"}, "--min-score must be a finite number"),
        ({"q": "x", "lexical": "perhaps"}, "lexical must be true or false, not 'perhaps'"),
        ({"q": "x", "max_per_artist": 0}, "--max-per-artist must be a whole number >= 1"),
        ({"q": "x", "variation": "1.5"}, "--variation must be between 0 and 1, not 1.5"),
        ({"q": "x", "exclude_artist": [""]}, "bad exclude-artist ''"),
        ({"q": "x", "colour": "red"}, "unknown search option 'colour'"),
        ({"q": "x", "filters": {"genre": "jazz"}}, "filters must be a Filters"),
        ({"q": "x", "filters": Filters(genre="jazz"), "genre": "rock"}, "genre is given twice"),
        ({"like": []}, "give a track or an audio file to start from"),
        ({"like": "x@1:00-0:10"}, "bad time range in 'x@1:00-0:10': the end must come after the start"),
        ({"between": ["A"]}, "a path runs between two tracks"),
        ({"between": ["A", "B"], "k": 1}, "a path needs at least 2 tracks (-n 2)"),
    ],
)
def test_refusals_are_one_line(fields, message):
    with pytest.raises(MusicSearchError) as err:
        parse_request(fields)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_request_is_frozen():
    r = parse_request({"q": "x"})
    with pytest.raises(AttributeError):
        r.k = 3  # type: ignore[misc]


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
