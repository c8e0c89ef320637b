"""The walk stage: find audio files with a sorted recursive walk that skips hidden files and folders, and the
identity of a file (size and mtime for change detection, a content hash for moves)."""

from __future__ import annotations

import hashlib
import logging
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .config import AUDIO_EXTENSIONS

# The media type a player is told for each extension (the HTTP API and the Subsonic API).
AUDIO_TYPES = {
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".alac": "audio/mp4",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".wma": "audio/x-ms-wma",
}


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AudioFile:
    """An audio file found by the walk: absolute path, size in bytes, mtime in nanoseconds."""

    path: Path
    size: int
    mtime_ns: int


def is_audio(path: Path, extensions: Iterable[str] = AUDIO_EXTENSIONS) -> bool:
    """True when the file name ends with one of ``extensions`` (case-insensitive)."""
    return path.suffix[1:].lower() in extensions


def walk(
    root: Path | str,
    extensions: Iterable[str] = AUDIO_EXTENSIONS,
    *,
    on_error: Callable[[Path, str], None] | None = None,
) -> Iterator[AudioFile]:
    """Yield the audio files below ``root`` in sorted path order.

    Hidden files and folders (name starting with ``.``) are skipped; symlinked folders are
    not followed (a loop cannot hang the walk). ``root`` may itself be one audio file.
    Nothing unreadable vanishes silently: a folder that cannot be listed, or an audio file
    that cannot be looked at (a dangling link, no permission, not a regular file), is
    passed to ``on_error`` with a one-line reason, once, and the walk goes on.

    Args:
        root: a folder or a single file.
        extensions: lower-case extensions without the dot.
        on_error: called as ``on_error(path, reason)``, e.g. ``reason = "cannot read folder
            (Permission denied)"``; None logs a WARNING instead.

    Raises:
        FileNotFoundError: ``root`` does not exist.
    """

    top = Path(root).expanduser().absolute()

    def report(path: Path, reason: str) -> None:
        if on_error is None:
            log.warning("%s: %s", path, reason)
        else:
            on_error(path, reason)

    def folder_error(exc: OSError) -> None:
        folder = Path(exc.filename) if exc.filename else top
        report(folder, f"cannot read folder ({exc.strerror or type(exc).__name__})")

    exts = frozenset(e.lower() for e in extensions)
    if top.is_file():
        if is_audio(top, exts):
            st = top.stat()
            yield AudioFile(top, st.st_size, st.st_mtime_ns)
        return
    if not top.is_dir():
        raise FileNotFoundError(f"no such folder: {top}")
    for dirpath, dirnames, filenames in os.walk(top, onerror=folder_error):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if not is_audio(path, exts):
                continue
            try:
                st = path.stat()
            except OSError as exc:  # a dangling link, or a folder that can be listed but not entered
                report(path, f"cannot read file ({exc.strerror or type(exc).__name__})")
                continue
            if stat.S_ISREG(st.st_mode):
                yield AudioFile(path, st.st_size, st.st_mtime_ns)
            else:
                report(path, "not a regular file")


def content_hash(path: Path | str, chunk: int = 1 << 20) -> str:
    """BLAKE2b (128-bit) hex digest of the file's bytes: the same recording under another
    name or folder has the same hash."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
