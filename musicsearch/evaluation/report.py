"""What an evaluation shows: a table with a row per combination (each metric with its 95 %
interval), the same as JSON, and a per-query CSV (each caption under each row: the rank of its
clip and the clips ranked first) for looking at the failures."""

from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any

from rich.table import Table

from .datasets import count
from .metrics import LABELS, NAMES, Estimate
from .runner import EvalResult

ROW_FIELDS = ("model", "windows", "by", "prompts")
QUERY_COLUMNS = ("model", "windows", "by", "prompts", "caption_id", "caption", "clip", "rank", "top_hits")


def _cell(name: str, e: Estimate) -> str:
    """``0.251`` over ``0.22-0.28`` (the interval); a median rank as a number of clips."""
    if math.isnan(e.value):
        return "-"
    rank = name.endswith("median_rank")
    shown = f"{e.value:g}" if rank else f"{e.value:.3f}"
    if e.low is None or e.high is None:
        return shown
    interval = f"{e.low:g}-{e.high:g}" if rank else f"{e.low:.2f}-{e.high:.2f}"
    return f"{shown}\n{interval}"


def table(result: EvalResult) -> Table:
    """One row per combination; each cell the metric over its 95 % interval."""
    t = Table(title=heading(result), show_lines=True)
    for name in ROW_FIELDS:
        t.add_column(name)
    for name in NAMES:
        t.add_column(LABELS[name], justify="right")
    for row in result.rows:
        t.add_row(row.model, row.windows, row.by, row.prompts, *(_cell(n, row.metrics[n]) for n in NAMES))
    return t


def heading(result: EvalResult) -> str:
    """What was measured, in one line."""
    queries = sum(1 for q in result.queries if q.row == 0)
    return f"{result.dataset.format}: {queries} captions of {len(result.clips)} clips"


def notes(result: EvalResult) -> list[str]:
    """The lines beside the table: clips missing or left out, and what each index embedded."""
    data = result.dataset
    out = []
    if data.missing:
        out.append(
            f"{count(len(data.missing), 'clip')} of {data.csv_path.name} missing from {data.audio} "
            f"({count(data.missing_captions, 'caption')} left out), e.g. {', '.join(data.missing[:3])}"
        )
    if result.failed:
        key, why = result.failed[0]
        out.append(f"{count(len(result.failed), 'clip')} could not be indexed, left out: e.g. {key}: {why}")
    for name, embedded in result.embedded.items():
        out.append(f"{name}: {embedded} clips embedded this run" if embedded else f"{name}: nothing to embed (cached)")
    return out


def _estimate(e: Estimate) -> dict[str, float | None]:
    def num(x: float | None) -> float | None:
        return None if x is None or math.isnan(x) else round(x, 6)

    return {"value": num(e.value), "low": num(e.low), "high": num(e.high)}


def to_json(result: EvalResult) -> dict[str, Any]:
    """The result as JSON-ready data: the dataset, the clips left out, and each row."""
    data = result.dataset
    return {
        "dataset": {
            "csv": str(data.csv_path),
            "format": data.format,
            "audio": str(data.audio),
            "clips": len(result.clips),
            "captions": sum(1 for q in result.queries if q.row == 0),
            "missing": list(data.missing),
            "missing_captions": data.missing_captions,
            "failed": [{"clip": k, "reason": why} for k, why in result.failed],
        },
        "embedded": result.embedded,
        "work_dir": str(result.work_dir),
        "rows": [
            {
                **{f: getattr(row, f) for f in ROW_FIELDS},
                "text_queries": row.metrics.text_queries,
                "audio_queries": row.metrics.audio_queries,
                "metrics": {n: _estimate(row.metrics[n]) for n in NAMES},
            }
            for row in result.rows
        ],
    }


def write_per_query(result: EvalResult, path: Path) -> int:
    """Each caption under each row as a CSV line (``QUERY_COLUMNS``; the top hits joined by
    `` | ``), worst rank first within a row; returns the number of lines written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    ordered = sorted(result.queries, key=lambda q: (q.row, -q.rank, q.caption.id))
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(QUERY_COLUMNS)
        for q in ordered:
            row = result.rows[q.row]
            named = [getattr(row, n) for n in ROW_FIELDS]
            writer.writerow([*named, q.caption.id, q.caption.text, q.caption.clip, q.rank, " | ".join(q.top)])
    return len(ordered)
