"""Tests of musicsearch/keys.py: every notation of all 24 keys, parsing as tags and users
write keys, the Camelot neighbours and the wheel distance."""

import pytest

from musicsearch.errors import MusicSearchError
from musicsearch.keys import ALL_KEYS, MAJOR, MINOR, Key, compatible, find_key, from_camelot, parse_key, wheel_distance

A_MINOR, C_MAJOR = Key(9, MINOR), Key(0, MAJOR)


def test_the_wheel_as_published():
    assert (A_MINOR.camelot, A_MINOR.open_key, A_MINOR.name, A_MINOR.short) == ("8A", "1m", "A minor", "Am")
    assert (C_MAJOR.camelot, C_MAJOR.open_key, C_MAJOR.name, C_MAJOR.short) == ("8B", "1d", "C major", "C")
    camelot = {k.camelot: k.short for k in ALL_KEYS}
    assert camelot["1A"] == "G#m" and camelot["1B"] == "B" and camelot["5A"] == "Cm" and camelot["12B"] == "E"
    assert camelot["4B"] == "Ab" and camelot["11A"] == "F#m" and camelot["3A"] == "Bbm" and camelot["9B"] == "G"
    assert sorted(camelot) == sorted(f"{n}{x}" for n in range(1, 13) for x in "AB")


@pytest.mark.parametrize("key", ALL_KEYS, ids=lambda k: k.name)
def test_every_notation_reads_back(key):
    n, letter = int(key.camelot[:-1]), key.camelot[-1]
    assert from_camelot(n, letter) == key
    for text in (key.name, key.short, key.camelot, key.open_key, key.camelot.lower(), f"0{key.camelot}"):
        assert find_key(text) == key, text


@pytest.mark.parametrize(
    ("text", "name"),
    [
        ("Am", "A minor"),
        ("A min", "A minor"),
        ("amin", "A minor"),
        ("F#m", "F# minor"),
        ("F♯ minor", "F# minor"),
        ("Gbm", "F# minor"),
        ("Gb", "F# major"),
        ("Bbm", "Bb minor"),
        ("A#m", "Bb minor"),
        ("Cmaj", "C major"),
        ("C", "C major"),
        ("E♭", "Eb major"),
        ("Ebm", "Eb minor"),
        ("D#m", "Eb minor"),
        ("Db", "Db major"),
        ("C#", "Db major"),
        ("G#m", "G# minor"),
        (" 10A ", "B minor"),
        ("6d", "B major"),
        ("12m", "D minor"),
    ],
)
def test_keys_as_tags_write_them(text, name):
    assert find_key(text).name == name


@pytest.mark.parametrize("text", ["", "o", "13A", "H", "8C", "minor", "120", None])
def test_what_names_no_key(text):
    assert find_key(text) is None


def test_a_user_gets_one_line_for_a_bad_key():
    assert parse_key("8a") == A_MINOR
    with pytest.raises(MusicSearchError, match="bad key '13A'"):
        parse_key("13A")


def test_compatible_keys_are_the_same_the_neighbours_and_the_relative():
    assert [k.camelot for k in compatible(A_MINOR)] == ["8A", "9A", "7A", "8B"]
    assert [k.camelot for k in compatible(parse_key("12B"))] == ["12B", "1B", "11B", "12A"]
    assert [k.camelot for k in compatible(parse_key("1A"))] == ["1A", "2A", "12A", "1B"]


def test_wheel_distance():
    assert wheel_distance(A_MINOR, A_MINOR) == 0
    assert wheel_distance(A_MINOR, C_MAJOR) == 1  # relative
    assert wheel_distance(A_MINOR, parse_key("9A")) == 1
    assert wheel_distance(parse_key("1A"), parse_key("12A")) == 1  # round the wheel
    assert wheel_distance(parse_key("2A"), parse_key("8A")) == 6
    assert wheel_distance(parse_key("2A"), parse_key("8B")) == 7
    assert all(wheel_distance(k, j) == 1 for k in ALL_KEYS for j in compatible(k)[1:])
