"""The facade (musicsearch/api.py) under faults: every storage or user error is one
MusicSearchError line that says what to do, and nothing already indexed is lost."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

import musicsearch.api
from musicsearch import MusicIndex, Settings
from musicsearch.cli import app
from musicsearch.errors import ModelLoadError, MusicSearchError, StorageError
from musicsearch.indexing.plan import run_lock


def one_line(exc: BaseException) -> str:
    text = str(exc)
    assert "\n" not in text and text
    return text


@pytest.fixture
def built(tmp_path: Path, library: Path, fake_embedder_cls) -> Callable[..., MusicIndex]:
    """``built(folder=tmp_path / "idx")``: the library indexed there by a fake embedder."""

    def build(folder: Path | None = None) -> MusicIndex:
        idx = MusicIndex(folder or tmp_path / "idx", settings=Settings(), embedder=fake_embedder_cls())
        assert len(idx.index(library).added) == 4
        return idx

    return build


@pytest.mark.parametrize("damage", ["garbage", "truncated", "garbled pages"])
def test_a_damaged_database_is_one_line_naming_the_fix(tmp_path, library, damage, fake_embedder_cls, built):
    idx = built()
    idx.close()
    db = tmp_path / "idx" / "musicsearch.db"
    data = db.read_bytes()
    if damage == "garbage":
        db.write_bytes(b"not a database at all " * 500)
    elif damage == "truncated":
        db.write_bytes(data[:700])
    else:
        db.write_bytes(data[:100] + bytes(range(256)) * ((len(data) - 100) // 256 + 1))
    for wal in tmp_path.glob("idx/musicsearch.db-*"):
        wal.unlink()
    fresh = MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake_embedder_cls())
    with pytest.raises(StorageError) as err:
        fresh.search("a 600 Hz tone")
        fresh.info()
    assert "is damaged" in one_line(err.value) and "musicsearch index FOLDER --index" in str(err.value)


def test_index_path_that_is_a_file(tmp_path, library, fake_embedder_cls):
    target = tmp_path / "afile"
    target.write_text("x")
    with pytest.raises(StorageError, match="is a file, not a folder") as err:
        MusicIndex(target, settings=Settings(), embedder=fake_embedder_cls()).index(library)
    one_line(err.value)


def test_a_second_run_on_one_index_is_refused_while_the_first_runs(tmp_path, library, write_audio, tone, built):
    idx = built()
    write_audio(library / "new.wav", tone(300, 12))
    with run_lock(tmp_path / "idx"), pytest.raises(StorageError, match="another index run") as err:
        idx.index(library)
    assert f"pid {__import__('os').getpid()}" in one_line(err.value)
    assert idx.index(library).added == [str(library / "new.wav")]  # once the first is done, it runs


def test_the_lock_is_held_across_processes(tmp_path, library, fake_embedder_cls, built):
    built()
    code = (
        "import sys, time\n"
        "from musicsearch.indexing.plan import run_lock\n"
        "with run_lock(__import__('pathlib').Path(sys.argv[1])):\n"
        "    print('held', flush=True)\n"
        "    time.sleep(30)\n"
    )
    holder = subprocess.Popen([sys.executable, "-c", code, str(tmp_path / "idx")], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(StorageError, match=f"another index run \\(pid {holder.pid}\\)"):
            MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake_embedder_cls()).index(library)
    finally:
        holder.kill()
        holder.wait()


def test_a_moved_model_folder_is_named(tmp_path, tiny_model):
    moved = tmp_path / "model"
    shutil.copytree(tiny_model, moved)
    from musicsearch.clap import ClapEmbedder

    ClapEmbedder(str(moved))
    shutil.rmtree(moved)
    with pytest.raises(ModelLoadError, match="does not exist \\(moved or deleted\\?\\)") as err:
        ClapEmbedder(str(moved))
    assert str(moved) in one_line(err.value)


@pytest.mark.parametrize(
    ("prompt", "message"), [("pads::x", "must be a number"), ("caf\udce9 \udcff", "not valid text")]
)
def test_bad_prompts_are_one_line(tmp_path, library, prompt, message, built):
    idx = built()
    with pytest.raises(MusicSearchError, match=message) as err:
        idx.search(prompt)
    one_line(err.value)
    assert idx.search("pads::2")  # a weight is fine


def test_invalid_utf8_on_the_command_line_is_one_line(tmp_path, library, monkeypatch, fake_embedder_cls, built):
    built()
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    r = CliRunner().invoke(app, ["query", "caf\udce9 \udcff", "--index", str(tmp_path / "idx")])
    assert r.exit_code == 1 and r.stderr.count("\n") == 1 and "not valid text" in r.stderr


def mount_tmpfs(where: Path, size: str) -> None:
    where.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(where)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({r.stderr.decode().strip() or 'mount failed'})")


@pytest.fixture
def tmpfs(tmp_path):
    where = tmp_path / "mnt"
    yield where
    subprocess.run(["umount", "-l", str(where)], capture_output=True)


def test_a_full_disk_is_one_line_and_loses_nothing(
    tmp_path, library, tmpfs, write_audio, tone, fake_embedder_cls, built
):
    mount_tmpfs(tmpfs, "4m")
    idx = built(tmpfs / "idx")
    filler = tmpfs / "filler"
    with open(filler, "wb", buffering=0) as f:  # fill the disk to the last block
        try:
            while True:
                f.write(b"\0" * 4096)
        except OSError:
            pass
    for i in range(12):
        write_audio(library / "more" / f"t{i}.wav", tone(200 + 150 * i, 30))
    with pytest.raises(StorageError, match="no space left for index") as err:
        idx.index(library)
    one_line(err.value)
    idx.close()
    filler.unlink()
    again = MusicIndex(tmpfs / "idx", settings=Settings(), embedder=fake_embedder_cls())
    assert again.info().tracks >= 4 and again.search("a 600 Hz tone", k=1)[0].track.title == "t600"
    again.index(library)
    assert again.info().tracks == 16


def test_a_read_only_index_is_one_line_for_reads_and_writes(
    tmp_path, library, tmpfs, write_audio, tone, fake_embedder_cls, built
):
    mount_tmpfs(tmpfs, "8m")
    idx = built(tmpfs / "idx")
    idx.close()
    r = subprocess.run(["mount", "-o", "remount,ro", str(tmpfs)], capture_output=True)
    if r.returncode != 0:
        pytest.skip(f"cannot remount read-only here ({r.stderr.decode().strip()})")
    ro = MusicIndex(tmpfs / "idx", settings=Settings(), embedder=fake_embedder_cls())
    with pytest.raises(StorageError) as err:  # SQLite cannot open a WAL database on a read-only disk
        ro.search("a 1200 Hz tone", k=1)
    assert str(tmpfs / "idx") in one_line(err.value) and "readable and writable" in str(err.value)
    write_audio(library / "new.wav", tone(300, 12))
    with pytest.raises(StorageError) as err:
        MusicIndex(tmpfs / "idx", settings=Settings(), embedder=fake_embedder_cls()).index(library)
    assert str(tmpfs / "idx") in one_line(err.value)
