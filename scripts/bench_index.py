"""Indexing benchmark: the seed guide's pipeline against musicsearch, side by side, one run.

    python scripts/bench_index.py LIBRARY --model FOLDER [--files N] [--long-minutes 60]

Phases (each in its own process, so peak RSS is its own):
  1. seed reference: per file librosa.load(sr=48000, mono) -> ClapProcessor -> get_audio_features
  2. musicsearch, one window per track (--max-windows 1): the same model work as (1)
  3. musicsearch, whole-track coverage (--full)
  4. the model alone on the windows of (3), decoded and featurized beforehand (the compute bound),
     on the same engine as (2)-(3) (onnxruntime on a CPU unless --torch)
  5. (with --long-minutes) musicsearch --full on one generated file of that length: peak RSS
With --repeat N, (1) and (2) run N times, alternating, and every (1)/(2) ratio is printed.
Prints files/s, windows/s, peak RSS and the ratios (1)/(2) and (3)/(4).
A full-size random-weight model from scripts/make_random_clap.py works offline.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def library_files(library: str, n: int | None) -> list[Path]:
    from musicsearch.library import walk

    files = [f.path for f in walk(library)]
    return files[:n] if n else files


def phase_reference(args) -> dict:
    import librosa
    import torch
    from transformers import ClapModel, ClapProcessor

    files = library_files(args.library, args.files)
    model = ClapModel.from_pretrained(args.model).eval()
    processor = ClapProcessor.from_pretrained(args.model)
    t0 = time.perf_counter()
    for path in files:
        audio, _ = librosa.load(path, sr=48_000, mono=True)
        inputs = processor(audio=audio, sampling_rate=48_000, return_tensors="pt")
        with torch.no_grad():
            model.get_audio_features(**inputs)
    seconds = time.perf_counter() - t0
    return {"files": len(files), "windows": len(files), "seconds": seconds}


def _musicsearch(args, library: str, **settings) -> dict:
    from musicsearch import MusicIndex, Settings

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "idx"
        folder.mkdir()
        idx = MusicIndex(
            folder,
            settings=Settings(
                model=args.model,
                model_check=False,
                fast_queries=False,
                onnx_audio=not args.torch,
                audio_int8=args.int8,
                batch_size=args.batch_size,
                workers=args.workers,
                **settings,
            ),
        )
        embedder = idx.embedder()  # load the model before timing, as (1) does
        if args.torch:
            embedder.audio_tower()
        else:
            idx._prepare_audio(embedder)  # the prepared graph (phase "prepare" made it)
        t0 = time.perf_counter()
        report = idx.index(library)
        seconds = time.perf_counter() - t0
    return {"files": len(report.added), "windows": report.windows, "seconds": seconds, "failed": len(report.failed)}


def phase_prepare(args) -> dict:
    """The once-per-model export of the audio tower to ONNX (with its check against torch),
    into the benchmark's own prepared-model cache (MUSICSEARCH_CACHE)."""
    from musicsearch.embed import ClapEmbedder

    embedder = ClapEmbedder(args.model, device="cpu")
    t0 = time.perf_counter()
    cosine = embedder.use_onnx_audio(int8=args.int8)
    return {"files": 0, "windows": 0, "seconds": time.perf_counter() - t0, "cosine": cosine}


def _subset(args) -> str:
    if not args.files:
        return args.library
    folder = Path(tempfile.mkdtemp(prefix="bench-lib-"))
    for p in library_files(args.library, args.files):
        (folder / p.name).symlink_to(p)
    return str(folder)


def phase_one_window(args) -> dict:
    return _musicsearch(args, _subset(args), max_windows=1)


def phase_full(args) -> dict:
    return _musicsearch(args, _subset(args), full=True)


def phase_model_only(args) -> dict:
    import numpy as np
    import torch

    from musicsearch import Settings
    from musicsearch.audio import iter_windows
    from musicsearch.embed import ClapEmbedder

    embedder = ClapEmbedder(args.model)
    if not args.torch:
        embedder.use_onnx_audio(int8=args.int8)  # the engine musicsearch uses
    else:
        embedder.audio_tower()
    feats = []
    batch: list = []
    for path in library_files(args.library, args.files):
        for w in iter_windows(path):
            batch.append(w.samples)
            if len(batch) == (args.batch_size or Settings().batch_for(embedder.device)):
                feats.append(embedder.prepare(np.stack(batch)))  # on a GPU: samples (the mel runs in embed)
                batch = []
    if batch:
        feats.append(embedder.prepare(np.stack(batch)))
    windows = sum(len(f) for f in feats)
    with torch.inference_mode():
        embedder.embed(feats[0][:1])  # warm-up
        t0 = time.perf_counter()
        for f in feats:
            embedder.embed(f)
        seconds = time.perf_counter() - t0
    return {"files": 0, "windows": windows, "seconds": seconds}


def make_long_file(minutes: int) -> Path:
    """A generated stereo 44.1-kHz FLAC this many minutes long: a tone changing each minute
    plus noise. Written by the parent process, so the phase's peak RSS is the indexing's own."""
    import numpy as np
    import soundfile as sf

    path = Path(tempfile.mkdtemp(prefix="bench-long-")) / "long.flac"
    sr = 44_100
    with sf.SoundFile(str(path), "w", sr, 2) as f:
        rng = np.random.default_rng(0)
        for minute in range(minutes):
            t = np.arange(60 * sr) / sr
            x = 0.2 * np.sin(2 * np.pi * (220 + 10 * minute) * t) + 0.02 * rng.standard_normal(60 * sr)
            f.write(np.stack([x, x], axis=1).astype(np.float32))
    return path


def phase_long(args) -> dict:
    return _musicsearch(args, args.long_dir, full=True)


PHASES = {
    "prepare": phase_prepare,
    "reference": phase_reference,
    "one_window": phase_one_window,
    "full": phase_full,
    "model_only": phase_model_only,
    "long": phase_long,
}


def run_phase(name: str, argv: list[str]) -> dict:
    out = subprocess.run([sys.executable, __file__, *argv, "--phase", name], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("library")
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", type=int, default=None, help="only the first N files (sorted)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: musicsearch's (4 on a CPU)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run (1) and (2) this many times, alternating, and print every (1)/(2) ratio with their median",
    )
    ap.add_argument("--long-minutes", type=int, default=0, help="also index one generated file this long")
    ap.add_argument("--int8", action="store_true", help="the opt-in int8 audio tower in (2)-(5)")
    ap.add_argument("--torch", action="store_true", help="run the audio tower in torch, not onnxruntime, in (2)-(5)")
    ap.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--graph-dir", help=argparse.SUPPRESS)
    ap.add_argument("--long-dir", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.phase:
        result = PHASES[args.phase](args)
        result["peak_rss_mb"] = peak_rss_mb()
        print(json.dumps(result))
        return

    graph_dir = tempfile.mkdtemp(prefix="bench-graph-")
    os.environ["MUSICSEARCH_CACHE"] = graph_dir  # a prepared-model cache of the benchmark's own, for every phase
    argv = [*sys.argv[1:], "--graph-dir", graph_dir]
    long_file = make_long_file(args.long_minutes) if args.long_minutes else None
    if long_file is not None:
        argv += ["--long-dir", str(long_file.parent)]
    try:
        run_all(args, argv)
    finally:
        shutil.rmtree(graph_dir, ignore_errors=True)
        if long_file is not None:
            shutil.rmtree(long_file.parent, ignore_errors=True)


def run_all(args, argv: list[str]) -> None:
    import torch

    print(
        f"library {args.library} ({len(library_files(args.library, args.files))} files), model {args.model}, "
        f"torch threads {torch.get_num_threads()}, cpus {os.cpu_count()}, batch {args.batch_size or 'default'}, workers {args.workers}, "
        f"audio tower on {'torch' if args.torch else 'onnxruntime (CPU) / torch (GPU)'}"
    )
    names = ["reference", "one_window", "full", "model_only"] + (["long"] if args.long_minutes else [])
    labels = {
        "reference": "(1) seed pipeline, 1 window/file",
        "one_window": "(2) musicsearch --max-windows 1",
        "full": "(3) musicsearch --full",
        "model_only": "(4) model alone on (3)'s windows",
        "long": f"(5) musicsearch --full, one {args.long_minutes}-min file",
    }
    results = {}
    if not args.torch:
        prep = run_phase("prepare", argv)
        versus = "int8 vs fp32" if args.int8 else "vs torch"
        print(
            f"once per index: audio tower exported to ONNX{' and quantized' if args.int8 else ''} and checked in "
            f"{prep['seconds']:.1f} s (cosine {prep['cosine']:.7f} {versus}); the phases below start from an index that has it"
        )
    print(f"{'phase':40} {'files/s':>8} {'windows/s':>10} {'seconds':>8} {'peak RSS MB':>12}")
    for name in names:
        r = results[name] = run_phase(name, argv)
        fps = r["files"] / r["seconds"] if r["files"] else float("nan")
        print(
            f"{labels[name]:40} {fps:8.2f} {r['windows'] / r['seconds']:10.2f} {r['seconds']:8.1f} {r['peak_rss_mb']:12.0f}",
            flush=True,
        )
    one = results["reference"]["seconds"] / results["one_window"]["seconds"]
    if args.repeat > 1:
        ratios = [one]
        for _ in range(args.repeat - 1):
            ref, ours = run_phase("reference", argv)["seconds"], run_phase("one_window", argv)["seconds"]
            print(f"repeat: (1) {ref:.1f} s, (2) {ours:.1f} s, ratio {ref / ours:.2f}x", flush=True)
            ratios.append(ref / ours)
        print(
            f"(1)/(2) over {len(ratios)} alternating runs: min {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x, "
            f"max {max(ratios):.2f}x"
        )
    cover = (results["full"]["windows"] / results["full"]["seconds"]) / (
        results["model_only"]["windows"] / results["model_only"]["seconds"]
    )
    print(f"(1)/(2) time ratio, same model work: {one:.2f}x faster")
    print(f"(3)/(4) windows/s ratio, end to end vs compute bound: {cover:.3f}")


if __name__ == "__main__":
    main()
