"""The index run on a Ray cluster (optional extra: ``pip install 'musicsearch[ray]'``).

The driver walks, tags, hashes and plans exactly as a local run (``plan.start_run``), so
incremental runs, moves and removals behave the same. The files to embed flow through Ray
Data in two stages scaled separately, over the same feed pieces as a local run:

    file paths ─► flat_map: ``feed.file_messages``: decode + ``prepare`` (CPU tasks, one
                  row per window)
               ─► map_batches: ``embed`` in an actor pool (one model load per actor;
                  one GPU per actor when the cluster has GPUs, CPU actors otherwise)
               ─► iter_batches on the driver, the only writer: the run's ``TrackSink``

The driver keeps a track until all its windows are back and writes whole tracks once per
received batch (one SQLite transaction, as a local run), so a killed driver loses at most
the batch it had not committed and the next run embeds only what is missing. With
``shards`` the sink's writer is a ``ShardWriter`` (Parquet shards in ``ingest``'s schema,
atomically, one file per ``shard_windows`` windows); ``musicsearch ingest`` merges them later.

Every node must be able to read the music folder at the same path, and have musicsearch
(and the model, for a local model folder) installed at the same place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import Settings
from ..embed import Embedder
from ..engine import node_factory
from ..errors import MusicSearchError
from ..events import IndexReport, Listener, RunStart, quiet
from ..library import AudioFile
from ..process import own_child_process
from ..store import Store
from .feed import FileEnd, Header, Headers, estimate_windows, file_messages
from .plan import start_run
from .sink import SHARD_WINDOWS, ShardWriter, StoreWriter, TrackSink, Writer, shard_contents

log = logging.getLogger(__name__)

RAY_MISSING = "indexing on a cluster needs Ray: pip install 'musicsearch[ray]'"
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


def _header_json(header: Header | None) -> str:
    """A header the driver read already, for the decode task (empty: the task reads it)."""
    return json.dumps(asdict(header), default=str) if header is not None else ""


def _set_threads() -> None:
    import warnings

    import torch  # one decode task per core: its log-mel runs on one thread

    if torch.get_num_threads() != 1:
        torch.set_num_threads(1)
    own_child_process()  # a worker of this job: e.g. the MP3 decoder's notes kept off its stderr (process.py)
    # Ray hands numpy arrays over read-only (zero copy); the mel filters are only read
    warnings.filterwarnings("ignore", message="The given NumPy array is not writable")


def _decode(row: dict[str, Any], embedder: Embedder, max_windows: int | None) -> Iterator[dict[str, Any]]:
    """One file -> a row per window (prepared features as bytes), then an ``end`` row with
    tags, hash, warning and the number of windows, or a ``fail`` row with the reason."""
    _set_threads()
    known = str(row["hash"]) or None
    header = Header(**json.loads(row["header"])) if row["header"] else None
    path = Path(str(row["path"]))
    for kind, i, payload in file_messages(embedder, int(row["i"]), path, known, max_windows, header):
        if kind == "win":
            index, start, end, x = payload
            x = np.ascontiguousarray(x, dtype=np.float32)
            shape = json.dumps(list(x.shape))
            yield {"i": i, "kind": "win", "w": index, "start": start, "end": end, "x": x.tobytes(), "info": shape}
        elif kind == "end":
            info = json.dumps(asdict(payload), default=str)
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
    headers: Headers,
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
    rows = [
        {"i": i, "path": str(f.path), "hash": hashes.get(str(f.path), ""), "header": _header_json(headers.get(f.path))}
        for i, f in enumerate(files)
    ]
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


# --- the driver: result batches into the run's sink ------------------------------------------


def _drive(batches: Iterator[dict[str, np.ndarray]], sink: TrackSink, on_batch: Callable[[], None] | None) -> None:
    """Hand the rows of each result batch to ``sink`` and commit after each batch."""
    for batch in batches:
        kinds, idx = batch["kind"], batch["i"]
        for r in range(len(kinds)):
            i = int(idx[r])
            if kinds[r] == "fail":
                sink.fail(i, str(batch["info"][r]))
            elif kinds[r] == "win":
                w = int(batch["w"][r])
                sink.window(i, w, float(batch["start"][r]), float(batch["end"][r]), batch["vector"][r])
            else:
                sink.end(i, FileEnd(**json.loads(batch["info"][r])))
        sink.commit()
        if on_batch is not None:
            on_batch()
    sink.finish()


def _embed_on_cluster(
    embedder: Embedder,
    files: Sequence[AudioFile],
    hashes: dict[str, str],
    updates: set[str],
    writer: Writer,
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
        factory = node_factory(embedder, settings)
        headers = Headers()
        if on_event is not quiet:  # read here for the estimate, the headers travel with the files
            for f in files:
                headers.of(f.path)
        layout, batches = _stream(ray, files, hashes, factory, info, settings, actors, headers)
        if on_event is not quiet:
            windows = estimate_windows(files, embedder.window_seconds, layout.max_windows, headers=headers)
            on_event(RunStart(len(files), windows, layout.max_windows, layout.device, None))
        report.notes.append(
            f"Ray cluster: {info.nodes} node(s), {info.cpus} CPU(s), {info.gpus} GPU(s); "
            f"{layout.actors} embed actor(s) on {layout.device}, batch {layout.batch_size}"
        )
        sink = TrackSink(files, writer, report, updates, on_event)
        try:
            _drive(batches, sink, on_batch)
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
    """``runner.run_index`` with the embedding on a Ray cluster: the same plan, moves,
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
            StoreWriter(store),
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
        writer = ShardWriter(out, embedder.model_id, embedder.dim, shard_windows)
        _embed_on_cluster(
            embedder,
            todo,
            {},
            {p for p in done if p in {str(f.path) for f in todo}},
            writer,
            report,
            settings=settings,
            address=address,
            actors=actors,
            on_event=on_event,
            on_batch=on_batch,
        )
        report.notes.append(f"wrote {writer.written} shard(s) to {out}; merge them with: musicsearch ingest {out}")
    report.seconds = time.perf_counter() - started
    return report
