"""Tempo, key and loudness of a track, from the windows already decoded for its embeddings
(48 kHz mono): an ``Analyzer`` takes each window as it is cut (``add``) and keeps only a few
numbers per window, and ``result`` gives the track's ``Estimate``, small enough to travel
from a decode worker with the file's end.

With librosa (docs/analysis.md says why it, and what it gets wrong):

- tempo: librosa's onset-strength envelope and its autocorrelation tempogram, averaged over
  the windows, read by ``librosa.feature.tempo`` (its log-normal prior around 120 BPM picks
  among the periodicities), the peak placed between lags; the confidence is how far the
  tempogram at that tempo stands above its median over 30-300 BPM (1: every frame repeats
  exactly at that period; beatless sound: low).
- key: the chroma (librosa's filter bank over the same spectrogram, log-compressed) summed
  over the windows, correlated with the 24 rotations of Temperley's key profiles (the
  Krumhansl-Schmuckler method); the confidence is the best correlation.
- energy: the RMS level over the analysed audio, in dB below full scale.

Each window is analysed on its own (an onset at each cut would otherwise be a beat).
"""

from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, Window, iter_windows
from .keys import ALL_KEYS, MAJOR, Key
from .store.records import Musical

log = logging.getLogger(__name__)

ANALYSIS_VERSION = 1  # stored with each analysed track (tracks.analysed)
RATE = 22_050  # librosa's rate: what its default frame sizes are tuned for
HOP = 512
N_FFT = 2048
STRIDE = 4  # windows analysed: one in four
TEMPO_WINDOW = 384  # tempogram frames (8.9 s), librosa's default
MIN_SECONDS = 2.0  # a window shorter than this adds nothing (too short for a tempogram)
SILENCE_DB = -60.0  # quieter windows add nothing to tempo or key

# Temperley's (2001) key profiles, C major and C minor: the Krumhansl-Kessler probe-tone
# ratings took a major key for its mediant minor on the benchmark's chord progressions
# (scripts/bench_analysis.py); these got every key right there, whatever the compression.
MAJOR_PROFILE = np.array([5.0, 2.0, 3.5, 2.0, 4.5, 4.0, 2.0, 4.5, 2.0, 3.5, 1.5, 4.0])
MINOR_PROFILE = np.array([5.0, 2.0, 3.5, 4.5, 2.0, 4.0, 2.0, 4.5, 3.5, 2.0, 1.5, 4.0])


@dataclass(frozen=True)
class Estimate:
    """What the analysis of one track found; None where it found nothing (silence, too short)."""

    bpm: float | None = None
    bpm_confidence: float | None = None
    key: str | None = None  # "A minor" (``Key.name``)
    key_confidence: float | None = None
    energy: float | None = None  # RMS level, dBFS


def key_scores(chroma: np.ndarray) -> np.ndarray:
    """The correlation of a 12-bin chroma with each of ``ALL_KEYS``' profiles."""
    scores = np.zeros(len(ALL_KEYS))
    c = chroma - chroma.mean()
    norm = np.linalg.norm(c)
    if norm == 0:
        return scores
    for n, key in enumerate(ALL_KEYS):
        profile = np.roll(MAJOR_PROFILE if key.mode == MAJOR else MINOR_PROFILE, key.tonic)
        p = profile - profile.mean()
        scores[n] = float(c @ p) / (norm * np.linalg.norm(p))
    return scores


def best_key(chroma: np.ndarray) -> tuple[Key, float] | None:
    """The key whose profile best matches ``chroma`` and the correlation, or None for a flat one."""
    scores = key_scores(chroma)
    if not scores.any():
        return None
    n = int(np.argmax(scores))
    return ALL_KEYS[n], float(scores[n])


@functools.lru_cache(maxsize=1)
def _filters() -> tuple[np.ndarray, np.ndarray]:
    """The mel (onsets) and chroma filter banks over the spectrogram's bins."""
    import librosa

    mel = librosa.filters.mel(sr=RATE, n_fft=N_FFT, n_mels=64)
    chroma = librosa.filters.chroma(sr=RATE, n_fft=N_FFT, tuning=0.0)
    return mel, chroma


def _prominence(curve: np.ndarray, lag: int) -> float:
    """How far the tempogram at ``lag`` stands above its median over the lags of 30-300 BPM,
    as a fraction of the way to a perfect repeat (1): a steady beat scores high, noise and
    beatless sound (whose autocorrelation is high at every lag) near 0."""
    lags = np.arange(len(curve))
    bpm = np.where(lags > 0, 60.0 * RATE / HOP / np.maximum(lags, 1), np.inf)
    band = curve[(bpm >= 30) & (bpm <= 300)]
    if not 0 < lag < len(curve) or not len(band):
        return 0.0
    floor = float(np.median(band))
    return round(float(np.clip((curve[lag] - floor) / max(1.0 - floor, 1e-9), 0.0, 1.0)), 3)


def _peak(curve: np.ndarray, at: int) -> float:
    """The peak of ``curve`` near index ``at``, between samples (a parabola through the
    highest sample and its neighbours): a tempogram's lags are 2-3 % apart near 140 BPM."""
    if not 0 < at < len(curve) - 1:
        return float(at)
    left, mid, right = curve[at - 1], curve[at], curve[at + 1]
    if mid < left or mid < right:  # not the local top: step to the higher neighbour
        at += 1 if right > left else -1
        return (
            _peak(curve, at)
            if 0 < at < len(curve) - 1 and curve[at] >= max(curve[at - 1], curve[at + 1])
            else float(at)
        )
    bend = left - 2 * mid + right
    return float(at) if bend >= 0 else at + 0.5 * (left - right) / bend


class Analyzer:
    """The analysis of one track, window by window (``add``), then ``result``."""

    def __init__(self, rate: int) -> None:
        self.rate = rate
        self.tempogram = np.zeros(TEMPO_WINDOW)
        self.frames = 0
        self.chroma = np.zeros(12)
        self.power = 0.0
        self.samples = 0
        self.failed = False

    def add(self, samples: np.ndarray) -> None:
        """One window's samples (mono float32 at ``rate``), without the padding past the
        track's end: one spectrogram (22,050 Hz, 2,048-point frames every 512 samples) gives
        both the onset envelope (from 64 mel bands) and the chroma."""
        import librosa
        import soxr

        y = np.asarray(samples, dtype=np.float32)
        power = float(np.dot(y, y))
        self.power += power
        self.samples += len(y)
        if len(y) < MIN_SECONDS * self.rate or 10 * math.log10(power / len(y) + 1e-12) < SILENCE_DB:
            return
        y = soxr.resample(y, self.rate, RATE, quality="LQ") if self.rate != RATE else y
        spectrum = np.abs(librosa.stft(y, n_fft=N_FFT, hop_length=HOP)) ** 2
        mel, chroma = _filters()
        onsets = librosa.onset.onset_strength(S=librosa.power_to_db(mel @ spectrum), sr=RATE, hop_length=HOP)
        tg = librosa.feature.tempogram(onset_envelope=onsets, sr=RATE, hop_length=HOP, win_length=TEMPO_WINDOW)
        tg = np.nan_to_num(tg)
        self.tempogram += tg.sum(axis=1)
        self.frames += tg.shape[1]
        c = chroma @ spectrum
        top = c.max()
        if top > 0:  # log-compressed: a loud note's overtones weigh less (the parallel key otherwise wins)
            self.chroma += np.log1p(10 * c / top).sum(axis=1)

    def finish(self) -> Estimate | None:
        """``result``, or None (logged) where the analysis failed: it never fails a file."""
        if self.failed:
            return None
        try:
            return self.result()
        except Exception as exc:
            log.warning("tempo and key analysis failed (%s: %s); indexing without them", type(exc).__name__, exc)
            return None

    def result(self) -> Estimate:
        """The track's tempo, key and energy from what ``add`` was given."""
        import librosa

        energy = 10 * math.log10(self.power / self.samples + 1e-12) if self.samples else None
        bpm = confidence = None
        if self.frames:
            mean = (self.tempogram / self.frames)[:, None]
            found = float(librosa.feature.tempo(tg=mean, sr=RATE, hop_length=HOP)[0])
            if found > 0:
                lag = int(round(60.0 * RATE / HOP / found))
                exact = _peak(mean[:, 0], lag)
                bpm = round(60.0 * RATE / HOP / exact, 2)
                confidence = _prominence(mean[:, 0], lag)
        key = best_key(self.chroma) if self.chroma.any() else None
        return Estimate(
            bpm=bpm,
            bpm_confidence=confidence,
            key=key[0].name if key else None,
            key_confidence=round(key[1], 3) if key else None,
            energy=round(energy, 2) if energy is not None else None,
        )


def add_window(analyzer: Analyzer, window: Window) -> None:
    """One window as cut for the embeddings (its repeat-padding past the track's end left
    out), if it is one of every ``STRIDE``: the first, the fifth, ... (the cost stays near
    a tenth of the embedding's on a CPU; docs/analysis.md)."""
    if window.index % STRIDE or analyzer.failed:
        return
    n = int(round((window.end - window.start) * analyzer.rate))
    try:
        analyzer.add(window.samples[: max(n, 0)])
    except Exception as exc:  # the analysis never fails a file: the track is indexed without it
        log.warning("tempo and key analysis failed (%s: %s); indexing without them", type(exc).__name__, exc)
        analyzer.failed = True


def analyse_file(path: Path, window_seconds: float, max_windows: int | None = None) -> Estimate | None:
    """Decode ``path`` into the windows an index run cuts and analyse them: for tracks indexed
    before the analysis existed (``index`` fills them in without embedding again).

    Raises:
        DecodeError: the file cannot be decoded.
    """
    analyzer = Analyzer(SAMPLE_RATE)
    for w in iter_windows(path, window_seconds, max_windows):
        add_window(analyzer, w)
    return analyzer.finish()


def musical_of(tags: dict[str, Any], estimate: Estimate | None) -> Musical:
    """What the index stores of a track's tempo, key and energy: the file's own tempo and key
    tags (``tags["bpm"]``, ``tags["key"]``, read by tags.py) win over the estimates, and the
    source of each value is kept."""
    est = estimate or Estimate()
    bpm, key = tags.get("bpm"), tags.get("key")
    return Musical(
        bpm=bpm if bpm is not None else est.bpm,
        bpm_confidence=None if bpm is not None else est.bpm_confidence,
        bpm_source="tag" if bpm is not None else ("estimate" if est.bpm is not None else None),
        key=key if key is not None else est.key,
        key_confidence=None if key is not None else est.key_confidence,
        key_source="tag" if key is not None else ("estimate" if est.key is not None else None),
        energy=est.energy,
        analysed=ANALYSIS_VERSION if estimate is not None else None,
    )
