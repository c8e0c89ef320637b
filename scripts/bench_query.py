"""Query latency with the model loaded (Python API) on a large synthetic index, or a cold
`musicsearch query` as a whole process.

    python scripts/bench_query.py --model FOLDER [--tracks 100000] [--queries 50]

Builds an index of N tracks (random unit vectors, 3 windows each) bound to FOLDER's model,
exports its text tower to ONNX as `musicsearch index` does, then times `MusicIndex.search`
(text -> vector -> FAISS -> hits with best window) on warm state: first through the ONNX text
tower, then through torch, side by side. Prints p50/p95 in ms and their ratio.

    git archive BASE musicsearch | tar -x -C /tmp/base   # the code to compare with
    python scripts/bench_query.py --model FOLDER --tracks 2000 --cold 6 --baseline /tmp/base

``--cold RUNS`` times `python -m musicsearch query` as a whole process instead (wall time and
peak RSS per process, the prepared model made once beforehand), alternating this checkout's
code with ``--baseline``'s (a folder holding another version's ``musicsearch`` package, run on
the same index and prepared model) so that the machine's load hits both alike; then, for each,
the imports (``-X importtime``: the top-level modules' cumulative time), the text session's
start (``OnnxTextEncoder.from_prepared``, 3 fresh processes each) with the largest difference
between the two versions' vectors, and which heavy modules a query left unimported.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPTS = [
    "upbeat electronic with a strong bassline",
    "solo piano, slow and sad",
    "warm analog synth pads",
    "epic orchestral battle music",
    "quiet acoustic guitar",
    "jazz trio with brushed drums",
    "aggressive metal riffs",
    "ambient drone with field recordings",
    "funky bass and horns",
    "a choir singing in a cathedral",
]


def build(folder: Path, model: str, tracks: int, dim: int) -> None:
    from musicsearch.store import IndexMeta, Store, to_blob

    store = Store(folder, create=True)
    store.record_meta(IndexMeta.new(model, None, dim, 10.0, checked=False))
    rng = np.random.default_rng(0)
    chunk = 10_000
    with store.write():
        for base in range(0, tracks, chunk):
            n = min(chunk, tracks - base)
            w = rng.standard_normal((n, 3, dim)).astype(np.float32)
            w /= np.linalg.norm(w, axis=2, keepdims=True)
            mean = w.mean(axis=1)
            mean /= np.linalg.norm(mean, axis=1, keepdims=True)
            store.db["tracks"].insert_all(
                (
                    {
                        "id": base + i + 1,
                        "path": f"/music/artist{(base + i) % 997}/track{base + i}.flac",
                        "size": 1,
                        "mtime_ns": 1,
                        "hash": f"{base + i:032x}",
                        "title": f"Track {base + i}",
                        "artist": f"Artist {(base + i) % 997}",
                        "duration": 180.0,
                        "n_windows": 3,
                        "vector": to_blob(mean[i]),
                    }
                    for i in range(n)
                ),
                batch_size=2000,
            )
            store.db["windows"].insert_all(
                (
                    {
                        "track_id": base + i + 1,
                        "idx": j,
                        "start": 10.0 * j,
                        "end": 10.0 * j + 10,
                        "vector": to_blob(w[i, j]),
                    }
                    for i in range(n)
                    for j in range(3)
                ),
                batch_size=6000,
            )
    store.close()


def time_queries(idx, queries: int) -> list[float]:
    idx.search(PROMPTS[0], k=10)  # warm: model, FAISS file, SQLite pages
    times = []
    for q in range(queries):
        t0 = time.perf_counter()
        hits = idx.search(PROMPTS[q % len(PROMPTS)] + f" {q}", k=10)
        times.append((time.perf_counter() - t0) * 1000)
        assert len(hits) == 10
    return times


HEAVY = (
    "torch",
    "transformers",
    "musicsearch.indexing.runner",
    "musicsearch.indexing.feed",
    "musicsearch.audio",
    "soundfile",
    "librosa",
    "fastapi",
    "tqdm",
)
QUERY = ["-m", "musicsearch", "query", "upbeat electronic", "--no-model-check", "-k", "10"]
SESSION = """
import json, sys, time
from musicsearch.onnx_towers import OnnxTextEncoder
from musicsearch.prepared import PreparedModel
t0 = time.perf_counter()
encoder = OnnxTextEncoder.from_prepared(PreparedModel(sys.argv[1], None))
session_s = time.perf_counter() - t0
vectors = encoder.embed_texts(["upbeat electronic", "solo piano, slow and sad", "x"])
print(json.dumps({"session_s": session_s, "vectors": vectors.tolist()}))
"""
UNIMPORTED = """
import runpy, sys
sys.argv = ["musicsearch", *sys.argv[1:]]
try:
    runpy.run_module("musicsearch", run_name="__main__")
except SystemExit:
    pass
print("HEAVY:", " ".join(m for m in __HEAVY__ if m in sys.modules) or "none")
"""


def run_process(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, peak RSS in MB, stdout) of one Python process, run in a neutral folder
    (the current one comes first on ``sys.path``: a checkout there would shadow PYTHONPATH)."""
    with tempfile.TemporaryFile() as err:
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, *args], env=env, stdout=subprocess.PIPE, stderr=err, cwd=tempfile.gettempdir()
        )
        assert proc.stdout is not None
        out = proc.stdout.read().decode()
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - t0
        proc.returncode = os.waitstatus_to_exitcode(status)
        if proc.returncode:
            err.seek(0)
            raise SystemExit(f"{args} failed:\n{err.read().decode()}")
    return wall, usage.ru_maxrss / 1024, out


def import_seconds(env: dict[str, str], index: str) -> float:
    """The summed cumulative time of the top-level imports of a cold query (``-X importtime``)."""
    proc = subprocess.run(
        [sys.executable, "-X", "importtime", *QUERY, "--index", index],
        env=env,
        capture_output=True,
        text=True,
        cwd=tempfile.gettempdir(),
    )
    total = 0
    for line in proc.stderr.splitlines():
        parts = line.split("|")
        top = len(parts) == 3 and not parts[2].startswith("  ")  # nested imports are indented further
        if line.startswith("import time:") and top and parts[1].strip().isdigit():
            total += int(parts[1])
    return total / 1e6


def prepare(model: str, tracks: str, index: str) -> None:
    """In a process of its own (the cold queries' peak RSS is their own): the index and the
    prepared text graph."""
    from musicsearch.clap import ClapEmbedder

    embedder = ClapEmbedder(model, device="cpu")
    build(Path(index), model, int(tracks), embedder.dim)
    cosine, kind = embedder.prepare_text_onnx()
    print(f"index of {tracks} tracks; text graph {kind} (cosine {cosine:.5f}); load average")


def cold(model_arg: str, tracks: int, runs: int, baseline: Path | None) -> None:
    """``--cold``: whole ``musicsearch query`` processes, this checkout against ``baseline``."""
    here = str(Path(__file__).resolve().parent.parent)
    versions = {"new": here} | ({"baseline": str(baseline.resolve())} if baseline else {})
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MUSICSEARCH_CACHE"] = str(Path(tmp) / "cache")
        from musicsearch.loading import resolve_model

        model = resolve_model(model_arg)
        index = str(Path(tmp) / "idx")
        code = f"import sys; sys.path.insert(0, {str(Path(__file__).parent)!r}); import bench_query as b; b.prepare(*sys.argv[1:])"
        print(run_process(["-c", code, model, str(tracks), index], dict(os.environ))[2].strip(), os.getloadavg())
        envs = {name: {**os.environ, "PYTHONPATH": src} for name, src in versions.items()}
        for name in envs:  # once each, untimed: the page cache, and the new code's optimized graph
            run_process([*QUERY, "--index", index], envs[name])
        walls: dict[str, list[float]] = {name: [] for name in envs}
        peaks: dict[str, list[float]] = {name: [] for name in envs}
        for _ in range(runs):
            for name, env in envs.items():  # alternating: the same load for both
                wall, peak, _ = run_process([*QUERY, "--index", index], env)
                walls[name].append(wall)
                peaks[name].append(peak)
        sessions: dict[str, list[float]] = {name: [] for name in envs}
        vectors: dict[str, np.ndarray] = {}
        for _ in range(3):
            for name, env in envs.items():
                out = json.loads(run_process(["-c", SESSION, model], env)[2])
                sessions[name].append(out["session_s"])
                vectors[name] = np.array(out["vectors"])
        imports = {name: [import_seconds(env, index) for _ in range(3)] for name, env in envs.items()}
        left = {}
        for name, env in envs.items():
            code = UNIMPORTED.replace("__HEAVY__", repr(HEAVY))
            out = run_process(["-c", code, *QUERY[2:], "--index", index], env)[2]
            left[name] = out.strip().splitlines()[-1].removeprefix("HEAVY: ")
    print(f"{'':28}" + "".join(f"{name:>26}" for name in envs))

    def row(label: str, values: dict[str, list[float]], fmt: str = "{:.2f}") -> None:
        cells = [
            f"{fmt.format(min(v))}-{fmt.format(max(v))} (med {fmt.format(statistics.median(v))})"
            for v in values.values()
        ]
        print(f"{label:28}" + "".join(f"{c:>26}" for c in cells))

    row(f"cold query wall s ({runs} runs)", walls)
    row("cold query peak RSS MB", peaks, "{:.0f}")
    row("text session start s (3)", sessions, "{:.3f}")
    row("imports, -X importtime s (3)", imports, "{:.3f}")
    for name in envs:
        print(f"heavy modules a query imported, {name}: {left[name]}")
    if "baseline" in vectors:
        print(f"largest vector difference new vs baseline: {np.abs(vectors['new'] - vectors['baseline']).max():.2e}")
    print(f"load average after: {os.getloadavg()}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=50)
    ap.add_argument("--cold", type=int, default=0, metavar="RUNS", help="time RUNS cold query processes per version")
    ap.add_argument("--baseline", type=Path, help="a folder holding another version's musicsearch package")
    args = ap.parse_args()
    if args.cold:
        cold(args.model, args.tracks, args.cold, args.baseline)
        return

    with tempfile.TemporaryDirectory() as tmp:
        os.environ["MUSICSEARCH_CACHE"] = str(Path(tmp) / "cache")  # a prepared-model cache of its own
        from musicsearch import MusicIndex, Settings
        from musicsearch.clap import ClapEmbedder
        from musicsearch.loading import resolve_model
        from musicsearch.onnx_towers import ONNX_FILE

        model = resolve_model(args.model)
        embedder = ClapEmbedder(model, device="cpu")
        folder = Path(tmp) / "idx"
        t0 = time.perf_counter()
        build(folder, model, args.tracks, embedder.dim)
        print(f"built {args.tracks} tracks in {time.perf_counter() - t0:.1f} s")
        cosine, kind = embedder.prepare_text_onnx()
        print(f"text tower exported to ONNX ({kind}, cosine {cosine:.5f} vs torch)")
        settings = Settings(model_check=False, device="cpu")
        results = {}
        results["onnx"] = time_queries(MusicIndex(folder, settings=settings), args.queries)
        embedder.prepared.remove(ONNX_FILE)  # queries fall back to the torch text tower
        results["torch"] = time_queries(MusicIndex(folder, settings=settings), args.queries)
    print(f"{'text tower':10} {'p50 ms':>8} {'p95 ms':>8}")
    for name, times in results.items():
        p95 = sorted(times)[int(0.95 * (len(times) - 1))]
        print(f"{name:10} {statistics.median(times):8.1f} {p95:8.1f}")
    print(f"torch/onnx p50 ratio: {statistics.median(results['torch']) / statistics.median(results['onnx']):.2f}")


if __name__ == "__main__":
    main()
