"""Parameters read once: missing is 10, bad is 0."""

import pytest

from musicsearch.subsonic.params import MAX_TEXT, Params, whole
from musicsearch.subsonic.responses import SubsonicError


def code(fn):
    with pytest.raises(SubsonicError) as info:
        fn()
    return info.value.code


def test_values_numbers_flags_and_repeats():
    p = Params([("id", "1"), ("songId", "3"), ("songId", "4"), ("size", " 7 "), ("public", "TRUE")])
    assert p.required("id") == "1" and p.all("songId") == ["3", "4"] and p.all("none") == []
    assert p.number("size", 10, 0, 500) == 7 and p.number("offset", 0, 0, 5) == 0
    assert p.flag("public") is True and p.flag("other", True) is True


def test_refusals():
    assert code(lambda: Params([]).required("id")) == 10
    assert code(lambda: Params([("id", "")]).required("id")) == 10
    assert code(lambda: Params([("size", "10" * 20)]).number("size", 1, 0, 500)) == 0
    assert code(lambda: Params([("size", "501")]).number("size", 1, 0, 500)) == 0
    assert code(lambda: Params([("size", "1e3")]).number("size", 1, 0, 500)) == 0
    assert code(lambda: Params([("size", "٣")]).number("size", 1, 0, 500)) == 0  # a digit, not ASCII
    assert code(lambda: Params([("q", "x" * (MAX_TEXT + 1))]).text("q")) == 0
    assert code(lambda: Params([("public", "yes")]).flag("public")) == 0
    assert whole("n", "-3") == -3
