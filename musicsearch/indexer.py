"""Index a folder: walk -> diff against the store -> decode threads -> batched embedding ->
one SQLite transaction per embedded batch -> FAISS rebuilt at the end.

Windows of several files share a batch. A track is written (with all its windows) in the
transaction of the batch that completes it, so a run killed at any point leaves only whole
tracks behind and the next run picks up the rest.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
from tqdm import tqdm

from .audio import SAMPLE_RATE, iter_windows, one_line
from .embed import Embedder
from .errors import DecodeError
from .library import AudioFile, content_hash
from .store import Store, TrackRecord
from .tags import read_tags


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


def estimate_windows(files: Sequence[AudioFile], window_seconds: float, max_windows: int | None) -> int:
    """Windows the run will embed, from each file's duration in its header (mutagen)."""
    import mutagen

    from .audio import plan_starts

    length = int(round(window_seconds * SAMPLE_RATE))
    total = 0
    for f in files:
        try:
            seconds = float(mutagen.File(f.path).info.length)  # type: ignore[union-attr]
        except Exception:
            seconds = 0.0
        total += len(plan_starts(max(1, int(seconds * SAMPLE_RATE)), length, max_windows))
    return total


def warm_up(embedder: Embedder) -> float:
    """Embed one silent window (the first call pays one-time costs) and return windows/s of a
    second one."""
    window = np.zeros((1, int(round(embedder.window_seconds * SAMPLE_RATE))), np.float32)
    embedder.embed_windows(window)
    t0 = time.perf_counter()
    embedder.embed_windows(window)
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


def plan_run(store: Store, root: Path, files: Sequence[AudioFile], retry_failed: bool = False) -> Plan:
    """Compare the files below ``root`` with what the store holds for ``root``.

    Unchanged (same size and mtime) files are skipped; a file with a new mtime but the same
    content hash only gets its mtime updated; changed ones are re-embedded; a new path
    whose content hash equals that of a vanished track is a move; vanished tracks that were
    not moved are removed. A recorded failure is retried only when its file changed or
    ``retry_failed`` is set.
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

    missing = {p: k for p, k in known.items() if p not in on_disk}
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
        stale_failures=[p for p in failures if p not in on_disk],
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
            vectors.extend(embedder.embed_windows(np.stack(batch)))
            batch.clear()
    if batch:
        vectors.extend(embedder.embed_windows(np.stack(batch)))
    return track_vector(np.stack(vectors))


@dataclass
class _Pending:
    file: AudioFile
    starts: list[float] = field(default_factory=list)
    ends: list[float] = field(default_factory=list)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    info: tuple[dict, str] | None = None  # (tags, hash) once decoding finished

    @property
    def complete(self) -> bool:
        return self.info is not None and len(self.vectors) == len(self.starts)


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


def embed_files(
    store: Store,
    embedder: Embedder,
    files: Sequence[AudioFile],
    *,
    hashes: dict[str, str],
    batch_size: int,
    workers: int,
    max_windows: int | None,
    report: IndexReport,
    updates: set[str],
    progress: bool = False,
    on_batch: Callable[[], None] | None = None,
) -> None:
    """Decode ``files`` in ``workers`` threads and embed their windows in batches of
    ``batch_size``, writing finished tracks and failures once per batch.

    With an embedder whose ``mel_in_workers`` is true (CLAP on a CPU), each window's log-mel
    is computed in its decode thread too, so the thread running the model only runs the model.
    """
    featurize = embedder.features if getattr(embedder, "mel_in_workers", False) else None  # type: ignore[attr-defined]
    out: queue.Queue = queue.Queue(maxsize=2 * batch_size + workers)
    todo = iter(enumerate(files))
    lock = threading.Lock()
    stop = threading.Event()

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
                for w in iter_windows(f.path, embedder.window_seconds, max_windows):
                    x = np.asarray(featurize(w.samples)) if featurize is not None else w.samples
                    if not put(("win", i, (w.index, w.start, w.end, x))):
                        return
                tags = read_tags(f.path).__dict__.copy()
                tags.pop("duration", None)
                h = hashes.get(str(f.path)) or content_hash(f.path)
                put(("end", i, (tags, h)))
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
    bar = tqdm(total=len(files), unit="file", disable=not progress, dynamic_ncols=True, smoothing=0.1)

    def commit() -> None:
        done = [i for i, p in pending.items() if p.complete]
        if not done and not failures:
            return
        now = _now()
        with store.write():
            for i in done:
                p = pending.pop(i)
                tags, h = p.info  # type: ignore[misc]
                vectors = np.stack([p.vectors[j] for j in range(len(p.starts))])
                store.put_track(
                    TrackRecord(
                        str(p.file.path), p.file.size, p.file.mtime_ns, h, tags, max(p.ends), p.starts, p.ends, vectors
                    ),
                    now,
                )
                (report.updated if str(p.file.path) in updates else report.added).append(str(p.file.path))
            for f, reason in failures:
                store.put_failure(str(f.path), f.size, f.mtime_ns, reason, now)
                report.failed.append((str(f.path), reason))
        bar.update(len(done) + len(failures))
        failures.clear()
        elapsed = time.perf_counter() - started
        bar.set_postfix_str(f"{report.windows / elapsed:.1f} windows/s" if elapsed > 0 else "")

    def flush() -> None:
        if batch:
            if featurize is not None:
                vecs = embedder.embed_features(np.concatenate([b[2] for b in batch]))  # type: ignore[attr-defined]
            else:
                vecs = embedder.embed_windows(np.stack([b[2] for b in batch]))
            for (i, j, _), v in zip(batch, vecs):
                if i in pending:
                    pending[i].vectors[j] = v
            report.windows += len(batch)
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
        bar.close()
