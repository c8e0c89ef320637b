import pytest

from musicsearch.library import content_hash, is_audio, walk


def test_walk_sorted_recursive_skips_hidden_and_non_audio(tmp_path):
    for rel in ["b/2.FLAC", "a/1.mp3", "a/z.txt", ".hidden/x.wav", "a/.y.wav", "c.Opus", "d.M4A", "e.aiff", "f.wma"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    paths = [f.path.relative_to(tmp_path).as_posix() for f in walk(tmp_path)]
    assert paths == ["c.Opus", "d.M4A", "e.aiff", "f.wma", "a/1.mp3", "b/2.FLAC"]


def test_walk_gives_identity(tmp_path):
    p = tmp_path / "song.wav"
    p.write_bytes(b"12345")
    (f,) = list(walk(tmp_path))
    assert f.path == p and f.size == 5 and f.mtime_ns == p.stat().st_mtime_ns


def test_walk_single_file_and_missing_root(tmp_path):
    p = tmp_path / "one.ogg"
    p.write_bytes(b"x")
    assert [f.path for f in walk(p)] == [p]
    with pytest.raises(FileNotFoundError):
        list(walk(tmp_path / "nope"))


def test_is_audio_case_insensitive():
    from pathlib import Path

    assert is_audio(Path("x.WAV")) and is_audio(Path("x.Aif")) and not is_audio(Path("x.mp4"))


def test_content_hash_follows_content_not_name(tmp_path):
    a, b, c = tmp_path / "a.wav", tmp_path / "b.wav", tmp_path / "c.wav"
    a.write_bytes(b"same bytes")
    b.write_bytes(b"same bytes")
    c.write_bytes(b"other bytes")
    assert content_hash(a) == content_hash(b) != content_hash(c)
