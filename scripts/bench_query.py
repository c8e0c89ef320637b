"""Query latency with the model loaded (Python API) on a large synthetic index.

    python scripts/bench_query.py --model FOLDER [--tracks 100000] [--queries 50]

Builds an index of N tracks (random unit vectors, 3 windows each) bound to FOLDER's model,
exports its text tower to ONNX as `musicsearch index` does, then times `MusicIndex.search`
(text -> vector -> FAISS -> hits with best window) on warm state: first through the ONNX text
tower, then through torch, side by side. Prints p50/p95 in ms and their ratio.
"""

from __future__ import annotations

import argparse
import os
import statistics
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--tracks", type=int, default=100_000)
    ap.add_argument("--queries", type=int, default=50)
    args = ap.parse_args()

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
