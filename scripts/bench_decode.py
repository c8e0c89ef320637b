"""Decode benchmark: CPU milliseconds a 10-s window for what a decode worker does, on one core,
side by side in one run (alternating, --repeat times):

  decode+cut, as musicsearch does it (an Ogg Vorbis file read whole: PyAV first)
  decode+cut, libsndfile alone (PyAV made unable to open files)
  numpy log-mel (features.NumpyLogMel, one window at a time)

    python scripts/bench_decode.py LIBRARY [--files 8] [--repeat 2] [--model models/random-clap]

For the code of another commit, put a `git archive` of its ``musicsearch`` first on PYTHONPATH.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("library")
    ap.add_argument("--files", type=int, default=8, help="the first N audio files (sorted)")
    ap.add_argument("--repeat", type=int, default=2)
    ap.add_argument("--model", default="models/random-clap", help="a CLAP folder (its mel filterbank)")
    args = ap.parse_args()

    from threadpoolctl import threadpool_limits
    from transformers import ClapFeatureExtractor

    import musicsearch.audio as audio
    from musicsearch.features import MelSpec, NumpyLogMel
    from musicsearch.library import is_audio

    threadpool_limits(1)  # as in a decode worker
    files = sorted(p for p in Path(args.library).rglob("*") if is_audio(p))[: args.files]
    mel = NumpyLogMel(MelSpec.from_feature_extractor(ClapFeatureExtractor.from_pretrained(args.model)))
    real_pyav = audio._pyav_source

    def no_pyav(path: Path) -> audio.Source:
        raise audio._Failed("off")

    def decode(pyav: bool) -> tuple[float, int]:
        audio._pyav_source = real_pyav if pyav else no_pyav
        try:
            t, n = time.process_time(), 0
            for p in files:
                n += sum(1 for _ in audio.iter_windows(p, 10.0, None))
            return (time.process_time() - t) * 1000 / n, n
        finally:
            audio._pyav_source = real_pyav

    window = (0.1 * np.random.default_rng(0).standard_normal(480_000)).astype(np.float32)
    mel(window)  # first call: buffers

    def log_mel() -> float:
        t = time.process_time()
        for _ in range(40):
            mel(window)
        return (time.process_time() - t) * 1000 / 40

    print(f"{len(files)} files from {args.library}, {audio.__file__}")
    rows: dict[str, list[float]] = {"decode+cut (musicsearch)": [], "decode+cut (libsndfile alone)": [], "log-mel": []}
    for _ in range(args.repeat):
        ms, n = decode(True)
        rows["decode+cut (musicsearch)"].append(ms)
        rows["decode+cut (libsndfile alone)"].append(decode(False)[0])
        rows["log-mel"].append(log_mel())
    print(f"{n} windows; CPU ms a window, one core, each repeat:")
    for name, values in rows.items():
        print(f"  {name:32s} " + "  ".join(f"{v:6.2f}" for v in values))
    a, b = np.median(rows["decode+cut (musicsearch)"]), np.median(rows["decode+cut (libsndfile alone)"])
    print(f"libsndfile alone / musicsearch (medians): {b / a:.2f}x")


if __name__ == "__main__":
    main()
