"""Precomputed embeddings in: Parquet shards of window vectors computed elsewhere (another
machine, a cluster run, a benchmark) become tracks of an index, without loading any model.

A shard has one row per window: ``path`` (string), ``start`` and ``end`` (seconds), ``vector``
(list of float32, the model's dimension) and optionally ``title``, ``artist``, ``album``,
``albumartist``, ``genre``, ``year``, ``duration``. The rows of a track are grouped by ``path``
within a shard (a track's windows live in one shard); its vector is the normalized mean of
its windows, as for audio. Each track is keyed by its path and by a hash of its windows and
tags: re-ingesting the same shard changes nothing; a changed track is replaced in place.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..context import IndexContext
from ..errors import ModelMismatch, MusicSearchError
from ..loading import resolve_model
from ..store import IndexMeta, Store, TrackRecord
from .plan import run_lock
from .sink import SHARD_TAGS, StoreWriter

log = logging.getLogger(__name__)

REQUIRED = ("path", "start", "end", "vector")
OPTIONAL = (*SHARD_TAGS, "duration")
HASH_PREFIX = "ingest:"
INGEST_CACHE_KB = 256 * 1024  # SQLite page cache while ingesting


@dataclass
class IngestReport:
    """What an ingest did: tracks added, replaced (changed) and unchanged; windows written;
    tracks refused with their reason."""

    shards: int = 0
    added: int = 0
    updated: int = 0
    unchanged: int = 0
    windows: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


def shard_files(paths: Iterable[Path | str]) -> list[Path]:
    """The Parquet files named, folders expanded (``*.parquet`` below them, sorted).

    Raises:
        MusicSearchError: a path does not exist, or a folder holds no Parquet file.
    """
    out: list[Path] = []
    for raw in paths:
        p = Path(raw).expanduser()
        if p.is_dir():
            found = sorted(q for q in p.rglob("*.parquet") if q.is_file())
            if not found:
                raise MusicSearchError(f"no .parquet files in {p}")
            out.extend(found)
        elif p.is_file():
            out.append(p)
        else:
            raise MusicSearchError(f"no such shard: {p}")
    return out


def shard_dim(path: Path) -> int:
    """The vector dimension of a shard (its first row)."""
    import pyarrow.parquet as pq

    try:
        first = next(pq.ParquetFile(path).iter_batches(batch_size=1, columns=["vector"]))
    except StopIteration:
        return 0
    except Exception as exc:
        raise MusicSearchError(f"{path} is not a readable Parquet shard with a 'vector' column ({exc})") from None
    return len(first.column(0)[0]) if first.num_rows else 0


def _column(table: object, name: str) -> list:
    return table.column(name).to_pylist()  # type: ignore[attr-defined]


def read_shard(path: Path, dim: int) -> Iterator[TrackRecord | tuple[str, str]]:
    """The tracks of one shard, as records ready to store, or (path, reason) for a track
    that cannot be used (non-finite or zero vector, empty path).

    Raises:
        MusicSearchError: not a Parquet file, a required column missing, or vectors of
            another dimension than ``dim``.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except Exception as exc:
        raise MusicSearchError(f"{path} is not a readable Parquet shard ({str(exc).splitlines()[0]})") from None
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise MusicSearchError(f"shard {path} lacks the column(s) {', '.join(missing)} (needs {', '.join(REQUIRED)})")
    n = table.num_rows
    if n == 0:
        return
    vecs = _shard_vectors(table, path, dim)
    keys = np.asarray(table.column("path").fill_null("").cast(pa.string()).to_numpy(zero_copy_only=False), dtype=object)
    starts = np.asarray(table.column("start").to_numpy(zero_copy_only=False), dtype=np.float64)
    ends = np.asarray(table.column("end").to_numpy(zero_copy_only=False), dtype=np.float64)
    extra = {c: _column(table, c) for c in OPTIONAL if c in table.column_names}
    order = _grouped_order(keys, starts)
    if order is not None:  # rows not yet grouped by track and ordered by start: sort them
        vecs, keys, starts, ends = vecs[order], keys[order], starts[order], ends[order]
        extra = {c: [col[i] for i in order.tolist()] for c, col in extra.items()}
    # checks and normalization for every window at once; per track only its tags and hash
    finite = np.isfinite(vecs).all(axis=1)
    norms = np.concatenate(
        [np.linalg.norm(vecs[i : i + 8192].astype(np.float64), axis=1) for i in range(0, n, 8192)]
    )  # as per track before: the same bytes, the same hashes
    bounds = np.flatnonzero(np.r_[True, keys[1:] != keys[:-1], True])
    lengths = np.diff(bounds)
    bad_track = np.logical_or.reduceat(~finite | (norms == 0), bounds[:-1])
    # a track with any window off unit length has all its windows divided by their norms
    fix = np.repeat(np.logical_or.reduceat(np.abs(norms - 1) > 1e-3, bounds[:-1]) & ~bad_track, lengths)
    if fix.any():
        vecs = np.array(vecs)  # writable
        vecs[fix] = (vecs[fix] / norms[fix, None]).astype(np.float32)
    durations = extra.get("duration")
    firsts = bounds[:-1]
    for t in np.argsort(keys[firsts], kind="stable").tolist():  # tracks in path order
        a, b = int(firsts[t]), int(bounds[t + 1])
        track_path = str(keys[a])
        if not track_path:
            yield ("", f"{b - a} window(s) in {path.name} have no path")
            continue
        if bad_track[t]:
            yield (track_path, "a window vector is not finite or is zero")
            continue
        v = vecs[a:b]
        tags = _tags_at(extra, a, track_path)
        dur = durations[a] if durations is not None else None
        duration = float(dur) if dur is not None else float(ends[a:b].max())
        h = hashlib.sha1(v.tobytes())
        h.update(starts[a:b].tobytes() + ends[a:b].tobytes())
        h.update(json.dumps([tags, duration], sort_keys=True, default=str).encode())
        yield TrackRecord(
            path=track_path,
            size=0,
            mtime_ns=0,
            hash=HASH_PREFIX + h.hexdigest(),
            tags=tags,
            duration=duration,
            starts=starts[a:b].tolist(),
            ends=ends[a:b].tolist(),
            vectors=v,
        )


def _shard_vectors(table: Any, path: Path, dim: int) -> np.ndarray:
    """The shard's window vectors, (rows, dim) float32.

    Raises:
        MusicSearchError: 'vector' is not a list column, or holds vectors of another size.
    """
    import pyarrow as pa

    vcol = table.column("vector").combine_chunks()
    if not (pa.types.is_list(vcol.type) or pa.types.is_large_list(vcol.type) or pa.types.is_fixed_size_list(vcol.type)):
        raise MusicSearchError(f"shard {path}: 'vector' must be a list of floats, not {vcol.type}")
    lengths = np.asarray(vcol.value_lengths().fill_null(0))
    if (lengths != dim).any():
        bad = int(lengths[lengths != dim][0])
        raise MusicSearchError(f"shard {path} holds {bad}-d vectors; the index is {dim}-d")
    flat = np.asarray(vcol.flatten().to_numpy(zero_copy_only=False), dtype=np.float32)
    return flat.reshape(table.num_rows, dim)


def _tags_at(extra: dict[str, list], row: int, track_path: str) -> dict[str, Any]:
    """The tags of the track whose first row is ``row``: a year that is no number dropped,
    the title the file name's stem where there is none."""
    tags = {c: extra[c][row] for c in extra if c != "duration" and extra[c][row] is not None}
    if "year" in tags:
        try:
            tags["year"] = int(tags["year"])
        except (TypeError, ValueError):
            del tags["year"]
    if "title" not in tags:
        tags["title"] = Path(track_path).stem or track_path
    return tags


def _grouped_order(keys: np.ndarray, starts: np.ndarray) -> np.ndarray | None:
    """None when each path's rows are already together and in start order (as shards are
    written), else the order (by path, then start) that groups them."""
    n = len(keys)
    if n:
        change = np.r_[True, keys[1:] != keys[:-1]]
        run_keys = keys[change]
        same = ~change[1:]
        if len(set(run_keys.tolist())) == len(run_keys) and not (same & (starts[1:] < starts[:-1])).any():
            return None
    return np.lexsort((starts, keys))


def ingest(store: Store, shards: Iterable[Path | str], dim: int) -> IngestReport:
    """Add the tracks of ``shards`` to ``store`` (bound to a model of dimension ``dim``):
    new paths added in bulk, changed ones replaced in place, unchanged ones left alone (a
    shard with nothing new writes nothing, so the derived indexes stay as they are). One
    transaction per shard: a killed ingest keeps the shards it finished.

    Raises:
        MusicSearchError: a shard is missing, unreadable, lacks a column, or has vectors of
            another dimension (shards before it stay ingested).
    """
    started = time.perf_counter()
    report = IngestReport()
    # 256 MB of page cache while writing: the hash, filter and FTS indexes take keys in random
    # order, and with SQLite's default 2 MB each insert re-reads pages once the index outgrows it
    with store.page_cache(INGEST_CACHE_KB):
        _ingest_shards(store, shard_files(shards), dim, report)
    report.seconds = time.perf_counter() - started
    return report


def _ingest_shards(store: Store, files: list[Path], dim: int, report: IngestReport) -> None:
    writer = StoreWriter(store)  # the run's own writer: one transaction per shard
    for path in files:
        records: list[TrackRecord] = []
        for item in read_shard(path, dim):
            if isinstance(item, tuple):
                report.failed.append(item)
            else:
                records.append(item)
        known = store.hashes_of([r.path for r in records])
        new = [r for r in records if r.path not in known]
        changed = [r for r in records if r.path in known and known[r.path] != r.hash]
        report.unchanged += len(records) - len(new) - len(changed)
        if new or changed:
            writer.write(changed, new=new)
            report.added += len(new)
            report.updated += len(changed)
            report.windows += sum(len(r.vectors) for r in new + changed)
        report.shards += 1
        log.info(
            "ingested %s: %d new, %d changed, %d unchanged",
            path,
            len(new),
            len(changed),
            len(records) - len(new) - len(changed),
        )


def ingest_into(ctx: IndexContext, shards: Sequence[Path | str], model: str | None) -> IngestReport:
    """``MusicIndex.ingest``: a new index is bound to ``model`` (or ``settings.model``) and the
    shards' dimension, an existing one refuses another model; the shards are ingested and the
    derived indexes brought up to date."""
    files = shard_files(shards)
    dim = next((d for d in map(shard_dim, files) if d), 0)
    meta = ctx.store().index_meta() if ctx.exists() else None
    wanted = model or ctx.settings.model
    if meta is None:
        if not wanted:
            raise MusicSearchError("name the model that computed the shards: --model MODEL")
        if not dim:
            raise MusicSearchError("the shards hold no vectors")
    elif wanted and resolve_model(wanted) != meta.model:
        raise ModelMismatch(f"index {ctx.path} was built with model {meta.model}, not {wanted}")
    store = ctx.store(create=True)
    if meta is None:
        store.record_meta(IndexMeta.new(resolve_model(wanted or ""), ctx.settings.revision, dim, 10.0, checked=False))
        meta = store.index_meta()
        assert meta is not None
    with run_lock(ctx.path):  # one writer at a time: an index run or another ingest is refused in one line
        report = ingest(store, files, meta.dim)
        ctx.vector_index("tracks")
        ctx.vector_index("windows")
    return report
