"""The index run (owns the run that joins the stages): walk -> plan against the store ->
apply moves and removals -> decode threads (each window ``prepare``d where it was decoded) ->
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from . import embed
from .audio import SAMPLE_RATE, iter_windows, one_line, truncation_warning
from .config import Settings
from .embed import Embedder, embed_windows
from .errors import DecodeError, ModelLoadError, StorageError
from .library import AudioFile, content_hash
from .store import Store, TrackRecord
from .tags import read_tags

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


def _quiet(event: Event) -> None:
    pass


def estimate_windows(files: Sequence[AudioFile], window_seconds: float, max_windows: int | None) -> int:
    """Windows the run will embed, from each file's duration in its header (mutagen)."""
    import mutagen

    from .audio import plan_starts

    length = int(round(window_seconds * SAMPLE_RATE))
    total = 0
    for f in files:
        try:
            seconds = float(mutagen.File(f.path).info.length)
        except Exception:
            seconds = 0.0
        total += len(plan_starts(max(1, int(seconds * SAMPLE_RATE)), length, max_windows))
    return total


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
    on_event: Listener = _quiet,
    on_batch: Callable[[], None] | None = None,
) -> Embedded:
    """Decode ``files`` in ``workers`` threads and embed their windows in batches of
    ``batch_size``, writing finished tracks and failures once per batch.

    Each window is ``prepare``d in the thread that decoded it (on a CPU, CLAP's log-mel),
    so the thread running the model only runs ``embed``.
    """
    out: queue.Queue = queue.Queue(maxsize=2 * batch_size + workers)
    todo = iter(enumerate(files))
    lock = threading.Lock()
    stop = threading.Event()
    result = Embedded()

    def put(item: tuple) -> bool:
        while not stop.is_set():
            try:
                out.put(item, timeout=0.2)
                return True
            except queue.Full:
                continue
        return False

    def decode_worker() -> None:
        while not stop.is_set():
            with lock:
                job = next(todo, None)
            if job is None:
                break
            i, f = job
            try:
                end = 0.0
                for w in iter_windows(f.path, embedder.window_seconds, max_windows):
                    x = embedder.prepare(w.samples[None])
                    end = max(end, w.end)
                    if not put(("win", i, (w.index, w.start, w.end, x))):
                        return
                tags = read_tags(f.path).__dict__.copy()
                tags.pop("duration", None)
                h = hashes.get(str(f.path)) or content_hash(f.path)
                # the last window ends where decoding ended, unless one window sits mid-track
                warning = truncation_warning(f.path, end) if max_windows != 1 or end < embedder.window_seconds else None
                put(("end", i, (tags, h, warning)))
            except DecodeError as exc:
                put(("fail", i, exc.reason))
            except Exception as exc:  # never let one file stop the run
                put(("fail", i, f"unexpected error ({type(exc).__name__}: {one_line(exc)})"))
        put(("done", None, None))

    threads = [threading.Thread(target=decode_worker, daemon=True, name=f"decode-{n}") for n in range(workers)]
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

    for t in threads:
        t.start()
    try:
        running = workers
        while running:
            kind, i, payload = out.get()
            if kind == "win":
                index, start, end, x = payload
                p = pending.setdefault(i, _Pending(files[i]))
                p.starts.append(start)
                p.ends.append(end)
                batch.append((i, index, x))
                if len(batch) >= batch_size:
                    flush()
            elif kind == "end":
                pending[i].info = payload
            elif kind == "fail":
                pending.pop(i, None)
                failures.append((files[i], payload))
            else:
                running -= 1
        flush()
    finally:
        stop.set()
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
    on_event: Listener = _quiet,
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
    plan = plan_run(store, root, files, retry_failed, unreadable)
    report = IndexReport(str(root), unchanged=plan.unchanged, skipped_failed=plan.skipped_failed)
    report.failed = sorted(plan.unreadable.items())
    report.moved = apply_plan(store, plan)
    report.removed = sorted(plan.removed)
    if plan.to_embed:
        if before_embed is not None:
            report.notes.extend(before_embed(len(plan.to_embed)))
        if on_event is not _quiet:  # an ETA for someone listening: header lengths and a timed warm-up window
            windows = estimate_windows(plan.to_embed, embedder.window_seconds, max_windows)
            on_event(RunStart(len(plan.to_embed), windows, max_windows, embedder.device, warm_up(embedder)))
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


def prepare_audio(embedder: Embedder, settings: Settings, on_event: Listener = _quiet) -> list[str]:
    """Pick the audio engine for a run: on a CPU, the model's prepared ONNX graph
    (Settings.onnx_audio; exported and checked once per model per machine, said as a phase).
    Returns notes for the report; a failed export leaves torch in use, with a WARNING."""
    if not (isinstance(embedder, embed.ClapEmbedder) and settings.onnx_audio and embedder.device == "cpu"):
        return []
    int8 = settings.audio_int8
    if not embedder.audio_prepared(int8):
        on_event(Phase("Preparing the audio model for this machine (once per model)"))
    try:
        cosine = embedder.use_onnx_audio(int8=int8)
    except ModelLoadError as exc:
        log.warning("%s", exc)
        return [str(exc)]
    if cosine is None:
        return []
    what = f"int8 copy, cosine {cosine:.5f} vs fp32" if int8 else f"cosine {cosine:.7f} vs torch"
    return [f"audio tower on onnxruntime ({what})"]


def prepare_queries(embedder: Embedder, settings: Settings, on_event: Listener = _quiet) -> list[str]:
    """Once per model per machine: export the text tower to ONNX (checked against torch), so
    that queries need neither torch nor transformers (Settings.fast_queries)."""
    if not (isinstance(embedder, embed.ClapEmbedder) and settings.fast_queries) or embedder.text_prepared():
        return []
    on_event(Phase("Preparing fast queries for this machine (once per model)"))
    try:
        cosine, kind = embedder.prepare_text_onnx()
    except ModelLoadError as exc:
        log.warning("%s", exc)
        return [str(exc)]
    return [f"exported the text tower to ONNX ({kind}) for fast queries (cosine {cosine:.7f} vs torch)"]
