"""The index run on this machine: plan -> feed -> ``embedder.embed`` -> sink.

``index_folder`` walks a folder, loads the model and runs here, on a Ray cluster, or on a
cluster into Parquet shards. ``run_index`` plans against the store, applies moves and
removals, then ``embed_files`` joins the stages: windows of several files share a batch,
each batch is embedded and the tracks it completes are written in one transaction.
Progress reaches the caller as events (``Phase``, ``RunStart``, ``Progress``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from ..audio import SAMPLE_RATE
from ..config import Settings
from ..context import IndexContext
from ..embed import Embedder, embed_windows
from ..engine import prepare_audio, prepare_queries, run_notes
from ..errors import MusicSearchError, StorageError
from ..events import IndexReport, Listener, Phase, RunStart, quiet
from ..library import AudioFile, walk
from ..store import Store
from .backfill import analyse_missing
from .cluster import index_to_shards, run_index_cluster
from .feed import Feed, Headers, estimate_windows, few, open_feed, small_run, start_fork_server
from .plan import run_lock, start_run
from .sink import StoreWriter, TrackSink


def warm_up(embedder: Embedder) -> float:
    """Embed one silent window (the first call pays one-time costs) and return windows/s of a
    second one."""
    window = np.zeros((1, int(round(embedder.window_seconds * SAMPLE_RATE))), np.float32)
    embed_windows(embedder, window)
    t0 = time.perf_counter()
    embed_windows(embedder, window)
    return 1.0 / max(time.perf_counter() - t0, 1e-6)


def embed_files(
    feed: Feed, embedder: Embedder, sink: TrackSink, batch_size: int, on_batch: Callable[[], None] | None = None
) -> None:
    """Embed the windows of ``feed`` in batches of ``batch_size`` (windows of several files
    share one) and commit to ``sink`` after each batch; ``on_batch`` is called after each
    commit (tests stop a run there)."""
    batch: list[tuple[int, int, np.ndarray]] = []  # (file, window index, prepared)

    def flush() -> None:
        if batch:
            vectors = embedder.embed(np.concatenate([x for _, _, x in batch]))
            for (i, index, _), v in zip(batch, vectors):
                sink.vector(i, index, v)
            batch.clear()
        sink.commit()
        if on_batch is not None:
            on_batch()

    for kind, i, payload in feed:
        if kind == "win":
            index, start, end, x = payload
            sink.window(i, index, start, end)
            batch.append((i, index, x))
            if len(batch) >= batch_size:
                flush()
        elif kind == "end":
            sink.end(i, payload)
        else:
            sink.fail(i, payload)
    flush()
    sink.finish()


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

    Files are decoded in ``workers`` worker processes, each window ``prepare``d in the
    worker that decoded it, so this process only runs ``embed``; windows reach it through a
    bounded queue (at most 2 batches plus one window per worker in flight). A file that
    fails, or whose worker dies, is recorded as failed and the run goes on.

    Args:
        before_embed: called with the number of files to embed, only when there are some,
            before the warm-up (the caller picks and prepares the model's engine there); it
            returns notes for the report.
    """
    started = time.perf_counter()
    plan, report = start_run(store, root, files, retry_failed, unreadable)
    todo = plan.to_embed
    if todo:
        headers = Headers()  # each file's header is read once, here or in its worker
        if not small_run(todo, embedder.window_seconds, max_windows, headers):
            start_fork_server()  # its imports overlap the model's preparation and warm-up
        if before_embed is not None:
            report.notes.extend(before_embed(len(todo)))
        if on_event is not quiet:  # an ETA for someone listening: header lengths and a timed warm-up window
            windows = estimate_windows(todo, embedder.window_seconds, max_windows, headers=headers)
            speed = None if few(windows) else warm_up(embedder)  # a small run needs no ETA
            on_event(RunStart(len(todo), windows, max_windows, embedder.device, speed))
        sink = TrackSink(todo, StoreWriter(store), report, plan.updates, on_event)
        feed = open_feed(embedder, todo, plan.hashes, max_windows, workers, 2 * batch_size + workers, headers)
        try:
            with feed:
                embed_files(feed, embedder, sink, batch_size)
        finally:
            sink.close()
            report.notes.extend(run_notes(embedder))
    analysed = analyse_missing(store, root, embedder.window_seconds, max_windows, workers)
    if analysed:
        report.notes.append(f"tempo and key analysed for {analysed} tracks indexed before (nothing embedded again)")
    report.seconds = time.perf_counter() - started
    return report


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
        report = index_to_shards(
            embedder,
            root,
            files,
            Path(shards).expanduser(),
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
                report = _run_here(store, embedder, root, files, settings, retry_failed, unreadable, on_event)
            on_event(Phase("Saving the search index"))
            ctx.vector_index()
            report.notes.extend(prepare_queries(embedder, settings, on_event))
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
