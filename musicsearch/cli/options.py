"""The options several commands share, and the one place their values become ``Settings``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..config import Settings, index_path
from ..errors import MusicSearchError

IndexOpt = Annotated[
    Path,
    typer.Option(
        "--index",
        metavar="FOLDER|NAME",
        envvar="MUSICSEARCH_INDEX",
        parser=index_path,
        help="Index folder, or a name: 'jazz' is an index in the data folder (see 'musicsearch indexes').",
    ),
]
ModelOpt = Annotated[
    Optional[str],
    typer.Option(
        "--model",
        metavar="MODEL",
        help="Hub id or local model folder (default: the index's model, or laion/larger_clap_general).",
    ),
]
RevisionOpt = Annotated[Optional[str], typer.Option("--revision", metavar="REVISION", help="Hub revision of --model.")]
DeviceOpt = Annotated[str, typer.Option("--device", metavar="DEVICE", help="auto (cuda, mps, cpu) or a torch device.")]
NoCheckOpt = Annotated[
    bool,
    typer.Option(
        "--no-model-check",
        envvar="MUSICSEARCH_NO_MODEL_CHECK",
        help="Skip the check that refuses collapsed models; an index built so remembers it.",
    ),
]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
FullOpt = Annotated[bool, typer.Option("--full", help="Embed whole tracks even on a CPU.")]

# filters -------------------------------------------------------------------------
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
    Optional[str],
    typer.Option("--year", metavar="YEARS", help="1997, 1990-1999, 1990- or -1999.", rich_help_panel="Filters"),
]
MinDurOpt = Annotated[
    Optional[str],
    typer.Option("--min-duration", metavar="DURATION", help="Seconds or mm:ss.", rich_help_panel="Filters"),
]
MaxDurOpt = Annotated[
    Optional[str],
    typer.Option("--max-duration", metavar="DURATION", help="Seconds or mm:ss.", rich_help_panel="Filters"),
]
PathOpt = Annotated[
    Optional[str],
    typer.Option(
        "--path", metavar="GLOB", help="Glob on the absolute path, e.g. '*/Jazz/*'.", rich_help_panel="Filters"
    ),
]
TagOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--tag", metavar="LABEL", help="Has this label from 'musicsearch tag' (repeatable).", rich_help_panel="Filters"
    ),
]
BpmOpt = Annotated[
    Optional[str],
    typer.Option(
        "--bpm",
        metavar="BPM",
        help="Tempo: 120-128, 124 (within 2 %), 120- or -128; half and double time match too.",
        rich_help_panel="Filters",
    ),
]
StrictBpmOpt = Annotated[
    bool,
    typer.Option("--strict-bpm", help="--bpm: the range alone, not half or double time.", rich_help_panel="Filters"),
]
KeyOpt = Annotated[
    Optional[str],
    typer.Option("--key", metavar="KEY", help="In this key: 8A, 1m, Am, A minor.", rich_help_panel="Filters"),
]
KeyCompatibleOpt = Annotated[
    Optional[str],
    typer.Option(
        "--key-compatible",
        metavar="KEY",
        help="In a key that mixes with KEY: the same, ±1 on the Camelot wheel, the relative major/minor.",
        rich_help_panel="Filters",
    ),
]
SoundOnlyOpt = Annotated[
    bool,
    typer.Option(
        "--sound-only",
        help="Smooth order and paths by sound alone (else small tempo steps and compatible keys count too).",
        rich_help_panel="Variety",
    ),
]

# ranking -------------------------------------------------------------------------
KOpt = Annotated[int, typer.Option("-k", "--top", min=1, max=10_000, help="Number of results.")]
ByOpt = Annotated[
    str,
    typer.Option(
        "--by", metavar="track|window", help="Rank by the track vector ('track') or the best window ('window')."
    ),
]
NotOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--not",
        metavar="TEXT",
        help="Steer away from this prompt (repeatable; 'text::w' sets its weight, default 0.5).",
    ),
]
MinScoreOpt = Annotated[
    Optional[float], typer.Option("--min-score", metavar="SCORE", help="Drop hits scoring below this.")
]

# players -------------------------------------------------------------------------
M3uOpt = Annotated[
    Optional[Path], typer.Option("--m3u", metavar="FILE", help="Also write the results as an extended M3U8 playlist.")
]
RelativeOpt = Annotated[
    bool, typer.Option("--relative", help="--m3u: paths relative to the playlist's folder.", rich_help_panel="Players")
]
PathMapOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--path-map",
        metavar="FROM=TO",
        help="--m3u: FROM=TO rewrites the library folder FROM to TO, where the player sees it (repeatable), "
        "e.g. ~/Music=/music.",
        rich_help_panel="Players",
    ),
]
MpdOpt = Annotated[
    Optional[str],
    typer.Option(
        "--mpd",
        metavar="HOST[:PORT]",
        help="Replace MPD's queue with the hits: HOST[:PORT], PASSWORD@HOST or a socket path.",
        rich_help_panel="Players",
    ),
]
MpdDirOpt = Annotated[
    Optional[Path],
    typer.Option(
        "--mpd-music-dir",
        metavar="FOLDER",
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
    typer.Option(
        "--exclude-artist",
        metavar="ARTIST",
        help="Leave out this artist (substring; repeatable).",
        rich_help_panel="Variety",
    ),
]
ExcludeGenreOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--exclude-genre",
        metavar="GENRE",
        help="Leave out this genre (substring; repeatable).",
        rich_help_panel="Variety",
    ),
]
ExcludePathOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--exclude-path",
        metavar="GLOB",
        help="Leave out paths matching this GLOB (repeatable).",
        rich_help_panel="Variety",
    ),
]
VariationOpt = Annotated[
    float,
    typer.Option(
        "--variation",
        metavar="0..1",
        min=0.0,
        max=1.0,
        help="Shuffle among close hits, from 0 (off) to 1 (repeatable with --seed).",
        rich_help_panel="Variety",
    ),
]
SeedOpt = Annotated[
    Optional[int], typer.Option("--seed", help="--variation: the shuffle's seed.", rich_help_panel="Variety")
]
OrderOpt = Annotated[
    str,
    typer.Option(
        "--order",
        metavar="score|smooth",
        help="score (best first) or smooth (neighbours sound alike).",
        rich_help_panel="Variety",
    ),
]


def settings(index: Path, **kw: Any) -> Settings:
    """``Settings`` for the index folder and the options given (``None`` keeps the default).
    A value out of range is the user's to fix: it becomes a ``MusicSearchError``."""
    try:
        return Settings(index_dir=index, **{k: v for k, v in kw.items() if v is not None})
    except ValueError as exc:
        raise MusicSearchError(str(exc)) from None
