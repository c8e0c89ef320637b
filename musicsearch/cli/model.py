"""``musicsearch model fetch``: a model in a folder, for a machine that cannot reach the Hub."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..config import DEFAULT_MODEL
from ..loading import fetch_model

model_app = typer.Typer(help="Get a model for a machine with no network.", no_args_is_help=True)


@model_app.command("fetch")
def fetch(
    model: Annotated[str, typer.Argument(help="Hub id, or a model folder to copy.")] = DEFAULT_MODEL,
    to: Annotated[Path, typer.Option("--to", help="New folder to put it in.")] = Path("clap"),
    revision: Annotated[Optional[str], typer.Option("--revision", help="Hub revision (branch, tag, commit).")] = None,
) -> None:
    """Fetch MODEL into a folder (on a machine with a network); pass that folder with --model."""
    folder = fetch_model(model, to, revision)
    size = sum(p.stat().st_size for p in folder.iterdir() if p.is_file())
    typer.echo(f"Fetched {model} into {folder} ({size / 1e6:.1f} MB); use it with --model {folder}")
