"""Tests of musicsearch/store/track_reads.py: tracks by path, folder, id and text; failures,
warnings, tags and window spans."""

from dataclasses import replace

import pytest


@pytest.fixture
def three(store, rec):
    with store.write():
        a = store.put_track(rec("/m/jazz/a.flac", [[1, 0], [0, 1]]), "now")
        b = store.put_track(replace(rec("/m/jazz/b.flac", [[1, 0]]), tags={"title": "Blue"}), "now")
        c = store.put_track(replace(rec("/m/rock/blue.mp3", [[0, 1]]), warning="decoded 3 s of 60 s"), "now")
        store.put_failure("/m/rock/bad.mp3", 7, 8, "not audio", "now")
        store.set_tags(a, [("genre", "jazz", 0.2), ("mood", "calm", 0.9)])
    return a, b, c


def test_files_under_a_folder_or_a_file(store, three, tmp_path):
    a, b, c = three
    assert store.known_files("/m/jazz") == {
        "/m/jazz/a.flac": (a, 1, 1, "h/m/jazz/a.flac"),
        "/m/jazz/b.flac": (b, 1, 1, "h/m/jazz/b.flac"),
    }
    assert list(store.known_files("/m/jazz/a.flac")) == ["/m/jazz/a.flac"]
    assert store.known_files("/m/ja") == {}  # a prefix of a folder's name is not the folder
    assert {p: t.id for p, t in store.tracks_under("/m").items()} == {
        "/m/jazz/a.flac": a,
        "/m/jazz/b.flac": b,
        "/m/rock/blue.mp3": c,
    }
    assert store.known_failures("/m/rock") == {"/m/rock/bad.mp3": (7, 8, "not audio")}
    assert store.hashes_of(["/m/rock/blue.mp3", "/nowhere.wav"]) == {"/m/rock/blue.mp3": "h/m/rock/blue.mp3"}


def test_counts_failures_warnings_and_tracks_by_id(store, three):
    a, _b, c = three
    assert store.counts() == {"tracks": 3, "windows": 4, "failures": 1}
    assert store.failures() == [("/m/rock/bad.mp3", "not audio")]
    assert store.warnings() == [("/m/rock/blue.mp3", "decoded 3 s of 60 s")]
    tracks = store.tracks([c, a, 99])
    assert sorted(tracks) == [a, c] and (tracks[a].title, tracks[a].n_windows, tracks[a].duration) == (
        "/m/jazz/a.flac",
        2,
        20.0,
    )
    assert store.tracks([]) == {}


def test_find_tracks_path_then_exact_title_then_substring(store, three):
    a, b, _c = three
    assert [t.id for t in store.find_tracks("/m/jazz/a.flac")] == [a]  # the path itself
    assert [t.id for t in store.find_tracks("BLUE")] == [b]  # an exact title wins over blue.mp3's path
    assert [t.id for t in store.find_tracks("jazz")] == [a, b]  # in the path, by path
    assert [t.id for t in store.find_tracks("/m/", limit=1)] == [a, b]  # one more than the limit: ambiguous
    assert store.find_tracks("nothing") == []


def test_tags_untagged_and_window_spans(store, three):
    a, b, c = three
    assert store.tags_of([a, b]) == {a: [("mood", "calm", 0.9), ("genre", "jazz", 0.2)], b: []}  # best first
    assert store.untagged_ids() == [b, c]
    assert store.windows_by_id([1, 2, 99]) == {1: (a, 0.0, 10.0), 2: (a, 10.0, 20.0)}
    assert store.windows_by_id([]) == {}
