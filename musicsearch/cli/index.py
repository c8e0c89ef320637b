"""``musicsearch index|ingest|watch``: build the index from a music folder, from vectors
computed elsewhere, or keep it in step with a folder as it changes."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_DIR, PRECISIONS
from ..device import pick_device
from ..errors import MusicSearchError
from ..events import Event, Listener, Progress, RunStart
from ..library import walk
from ..watch import LibraryWatcher, WatchSettings
from .options import DeviceOpt, FullOpt, IndexOpt, JsonOpt, ModelOpt, NoCheckOpt, RevisionOpt, settings
from .output import IndexProgress, echo_json, echo_refresh, print_index_report, quiet_event, report_line
from .playlists import refresh_after_index

BatchSizeOpt = Annotated[
    Optional[int],
    typer.Option("--batch-size", min=1, help="Windows per model call (default: 4 on a CPU, 32 on a GPU)."),
]
MaxWindowsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--max-windows",
        min=1,
        help="At most N windows per track, spread evenly (default: 6 on a CPU, whole tracks on a GPU).",
    ),
]
Int8Opt = Annotated[
    bool, typer.Option("--int8", help="CPU: int8 audio tower (faster; checked to keep cosine >= 0.99 vs fp32).")
]
WorkersOpt = Annotated[
    Optional[int],
    typer.Option("--workers", min=1, help="Decode worker processes (default: the cores available)."),
]
PrecisionOpt = Annotated[
    str,
    typer.Option(
        "--precision",
        metavar="PRECISION",
        help="auto, fp32, bf16 or fp16: the audio tower on a CUDA GPU (auto: bf16 where supported, else "
        "fp16); half precision is kept only if it matches fp32 on the first real windows.",
    ),
]
RetryOpt = Annotated[bool, typer.Option("--retry-failed", help="Try files that failed before again.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
ClusterOpt = Annotated[
    Optional[str],
    typer.Option(
        "--cluster",
        metavar="auto|HEAD:PORT",
        help="Embed on a Ray cluster: auto (this machine's) or HEAD:PORT; needs pip install "
        "'musicsearch[ray]' and the music folder at the same path on every node.",
    ),
]
ShardsOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--shards",
        metavar="FOLDER",
        help="Cluster runs: write Parquet shards to FOLDER instead of the index (merge them with "
        "'musicsearch ingest FOLDER'); implies --cluster auto.",
    ),
]


def index(
    folder: Annotated[Path, typer.Argument(help="Music folder (or one file) to index.")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    batch_size: BatchSizeOpt = None,
    max_windows: MaxWindowsOpt = None,
    full: FullOpt = False,
    int8: Int8Opt = False,
    workers: WorkersOpt = None,
    precision: PrecisionOpt = "auto",
    retry_failed: RetryOpt = False,
    no_model_check: NoCheckOpt = False,
    quiet: QuietOpt = False,
    cluster: ClusterOpt = None,
    shards: ShardsOpt = None,
) -> None:
    """Index (or update) the audio files below FOLDER."""
    if precision not in PRECISIONS:
        raise MusicSearchError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}")
    if precision in ("bf16", "fp16") and cluster is None and shards is None:  # a cluster's nodes have their own
        here = pick_device(device)
        if not here.startswith("cuda"):
            raise MusicSearchError(
                f"--precision {precision} is for CUDA GPUs; this run embeds on {here}, where the audio tower "
                "runs fp32: leave --precision out"
            )
    config = settings(
        index,
        model=model,
        revision=revision,
        device=device,
        batch_size=batch_size,
        max_windows=max_windows,
        full=full,
        audio_int8=int8,
        workers=workers,
        precision=precision,
        model_check=not no_model_check,
    )
    listener = IndexProgress()
    saved = SavedFiles(quiet_event if quiet else listener)
    try:
        with MusicIndex(settings=config) as idx:
            check_has_audio(idx, folder)
            report = idx.index(folder, retry_failed=retry_failed, on_event=saved, cluster=cluster, shards=shards)
    except KeyboardInterrupt:
        listener.close()
        typer.echo(saved.interrupted(config.index_dir), err=True)
        raise typer.Exit(130) from None
    finally:
        listener.close()
    print_index_report(report)
    refresh_after_index(config)


class SavedFiles:
    """Passes an index run's events on to ``listener`` and keeps count of the files saved so
    far (each ``Progress`` follows a committed batch), for the line a Ctrl-C prints."""

    def __init__(self, listener: Listener) -> None:
        self.listener = listener
        self.done = 0
        self.total: int | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, RunStart):
            self.total = event.files
        elif isinstance(event, Progress):
            self.done, self.total = event.files_done, event.files_total
        self.listener(event)

    def interrupted(self, index: Path) -> str:
        """What was saved, and that running the same command again resumes."""
        if self.total is None:
            return f"Interrupted before embedding started; {index} is as it was. Run the same command to start."
        return (
            f"Interrupted: {self.done} of {self.total} files were saved to {index}; "
            "run the same command again to resume with the rest."
        )


def check_has_audio(idx: MusicIndex, folder: Path) -> None:
    """Refuse, before any model is loaded, a folder with no audio file in it (or a file that is
    not one) whose tracks the index does not hold either; a folder whose files were all
    deleted still runs, to remove their tracks. A folder with unreadable entries runs too,
    and reports them."""
    root = folder.expanduser().absolute()
    exts = idx.settings.extensions
    unreadable: list[Path] = []
    if not root.exists() or next(walk(root, exts, on_error=lambda p, _: unreadable.append(p)), None) or unreadable:
        return  # a missing folder gets the run's own message
    if idx.context.exists() and (idx.tracks_under(root) or _failures_under(idx, root)):
        return
    counted = ", ".join(sorted(exts))
    if root.is_file():
        raise MusicSearchError(f"{root} is not an audio file: the extensions that count are {counted}")
    raise MusicSearchError(f"no audio files found in {root}: the extensions that count are {counted}")


def _failures_under(idx: MusicIndex, root: Path) -> bool:
    prefix = str(root).rstrip("/") + "/"
    return any(path == str(root) or path.startswith(prefix) for path, _ in idx.failures())


def ingest(
    shards: Annotated[list[Path], typer.Argument(help="Parquet shards, or folders of them (one row per window).")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: Annotated[
        Optional[str],
        typer.Option("--model", metavar="MODEL", help="The model that computed the vectors (needed for a new index)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add embeddings computed elsewhere (columns path, start, end, vector; optional title, artist, album,
    albumartist, genre, year, duration). No model is loaded; re-ingesting a shard changes nothing."""
    with MusicIndex(index) as idx:
        report = idx.ingest(shards, model=model)
    if as_json:
        echo_json(report.__dict__)
        return
    typer.echo(
        f"{report.shards} shard(s): {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.failed)} failed ({report.windows} windows, {report.seconds:.1f} s)"
    )
    for path, reason in report.failed:
        typer.echo(f"  {path}: {reason}")


def watch(
    folder: Annotated[Path, typer.Argument(help="Music folder to follow.")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    max_windows: Annotated[
        Optional[int], typer.Option("--max-windows", min=1, help="At most N windows per track, spread evenly.")
    ] = None,
    full: FullOpt = False,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Decode worker processes.")] = None,
    poll: Annotated[
        Optional[float],
        typer.Option(
            "--poll",
            metavar="SECONDS",
            help="Poll every SECONDS instead of file-system events (NFS, SMB, sshfs shares).",
        ),
    ] = None,
    debounce: Annotated[
        float,
        typer.Option(
            "--debounce", metavar="SECONDS", min=0, help="Seconds that gather a burst of changes into one run."
        ),
    ] = 1.6,
    settle: Annotated[
        float,
        typer.Option(
            "--settle", metavar="SECONDS", min=0, help="Seconds a changed file must keep its size before it is indexed."
        ),
    ] = 2.0,
    no_model_check: NoCheckOpt = False,
) -> None:
    """Index FOLDER, then follow it: new, changed, moved and deleted files (Ctrl-C stops)."""
    config = settings(
        index,
        model=model,
        device=device,
        max_windows=max_windows,
        full=full,
        workers=workers,
        model_check=not no_model_check,
    )
    ws = WatchSettings(debounce_ms=int(debounce * 1000), settle_seconds=settle, poll_seconds=poll)
    try:
        with MusicIndex(settings=config) as idx:
            watcher = LibraryWatcher(
                idx, folder, ws, on_report=lambda r: typer.echo(report_line(r)), on_refresh=echo_refresh
            )
            mode = f"polling every {poll:g} s" if poll else "file-system events"
            typer.echo(f"Watching {watcher.root} ({mode}); Ctrl-C stops", err=True)
            watcher.run()
    except KeyboardInterrupt:
        typer.echo("Stopped watching; what was indexed is saved.", err=True)
