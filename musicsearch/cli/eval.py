"""``musicsearch eval``: how often the right clip comes back for a description, on a published
caption set or a CSV of your own, through the same pipeline as a search; each combination of
model, window policy, ranking and prompt form is one row (musicsearch/evaluation/)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer
from rich.console import Console

from ..evaluation.datasets import FORMATS, load_dataset
from .options import DeviceOpt, JsonOpt, NoCheckOpt
from .output import IndexProgress, echo_json, quiet_event

if TYPE_CHECKING:  # the runner decodes audio: imported when an evaluation runs, not by every command
    from ..evaluation.runner import WindowPolicy


def _policies(max_windows: list[int] | None, full: bool) -> tuple[WindowPolicy, ...]:
    """One policy per ``--max-windows`` and one for ``--full``; none given: the device's default."""
    from ..evaluation.runner import WindowPolicy

    policies = [WindowPolicy(max_windows=n) for n in dict.fromkeys(max_windows or [])]
    if full:
        policies.append(WindowPolicy(full=True))
    return tuple(policies) or (WindowPolicy(),)


def eval_command(
    dataset: Annotated[
        Path, typer.Argument(metavar="DATASET", help="The set's CSV of captions, or the folder holding it.")
    ],
    format: Annotated[
        Optional[str],
        typer.Option(
            "--format", metavar="|".join(FORMATS), help="The CSV's format (default: guessed from its columns)."
        ),
    ] = None,
    audio: Annotated[
        Optional[Path],
        typer.Option(
            "--audio",
            metavar="FOLDER",
            help="The folder of its audio (default: 'audio' beside the CSV, or its folder).",
        ),
    ] = None,
    model: Annotated[
        Optional[list[str]],
        typer.Option(
            "--model", metavar="MODEL", help="Hub id or local folder (repeatable; default: the default model)."
        ),
    ] = None,
    by: Annotated[
        Optional[list[str]],
        typer.Option("--by", metavar="track|window", help="Rank by track vector or best window (repeatable)."),
    ] = None,
    max_windows: Annotated[
        Optional[list[int]],
        typer.Option("--max-windows", metavar="N", min=1, help="At most N windows per clip (repeatable)."),
    ] = None,
    full: Annotated[bool, typer.Option("--full", help="Also (or only) whole clips.")] = False,
    template: Annotated[
        Optional[list[str]],
        typer.Option(
            "--template",
            metavar="TEXT",
            help="Put each caption in this template, e.g. 'This is a {} song.' (repeatable: a row each, "
            "and one for their average).",
        ),
    ] = None,
    limit: Annotated[Optional[int], typer.Option("--limit", metavar="N", min=1, help="Only the first N clips.")] = None,
    as_json: JsonOpt = False,
    per_query: Annotated[
        Optional[Path],
        typer.Option("--per-query", metavar="FILE", help="Write each caption's rank and top hits to this CSV."),
    ] = None,
    seed: Annotated[int, typer.Option("--seed", metavar="N", help="The bootstrap's seed.")] = 0,
    bootstrap: Annotated[
        int,
        typer.Option("--bootstrap", metavar="N", min=0, help="Bootstrap resamples for the 95 % intervals (0: none)."),
    ] = 1000,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress.")] = False,
) -> None:
    """Measure retrieval on DATASET (Song Describer, MusicCaps, or a CSV of path,caption[,start,end])."""
    from ..evaluation.report import notes, table, to_json, write_per_query
    from ..evaluation.runner import EvalSettings, run_eval

    settings = EvalSettings(
        models=tuple(dict.fromkeys(model)) if model else (None,),
        by=tuple(dict.fromkeys(by or ["track"])),
        policies=_policies(max_windows, full),
        templates=tuple(dict.fromkeys(template or [])),
        bootstrap=bootstrap,
        seed=seed,
        limit=limit,
        device=device,
        model_check=not no_model_check,
    )
    data = load_dataset(dataset, format, audio)
    listener = IndexProgress()
    try:
        result = run_eval(data, settings, quiet_event if (quiet or as_json) else listener)
    finally:
        listener.close()
    if per_query is not None:
        lines = write_per_query(result, per_query)
        typer.echo(f"Wrote {lines} lines to {per_query}", err=True)
    if as_json:
        echo_json(to_json(result), ensure_ascii=False)
        return
    console = Console(highlight=False)
    if not console.is_terminal:  # piped: the table unfolded
        console = Console(highlight=False, width=400)
    console.print(table(result))
    for line in notes(result):
        typer.echo(line)
