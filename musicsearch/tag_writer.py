"""Tempo and key into the files' own tags (``musicsearch tag --write-tags``, never without it):
ID3 ``TBPM``/``TKEY`` (MP3, WAV, AIFF...), Vorbis ``BPM``/``INITIALKEY`` (FLAC, Ogg, Opus),
MP4 ``tmpo`` and the iTunes ``initialkey`` atom. Each file is written atomically: a copy
beside it is tagged, flushed and renamed over it, so a crash leaves the old file or the new
one, never half of one. The audio is untouched, so the index takes the new size, time and
hash at once and the next index run embeds nothing again.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mutagen

from .keys import Key, find_key
from .library import content_hash
from .store import Store, Track

log = logging.getLogger(__name__)


@dataclass
class TagWriteReport:
    """What ``write_tags`` did: files written, files whose tags already said so, failures."""

    written: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)


ID3_FILES = {"MP3", "EasyMP3", "WAVE", "AIFF", "DSF", "TrueAudio"}
VORBIS_FILES = {"FLAC", "OggVorbis", "OggOpus", "OggFLAC", "OggSpeex"}


def _wanted(f: Any, bpm: int | None, key: Key | None) -> dict[str, Any]:
    """The tag values to set in ``f``'s format (name -> value as mutagen holds it).

    Raises:
        ValueError: the format has no tempo or key tag that musicsearch writes.
    """
    from mutagen.id3 import TBPM, TKEY
    from mutagen.mp4 import MP4FreeForm

    kind = type(f).__name__
    out: dict[str, Any] = {}
    if kind in ("MP4", "EasyMP4"):
        out |= {"tmpo": [bpm]} if bpm is not None else {}
        out |= {"----:com.apple.iTunes:initialkey": [MP4FreeForm(key.short.encode())]} if key else {}
    elif kind in ID3_FILES:
        out |= {"TBPM": TBPM(encoding=3, text=[str(bpm)])} if bpm is not None else {}
        out |= {"TKEY": TKEY(encoding=3, text=[key.short])} if key else {}
    elif kind in VORBIS_FILES:
        out |= {"BPM": [str(bpm)]} if bpm is not None else {}
        out |= {"INITIALKEY": [key.short]} if key else {}
    else:
        raise ValueError(f"musicsearch writes no tempo or key tags into {kind} files")
    return out


def _set(f: Any, bpm: int | None, key: Key | None) -> bool:
    """Set ``f``'s tempo and key tags in its format; returns whether anything changed.

    Raises:
        ValueError: the format has no tempo or key tag that musicsearch writes.
    """
    wanted = _wanted(f, bpm, key)
    if f.tags is None:
        f.add_tags()
    changed = False
    for name, value in wanted.items():
        if hasattr(value, "text"):  # an ID3 frame
            if list(getattr(f.tags.get(name), "text", [])) != value.text:
                f.tags.setall(name, [value])
                changed = True
        elif f.tags.get(name) != value:
            f.tags[name] = value
            changed = True
    return changed


def write_file_tags(path: Path, bpm: float | None, key_name: str | None) -> bool:
    """Write ``bpm`` (rounded, as the tags hold whole numbers) and the key ("Am") into
    ``path``'s tags, atomically; returns whether the file changed.

    Raises:
        OSError: the file cannot be copied, written or replaced.
        ValueError: mutagen cannot read it, or its format has no such tags here.
    """
    bpm_int = int(round(bpm)) if bpm is not None else None
    key = find_key(key_name)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp", delete=False) as tmp:
        temp = Path(tmp.name)
    try:
        shutil.copy2(path, temp)
        f = mutagen.File(temp)
        if f is None:
            raise ValueError("mutagen cannot read it")
        if not _set(f, bpm_int, key):
            return False
        f.save()
        with open(temp, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(temp, path)
        return True
    finally:
        temp.unlink(missing_ok=True)


def write_tags(store: Store, tracks: dict[int, Track]) -> TagWriteReport:
    """Write each of ``tracks``' tempo and key (those it has) into its file, and record the
    file's new size, time and hash in ``store`` (its audio is the same)."""
    report = TagWriteReport()
    for track_id, t in sorted(tracks.items()):
        if t.bpm is None and t.key is None:
            continue
        path = Path(t.path)
        try:
            changed = write_file_tags(path, t.bpm, t.key)
        except (OSError, ValueError, mutagen.MutagenError) as exc:
            report.failed.append((t.path, str(exc) or type(exc).__name__))
            continue
        if not changed:
            report.unchanged += 1
            continue
        st = path.stat()
        with store.write(vectors=False):
            store.set_file(track_id, st.st_size, st.st_mtime_ns, content_hash(path))
        report.written.append(t.path)
    return report
