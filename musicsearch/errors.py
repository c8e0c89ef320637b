"""Errors raised by musicsearch. Every user or setup error is a MusicSearchError whose
message is one line, fit to print after ``Error:``."""

from __future__ import annotations

import errno
import functools
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar


class MusicSearchError(Exception):
    """Base class: a user or setup error with a one-line message."""


class IndexNotFound(MusicSearchError):
    """The index folder holds no index yet."""


class ModelMismatch(MusicSearchError):
    """An index built with one model was asked to work with another."""


class ModelLoadError(MusicSearchError):
    """The model could not be loaded (not found, offline, or unusable)."""


class CollapsedModel(ModelLoadError):
    """The model maps unrelated prompts to (nearly) the same vector."""


class DecodeError(MusicSearchError):
    """One audio file could not be decoded; the run skips it and goes on."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")


class StorageError(MusicSearchError):
    """The index folder cannot be read or written (damaged, read-only, disk full, busy)."""


_F = TypeVar("_F", bound=Callable[..., Any])


def storage_error(path: Path, exc: BaseException) -> StorageError:
    """A one-line error saying what is wrong with the index folder and what to do."""
    text = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    low = text.lower()
    code = exc.errno if isinstance(exc, OSError) else None
    where = path.absolute()
    if "disk is full" in low or code == errno.ENOSPC:
        return StorageError(f"no space left for index {where}; free some space and run again (what is indexed is kept)")
    if "readonly" in low or "read-only" in low or code in (errno.EROFS, errno.EACCES, errno.EPERM):
        return StorageError(f"cannot write to index {where} ({text}); make it writable, or pass another --index")
    if "not a database" in low or "malformed" in low or "corrupt" in low:
        return StorageError(
            f"index {where} is damaged ({text}); move it away and build it again: musicsearch index FOLDER --index {where}"
        )
    if "unable to open" in low:
        return StorageError(f"cannot open index {where} ({text}); check that the folder is readable and writable")
    if "locked" in low or "busy" in low:
        return StorageError(f"index {where} is busy ({text}); try again when the other run has finished")
    return StorageError(f"index {where}: {text}")


def storage_errors(method: _F) -> _F:
    """Decorates a method of an object with a ``path`` (its index folder): SQLite and
    file-system errors of that folder become one-line StorageErrors."""

    @functools.wraps(method)
    def wrapper(self: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except sqlite3.Error as exc:
            raise storage_error(self.path, exc) from None
        except OSError as exc:
            if exc.errno in (errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.ENOTDIR, errno.EEXIST):
                raise storage_error(self.path, exc) from None
            raise

    return wrapper  # type: ignore[return-value]
