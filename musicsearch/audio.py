"""The decode stage: audio files into 48 kHz mono float32, cut into model windows, streaming.

soundfile (libsndfile) reads what it can; PyAV (its bundled FFmpeg) reads the rest (m4a/aac/
alac, wma) and takes over whenever libsndfile fails, at open, at a seek or part-way through
a read, so one decoder's bug never loses a file. A Vorbis file streamed whole goes the other
way round (FFmpeg decodes Vorbis faster), with libsndfile as its second decoder. Channels are averaged to mono and soxr
resamples to 48 kHz block by block, so a long file never sits in memory whole: at most one
window plus one block does.

Windows are deterministic: consecutive windows from 0 s, the last one aligned to the end of
the track (overlapping its neighbour) so no audio is dropped and no window of a long track is
padded. A track shorter than one window is one window, ``repeatpad``-ed exactly as CLAP's
feature extractor does. ``max_windows`` spreads at most N windows evenly over the track. The
plan comes from the first decoder that knew the track's length, so a decoder switch part-way
through keeps the same starts and never yields a window twice.
"""

from __future__ import annotations

import logging
import math
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import soxr

from .errors import DecodeError
from .process import quiet_stderr

log = logging.getLogger(__name__)

SAMPLE_RATE = 48_000
BLOCK_FRAMES = 1 << 16
# A decoded length below this share of the declared one, and this many seconds short, is truncated.
TRUNCATED_SHARE = 0.9
TRUNCATED_SECONDS = 2.0


@dataclass(frozen=True)
class Window:
    """One model input: ``samples`` (float32, exactly one window long) taken from
    ``start``..``end`` (seconds) of the track."""

    index: int
    start: float
    end: float
    samples: np.ndarray


@dataclass
class Source:
    """An opened audio file: its native rate, an estimate of its length in native frames
    (None when unknown), and an iterator of mono float32 blocks at that rate."""

    sample_rate: int
    frames: int | None
    blocks: Iterator[np.ndarray]


class _Failed(Exception):
    """One decoder failed; ``reason`` is one line."""

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


@dataclass
class _Progress:
    """What one ``iter_windows`` call has done so far, shared by its decoders: windows
    yielded (count and start of the last one, in 48-kHz samples) and the track length at
    48 kHz that plans the windows (from the first decoder that knew it)."""

    index: int = 0
    last_start: int = -1
    estimate: int | None = None
    pyav_failed: str | None = None  # PyAV's reason, when it already failed on this file

    def window(self, start: int, end: int, samples: np.ndarray) -> Window:
        w = Window(self.index, start / SAMPLE_RATE, end / SAMPLE_RATE, samples)
        self.index += 1
        self.last_start = start
        return w


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (or its type name)."""
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


def _sf_reason(exc: BaseException) -> str:
    """libsndfile's own words, without the "Error opening '<path>': " prefix."""
    text = getattr(exc, "error_string", None) if isinstance(exc, sf.LibsndfileError) else None
    return (text or one_line(exc)).strip().rstrip(".") or type(exc).__name__


def _check_file(path: Path) -> None:
    """DecodeError for a missing, unreadable or empty file (no decoder can help)."""
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise DecodeError(path, f"cannot read file ({exc.strerror or one_line(exc)})") from None
    if size == 0:
        raise DecodeError(path, "empty file (0 bytes)")
    try:
        with open(path, "rb"):
            pass
    except OSError as exc:
        raise DecodeError(path, f"cannot read file ({exc.strerror or one_line(exc)})") from None


def _open_soundfile(path: Path) -> sf.SoundFile:
    try:
        with quiet_stderr():
            return sf.SoundFile(str(path))
    except Exception as exc:
        reason = _sf_reason(exc)
        if "does not exist" in reason:  # libsndfile's words when its MP3 decoder finds no frame
            reason = "not a format libsndfile reads"
        raise _Failed(reason) from None


def _soundfile_blocks(f: sf.SoundFile) -> Iterator[np.ndarray]:
    try:
        for block in f.blocks(blocksize=BLOCK_FRAMES, dtype="float32", always_2d=True):
            yield _to_mono(block)
    except Exception as exc:
        raise _Failed(f"decoding failed ({_sf_reason(exc)})") from None


def _soundfile_source(path: Path) -> Source:
    f = _open_soundfile(path)

    def blocks() -> Iterator[np.ndarray]:
        with f:
            yield from _soundfile_blocks(f)

    return Source(int(f.samplerate), int(f.frames) if f.frames > 0 else None, blocks())


def _pyav_source(path: Path) -> Source:
    import av  # imported here: only files libsndfile cannot read need it

    try:
        container = av.open(str(path))
    except Exception as exc:
        reason = getattr(exc, "strerror", None) or one_line(exc)
        raise _Failed(f"not audio, or a format FFmpeg cannot read ({reason})") from None
    stream = next(iter(container.streams.audio), None)
    if stream is None:
        container.close()
        raise _Failed("no audio stream")
    rate = int(stream.codec_context.sample_rate or stream.rate or 0)
    if rate <= 0:
        container.close()
        raise _Failed("audio stream has no sample rate")
    frames = None
    if stream.duration is not None and stream.time_base is not None:
        frames = int(stream.duration * stream.time_base * rate)
    elif container.duration is not None:
        frames = int(container.duration / av.time_base * rate)
    resampler = av.AudioResampler(format="fltp")  # planar float32, same layout and rate

    def planar(frames: list[Any], skip: int) -> tuple[list[list[np.ndarray]], int]:
        out = []
        for frame in frames:
            n = frame.samples
            cut = min(skip, n)
            skip -= cut
            if cut < n:  # each channel's plane as it is (to_ndarray would stack them: a copy a frame)
                out.append([np.frombuffer(p, np.float32, n)[cut:] for p in frame.planes])
        return out, skip

    def blocks() -> Iterator[list[np.ndarray]]:
        skip = 0  # samples before the stream's time 0 (a Vorbis stream's first frame, pts -128)
        first, used_resampler = True, False
        try:
            for frame in container.decode(stream):
                if first:
                    first = False
                    if frame.pts is not None and frame.pts < 0 and frame.time_base is not None:
                        skip = int(round(-frame.pts * frame.time_base * frame.sample_rate))
                is_planar = frame.format.name == "fltp"  # most decoders' own format: no conversion
                out, skip = planar([frame] if is_planar else resampler.resample(frame), skip)
                used_resampler = used_resampler or not is_planar
                yield from out
            if used_resampler:
                out, skip = planar(resampler.resample(None), skip)
                yield from out
        except Exception as exc:  # a decoder error part-way through the file
            raise _Failed(f"decoding failed ({one_line(exc)})") from None
        finally:
            container.close()

    return Source(rate, frames, _gather_planar(blocks(), BLOCK_FRAMES))


def _gather_planar(frames: Iterator[list[np.ndarray]], size: int) -> Iterator[np.ndarray]:
    """Mono blocks of at least ``size`` samples (the last one may be shorter) from planar
    frames (one array per channel): an FFmpeg frame holds ~1,000 samples, and every block
    costs a downmix, a resampler call and a pass of the window cutter, so frames are joined
    first."""
    pending: list[list[np.ndarray]] = []
    n = 0
    for frame in frames:
        pending.append(frame)
        n += len(frame[0])
        if n >= size:
            yield _planar_mono(pending)
            pending, n = [], 0
    if pending:
        yield _planar_mono(pending)


def open_audio(path: Path | str) -> Source:
    """Open ``path`` with soundfile, falling back to PyAV when libsndfile cannot open it.
    (``iter_windows`` also falls back on seek and read errors.)

    Raises:
        DecodeError: the file is empty, unreadable, or not audio; the reason names both
            decoders' failures ("soundfile: ...; PyAV: ...").
    """
    path = Path(path)
    _check_file(path)
    try:
        return _soundfile_source(path)
    except _Failed as exc:
        first = exc.reason
    try:
        return _pyav_source(path)
    except _Failed as exc:
        raise DecodeError(path, f"soundfile: {first}; PyAV: {exc.reason}") from None


def _to_48k(blocks: Iterator[np.ndarray], rate: int) -> Iterator[np.ndarray]:
    """Mono float32 blocks resampled to 48 kHz with soxr (streaming)."""
    resampler = None
    if rate != SAMPLE_RATE:
        resampler = soxr.ResampleStream(rate, SAMPLE_RATE, 1, dtype="float32")
    for block in blocks:
        if block.size == 0:
            continue
        block = np.nan_to_num(block, copy=False, nan=0.0, posinf=0.0, neginf=0.0)
        out = resampler.resample_chunk(block, last=False) if resampler else block
        if out.size:
            yield out
    if resampler is not None:
        tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
        if tail.size:
            yield tail


def stream_48k(source: Source, path: Path | str) -> Iterator[np.ndarray]:
    """Mono float32 blocks of ``source`` resampled to 48 kHz with soxr (streaming).

    Raises:
        DecodeError: the decoder failed part-way through the file.
    """
    try:
        yield from _to_48k(source.blocks, source.sample_rate)
    except _Failed as exc:
        raise DecodeError(path, exc.reason) from None


def repeatpad(samples: np.ndarray, length: int) -> np.ndarray:
    """CLAP's ``repeatpad``: tile ``int(length / n)`` times, then zero-pad to ``length``."""
    n = len(samples)
    tiled = np.tile(samples, int(length / n))
    return np.pad(tiled, (0, length - len(tiled))).astype(np.float32, copy=False)


def plan_starts(total: int, length: int, max_windows: int | None = None) -> list[int]:
    """Window start offsets (samples) for a track of ``total`` samples.

    Full coverage: 0, L, 2L, ... and a last window aligned to the end. With ``max_windows``
    and more windows than that, N starts spread evenly from 0 to the end-aligned one (one
    window: the middle of the track).
    """
    if total <= length:
        return [0]
    starts = list(range(0, total - length + 1, length))
    if starts[-1] != total - length:
        starts.append(total - length)
    if max_windows is None or len(starts) <= max_windows:
        return starts
    if max_windows == 1:
        return [(total - length) // 2]
    last = total - length
    return [round(i * last / (max_windows - 1)) for i in range(max_windows)]


def _planar_mono(frames: list[list[np.ndarray]]) -> np.ndarray:
    """The mean of the channels of planar frames (one array per channel each), joined: summed
    in the order ``_to_mono`` sums them (the same float32 values)."""
    channels = len(frames[0])
    out = np.concatenate([f[0] for f in frames]) if len(frames) > 1 else frames[0][0].copy()
    if channels == 1:
        return out
    for c in range(1, channels):
        out += np.concatenate([f[c] for f in frames]) if len(frames) > 1 else frames[0][c]
    out *= np.float32(1.0 / channels)
    return out


def _to_mono(block: np.ndarray) -> np.ndarray:
    """The mean of a (frames, channels) block's channels. Summed column by column: numpy's
    ``mean(axis=1)`` over two-wide rows is 20x slower, a quarter of decoding's cost."""
    channels = block.shape[1]
    if channels == 1:
        return block[:, 0]
    out = block[:, 0].astype(np.float32, copy=True)
    for c in range(1, channels):
        out += block[:, c]
    out *= np.float32(1.0 / channels)
    return out


def _seek_windows(f: sf.SoundFile, length: int, max_windows: int, progress: _Progress) -> Iterator[Window]:
    """With a window budget, read only the planned regions of a seekable file (plus a
    0.1-s margin each side for the resampler) instead of decoding it all. Yields nothing
    when the file is short or needs full coverage anyway; stops early (the caller streams
    the rest) when the header promised more than the file holds.

    Raises:
        _Failed: libsndfile failed to seek or read.
    """
    sr, frames = int(f.samplerate), int(f.frames)
    total = int(round(frames * SAMPLE_RATE / sr))
    starts = plan_starts(total, length, max_windows)
    if total <= length or len(starts) >= len(plan_starts(total, length)):
        return
    margin = sr // 10
    for start in starts:
        a = max(0, int(start * sr // SAMPLE_RATE) - margin)
        b = min(frames, int(-(-(start + length) * sr // SAMPLE_RATE)) + margin)
        try:
            with quiet_stderr():
                f.seek(a)
            x = _to_mono(f.read(b - a, dtype="float32", always_2d=True))
        except Exception as exc:
            raise _Failed(f"decoding failed at {a / sr:.1f} s ({_sf_reason(exc)})") from None
        if len(x) < b - a:
            return  # the header promised more than the file holds: stream the rest
        y = soxr.resample(x, sr, SAMPLE_RATE) if sr != SAMPLE_RATE else x
        offset = int(round(start - a * SAMPLE_RATE / sr))
        w = y[offset : offset + length]
        if len(w) < length:  # resampler rounding at the very end of the file
            w = y[-length:]
        yield progress.window(start, start + length, np.ascontiguousarray(w, dtype=np.float32))


def _cut(blocks: Iterator[np.ndarray], length: int, max_windows: int | None, progress: _Progress) -> Iterator[Window]:
    """Cut a 48-kHz stream into the planned windows, holding about one window plus one
    block. Windows at or before ``progress.last_start`` (yielded by a decoder that failed
    later) are skipped.

    Raises:
        _Failed: the stream holds no samples (or a decoder failed: passed on).
    """
    estimate = progress.estimate
    if max_windows is not None and estimate is not None:
        # Interior starts come from the header's length; the last window is always
        # aligned to the true end, found when the stream ends.
        planned = plan_starts(estimate, length, max_windows)
        if len(planned) > 1:
            targets: Iterator[int] = iter(planned[:-1])
        else:
            targets = iter(())
            if max_windows == 1 and estimate > length:
                targets = iter(planned)
    elif max_windows is not None:
        targets = iter(())  # unknown length: only the end-aligned window, below
    else:
        targets = iter(range(0, 1 << 62, length))

    chunks: deque[np.ndarray] = deque()  # the blocks that still hold needed samples, as read
    buf_start = 0  # stream offset of chunks[0][0]
    pos = 0  # samples seen so far
    target = next(targets, None)

    def take(start: int) -> np.ndarray:
        """A new array of the samples [start, start + length) (fewer at the very end)."""
        out = np.empty(min(length, pos - start), np.float32)
        at = buf_start
        for c in chunks:
            a, b = max(start, at), min(start + len(out), at + len(c))
            if b > a:
                out[a - start : b - start] = c[a - at : b - at]
            at += len(c)
            if at >= start + len(out):
                break
        return out

    for block in blocks:
        chunks.append(block)
        pos += len(block)
        while target is not None and target + length <= pos:
            if target > progress.last_start:
                yield progress.window(target, target + length, take(target))
            target = next(targets, None)
        keep_from = max(0, pos - length)
        if target is not None:
            keep_from = min(keep_from, target)
        # Whole blocks only: copying the needed tail of a block on every read (as this once
        # did) moved a window's worth of samples per block: 25 against 12 ms of CPU a
        # window with PyAV's ~1,000-sample frames (scripts/bench_decode.py).
        while chunks and buf_start + len(chunks[0]) <= keep_from:
            buf_start += len(chunks.popleft())

    if pos == 0:
        raise _Failed("no audio samples")
    if pos < length:
        if progress.index == 0:
            yield progress.window(0, pos, repeatpad(np.concatenate(list(chunks)), length))
        return
    end_start = pos - length
    if max_windows == 1:
        if progress.index == 0:  # length unknown up front: fall back to the end-aligned window
            yield progress.window(end_start, pos, take(end_start))
        return
    if end_start > progress.last_start:
        yield progress.window(end_start, pos, take(end_start))


def _soundfile_windows(path: Path, length: int, max_windows: int | None, progress: _Progress) -> Iterator[Window]:
    f = _open_soundfile(path)
    with f:
        sr, frames = int(f.samplerate), int(f.frames)
        if frames > 0:
            progress.estimate = int(round(frames * SAMPLE_RATE / sr))
        if max_windows is not None and frames > 0 and f.seekable():
            yield from _seek_windows(f, length, max_windows, progress)
            if progress.index == len(plan_starts(progress.estimate or 0, length, max_windows)):
                return  # every planned window read by seeking
        if f.subtype == "VORBIS" and progress.pyav_failed is None:
            # Streamed whole, a Vorbis file decodes faster in FFmpeg (PyAV): decoding and
            # cutting 12 ms of CPU a 10-s window against 16 ms with libsndfile alone
            # (scripts/bench_decode.py), the same samples to 2.4e-7. libsndfile goes on from where PyAV stops, should it fail.
            try:
                yield from _pyav_windows(path, length, max_windows, progress)
                return
            except _Failed as exc:
                progress.pyav_failed = exc.reason
                log.debug(
                    "%s: PyAV failed (%s) after %d windows; decoding with soundfile", path, exc.reason, progress.index
                )
        if f.seekable():
            # Also on a fresh file: libsndfile 1.2.2 skips an Opus stream's pre-skip only
            # after a seek, so without one its samples come 312 late (6.5 ms).
            try:
                with quiet_stderr():
                    f.seek(0)
            except Exception as exc:
                raise _Failed(f"decoding failed at 0.0 s ({_sf_reason(exc)})") from None
        yield from _cut(_to_48k(_soundfile_blocks(f), sr), length, max_windows, progress)


def _pyav_windows(path: Path, length: int, max_windows: int | None, progress: _Progress) -> Iterator[Window]:
    source = _pyav_source(path)
    if progress.estimate is None and source.frames:
        progress.estimate = int(round(source.frames * SAMPLE_RATE / source.sample_rate))
    yield from _cut(_to_48k(source.blocks, source.sample_rate), length, max_windows, progress)


def iter_windows(
    path: Path | str,
    window_seconds: float = 10.0,
    max_windows: int | None = None,
) -> Iterator[Window]:
    """Decode ``path`` and yield its windows in order, holding at most about one window
    plus one block of audio at a time. With ``max_windows`` and a seekable file, only the
    planned regions are read.

    soundfile decodes first; if it fails at open, seek or read (also part-way, after some
    windows were yielded), PyAV decodes the file and yields the windows not yielded yet,
    at the same starts. A Vorbis stream read whole is decoded by PyAV first and by
    soundfile when PyAV fails.

    Raises:
        DecodeError: the file is missing, empty or unreadable, or neither decoder could
            decode it: the reason reads "soundfile: <why>; PyAV: <why>".
    """
    path = Path(path)
    _check_file(path)
    length = int(round(window_seconds * SAMPLE_RATE))
    progress = _Progress()
    try:
        yield from _soundfile_windows(path, length, max_windows, progress)
        return
    except _Failed as exc:
        first = exc.reason
    if progress.pyav_failed is not None:  # PyAV went first and failed too
        raise DecodeError(path, f"soundfile: {first}; PyAV: {progress.pyav_failed}")
    log.debug("%s: soundfile failed (%s) after %d windows; decoding with PyAV", path, first, progress.index)
    try:
        yield from _pyav_windows(path, length, max_windows, progress)
    except _Failed as exc:
        raise DecodeError(path, f"soundfile: {first}; PyAV: {exc.reason}") from None


def _ogg_end(path: Path) -> str | None:
    """Why an Ogg file looks cut short, or None when its last page is complete and ends
    the stream (an Ogg header declares no length: a truncated file just ends early)."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        if fh.read(4) != b"OggS":
            return None
        span = min(size, 2 * 65_307)  # two of the largest possible pages
        fh.seek(size - span)
        tail = fh.read(span)
    base = size - span
    found = False
    at = tail.rfind(b"OggS")
    while at >= 0:
        head = tail[at : at + 27]
        if len(head) == 27 and head[4] == 0:
            segments = tail[at + 27 : at + 27 + head[26]]
            if len(segments) == head[26]:
                end = at + 27 + head[26] + sum(segments)
                if base + end == size:  # the page that ends the file
                    return None if head[5] & 0x04 else "its last Ogg page does not end the stream"
                found = True
        at = tail.rfind(b"OggS", 0, at)
    return "the file ends part-way through an Ogg page" if found else None


def _declared_seconds(path: Path) -> float | None:
    """The length a file's header declares (mutagen), or None where the length is not
    declared but derived from the data (Ogg, MP3 without a VBR header, ...)."""
    import mutagen

    try:
        f = mutagen.File(path)
    except Exception:
        return None
    return declared_seconds(path, f)


def declared_seconds(path: Path, f: Any) -> float | None:
    """``_declared_seconds`` from the file's mutagen object ``f`` (None: unreadable)."""
    info = getattr(f, "info", None)
    length = getattr(info, "length", None)
    if info is None or not length or length <= 0 or not math.isfinite(length):
        return None
    kind = type(f).__name__
    if kind.startswith("Ogg"):
        return None
    if kind in {"MP3", "EasyMP3"}:
        bitrate = getattr(info, "bitrate", 0)
        offset = getattr(info, "frame_offset", 0)
        if bitrate and math.isclose(length, 8 * (path.stat().st_size - offset) / bitrate, rel_tol=1e-9):
            return None  # mutagen's guess from the file size, not a header
    if kind == "WAVE":
        rate, channels, bits = (getattr(info, k, 0) for k in ("sample_rate", "channels", "bits_per_sample"))
        if rate and channels and bits and length * rate * channels * bits / 8 >= 0xFFFF_FF00:
            return None  # a streamed WAV whose header was never filled in
    return float(length)


def truncation_warning(path: Path | str, decoded_seconds: float) -> str | None:
    """A one-line warning when ``decoded_seconds`` is far below the length ``path``'s
    header declares (below 90 % and more than 2 s short), or when an Ogg file, whose
    header declares no length, ends part-way through a page or without its end-of-stream
    page; None otherwise, and where the header's length is unknown.
    """
    path = Path(path)
    try:
        declared = _declared_seconds(path)
    except OSError:
        return None
    return truncation_against(path, decoded_seconds, declared)


def truncation_against(path: Path, decoded_seconds: float, declared: float | None) -> str | None:
    """``truncation_warning`` with the header's declared length already read (``declared_seconds``)."""
    try:
        if declared is None:
            cut = _ogg_end(path)
            return None if cut is None else f"decoded {decoded_seconds:.1f} s, and {cut} (truncated?)"
    except OSError:
        return None
    if decoded_seconds < TRUNCATED_SHARE * declared and declared - decoded_seconds > TRUNCATED_SECONDS:
        return f"decoded {decoded_seconds:.1f} s of the {declared:.1f} s its header declares (truncated?)"
    return None
