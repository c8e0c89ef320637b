"""musicsearch/errors.py: one error type, one-line messages, and storage faults named with the
index folder and what to do."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

import pytest

from musicsearch.errors import (
    CollapsedModel,
    DecodeError,
    IndexNotFound,
    ModelLoadError,
    ModelMismatch,
    MusicSearchError,
    StorageError,
    storage_error,
    storage_errors,
)


def test_every_error_is_a_musicsearch_error():
    for cls in (IndexNotFound, ModelMismatch, ModelLoadError, CollapsedModel, DecodeError, StorageError):
        assert issubclass(cls, MusicSearchError)
    assert issubclass(CollapsedModel, ModelLoadError)


def test_a_decode_error_names_the_file_and_the_reason():
    err = DecodeError("music/a.ogg", "no audio stream")
    assert (err.path, err.reason, str(err)) == (Path("music/a.ogg"), "no audio stream", "music/a.ogg: no audio stream")


@pytest.mark.parametrize(
    "exc, message",
    [
        (OSError(errno.ENOSPC, "No space left on device"), "no space left for index {w}; free some space and run again (what is indexed is kept)"),
        (sqlite3.OperationalError("database or disk is full"), "no space left for index {w}; free some space and run again (what is indexed is kept)"),
        (sqlite3.OperationalError("attempt to write a readonly database"), "cannot write to index {w} (attempt to write a readonly database); make it writable, or pass another --index"),
        (PermissionError(errno.EACCES, "Permission denied"), "cannot write to index {w} ([Errno 13] Permission denied); make it writable, or pass another --index"),
        (sqlite3.DatabaseError("file is not a database"), "index {w} is damaged (file is not a database); move it away and build it again: musicsearch index FOLDER --index {w}"),
        (sqlite3.OperationalError("unable to open database file"), "cannot open index {w} (unable to open database file); check that the folder is readable and writable"),
        (sqlite3.OperationalError("database is locked"), "index {w} is busy (database is locked); try again when the other run has finished"),
        (sqlite3.IntegrityError("UNIQUE constraint failed: tracks.path\nmore"), "index {w}: UNIQUE constraint failed: tracks.path"),
        (sqlite3.Error(""), "index {w}: Error"),
    ],
)  # fmt: skip
def test_storage_error_says_what_is_wrong_and_what_to_do(tmp_path, exc, message):
    err = storage_error(tmp_path / "idx", exc)
    assert isinstance(err, StorageError) and str(err) == message.format(w=tmp_path / "idx")
    assert "\n" not in str(err)


class Folder:
    def __init__(self, path: Path, exc: BaseException) -> None:
        self.path, self.exc = path, exc

    @storage_errors
    def write(self, value: int) -> int:
        """Writes."""
        if self.exc is not None:
            raise self.exc
        return value * 2


def test_storage_errors_turns_the_folders_faults_into_one_line_and_lets_others_through(tmp_path):
    assert Folder(tmp_path, None).write(21) == 42
    assert Folder.write.__doc__ == "Writes." and Folder.write.__name__ == "write"
    with pytest.raises(StorageError, match="is busy"):
        Folder(tmp_path, sqlite3.OperationalError("database is locked")).write(1)
    with pytest.raises(StorageError, match=r"^cannot write to index"):
        Folder(tmp_path, OSError(errno.EROFS, "Read-only file system")).write(1)
    with pytest.raises(FileNotFoundError):  # not a fault of the index folder: unchanged
        Folder(tmp_path, FileNotFoundError(errno.ENOENT, "gone")).write(1)
    with pytest.raises(ValueError):
        Folder(tmp_path, ValueError("a bug")).write(1)
