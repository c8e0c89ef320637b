"""Indexing benchmark: the seed guide's pipeline against musicsearch, side by side, one run.

    python scripts/bench_index.py LIBRARY --model FOLDER [--files N] [--long-minutes 60]

Phases (each in its own process, so peak RSS is its own):
  1. seed reference: per file librosa.load(sr=48000, mono) -> ClapProcessor -> get_audio_features
  2. musicsearch, one window per track (--max-windows 1): the same model work as (1)
  3. musicsearch, whole-track coverage (--full)
  4. the model alone on the windows of (3), decoded and featurized beforehand (the compute bound),
     on the same engine as (2)-(3) (onnxruntime on a CPU unless --torch)
  5. (with --long-minutes) musicsearch --full on one generated file of that length: peak RSS
  F. the feed alone: musicsearch --full with a model that does nothing (decode + resample +
     windows + mel, through the worker processes and the bounded queue), with 1, 2, ... N
     workers (--feed-workers); on a GPU the model's log-mel still runs on the device
  H. on a GPU: the model alone in half precision (--precision auto: bf16 or fp16, checked)
With --threads-too, (3) and every (F) also run with decoding in threads of the indexing process
(musicsearch's fallback for embedders that cannot be pickled), marked [threads], alternating
with the worker-process runs, and the ratios are printed for both.
With --repeat N, (1) and (2) run N times, alternating, and every (1)/(2) ratio is printed.
Prints files/s, windows/s, peak memory and the ratios (1)/(2), (3)/(4), feed(n)/feed(1) and
end to end / min(model alone, feed). Peak memory is the phase process's peak RSS and the peak
PSS summed over it and its worker processes (sampled every 0.5 s from /proc; PSS counts
shared pages once).
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


class TreePss:
    """Samples the PSS of this process and its descendants (the decode workers, forked by
    multiprocessing's fork server) every 0.5 s; ``peak_mb`` is the largest sum seen."""

    def __init__(self) -> None:
        import threading

        self.peak_mb = 0.0
        self.cpu_ticks: dict[int, int] = {}
        self.own_cpu_s = 0.0  # the sampler's own CPU, left out of the phase's figures
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    @staticmethod
    def _tree() -> set[int]:
        parents = {}
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                try:
                    parents[int(entry)] = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
                except (OSError, IndexError, ValueError):
                    pass
        found, frontier = {os.getpid()}, {os.getpid()}
        while frontier:
            frontier = {p for p, pp in parents.items() if pp in frontier} - found
            found |= frontier
        return found

    @staticmethod
    def _pss_kb(pid: int) -> int:
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Pss:"):
                    return int(line.split()[1])
        except OSError:
            pass
        return 0

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            t0 = time.thread_time()
            tree = self._tree()
            self.peak_mb = max(self.peak_mb, sum(self._pss_kb(p) for p in tree) / 1024)
            for pid in tree - {os.getpid()}:
                try:
                    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
                    self.cpu_ticks[pid] = int(fields[11]) + int(fields[12])  # utime + stime
                except (OSError, IndexError, ValueError):
                    pass
            self.own_cpu_s += time.thread_time() - t0

    def workers_cpu_s(self) -> float:
        """CPU seconds of the descendants (the workers), as last sampled."""
        return sum(self.cpu_ticks.values()) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> float:
        self._stop.set()
        self._thread.join()
        return self.peak_mb


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


class NullEmbedder:
    """A model that does nothing: the real model's ``prepare`` (the CLAP log-mel on a CPU,
    in the decode workers); ``embed`` computes the mel on the device where the real model
    would (a GPU) and returns constant vectors. Picklable: the workers get the light copy."""

    def __init__(self, model: str) -> None:
        from musicsearch.clap import ClapEmbedder

        self.inner = ClapEmbedder(model)
        self.model_id, self.revision, self.dim = "null-" + self.inner.model_id, None, self.inner.dim
        self.window_seconds, self.logit_scale = self.inner.window_seconds, 1.0

    @property
    def device(self) -> str:
        return self.inner.device

    def prepare(self, waves):
        return self.inner.prepare(waves)

    def embed(self, prepared):
        import numpy as np

        if self.inner.device != "cpu":
            self.inner.features(self.inner._to_device(prepared)).sum().item()  # the mel, on the device
        out = np.zeros((len(prepared), self.dim), np.float32)
        out[:, 0] = 1.0
        return out

    def embed_texts(self, texts):
        raise NotImplementedError


def _decode_in_threads(args) -> None:
    """--decode threads: the same code's fallback path (decoding in threads of this process)."""
    if args.decode == "threads":
        from musicsearch.indexing import feed

        feed._shippable = lambda embedder: None


THREADS_NOTE = "decoding in threads instead"


def _musicsearch(args, library: str, embedder=None, **settings) -> dict:
    from musicsearch import MusicIndex, Settings
    from musicsearch.engine import prepare_audio

    _decode_in_threads(args)

    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp) / "idx"
        folder.mkdir()
        tree = TreePss()
        idx = MusicIndex(
            folder,
            settings=Settings(
                model=args.model,
                model_check=False,
                fast_queries=False,
                onnx_audio=not args.torch,
                audio_int8=args.int8,
                batch_size=args.batch_size,
                **({"precision": args.precision} if args.precision != "auto" else {}),
                **{**({"workers": args.workers} if args.workers else {}), **settings},
            ),
            embedder=embedder,
        )
        embedder = idx.embedder()  # load the model before timing, as (1) does
        if isinstance(embedder, NullEmbedder):
            pass
        elif args.torch:
            embedder.audio_tower()
        else:
            prepare_audio(embedder, idx.settings)  # the prepared graph (phase "prepare" made it)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        report = idx.index(library)
        seconds = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "main_cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime - tree.own_cpu_s,
        "files": len(report.added),
        "windows": report.windows,
        "seconds": seconds,
        "failed": len(report.failed),
        "tree_pss_mb": tree.stop(),
        "workers_cpu_s": tree.workers_cpu_s(),
        "notes": report.notes,
    }


def phase_prepare(args) -> dict:
    """The once-per-model export of the audio tower to ONNX (with its check against torch),
    into the benchmark's own prepared-model cache (MUSICSEARCH_CACHE)."""
    from musicsearch.clap import ClapEmbedder

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


def phase_feed(args) -> dict:
    """The feed alone with --feed-n workers: a model that does nothing (with --startup: on one
    generated 1-s file, the process's fixed cost)."""
    if args.startup:
        folder = Path(tempfile.mkdtemp(prefix="bench-startup-"))
        import numpy as np
        import soundfile as sf

        sf.write(folder / "one.wav", np.zeros(48_000, np.float32), 48_000)
        library = str(folder)
    else:
        library = _subset(args)
    return _musicsearch(args, library, embedder=NullEmbedder(args.model), full=True, workers=args.feed_n)


def phase_model_only(args) -> dict:
    import numpy as np
    import torch

    from musicsearch import Settings
    from musicsearch.audio import iter_windows
    from musicsearch.clap import ClapEmbedder

    embedder = ClapEmbedder(
        args.model, **({"precision": args.model_precision} if args.model_precision != "fp32" else {})
    )
    if embedder.device == "cpu" and not args.torch:
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
        embedder.embed(feats[0])  # warm-up (on a GPU in half precision: the check against fp32)
        cpu0 = resource.getrusage(resource.RUSAGE_SELF)
        t0 = time.perf_counter()
        for f in feats:
            embedder.embed(f)
        seconds = time.perf_counter() - t0
        cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "main_cpu_s": cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime,
        "files": 0,
        "windows": windows,
        "seconds": seconds,
        "notes": embedder.take_notes() if hasattr(embedder, "take_notes") else [],  # (older musicsearch: none)
    }


def phase_model_half(args) -> dict:
    args.model_precision = args.precision if args.precision in ("bf16", "fp16") else "auto"
    return phase_model_only(args)


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
    "model_half": phase_model_half,
    "feed": phase_feed,
    "long": phase_long,
}


def run_phase(name: str, argv: list[str], *extra: str) -> dict:
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, __file__, *argv, "--phase", name, *extra], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"phase {name} failed:\n{out.stderr[-3000:]}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    result["process_s"] = time.perf_counter() - t0  # the whole process: start-up, imports, model, run, exit
    threads = "--decode" in extra and "threads" in extra  # the fallback was asked for: not worth a note
    warnings = [
        line
        for line in out.stderr.splitlines()
        if line.startswith("WARNING musicsearch") and not (threads and THREADS_NOTE in line)
    ]
    result["notes"] = (result.get("notes") or []) + warnings
    return result


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("library")
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", type=int, default=None, help="only the first N files (sorted)")
    ap.add_argument("--batch-size", type=int, default=None, help="default: musicsearch's (4 on a CPU)")
    ap.add_argument("--workers", type=int, default=None, help="decode workers in (2)-(5) (default: the cores)")
    ap.add_argument(
        "--feed-workers", default=None, help="worker counts for the feed phase, e.g. 1,2,4 (default: 1..cores)"
    )
    ap.add_argument("--precision", default="auto", help="musicsearch --precision in (2)-(5) (GPU only)")
    ap.add_argument("--skip-reference", action="store_true", help="leave out (1) and (2)")
    ap.add_argument("--feed-only", action="store_true", help="only the feed phases (F)")
    ap.add_argument(
        "--whole",
        action="store_true",
        help="also time each feed phase as a whole process, less its fixed start-up (the same process on one 1-s file)",
    )
    ap.add_argument(
        "--threads-too",
        action="store_true",
        help="also run (3) and (F) with decoding in threads (the fallback path), side by side",
    )
    ap.add_argument(
        "--repeat",
        type=int,
        default=1,
        help="run (1) and (2), and the feed phases, this many times, alternating, and print every ratio with the median",
    )
    ap.add_argument("--long-minutes", type=int, default=0, help="also index one generated file this long")
    ap.add_argument("--int8", action="store_true", help="the opt-in int8 audio tower in (2)-(5)")
    ap.add_argument("--torch", action="store_true", help="run the audio tower in torch, not onnxruntime, in (2)-(5)")
    ap.add_argument("--phase", choices=list(PHASES), help=argparse.SUPPRESS)
    ap.add_argument("--graph-dir", help=argparse.SUPPRESS)
    ap.add_argument("--long-dir", help=argparse.SUPPRESS)
    ap.add_argument("--feed-n", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--startup", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--decode", choices=["processes", "threads"], default="processes", help=argparse.SUPPRESS)
    args = ap.parse_args()
    args.model_precision = "fp32"
    if args.phase:
        import logging

        logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
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

    from musicsearch.config import default_workers
    from musicsearch.device import pick_device

    cores = default_workers()
    device = pick_device("auto")
    feed_ns = [int(n) for n in args.feed_workers.split(",")] if args.feed_workers else list(range(1, cores + 1))
    print(
        f"library {args.library} ({len(library_files(args.library, args.files))} files), model {args.model}, "
        f"device {device}{' (' + torch.cuda.get_device_name() + ')' if device == 'cuda' else ''}, "
        f"torch threads {torch.get_num_threads()}, cores {cores}, batch {args.batch_size or 'default'}, "
        f"workers {args.workers or cores}, audio tower on {'torch' if args.torch else 'onnxruntime (CPU) / torch (GPU)'}"
    )
    both = args.threads_too
    names = ([] if args.skip_reference else ["reference", "one_window"]) + ["full"] + (["full_t"] if both else [])
    names.append("model_only")
    if device == "cuda":
        names.append("model_half")
    feeds = [name for n in feed_ns for name in ([f"feed{n}", f"feed{n}_t"] if both else [f"feed{n}"])]
    names += feeds + (["long"] if args.long_minutes else [])
    if args.feed_only:
        names = [n for n in names if n.startswith("feed")]
    labels = {
        "reference": "(1) seed pipeline, 1 window/file",
        "one_window": "(2) musicsearch --max-windows 1",
        "full": "(3) musicsearch --full",
        "model_only": "(4) model alone on (3)'s windows, fp32",
        "model_half": "(H) model alone, half precision",
        "long": f"(5) musicsearch --full, one {args.long_minutes}-min file",
        **{f"feed{n}": f"(F) feed alone, {n} worker{'s' if n > 1 else ''}" for n in feed_ns},
    }
    labels.update({f"{name}_t": f"{labels[name]} [threads]" for name in ["full", *(f"feed{n}" for n in feed_ns)]})

    def phase(name: str) -> dict:
        extra = ["--decode", "threads"] if name.endswith("_t") else []
        base = name.removesuffix("_t")
        if base.startswith("feed"):
            return run_phase("feed", argv, "--feed-n", base[4:], *extra)
        return run_phase(base, argv, *extra)

    results = {}
    if not args.torch and device == "cpu" and not args.feed_only:
        prep = run_phase("prepare", argv)
        versus = "int8 vs fp32" if args.int8 else "vs torch"
        print(
            f"once per index: audio tower exported to ONNX{' and quantized' if args.int8 else ''} and checked in "
            f"{prep['seconds']:.1f} s (cosine {prep['cosine']:.7f} {versus}); the phases below start from an index that has it"
        )
    if device == "cpu":
        print("(H) half precision: not run (half precision is only for CUDA GPUs)")
    print(f"{'phase':42} {'files/s':>8} {'windows/s':>10} {'seconds':>8} {'peak RSS MB':>12} {'tree PSS MB':>12}")
    for name in names:
        r = results[name] = phase(name)
        fps = r["files"] / r["seconds"] if r["files"] else float("nan")
        tree = f"{r['tree_pss_mb']:12.0f}" if "tree_pss_mb" in r else f"{'-':>12}"
        print(
            f"{labels[name]:42} {fps:8.2f} {r['windows'] / r['seconds']:10.2f} {r['seconds']:8.1f} "
            f"{r['peak_rss_mb']:12.0f} {tree}",
            flush=True,
        )
        for note in r.get("notes") or []:
            print(f"    note: {note}")
    rate = {name: r["windows"] / r["seconds"] for name, r in results.items()}
    for name, r in results.items():
        if "main_cpu_s" in r:
            per = 1000 / max(r["windows"], 1)
            workers = f", its workers {r['workers_cpu_s'] * per:.1f} ms" if "workers_cpu_s" in r else ""
            print(f"    {labels[name]}: CPU a window: this process {r['main_cpu_s'] * per:.1f} ms{workers}")
    modes = ["", "_t"] if both else [""]
    feed_ratios = {(n, m): [rate[f"feed{n}{m}"] / rate[f"feed{feed_ns[0]}{m}"]] for n in feed_ns[1:] for m in modes}
    for _ in range(args.repeat - 1 if len(feed_ns) > 1 else 0):  # the feed phases again, alternating
        again = {name: phase(name) for name in feeds}
        again_rate = {name: r["windows"] / r["seconds"] for name, r in again.items()}
        line = []
        for n in feed_ns[1:]:
            for m in modes:
                ratio = again_rate[f"feed{n}{m}"] / again_rate[f"feed{feed_ns[0]}{m}"]
                feed_ratios[n, m].append(ratio)
                line.append(f"{n}/{feed_ns[0]} workers{' [threads]' if m else ''} {ratio:.2f}x")
        rates = ", ".join(f"{labels[name].removeprefix('(F) feed alone, ')}: {v:.2f}" for name, v in again_rate.items())
        print(f"repeat: feed windows/s {rates}; " + ", ".join(line), flush=True)
    for (n, m), ratios in feed_ratios.items():
        extra = (
            f" (over {len(ratios)} alternating runs: min {min(ratios):.2f}x, median {statistics.median(ratios):.2f}x)"
            if len(ratios) > 1
            else ""
        )
        print(f"feed with {n} workers / with {feed_ns[0]}{' [threads]' if m else ''}: {ratios[0]:.2f}x{extra}")
    if args.whole and len(feed_ns) > 1:
        whole_feed(args, argv, feed_ns, phase)
    if args.feed_only:
        return
    if not args.skip_reference:
        one = results["reference"]["seconds"] / results["one_window"]["seconds"]
        if args.repeat > 1:
            ratios = [one]
            for _ in range(args.repeat - 1):
                ref, ours = run_phase("reference", argv)["seconds"], run_phase("one_window", argv)["seconds"]
                print(f"repeat: (1) {ref:.1f} s, (2) {ours:.1f} s, ratio {ref / ours:.2f}x", flush=True)
                ratios.append(ref / ours)
            print(
                f"(1)/(2) over {len(ratios)} alternating runs: min {min(ratios):.2f}x, "
                f"median {statistics.median(ratios):.2f}x, max {max(ratios):.2f}x"
            )
        print(f"(1)/(2) time ratio, same model work: {one:.2f}x faster")
    print(f"(3)/(4) windows/s ratio, end to end vs compute bound: {rate['full'] / rate['model_only']:.3f}")
    if both:
        print(f"(3)/(4) [threads]: {rate['full_t'] / rate['model_only']:.3f}")
    workers = args.workers or cores
    if f"feed{workers}" in rate:
        model = rate.get("model_half", rate["model_only"])
        bound = min(model, rate[f"feed{workers}"])
        print(
            f"end to end / min(model alone, feed with {workers} workers) = {rate['full']:.2f} / {bound:.2f} "
            f"= {rate['full'] / bound:.3f}"
        )


def whole_feed(args, argv: list[str], feed_ns: list[int], phase) -> None:
    """(F) as whole processes: wall time of the process (start-up, imports, model, workers, run,
    exit) less the same process on one 1-s file (its fixed cost), alternating worker counts,
    --repeat times; the ratios n workers / first count."""
    ratios: dict[int, list[float]] = {n: [] for n in feed_ns[1:]}
    for r in range(args.repeat):
        work = {}
        for n in feed_ns:
            run, fixed = phase(f"feed{n}"), run_phase("feed", argv, "--feed-n", str(n), "--startup")
            work[n] = run["process_s"] - fixed["process_s"]
            print(
                f"whole process, {n} worker{'s' if n > 1 else ''}: {run['process_s']:.2f} s, of which fixed start-up "
                f"{fixed['process_s']:.2f} s (one 1-s file): {work[n]:.2f} s for {run['windows']} windows",
                flush=True,
            )
        for n in feed_ns[1:]:
            ratios[n].append(work[feed_ns[0]] / work[n])
        print(f"run {r + 1}: " + ", ".join(f"{n}/{feed_ns[0]} workers {ratios[n][-1]:.2f}x" for n in feed_ns[1:]))
    for n, values in ratios.items():
        print(
            f"whole process, start-up taken off, {n} workers / {feed_ns[0]}: median {statistics.median(values):.2f}x "
            f"({', '.join(f'{v:.2f}' for v in values)})"
        )


if __name__ == "__main__":
    main()
