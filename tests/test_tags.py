import mutagen
from conftest import tone, write_audio

from musicsearch.tags import read_tags


def test_tags_read_from_flac(tmp_path):
    p = write_audio(tmp_path / "x.flac", tone(440, 2))
    f = mutagen.File(p, easy=True)
    f["title"] = "Song"
    f["artist"] = "Artist"
    f["album"] = "Album"
    f["albumartist"] = "Various"
    f["genre"] = "Jazz"
    f["date"] = "1997-05-01"
    f["tracknumber"] = "3/12"
    f.save()
    t = read_tags(p)
    assert (t.title, t.artist, t.album, t.albumartist, t.genre, t.year, t.tracknumber) == (
        "Song",
        "Artist",
        "Album",
        "Various",
        "Jazz",
        1997,
        3,
    )
    assert abs(t.duration - 2.0) < 0.01


def test_title_falls_back_to_file_name(tmp_path):
    p = write_audio(tmp_path / "My Track.wav", tone(440, 1))
    t = read_tags(p)
    assert t.title == "My Track" and t.artist is None and t.year is None


def test_garbage_file_still_gets_a_title(tmp_path):
    p = tmp_path / "junk.mp3"
    p.write_bytes(b"\x00" * 100)
    assert read_tags(p).title == "junk"
