"""The ``musicsearch`` command: parses options, calls the public API, prints. Library errors
become one ``Error: ...`` line on stderr and exit code 1."""

from __future__ import annotations

import gc
import json
import sys
import threading
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
from .hits import Hit
from .indexer import Event, IndexReport, Phase, Progress, RunStart
from .mpd import MpdAddress, queue_paths
from .playlist import parse_path_map, write_m3u
from .saved import SavedSearch, SavedSearches, filter_strings, refresh_one
from .saved import refresh as refresh_saved
from .variety import Variety
from .watch import LibraryWatcher, WatchSettings

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
    _refresh_saved(settings)


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
RelativeOpt = Annotated[
    bool, typer.Option("--relative", help="--m3u: paths relative to the playlist's folder.", rich_help_panel="Players")
]
PathMapOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--path-map",
        help="--m3u: FROM=TO rewrites the library folder FROM to TO, where the player sees it (repeatable), "
        "e.g. ~/Music=/music.",
        rich_help_panel="Players",
    ),
]
MpdOpt = Annotated[
    Optional[str],
    typer.Option(
        "--mpd",
        help="Replace MPD's queue with the hits: HOST[:PORT], PASSWORD@HOST or a socket path.",
        rich_help_panel="Players",
    ),
]
MpdDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--mpd-music-dir",
        help="--mpd: MPD's music_directory as this machine sees it (asked from MPD on a local socket).",
        rich_help_panel="Players",
    ),
]
AppendOpt = Annotated[
    bool, typer.Option("--append", help="--mpd: add to the end of the queue instead.", rich_help_panel="Players")
]


# names, variety, order (issue 14) --------------------------------------------------
NoLexicalOpt = Annotated[
    bool, typer.Option("--no-lexical", help="Rank by sound only: artist, album and title names are not used.")
]
IncludeNamedOpt = Annotated[bool, typer.Option("--include-named", help="'like X': keep X's own tracks among the hits.")]
MaxPerArtistOpt = Annotated[
    Optional[int],
    typer.Option("--max-per-artist", min=1, help="At most N hits by one artist.", rich_help_panel="Variety"),
]
DedupeOpt = Annotated[
    bool,
    typer.Option(
        "--dedupe", help="The same song (live, remastered, other formats) counts once.", rich_help_panel="Variety"
    ),
]
ExcludeArtistOpt = Annotated[
    Optional[list[str]],
    typer.Option("--exclude-artist", help="Leave out this artist (substring; repeatable).", rich_help_panel="Variety"),
]
ExcludeGenreOpt = Annotated[
    Optional[list[str]],
    typer.Option("--exclude-genre", help="Leave out this genre (substring; repeatable).", rich_help_panel="Variety"),
]
ExcludePathOpt = Annotated[
    Optional[list[str]],
    typer.Option("--exclude-path", help="Leave out paths matching this GLOB (repeatable).", rich_help_panel="Variety"),
]
VariationOpt = Annotated[
    float,
    typer.Option(
        "--variation",
        min=0.0,
        max=1.0,
        help="0..1: shuffle among close hits (repeatable with --seed).",
        rich_help_panel="Variety",
    ),
]
SeedOpt = Annotated[
    Optional[int], typer.Option("--seed", help="--variation: the shuffle's seed.", rich_help_panel="Variety")
]
OrderOpt = Annotated[
    str,
    typer.Option("--order", help="score (best first) or smooth (neighbours sound alike).", rich_help_panel="Variety"),
]


def _variety(
    max_per_artist: int | None,
    dedupe: bool,
    exclude_artist: list[str] | None,
    exclude_genre: list[str] | None,
    exclude_path: list[str] | None,
    variation: float,
    seed: int | None,
) -> Variety:
    return Variety(
        max_per_artist=max_per_artist,
        dedupe=dedupe,
        exclude_artists=tuple(exclude_artist or ()),
        exclude_genres=tuple(exclude_genre or ()),
        exclude_paths=tuple(exclude_path or ()),
        variation=variation,
        seed=seed,
    )


def _check_players(
    m3u: Path | None, relative: bool, path_map: list[str] | None, mpd: str | None, mpd_dir: Path | None, append: bool
) -> None:
    """Refuse player options that would be ignored, before any work."""
    if (relative or path_map) and m3u is None:
        raise MusicSearchError("--relative and --path-map shape the --m3u playlist: add --m3u FILE")
    if (append or mpd_dir is not None) and mpd is None:
        raise MusicSearchError("--append and --mpd-music-dir go with --mpd HOST[:PORT]")
    if relative and path_map:
        raise MusicSearchError("--relative and --path-map exclude each other: relative paths need no map")
    parse_path_map(path_map)
    if mpd is not None:
        MpdAddress.parse(mpd)


def _send_to_mpd(hits: list[Hit], mpd: str | None, mpd_dir: Path | None, append: bool, as_json: bool) -> None:
    if mpd is None:
        return
    result = queue_paths(mpd, [h.track.path for h in hits], music_dir=mpd_dir, append=append)
    skipped = f" ({len(result.skipped)} outside MPD's music directory left out)" if result.skipped else ""
    verb = "Added" if append else "Queued"
    typer.echo(f"{verb} {result.added} tracks on MPD {MpdAddress.parse(mpd)}{skipped}", err=as_json)


def _refresh_saved(settings: Settings) -> None:
    """After an index run: regenerate the saved searches' playlists (musicsearch playlist)."""
    try:
        if not SavedSearches(settings.index_dir).load():
            return
        with MusicIndex(settings=settings) as idx:
            result = refresh_saved(idx)
    except MusicSearchError as exc:
        typer.echo(f"  note: saved searches not refreshed: {exc}")
        return
    ok = sum(isinstance(v, int) for v in result.values())
    typer.echo(f"Refreshed {ok} saved search{'es' if ok != 1 else ''}")
    for name, outcome in result.items():
        if isinstance(outcome, str):
            typer.echo(f"  failed {name}: {outcome}")


def _print_hits(
    hits: list[Hit], as_json: bool, m3u: Path | None, relative: bool = False, path_map: list[str] | None = None
) -> None:
    if m3u is not None:
        write_m3u(hits, m3u, relative=relative, path_map=path_map or ())
    if as_json:
        typer.echo(json.dumps([h.to_dict() for h in hits], ensure_ascii=False, indent=2))
        return
    if not hits:
        typer.echo("No tracks match.")
        return
    with_tags = any(h.tags for h in hits)
    with_why = any(h.matched not in ("", "sound") for h in hits)
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
    if with_why:
        columns.append(("why", "left"))
    columns.append(("path", "left"))
    for col, just in columns:
        table.add_column(col, justify=just, overflow="fold")
    for h in hits:
        t = h.track
        name = f"{t.artist} – {t.title}" if t.artist else t.title
        row = [str(h.rank), f"{h.score:.3f}", name, mmss(t.duration), f"{mmss(h.segment.start)}–{mmss(h.segment.end)}"]
        row += [", ".join(label for label, _ in h.tags)] * with_tags + [h.matched] * with_why + [t.path]
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
    relative: RelativeOpt = False,
    path_map: PathMapOpt = None,
    mpd: MpdOpt = None,
    mpd_music_dir: MpdDirOpt = None,
    append: AppendOpt = False,
    no_lexical: NoLexicalOpt = False,
    include_named: IncludeNamedOpt = False,
    max_per_artist: MaxPerArtistOpt = None,
    dedupe: DedupeOpt = False,
    exclude_artist: ExcludeArtistOpt = None,
    exclude_genre: ExcludeGenreOpt = None,
    exclude_path: ExcludePathOpt = None,
    variation: VariationOpt = 0.0,
    seed: SeedOpt = None,
    order: OrderOpt = "score",
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find the tracks that best match TEXT ("piano by ARTIST", "like ARTIST but calmer", a title)."""
    settings = _settings(index, model=model, device=device, model_check=not no_model_check)
    try:
        filters = parse_filters(artist, album, genre, year, min_duration, max_duration, path, tag)
        _check_players(m3u, relative, path_map, mpd, mpd_music_dir, append)
        with MusicIndex(settings=settings) as idx:
            variety = _variety(max_per_artist, dedupe, exclude_artist, exclude_genre, exclude_path, variation, seed)
            hits = idx.search(
                text,
                k=k,
                negative=negative or (),
                filters=filters,
                by=by,
                min_score=min_score,
                lexical=not no_lexical,
                include_named=include_named,
                variety=variety,
                order=order,
            )
        _print_hits(hits, as_json, m3u, relative, path_map)
        _send_to_mpd(hits, mpd, mpd_music_dir, append, as_json)
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
    relative: RelativeOpt = False,
    path_map: PathMapOpt = None,
    mpd: MpdOpt = None,
    mpd_music_dir: MpdDirOpt = None,
    append: AppendOpt = False,
    max_per_artist: MaxPerArtistOpt = None,
    dedupe: DedupeOpt = False,
    exclude_artist: ExcludeArtistOpt = None,
    exclude_genre: ExcludeGenreOpt = None,
    exclude_path: ExcludePathOpt = None,
    variation: VariationOpt = 0.0,
    seed: SeedOpt = None,
    order: OrderOpt = "score",
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Find tracks that sound like TARGET (the targets themselves are left out); TARGET@1:20-1:40
    starts from that moment only."""
    settings = _settings(index, device=device, model_check=not no_model_check)
    try:
        filters = parse_filters(artist, album, genre, year, min_duration, max_duration, path, tag)
        _check_players(m3u, relative, path_map, mpd, mpd_music_dir, append)
        with MusicIndex(settings=settings) as idx:
            variety = _variety(max_per_artist, dedupe, exclude_artist, exclude_genre, exclude_path, variation, seed)
            hits = idx.similar(
                target,
                k=k,
                text=text or (),
                negative=negative or (),
                filters=filters,
                by=by,
                min_score=min_score,
                variety=variety,
                order=order,
            )
        _print_hits(hits, as_json, m3u, relative, path_map)
        _send_to_mpd(hits, mpd, mpd_music_dir, append, as_json)
    except (MusicSearchError, ValueError, OSError) as exc:
        _fail(exc)


@app.command("path")
def path_cmd(
    start: Annotated[str, typer.Argument(help="The first track (path, or a unique part of its path or title).")],
    end: Annotated[str, typer.Argument(help="The last track.")],
    n: Annotated[int, typer.Option("-n", min=2, max=10_000, help="Tracks in the playlist, both ends included.")] = 12,
    artist: ArtistOpt = None,
    album: AlbumOpt = None,
    genre: GenreOpt = None,
    year: YearOpt = None,
    min_duration: MinDurOpt = None,
    max_duration: MaxDurOpt = None,
    path: PathOpt = None,
    tag: TagOpt = None,
    max_per_artist: MaxPerArtistOpt = None,
    dedupe: DedupeOpt = False,
    exclude_artist: ExcludeArtistOpt = None,
    exclude_genre: ExcludeGenreOpt = None,
    exclude_path: ExcludePathOpt = None,
    m3u: M3uOpt = None,
    relative: RelativeOpt = False,
    path_map: PathMapOpt = None,
    mpd: MpdOpt = None,
    mpd_music_dir: MpdDirOpt = None,
    append: AppendOpt = False,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    as_json: JsonOpt = False,
) -> None:
    """A playlist from START to END whose steps move steadily between them (score: cosine to the step before)."""
    settings = _settings(index)
    try:
        filters = parse_filters(artist, album, genre, year, min_duration, max_duration, path, tag)
        _check_players(m3u, relative, path_map, mpd, mpd_music_dir, append)
        variety = _variety(max_per_artist, dedupe, exclude_artist, exclude_genre, exclude_path, 0.0, None)
        with MusicIndex(settings=settings) as idx:
            hits = idx.path_between(start, end, n, filters=filters, variety=variety)
        _print_hits(hits, as_json, m3u, relative, path_map)
        _send_to_mpd(hits, mpd, mpd_music_dir, append, as_json)
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
    watch: Annotated[
        Optional[Path], typer.Option("--watch", help="Also follow this music folder and keep the index in step.")
    ] = None,
    poll: Annotated[
        Optional[float], typer.Option("--poll", help="--watch: poll every SECONDS (network shares).")
    ] = None,
) -> None:
    """Serve the search page and HTTP API (docs at /docs)."""
    try:
        from .server import serve as run_server
    except ImportError as exc:
        _fail(MusicSearchError(f"the web server needs fastapi and uvicorn ({exc.name} is missing)"))
    settings = _settings(index, device=device, model_check=not no_model_check)
    typer.echo(f"musicsearch on http://{host}:{port}/ (index {settings.index_dir})", err=True)
    stop = threading.Event()
    watcher = None
    try:
        if watch is not None:
            watcher = _start_watcher(settings, watch, WatchSettings(poll_seconds=poll), stop)
        run_server(MusicIndex(settings=settings), host, port)
    except MusicSearchError as exc:
        _fail(exc)
    finally:
        stop.set()
        if watcher is not None:
            watcher.join(timeout=30)


def _report_line(report: IndexReport) -> str:
    parts = [
        f"{len(v)} {k}"
        for k, v in (
            ("added", report.added),
            ("updated", report.updated),
            ("moved", report.moved),
            ("removed", report.removed),
            ("failed", report.failed),
        )
        if v
    ]
    return f"{report.root}: {', '.join(parts) or 'no change'}"


def _echo_refresh(result: dict[str, int | str]) -> None:
    for name, outcome in result.items():
        typer.echo(f"  playlist {name}: {outcome if isinstance(outcome, str) else f'{outcome} tracks'}")


def _start_watcher(settings: Settings, folder: Path, ws: WatchSettings, stop: threading.Event) -> threading.Thread:
    """``serve --watch``: the watcher in a daemon thread with an index of its own."""
    watcher = LibraryWatcher(
        MusicIndex(settings=settings),
        folder,
        ws,
        stop_event=stop,
        on_report=lambda r: typer.echo(f"watch: {_report_line(r)}", err=True),
    )

    def run() -> None:
        try:
            watcher.run()
        except MusicSearchError as exc:
            typer.echo(f"Error: watching {folder} stopped: {exc}", err=True)

    thread = threading.Thread(target=run, name="musicsearch-watch", daemon=True)
    thread.start()
    typer.echo(f"watching {watcher.root}", err=True)
    return thread


@app.command()
def watch(
    folder: Annotated[Path, typer.Argument(help="Music folder to follow.")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    max_windows: Annotated[
        Optional[int], typer.Option("--max-windows", min=1, help="At most N windows per track, spread evenly.")
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Embed whole tracks even on a CPU.")] = False,
    workers: Annotated[Optional[int], typer.Option("--workers", min=1, help="Decode worker processes.")] = None,
    poll: Annotated[
        Optional[float],
        typer.Option("--poll", help="Poll every SECONDS instead of file-system events (NFS, SMB, sshfs shares)."),
    ] = None,
    debounce: Annotated[
        float, typer.Option("--debounce", min=0, help="Seconds that gather a burst of changes into one run.")
    ] = 1.6,
    settle: Annotated[
        float,
        typer.Option("--settle", min=0, help="Seconds a changed file must keep its size before it is indexed."),
    ] = 2.0,
    no_model_check: NoCheckOpt = False,
) -> None:
    """Index FOLDER, then follow it: new, changed, moved and deleted files (Ctrl-C stops)."""
    settings = _settings(
        index,
        model=model,
        device=device,
        max_windows=max_windows,
        full=full,
        workers=workers,
        model_check=not no_model_check,
    )
    try:
        ws = WatchSettings(debounce_ms=int(debounce * 1000), settle_seconds=settle, poll_seconds=poll)
        with MusicIndex(settings=settings) as idx:
            watcher = LibraryWatcher(
                idx, folder, ws, on_report=lambda r: typer.echo(_report_line(r)), on_refresh=_echo_refresh
            )
            mode = f"polling every {poll:g} s" if poll else "file-system events"
            typer.echo(f"Watching {watcher.root} ({mode}); Ctrl-C stops", err=True)
            watcher.run()
    except MusicSearchError as exc:
        _fail(exc)
    except KeyboardInterrupt:
        typer.echo("Stopped watching; what was indexed is saved.", err=True)


playlist_app = typer.Typer(help="Saved searches kept as playlist files.", no_args_is_help=True)
app.add_typer(playlist_app, name="playlist")


@playlist_app.command("save")
def playlist_save(
    name: Annotated[str, typer.Argument(help="Name of the saved search.")],
    text: Annotated[list[str], typer.Argument(help="What the music sounds like (as for query).")],
    m3u: Annotated[Path, typer.Option("--m3u", help="The playlist file to write and keep up to date.")],
    k: KOpt = 50,
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
    relative: RelativeOpt = False,
    path_map: PathMapOpt = None,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Save a search and write its playlist; index runs and watch mode keep it up to date."""
    settings = _settings(index, device=device, model_check=not no_model_check)
    try:
        filters = filter_strings(
            artist=artist,
            album=album,
            genre=genre,
            year=year,
            min_duration=min_duration,
            max_duration=max_duration,
            path=path,
            tags=tag,
        )
        search = SavedSearch(
            name,
            tuple(text),
            str(m3u.expanduser().absolute()),
            k=k,
            negative=tuple(negative or ()),
            by=by,
            min_score=min_score,
            filters=filters,
            relative=relative,
            path_map=tuple(path_map or ()),
        )
        with MusicIndex(settings=settings) as idx:
            n = refresh_one(idx, search)  # a search that cannot run is refused before it is saved
            SavedSearches(settings.index_dir).save(search)
    except (MusicSearchError, ValueError, OSError) as exc:
        _fail(exc)
    typer.echo(f"Saved {name!r}: wrote {n} tracks to {search.m3u}")


@playlist_app.command("refresh")
def playlist_refresh(
    names: Annotated[Optional[list[str]], typer.Argument(help="Only these saved searches (default: all).")] = None,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Run the saved searches again and rewrite their playlist files."""
    settings = _settings(index, device=device, model_check=not no_model_check)
    try:
        with MusicIndex(settings=settings) as idx:
            result = refresh_saved(idx, names or ())
    except MusicSearchError as exc:
        _fail(exc)
    if not result:
        typer.echo("No saved searches.")
    _echo_refresh(result)
    if any(isinstance(v, str) for v in result.values()):
        raise typer.Exit(1)


@playlist_app.command("list")
def playlist_list(index: IndexOpt = DEFAULT_INDEX_DIR, as_json: JsonOpt = False) -> None:
    """Show the saved searches."""
    try:
        searches = SavedSearches(index).load()
    except MusicSearchError as exc:
        _fail(exc)
    if as_json:
        typer.echo(json.dumps([s.to_json() for s in searches.values()], ensure_ascii=False, indent=2))
        return
    if not searches:
        typer.echo("No saved searches.")
    for s in searches.values():
        extra = [f"{key}={value}" for key, value in s.filters.items()]
        extra += [f"not={n}" for n in s.negative] + (["relative"] if s.relative else [])
        extra += [f"path-map={m}" for m in s.path_map]
        typer.echo(f"{s.name}: {' | '.join(s.text)} (k={s.k}{''.join(', ' + e for e in extra)}) -> {s.m3u}")


@playlist_app.command("remove")
def playlist_remove(
    name: Annotated[str, typer.Argument(help="The saved search to forget (its playlist file stays).")],
    index: IndexOpt = DEFAULT_INDEX_DIR,
) -> None:
    """Forget a saved search."""
    try:
        SavedSearches(index).remove(name)
    except MusicSearchError as exc:
        _fail(exc)
    typer.echo(f"Removed {name!r}")


def main() -> None:
    """Console-script entry point."""
    try:
        app()
    except KeyboardInterrupt:
        typer.echo("Interrupted; finished batches are saved and the next run resumes.", err=True)
        sys.exit(130)
    finally:
        # The process ends next. Its final collections would walk every object torch and
        # transformers made, to free memory the exit hands back anyway: 1.1-1.3 s of a fresh
        # machine's first index run (scripts/bench_first_run.py). Frozen objects are skipped;
        # exit handlers and reference counting still run.
        gc.freeze()
