"""Filters: every accepted form parses to an exact value, every rejected one is a one-line
MusicSearchError. (The rows the store selects with them: tests/store/test_selection.py.)"""

import math

import pytest

from musicsearch.errors import MusicSearchError
from musicsearch.filters import Filters, parse_duration, parse_filters, parse_year

# -- parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (2008, (2008, 2008)),
        ("2008", (2008, 2008)),
        (" 2008 ", (2008, 2008)),
        ("1990-1999", (1990, 1999)),
        ("1990 - 1999", (1990, 1999)),
        ("1990-", (1990, 9999)),
        ("-1999", (0, 1999)),
        ((1990, 1999), (1990, 1999)),
        ([1990, 1999], (1990, 1999)),
        ((1990, None), (1990, 9999)),
        ((None, 1999), (0, 1999)),
        ((2001, 2001), (2001, 2001)),
        (None, None),
    ],
)
def test_year_forms(given, expected):
    assert parse_year(given) == expected
    assert Filters(year=given).year == expected


@pytest.mark.parametrize(
    "bad",
    [
        "",
        "   ",
        "soon",
        "19x0",
        "1999-1990",
        "12345",
        "1990--1999",
        "-",
        20080,
        -5,
        True,
        1999.5,
        (1999, 1990),
        (1990,),
        (1990, 1995, 1999),
        (1990, "1999"),
        (1990, 10_000),
        {"from": 1990},
    ],
)
def test_year_rejects(bad):
    with pytest.raises(MusicSearchError) as err:
        Filters(year=bad)
    assert "\n" not in str(err.value) and "year" in str(err.value)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        (95, 95.0),
        (95.5, 95.5),
        (0, 0.0),
        ("95", 95.0),
        ("95.5", 95.5),
        (" 180 ", 180.0),
        ("3:00", 180.0),
        ("1:35", 95.0),
        ("0:09", 9.0),
        ("1:5", 65.0),
        ("1:35.5", 95.5),
        ("90:00", 5400.0),
        ("1:02:03", 3723.0),
        ("1:59:59", 7199.0),
        (None, None),
    ],
)
def test_duration_forms(given, expected):
    assert parse_duration(given) == expected
    f = Filters(min_duration=given, max_duration=given)
    assert f.min_duration == expected and f.max_duration == expected
    if expected is not None:
        assert type(f.min_duration) is float


@pytest.mark.parametrize(
    "bad",
    [
        -5,
        -0.5,
        "-5",
        "-1:00",
        "",
        "  ",
        "1:99:99",
        "1:60",
        "1:00:60",
        "1:60:00",
        "1::2",
        ":30",
        "1:",
        "1:2:3:4",
        "three minutes",
        "1e3",
        "nan",
        "inf",
        math.nan,
        math.inf,
        True,
        [180],
    ],
)
def test_duration_rejects(bad):
    for field in ("min_duration", "max_duration"):
        with pytest.raises(MusicSearchError) as err:
            Filters(**{field: bad})
        assert "\n" not in str(err.value) and "duration" in str(err.value)


def test_negative_duration_says_so():
    with pytest.raises(MusicSearchError, match="cannot be negative"):
        Filters(min_duration="-5")


def test_min_above_max_is_refused_equal_is_not():
    with pytest.raises(MusicSearchError, match="minimum"):
        Filters(min_duration="3:00", max_duration=179)
    same = Filters(min_duration="3:00", max_duration=180)
    assert (same.min_duration, same.max_duration) == (180.0, 180.0)


@pytest.mark.parametrize("field", ["artist", "album", "genre", "path"])
@pytest.mark.parametrize("bad", ["", "  ", 5, ["jazz"]])
def test_text_filters_reject_empty_and_non_strings(field, bad):
    with pytest.raises(MusicSearchError, match=field):
        Filters(**{field: bad})


def test_tags_forms():
    assert Filters(tags="piano").tags == ("piano",)
    assert Filters(tags=["piano", "calm"]).tags == ("piano", "calm")
    assert Filters().tags == () and not Filters().active
    for bad in ([""], ["piano", " "], [3], 7):
        with pytest.raises(MusicSearchError, match="tag"):
            Filters(tags=bad)


def test_filters_stay_frozen():
    f = Filters(year="1990-1999")
    with pytest.raises(AttributeError):
        f.year = (1, 2)  # type: ignore[misc]
    assert f == Filters(year=(1990, 1999)) and hash(f) == hash(Filters(year=(1990, 1999)))


def test_parse_filters_takes_blanks_as_no_filter_and_uses_the_same_parsers():
    assert parse_filters("", " ", None, "", "", None, "", ["", " "]) == Filters()
    assert not parse_filters().active
    f = parse_filters("ann", None, "jazz", "1990-", "3:00", "1:02:03", "*/a/*", ["piano", ""])
    assert f == Filters(
        artist="ann",
        genre="jazz",
        year=(1990, 9999),
        min_duration=180.0,
        max_duration=3723.0,
        path="*/a/*",
        tags=("piano",),
    )
    for kwargs in ({"min_duration": "-5"}, {"max_duration": "1:99:99"}, {"year": "1999-1990"}):
        with pytest.raises(MusicSearchError):
            parse_filters(**kwargs)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"exclude_artists": [""]},
        {"exclude_genres": ("rock", " ")},
        {"exclude_paths": [3]},
        {"track_ids": "12"},
        {"track_ids": [1, "2"]},
        {"track_ids": [True]},
    ],
)
def test_bad_exclusions_and_track_ids_are_refused(kwargs):
    with pytest.raises(MusicSearchError) as err:
        Filters(**kwargs)
    assert "\n" not in str(err.value)


def test_exclusions_are_stored_as_tuples():
    f = Filters(exclude_artists="ann", exclude_genres=["rock", "pop"], track_ids=[3, 1])
    assert f.exclude_artists == ("ann",) and f.exclude_genres == ("rock", "pop") and f.exclude_paths == ()
    assert f.track_ids == (3, 1) and f.active and not f.numeric_only
