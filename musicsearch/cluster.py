"""The index run on a Ray cluster (optional extra: ``pip install 'musicsearch[ray]'``).

The driver walks, tags, hashes and plans exactly as a local run (``indexer.plan_run`` and
``indexer.apply_plan``), so incremental runs, moves and removals behave the same. The files
to embed flow through Ray Data in two stages scaled separately:

    file paths ─► flat_map: decode + ``prepare`` (CPU tasks, one row per window)
               ─► map_batches: ``embed`` in an actor pool (one model load per actor;
                  one GPU per actor when the cluster has GPUs, CPU actors otherwise)
               ─► iter_batches on the driver, the only writer

The driver keeps a track until all its windows are back and writes whole tracks once per
received batch (one SQLite transaction, as a local run), so a killed driver loses at most
the batch it had not committed and the next run embeds only what is missing. With
``shards`` the driver writes Parquet shards in ``ingest``'s schema instead (atomically, one
file per ``shard_windows`` windows); ``musicsearch ingest`` merges them later.

Every node must be able to read the music folder at the same path, and have musicsearch
(and the model, for a local model folder) installed at the same place.
"""

from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from .config import Settings
from .embed import ClapEmbedder, Embedder
from .errors import MusicSearchError
from .indexer import (
    IndexReport,
    Listener,
    Progress,
    RunStart,
    estimate_windows,
    file_messages,
    quiet,
    start_run,
)
from .library import AudioFile
from .store import Store, TrackRecord

log = logging.getLogger(__name__)

RAY_MISSING = "indexing on a cluster needs Ray: pip install 'musicsearch[ray]'"
SHARD_META_KEY = b"musicsearch"
# windows per Parquet shard in --shards mode (about 1 MB of vectors per 512 windows)
SHARD_WINDOWS = 4096
# Ray Data blocks of file paths (one decode task each): a few files per task keeps the
# per-task overhead small without leaving cores idle at the end of the run.
FILES_PER_TASK = 4


def require_ray() -> Any:
    """The ``ray`` module with Ray Data, or a one-line error saying what to install."""
    try:
        import ray
        import ray.data
    except ImportError:
        raise MusicSearchError(RAY_MISSING) from None
    return ray


@dataclass(frozen=True)
class ClusterInfo:
    """What the driver sees of the cluster it is connected to."""

    nodes: int
    cpus: int
    gpus: int


@contextlib.contextmanager
def connect(address: str = "auto") -> Iterator[ClusterInfo]:
    """Connect to the Ray cluster at ``address`` (``auto``: the one this machine belongs to,
    or RAY_ADDRESS), unless this process is connected already. The connection stays open
    until the process exits (Ray's own exit handler closes it): Ray Data's background
    threads outlive a run, and a ``ray.shutdown()`` under them ends the whole process.

    Raises:
        MusicSearchError: Ray is not installed, or no cluster answers at ``address``.
    """
    ray = require_ray()
    if not ray.is_initialized():
        try:
            ray.init(address=address, logging_level=logging.WARNING)
        except (ConnectionError, RuntimeError, ValueError) as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise MusicSearchError(
                f"cannot reach a Ray cluster at {address!r} ({first}); start one with `ray start --head` "
                "(and `ray start --address=HEAD:6379` on each other machine), or pass --cluster HEAD:6379"
            ) from None
    ctx = ray.data.DataContext.get_current()
    ctx.enable_progress_bars = False  # the caller draws progress from our events
    ctx.enable_auto_log_stats = False
    ctx.print_on_execution_start = False
    resources = ray.cluster_resources()
    nodes = sum(1 for n in ray.nodes() if n.get("Alive"))
    yield ClusterInfo(nodes, int(resources.get("CPU", 0)), int(resources.get("GPU", 0)))


# --- the model on the cluster -------------------------------------------------------------


def _clap(model: str, revision: str | None, settings: Settings, load: bool) -> Embedder:
    """A ClapEmbedder as an actor makes it (``load``: the audio tower too, ONNX on a CPU as
    a local run picks it); without ``load``, the light copy whose ``prepare`` decode tasks run."""
    from .indexer import prepare_audio

    embedder = ClapEmbedder(model, revision, settings.device, settings.precision)
    if load:
        for note in prepare_audio(embedder, settings):
            log.info("%s", note)
        embedder.audio_tower()
    return embedder


def _same(embedder: Embedder, load: bool) -> Embedder:
    return embedder


def model_factory(embedder: Embedder, settings: Settings) -> Callable[[bool], Embedder]:
    """How a node builds the run's model: a ``ClapEmbedder`` is rebuilt from its id and the
    settings (device picked on the node); any other embedder is shipped as it is."""
    if isinstance(embedder, ClapEmbedder):
        return functools.partial(_clap, embedder.model_id, embedder.revision, settings)
    return functools.partial(_same, embedder)


def _set_threads() -> None:
    import warnings

    import torch  # one decode task per core: its log-mel runs on one thread

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    # Ray hands numpy arrays over read-only (zero copy); the mel filters are only read
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def _decode(row: dict[str, Any], embedder: Embedder, max_windows: int | None) -> Iterator[dict[str, Any]]:
    """One file -> a row per window (prepared features as bytes), then an ``end`` row with
    tags, hash, warning and the number of windows, or a ``fail`` row with the reason."""
    _set_threads()
    n = 0
    known = str(row["hash"]) or None
    for kind, i, payload in file_messages(embedder, int(row["i"]), Path(str(row["path"])), known, max_windows):
        if kind == "win":
            index, start, end, x = payload
            x = np.ascontiguousarray(x, dtype=np.float32)
            n += 1
            shape = json.dumps(list(x.shape))
            yield {"i": i, "kind": "win", "w": index, "start": start, "end": end, "x": x.tobytes(), "info": shape}
        elif kind == "end":
            tags, h, warning = payload
            info = json.dumps({"tags": tags, "hash": h, "warning": warning, "n": n}, default=str)
            yield {"i": i, "kind": "end", "w": -1, "start": 0.0, "end": 0.0, "x": b"", "info": info}
        else:
            yield {"i": i, "kind": "fail", "w": -1, "start": 0.0, "end": 0.0, "x": b"", "info": str(payload)}


class _EmbedActor:
    """The audio tower, loaded once per actor: embeds the window rows of each batch and
    passes ``end``/``fail`` rows through."""

    def __init__(self, factory: Callable[[bool], Embedder]) -> None:
        self.embedder = factory(True)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        kinds = batch["kind"]
        vectors = np.zeros((len(kinds), self.embedder.dim), np.float32)
        wins = np.flatnonzero(kinds == "win")
        if len(wins):
            xs = [np.frombuffer(batch["x"][k], np.float32).reshape(json.loads(batch["info"][k])) for k in wins]
            vectors[wins] = self.embedder.embed(np.concatenate(xs))
        out = {k: v for k, v in batch.items() if k != "x"}
        out["vector"] = vectors
        return out


def _probe(factory: Callable[[bool], Embedder]) -> Embedder:
    return factory(False)


def _actor_class(factory: Callable[[bool], Embedder]) -> type:
    """``_EmbedActor`` bound to ``factory`` as a class (shipped with it), so the actor pool
    needs no constructor arguments in the object store."""

    class EmbedActor(_EmbedActor):
        def __init__(self) -> None:
            super().__init__(factory)

    return EmbedActor


@dataclass(frozen=True)
class _Layout:
    """Where the model runs: the actors' device, how many, with what resources."""

    device: str
    actors: int
    gpus_per_actor: int
    batch_size: int
    max_windows: int | None


def plan_layout(info: ClusterInfo, settings: Settings, device: str, actors: int | None = None) -> _Layout:
    """One actor per GPU when the cluster has GPUs, else one CPU actor per node; batch size
    and window budget for the actors' device, as a local run on that device would pick."""
    gpus = 1 if info.gpus > 0 else 0
    count = actors or (info.gpus if gpus else max(1, info.nodes))
    return _Layout(device, count, gpus, settings.batch_for(device), settings.window_budget(device))


def _stream(
    ray: Any,
    files: Sequence[AudioFile],
    hashes: dict[str, str],
    factory: Callable[[bool], Embedder],
    info: ClusterInfo,
    settings: Settings,
    actors: int | None,
) -> tuple[_Layout, Iterator[dict[str, np.ndarray]]]:
    """Build the two-stage dataset; returns its layout and an iterator of result batches."""
    gpus = 1 if info.gpus > 0 else 0
    # the decode side must prepare what the actors' device takes: ask a node with an
    # actor's resources to build the light copy (and say which device it picked)
    prepare_side = ray.get(ray.remote(num_gpus=gpus, num_cpus=0 if gpus else 1)(_probe).remote(factory))
    layout = plan_layout(info, settings, prepare_side.device, actors)
    log.info(
        "cluster: %d node(s), %d CPU(s), %d GPU(s); %d embed actor(s) on %s, batch %d",
        info.nodes,
        info.cpus,
        info.gpus,
        layout.actors,
        layout.device,
        layout.batch_size,
    )
    rows = [{"i": i, "path": str(f.path), "hash": hashes.get(str(f.path), "")} for i, f in enumerate(files)]
    blocks = max(1, min(len(rows), -(-len(rows) // FILES_PER_TASK)))
    ds = ray.data.from_items(rows, override_num_blocks=max(blocks, min(len(rows), info.cpus)))
    ds = ds.flat_map(_decode, fn_args=(prepare_side, layout.max_windows), num_cpus=1)
    ds = ds.map_batches(
        _actor_class(factory),
        batch_size=layout.batch_size,
        batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=layout.actors),
        num_gpus=layout.gpus_per_actor,
        num_cpus=0 if layout.gpus_per_actor else 1,
    )
    return layout, iter(ds.iter_batches(batch_size=layout.batch_size, batch_format="numpy"))


# --- the driver: whole tracks to a sink ----------------------------------------------------


@dataclass
class _Track:
    file: AudioFile
    starts: dict[int, float] = field(default_factory=dict)
    ends: dict[int, float] = field(default_factory=dict)
    vectors: dict[int, np.ndarray] = field(default_factory=dict)
    info: dict[str, Any] | None = None

    @property
    def complete(self) -> bool:
        return self.info is not None and len(self.vectors) == self.info["n"]

    def record(self) -> TrackRecord:
        assert self.info is not None
        order = sorted(self.vectors)
        starts, ends = [self.starts[j] for j in order], [self.ends[j] for j in order]
        return TrackRecord(
            str(self.file.path),
            self.file.size,
            self.file.mtime_ns,
            self.info["hash"],
            self.info["tags"],
            max(ends),
            starts,
            ends,
            np.stack([self.vectors[j] for j in order]).astype(np.float32),
            self.info["warning"],
        )


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


class _StoreSink:
    """Whole tracks and failures into SQLite, one transaction per commit."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def commit(self, tracks: list[TrackRecord], failures: list[tuple[AudioFile, str]]) -> None:
        now = _now()
        with self.store.write():
            for rec in tracks:
                self.store.put_track(rec, now)
            for f, reason in failures:
                self.store.put_failure(str(f.path), f.size, f.mtime_ns, reason, now)

    def close(self) -> None:
        pass


SHARD_TAGS = ("title", "artist", "album", "albumartist", "genre", "year")


class _ShardSink:
    """Whole tracks into Parquet shards (``ingest``'s schema), each written atomically once
    it holds ``shard_windows`` windows (and at the end). Each shard's schema metadata names
    its files (path -> size, mtime) and failures, so a rerun skips what is there."""

    def __init__(self, out: Path, model: str, dim: int, shard_windows: int) -> None:
        self.out, self.model, self.dim, self.shard_windows = out, model, dim, shard_windows
        self.run = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self.tracks: list[TrackRecord] = []
        self.failures: list[tuple[AudioFile, str]] = []
        self.windows = 0
        self.written = 0

    def commit(self, tracks: list[TrackRecord], failures: list[tuple[AudioFile, str]]) -> None:
        self.tracks += tracks
        self.failures += failures
        self.windows += sum(len(r.starts) for r in tracks)
        if self.windows >= self.shard_windows:
            self.flush()

    def flush(self) -> None:
        if not self.tracks and not self.failures:
            return
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols: dict[str, list[Any]] = {c: [] for c in ("path", "start", "end", "vector", *SHARD_TAGS, "duration")}
        for r in self.tracks:
            for j in range(len(r.starts)):
                cols["path"].append(r.path)
                cols["start"].append(r.starts[j])
                cols["end"].append(r.ends[j])
                cols["vector"].append(r.vectors[j])
                for t in SHARD_TAGS:
                    cols[t].append(r.tags.get(t))
                cols["duration"].append(r.duration)
        meta = {
            "model": self.model,
            "dim": self.dim,
            "files": {r.path: [r.size, r.mtime_ns] for r in self.tracks},
            "failures": {str(f.path): [f.size, f.mtime_ns, reason] for f, reason in self.failures},
        }
        vectors = np.stack(cols["vector"]).reshape(-1) if self.tracks else np.zeros(0, np.float32)
        schema = pa.schema(
            [
                ("path", pa.string()),
                ("start", pa.float64()),
                ("end", pa.float64()),
                ("vector", pa.list_(pa.float32())),
                *((t, pa.int64() if t == "year" else pa.string()) for t in SHARD_TAGS),
                ("duration", pa.float64()),
            ],
            metadata={SHARD_META_KEY: json.dumps(meta).encode()},
        )
        offsets = np.arange(0, len(cols["path"]) + 1, dtype=np.int32) * self.dim
        arrays = [
            pa.array(cols["path"], pa.string()),
            pa.array(cols["start"], pa.float64()),
            pa.array(cols["end"], pa.float64()),
            pa.ListArray.from_arrays(pa.array(offsets), pa.array(vectors.astype(np.float32))),
            *(pa.array(cols[t], pa.int64() if t == "year" else pa.string()) for t in SHARD_TAGS),
            pa.array(cols["duration"], pa.float64()),
        ]
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


def _drive(
    batches: Iterator[dict[str, np.ndarray]],
    files: Sequence[AudioFile],
    sink: _StoreSink | _ShardSink,
    updates: set[str],
    report: IndexReport,
    on_event: Listener,
    on_batch: Callable[[], None] | None,
) -> None:
    """Collect result batches into whole tracks; commit finished tracks and failures after
    each batch."""
    pending: dict[int, _Track] = {}
    started = time.perf_counter()
    done_files = 0
    for batch in batches:
        failures: list[tuple[AudioFile, str]] = []
        kinds, idx = batch["kind"], batch["i"]
        for r in range(len(kinds)):
            i = int(idx[r])
            if kinds[r] == "fail":
                pending.pop(i, None)
                failures.append((files[i], str(batch["info"][r])))
                continue
            t = pending.setdefault(i, _Track(files[i]))
            if kinds[r] == "win":
                w = int(batch["w"][r])
                t.starts[w], t.ends[w] = float(batch["start"][r]), float(batch["end"][r])
                t.vectors[w] = batch["vector"][r]
                report.windows += 1
            else:
                t.info = json.loads(batch["info"][r])
        done = [i for i, t in pending.items() if t.complete]
        records = [pending.pop(i).record() for i in done]
        if records or failures:
            sink.commit(records, failures)
            for rec in records:
                (report.updated if rec.path in updates else report.added).append(rec.path)
                if rec.warning:
                    report.warnings.append((rec.path, rec.warning))
            report.failed += [(str(f.path), reason) for f, reason in failures]
            done_files += len(records) + len(failures)
            on_event(Progress(done_files, len(files), report.windows, time.perf_counter() - started))
        if on_batch is not None:
            on_batch()
    if pending:  # should not happen: every file ends with an end or fail row
        lost = ", ".join(str(t.file.path) for t in pending.values())
        raise MusicSearchError(f"the cluster run ended with incomplete tracks ({lost}); run the command again")


def _embed_on_cluster(
    embedder: Embedder,
    files: Sequence[AudioFile],
    hashes: dict[str, str],
    updates: set[str],
    sink: _StoreSink | _ShardSink,
    report: IndexReport,
    *,
    settings: Settings,
    address: str,
    actors: int | None,
    on_event: Listener,
    on_batch: Callable[[], None] | None,
) -> None:
    ray = require_ray()
    with connect(address) as info:
        factory = model_factory(embedder, settings)
        layout, batches = _stream(ray, files, hashes, factory, info, settings, actors)
        if on_event is not quiet:
            windows = estimate_windows(files, embedder.window_seconds, layout.max_windows)
            on_event(RunStart(len(files), windows, layout.max_windows, layout.device, None))
        report.notes.append(
            f"Ray cluster: {info.nodes} node(s), {info.cpus} CPU(s), {info.gpus} GPU(s); "
            f"{layout.actors} embed actor(s) on {layout.device}, batch {layout.batch_size}"
        )
        try:
            _drive(batches, files, sink, updates, report, on_event, on_batch)
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()
            sink.close()


def run_index_cluster(
    store: Store,
    embedder: Embedder,
    root: Path,
    files: Sequence[AudioFile],
    *,
    settings: Settings,
    address: str = "auto",
    retry_failed: bool = False,
    unreadable: dict[str, str] | None = None,
    actors: int | None = None,
    on_event: Listener = quiet,
    on_batch: Callable[[], None] | None = None,
) -> IndexReport:
    """``indexer.run_index`` with the embedding on a Ray cluster: the same plan, moves,
    removals and report; tracks and failures written here, once per received batch.

    Args:
        embedder: the run's model on the driver (its id names the model the actors load).
        address: ``auto`` or HOST:PORT of the cluster's head.
        actors: embed actors (default: one per GPU, or one per node without GPUs).
        on_batch: called after each received batch (tests stop a run there).

    Raises:
        MusicSearchError: Ray missing, no cluster at ``address``.
    """
    started = time.perf_counter()
    plan, report = start_run(store, root, files, retry_failed, unreadable)
    if plan.to_embed:
        _embed_on_cluster(
            embedder,
            plan.to_embed,
            plan.hashes,
            plan.updates,
            _StoreSink(store),
            report,
            settings=settings,
            address=address,
            actors=actors,
            on_event=on_event,
            on_batch=on_batch,
        )
    report.seconds = time.perf_counter() - started
    return report


def index_to_shards(
    embedder: Embedder,
    root: Path,
    files: Sequence[AudioFile],
    out: Path,
    *,
    settings: Settings,
    address: str = "auto",
    retry_failed: bool = False,
    unreadable: dict[str, str] | None = None,
    actors: int | None = None,
    shard_windows: int = SHARD_WINDOWS,
    on_event: Listener = quiet,
    on_batch: Callable[[], None] | None = None,
) -> IndexReport:
    """Embed ``files`` on the cluster into Parquet shards in ``out`` instead of an index.
    Files the shards already hold with the same size and mtime are skipped (so a rerun
    embeds only what is missing), as are recorded failures unless ``retry_failed``."""
    started = time.perf_counter()
    done, failed = shard_contents(out)
    report = IndexReport(str(root))
    report.failed = sorted((unreadable or {}).items())
    todo: list[AudioFile] = []
    for f in files:
        p, key = str(f.path), (f.size, f.mtime_ns)
        if done.get(p) == key:
            report.unchanged += 1
        elif p in failed and failed[p][:2] == key and not retry_failed:
            report.skipped_failed += 1
        else:
            todo.append(f)
    if todo:
        sink = _ShardSink(out, embedder.model_id, embedder.dim, shard_windows)
        _embed_on_cluster(
            embedder,
            todo,
            {},
            {p for p in done if p in {str(f.path) for f in todo}},
            sink,
            report,
            settings=settings,
            address=address,
            actors=actors,
            on_event=on_event,
            on_batch=on_batch,
        )
        report.notes.append(f"wrote {sink.written} shard(s) to {out}; merge them with: musicsearch ingest {out}")
    report.seconds = time.perf_counter() - started
    return report
