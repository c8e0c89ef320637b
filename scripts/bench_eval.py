"""What ``musicsearch eval`` costs per 100 clips: a generated MusicCaps-style set (10-s clips
named by ytid, one caption each) measured twice through the command, in fresh processes:
the first run embeds every clip (and prepares the model's ONNX graphs once per index), the
second finds every clip indexed and only embeds the captions and ranks.

    python scripts/bench_eval.py --model FOLDER [--clips 100] [--templates 2] [--work DIR]

A full-size random-weight model from scripts/make_random_clap.py works offline (its
figures are timings only: random weights rank at chance).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 48_000
ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def make_set(root: Path, clips: int, seconds: float = 10.0) -> Path:
    """``clips`` 10-s clips (chords of random tones over noise) in ``root/audio``, named by an
    11-character id, and ``musiccaps-public.csv`` describing them."""
    rng = np.random.default_rng(0)
    (root / "audio").mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    with open(root / "musiccaps-public.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id"])
        for i in range(clips):
            ytid = "".join(rng.choice(list(ALPHABET), 11))
            freqs = rng.uniform(80, 2000, 3)
            wave = sum(0.2 * np.sin(2 * np.pi * f0 * t) for f0 in freqs) + 0.02 * rng.standard_normal(len(t))
            sf.write(str(root / "audio" / f"{ytid}.wav"), wave.astype(np.float32), SR)
            caption = f"A recording with tones near {int(freqs[0])} Hz and a soft hiss, clip {i}."
            w.writerow([ytid, 30, 40, "/m/04rlf", "['tones']", caption, 0])
    return root / "musiccaps-public.csv"


def run(args: list[str], env: dict[str, str]) -> tuple[float, dict]:
    started = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-m", "musicsearch", *args, "--json", "-q"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    seconds = time.perf_counter() - started
    if out.returncode != 0:
        sys.exit(f"musicsearch eval failed: {out.stderr.strip()}")
    return seconds, json.loads(out.stdout)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True, help="model folder (or Hub id)")
    ap.add_argument("--clips", type=int, default=100)
    ap.add_argument("--templates", type=int, default=2, help="prompt templates besides the bare captions")
    ap.add_argument("--work", type=Path, help="folder for the set and the cache (default: a temp folder)")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="bench-eval-"))
    data = make_set(work / "set", args.clips)
    env = {**os.environ, "MUSICSEARCH_CACHE": str(work / "cache")}
    templates = ["This is a {} song.", "{} music", "A recording of {}."][: args.templates]
    cmd = ["eval", str(data), "--model", args.model, "--no-model-check", "--by", "track", "--by", "window"]
    for template in templates:
        cmd += ["--template", template]
    first, result = run(cmd, env)
    second, again = run(cmd, env)
    rows = len(result["rows"])
    scale = 100 / args.clips
    print(f"{args.clips} clips, {rows} rows (2 rankings x {len(result['rows']) // 2} prompt forms), model {args.model}")
    print(f"first run (embeds every clip):  {first:.1f} s  = {first * scale:.1f} s per 100 clips")
    print(f"second run (nothing embedded):  {second:.1f} s  = {second * scale:.1f} s per 100 clips")
    print(f"embedded: first {result['embedded']}, second {again['embedded']}")


if __name__ == "__main__":
    main()
