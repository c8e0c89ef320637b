"""``musicsearch demo``: results on any machine, music folder or not. Writes a small generated
library (once), indexes it into the index named ``demo`` (incrementally, so a second run reuses
both) and asks it a few example questions."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_NAME, default_index_dir, index_path, indexes_dir
from ..demo import DEMO_INDEX, DEMO_QUERIES, build_demo_library
from ..errors import MusicSearchError
from .options import DeviceOpt, ModelOpt, NoCheckOpt, settings
from .output import IndexProgress, print_hits, print_index_report


def _music_folder() -> Path:
    """The platform's music folder (platformdirs), which must exist."""
    import platformdirs

    folder = Path(platformdirs.user_music_dir())
    if not folder.is_dir():
        raise MusicSearchError(f"there is no music folder at {folder}; leave out --music to try the generated library")
    return folder


def demo(
    music: Annotated[
        bool,
        typer.Option(
            "--music", help="Index your music folder into the default index instead of the generated library."
        ),
    ] = False,
    index: Annotated[
        Optional[Path],
        typer.Option(
            "--index", parser=index_path, help="Index folder or name (default: 'demo'; with --music, 'default')."
        ),
    ] = None,
    model: ModelOpt = None,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    k: Annotated[int, typer.Option("-k", "--top", min=1, max=100, help="Results per example query.")] = 3,
) -> None:
    """Try musicsearch: index a small generated library and search it with a few example queries."""
    folder = _music_folder() if music else build_demo_library()
    name = DEFAULT_INDEX_NAME if music else DEMO_INDEX
    own = default_index_dir() if music else indexes_dir() / DEMO_INDEX  # by name, whatever folders are here
    config = settings(index or own, model=model, device=device, model_check=not no_model_check)
    typer.echo(f"Library: {folder}", err=True)
    listener = IndexProgress()
    shown = index if index is not None else name if index_path(name) == own else own  # ./demo here: the path
    with MusicIndex(settings=config) as idx:
        try:
            report = idx.index(folder, on_event=listener)
        finally:
            listener.close()
        print_index_report(report)
        for query in DEMO_QUERIES:
            typer.echo(f'\nmusicsearch query "{query}" -k {k} --index {shown}')
            print_hits(idx.search(query, k=k), as_json=False, m3u=None)
    typer.echo(f'\nAsk your own: musicsearch query "..." --index {shown}; index your music: musicsearch index FOLDER')
