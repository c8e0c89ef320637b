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


def make_tree(tmp_path):
    for rel in ["a/1.wav", "locked/2.wav", "locked/deep/3.wav", "z/4.wav"]:
        p = tmp_path / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    return tmp_path / "locked"


def permission_bits_work(folder) -> bool:
    import os

    try:
        os.listdir(folder)
    except PermissionError:
        return True
    return False  # root (or a file system without permissions): chmod 000 does not stop a listing


def test_unreadable_folder_is_reported_by_permission(tmp_path):
    locked = make_tree(tmp_path)
    locked.chmod(0)
    try:
        if not permission_bits_work(locked):
            pytest.skip("running as root: chmod 000 does not stop a listing (the scandir test covers it)")
        errors = []
        paths = [
            f.path.relative_to(tmp_path).as_posix() for f in walk(tmp_path, on_error=lambda p, r: errors.append((p, r)))
        ]
    finally:
        locked.chmod(0o755)
    assert paths == ["a/1.wav", "z/4.wav"]
    assert errors == [(locked, "cannot read folder (Permission denied)")]


def test_unreadable_folder_is_reported(tmp_path, monkeypatch):
    import os

    locked = make_tree(tmp_path)
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    errors = []
    paths = [
        f.path.relative_to(tmp_path).as_posix() for f in walk(tmp_path, on_error=lambda p, r: errors.append((p, r)))
    ]
    assert paths == ["a/1.wav", "z/4.wav"]  # the rest of the walk, in order
    assert errors == [(locked, "cannot read folder (Permission denied)")]


def test_unreadable_folder_without_a_callback_logs_a_warning(tmp_path, monkeypatch, caplog):
    import logging
    import os

    locked = make_tree(tmp_path)
    real_scandir = os.scandir

    def scandir(path="."):
        if os.fspath(path) == str(locked):
            raise PermissionError(13, "Permission denied", str(locked))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    with caplog.at_level(logging.WARNING, logger="musicsearch.library"):
        assert len(list(walk(tmp_path))) == 2
    assert [r.getMessage() for r in caplog.records] == [f"{locked}: cannot read folder (Permission denied)"]
    assert caplog.records[0].levelno == logging.WARNING


def test_dangling_link_and_fifo_are_reported(tmp_path):
    import os

    (tmp_path / "ok.wav").write_bytes(b"x")
    (tmp_path / "gone.flac").symlink_to(tmp_path / "nowhere.flac")
    os.mkfifo(tmp_path / "pipe.mp3")
    (tmp_path / "broken.txt").symlink_to(tmp_path / "nowhere.txt")  # not audio: not reported
    errors = []
    assert [f.path.name for f in walk(tmp_path, on_error=lambda p, r: errors.append((p.name, r)))] == ["ok.wav"]
    assert errors == [("gone.flac", "cannot read file (No such file or directory)"), ("pipe.mp3", "not a regular file")]


def test_clean_walk_reports_nothing(tmp_path):
    make_tree(tmp_path)
    errors = []
    assert len(list(walk(tmp_path, on_error=lambda p, r: errors.append(p)))) == 4
    assert errors == []
