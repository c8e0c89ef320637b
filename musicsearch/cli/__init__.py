"""The ``musicsearch`` command: each command parses its options, calls the public API and
prints. Library errors (``MusicSearchError``) are caught in one place, the root command group,
which every command runs inside: one ``Error: ...`` line on stderr and exit code 1.

A module per command group: ``index`` (index, ingest, watch), ``search`` (query, similar,
path, duplicates), ``tags`` (classify, tag), ``info``, ``indexes``, ``demo``, ``serve``, ``mcp``, ``playlists``
(the ``playlist`` sub-commands), ``model`` (``model fetch``), ``user`` (Subsonic users);
``options`` holds the shared options and ``output`` the rendering.
"""

from __future__ import annotations

import sys
from typing import Any

import typer
from typer.core import TyperGroup

from .. import process
from ..errors import MusicSearchError
from . import demo, index, indexes, info, mcp, search, serve, tags
from .eval import eval_command
from .help import plain_help
from .model import model_app
from .playlists import playlist_app
from .user import user_app

USER_ERRORS: tuple[type[Exception], ...] = (MusicSearchError, OSError)
"""What ends a command with one ``Error:`` line instead of a traceback: the library's user and
setup errors, and the file-system and network errors of files or sockets the user named (an
``--m3u`` playlist in a read-only folder, a saved-search file)."""


class _Commands(TyperGroup):
    """The root group: runs the command, and turns a user error into one line and exit code 1.
    Every command below it gets plain help (cli/help.py)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        plain_help(self)

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer >= 0.29 vendors click)
        try:
            return super().invoke(ctx)
        except USER_ERRORS as exc:
            typer.echo(f"Error: {exc}", err=True)
            raise typer.Exit(1) from None


app = typer.Typer(
    cls=_Commands,
    help="Index a music folder with CLAP and search it by text.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,  # help as typed: no markup eats '[ray]' (cli/help.py)
)
app.command()(index.index)
app.command()(search.query)
app.command()(search.similar)
app.command("path")(search.path_between)
app.command()(search.duplicates)
app.command()(tags.classify)
app.command()(tags.tag)
app.command()(info.info)
app.command()(indexes.indexes)
app.command()(demo.demo)
app.command()(index.ingest)
app.command()(serve.serve)
app.command()(index.watch)
app.command("eval")(eval_command)
app.command()(mcp.mcp)
app.add_typer(playlist_app, name="playlist")
app.add_typer(model_app, name="model")
app.add_typer(user_app, name="user")


def main() -> None:
    """Console-script entry point. The command owns its process: the process-wide tweaks are
    on while it runs (musicsearch/process.py), and the collector is frozen as it ends, since
    the process ends next and its final collections would walk every object torch and
    transformers made, to free memory the exit hands back anyway."""
    with process.switched_on():
        try:
            app()
        except KeyboardInterrupt:
            typer.echo("Interrupted; finished batches are saved and the next run resumes.", err=True)
            sys.exit(130)
        finally:
            process.freeze_collector()
