"""The feed of an index run: each file's header read once, then decoded into windows and
each window ``prepare``d where it was decoded (on a CPU, CLAP's log-mel), in worker
processes, or in threads of this process for a small run, an embedder that cannot be
sent to a worker, or a call from a script that each worker would run again (one without an
``if __name__ == "__main__":`` guard).

A feed yields messages ``(kind, file number, payload)``: ``("win", i, (index, start, end,
prepared))`` per window, then ``("end", i, FileEnd)`` (with the tempo and key the windows gave,
musicsearch/analysis.py), or ``("fail", i, reason)`` when the
file cannot be decoded; the iteration ends once every file is through.
"""

from __future__ import annotations

import ast
import logging
import os
import pickle
import queue
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import Any, cast

from ..analysis import Analyzer, Estimate, add_window
from ..audio import SAMPLE_RATE, declared_seconds, iter_windows, one_line, plan_starts, truncation_against
from ..embed import Embedder
from ..errors import DecodeError
from ..library import AudioFile, content_hash
from ..process import own_child_process
from ..tags import parse, tags_of

log = logging.getLogger(__name__)

SMALL_RUN_WINDOWS = 64
Message = tuple[str, int, Any]


@dataclass(frozen=True)
class Header:
    """What a file's header tells, from one read (mutagen): its tags, its length as mutagen
    reports it (for estimates; None where unreadable) and the length it declares (for the
    truncation check; None where the length is derived from the data)."""

    tags: dict[str, Any]  # title, artist, ... without the duration
    seconds: float | None
    declared: float | None


def read_header(path: Path) -> Header:
    """One mutagen read of ``path``; never raises for a bad or untagged file."""
    parsed = parse(path)
    tags = tags_of(path, parsed).__dict__.copy()
    tags.pop("duration", None)
    try:
        seconds: float | None = float(parsed.info.length)
    except Exception:  # no parsed file, no stream info, no length
        seconds = None
    try:
        declared = declared_seconds(path, parsed)
    except OSError:
        declared = None
    return Header(tags, seconds, declared)


class Headers:
    """The headers of a run's files, each read once, when first needed: by the estimates
    here, else by the worker that decodes the file."""

    def __init__(self) -> None:
        self.known: dict[str, Header] = {}

    def of(self, path: Path) -> Header:
        key = str(path)
        if key not in self.known:
            self.known[key] = read_header(path)
        return self.known[key]

    def get(self, path: Path) -> Header | None:
        return self.known.get(str(path))


def estimate_windows(
    files: Sequence[AudioFile],
    window_seconds: float,
    max_windows: int | None,
    unknown: int | None = None,
    headers: Headers | None = None,
) -> int:
    """Windows the run will embed, from each file's duration in its header; a file without a
    readable length counts as one window, or as ``unknown`` windows when given."""
    headers = headers or Headers()
    length = int(round(window_seconds * SAMPLE_RATE))
    total = 0
    for f in files:
        seconds = headers.of(f.path).seconds
        if seconds is None:
            if unknown is not None:
                total += unknown
                continue
            seconds = 0.0
        total += len(plan_starts(max(1, int(seconds * SAMPLE_RATE)), length, max_windows))
    return total


def few(windows: int) -> bool:
    """Whether ``windows`` windows make a small run (``SMALL_RUN_WINDOWS`` or fewer)."""
    return windows <= SMALL_RUN_WINDOWS


def small_run(
    files: Sequence[AudioFile], window_seconds: float, max_windows: int | None, headers: Headers | None = None
) -> bool:
    """At most ``SMALL_RUN_WINDOWS`` windows to decode (from the headers where the budget
    does not settle it; a file without a readable length counts as 18 windows): such a run
    decodes in threads, since starting worker processes costs more than it decodes."""
    if len(files) > SMALL_RUN_WINDOWS:
        return False
    if max_windows is not None and len(files) * max_windows <= SMALL_RUN_WINDOWS:
        return True
    return few(estimate_windows(files, window_seconds, max_windows, max_windows or 18, headers))


@dataclass(frozen=True)
class FileEnd:
    """A file decoded to its end: its tags, content hash, truncation warning, windows and the
    analysis of its tempo, key and energy (a handful of numbers; None where not analysed)."""

    tags: dict[str, Any]
    hash: str
    warning: str | None
    windows: int
    estimate: Estimate | None = None

    def __post_init__(self) -> None:
        if isinstance(self.estimate, dict):  # from JSON (the cluster run's rows)
            object.__setattr__(self, "estimate", Estimate(**self.estimate))


Job = tuple[int, Path, str | None, Header | None]  # file number, path, known hash, header read here


def file_messages(
    embedder: Embedder, i: int, path: Path, known_hash: str | None, max_windows: int | None, header: Header | None
) -> Iterator[Message]:
    """Decode one file: ("win", i, (index, start, end, prepared)) per window, then
    ("end", i, FileEnd), or ("fail", i, reason) when it cannot be decoded. The header is
    read here unless given."""
    try:
        end = 0.0
        n = 0
        analyzer = Analyzer(SAMPLE_RATE)
        for w in iter_windows(path, embedder.window_seconds, max_windows):
            x = embedder.prepare(w.samples[None])
            add_window(analyzer, w)
            end = max(end, w.end)
            n += 1
            yield ("win", i, (w.index, w.start, w.end, x))
        header = header or read_header(path)
        h = known_hash or content_hash(path)
        # the last window ends where decoding ended, unless one window sits mid-track
        cut = max_windows != 1 or end < embedder.window_seconds
        warning = truncation_against(path, end, header.declared) if cut else None
        yield ("end", i, FileEnd(header.tags, h, warning, n, analyzer.finish()))
    except DecodeError as exc:
        yield ("fail", i, exc.reason)
    except Exception as exc:  # never let one file stop the run
        yield ("fail", i, f"unexpected error ({type(exc).__name__}: {one_line(exc)})")


class Feed:
    """Decoded windows of the run's files, in a bounded queue; iterating yields the
    messages until every file is through. Close it (or use it in a ``with``) to stop."""

    def __init__(self, maxsize: int) -> None:
        self.out: queue.Queue = queue.Queue(maxsize=maxsize)
        self.stop = threading.Event()

    def put(self, item: tuple) -> bool:
        while not self.stop.is_set():
            try:
                self.out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def get(self) -> Message:
        item: Message = self.out.get()
        if item[0] == "error":
            raise RuntimeError(f"decode workers failed: {item[2]}")
        return item

    def __iter__(self) -> Iterator[Message]:
        while True:
            item = self.get()
            if item[0] == "done":
                return
            yield item

    def __enter__(self) -> Feed:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.close()

    def close(self) -> None:
        self.stop.set()


class ThreadFeed(Feed):
    """Decoding in threads of this process: for small runs, and for embedders that cannot be
    sent to worker processes (not picklable, or defined where a worker cannot import them)."""

    def __init__(self, embedder: Embedder, jobs: list[Job], max_windows: int | None, workers: int, maxsize: int):
        super().__init__(maxsize)
        self.embedder, self.max_windows = embedder, max_windows
        self.todo = iter(jobs)
        self.lock = threading.Lock()
        self.running = workers
        for n in range(workers):
            threading.Thread(target=self._decode, daemon=True, name=f"decode-{n}").start()

    def _decode(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                job = next(self.todo, None)
            if job is None:
                break
            i, path, known_hash, header = job
            for msg in file_messages(self.embedder, i, path, known_hash, self.max_windows, header):
                if not self.put(msg):
                    return
        with self.lock:
            self.running -= 1
            last = self.running == 0
        if last:
            self.put(("done", -1, None))


def _one_thread_each() -> None:
    """Keep a decode worker's numeric libraries to one thread: N workers on N cores, each
    with its own pool of N threads, would oversubscribe the cores (OpenBLAS and OpenMP
    threads busy-wait). Torch is limited only where something imported it."""
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)
    except Exception as exc:  # threadpoolctl missing or a library it cannot drive
        log.debug("decode worker: thread pools not limited (%s)", one_line(exc))
    torch = sys.modules.get("torch")
    if torch is not None and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


def _worker_main(conn: Connection, payload: bytes, max_windows: int | None) -> None:
    """A decode worker process: unpickle the embedder, then decode the files it is sent,
    one at a time, streaming each window back as soon as it is prepared (the pipe blocks
    when the parent is behind, which bounds what is in flight)."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
    own_child_process()  # e.g. the MP3 decoder's notes kept off the shared stderr (process.py)
    try:
        try:
            embedder = pickle.loads(payload)
            _one_thread_each()
        except BaseException as exc:
            conn.send(("init-failed", -1, f"{type(exc).__name__}: {one_line(exc)}"))
            return
        conn.send(("ready", -1, os.getpid()))
        first = True
        while True:
            job = conn.recv()
            if job is None:
                return
            i, path, known_hash, header = job
            for msg in file_messages(embedder, i, path, known_hash, max_windows, header):
                conn.send(msg)
                if first:  # prepare may have imported torch (or another pool) just now
                    _one_thread_each()
                    first = False
    except (EOFError, OSError):  # the parent is gone or closed the pipe
        return


def _main_script(main: ModuleType) -> Path | None:
    """The script that multiprocessing runs again, as ``__mp_main__``, in every process it
    starts by 'forkserver' or 'spawn' (``multiprocessing.spawn.get_preparation_data``), or
    None where it runs none: a REPL, a notebook, ``python -c``, a package's ``__main__``,
    IPython's launcher."""
    name = getattr(getattr(main, "__spec__", None), "name", None)
    if name is not None:  # python -m NAME
        if name == "__main__" or name.endswith(".__main__"):
            return None
        origin = getattr(main.__spec__, "origin", None)
        return Path(origin) if origin else None
    file = getattr(main, "__file__", None)
    if file is None or Path(file).stem == "ipython":
        return None
    return Path(file)


def _is_main_guard(node: ast.stmt) -> bool:
    """Whether ``node`` is ``if __name__ == "__main__":`` (either way round)."""
    if not isinstance(node, ast.If) or not isinstance(node.test, ast.Compare) or len(node.test.comparators) != 1:
        return False
    sides = [node.test.left, node.test.comparators[0]]
    names = [s.id for s in sides if isinstance(s, ast.Name)]
    texts = [s.value for s in sides if isinstance(s, ast.Constant)]
    return isinstance(node.test.ops[0], ast.Eq) and names == ["__name__"] and texts == ["__main__"]


def _guarded_lines(script: Path) -> list[tuple[int, int]] | None:
    """The line spans of the script's top-level ``if __name__ == "__main__":`` blocks, or None
    when its source cannot be read or parsed."""
    try:
        tree = ast.parse(script.read_bytes(), str(script))
    except (OSError, SyntaxError, ValueError):
        return None
    return [(n.lineno, n.end_lineno or n.lineno) for n in tree.body if _is_main_guard(n)]


def rerun_by_workers() -> Path | None:
    """The main script when each worker process would run this very call again: a script run
    without an ``if __name__ == "__main__":`` guard around it (multiprocessing runs the main
    script again in each process it starts; the second run of the call cannot start workers
    of its own, and its traceback reaches the user). None where workers are safe to start:
    no main script (a REPL, a notebook, ``python -m`` of a package), or the call is made
    from inside the script's guard.
    """
    main = sys.modules.get("__main__")
    script = _main_script(main) if main is not None else None
    if main is None or script is None:
        return None
    guarded = _guarded_lines(script)
    if not guarded:  # no guard at all (or unreadable): whatever the script calls runs again
        return script
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        if frame.f_globals is main.__dict__ and frame.f_code.co_name == "<module>":
            line = frame.f_lineno
            return None if any(a <= line <= b for a, b in guarded) else script
        frame = frame.f_back
    return None  # called from a function the script's guard runs, or from another thread


def _context() -> Any:
    """Worker processes start from a fork server (Python's 'forkserver'; 'spawn' where
    there is none): forking this process, whose torch and onnxruntime thread pools are
    running, is unsafe, and 'spawn' pays the imports per worker per run. The fork server is
    started once per process with this module imported (numpy, the decoders: ~0.2 s; librosa's
    analysis modules) and forks each worker from there. It does not import torch (~1.3-1.6 s here): a worker whose
    embedder needs torch in ``prepare`` imports it there."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    # librosa's modules for the tempo and key analysis (analysis.py): ~1.6 s of CPU per worker otherwise
    ctx.set_forkserver_preload(
        [__name__, "musicsearch.features", "librosa.onset", "librosa.feature", "librosa.filters"]
    )
    return ctx


def start_fork_server() -> None:
    """Start the fork server now (it imports in the background; the first worker waits for
    it), so its ~1.5 s of imports overlap whatever the run does before decoding; not when
    the run will decode in threads since workers would run the caller again."""
    if rerun_by_workers() is not None:
        return
    ctx = _context()
    if ctx.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


@dataclass
class _Worker:
    process: BaseProcess
    conn: Connection
    job: int | None = None  # the file it is decoding
    ready: bool = False


class ProcessFeed(Feed):
    """Decoding in worker processes, started from a fork server (forking a process whose
    torch and onnxruntime thread pools are running is unsafe). A worker is sent one file at
    a time over its own pipe; a reader thread here moves what the workers send into the
    bounded queue. A worker that dies (a decoder crash) fails only its current file and is
    replaced.

    Raises:
        RuntimeError: from the constructor, when the workers cannot start (e.g. they cannot
            import the embedder's class); the caller decodes in threads instead.
    """

    def __init__(self, payload: bytes, jobs: list[Job], max_windows: int | None, workers: int, maxsize: int):
        super().__init__(maxsize)
        self.ctx = _context()
        self.payload, self.max_windows = payload, max_windows
        self.jobs = list(reversed(jobs))  # popped from the end: in order
        self.paths = {job[0]: job[1] for job in jobs}
        self.lock = threading.Lock()
        self.workers: list[_Worker] = []
        t0 = time.perf_counter()
        try:
            self.workers = [self._spawn() for _ in range(min(workers, len(jobs)))]
            for w in self.workers:  # wait for each to start: a worker that cannot is told here
                kind, _, detail = w.conn.recv()
                if kind != "ready":
                    raise RuntimeError(f"a decode worker could not start ({detail})")
                w.ready = True
        except (EOFError, OSError) as exc:
            self.close()
            raise RuntimeError(f"a decode worker could not start ({type(exc).__name__})") from None
        except BaseException:
            self.close()
            raise
        log.debug("%d decode workers started in %.2f s", len(self.workers), time.perf_counter() - t0)
        for w in self.workers:
            self._dispatch(w)
        self.reader = threading.Thread(target=self._read, daemon=True, name="decode-reader")
        self.reader.start()

    def _spawn(self) -> _Worker:
        parent, child = self.ctx.Pipe(duplex=True)
        process = self.ctx.Process(
            target=_worker_main, args=(child, self.payload, self.max_windows), daemon=True, name="musicsearch-decode"
        )
        process.start()
        child.close()  # the parent keeps only its own end: a dead worker reads as EOF
        return _Worker(process, parent)

    def _dispatch(self, w: _Worker) -> None:
        job = self.jobs.pop() if self.jobs else None
        w.job = job[0] if job is not None else None
        try:
            w.conn.send(job)
        except OSError:  # it died meanwhile: the reader sees its EOF
            pass

    def _died(self, w: _Worker) -> bool:
        """A worker's pipe closed. Returns False when it was told to stop; else its file
        fails with the reason, and a replacement takes its place if files remain."""
        w.conn.close()
        with self.lock:  # close() reaps workers under the same lock
            w.process.join(timeout=5)
            code = w.process.exitcode
            if w.job is None or self.stop.is_set():
                return False
            if code is not None and code < 0:
                how = f"killed by signal {signal.Signals(-code).name}"
            else:
                how = f"exit code {code}"
            log.warning("a decode worker died (%s) while decoding %s", how, self.paths[w.job])
            self.put(("fail", w.job, f"decoder crashed (worker process {how})"))
            w.job = None
            if not self.jobs:
                return False
            new = self._spawn()
            w.process, w.conn, w.ready = new.process, new.conn, False
            return True

    def _read(self) -> None:
        from multiprocessing.connection import wait

        try:
            live = {w.conn: w for w in self.workers}
            while live and not self.stop.is_set():
                for ready in wait(list(live), timeout=0.2):
                    conn = cast(Connection, ready)
                    w = live.pop(conn)
                    try:
                        kind, i, payload = conn.recv()
                    except (EOFError, OSError):
                        if self._died(w):
                            live[w.conn] = w
                        continue
                    live[conn] = w
                    if kind == "ready":
                        w.ready = True
                        self._dispatch(w)
                    elif kind == "init-failed":
                        raise RuntimeError(f"a replacement decode worker could not start ({payload})")
                    else:
                        if kind in ("end", "fail"):
                            self._dispatch(w)  # its next file first, so it decodes while we wait
                        if not self.put((kind, i, payload)):
                            return
            self.put(("done", -1, None))
        except BaseException as exc:
            self.put(("error", -1, f"{type(exc).__name__}: {one_line(exc)}"))

    def close(self) -> None:
        """Stop every worker (terminate, then kill what does not stop), reap them and the
        reader thread: no worker outlives the run."""
        self.stop.set()
        with self.lock:
            for w in self.workers:
                if w.process.is_alive():
                    w.process.terminate()
            for w in self.workers:
                w.process.join(timeout=5)
                if w.process.is_alive():
                    w.process.kill()
                    w.process.join()
        reader = getattr(self, "reader", None)
        if reader is not None:
            reader.join(timeout=5)
        for w in self.workers:
            w.conn.close()


def _shippable(embedder: Embedder) -> bytes | None:
    """The pickled embedder for worker processes, or None (logged) when it cannot be: it
    does not pickle, or worker processes would run the caller again (logged at INFO only:
    a plain script or a notebook is not at fault), or its class lives in a ``__main__``
    that workers do not run (a notebook's)."""
    script = rerun_by_workers()
    if script is not None:
        log.info(
            'decoding in threads: %s calls musicsearch outside an `if __name__ == "__main__":` guard, '
            "so each decode worker process would run it again (put the call under that guard "
            "to decode in worker processes)",
            script,
        )
        return None
    main = sys.modules.get("__main__")
    if type(embedder).__module__ == "__main__" and (main is None or _main_script(main) is None):
        log.info("decoding in threads: the embedder's class is defined in __main__, which worker processes lack")
        return None
    try:
        return pickle.dumps(embedder)
    except Exception as exc:
        log.warning(
            "the embedder cannot be sent to decode worker processes (%s: %s); decoding in threads instead",
            type(exc).__name__,
            one_line(exc),
        )
        return None


def open_feed(
    embedder: Embedder,
    files: Sequence[AudioFile],
    hashes: dict[str, str],
    max_windows: int | None,
    workers: int,
    maxsize: int,
    headers: Headers | None = None,
) -> Feed:
    """The feed of ``files``: worker processes, or threads for a small run (or an embedder
    the workers cannot take). Headers already read (``headers``) travel with the files."""
    headers = headers or Headers()
    # Largest files first: with one file per worker at a time, a long file dispatched last
    # keeps one worker busy while the others idle (the Wesnoth library in its sorted order
    # ends 2.4% past an even split over 2 workers; largest first, 0.15%).
    order = sorted(range(len(files)), key=lambda i: -files[i].size)
    # A small run decodes in threads: starting the fork server and worker processes costs
    # more than a run of a few windows decodes (a first 5-file run: 9.2-9.8 s in threads
    # against 11.4-15.4 s with processes, side by side, when workers imported torch).
    small = small_run(files, embedder.window_seconds, max_windows, headers)
    jobs: list[Job] = [(i, files[i].path, hashes.get(str(files[i].path)), headers.get(files[i].path)) for i in order]
    payload = None if small else _shippable(embedder)
    if payload is not None:
        try:
            return ProcessFeed(payload, jobs, max_windows, workers, maxsize)
        except RuntimeError as exc:
            log.warning("%s; decoding in threads instead", exc)
    return ThreadFeed(embedder, jobs, max_windows, workers, maxsize)
