"""A dataset's clips as a folder of audio files the normal index run can take: a whole
recording is linked there (a symlink, else a copy), a time range inside a longer recording is
decoded once and written as a 48 kHz FLAC of that range (24-bit; what a second decode reads
back is the same audio the index run would have cut). Files already there are kept, so a second
evaluation cuts nothing and the index run finds nothing new to embed."""

from __future__ import annotations

import hashlib
import logging
import os
import re
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf

from ..audio import SAMPLE_RATE, open_audio, stream_48k
from ..errors import DecodeError
from .datasets import Clip, Dataset

log = logging.getLogger(__name__)

SHORT_SLACK = 1.0  # s: a file at most this much longer than its clip's range is the clip itself
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class ClipFiles:
    """Where each clip's file is (absolute path -> clip key), and the clips that could not be
    cut (key, reason)."""

    folder: Path
    keys: dict[str, str]
    failed: tuple[tuple[str, str], ...] = ()


def dataset_key(data: Dataset) -> str:
    """A folder name for a dataset: its CSV's name and a hash of where it and its audio are."""
    ident = f"{data.csv_path.absolute()}\n{data.format}\n{data.audio.absolute()}"
    stem = _UNSAFE.sub("_", data.csv_path.stem)[:40]
    return f"{stem}-{hashlib.sha1(ident.encode()).hexdigest()[:10]}"


def clip_name(clip: Clip, cut: bool) -> str:
    """A file name of the clip's own: its key made safe, a short hash of the key (two keys that
    read alike stay apart), and the source's extension (``.flac`` for a cut)."""
    digest = hashlib.sha1(clip.key.encode()).hexdigest()[:8]
    suffix = ".flac" if cut else clip.source.suffix.lower()
    return f"{_UNSAFE.sub('_', clip.key).strip('._')[:60] or 'clip'}-{digest}{suffix}"


def _decode_48k(path: Path) -> np.ndarray:
    """The whole file, mono float32 at 48 kHz."""
    blocks = list(stream_48k(open_audio(path), path))
    return np.concatenate(blocks) if blocks else np.zeros(0, np.float32)


def _write_range(clip: Clip, audio: np.ndarray, target: Path) -> None:
    assert clip.start is not None and clip.end is not None
    part = audio[int(round(clip.start * SAMPLE_RATE)) : int(round(clip.end * SAMPLE_RATE))]
    if not len(part):
        seconds = len(audio) / SAMPLE_RATE
        raise DecodeError(clip.source, f"is {seconds:.1f} s long: nothing at {clip.start:g}-{clip.end:g} s")
    tmp = target.with_name(f".{target.name}.tmp")  # hidden: the walk skips it
    sf.write(str(tmp), part, SAMPLE_RATE, subtype="PCM_24", format="FLAC")
    os.replace(tmp, target)


def _link(source: Path, target: Path) -> None:
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        tmp.symlink_to(source.absolute())
    except OSError:  # no symlinks here (some Windows setups, some shares): a copy
        shutil.copyfile(source, tmp)
    os.replace(tmp, target)


def _place(clip: Clip, folder: Path) -> Path:
    """The clip's file in ``folder``, made when it is not there yet."""
    if clip.start is None:
        target = folder / clip_name(clip, cut=False)
        if not target.exists():
            _link(clip.source, target)
        return target
    cut, whole = folder / clip_name(clip, cut=True), folder / clip_name(clip, cut=False)
    for made in (cut, whole):
        if made.exists():
            return made
    audio = _decode_48k(clip.source)
    assert clip.end is not None
    if clip.whole_if_short and len(audio) <= (clip.end - clip.start + SHORT_SLACK) * SAMPLE_RATE:
        _link(clip.source, whole)  # saved already cut to its range
        return whole
    _write_range(clip, audio, cut)
    return cut


def place_clips(data: Dataset, folder: Path) -> ClipFiles:
    """Put every clip of ``data`` in ``folder`` (kept from earlier runs where there already)."""
    folder.mkdir(parents=True, exist_ok=True)
    keys: dict[str, str] = {}
    failed: list[tuple[str, str]] = []
    for clip in data.clips:
        try:
            keys[str(_place(clip, folder).absolute())] = clip.key
        except DecodeError as exc:
            log.warning("clip %s: %s", clip.key, exc)
            failed.append((clip.key, exc.reason))
    return ClipFiles(folder, keys, tuple(failed))
