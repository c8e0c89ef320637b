"""Songs, albums and artists from the tags, with ids that survive index runs."""

import shutil

from musicsearch import MusicIndex, Settings
from musicsearch.subsonic.catalog import UNKNOWN_ALBUM, UNKNOWN_ARTIST, Catalog, name_id, sort_key


def row(i, artist=None, album=None, albumartist=None, title="t", year=None, bpm=None):
    return (
        i,
        f"/m/{i}.flac",
        10,
        title,
        artist,
        album,
        albumartist,
        None,
        year,
        None,
        3.0,
        "2024-05-01T10:00:00+00:00",
        bpm,
    )


def test_grouped_as_navidrome_groups():
    c = Catalog(
        [
            row(1, "Ann", "Duets", "Various Artists"),
            row(2, "Bob", "Duets", "Various Artists"),
            row(3, "ann", "DUETS", "various artists"),  # names match whatever their case
            row(4, "Bob", "Solo"),
            row(5),
        ]
    )
    duets = c.albums[name_id("al", "Various Artists", "Duets")]
    assert [s.id for s in duets.songs] == [1, 2, 3] and duets.artist == "Various Artists"
    assert c.songs[2].artist_id == name_id("ar", "Bob")  # the track's own artist
    bob = c.artists[name_id("ar", "Bob")]
    assert {a.name for a in bob.albums} == {"Duets", "Solo"}  # albums of his own and those he plays on
    assert c.songs[5].album == UNKNOWN_ALBUM and c.songs[5].artist == UNKNOWN_ARTIST
    assert c.songs[1].child()["created"] == "2024-05-01T10:00:00Z"
    assert sort_key("The Beatles") == "beatles" and sort_key("Theory") == "theory"


def test_a_known_tempo_is_the_songs_bpm():
    c = Catalog([row(1, bpm=123.6), row(2), row(3, bpm=0.0)])
    assert c.songs[1].child()["bpm"] == 124
    assert "bpm" not in c.songs[2].child() and "bpm" not in c.songs[3].child()  # unknown: left out


def test_ids_survive_a_move_and_a_second_run(tmp_path, write_audio, tone, tagged, fake_embedder_cls):
    lib = tmp_path / "lib"
    tagged(write_audio(lib / "a" / "x.flac", tone(600, 5)), title="X", artist="Ann", album="Blue")
    tagged(write_audio(lib / "a" / "y.flac", tone(1200, 5)), title="Y", artist="Ann", album="Blue")
    with MusicIndex(tmp_path / "idx", settings=Settings(workers=1), embedder=fake_embedder_cls()) as idx:
        idx.index(lib)
        before = Catalog(idx.catalog()[1])
        (lib / "b").mkdir()
        shutil.move(lib / "a" / "x.flac", lib / "b" / "x.flac")
        idx.index(lib)
        stamp, rows = idx.catalog()
        after = Catalog(rows)
        assert idx.catalog(stamp) == (stamp, None)  # unchanged: no rows read
    ids = lambda c: {(s.title, s.id, s.album_id, s.artist_id) for s in c.songs.values()}  # noqa: E731
    assert ids(before) == ids(after)
    assert after.songs[next(i for i, s in after.songs.items() if s.title == "X")].path.endswith("b/x.flac")
