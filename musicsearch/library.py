"""Find audio files: a sorted recursive walk that skips hidden files and folders, and the
identity of a file (size and mtime for change detection, a content hash for moves)."""

from __future__ import annotations

import hashlib
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import AUDIO_EXTENSIONS


@dataclass(frozen=True)
class AudioFile:
    """An audio file found by the walk: absolute path, size in bytes, mtime in nanoseconds."""

    path: Path
    size: int
    mtime_ns: int


def is_audio(path: Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> bool:
    """True when the file name ends with one of ``extensions`` (case-insensitive)."""
    return path.suffix[1:].lower() in extensions


def walk(root: Path | str, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> Iterator[AudioFile]:
    """Yield the audio files below ``root`` in sorted path order.

    Hidden files and folders (name starting with ``.``) are skipped; symlinked folders are
    not followed (a loop cannot hang the walk). ``root`` may itself be one audio file.

    Args:
        root: a folder or a single file.
        extensions: lower-case extensions without the dot.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """
    root = Path(root).expanduser().absolute()
    exts = frozenset(e.lower() for e in extensions)
    if root.is_file():
        if is_audio(root, exts):
            st = root.stat()
            yield AudioFile(root, st.st_size, st.st_mtime_ns)
        return
    if not root.is_dir():
        raise FileNotFoundError(f"no such folder: {root}")
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not is_audio(path, exts):
                continue
            try:
                st = path.stat()
            except OSError:
                continue  # vanished or a dangling link
            if path.is_file():
                yield AudioFile(path, st.st_size, st.st_mtime_ns)


def content_hash(path: Path | str, chunk: int = 1 << 20) -> str:
    """BLAKE2b (128-bit) hex digest of the file's bytes: the same recording under another
    name or folder has the same hash."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
