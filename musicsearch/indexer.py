"""The index run (owns the run that joins the stages): walk -> plan against the store ->
apply moves and removals -> decode worker processes (each window ``prepare``d where it was decoded) ->
batched ``embed`` -> one SQLite transaction per embedded batch. ``run_index`` returns the
report; progress reaches the caller as events (``Phase``, ``RunStart``, ``Progress``), and
the caller draws them.

Windows of several files share a batch. A track is written (with all its windows) in the
transaction of the batch that completes it, so a run killed at any point leaves only whole
tracks behind and the next run picks up the rest.
"""

from __future__ import annotations

import contextlib
import logging
import os
import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np

from . import embed
from .audio import SAMPLE_RATE, iter_windows, one_line, truncation_warning
from .config import Settings
from .embed import ClapEmbedder, Embedder, embed_windows
from .errors import DecodeError, ModelLoadError, StorageError
from .library import AudioFile, content_hash
from .store import Store, TrackRecord
from .tags import read_tags

if TYPE_CHECKING:
    from .context import IndexContext

log = logging.getLogger(__name__)


@dataclass
class IndexReport:
    """What one ``index`` run did. Paths are absolute strings."""

    root: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old, new)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped_failed: int = 0  # recorded failures not retried (file unchanged)
    windows: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, warning): indexed all the same

    @property
    def windows_per_second(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Phase:
    """A step that may take a while, told before it starts (\"Loading the model ...\")."""

    message: str


@dataclass(frozen=True)
class Progress:
    """Told after each committed batch."""

    files_done: int
    files_total: int
    windows: int
    seconds: float

    @property
    def windows_per_second(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RunStart:
    """Told before embedding starts: how much work there is and how long it should take."""

    files: int
    windows: int  # estimated from the files' headers
    max_windows: int | None  # the window budget in force (None: whole tracks)
    device: str | None
    windows_per_second: float | None  # measured on a warm-up window

    @property
    def eta_seconds(self) -> float | None:
        return self.windows / self.windows_per_second if self.windows_per_second else None


Event = Phase | RunStart | Progress
Listener = Callable[[Event], None]


def quiet(event: Event) -> None:
    """The listener that ignores every event (the default)."""


def estimate_windows(
    files: Sequence[AudioFile], window_seconds: float, max_windows: int | None, unknown: int | None = None
) -> int:
    """Windows the run will embed, from each file's duration in its header (mutagen); a file
    without a readable length counts as one window, or as ``unknown`` windows when given."""
    import mutagen

    from .audio import plan_starts

    length = int(round(window_seconds * SAMPLE_RATE))
    total = 0
    for f in files:
        try:
            seconds = float(mutagen.File(f.path).info.length)
        except Exception:
            if unknown is not None:
                total += unknown
                continue
            seconds = 0.0
        total += len(plan_starts(max(1, int(seconds * SAMPLE_RATE)), length, max_windows))
    return total


SMALL_RUN_WINDOWS = 64


def small_run(files: Sequence[AudioFile], window_seconds: float, max_windows: int | None) -> bool:
    """At most ``SMALL_RUN_WINDOWS`` windows to decode (from the headers where the budget
    does not settle it; a file without a readable length counts as 18 windows): such a run
    decodes in threads, since starting worker processes costs more than it decodes."""
    if len(files) > SMALL_RUN_WINDOWS:
        return False
    if max_windows is not None and len(files) * max_windows <= SMALL_RUN_WINDOWS:
        return True
    return estimate_windows(files, window_seconds, max_windows, unknown=max_windows or 18) <= SMALL_RUN_WINDOWS


def warm_up(embedder: Embedder) -> float:
    """Embed one silent window (the first call pays one-time costs) and return windows/s of a
    second one."""
    window = np.zeros((1, int(round(embedder.window_seconds * SAMPLE_RATE))), np.float32)
    embed_windows(embedder, window)
    t0 = time.perf_counter()
    embed_windows(embedder, window)
    return 1.0 / max(time.perf_counter() - t0, 1e-6)


@dataclass
class Plan:
    """What a run must do, from the walk and the store."""

    to_embed: list[AudioFile]
    hashes: dict[str, str]  # hashes already computed while looking for moves
    updates: set[str]
    moves: list[tuple[int, str, AudioFile]]  # (track id, old path, new file)
    touched: list[tuple[int, AudioFile]]  # new mtime, same content: only the identity is updated
    removed: dict[str, int]  # path -> track id
    stale_failures: list[str]
    unchanged: int
    skipped_failed: int
    unreadable: dict[str, str] = field(default_factory=dict)  # path -> reason, from the walk


def plan_run(
    store: Store,
    root: Path,
    files: Sequence[AudioFile],
    retry_failed: bool = False,
    unreadable: dict[str, str] | None = None,
) -> Plan:
    """Compare the files below ``root`` with what the store holds for ``root``.

    Unchanged (same size and mtime) files are skipped; a file with a new mtime but the same
    content hash only gets its mtime updated; changed ones are re-embedded; a new path
    whose content hash equals that of a vanished track is a move; vanished tracks that were
    not moved are removed. A recorded failure is retried only when its file changed or
    ``retry_failed`` is set. ``unreadable`` (path -> reason, from the walk) become
    failures, and known tracks below an unreadable folder are kept, not removed.
    """
    known = store.known_files(root)
    failures = store.known_failures(root)
    on_disk = {str(f.path) for f in files}
    to_embed: list[AudioFile] = []
    new: list[AudioFile] = []
    updates: set[str] = set()
    touched: list[tuple[int, AudioFile]] = []
    hashes: dict[str, str] = {}
    unchanged = skipped = 0
    for f in files:
        p = str(f.path)
        k = known.get(p)
        if k is not None and (k[1], k[2]) == (f.size, f.mtime_ns):
            unchanged += 1
        elif k is None and p in failures and failures[p][:2] == (f.size, f.mtime_ns) and not retry_failed:
            skipped += 1
        elif k is not None:
            if k[1] == f.size:
                h = hashes[p] = content_hash(f.path)
                if h == k[3]:
                    touched.append((k[0], f))
                    unchanged += 1
                    continue
            updates.add(p)
            to_embed.append(f)
        else:
            new.append(f)

    blocked = unreadable or {}
    prefixes = tuple(p.rstrip(os.sep) + os.sep for p in blocked)
    missing = {p: k for p, k in known.items() if p not in on_disk and p not in blocked and not p.startswith(prefixes)}
    by_size: dict[int, list[str]] = defaultdict(list)
    for p, k in missing.items():
        by_size[k[1]].append(p)
    moves: list[tuple[int, str, AudioFile]] = []
    for f in new:
        candidates = by_size.get(f.size)
        if candidates:
            h = hashes[str(f.path)] = content_hash(f.path)
            old = next((p for p in candidates if missing[p][3] == h), None)
            if old is not None:
                candidates.remove(old)
                moves.append((missing.pop(old)[0], old, f))
                continue
        to_embed.append(f)
    return Plan(
        to_embed=to_embed,
        hashes=hashes,
        updates=updates,
        moves=moves,
        touched=touched,
        removed={p: k[0] for p, k in missing.items()},
        stale_failures=[p for p in failures if p not in on_disk and p not in blocked],
        unreadable=dict(blocked),
        unchanged=unchanged,
        skipped_failed=skipped,
    )


def embed_audio_file(
    embedder: Embedder, path: Path | str, batch_size: int, max_windows: int | None = None
) -> np.ndarray:
    """Decode and embed a file outside the index: the normalized mean of its window vectors.

    Raises:
        DecodeError: the file cannot be decoded.
    """
    from .store import track_vector

    vectors: list[np.ndarray] = []
    batch: list[np.ndarray] = []
    for w in iter_windows(path, embedder.window_seconds, max_windows):
        batch.append(w.samples)
        if len(batch) == batch_size:
            vectors.extend(embed_windows(embedder, np.stack(batch)))
            batch.clear()
    if batch:
        vectors.extend(embed_windows(embedder, np.stack(batch)))
    return track_vector(np.stack(vectors))


@dataclass
class _Pending:
    file: AudioFile
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    info: tuple[dict, str, str | None] | None = None  # (tags, hash, warning) once decoding finished

    @property
    def complete(self) -> bool:
        return self.info is not None and len(self.vectors) == len(self.starts)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass
class Embedded:
    """What ``embed_files`` wrote."""

    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)
    windows: int = 0
    notes: list[str] = field(default_factory=list)


def file_messages(
    embedder: Embedder, i: int, path: Path, known_hash: str | None, max_windows: int | None
) -> Iterator[tuple[str, int, Any]]:
    """Decode one file: ("win", i, (index, start, end, prepared)) per window, then
    ("end", i, (tags, hash, warning)), or ("fail", i, reason) when it cannot be decoded."""
    try:
        end = 0.0
        for w in iter_windows(path, embedder.window_seconds, max_windows):
            x = embedder.prepare(w.samples[None])
            end = max(end, w.end)
            yield ("win", i, (w.index, w.start, w.end, x))
        tags = read_tags(path).__dict__.copy()
        tags.pop("duration", None)
        h = known_hash or content_hash(path)
        # the last window ends where decoding ended, unless one window sits mid-track
        warning = truncation_warning(path, end) if max_windows != 1 or end < embedder.window_seconds else None
        yield ("end", i, (tags, h, warning))
    except DecodeError as exc:
        yield ("fail", i, exc.reason)
    except Exception as exc:  # never let one file stop the run
        yield ("fail", i, f"unexpected error ({type(exc).__name__}: {one_line(exc)})")


class _Feed:
    """Decoded windows of ``files``, in a bounded queue: ``get`` returns ("win" | "end" |
    "fail", file number, payload), then ("done", -1, None) once every file is through."""

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

    def get(self) -> tuple[str, int, Any]:
        item: tuple[str, int, Any] = self.out.get()
        if item[0] == "error":
            raise RuntimeError(f"decode workers failed: {item[2]}")
        return item

    def close(self) -> None:
        self.stop.set()


class _ThreadFeed(_Feed):
    """Decoding in threads of this process: for embedders that cannot be sent to worker
    processes (not picklable, or defined where a worker cannot import them)."""

    def __init__(
        self,
        embedder: Embedder,
        jobs: list[tuple[int, Path, str | None]],
        max_windows: int | None,
        workers: int,
        maxsize: int,
    ) -> None:
        super().__init__(maxsize)
        todo = iter(jobs)
        lock = threading.Lock()
        running = [workers]

        def decode() -> None:
            while not self.stop.is_set():
                with lock:
                    job = next(todo, None)
                if job is None:
                    break
                i, path, known_hash = job
                for msg in file_messages(embedder, i, path, known_hash, max_windows):
                    if not self.put(msg):
                        return
            with lock:
                running[0] -= 1
                last = running[0] == 0
            if last:
                self.put(("done", -1, None))

        for n in range(workers):
            threading.Thread(target=decode, daemon=True, name=f"decode-{n}").start()


def _one_thread_each() -> None:
    """Keep a decode worker's numeric libraries to one thread: N workers on N cores, each
    with its own pool of N threads, would oversubscribe the cores (OpenBLAS and OpenMP
    threads busy-wait). Torch is limited only where something imported it."""
    import sys

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
    import pickle
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's: it stops the workers
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
            i, path, known_hash = job
            for msg in file_messages(embedder, i, path, known_hash, max_windows):
                conn.send(msg)
                if first:  # prepare may have imported torch (or another pool) just now
                    _one_thread_each()
                    first = False
    except (EOFError, OSError):  # the parent is gone or closed the pipe
        return


def _context() -> Any:
    """Worker processes start from a fork server (Python's 'forkserver'; 'spawn' where
    there is none): forking this process, whose torch and onnxruntime thread pools are
    running, is unsafe, and 'spawn' pays the imports per worker per run. The fork server is
    started once per process with this module imported (numpy, the decoders: ~0.2 s) and
    forks each worker from there. It does not import torch (~1.3-1.6 s here): a worker whose
    embedder needs torch in ``prepare`` imports it there."""
    import multiprocessing

    if "forkserver" not in multiprocessing.get_all_start_methods():
        return multiprocessing.get_context("spawn")
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(["musicsearch.indexer", "musicsearch.features"])
    return ctx


def _start_fork_server() -> None:
    """Start the fork server now (it imports in the background; the first worker waits for
    it), so its ~1.5 s of imports overlap whatever the run does before decoding."""
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


class _ProcessFeed(_Feed):
    """Decoding in worker processes (start method 'spawn': forking a process whose torch
    and onnxruntime thread pools are running is unsafe). A worker is sent one file at a
    time over its own pipe; a reader thread here moves what the workers send into the
    bounded queue. A worker that dies (a decoder crash) fails only its current file and is
    replaced. Spawning costs each worker about 1.5 s of start-up here (importing torch),
    once per run and in parallel.

    Raises:
        RuntimeError: from the constructor, when the workers cannot start (e.g. they cannot
            import the embedder's class); the caller decodes in threads instead.
    """

    def __init__(
        self,
        payload: bytes,
        jobs: list[tuple[int, Path, str | None]],
        max_windows: int | None,
        workers: int,
        maxsize: int,
    ) -> None:

        super().__init__(maxsize)
        self.ctx = _context()
        self.payload, self.max_windows = payload, max_windows
        self.jobs = list(reversed(jobs))  # popped from the end: in order
        self.paths = {i: path for i, path, _ in jobs}
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
                import signal

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
    """The pickled embedder for worker processes, or None (logged) when it cannot be."""
    import pickle

    try:
        return pickle.dumps(embedder)
    except Exception as exc:
        log.warning(
            "the embedder cannot be sent to decode worker processes (%s: %s); decoding in threads instead",
            type(exc).__name__,
            one_line(exc),
        )
        return None


def _open_feed(
    embedder: Embedder,
    files: Sequence[AudioFile],
    hashes: dict[str, str],
    max_windows: int | None,
    workers: int,
    maxsize: int,
) -> _Feed:
    # Largest files first: with one file per worker at a time, a long file dispatched last
    # keeps one worker busy while the others idle (the Wesnoth library in its sorted order
    # ends 2.4% past an even split over 2 workers; largest first, 0.15%).
    order = sorted(range(len(files)), key=lambda i: -files[i].size)
    jobs = [(i, files[i].path, hashes.get(str(files[i].path))) for i in order]
    # A small run decodes in threads: starting the fork server and worker processes costs
    # more than a run of a few windows decodes (a first 5-file run: 9.2-9.8 s in threads
    # against 11.4-15.4 s with processes, side by side, when workers imported torch).
    small = small_run(files, embedder.window_seconds, max_windows)
    payload = None if small else _shippable(embedder)
    if payload is not None:
        try:
            return _ProcessFeed(payload, jobs, max_windows, workers, maxsize)
        except RuntimeError as exc:
            log.warning("%s; decoding in threads instead", exc)
    return _ThreadFeed(embedder, jobs, max_windows, workers, maxsize)


def embed_files(
    store: Store,
    embedder: Embedder,
    files: Sequence[AudioFile],
    *,
    hashes: dict[str, str],
    batch_size: int,
    workers: int,
    max_windows: int | None,
    updates: set[str],
    on_event: Listener = quiet,
    on_batch: Callable[[], None] | None = None,
) -> Embedded:
    """Decode ``files`` in ``workers`` worker processes and embed their windows in batches
    of ``batch_size``, writing finished tracks and failures once per batch.

    Each window is ``prepare``d in the worker that decoded it (on a CPU, CLAP's log-mel),
    so this process only runs ``embed``. Windows reach it through a bounded queue (at most
    2 batches plus one window per worker in flight, whatever the files' lengths). A file
    that fails, or whose worker dies, is recorded as failed and the run goes on. Embedders
    that cannot be pickled are decoded in threads of this process instead.
    """
    result = Embedded()
    if not files:
        return result
    pending: dict[int, _Pending] = {}
    batch: list[tuple[int, int, np.ndarray]] = []
    failures: list[tuple[AudioFile, str]] = []
    started = time.perf_counter()
    done_files = 0

    def commit() -> None:
        nonlocal done_files
        done = [i for i, p in pending.items() if p.complete]
        if not done and not failures:
            return
        now = _now()
        with store.write():
            for i in done:
                p = pending.pop(i)
                assert p.info is not None
                tags, h, warning = p.info
                vectors = np.stack([p.vectors[j] for j in range(len(p.starts))])
                store.put_track(
                    TrackRecord(
                        str(p.file.path),
                        p.file.size,
                        p.file.mtime_ns,
                        h,
                        tags,
                        max(p.ends),
                        p.starts,
                        p.ends,
                        vectors,
                        warning,
                    ),
                    now,
                )
                (result.updated if str(p.file.path) in updates else result.added).append(str(p.file.path))
                if warning:
                    result.warnings.append((str(p.file.path), warning))
            for f, reason in failures:
                store.put_failure(str(f.path), f.size, f.mtime_ns, reason, now)
                result.failed.append((str(f.path), reason))
        done_files += len(done) + len(failures)
        failures.clear()
        on_event(Progress(done_files, len(files), result.windows, time.perf_counter() - started))

    def flush() -> None:
        if batch:
            vecs = embedder.embed(np.concatenate([b[2] for b in batch]))
            for (i, j, _), v in zip(batch, vecs):
                if i in pending:
                    pending[i].vectors[j] = v
            result.windows += len(batch)
            batch.clear()
        commit()
        if on_batch is not None:
            on_batch()

    feed = _open_feed(embedder, files, hashes, max_windows, workers, 2 * batch_size + workers)
    try:
        while True:
            kind, i, payload = feed.get()
            if kind == "win":
                index, start, end, x = payload
                p = pending.setdefault(i, _Pending(files[i]))
                p.starts.append(start)
                p.ends.append(end)
                batch.append((i, index, x))
                if len(batch) >= batch_size:
                    flush()
            elif kind == "end":
                pending.setdefault(i, _Pending(files[i])).info = payload
            elif kind == "fail":
                pending.pop(i, None)
                failures.append((files[i], payload))
            else:
                break
        flush()
    finally:
        feed.close()
        if isinstance(embedder, ClapEmbedder):
            result.notes.extend(embedder.take_notes())
    return result


def apply_plan(store: Store, plan: Plan) -> list[tuple[str, str]]:
    """Write what needs no decoding (moves, new mtimes, removals, stale failures) in one
    transaction; returns the moves as (old path, new path)."""
    moved: list[tuple[str, str]] = []
    if plan.moves or plan.touched or plan.removed or plan.stale_failures or plan.unreadable:
        with store.write():
            for path, reason in plan.unreadable.items():
                store.put_failure(path, 0, 0, reason, _now())
            for track_id, f in plan.touched:
                store.move_track(track_id, str(f.path), f.size, f.mtime_ns)
            for track_id, old, f in plan.moves:
                store.move_track(track_id, str(f.path), f.size, f.mtime_ns)
                moved.append((old, str(f.path)))
            store.remove_tracks(plan.removed.values())
            store.remove_failures(plan.stale_failures)
    return moved


def start_run(
    store: Store,
    root: Path,
    files: Sequence[AudioFile],
    retry_failed: bool = False,
    unreadable: dict[str, str] | None = None,
) -> tuple[Plan, IndexReport]:
    """What every index run (local or on a cluster) does before embedding: plan against the
    store, apply moves and removals, and start the report."""
    plan = plan_run(store, root, files, retry_failed, unreadable)
    report = IndexReport(str(root), unchanged=plan.unchanged, skipped_failed=plan.skipped_failed)
    report.failed = sorted(plan.unreadable.items())
    report.moved = apply_plan(store, plan)
    report.removed = sorted(plan.removed)
    return plan, report


def run_index(
    store: Store,
    embedder: Embedder,
    root: Path,
    files: Sequence[AudioFile],
    *,
    batch_size: int,
    workers: int,
    max_windows: int | None,
    retry_failed: bool = False,
    unreadable: dict[str, str] | None = None,
    on_event: Listener = quiet,
    before_embed: Callable[[int], list[str]] | None = None,
) -> IndexReport:
    """One index run over ``files`` (the walk of ``root``): plan against the store, apply
    moves and removals, embed what is new or changed, and report.

    Args:
        before_embed: called with the number of files to embed, only when there are some,
            before the warm-up (the caller picks and prepares the model's engine there); it
            returns notes for the report.
    """
    started = time.perf_counter()
    plan, report = start_run(store, root, files, retry_failed, unreadable)
    if plan.to_embed:
        if not small_run(plan.to_embed, embedder.window_seconds, max_windows):
            _start_fork_server()  # its imports overlap the model's preparation and warm-up
        if before_embed is not None:
            report.notes.extend(before_embed(len(plan.to_embed)))
        if on_event is not quiet:  # an ETA for someone listening: header lengths and a timed warm-up window
            windows = estimate_windows(plan.to_embed, embedder.window_seconds, max_windows)
            speed = warm_up(embedder) if windows > SMALL_RUN_WINDOWS else None  # a small run needs no ETA
            on_event(RunStart(len(plan.to_embed), windows, max_windows, embedder.device, speed))
        done = embed_files(
            store,
            embedder,
            plan.to_embed,
            hashes=plan.hashes,
            batch_size=batch_size,
            workers=workers,
            max_windows=max_windows,
            updates=plan.updates,
            on_event=on_event,
        )
        report.added, report.updated, report.windows = done.added, done.updated, done.windows
        report.failed += done.failed
        report.warnings = done.warnings
        report.notes.extend(done.notes)
    report.seconds = time.perf_counter() - started
    return report


@contextlib.contextmanager
def run_lock(index_dir: Path) -> Iterator[None]:
    """One index run per index folder at a time: a second one is refused in one line."""
    try:
        import fcntl
    except ImportError:  # no fcntl (Windows): SQLite's own locking still keeps the index whole
        yield
        return
    with open(index_dir / ".index-run.lock", "a+") as f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise StorageError(
                f"another index run ({holder}) is updating {index_dir.absolute()}; wait for it to finish"
            ) from None
        f.truncate(0)
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)


def prepare_audio(
    embedder: Embedder, settings: Settings, on_event: Listener = quiet, windows: int | None = None
) -> list[str]:
    """Pick the audio engine for a run (of about ``windows`` windows): on a CPU, the model's
    prepared ONNX graph (Settings.onnx_audio; exported and checked once per model per machine,
    said as a phase). A first run exports it before embedding, whatever its size, and embeds
    with it: the export happens once per machine anyway (``prepare_queries`` would do it after
    the run), and the export's check session is the one that embeds, so a small first run no
    longer pays for the torch tower too. Returns notes for the report; a failed export leaves
    torch in use, with a WARNING."""
    # An index run (``windows`` given) on a CPU: the text tower is prepared in a child process
    # beside the audio export and the embedding, and ``prepare_queries`` waits for it.
    if (
        isinstance(embedder, embed.ClapEmbedder)
        and embedder.device == "cpu"
        and windows is not None
        and settings.fast_queries
    ):
        embedder.start_text_preparation()
    if not (isinstance(embedder, embed.ClapEmbedder) and settings.onnx_audio and embedder.device == "cpu"):
        return []
    int8 = settings.audio_int8
    if not embedder.audio_prepared(int8):
        on_event(Phase("Preparing the audio model for this machine (once per model)"))
    try:
        cosine = embedder.use_onnx_audio(int8=int8, windows=windows)
    except ModelLoadError as exc:
        log.warning("%s", exc)
        return [str(exc)]
    if cosine is None:
        return []
    what = f"int8 copy, cosine {cosine:.5f} vs fp32" if int8 else f"cosine {cosine:.7f} vs torch"
    return [f"audio tower on onnxruntime ({what})"]


def prepare_queries(embedder: Embedder, settings: Settings, on_event: Listener = quiet) -> list[str]:
    """Once per model per machine, after a run: export the audio tower (on a CPU, with
    Settings.onnx_audio) and the text tower (Settings.fast_queries) to ONNX, each checked
    against torch, so that later runs and queries here need neither torch nor transformers."""
    if not isinstance(embedder, embed.ClapEmbedder):
        return []
    audio = settings.onnx_audio and embedder.device == "cpu" and not embedder.audio_prepared()
    text = settings.fast_queries and (embedder.text_preparing() or not embedder.text_prepared())
    if not (audio or text):
        return []
    on_event(Phase("Preparing the model for this machine (once per model)"))
    embedder.release_audio()  # the run is over: keep a first run's peak memory down
    notes = []
    try:
        cosine = embedder.export_audio_graph() if audio else None
        if cosine is not None:
            notes.append(f"exported the audio tower to ONNX for later runs (cosine {cosine:.7f} vs torch)")
    except ModelLoadError as exc:
        log.warning("%s", exc)
        notes.append(str(exc))
    if text:
        try:
            cosine, kind = embedder.prepare_text_onnx()
            notes.append(f"exported the text tower to ONNX ({kind}) for fast queries (cosine {cosine:.7f} vs torch)")
        except ModelLoadError as exc:
            log.warning("%s", exc)
            notes.append(str(exc))
    return notes


def index_folder(
    ctx: IndexContext,
    folder: Path | str,
    *,
    retry_failed: bool = False,
    on_event: Listener = quiet,
    cluster: str | None = None,
    shards: Path | str | None = None,
) -> IndexReport:
    """``MusicIndex.index``: walk ``folder``, load the model (before creating anything, so a
    bad model leaves no empty index), then run on this machine, on a Ray cluster
    (``cluster``), or on a cluster into Parquet ``shards`` (this index left alone)."""
    from .errors import MusicSearchError
    from .library import walk

    root = Path(folder).expanduser().absolute()
    if not root.exists():
        raise MusicSearchError(f"no such file or folder: {root}")
    if ctx.path.exists() and not ctx.path.is_dir():
        raise StorageError(f"--index {ctx.path.absolute()} is a file, not a folder; pass a folder for the index")
    started = time.perf_counter()
    unreadable: dict[str, str] = {}
    files = list(walk(root, ctx.settings.extensions, on_error=lambda p, why: unreadable.update({str(p): why})))
    embedder = ctx.embedder(on_event)
    settings = ctx.settings
    if shards is not None:
        from .cluster import index_to_shards

        out = Path(shards).expanduser()
        report = index_to_shards(
            embedder,
            root,
            files,
            out,
            settings=settings,
            address=cluster or "auto",
            retry_failed=retry_failed,
            unreadable=unreadable,
            on_event=on_event,
        )
    else:
        store = ctx.bind_model(embedder, embedder.window_seconds)
        with run_lock(ctx.path):
            if cluster is not None:  # embedding on a Ray cluster; the plan and the writes stay here
                from .cluster import run_index_cluster

                report = run_index_cluster(
                    store,
                    embedder,
                    root,
                    files,
                    settings=settings,
                    address=cluster,
                    retry_failed=retry_failed,
                    unreadable=unreadable,
                    on_event=on_event,
                )
            else:
                report = _run_here(store, embedder, root, files, ctx.settings, retry_failed, unreadable, on_event)
            on_event(Phase("Saving the search index"))
            ctx.vector_index()
            report.notes.extend(prepare_queries(embedder, ctx.settings, on_event))
            ctx.forget_text_encoder()  # the next query picks up a newly prepared text graph
    report.seconds = time.perf_counter() - started
    return report


def _run_here(
    store: Store,
    embedder: Embedder,
    root: Path,
    files: Sequence[AudioFile],
    settings: Settings,
    retry_failed: bool,
    unreadable: dict[str, str],
    on_event: Listener,
) -> IndexReport:
    budget = settings.window_budget(embedder.device)
    return run_index(
        store,
        embedder,
        root,
        files,
        batch_size=settings.batch_for(embedder.device),
        workers=settings.workers,
        max_windows=budget,
        retry_failed=retry_failed,
        unreadable=unreadable,
        on_event=on_event,
        before_embed=lambda n: prepare_audio(embedder, settings, on_event, n * (budget or 18)),
    )


def follow_moves(
    store: Store, index_dir: Path, moves: Iterable[tuple[Path | str, Path | str]]
) -> list[tuple[str, str]]:
    """``MusicIndex.follow_moves``: a pair (old, new) is followed when its old path is indexed,
    its new path is not, and the new file has the track's size and content hash; nothing is
    decoded or embedded. Returns the pairs followed, as absolute paths."""
    found: list[tuple[int, str, str, os.stat_result]] = []
    with run_lock(index_dir):
        for a, b in moves:
            old, new = str(Path(a).expanduser().absolute()), str(Path(b).expanduser().absolute())
            known = store.known_files(Path(old)).get(old)
            if known is None or store.known_files(Path(new)).get(new) is not None:
                continue
            try:
                st = os.stat(new)
                if st.st_size == known[1] and content_hash(new) == known[3]:
                    found.append((known[0], old, new, st))
            except OSError:
                continue
        if found:
            with store.write():
                for track_id, _, new, st in found:
                    store.move_track(track_id, new, st.st_size, st.st_mtime_ns)
    return [(old, new) for _, old, new, _ in found]
