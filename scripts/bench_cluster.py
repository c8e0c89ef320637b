"""Cluster benchmark: a local index run against a run on a simulated 2-node Ray cluster, on
the same files, side by side in one process; plus the stage rates a scaling estimate needs.

    python scripts/bench_cluster.py MUSIC --model models/random-clap [--files 3] [--max-windows 4]

Phases:
  L. local: MusicIndex.index (decode worker processes, onnxruntime audio tower on the CPU)
  C. cluster: ray.cluster_utils.Cluster on this machine, a head with 1 CPU and a node with
     1 CPU and a logical GPU (the embed actor takes it; torch here has no CUDA, so it runs
     on the CPU), then MusicIndex.index(cluster="auto"). Both nodes share this machine's
     cores, so C can only show Ray's overhead, never a speed-up. Cluster start-up is timed
     apart; the run itself includes connecting, the device probe, the actor's model load and
     the pipeline.
  S. stage rates in this process, one thread: decode alone, decode + log-mel (``prepare``
     on a CPU), the audio tower alone (the engine the runs used), and the driver's SQLite
     writes of whole tracks (the one writer of a cluster run).
Then the vectors of L and C are compared (cosine per window), and a scaling estimate for N
GPU nodes is printed from S and an assumed GPU tower rate (an ESTIMATE: no GPU here).
The load average is printed before and after: the machine may be shared.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

TOWER_GFLOP = 30.7  # audio tower, per 10-s window (DESIGN.md)


def load() -> str:
    return "/".join(f"{x:.2f}" for x in os.getloadavg())


def vectors(index: Path) -> dict[str, tuple[list[float], np.ndarray]]:
    from musicsearch.store import Store

    store = Store(index)
    ids = {p: i for i, p in store.conn.execute("select id, path from tracks")}
    got = store.window_vectors(ids.values())
    store.close()
    return {p: (got[i][0].tolist(), got[i][2]) for p, i in ids.items()}


def timed_index(idx, folder: Path, **kw) -> tuple[object, float, float | None]:
    """(report, wall seconds, seconds until the first committed batch)."""
    from musicsearch.events import Progress

    t0 = time.perf_counter()
    first: list[float] = []

    def on_event(e: object) -> None:
        if isinstance(e, Progress) and not first:
            first.append(time.perf_counter() - t0)

    report = idx.index(folder, on_event=on_event, **kw)
    return report, time.perf_counter() - t0, (first[0] if first else None)


def stage_rates(files: list[Path], model: str, max_windows: int, batch: int) -> dict[str, float]:
    import torch

    from musicsearch.audio import iter_windows
    from musicsearch.clap import ClapEmbedder
    from musicsearch.config import Settings
    from musicsearch.engine import prepare_audio
    from musicsearch.store import IndexMeta, Store, TrackRecord

    torch.set_num_threads(1)
    emb = ClapEmbedder(model, device="cpu")
    out: dict[str, float] = {}
    t0 = time.perf_counter()
    n = sum(1 for f in files for _ in iter_windows(f, emb.window_seconds, None))
    out["decode (whole tracks)"] = n / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    n = sum(1 for f in files for _ in iter_windows(f, emb.window_seconds, max_windows))
    feats = [emb.prepare(w.samples[None]) for f in files for w in iter_windows(f, emb.window_seconds, max_windows)]
    out["decode+prepare"] = n / (time.perf_counter() - t0)
    torch.set_num_threads(os.cpu_count() or 1)
    prepare_audio(emb, Settings(model=model))
    x = np.concatenate(feats)
    emb.embed(x[:batch])  # warm
    t0 = time.perf_counter()
    for i in range(0, len(x), batch):
        emb.embed(x[i : i + batch])
    out["tower"] = len(x) / (time.perf_counter() - t0)
    # the driver: whole tracks of 24 windows written in batches of 8 tracks, one transaction each
    tmp = Path(tempfile.mkdtemp(prefix="bench-store-"))
    store = Store(tmp, create=True)
    store.record_meta(IndexMeta.new("bench", None, 512, 10.0, checked=False))
    rng = np.random.default_rng(0)
    v = rng.standard_normal((24, 512)).astype(np.float32)
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    starts = [10.0 * j for j in range(24)]
    t0 = time.perf_counter()
    tracks = 400
    for b in range(0, tracks, 8):
        with store.write():
            for k in range(b, b + 8):
                rec = TrackRecord(f"/m/{k}.flac", 1, 1, f"h{k}", {"title": str(k)}, 240.0, starts, starts, v)
                store.put_track(rec, "now")
    out["driver writes"] = tracks * 24 / (time.perf_counter() - t0)
    store.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("music", type=Path)
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--max-windows", type=int, default=4)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--repeat", type=int, default=2, help="rounds of local then cluster, alternating")
    ap.add_argument("--gpu-tflops", type=float, default=200.0, help="assumed sustained tower TFLOP/s of one GPU")
    ap.add_argument("--cores-per-node", type=int, default=16, help="CPU cores of each GPU node in the estimate")
    args = ap.parse_args()

    import ray
    from ray.cluster_utils import Cluster

    from musicsearch import MusicIndex, Settings

    work = Path(tempfile.mkdtemp(prefix="bench-cluster-"))
    music = work / "music"
    music.mkdir()
    picked = sorted(p for p in args.music.iterdir() if p.suffix.lower() in {".ogg", ".flac", ".wav", ".mp3"})
    for p in picked[: args.files]:
        shutil.copy(p, music / p.name)
    files = sorted(music.iterdir())
    print(f"files: {', '.join(p.name for p in files)}; at most {args.max_windows} windows each")
    print(f"load average before: {load()} ({os.cpu_count()} cores)")

    def settings(name: str) -> Settings:
        return Settings(
            index_dir=work / name,
            model=args.model,
            model_check=False,
            fast_queries=False,
            max_windows=args.max_windows,
            batch_size=args.batch_size,
        )

    from musicsearch.clap import ClapEmbedder
    from musicsearch.engine import prepare_audio

    t0 = time.perf_counter()
    prepare_audio(ClapEmbedder(args.model, device="cpu"), settings("prep"))  # the ONNX graph, once per machine
    print(f"   model prepared for this machine in {time.perf_counter() - t0:.1f} s (once; not counted)")

    rates = stage_rates(files, args.model, args.max_windows, args.batch_size)
    print("S stage rates here (windows/s): " + ", ".join(f"{k} {v:.1f}" for k, v in rates.items()))
    print("  (decode and decode+prepare on one thread; the tower on all cores; driver writes: SQLite, one writer)")

    os.environ["RAY_TMPDIR"] = str(work)
    os.environ["RAY_AUTH_MODE"] = "disabled"
    t0 = time.perf_counter()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False})
    cluster.add_node(num_cpus=1, num_gpus=1)
    cluster.wait_for_nodes()
    ray.init(address=cluster.address, logging_level="WARNING")
    print(f"   cluster start-up (2 nodes): {time.perf_counter() - t0:.1f} s (once; not counted)")
    ratios = []
    try:
        for r in range(args.repeat):
            with MusicIndex(settings=settings(f"local{r}")) as idx:
                local, local_s, local_first = timed_index(idx, music)
            with MusicIndex(settings=settings(f"cluster{r}")) as idx:
                remote, remote_s, remote_first = timed_index(idx, music, cluster="auto")
            lr, cr = local.windows / local_s, remote.windows / remote_s
            ratios.append(cr / lr)
            print(
                f"round {r + 1}: L local {local.windows} windows in {local_s:.1f} s = {lr:.2f} windows/s "
                f"(first commit {local_first or 0:.1f} s) | C cluster {remote.windows} windows in {remote_s:.1f} s "
                f"= {cr:.2f} windows/s (first commit {remote_first or 0:.1f} s) | C/L {cr / lr:.2f} "
                f"| load {load()}"
            )
    except BaseException:
        ray.shutdown()
        cluster.shutdown()
        raise
    for note in remote.notes:
        print(f"   note: {note}")
    print(f"cluster/local windows/s per round: {', '.join(f'{x:.2f}' for x in ratios)}")

    a, b = vectors(work / "local0"), vectors(work / "cluster0")
    cos = [float(np.min(np.sum(a[p][1] * b[p][1], axis=1))) for p in a if p in b and a[p][0] == b[p][0]]
    print(f"   same vectors: {len(cos)}/{len(a)} tracks with equal window starts, least cosine {min(cos):.7f}")

    print(f"load average after: {load()}")

    gpu = args.gpu_tflops * 1e12 / (TOWER_GFLOP * 1e9)
    feed = args.cores_per_node * rates["decode (whole tracks)"]
    print(
        f"\nESTIMATE for N GPU nodes of {args.cores_per_node} cores (assumed GPU tower {gpu:.0f} windows/s at "
        f"{args.gpu_tflops:.0f} TFLOP/s sustained; on a GPU node prepare is the samples and the log-mel runs on "
        f"the GPU, so the feed is decode alone: {args.cores_per_node} x {rates['decode (whole tracks)']:.1f} = {feed:.0f} "
        f"windows/s per node; the driver writes at most {rates['driver writes']:.0f} windows/s):"
    )
    for n in (1, 2, 4, 8, 16, 32):
        per_node = min(gpu, feed)
        total = min(n * per_node, rates["driver writes"])
        bound = "driver" if total < n * per_node else ("GPU" if gpu < feed else "CPU feed")
        print(
            f"  N={n:>2}: ~{total:,.0f} windows/s ({bound}-bound); 1M tracks x 24 windows in ~{24e6 / total / 3600:.1f} h"
        )
    # last: Ray Data's background threads may end this process once Ray is shut down
    sys.stdout.flush()
    ray.shutdown()
    cluster.shutdown()
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
