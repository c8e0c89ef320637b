"""The ``musicsearch`` command: parses options, calls the public API, prints. Library errors
become one ``Error: ...`` line on stderr and exit code 1."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any, Literal, Optional

import typer
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from .api import MusicIndex
from .classify import read_label_file
from .config import DEFAULT_INDEX_DIR, PRECISIONS, Settings
from .errors import MusicSearchError
from .filters import parse_filters
from .indexer import Event, Phase, Progress, RunStart
from .playlist import write_m3u
from .search import Hit

app = typer.Typer(
    help="Index a music folder with CLAP and search it by text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

IndexOpt = Annotated[Path, typer.Option("--index", envvar="MUSICSEARCH_INDEX", help="Index folder.")]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model", help="Hub id or local model folder (default: the index's model, or laion/larger_clap_general)."
    ),
]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", help="Hub revision of --model.")]
DeviceOpt = Annotated[str, typer.Option("--device", help="auto (cuda, mps, cpu) or a torch device.")]
NoCheckOpt = Annotated[
    bool,
    typer.Option(
        "--no-model-check", envvar="MUSICSEARCH_NO_MODEL_CHECK", help="Skip the check that refuses collapsed models."
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _settings(index: Path, **kw: Any) -> Settings:
    return Settings(index_dir=index, **{k: v for k, v in kw.items() if v is not None})


def mmss(seconds: float | None) -> str:
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _fail(exc: Exception) -> None:
    typer.echo(f"Error: {exc}", err=True)
    raise typer.Exit(1)


class _IndexProgress:
    """Draws an index run's events on stderr: phases as lines, then a progress bar."""

    def __init__(self) -> None:
        self.bar: tqdm | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Phase):  # on a terminal: errors alone stay one line when piped
            self.close()
            if sys.stderr.isatty():
                typer.echo(f"{event.message} ...", err=True)
        elif isinstance(event, RunStart):
            _print_start(event)
            self.bar = tqdm(total=event.files, unit="file", dynamic_ncols=True, smoothing=0.1, file=sys.stderr)
        elif isinstance(event, Progress) and self.bar is not None:
            self.bar.update(event.files_done - self.bar.n)
            self.bar.set_postfix_str(f"{event.windows_per_second:.1f} windows/s")

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _quiet_event(event: Event) -> None:
    pass


def _print_start(run: RunStart) -> None:
    if run.max_windows is None:
        policy = "whole tracks"
    else:
        policy = f"at most {run.max_windows} windows per track, spread evenly"
        if run.device == "cpu":
            policy += " (the CPU default; --full for whole tracks)"
    eta = ""
    if run.eta_seconds is not None:
        minutes = run.eta_seconds / 60
        eta = f"{minutes / 60:.1f} h" if minutes >= 90 else f"{max(1, round(minutes))} min"
        eta = f"; about {eta} at {run.windows_per_second:.1f} windows/s"
    typer.echo(
        f"Embedding {run.files} files, ~{run.windows} windows on {run.device or 'the model'}: {policy}{eta}", err=True
    )


@app.command()
def index(
    folder: Annotated[Path, typer.Argument(help="Music folder (or one file) to index.")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    batch_size: Annotated[
        Optional[int],
        typer.Option("--batch-size", min=1, help="Windows per model call (default: 4 on a CPU, 32 on a GPU)."),
    ] = None,
    max_windows: Annotated[
        Optional[int],
        typer.Option(
            "--max-windows",
            min=1,
            help="At most N windows per track, spread evenly (default: 6 on a CPU, whole tracks on a GPU).",
        ),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Embed whole tracks even on a CPU.")] = False,
    int8: Annotated[
        bool, typer.Option("--int8", help="CPU: int8 audio tower (faster; checked to keep cosine >= 0.99 vs fp32).")
    ] = False,
    workers: Annotated[
        Optional[int],
        typer.Option("--workers", min=1, help="Decode worker processes (default: the cores available)."),
    ] = None,
    precision: Annotated[
        str,
        typer.Option(
            "--precision",
            help="GPU: the audio tower's precision, auto|fp32|bf16|fp16 (auto: bf16 where supported, else "
            "fp16; fp32 on a CPU); half precision only after a check against fp32 on real windows.",
        ),
    ] = "auto",
    retry_failed: Annotated[bool, typer.Option("--retry-failed", help="Try files that failed before again.")] = False,
    no_model_check: NoCheckOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")] = False,
    cluster: Annotated[
        Optional[str],
        typer.Option(
            "--cluster",
            help="Embed on a Ray cluster: 'auto' (the cluster this machine belongs to) or HEAD:PORT "
            "(pip install 'musicsearch[ray]'; the music folder must be readable at the same path on every node).",
        ),
    ] = None,
    shards: Annotated[
        Optional[Path],
        typer.Option(
            "--shards",
            help="With a cluster: write Parquet shards to this folder instead of the index "
            "(merge them later with 'musicsearch ingest DIR'); implies --cluster auto.",
        ),
    ] = None,
) -> None:
    """Index (or update) the audio files below FOLDER."""
    if precision not in PRECISIONS:
        _fail(MusicSearchError(f"--precision must be one of {', '.join(PRECISIONS)}, not {precision!r}"))
    settings = _settings(
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
    listener = _IndexProgress()
    try:
        with MusicIndex(settings=settings) as idx:
            report = idx.index(
                folder,
                retry_failed=retry_failed,
                on_event=_quiet_event if quiet else listener,
                cluster=cluster,
                shards=shards,
            )
    except (MusicSearchError, ValueError) as exc:
        _fail(exc)
    finally:
        listener.close()
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
    for path, warning in report.warnings[:20]:
        typer.echo(f"  warning {path}: {warning} (indexed as decoded)")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    if len(report.failed) > 20:
        typer.echo(f"  ... and {len(report.failed) - 20} more failures (musicsearch info --failures)")


ArtistOpt = Annotated[
    Optional[str],
    typer.Option("--artist", help="Artist or album artist contains this (any case).", rich_help_panel="Filters"),
]
AlbumOpt = Annotated[
    Optional[str], typer.Option("--album", help="Album contains this (any case).", rich_help_panel="Filters")
]
GenreOpt = Annotated[
    Optional[str], typer.Option("--genre", help="Genre tag contains this (any case).", rich_help_panel="Filters")
]
YearOpt = Annotated[
    Optional[str], typer.Option("--year", help="1997, 1990-1999, 1990- or -1999.", rich_help_panel="Filters")
]
MinDurOpt = Annotated[
    Optional[str], typer.Option("--min-duration", help="Seconds or mm:ss.", rich_help_panel="Filters")
]
MaxDurOpt = Annotated[
    Optional[str], typer.Option("--max-duration", help="Seconds or mm:ss.", rich_help_panel="Filters")
]
PathOpt = Annotated[
    Optional[str], typer.Option("--path", help="Glob on the absolute path, e.g. '*/Jazz/*'.", rich_help_panel="Filters")
]
TagOpt = Annotated[
    Optional[list[str]],
    typer.Option("--tag", help="Has this label from 'musicsearch tag' (repeatable).", rich_help_panel="Filters"),
]
KOpt = Annotated[int, typer.Option("-k", "--top", min=1, max=10_000, help="Number of results.")]
ByOpt = Annotated[str, typer.Option("--by", help="Rank by the track vector ('track') or the best window ('window').")]
NotOpt = Annotated[
    Optional[list[str]],
    typer.Option("--not", help="Steer away from this prompt (repeatable; 'text::w' sets its weight, default 0.5)."),
]
MinScoreOpt = Annotated[Optional[float], typer.Option("--min-score", help="Drop hits scoring below this.")]
M3uOpt = Annotated[Optional[Path], typer.Option("--m3u", help="Also write the results as an extended M3U8 playlist.")]


def _print_hits(hits: list[Hit], as_json: bool, m3u: Path | None) -> None:
    if m3u is not None:
        write_m3u(hits, m3u)
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo("No tracks match.")
        return
    with_tags = any(h.tags for h in hits)
    table = Table(show_edge=False, pad_edge=False)
    Justify = Literal["left", "right"]
    columns: list[tuple[str, Justify]] = [
        ("#", "right"),
        ("score", "right"),
        ("artist – title", "left"),
        ("length", "right"),
        ("match", "left"),
    ]
    if with_tags:
        columns.append(("tags", "left"))
    columns.append(("path", "left"))
    for col, just in columns:
        table.add_column(col, justify=just, overflow="fold")
    for h in hits:
        t = h.track
        name = f"{t.artist} – {t.title}" if t.artist else t.title
        row = [str(h.rank), f"{h.score:.3f}", name, mmss(t.duration), f"{mmss(h.segment.start)}–{mmss(h.segment.end)}"]
        row += [", ".join(label for label, _ in h.tags)] * with_tags + [t.path]
        table.add_row(*row)
    console = Console(highlight=False)
    if not console.is_terminal:  # piped: one line per hit, paths never folded
        console = Console(highlight=False, width=100_000)
    console.print(table)
    if m3u is not None:
        typer.echo(f"Wrote {len(hits)} tracks to {m3u}")


@app.command()
def query(
    text: Annotated[
        list[str], typer.Argument(help="What the music sounds like (several prompts add up; 'text::w' weighs one).")
    ],
    k: KOpt = 10,
    negative: NotOpt = None,
    by: ByOpt = "track",
    min_score: MinScoreOpt = None,
    artist: ArtistOpt = None,
    album: AlbumOpt = None,
    genre: GenreOpt = None,
    year: YearOpt = None,
    min_duration: MinDurOpt = None,
    max_duration: MaxDurOpt = None,
    path: PathOpt = None,
    tag: TagOpt = None,
    m3u: M3uOpt = None,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find the tracks that best match TEXT."""
    settings = _settings(index, model=model, device=device, model_check=not no_model_check)
    try:
        filters = parse_filters(artist, album, genre, year, min_duration, max_duration, path, tag)
        with MusicIndex(settings=settings) as idx:
            hits = idx.search(text, k=k, negative=negative or (), filters=filters, by=by, min_score=min_score)
        _print_hits(hits, as_json, m3u)
    except (MusicSearchError, ValueError, OSError) as exc:
        _fail(exc)


@app.command()
def similar(
    target: Annotated[
        list[str],
        typer.Argument(
            help="Indexed track (path, or a unique part of its path or title) or any audio file; several add up."
        ),
    ],
    text: Annotated[Optional[list[str]], typer.Option("--text", help="Mix in a text prompt (repeatable).")] = None,
    k: KOpt = 10,
    negative: NotOpt = None,
    by: ByOpt = "track",
    min_score: MinScoreOpt = None,
    artist: ArtistOpt = None,
    album: AlbumOpt = None,
    genre: GenreOpt = None,
    year: YearOpt = None,
    min_duration: MinDurOpt = None,
    max_duration: MaxDurOpt = None,
    path: PathOpt = None,
    tag: TagOpt = None,
    m3u: M3uOpt = None,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find tracks that sound like TARGET (the targets themselves are left out)."""
    settings = _settings(index, device=device, model_check=not no_model_check)
    try:
        filters = parse_filters(artist, album, genre, year, min_duration, max_duration, path, tag)
        with MusicIndex(settings=settings) as idx:
            hits = idx.similar(
                target, k=k, text=text or (), negative=negative or (), filters=filters, by=by, min_score=min_score
            )
        _print_hits(hits, as_json, m3u)
    except (MusicSearchError, ValueError, OSError) as exc:
        _fail(exc)


@app.command()
def duplicates(
    threshold: Annotated[
        float, typer.Option("--threshold", help="Cosine at or above which two tracks count as the same recording.")
    ] = 0.995,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    as_json: JsonOpt = False,
) -> None:
    """List groups of near-identical recordings, largest groups first."""
    try:
        with MusicIndex(index) as idx:
            groups = idx.duplicates(threshold)
    except MusicSearchError as exc:
        _fail(exc)
    if as_json:
        typer.echo(
            json.dumps(
                [
                    [
                        {
                            "track_id": t.id,
                            "path": t.path,
                            "title": t.title,
                            "artist": t.artist,
                            "duration": t.duration,
                            "score": round(s, 6),
                        }
                        for t, s in g
                    ]
                    for g in groups
                ],
                indent=2,
            )
        )
        return
    if not groups:
        typer.echo(f"No duplicates at threshold {threshold}.")
        return
    for n, group in enumerate(groups, 1):
        typer.echo(f"Group {n} ({len(group)} tracks)")
        for t, s in group:
            typer.echo(f"  {s:.4f}  {mmss(t.duration):>6}  {t.path}")


@app.command()
def classify(
    target: Annotated[str, typer.Argument(help="Indexed track (path or unique part of path/title) or any audio file.")],
    labels: Annotated[str, typer.Option("--labels", help="Candidate labels, comma separated.")],
    template: Annotated[
        str, typer.Option("--template", help="Prompt around each label, e.g. 'This audio is a {} song.'")
    ] = "{}",
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Zero-shot classify TARGET among LABELS."""
    settings = _settings(index, device=device, model_check=not no_model_check)
    try:
        with MusicIndex(settings=settings) as idx:
            result = idx.classify(target, labels, template)
    except (MusicSearchError, ValueError) as exc:
        _fail(exc)
    if as_json:
        typer.echo(
            json.dumps(
                {
                    "labels": [{"label": lab, "score": round(p, 6)} for lab, p in result.labels],
                    "top_label": result.top_label,
                    "confidence": round(result.confidence, 6),
                },
                ensure_ascii=False,
                indent=2,
            )
        )
        return
    width = max(len(lab) for lab, _ in result.labels)
    for lab, p in result.labels:
        typer.echo(f"{lab:<{width}}  {p:6.1%}  {'█' * int(round(p * 30))}")
    typer.echo(f"top: {result.top_label} ({result.confidence:.1%})")


@app.command()
def tag(
    top: Annotated[int, typer.Option("--top", min=1, max=20, help="Labels kept per vocabulary.")] = 3,
    labels_file: Annotated[Optional[Path], typer.Option("--labels-file", help="Your own labels, one per line.")] = None,
    retag: Annotated[bool, typer.Option("--retag", help="Tag every track again, not only new ones.")] = False,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Tag tracks with their top genre, mood and instrument labels (usable as --tag filters)."""
    settings = _settings(index, device=device, model_check=not no_model_check)
    try:
        extra = read_label_file(labels_file) if labels_file else []
        with MusicIndex(settings=settings) as idx:
            n = idx.tag(top=top, extra_labels=extra, retag=retag)
    except (MusicSearchError, ValueError) as exc:
        _fail(exc)
    typer.echo(f"Tagged {n} tracks." if n else "Every track is tagged already (--retag to tag them again).")


@app.command()
def info(
    index: IndexOpt = DEFAULT_INDEX_DIR,
    as_json: JsonOpt = False,
    failures: Annotated[
        bool,
        typer.Option("--failures", help="List the files that failed and why, and the tracks indexed with a warning."),
    ] = False,
) -> None:
    """Show what the index holds."""
    try:
        with MusicIndex(index) as idx:
            data = idx.info()
            kinds = idx.vector_indexes()
            failed = idx.failures() if failures else []
            warned = idx.warnings() if failures else []
    except MusicSearchError as exc:
        _fail(exc)
    if as_json:
        payload = dict(data.__dict__)
        payload["vector_indexes"] = {k: dict(v.__dict__) for k, v in kinds.items()}
        if failures:
            payload["failed"] = [{"path": p, "reason": r} for p, r in failed]
            payload["warnings"] = [{"path": p, "warning": w} for p, w in warned]
        typer.echo(json.dumps(payload, indent=2))
        return
    typer.echo(f"index:    {data.path}")
    typer.echo(f"tracks:   {data.tracks}")
    typer.echo(f"windows:  {data.windows} ({data.window_seconds:g} s each)")
    typer.echo(f"failures: {data.failures}")
    typer.echo(f"model:    {data.model}{'@' + data.revision if data.revision else ''} ({data.dim}-d)")
    typer.echo(f"size:     {data.size_bytes / 1e6:.1f} MB")
    for kind, st in kinds.items():
        how = f"nprobe {st.nprobe}, re-rank {st.rerank}, R@10 {st.recall_at_10:.3f}"
        how = "exact" if st.family == "exact" else how
        typer.echo(f"index:    {kind}: {st.factory} ({how})")
    for path, reason in failed:
        typer.echo(f"  {path}: {reason}")
    for path, warning in warned:
        typer.echo(f"  warning {path}: {warning} (indexed as decoded)")


@app.command()
def ingest(
    shards: Annotated[list[Path], typer.Argument(help="Parquet shards, or folders of them (one row per window).")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: Annotated[
        Optional[str], typer.Option("--model", help="The model that computed the vectors (needed for a new index).")
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Add embeddings computed elsewhere (columns path, start, end, vector; optional title, artist, album,
    albumartist, genre, year, duration). No model is loaded; re-ingesting a shard changes nothing."""
    try:
        with MusicIndex(index) as idx:
            report = idx.ingest(shards, model=model)
    except MusicSearchError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps(report.__dict__, indent=2))
        return
    typer.echo(
        f"{report.shards} shard(s): {report.added} added, {report.updated} updated, {report.unchanged} unchanged, "
        f"{len(report.failed)} failed ({report.windows} windows, {report.seconds:.1f} s)"
    )
    for path, reason in report.failed:
        typer.echo(f"  {path}: {reason}")


@app.command()
def serve(
    index: IndexOpt = DEFAULT_INDEX_DIR,
    host: Annotated[
        str, typer.Option("--host", help="Address to bind (loopback unless told otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", min=1, max=65535)] = 7860,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Serve the search page and HTTP API (docs at /docs)."""
    try:
        from .server import serve as run_server
    except ImportError as exc:
        _fail(MusicSearchError(f"the web server needs fastapi and uvicorn ({exc.name} is missing)"))
    settings = _settings(index, device=device, model_check=not no_model_check)
    typer.echo(f"musicsearch on http://{host}:{port}/ (index {settings.index_dir})", err=True)
    try:
        run_server(MusicIndex(settings=settings), host, port)
    except MusicSearchError as exc:
        _fail(exc)


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted; finished batches are saved and the next run resumes.", err=True)
        sys.exit(130)
