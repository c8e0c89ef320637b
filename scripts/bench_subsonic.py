"""Loopback load on the Subsonic API: ``clients`` threads each send ``requests`` mixed ``/rest/``
calls (search3 with a description, stream with a Range, getSimilarSongs2) to a real
``musicsearch serve`` over an index of generated tagged tracks, and the script reports the
errors, search3's p50/p95 and stream time to first byte.

    python scripts/bench_subsonic.py [--tracks 300] [--clients 8] [--requests 50] [--model FOLDER] [--work DIR]

Without --model a tiny random-weight CLAP (musicsearch/randmodel.py) indexes and answers, so
the figures time the server, the search path and the text tower of that tiny model, not a
full-size one (a full-size random model from scripts/make_random_clap.py gives those).
"""

from __future__ import annotations

import argparse
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx
import numpy as np
import soundfile as sf

SR = 48_000
PASSWORD = "bench password"
QUERIES = ["rainy night jazz", "warm analog synth pads", "fast punk drums", "solo piano", "a 600 Hz tone"]
GENRES = ["Jazz", "Rock", "Ambient", "Classical"]


def make_library(lib: Path, n: int) -> None:
    """``n`` 10-s tracks (a tone and a little noise), tagged with 20 artists and 60 albums."""
    import mutagen

    rng = np.random.default_rng(0)
    for i in range(n):
        t = np.arange(10 * SR) / SR
        wave = 0.3 * np.sin(2 * np.pi * (100 + 40 * (i % 50)) * t) + 0.02 * rng.standard_normal(len(t))
        path = lib / f"artist{i % 20}" / f"album{i % 60}" / f"{i:04d}.flac"
        path.parent.mkdir(parents=True, exist_ok=True)
        sf.write(path, wave.astype(np.float32), SR)
        f = mutagen.File(path, easy=True)
        f["title"], f["artist"], f["album"] = f"Track {i}", f"Artist {i % 20}", f"Album {i % 60}"
        f["genre"], f["date"] = GENRES[i % len(GENRES)], str(1970 + i % 50)
        f.save()


def percentile(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else float("nan")


def client(url: str, ids: list[str], n: int, seed: int, out: dict[str, list]) -> None:
    """One client's ``n`` calls in turn: search3, stream with a Range, getSimilarSongs2."""
    rng = random.Random(seed)
    auth = {"u": "bench", "p": PASSWORD, "f": "json", "c": "bench", "v": "1.16.1"}
    with httpx.Client(base_url=url, timeout=60) as http:
        for i in range(n):
            kind = ("search3", "stream", "getSimilarSongs2")[i % 3]
            start = time.perf_counter()
            try:
                if kind == "stream":
                    headers = {"Range": "bytes=0-65535"}
                    with http.stream(
                        "GET", "/rest/stream", params={**auth, "id": rng.choice(ids)}, headers=headers
                    ) as r:
                        chunks = r.iter_raw()
                        size = len(next(chunks, b""))
                        out["ttfb"].append(time.perf_counter() - start)
                        size += sum(len(c) for c in chunks)
                        ok = r.status_code == 206 and size == 65536
                else:
                    params = (
                        {"query": rng.choice(QUERIES), "songCount": 20}
                        if kind == "search3"
                        else {"id": rng.choice(ids), "count": 20}
                    )
                    r = http.get(f"/rest/{kind}", params={**auth, **params})
                    ok = r.status_code == 200 and r.json()["subsonic-response"]["status"] == "ok"
                    out[kind].append(time.perf_counter() - start)
            except (httpx.HTTPError, httpx.StreamError, ValueError, KeyError):
                ok = False
            if not ok:
                out["errors"].append(kind)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tracks", type=int, default=300)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--requests", type=int, default=50)
    ap.add_argument("--model", type=Path, help="a CLAP folder (default: a tiny random one)")
    ap.add_argument("--work", type=Path, help="keep the library and index here (default: a temp folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-subsonic-"))
    env = {**os.environ, "XDG_CONFIG_HOME": str(work / "config")}
    model = args.model
    if model is None:
        from musicsearch.randmodel import build_random_clap

        model = work / "tiny-clap"
        if not model.exists():
            build_random_clap(model, "tiny", seed=0)
    cli = [sys.executable, "-m", "musicsearch"]
    if not (work / "idx" / "musicsearch.db").exists():
        make_library(work / "lib", args.tracks)
        index = [*cli, "index", str(work / "lib"), "--index", str(work / "idx"), "--model", str(model)]
        subprocess.run([*index, "--no-model-check"], env=env, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(
        [*cli, "user", "add", "bench", "--password-stdin"],
        env=env,
        input=PASSWORD + "\n",
        text=True,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    serve = [*cli, "serve", "--index", str(work / "idx"), "--port", str(port)]
    proc = subprocess.Popen(serve, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                httpx.get(f"{url}/rest/getOpenSubsonicExtensions", timeout=2)
                break
            except httpx.HTTPError:
                time.sleep(0.2)
        auth = {"u": "bench", "p": PASSWORD, "f": "json"}
        listing = httpx.get(f"{url}/rest/search3", params={**auth, "query": "", "songCount": 5000}, timeout=60).json()
        ids = [s["id"] for s in listing["subsonic-response"]["searchResult3"]["song"]]
        out: dict[str, list] = {"search3": [], "getSimilarSongs2": [], "ttfb": [], "errors": []}
        threads = [threading.Thread(target=client, args=(url, ids, args.requests, i, out)) for i in range(args.clients)]
        start = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - start
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    total = args.clients * args.requests
    ms = lambda v: f"{1000 * v:.0f} ms"  # noqa: E731
    print(f"{args.clients} clients x {args.requests} requests on {len(ids)} tracks: {total} requests in {wall:.1f} s")
    print(f"errors: {len(out['errors'])}")
    print(f"search3: p50 {ms(percentile(out['search3'], 50))}, p95 {ms(percentile(out['search3'], 95))}")
    print(
        f"getSimilarSongs2: p50 {ms(percentile(out['getSimilarSongs2'], 50))}, p95 {ms(percentile(out['getSimilarSongs2'], 95))}"
    )
    print(
        f"stream (Range 64 KB) time to first byte: p50 {ms(statistics.median(out['ttfb']))}, p95 {ms(percentile(out['ttfb'], 95))}"
    )


if __name__ == "__main__":
    main()
