"""First contact, timed as a user waits for it: whole processes, model load included.

    python scripts/bench_first_run.py LIBRARY --model FOLDER [--files 5] [--repeat 1]

Side by side in one run, each a fresh process (wall time and peak RSS of the process):
  (1) the seed guide's pipeline on the first N files: librosa.load -> ClapProcessor ->
      get_audio_features, one window per file, model load included
  (2) `musicsearch index` of the same files, one window each, on a fresh machine: an empty
      prepared-model cache, so the one-time preparation (ONNX export and checks) is included
  (3) the same into a new index on a machine that has prepared the model once (2's cache)
With --phases, one more fresh-machine run (2) is timed phase by phase (model facts, model
load, export, save, quantize, session, embedding; the text tower's phases run in a forked
child process, marked "child"), with the run's full garbage collections and the time after the
command ends (the interpreter's exit), not counted in the table.
With --terminal, one more fresh-machine run of a plain `musicsearch index LIBRARY` (default
windows, progress shown) on a pseudo-terminal of 100 columns, as a user sees it: every change on
the screen (a line, or a redraw of one) with its time, and the longest silence between two
(target <= 5 s).
Prints the ratios (1)/(3) (target >= 3x) and (2)/(1) (target <= 1), and the peak RSS
(target < 2 GB): the larger of the process's own peak and the summed RSS of its whole process
tree (sampled every 20 ms), so work moved into child processes is counted. A full-size random-weight model from scripts/make_random_clap.py works offline.
"""

from __future__ import annotations

import argparse
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

SEED = """
import sys, librosa, torch
from transformers import ClapModel, ClapProcessor
model = ClapModel.from_pretrained(sys.argv[1]).eval()
processor = ClapProcessor.from_pretrained(sys.argv[1])
for path in sys.argv[2:]:
    audio, _ = librosa.load(path, sr=48_000, mono=True)
    inputs = processor(audio=audio, sampling_rate=48_000, return_tensors="pt")
    with torch.no_grad():
        model.get_audio_features(**inputs)
"""


PHASES = """
import functools, gc, os, sys, time
T0, PARENT = time.perf_counter(), os.getpid()
FULL = [0, 0.0, 0.0]  # the run's own full collections: count, seconds, start of the current one
def collections(phase, info):
    if os.getpid() == PARENT and info["generation"] == 2:
        if phase == "start":
            FULL[2] = time.perf_counter()
        else:
            FULL[0] += 1
            FULL[1] += time.perf_counter() - FULL[2]
gc.callbacks.append(collections)
def timed(owner, name):
    f = getattr(owner, name)
    @functools.wraps(f)
    def g(*a, **k):
        t = time.perf_counter()
        try:
            return f(*a, **k)
        finally:
            who = "" if os.getpid() == PARENT else " (child)"
            end = time.perf_counter()
            print(f"[phase] {end - T0:6.2f} s  {name}{who}: {end - t:.2f} s", file=sys.stderr, flush=True)
    setattr(owner, name, g)
import musicsearch.api as api, musicsearch.clap as em, musicsearch.indexing.runner as ix, musicsearch.onnx_towers as ot
for name in ("_export", "_save_external", "quantize_int8", "_session", "export_text_tower", "export_audio_tower"):
    timed(ot, name)
for name in ("_read_model_facts", "_torch_audio_model", "_text_tower", "start_text_preparation", "prepare_text_onnx", "use_onnx_audio"):
    timed(em.ClapEmbedder, name)
for name in ("prepare_audio", "embed_files", "prepare_queries", "start_run", "open_feed"):
    timed(ix, name)
timed(api, "index_folder")
import musicsearch.context as cx, musicsearch.store as st
timed(cx.IndexContext, "bind_model")
timed(st.Store, "__init__")
from musicsearch.cli import main
sys.argv[0] = "musicsearch"
try:
    main()
finally:
    print(f"[phase] {time.perf_counter() - T0:6.2f} s  full collections of the run: {FULL[0]}, {FULL[1]:.2f} s", file=sys.stderr, flush=True)
    print(f"[phase] {time.perf_counter() - T0:6.2f} s  end", file=sys.stderr, flush=True)
"""


def _tree_rss_kb(root: int) -> int:
    """Summed VmRSS (kB) of ``root`` and all its descendants, read from /proc (an upper bound:
    pages shared between processes count once per process)."""
    total, todo = 0, [root]
    while todo:
        pid = todo.pop()
        try:
            with open(f"/proc/{pid}/status") as f:
                total += next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), 0)
            for task in os.listdir(f"/proc/{pid}/task"):
                with open(f"/proc/{pid}/task/{task}/children") as f:
                    todo.extend(int(c) for c in f.read().split())
        except (OSError, ValueError):
            continue
    return total


def timed(cmd: list[str], env: dict[str, str]) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one child process: the larger of its own peak
    (getrusage) and the peak summed RSS of its whole process tree, sampled every 20 ms."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    peak = [0]
    done = threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak[0] = max(peak[0], _tree_rss_kb(proc.pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert proc.stderr is not None
    err = proc.stderr.read()
    done.set()
    sampler.join()
    _, status, usage = os.wait4(proc.pid, 0)
    seconds = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n{err.decode()[-3000:]}")
    return seconds, max(usage.ru_maxrss, peak[0]) / 1024


def on_terminal(cmd: list[str], env: dict[str, str]) -> tuple[float, float, list[tuple[float, str]]]:
    """Run ``cmd`` on a pseudo-terminal: (wall seconds, the longest silence, each screen change
    as (seconds since the start, the text drawn))."""
    import fcntl
    import pty
    import re
    import struct
    import termios

    t0 = time.perf_counter()
    pid, fd = pty.fork()
    if pid == 0:  # the child: the command, its stdout and stderr on the terminal
        os.execvpe(cmd[0], cmd, env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    changes: list[tuple[float, str]] = []
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:  # the command ended and closed the terminal
            break
        if not data:
            break
        now = time.perf_counter() - t0
        pieces = [p.strip() for p in re.split(r"[\r\n]+", data.decode(errors="replace")) if p.strip()]
        changes.append((now, pieces[-1] if pieces else ""))
    _, status = os.waitpid(pid, 0)
    whole = time.perf_counter() - t0
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(cmd[:3])} failed:\n" + "\n".join(text for _, text in changes[-10:]))
    moments = [0.0, *(t for t, _ in changes), whole]
    return whole, max(b - a for a, b in itertools.pairwise(moments)), changes


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("library")
    ap.add_argument("--model", required=True)
    ap.add_argument("--files", type=int, default=5)
    ap.add_argument("--repeat", type=int, default=1, help="run the three phases this many times, alternating")
    ap.add_argument("--cases", default="123", help="which of (1) (2) (3) to run, e.g. 12 (3 needs 2's cache)")
    ap.add_argument("--phases", action="store_true", help="time one more fresh-machine run phase by phase")
    ap.add_argument("--terminal", action="store_true", help="one more fresh-machine run on a terminal: its silences")
    args = ap.parse_args()

    from musicsearch.library import walk

    files = [str(f.path) for f in walk(args.library)][: args.files]
    work = Path(tempfile.mkdtemp(prefix="bench-first-"))
    lib = work / "lib"
    lib.mkdir()
    for f in files:
        (lib / Path(f).name).symlink_to(f)
    musicsearch = [sys.executable, "-m", "musicsearch"]
    print(f"{len(files)} files from {args.library}, model {args.model}, {os.cpu_count()} cpus")
    print(f"load average before: {Path('/proc/loadavg').read_text().strip()}")
    print(f"{'phase':58} {'seconds':>8} {'peak RSS MB':>12}")
    try:
        for r in range(args.repeat):
            env = dict(os.environ, MUSICSEARCH_CACHE=str(work / f"cache{r}"), MUSICSEARCH_NO_MODEL_CHECK="1")
            index = [*musicsearch, "index", str(lib), "--model", args.model, "--max-windows", "1", "-q"]
            results = {}
            if "1" in args.cases:
                results["1"] = timed([sys.executable, "-c", SEED, args.model, *files], env)
            if "2" in args.cases or "3" in args.cases:
                results["2"] = timed([*index, "--index", str(work / f"fresh{r}")], env)
            if "3" in args.cases:
                results["3"] = timed([*index, "--index", str(work / f"again{r}")], env)
            for case, label in (
                ("1", "(1) seed pipeline, model load included"),
                ("2", "(2) musicsearch index, fresh machine (prepares the model)"),
                ("3", "(3) musicsearch index, model prepared once before"),
            ):
                if case in results:
                    print(f"{label:58} {results[case][0]:8.1f} {results[case][1]:12.0f}")
            if len(results) < 3:
                if "1" in results and "2" in results:
                    print(f"(2)/(1): {results['2'][0] / results['1'][0]:.2f} (target <= 1)", flush=True)
                continue
            seed, fresh, prepared = results["1"], results["2"], results["3"]
            print(
                f"(1)/(3): {seed[0] / prepared[0]:.2f}x faster (target >= 3); "
                f"(2)/(1): {fresh[0] / seed[0]:.2f} (target <= 1); "
                f"peak RSS of a first run {max(fresh[1], prepared[1]):.0f} MB (target < 2048)",
                flush=True,
            )
        if args.phases:
            env = dict(os.environ, MUSICSEARCH_CACHE=str(work / "cache-phases"), MUSICSEARCH_NO_MODEL_CHECK="1")
            cmd = [sys.executable, "-c", PHASES, "index", str(lib), "--model", args.model, "--max-windows", "1", "-q"]
            t0 = time.perf_counter()
            err = subprocess.run(
                [*cmd, "--index", str(work / "phases")], env=env, capture_output=True, text=True
            ).stderr
            whole = time.perf_counter() - t0
            lines = [line for line in err.splitlines() if line.startswith("[phase]")]
            print(f"phases of one more fresh-machine run ({whole:.1f} s as a whole process):")
            print("\n".join(lines))
            if lines and lines[-1].endswith(" end"):  # from the command's end to the process's (the interpreter's exit)
                print(f"after the end: {whole - float(lines[-1].split()[1]):.2f} s (interpreter start-up and exit)")
        if args.terminal:
            env = dict(os.environ, MUSICSEARCH_CACHE=str(work / "cache-terminal"), MUSICSEARCH_NO_MODEL_CHECK="1")
            cmd = [*musicsearch, "index", str(lib), "--model", args.model, "--index", str(work / "terminal")]
            whole, silence, changes = on_terminal(cmd, env)
            print(f"one more fresh-machine run on a terminal ({whole:.1f} s), each change on the screen:")
            last = 0.0
            for t, text in changes:
                print(f"  {t:6.2f} s (+{t - last:5.2f})  {text[:90]}")
                last = t
            print(f"longest silence: {silence:.2f} s (target <= 5)")
    finally:
        print(f"load average after: {Path('/proc/loadavg').read_text().strip()}")
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
