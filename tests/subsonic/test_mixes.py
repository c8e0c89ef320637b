"""Mixes from the vectors: similar songs, sonic-similar tracks, a sonic path."""

from musicsearch.subsonic.catalog import name_id
from musicsearch.subsonic.mixes import similarity


def test_similar_songs_of_a_song_an_album_and_an_artist(ok, music):
    songs = ok("getSimilarSongs2", id=str(music.ids["Rain Song"]), count="1")["similarSongs2"]["song"]
    assert [s["title"] for s in songs] == ["Night Walk"]
    old = ok("getSimilarSongs", id=str(music.ids["Rain Song"]), count="1")["similarSongs"]["song"]
    assert old == songs
    of_album = ok("getSimilarSongs2", id=name_id("al", "Ann", "Blue"), count="10")["similarSongs2"]["song"]
    assert {s["title"] for s in of_album} == {"Sun", "Moon", "untitled"}  # the seeds left out
    assert ok("getSimilarSongs2", id=name_id("ar", "Bob"), count="0")["similarSongs2"]["song"] == []


def test_sonic_similar_tracks(ok, music):
    matches = ok("getSonicSimilarTracks", id=str(music.ids["Rain Song"]), count="2")["sonicMatch"]
    assert matches[0]["entry"]["title"] == "Night Walk" and matches[0]["similarity"] == 1.0
    assert 0.0 <= matches[1]["similarity"] < 1.0 and len(matches) == 2
    assert len(ok("getSonicSimilarTracks", id=str(music.ids["Sun"]))["sonicMatch"]) == 4  # all the others


def test_sonic_path_runs_from_start_to_end(ok, music):
    start, end = str(music.ids["Rain Song"]), str(music.ids["Moon"])
    path = ok("findSonicPath", startSongId=start, endSongId=end, count="4")["sonicMatch"]
    assert [m["entry"]["id"] for m in (path[0], path[-1])] == [start, end] and len(path) == 4
    assert path[0]["similarity"] == 1.0 and all(0.0 <= m["similarity"] <= 1.0 for m in path)


def test_bad_mixes(failed, music):
    failed("getSimilarSongs2", 10)
    failed("getSimilarSongs2", 70, id="../x")
    failed("getSonicSimilarTracks", 70, id=name_id("al", "Ann", "Blue"))  # a song's id only
    failed("getSonicSimilarTracks", 0, id=str(music.ids["Sun"]), count="100000")
    failed("findSonicPath", 10, startSongId=str(music.ids["Sun"]))
    failed("findSonicPath", 0, startSongId=str(music.ids["Sun"]), endSongId=str(music.ids["Sun"]))
    failed("findSonicPath", 0, startSongId=str(music.ids["Sun"]), endSongId=str(music.ids["Moon"]), count="1")


def test_similarity_scale():
    assert (similarity(1.0), similarity(0.0), similarity(-1.0), similarity(2.0)) == (1.0, 0.5, 0.0, 1.0)
