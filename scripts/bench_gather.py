"""Reading random rows of a float16 sidecar, side by side in one run: touching the memory-mapped
rows (then ``MADV_DONTNEED``, as ``vectors.Sidecar`` did), the same with ``MADV_RANDOM``, and
``os.preadv`` per row (what ``Sidecar.gather`` does now). Prints the median of ``--runs`` runs
of each, with page faults and disk reads (``getrusage``). Use a sidecar an index built, e.g.
one kept by ``bench_scale.py --keep``:

    flock /tmp/bench.lock python scripts/bench_gather.py /work/bench-scale-h/n1000000/index/tracks-e50.f16 --rows 3000
"""

from __future__ import annotations

import argparse
import mmap
import os
import resource
import time
from collections.abc import Callable

import numpy as np


def usage() -> tuple[int, int, int]:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_majflt, ru.ru_minflt, ru.ru_inblock


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("sidecar")
    ap.add_argument("--dim", type=int, default=512)
    ap.add_argument("--rows", type=int, default=3000)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    dim, width = args.dim, 2 * args.dim
    rows = os.path.getsize(args.sidecar) // width
    fd = os.open(args.sidecar, os.O_RDONLY)
    maps = []
    for advice in (None, getattr(mmap, "MADV_RANDOM", None)):
        mm = mmap.mmap(fd, rows * width, prot=mmap.PROT_READ)
        if advice is not None:
            mm.madvise(advice)
        maps.append((mm, np.frombuffer(mm, np.float16).reshape(rows, dim)))

    def mapped(i: int) -> Callable[[np.ndarray], np.ndarray]:
        mm, arr = maps[i]

        def read(sel: np.ndarray) -> np.ndarray:
            out = np.empty((len(sel), dim), np.float32)
            order = np.argsort(sel)
            s = sel[order]
            for a in range(0, len(s), 1024):
                out[order[a : a + 1024]] = arr[s[a : a + 1024]]
                mm.madvise(mmap.MADV_DONTNEED)
            return out

        return read

    def preadv(sel: np.ndarray) -> np.ndarray:
        s = np.sort(sel)
        buf = np.empty((len(s), dim), np.float16)
        for i, r in enumerate(s.tolist()):
            os.preadv(fd, [buf[i]], r * width)  # type: ignore[list-item]
        return buf.astype(np.float32)

    ways = {"mmap + DONTNEED": mapped(0), "mmap RANDOM + DONTNEED": mapped(1), "preadv": preadv}
    rng = np.random.default_rng(0)
    found: dict[str, list[tuple[float, ...]]] = {}
    for _ in range(args.runs):
        for name, fn in ways.items():  # alternating, each on other random rows
            sel = rng.choice(rows, args.rows, replace=False)
            before, t0 = usage(), time.perf_counter()
            fn(sel)
            ms, after = 1000 * (time.perf_counter() - t0), usage()
            found.setdefault(name, []).append((ms, *(b - a for a, b in zip(before, after))))
    print(f"{args.rows} random rows of {rows:,} ({args.sidecar}), {args.runs} runs each:")
    for name, v in found.items():
        a = np.array(v)
        print(
            f"  {name:24} median {np.median(a[:, 0]):6.2f} ms ({np.median(a[:, 0]) * 1000 / args.rows:.1f} us a row);"
            f" per run: {a[:, 1].mean():.0f} major, {a[:, 2].mean():.0f} minor faults, {a[:, 3].mean() / 2:.0f} KB from disk"
        )


if __name__ == "__main__":
    main()
