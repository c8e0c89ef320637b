"""``musicsearch indexes``: the named indexes, with what each holds."""

from __future__ import annotations

import typer

from ..config import indexes_dir
from ..indexes import list_indexes
from .options import JsonOpt
from .output import echo_json


def indexes(as_json: JsonOpt = False) -> None:
    """List the named indexes ('--index NAME'): tracks, model, size and last run of each."""
    found = list_indexes()
    if as_json:
        echo_json([entry.to_json() for entry in found])
        return
    if not found:
        typer.echo(
            f"No indexes yet in {indexes_dir()}. 'musicsearch index FOLDER --index NAME' makes one; "
            "'musicsearch demo' makes a small one to try."
        )
        return
    rows = [("NAME", "TRACKS", "MODEL", "SIZE", "LAST RUN")]
    for e in found:
        tracks = "?" if e.tracks is None else str(e.tracks)
        rows.append((e.name, tracks, e.model or "-", f"{e.size_bytes / 1e6:.1f} MB", e.last_run))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        typer.echo("  ".join(cell.ljust(w) for cell, w in zip(row, widths)).rstrip())
    for e in found:
        if e.error:
            typer.echo(f"{e.name}: could not be read: {e.error}", err=True)
    typer.echo(f"({indexes_dir()})")
