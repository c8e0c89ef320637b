"""``musicsearch playlist save|refresh|list|remove``: saved searches kept as playlist files,
and the refresh an index run ends with."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_DIR, Settings
from ..errors import MusicSearchError
from ..playlist import check_m3u_path
from ..saved import SavedSearch, SavedSearches, filter_strings, refresh_one
from ..saved import refresh as refresh_saved
from .options import (
    AlbumOpt,
    ArtistOpt,
    BpmOpt,
    ByOpt,
    DeviceOpt,
    GenreOpt,
    IndexOpt,
    JsonOpt,
    KeyCompatibleOpt,
    KeyOpt,
    KOpt,
    MaxDurOpt,
    MinDurOpt,
    MinScoreOpt,
    NoCheckOpt,
    NotOpt,
    PathMapOpt,
    PathOpt,
    RelativeOpt,
    StrictBpmOpt,
    TagOpt,
    YearOpt,
    settings,
)
from .output import echo_json, echo_refresh

playlist_app = typer.Typer(help="Saved searches kept as playlist files.", no_args_is_help=True)


def refresh_after_index(settings: Settings) -> None:
    """After an index run: regenerate the saved searches' playlists (musicsearch playlist).
    A failure is a note, not an error: the run itself succeeded."""
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


@playlist_app.command("save")
def playlist_save(
    name: Annotated[str, typer.Argument(help="Name of the saved search.")],
    text: Annotated[list[str], typer.Argument(help="What the music sounds like (as for query).")],
    m3u: Annotated[Path, typer.Option("--m3u", metavar="FILE", help="The playlist file to write and keep up to date.")],
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
    bpm: BpmOpt = None,
    strict_bpm: StrictBpmOpt = False,
    key: KeyOpt = None,
    key_compatible: KeyCompatibleOpt = None,
    relative: RelativeOpt = False,
    path_map: PathMapOpt = None,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Save a search and write its playlist; index runs and watch mode keep it up to date."""
    config = settings(index, device=device, model_check=not no_model_check)
    filters = filter_strings(
        artist=artist,
        album=album,
        genre=genre,
        year=year,
        min_duration=min_duration,
        max_duration=max_duration,
        path=path,
        bpm=bpm,
        strict_bpm=strict_bpm,
        key=key,
        key_compatible=key_compatible,
        tags=tag,
    )
    search = SavedSearch(
        name,
        tuple(text),
        str(check_m3u_path(m3u)),
        k=k,
        negative=tuple(negative or ()),
        by=by,
        min_score=min_score,
        filters=filters,
        relative=relative,
        path_map=tuple(path_map or ()),
    )
    with MusicIndex(settings=config) as idx:
        n = refresh_one(idx, search)  # a search that cannot run is refused before it is saved
        SavedSearches(config.index_dir).save(search)
    typer.echo(f"Saved {name!r}: wrote {n} tracks to {search.m3u}")


@playlist_app.command("refresh")
def playlist_refresh(
    names: Annotated[Optional[list[str]], typer.Argument(help="Only these saved searches (default: all).")] = None,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Run the saved searches again and rewrite their playlist files."""
    with MusicIndex(settings=settings(index, device=device, model_check=not no_model_check)) as idx:
        result = refresh_saved(idx, names or ())
    if not result:
        typer.echo("No saved searches.")
    echo_refresh(result)
    if any(isinstance(v, str) for v in result.values()):
        raise typer.Exit(1)


@playlist_app.command("list")
def playlist_list(index: IndexOpt = DEFAULT_INDEX_DIR, as_json: JsonOpt = False) -> None:
    """Show the saved searches."""
    searches = SavedSearches(index).load()
    if as_json:
        echo_json([s.to_json() for s in searches.values()], ensure_ascii=False)
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
    SavedSearches(index).remove(name)
    typer.echo(f"Removed {name!r}")
