"""The ``musicsearch`` command: parses options, calls the public API, prints. Library errors
become one ``Error: ...`` line on stderr and exit code 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.table import Table

from .api import MusicIndex
from .config import DEFAULT_INDEX_DIR, Settings
from .errors import MusicSearchError
from .search import Hit

app = typer.Typer(
    help="Index a music folder with CLAP and search it by text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexOpt = Annotated[Path, typer.Option("--index", envvar="MUSICSEARCH_INDEX", help="Index folder.")]
ModelOpt = Annotated[Optional[str], typer.Option("--model", help="Hub id or local model folder (default: the index's model, or laion/larger_clap_general).")]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Hub revision of --model.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (cuda, mps, cpu) or a torch device.")]
NoCheckOpt = Annotated[bool, typer.Option("--no-model-check", envvar="MUSICSEARCH_NO_MODEL_CHECK", help="Skip the check that refuses collapsed models.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _settings(index: Path, **kw: object) -> Settings:
    return Settings(index_dir=index, **{k: v for k, v in kw.items() if v is not None})


def mmss(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def hit_json(hit: Hit) -> dict:
    t = hit.track
    return {
        "rank": hit.rank, "score": round(hit.score, 6), "track_id": t.id, "path": t.path,
        "title": t.title, "artist": t.artist, "album": t.album, "albumartist": t.albumartist,
        "genre": t.genre, "year": t.year, "tracknumber": t.tracknumber, "duration": t.duration,
        "segment_start": hit.segment.start, "segment_end": hit.segment.end,
        "segment_score": round(hit.segment.score, 6),
    }


def _fail(exc: Exception) -> None:
    typer.echo(f"Error: {exc}", err=True)
    raise typer.Exit(1)


@app.command()
def index(
    folder: Annotated[Path, typer.Argument(help="Music folder (or one file) to index.")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="Windows per model call.")] = 8,
    max_windows: Annotated[Optional[int], typer.Option("--max-windows", min=1, help="At most N windows per track, spread evenly.")] = None,
    workers: Annotated[int, typer.Option("--workers", min=1, help="Decode threads.")] = 2,
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try files that failed before again.")] = False,
    no_model_check: NoCheckOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
) -> None:
    """Index (or update) the audio files below FOLDER."""
    settings = _settings(index, model=model, revision=revision, device=device, batch_size=batch_size,
                         max_windows=max_windows, workers=workers, model_check=not no_model_check)
    try:
        with MusicIndex(settings=settings) as idx:
            report = idx.index(folder, retry_failed=retry_failed, progress=not quiet)
    except (MusicSearchError, ValueError) as exc:
        _fail(exc)
    typer.echo(
        f"Indexed {report.root}: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.moved)} moved, {len(report.removed)} removed, {report.unchanged} unchanged, "
        f"{len(report.failed)} failed"
        + (f", {report.skipped_failed} failed before (not retried; --retry-failed)" if report.skipped_failed else "")
    )
    typer.echo(f"{report.windows} windows in {report.seconds:.1f} s ({report.windows_per_second:.2f} windows/s)")
    for old, new in report.moved[:10]:
        typer.echo(f"  moved  {old} -> {new}")
    for path, reason in report.failed[:20]:
        typer.echo(f"  failed {path}: {reason}")
    if len(report.failed) > 20:
        typer.echo(f"  ... and {len(report.failed) - 20} more failures (musicsearch info --failures)")


@app.command()
def query(
    text: Annotated[str, typer.Argument(help="What the music sounds like.")],
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=10_000, help="Number of results.")] = 10,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find the tracks that best match TEXT."""
    settings = _settings(index, model=model, device=device, model_check=not no_model_check)
    try:
        with MusicIndex(settings=settings) as idx:
            hits = idx.search(text, k=k)
    except (MusicSearchError, ValueError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([hit_json(h) for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo("No results: the index holds no tracks.")
        return
    table = Table(show_edge=False, pad_edge=False)
    for col, just in (("#", "right"), ("score", "right"), ("artist – title", "left"), ("length", "right"),
                      ("match", "left"), ("path", "left")):
        table.add_column(col, justify=just, overflow="fold")
    for h in hits:
        t = h.track
        name = f"{t.artist} – {t.title}" if t.artist else t.title
        table.add_row(str(h.rank), f"{h.score:.3f}", name, mmss(t.duration),
                      f"{mmss(h.segment.start)}–{mmss(h.segment.end)}", t.path)
    console = Console(highlight=False)
    if not console.is_terminal:  # piped: one line per hit, paths never folded
        console = Console(highlight=False, width=100_000)
    console.print(table)


@app.command()
def info(
    index: IndexOpt = DEFAULT_INDEX_DIR,
    as_json: JsonOpt = False,
    failures: Annotated[bool, typer.Option("--failures", help="List the files that failed and why.")] = False,
) -> None:
    """Show what the index holds."""
    try:
        with MusicIndex(index) as idx:
            data = idx.info()
            failed = idx.failures() if failures else []
    except MusicSearchError as exc:
        _fail(exc)
    if as_json:
        payload = dict(data.__dict__)
        if failures:
            payload["failed"] = [{"path": p, "reason": r} for p, r in failed]
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"index:    {data.path}")
    typer.echo(f"tracks:   {data.tracks}")
    typer.echo(f"windows:  {data.windows} ({data.window_seconds:g} s each)")
    typer.echo(f"failures: {data.failures}")
    typer.echo(f"model:    {data.model}{'@' + data.revision if data.revision else ''} ({data.dim}-d)")
    typer.echo(f"size:     {data.size_bytes / 1e6:.1f} MB")
    for path, reason in failed:
        typer.echo(f"  {path}: {reason}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted; finished batches are saved and the next run resumes.", err=True)
        sys.exit(130)
