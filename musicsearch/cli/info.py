"""``musicsearch info``: what the index holds, and with ``--failures`` what went wrong."""

from __future__ import annotations

from typing import Annotated

import typer

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_DIR
from .options import IndexOpt, JsonOpt
from .output import echo_json


def info(
    index: IndexOpt = DEFAULT_INDEX_DIR,
    as_json: JsonOpt = False,
    failures: Annotated[
        bool,
        typer.Option("--failures", help="List the files that failed and why, and the tracks indexed with a warning."),
    ] = False,
) -> None:
    """Show what the index holds."""
    with MusicIndex(index) as idx:
        data = idx.info()
        kinds = idx.vector_indexes()
        musical = idx.context.store().musical_counts()
        failed = idx.failures() if failures else []
        warned = idx.warnings() if failures else []
    if as_json:
        payload = dict(data.__dict__)
        payload["vector_indexes"] = {k: dict(v.__dict__) for k, v in kinds.items()}
        payload["tempo_key"] = musical
        if failures:
            payload["failed"] = [{"path": p, "reason": r} for p, r in failed]
            payload["warnings"] = [{"path": p, "warning": w} for p, w in warned]
        echo_json(payload)
        return
    typer.echo(f"index:    {data.path}")
    typer.echo(f"tracks:   {data.tracks}")
    typer.echo(f"windows:  {data.windows} ({data.window_seconds:g} s each)")
    typer.echo(f"failures: {data.failures}")
    typer.echo(f"tempo:    {musical['bpm']} tracks ({musical['bpm_tags']} from their tags)")
    later = f"; {musical['unanalysed']} not analysed yet (the next index run does it)" if musical["unanalysed"] else ""
    typer.echo(f"key:      {musical['key']} tracks ({musical['key_tags']} from their tags){later}")
    waived = "; collapse check waived (--no-model-check)" if data.model_check == "skipped" else ""
    typer.echo(f"model:    {data.model}{'@' + data.revision if data.revision else ''} ({data.dim}-d{waived})")
    typer.echo(f"size:     {data.size_bytes / 1e6:.1f} MB")
    for kind, st in kinds.items():
        how = f"nprobe {st.nprobe}, re-rank {st.rerank}, R@10 {st.recall_at_10:.3f}"
        how = "exact" if st.family == "exact" else how
        typer.echo(f"index:    {kind}: {st.factory} ({how})")
    for path, reason in failed:
        typer.echo(f"  {path}: {reason}")
    for path, warning in warned:
        typer.echo(f"  warning {path}: {warning} (indexed as decoded)")
