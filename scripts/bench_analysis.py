"""Accuracy and cost of the tempo and key analysis (musicsearch/analysis.py) on generated
audio whose tempo and key are known, decoded and cut into windows as an index run does.

    python scripts/bench_analysis.py [--seconds 60] [--codecs wav,flac,ogg,mp3,m4a] [--model FOLDER]

Tempo: drum patterns (kick, snare on 2 and 4, hi-hat eighths) and plain clicks at 70-180
BPM; right when within 4 % of the truth, and "octave" when within 4 % of it, half or double
(or a third / two thirds / 3x / 1.5x: the usual metrical confusions are counted apart).
Key: I-IV-V-I (major) and i-iv-V-i (minor) chord progressions of additive tones with a
bass line in all 24 keys; right when exact, "near" when a fifth away or the relative key.
Every clip goes through each codec (soundfile: WAV, FLAC, Ogg Vorbis, MP3; PyAV: AAC in
M4A). Cost: CPU seconds of the analysis per track and per embedded window; with ``--model``
(the full-size random CLAP of scripts/make_random_clap.py), the CPU the audio model spends on
the same windows as an index run on this CPU embeds them (log-mel + the ONNX audio tower,
batches of Settings' CPU default), measured in the same run, and the analysis's share of it.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

from musicsearch.analysis import STRIDE, Analyzer, add_window
from musicsearch.audio import SAMPLE_RATE, iter_windows
from musicsearch.keys import ALL_KEYS, MAJOR, Key, wheel_distance

RATE = 44_100
TEMPOS = (70, 80, 90, 100, 110, 120, 124, 128, 135, 140, 150, 160, 170, 180)


def _burst(kind: str, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.15 * RATE)) / RATE
    if kind == "kick":
        return np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 18)
    if kind == "snare":
        return 0.5 * rng.standard_normal(len(t)) * np.exp(-t * 25) + 0.3 * np.sin(2 * np.pi * 190 * t) * np.exp(-t * 20)
    if kind == "hat":
        return 0.15 * rng.standard_normal(len(t)) * np.exp(-t * 80)
    return np.sin(2 * np.pi * 1000 * t) * np.exp(-t * 60)  # click


def rhythm(bpm: float, seconds: float, drums: bool, seed: int = 0) -> np.ndarray:
    """A drum pattern (or a click on every beat) at ``bpm``."""
    rng = np.random.default_rng(seed)
    out = np.zeros(int(seconds * RATE) + RATE)
    beat = 60.0 / bpm
    hits: list[tuple[float, str]] = []
    for n in range(int(seconds / beat) + 1):
        if drums:
            hits += [(n * beat, "snare" if n % 2 else "kick"), (n * beat, "hat"), ((n + 0.5) * beat, "hat")]
        else:
            hits.append((n * beat, "click"))
    for at, kind in hits:
        b = _burst(kind, rng)
        i = int(at * RATE)
        out[i : i + len(b)] += b[: len(out) - i]
    return (0.5 * out / np.abs(out).max())[: int(seconds * RATE)]


def _tone(freq: float, t: np.ndarray) -> np.ndarray:
    return sum(np.sin(2 * np.pi * freq * h * t) / h for h in range(1, 6))  # type: ignore[return-value]


def progression(key: Key, seconds: float) -> np.ndarray:
    """I-IV-V-I (major) or i-iv-V-i (minor, harmonic V), two seconds a chord, with the root
    in the bass."""
    minor = key.mode != MAJOR
    third = 3 if minor else 4
    chords = [(0, third), (5, 3 if minor else 4), (7, 4), (0, third)]
    t = np.arange(int(2.0 * RATE)) / RATE
    env = np.minimum(1, t * 20) * np.exp(-t * 0.6)
    parts = []
    for n in range(int(np.ceil(seconds / 2.0))):
        root, third_up = chords[n % 4]
        base = 261.63 * 2 ** (((key.tonic + root) % 12) / 12)
        notes = [base, base * 2 ** (third_up / 12), base * 2 ** (7 / 12), base / 4]
        parts.append(env * sum(_tone(f, t) for f in notes))
    out = np.concatenate(parts)[: int(seconds * RATE)]
    return 0.5 * out / np.abs(out).max()


def write(path: Path, y: np.ndarray) -> Path:
    """``y`` into ``path``, its codec chosen by the suffix."""
    if path.suffix == ".m4a":
        import av

        with av.open(str(path), "w", format="mp4") as out:
            stream = out.add_stream("aac", rate=RATE)
            stream.layout = "mono"  # type: ignore[attr-defined]
            planar = y.astype(np.float32)[None]
            for i in range(0, planar.shape[1], 1024):
                frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(planar[:, i : i + 1024]), "fltp", "mono")
                frame.sample_rate = RATE
                for packet in stream.encode(frame):  # type: ignore[attr-defined]
                    out.mux(packet)
            for packet in stream.encode(None):  # type: ignore[attr-defined]
                out.mux(packet)
        return path
    kinds = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS"), ".mp3": ("MP3", None)}
    fmt, sub = kinds[path.suffix]
    with sf.SoundFile(str(path), "w", RATE, 1, format=fmt, subtype=sub) as f:
        for i in range(0, len(y), 1 << 15):  # in blocks: libsndfile's Vorbis encoder crashes on one large write
            f.write(y[i : i + (1 << 15)])
    return path


def analyse(path: Path) -> tuple[object, float, int]:
    """The estimate for ``path``, the CPU seconds its analysis took (decoding not counted) and
    the windows an index run embeds."""
    analyzer = Analyzer(SAMPLE_RATE)
    cpu = 0.0
    windows = 0
    for w in iter_windows(path, 10.0):
        t0 = time.process_time()
        add_window(analyzer, w)
        cpu += time.process_time() - t0
        windows += 1
    t0 = time.process_time()
    est = analyzer.result()
    return est, cpu + time.process_time() - t0, windows


def embedding_cpu_per_window(model: str, clips: list[Path], batch: int = 4) -> float:
    """CPU seconds per window of the audio model as a CPU index run uses it (the engine's
    choice: onnxruntime; log-mel in ``prepare``), on the windows of ``clips``."""
    from musicsearch.clap import ClapEmbedder
    from musicsearch.config import Settings
    from musicsearch.engine import prepare_audio

    embedder = ClapEmbedder(model, None, "cpu")
    prepare_audio(embedder, Settings(model=model, fast_queries=False), windows=64)
    waves = np.stack([w.samples for c in clips for w in iter_windows(c, 10.0)])
    embedder.embed(embedder.prepare(waves[:batch]))  # session warm-up, not a window's cost
    t0 = time.process_time()
    for i in range(0, len(waves), batch):
        embedder.embed(embedder.prepare(waves[i : i + batch]))
    return (time.process_time() - t0) / len(waves)


def tempo_ok(found: float | None, truth: float, octaves: bool) -> bool:
    if not found:
        return False
    ratios = (1.0, 0.5, 2.0) if octaves else (1.0,)
    return any(abs(found - truth * r) <= 0.04 * truth * r for r in ratios)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--codecs", default="wav,flac,ogg,mp3,m4a")
    ap.add_argument("--model", help="a CLAP folder: also time the audio model on the same windows")
    args = ap.parse_args()
    codecs = args.codecs.split(",")
    Analyzer(SAMPLE_RATE).add(np.zeros(SAMPLE_RATE * 3, np.float32) + 0.01)  # librosa's imports, not a track's cost
    tempo = {c: [0, 0, 0] for c in codecs}  # right, right allowing octaves, clips
    keys = {c: [0, 0, 0] for c in codecs}  # exact, exact or near, clips
    cpu: list[float] = []
    windows: list[int] = []
    misses: list[str] = []
    model_cpu: float | None = None
    with tempfile.TemporaryDirectory() as tmp:
        for bpm in TEMPOS:
            for drums in (True, False):
                y = rhythm(bpm, args.seconds, drums, seed=bpm)
                for c in codecs:
                    est, spent, n = analyse(write(Path(tmp) / f"r.{c}", y))
                    cpu.append(spent)
                    windows.append(n)
                    found = est.bpm  # type: ignore[attr-defined]
                    tempo[c][0] += tempo_ok(found, bpm, False)
                    tempo[c][1] += tempo_ok(found, bpm, True)
                    tempo[c][2] += 1
                    if not tempo_ok(found, bpm, False):
                        misses.append(f"{'drums' if drums else 'clicks'} {bpm} BPM ({c}): {found}")
        for key in ALL_KEYS:
            y = progression(key, args.seconds)
            for c in codecs:
                est, spent, n = analyse(write(Path(tmp) / f"k.{c}", y))
                cpu.append(spent)
                windows.append(n)
                found = est.key  # type: ignore[attr-defined]
                from musicsearch.keys import find_key

                got = find_key(found)
                keys[c][0] += got == key
                keys[c][1] += got is not None and wheel_distance(got, key) <= 1
                keys[c][2] += 1
                if got != key:
                    misses.append(f"{key.name} ({c}): {found}")
        if args.model:
            clips = [
                write(Path(tmp) / f"m{i}.flac", rhythm(120 + 10 * i, args.seconds, True, seed=i)) for i in range(3)
            ]
            model_cpu = embedding_cpu_per_window(args.model, clips)
    print(f"{'codec':6} {'tempo ±4%':>10} {'±4% any octave':>15} {'key exact':>10} {'fifth/relative':>15}")
    for c in codecs:
        t, k = tempo[c], keys[c]
        print(f"{c:6} {t[0]}/{t[2]:<7} {t[1]}/{t[2]:<12} {k[0]}/{k[2]:<7} {k[1]}/{k[2]}")
    print(f"analysis CPU per {args.seconds:.0f} s track: mean {np.mean(cpu):.3f} s, max {np.max(cpu):.3f} s")
    per_window = 1000 * sum(cpu) / sum(windows)
    analysed = sum(-(-n // STRIDE) for n in windows)
    print(f"analysis CPU per embedded 10 s window: {per_window:.1f} ms (one window in {STRIDE} analysed)")
    print(f"analysis CPU per analysed window: {1000 * sum(cpu) / analysed:.1f} ms")
    if model_cpu is not None:
        print(f"audio model CPU per embedded window ({args.model}): {1000 * model_cpu:.1f} ms")
        print(f"analysis / audio model, per embedded window: {per_window / (1000 * model_cpu):.3f}")
    for m in misses:
        print("  miss:", m)


if __name__ == "__main__":
    main()
