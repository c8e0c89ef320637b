"""What receiving a decode worker's windows costs the indexing process, side by side in one run.

    python scripts/bench_transfer.py [--windows 800] [--repeat 3]

A worker process (forked) sends ``--windows`` prepared CPU windows (log-mel, float32 1 x 64 x
1001, 256 KB, as the decode workers send them) three ways, and a reader thread in this process
receives them as the index run's reader does, handing each to the main thread, which copies it
into a batch (as batching does):
  pipe, one window a message  what musicsearch does (multiprocessing Connection, pickled)
  pipe, 4 windows a message   the same with the windows of one file stacked 4 at a time
  shared memory               a ring of 8 slots per worker; the message names the slot
Prints this process's CPU a window (reader + main thread, the cost the model's threads compete
with) and the wall time of the whole transfer, for each, alternating, --repeat times.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import queue
import resource
import statistics
import threading
import time
from multiprocessing import shared_memory

import numpy as np

SHAPE = (1, 64, 1001)
SLOTS = 8


def _window(k: int) -> np.ndarray:
    return np.full(SHAPE, k % 251, np.float32)


def worker(conn, how: str, n: int, shm_name: str | None, free) -> None:
    shm = shared_memory.SharedMemory(name=shm_name) if shm_name else None
    ring = np.ndarray((SLOTS, *SHAPE), np.float32, buffer=shm.buf) if shm else None
    pending = []
    for k in range(n):
        x = _window(k)
        if how == "single":
            conn.send(("win", 0, (k, k * 10.0, k * 10.0 + 10, x)))
        elif how == "batch4":
            pending.append((k, k * 10.0, k * 10.0 + 10, x))
            if len(pending) == 4 or k == n - 1:
                meta = [p[:3] for p in pending]
                conn.send(("wins", 0, (meta, np.concatenate([p[3] for p in pending]))))
                pending = []
        else:
            free.acquire()  # a slot the parent has released
            slot = k % SLOTS
            ring[slot] = x
            conn.send(("slot", 0, (k, k * 10.0, k * 10.0 + 10, slot)))
    conn.send(("done", 0, None))
    if shm:
        del ring
        shm.close()


def run(how: str, n: int) -> tuple[float, float]:
    ctx = mp.get_context("fork")
    shm = shared_memory.SharedMemory(create=True, size=SLOTS * int(np.prod(SHAPE)) * 4) if how == "shm" else None
    ring = np.ndarray((SLOTS, *SHAPE), np.float32, buffer=shm.buf) if shm else None
    free = ctx.Semaphore(SLOTS)
    parent, child = ctx.Pipe(duplex=False)
    out: queue.Queue = queue.Queue(maxsize=64)

    def reader() -> None:
        while True:
            kind, _, payload = parent.recv()
            if kind == "wins":
                meta, block = payload
                for m, x in zip(meta, block, strict=True):
                    out.put((*m, x[None]))
            elif kind == "slot":
                k, a, b, slot = payload
                out.put((k, a, b, ring[slot]))
            elif kind == "win":
                out.put(payload)
            else:
                out.put(None)
                return

    cpu0, t0 = resource.getrusage(resource.RUSAGE_SELF), time.perf_counter()
    p = ctx.Process(target=worker, args=(child, how, n, shm.name if shm else None, free))
    p.start()
    child.close()
    thread = threading.Thread(target=reader, daemon=True)
    thread.start()
    batch = np.empty((4, *SHAPE[1:]), np.float32)
    got = 0
    while (item := out.get()) is not None:
        _, _, _, x = item
        batch[got % 4] = x[0]  # the copy into the model's batch
        if how == "shm":
            free.release()
        got += 1
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    p.join()
    thread.join()
    if shm:
        del ring
        shm.close()
        shm.unlink()
    assert got == n
    return (cpu1.ru_utime + cpu1.ru_stime - cpu0.ru_utime - cpu0.ru_stime) * 1000 / n, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--windows", type=int, default=800)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    labels = {"single": "pipe, one window a message", "batch4": "pipe, 4 windows a message", "shm": "shared memory"}
    cpu: dict[str, list[float]] = {h: [] for h in labels}
    wall: dict[str, list[float]] = {h: [] for h in labels}
    for _ in range(args.repeat):
        for how in labels:
            c, w = run(how, args.windows)
            cpu[how].append(c)
            wall[how].append(w)
    print(f"{args.windows} windows of {np.prod(SHAPE) * 4 / 1024:.0f} KB, {args.repeat} alternating runs, medians:")
    print(f"{'':28} {'CPU ms a window':>16} {'wall s':>8}  (each run)")
    for how, label in labels.items():
        runs = ", ".join(f"{c:.3f}" for c in cpu[how])
        print(f"{label:28} {statistics.median(cpu[how]):16.3f} {statistics.median(wall[how]):8.2f}  ({runs})")


if __name__ == "__main__":
    main()
