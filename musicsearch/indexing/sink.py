"""Where embedded windows become tracks: the one track assembler (``TrackSink``) used by
local runs, cluster runs and ``ingest`` alike, and its writers: the SQLite store
(``StoreWriter``, one transaction per commit) or Parquet shards (``ShardWriter``, each
written atomically, in ``ingest``'s schema).

A track is written with all its windows, in the commit that completes it, so a run killed
at any point leaves only whole tracks behind and the next run picks up the rest.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from ..analysis import musical_of
from ..errors import MusicSearchError
from ..events import IndexReport, Listener, Progress, quiet
from ..library import AudioFile
from ..store import Store, TrackRecord, utc_now
from .feed import FileEnd

log = logging.getLogger(__name__)

SHARD_META_KEY = b"musicsearch"
SHARD_TAGS = ("title", "artist", "album", "albumartist", "genre", "year")
# windows per Parquet shard (about 1 MB of vectors per 512 windows)
SHARD_WINDOWS = 4096

Failure = tuple[AudioFile, str]


class Writer(Protocol):
    """Where whole tracks and failures go."""

    def write(self, tracks: Sequence[TrackRecord], failures: Sequence[Failure] = ()) -> None: ...

    def close(self) -> None: ...


class StoreWriter:
    """Tracks and failures into the SQLite store, one transaction per ``write``."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def write(
        self, tracks: Sequence[TrackRecord], failures: Sequence[Failure] = (), new: Sequence[TrackRecord] = ()
    ) -> None:
        """Write ``tracks`` (each inserted, or replacing the track at its path), ``new``
        (tracks known to be absent, added in bulk) and ``failures``, in one transaction."""
        now = utc_now()
        with self.store.write():
            if new:
                self.store.add_tracks(new, now)
            for rec in tracks:
                self.store.put_track(rec, now)
            for f, reason in failures:
                self.store.put_failure(str(f.path), f.size, f.mtime_ns, reason, now)

    def close(self) -> None:
        pass


class ShardWriter:
    """Tracks into Parquet shards (``ingest``'s schema), each written atomically once it
    holds ``shard_windows`` windows (and at the end). Each shard's schema metadata names
    its files (path -> size, mtime) and failures, so a rerun skips what is there."""

    def __init__(self, out: Path, model: str, dim: int, shard_windows: int = SHARD_WINDOWS) -> None:
        self.out, self.model, self.dim, self.shard_windows = out, model, dim, shard_windows
        self.run = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self.tracks: list[TrackRecord] = []
        self.failures: list[Failure] = []
        self.windows = 0
        self.written = 0

    def write(self, tracks: Sequence[TrackRecord], failures: Sequence[Failure] = ()) -> None:
        self.tracks += tracks
        self.failures += failures
        self.windows += sum(len(r.starts) for r in tracks)
        if self.windows >= self.shard_windows:
            self.flush()

    def _meta(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "dim": self.dim,
            "files": {r.path: [r.size, r.mtime_ns] for r in self.tracks},
            "failures": {str(f.path): [f.size, f.mtime_ns, reason] for f, reason in self.failures},
        }

    def flush(self) -> None:
        if not self.tracks and not self.failures:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, list[Any]] = {c: [] for c in ("path", "start", "end", *SHARD_TAGS, "duration")}
        for r in self.tracks:
            n = len(r.starts)
            cols["path"] += [r.path] * n
            cols["start"] += list(r.starts)
            cols["end"] += list(r.ends)
            for t in SHARD_TAGS:
                cols[t] += [r.tags.get(t)] * n
            cols["duration"] += [r.duration] * n
        vectors = np.concatenate([r.vectors for r in self.tracks]).reshape(-1) if self.tracks else np.zeros(0)
        kinds = {"path": pa.string(), "start": pa.float64(), "end": pa.float64(), "duration": pa.float64()}
        kinds.update({t: pa.int64() if t == "year" else pa.string() for t in SHARD_TAGS})
        names = ["path", "start", "end", "vector", *SHARD_TAGS, "duration"]
        schema = pa.schema(
            [(c, pa.list_(pa.float32()) if c == "vector" else kinds[c]) for c in names],
            metadata={SHARD_META_KEY: json.dumps(self._meta()).encode()},
        )
        offsets = np.arange(0, len(cols["path"]) + 1, dtype=np.int32) * self.dim
        vector = pa.ListArray.from_arrays(pa.array(offsets), pa.array(vectors.astype(np.float32)))
        arrays = [vector if c == "vector" else pa.array(cols[c], kinds[c]) for c in names]
        self.out.mkdir(parents=True, exist_ok=True)
        final = self.out / f"part-{self.run}-{self.written:05d}.parquet"
        tmp = final.with_suffix(".parquet.tmp")
        pq.write_table(pa.Table.from_arrays(arrays, schema=schema), tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, final)
        self.written += 1
        self.tracks, self.failures, self.windows = [], [], 0

    def close(self) -> None:
        self.flush()


def shard_contents(out: Path) -> tuple[dict[str, tuple[int, int]], dict[str, tuple[int, int, str]]]:
    """What the shards in ``out`` hold: path -> (size, mtime_ns) of embedded files and
    path -> (size, mtime_ns, reason) of failures (later shards win). Shards without our
    metadata (written by other tools) are ignored here."""
    import pyarrow.parquet as pq

    files: dict[str, tuple[int, int]] = {}
    failures: dict[str, tuple[int, int, str]] = {}
    if not out.is_dir():
        return files, failures
    for p in sorted(out.glob("*.parquet")):
        try:
            raw = (pq.read_schema(p).metadata or {}).get(SHARD_META_KEY)
        except Exception as exc:
            log.warning("skipping unreadable shard %s (%s)", p, type(exc).__name__)
            continue
        if raw is None:
            continue
        meta = json.loads(raw)
        for path, (size, mtime) in meta.get("files", {}).items():
            files[path] = (size, mtime)
            failures.pop(path, None)
        for path, (size, mtime, reason) in meta.get("failures", {}).items():
            failures[path] = (size, mtime, reason)
    return files, failures


@dataclass
class _Track:
    """The windows of one file received so far, by window index."""

    file: AudioFile
    starts: dict[int, float] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    end: FileEnd | None = None

    @property
    def complete(self) -> bool:
        return self.end is not None and len(self.vectors) == self.end.windows

    def record(self) -> TrackRecord:
        assert self.end is not None
        order = sorted(self.vectors)
        starts, ends = [self.starts[j] for j in order], [self.ends[j] for j in order]
        vectors = np.stack([self.vectors[j] for j in order]).astype(np.float32)
        e = self.end
        tags = {k: v for k, v in e.tags.items() if k not in ("bpm", "key")}  # stored with the analysis
        return TrackRecord(
            str(self.file.path),
            self.file.size,
            self.file.mtime_ns,
            e.hash,
            tags,
            max(ends),
            starts,
            ends,
            vectors,
            e.warning,
            musical_of(e.tags, e.estimate),
        )


class TrackSink:
    """The one track assembler: windows (their spans, then or later their vectors), each
    file's end or failure, in any order across files; ``commit`` writes the tracks now
    complete and the failures through ``writer`` and records them in ``report`` (added or
    updated, warnings, failures, windows), telling ``Progress``."""

    def __init__(
        self,
        files: Sequence[AudioFile],
        writer: Writer,
        report: IndexReport,
        updates: set[str],
        on_event: Listener = quiet,
    ) -> None:
        self.files, self.writer, self.report, self.updates, self.on_event = files, writer, report, updates, on_event
        self.pending: dict[int, _Track] = {}
        self.failures: list[Failure] = []
        self.done_files = 0
        self.started = time.perf_counter()

    def window(self, i: int, index: int, start: float, end: float, vector: np.ndarray | None = None) -> None:
        """Window ``index`` of file ``i`` spans ``start``..``end`` s (its vector now, or later)."""
        t = self.pending.setdefault(i, _Track(self.files[i]))
        t.starts[index], t.ends[index] = start, end
        if vector is not None:
            self.vector(i, index, vector)

    def vector(self, i: int, index: int, vector: np.ndarray) -> None:
        """The vector of a window told by ``window`` (dropped where its file failed since)."""
        self.report.windows += 1
        t = self.pending.get(i)
        if t is not None:
            t.vectors[index] = vector

    def end(self, i: int, end: FileEnd) -> None:
        self.pending.setdefault(i, _Track(self.files[i])).end = end

    def fail(self, i: int, reason: str) -> None:
        self.pending.pop(i, None)
        self.failures.append((self.files[i], reason))

    def commit(self) -> None:
        """Write what is complete (one ``writer.write``), if anything."""
        done = [i for i, t in self.pending.items() if t.complete]
        if not done and not self.failures:
            return
        records = [self.pending.pop(i).record() for i in done]
        failures, self.failures = self.failures, []
        self.writer.write(records, failures)
        for rec in records:
            (self.report.updated if rec.path in self.updates else self.report.added).append(rec.path)
            if rec.warning:
                self.report.warnings.append((rec.path, rec.warning))
        self.report.failed += [(str(f.path), reason) for f, reason in failures]
        self.done_files += len(records) + len(failures)
        elapsed = time.perf_counter() - self.started
        self.on_event(Progress(self.done_files, len(self.files), self.report.windows, elapsed))

    def finish(self) -> None:
        """Commit what is left.

        Raises:
            MusicSearchError: a file neither ended nor failed (the run lost some of it).
        """
        self.commit()
        if self.pending:
            lost = ", ".join(str(t.file.path) for t in self.pending.values())
            raise MusicSearchError(f"the run ended with incomplete tracks ({lost}); run the command again")

    def close(self) -> None:
        """Close the writer (a shard writer writes what it holds), finished or not."""
        self.writer.close()
