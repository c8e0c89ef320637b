"""``musicsearch classify|tag``: zero-shot labels for one track, or for the whole library."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_DIR
from ..search.classify import read_label_file
from ..tag_writer import write_tags as write_file_tags
from .options import DeviceOpt, IndexOpt, JsonOpt, NoCheckOpt, settings
from .output import echo_json


def classify(
    target: Annotated[str, typer.Argument(help="Indexed track (path or unique part of path/title) or any audio file.")],
    labels: Annotated[str, typer.Option("--labels", metavar="LABELS", help="Candidate labels, comma separated.")],
    template: Annotated[
        str,
        typer.Option(
            "--template", metavar="TEMPLATE", help="Prompt around each label, e.g. 'This audio is a {} song.'"
        ),
    ] = "{}",
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    as_json: JsonOpt = False,
) -> None:
    """Zero-shot classify TARGET among LABELS."""
    with MusicIndex(settings=settings(index, device=device, model_check=not no_model_check)) as idx:
        result = idx.classify(target, labels, template)
    if as_json:
        echo_json(
            {
                "labels": [{"label": lab, "score": round(p, 6)} for lab, p in result.labels],
                "top_label": result.top_label,
                "confidence": round(result.confidence, 6),
            },
            ensure_ascii=False,
        )
        return
    width = max(len(lab) for lab, _ in result.labels)
    for lab, p in result.labels:
        typer.echo(f"{lab:<{width}}  {p:6.1%}  {'█' * int(round(p * 30))}")
    typer.echo(f"top: {result.top_label} ({result.confidence:.1%})")


def tag(
    top: Annotated[int, typer.Option("--top", min=1, max=20, help="Labels kept per vocabulary.")] = 3,
    labels_file: Annotated[
        Optional[Path], typer.Option("--labels-file", metavar="FILE", help="Your own labels, one per line.")
    ] = None,
    retag: Annotated[bool, typer.Option("--retag", help="Tag every track again, not only new ones.")] = False,
    write_tags: Annotated[
        bool,
        typer.Option(
            "--write-tags",
            help="Also write each track's tempo and key into its file's own tags (BPM, key), atomically.",
        ),
    ] = False,
    index: IndexOpt = DEFAULT_INDEX_DIR,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Tag tracks with their top genre, mood and instrument labels (usable as --tag filters);
    with --write-tags, write tempo and key into the audio files too (never without it)."""
    config = settings(index, device=device, model_check=not no_model_check)
    extra = read_label_file(labels_file) if labels_file else []
    with MusicIndex(settings=config) as idx:
        n = idx.tag(top=top, extra_labels=extra, retag=retag)
        typer.echo(f"Tagged {n} tracks." if n else "Every track is tagged already (--retag to tag them again).")
        if write_tags:
            store = idx.context.store()
            report = write_file_tags(store, store.tracks(int(i) for i in store.filtered_ids()))
            typer.echo(
                f"Wrote tempo and key into {len(report.written)} files ({report.unchanged} already had them, "
                f"{len(report.failed)} failed)."
            )
            for path, reason in report.failed:
                typer.echo(f"  {path}: {reason}", err=True)
