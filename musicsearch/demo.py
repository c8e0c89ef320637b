"""A small generated library to try musicsearch on any machine, music folder or not: drum loops
at known tempos, pads, plucked melodies, bass lines, bells and noises, the kinds of sound a
description can tell apart. Made with numpy, written as tagged FLAC (title, artist, album,
genre, year), once: a later call keeps the files it finds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .config import data_dir

log = logging.getLogger(__name__)

SR = 48_000  # CLAP's own rate: nothing to resample
SECONDS = 20.0
DEMO_INDEX = "demo"
DEMO_QUERIES = (
    "fast drum and bass beat",
    "calm ambient synth pad",
    "rain and noise",
    "plucked strings melody",
    "a low rumbling bass",  # not a title: the demo shows sound search, not a name typed in full
)
"""What ``musicsearch demo`` asks the demo index."""

Sound = Callable[[np.random.Generator], np.ndarray]


def demo_library_dir() -> Path:
    """Where the demo library is written: ``demo-library`` in the user data folder."""
    return data_dir() / "demo-library"


def _t(seconds: float = SECONDS) -> np.ndarray:
    return np.arange(int(seconds * SR)) / SR


def _midi(note: float) -> float:
    return 440.0 * 2 ** ((note - 69) / 12)


def _lowpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    """A brick-wall low-pass in the frequency domain (good enough for generated sound)."""
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / SR) > cutoff] = 0
    return np.fft.irfft(spectrum, len(x))


def _highpass(x: np.ndarray, cutoff: float) -> np.ndarray:
    spectrum = np.fft.rfft(x)
    spectrum[np.fft.rfftfreq(len(x), 1 / SR) < cutoff] = 0
    return np.fft.irfft(spectrum, len(x))


def _place(out: np.ndarray, hit: np.ndarray, at: float, gain: float = 1.0) -> None:
    start = int(at * SR)
    end = min(len(out), start + len(hit))
    if start < end:
        out[start:end] += gain * hit[: end - start]


def _kick() -> np.ndarray:
    t = _t(0.4)
    freq = 50 + 110 * np.exp(-t * 25)
    return np.sin(2 * np.pi * np.cumsum(freq) / SR) * np.exp(-t * 9)


def _snare(rng: np.random.Generator) -> np.ndarray:
    t = _t(0.25)
    return (0.7 * rng.standard_normal(len(t)) + 0.5 * np.sin(2 * np.pi * 190 * t)) * np.exp(-t * 22)


def _hat(rng: np.random.Generator) -> np.ndarray:
    t = _t(0.06)
    return _highpass(rng.standard_normal(len(t)), 7000) * np.exp(-t * 80)


def drum_loop(bpm: float, kicks: tuple[float, ...], snares: tuple[float, ...]) -> Sound:
    """A one-bar pattern repeated at ``bpm``: kicks and snares on these beats (0-4), eighth hi-hats."""

    def make(rng: np.random.Generator) -> np.ndarray:
        out, beat = np.zeros(len(_t())), 60.0 / bpm
        kick, snare, hat = _kick(), _snare(rng), _hat(rng)
        for bar in range(int(SECONDS / (4 * beat)) + 1):
            start = bar * 4 * beat
            for b in kicks:
                _place(out, kick, start + b * beat)
            for b in snares:
                _place(out, snare, start + b * beat, 0.8)
            for eighth in range(8):
                _place(out, hat, start + eighth * beat / 2, 0.25)
        return out

    return make


def pad(notes: tuple[int, ...], cutoff: float) -> Sound:
    """A held chord of detuned saw waves, slowly swelling, low-passed at ``cutoff`` Hz."""

    def make(rng: np.random.Generator) -> np.ndarray:
        t = _t()
        out = np.zeros(len(t))
        for note in notes:
            for detune in (-0.1, 0.0, 0.1):
                f = _midi(note + detune)
                out += 2 * ((t * f + rng.random()) % 1.0) - 1
        swell = 0.6 + 0.4 * np.sin(2 * np.pi * t / 8 - np.pi / 2)
        return _lowpass(out, cutoff) * swell * np.minimum(1.0, t / 2)

    return make


def _pluck(freq: float, seconds: float, rng: np.random.Generator, damping: float) -> np.ndarray:
    """Karplus-Strong: a noise burst in a delay line, averaged once per period."""
    period = max(2, int(SR / freq))
    periods = int(seconds * SR / period) + 1
    out = np.empty((periods, period))
    out[0] = rng.uniform(-1, 1, period)
    for k in range(1, periods):
        prev = out[k - 1]
        out[k] = damping * 0.5 * (prev + np.roll(prev, 1))
    return out.ravel()[: int(seconds * SR)]


def plucked(melody: tuple[int, ...], step: float, damping: float) -> Sound:
    """A repeated melody of plucked strings, one note every ``step`` seconds."""

    def make(rng: np.random.Generator) -> np.ndarray:
        out = np.zeros(len(_t()))
        n = int(SECONDS / step)
        for i in range(n):
            _place(out, _pluck(_midi(melody[i % len(melody)]), 1.5, rng, damping), i * step)
        return out

    return make


def bass(notes: tuple[int, ...], step: float) -> Sound:
    """A bass line: low saw notes through a low-pass, each ``step`` seconds with a short decay."""

    def make(rng: np.random.Generator) -> np.ndarray:
        out = np.zeros(len(_t()))
        t = _t(step)
        for i in range(int(SECONDS / step)):
            f = _midi(notes[i % len(notes)])
            note = (2 * ((t * f) % 1.0) - 1 + np.sin(2 * np.pi * f * t)) * np.exp(-t * 3)
            _place(out, note, i * step)
        return _lowpass(out, 400)

    return make


def bells(notes: tuple[int, ...], step: float) -> Sound:
    """Bell strikes: inharmonic partials with long decays."""

    def make(rng: np.random.Generator) -> np.ndarray:
        out, t = np.zeros(len(_t())), _t(4.0)
        for i in range(int(SECONDS / step)):
            f = _midi(notes[i % len(notes)])
            strike = np.zeros(len(t))
            for ratio, amp, decay in BELL_PARTIALS:
                strike += amp * np.sin(2 * np.pi * f * ratio * t) * np.exp(-t * decay)
            _place(out, strike, i * step)
        return out

    return make


BELL_PARTIALS = ((1.0, 1.0, 1.2), (2.76, 0.5, 2.0), (5.40, 0.3, 3.0), (8.93, 0.2, 4.0))


def rain(rng: np.random.Generator) -> np.ndarray:
    """Rain: soft broadband noise and many tiny random drops."""
    out = 0.3 * _lowpass(rng.standard_normal(len(_t())), 6000)
    drop = _highpass(rng.standard_normal(int(0.01 * SR)), 2000) * np.exp(-np.arange(int(0.01 * SR)) / 60)
    for at in rng.uniform(0, SECONDS, 400):
        _place(out, drop, float(at), float(rng.uniform(0.2, 1.0)))
    return out


def waves(rng: np.random.Generator) -> np.ndarray:
    """Sea waves: low-passed noise swelling and ebbing every few seconds."""
    t = _t()
    return _lowpass(rng.standard_normal(len(t)), 1500) * (0.2 + 0.8 * np.sin(np.pi * t / 6) ** 2)


def white_noise(rng: np.random.Generator) -> np.ndarray:
    return rng.standard_normal(len(_t()))


@dataclass(frozen=True)
class DemoTrack:
    """One generated track: its file name, tags and how to make its sound."""

    file: str
    title: str
    artist: str
    album: str
    genre: str
    sound: Sound


DEMO_TRACKS = (
    DemoTrack(
        "drums-090.flac", "Boom Bap Beat, 90 BPM", "Demo Drums", "Beats", "Hip Hop", drum_loop(90, (0, 2.5), (1, 3))
    ),
    DemoTrack(
        "drums-124.flac",
        "Four on the Floor, 124 BPM",
        "Demo Drums",
        "Beats",
        "House",
        drum_loop(124, (0, 1, 2, 3), (1, 3)),
    ),
    DemoTrack(
        "drums-174.flac", "Breakbeat, 174 BPM", "Demo Drums", "Beats", "Drum and Bass", drum_loop(174, (0, 2.5), (1, 3))
    ),
    DemoTrack("pad-warm.flac", "Warm Pad in C Major", "Demo Synths", "Pads", "Ambient", pad((48, 52, 55, 60), 1800)),
    DemoTrack("pad-dark.flac", "Dark Pad in A Minor", "Demo Synths", "Pads", "Ambient", pad((45, 48, 52, 57), 700)),
    DemoTrack(
        "pluck-harp.flac",
        "Harp Arpeggio",
        "Demo Strings",
        "Plucked",
        "Folk",
        plucked((60, 64, 67, 72, 67, 64), 0.25, 0.996),
    ),
    DemoTrack(
        "pluck-guitar.flac",
        "Guitar Melody",
        "Demo Strings",
        "Plucked",
        "Folk",
        plucked((52, 55, 57, 59, 62, 59, 57, 55), 0.4, 0.99),
    ),
    DemoTrack("bass-deep.flac", "Deep Bass Line", "Demo Synths", "Bass", "Electronic", bass((33, 33, 36, 31), 0.5)),
    DemoTrack("bells.flac", "Church Bells", "Demo Percussion", "Bells", "Ambient", bells((72, 67, 69, 64), 1.5)),
    DemoTrack("rain.flac", "Rain on a Roof", "Demo Field Recordings", "Weather", "Field Recording", rain),
    DemoTrack("waves.flac", "Sea Waves", "Demo Field Recordings", "Weather", "Field Recording", waves),
    DemoTrack("noise.flac", "White Noise", "Demo Field Recordings", "Noise", "Noise", white_noise),
)


def _write(track: DemoTrack, path: Path, seed: int) -> None:
    """Generate, normalize, write and tag one track; it lands by a rename, whole or not at all."""
    import mutagen.flac
    import soundfile as sf

    audio = track.sound(np.random.default_rng(seed))
    audio = (0.5 * audio / max(1e-9, float(np.max(np.abs(audio))))).astype(np.float32)
    partial = path.with_name(f".{path.name}.partial")  # no audio extension: never indexed
    sf.write(partial, audio, SR, format="FLAC")
    tags = mutagen.flac.FLAC(partial)
    tags.update({"title": track.title, "artist": track.artist, "album": f"musicsearch demo: {track.album}"})
    tags.update({"genre": track.genre, "date": "2025", "tracknumber": str(seed + 1)})
    tags.save()
    partial.replace(path)


def build_demo_library(folder: Path | None = None) -> Path:
    """Write the demo tracks that ``folder`` (default: ``demo_library_dir()``) lacks; returns it.

    A track already there is kept as it is, so a second call writes nothing and an index of the
    folder stays unchanged."""
    folder = Path(folder) if folder is not None else demo_library_dir()
    folder.mkdir(parents=True, exist_ok=True)
    for seed, track in enumerate(DEMO_TRACKS):
        path = folder / track.file
        if not path.exists():
            log.info("writing %s", path)
            _write(track, path, seed)
    return folder
