"""``musicsearch query|similar|path|duplicates``: each search command turns its options into
one ``SearchRequest`` (``parse_request``, the parser every front end shares) and runs it, then
hands the hits to the players the user named (an M3U file, MPD)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_DIR
from ..errors import MusicSearchError
from ..hits import Hit
from ..mpd import MpdAddress, queue_paths
from ..playlist import check_m3u_path, parse_path_map
from ..search.request import parse_request
from .options import (
    AlbumOpt,
    AppendOpt,
    ArtistOpt,
    BpmOpt,
    ByOpt,
    DedupeOpt,
    DeviceOpt,
    ExcludeArtistOpt,
    ExcludeGenreOpt,
    ExcludePathOpt,
    GenreOpt,
    IncludeNamedOpt,
    IndexOpt,
    JsonOpt,
    KeyCompatibleOpt,
    KeyOpt,
    KOpt,
    M3uOpt,
    MaxDurOpt,
    MaxPerArtistOpt,
    MinDurOpt,
    MinScoreOpt,
    ModelOpt,
    MpdDirOpt,
    MpdOpt,
    NoCheckOpt,
    NoLexicalOpt,
    NotOpt,
    OrderOpt,
    PathMapOpt,
    PathOpt,
    RelativeOpt,
    SeedOpt,
    SoundOnlyOpt,
    StrictBpmOpt,
    TagOpt,
    VariationOpt,
    YearOpt,
    settings,
)
from .output import echo_json, mmss, print_hits


def _filter_fields(
    artist: str | None,
    album: str | None,
    genre: str | None,
    year: str | None,
    min_duration: str | None,
    max_duration: str | None,
    path: str | None,
    tag: list[str] | None,
) -> dict[str, object]:
    """The filter options as ``parse_request`` fields."""
    return {
        "artist": artist,
        "album": album,
        "genre": genre,
        "year": year,
        "min_duration": min_duration,
        "max_duration": max_duration,
        "path": path,
        "tag": tag,
    }


def _tempo_fields(
    bpm: str | None, strict_bpm: bool, key: str | None, key_compatible: str | None, sound_only: bool
) -> dict[str, object]:
    """The tempo and key options as ``parse_request`` fields."""
    return {
        "bpm": bpm,
        "strict_bpm": strict_bpm,
        "key": key,
        "key_compatible": key_compatible,
        "sound_only": sound_only,
    }


def _variety_fields(
    max_per_artist: int | None,
    dedupe: bool,
    exclude_artist: list[str] | None,
    exclude_genre: list[str] | None,
    exclude_path: list[str] | None,
) -> dict[str, object]:
    """The variety options as ``parse_request`` fields."""
    return {
        "max_per_artist": max_per_artist,
        "dedupe": dedupe,
        "exclude_artist": exclude_artist,
        "exclude_genre": exclude_genre,
        "exclude_path": exclude_path,
    }


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
    if m3u is not None:
        check_m3u_path(m3u)
    if mpd is not None:
        MpdAddress.parse(mpd)


def _send_to_mpd(hits: list[Hit], mpd: str | None, mpd_dir: Path | None, append: bool, as_json: bool) -> None:
    if mpd is None:
        return
    result = queue_paths(mpd, [h.track.path for h in hits], music_dir=mpd_dir, append=append)
    skipped = f" ({len(result.skipped)} outside MPD's music directory left out)" if result.skipped else ""
    verb = "Added" if append else "Queued"
    typer.echo(f"{verb} {result.added} tracks on MPD {MpdAddress.parse(mpd)}{skipped}", err=as_json)


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
    bpm: BpmOpt = None,
    strict_bpm: StrictBpmOpt = False,
    key: KeyOpt = None,
    key_compatible: KeyCompatibleOpt = None,
    sound_only: SoundOnlyOpt = False,
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
    config = settings(index, model=model, device=device, model_check=not no_model_check)
    request = parse_request(
        {"q": text, "not": negative, "k": k, "by": by, "min_score": min_score, "order": order}
        | {"lexical": not no_lexical, "include_named": include_named, "variation": variation, "seed": seed}
        | _filter_fields(artist, album, genre, year, min_duration, max_duration, path, tag)
        | _tempo_fields(bpm, strict_bpm, key, key_compatible, sound_only)
        | _variety_fields(max_per_artist, dedupe, exclude_artist, exclude_genre, exclude_path)
    )
    _check_players(m3u, relative, path_map, mpd, mpd_music_dir, append)
    with MusicIndex(settings=config) as idx:
        hits = idx.search(request)
        if not hits and idx.info().tracks == 0:
            raise MusicSearchError(
                f"index {idx.path} holds no tracks (its files failed or were removed); "
                "fill it with: musicsearch index FOLDER"
            )
    print_hits(hits, as_json, m3u, relative, path_map)
    _send_to_mpd(hits, mpd, mpd_music_dir, append, as_json)


def similar(
    target: Annotated[
        list[str],
        typer.Argument(
            help="Indexed track (path, or a unique part of its path or title) or any audio file; several add up."
        ),
    ],
    text: Annotated[
        Optional[list[str]], typer.Option("--text", metavar="TEXT", help="Mix in a text prompt (repeatable).")
    ] = None,
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
    bpm: BpmOpt = None,
    strict_bpm: StrictBpmOpt = False,
    key: KeyOpt = None,
    key_compatible: KeyCompatibleOpt = None,
    sound_only: SoundOnlyOpt = False,
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
    config = settings(index, device=device, model_check=not no_model_check)
    request = parse_request(
        {"like": target, "q": text, "not": negative, "k": k, "by": by, "min_score": min_score, "order": order}
        | {"variation": variation, "seed": seed}
        | _filter_fields(artist, album, genre, year, min_duration, max_duration, path, tag)
        | _tempo_fields(bpm, strict_bpm, key, key_compatible, sound_only)
        | _variety_fields(max_per_artist, dedupe, exclude_artist, exclude_genre, exclude_path)
    )
    _check_players(m3u, relative, path_map, mpd, mpd_music_dir, append)
    with MusicIndex(settings=config) as idx:
        hits = idx.similar(request)
    print_hits(hits, as_json, m3u, relative, path_map)
    _send_to_mpd(hits, mpd, mpd_music_dir, append, as_json)


def path_between(
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
    bpm: BpmOpt = None,
    strict_bpm: StrictBpmOpt = False,
    key: KeyOpt = None,
    key_compatible: KeyCompatibleOpt = None,
    sound_only: SoundOnlyOpt = False,
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
    config = settings(index)
    request = parse_request(
        {"between": [start, end], "k": n}
        | _filter_fields(artist, album, genre, year, min_duration, max_duration, path, tag)
        | _tempo_fields(bpm, strict_bpm, key, key_compatible, sound_only)
        | _variety_fields(max_per_artist, dedupe, exclude_artist, exclude_genre, exclude_path)
    )
    _check_players(m3u, relative, path_map, mpd, mpd_music_dir, append)
    with MusicIndex(settings=config) as idx:
        hits = idx.search(request)
    print_hits(hits, as_json, m3u, relative, path_map)
    _send_to_mpd(hits, mpd, mpd_music_dir, append, as_json)


def duplicates(
    threshold: Annotated[
        float,
        typer.Option(
            "--threshold", metavar="COSINE", help="Cosine at or above which two tracks count as the same recording."
        ),
    ] = 0.995,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    as_json: JsonOpt = False,
) -> None:
    """List groups of near-identical recordings, largest groups first."""
    with MusicIndex(index) as idx:
        groups = idx.duplicates(threshold)
    if as_json:
        echo_json(
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
            ]
        )
        return
    if not groups:
        typer.echo(f"No duplicates at threshold {threshold}.")
        return
    for n, group in enumerate(groups, 1):
        typer.echo(f"Group {n} ({len(group)} tracks)")
        for t, s in group:
            typer.echo(f"  {s:.4f}  {mmss(t.duration):>6}  {t.path}")
