"""What an evaluation shows, from a result built here: the table's rows and cells, the JSON,
the per-query CSV (worst first, the top hits), and the lines about missing and failed clips."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
from rich.console import Console

from musicsearch.evaluation.datasets import Caption, Clip, Dataset
from musicsearch.evaluation.metrics import LABELS, NAMES, summarize
from musicsearch.evaluation.report import QUERY_COLUMNS, notes, table, to_json, write_per_query
from musicsearch.evaluation.runner import EvalResult, QueryResult, Row


@pytest.fixture
def result(tmp_path):
    clips = (Clip("a", tmp_path / "a.wav"), Clip("b", tmp_path / "b.wav"), Clip("c", tmp_path / "c.wav"))
    captions = (Caption("1", "a", "warm pads"), Caption("2", "b", "fast drums, loud"), Caption("3", "a", "pads"))
    data = Dataset(tmp_path / "set.csv", "musiccaps", tmp_path, clips, captions, ("zz", "yy"), 3)
    plain = summarize(np.array([1, 3, 12]), np.array([1, 2, 1]), resamples=0)
    booted = summarize(np.array([1, 3, 12]), np.array([1, 2, 1]), resamples=200, seed=1)
    rows = (Row("m", "6 max", "track", "captions", plain), Row("m", "6 max", "window", "This is {}.", booted))
    queries = tuple(
        QueryResult(row, cap, rank, top)
        for row in (0, 1)
        for cap, rank, top in zip(captions, (1, 3, 12), (("a", "b"), ("c", "a"), ("b", "c")))
    )
    return EvalResult(data, rows, queries, ("a", "b", "c"), {"m-w6": 3}, (("d", "soundfile: bad"),), tmp_path)


def test_table_has_a_row_per_combination(result):
    t = table(result)
    assert [c.header for c in t.columns] == ["model", "windows", "by", "prompts", *(LABELS[n] for n in NAMES)]
    assert t.row_count == 2
    cells = [list(c.cells) for c in t.columns]
    assert [cells[i][1] for i in range(4)] == ["m", "6 max", "window", "This is {}."]
    assert cells[4][0] == "0.333"  # R@1 without intervals
    assert cells[8][0] == "3"  # the median rank
    low, high = result.rows[1].metrics["t2a_r1"].low, result.rows[1].metrics["t2a_r1"].high
    assert cells[4][1] == f"0.333\n{low:.2f}-{high:.2f}"
    assert t.title == "musiccaps: 3 captions of 3 clips"
    console = Console(width=300, record=True)
    console.print(t)
    assert "T→A R@10" in console.export_text()


def test_json_holds_every_metric(result):
    data = json.loads(json.dumps(to_json(result)))
    assert data["dataset"] == {
        "csv": str(result.dataset.csv_path),
        "format": "musiccaps",
        "audio": str(result.dataset.audio),
        "clips": 3,
        "captions": 3,
        "missing": ["zz", "yy"],
        "missing_captions": 3,
        "failed": [{"clip": "d", "reason": "soundfile: bad"}],
    }
    assert data["embedded"] == {"m-w6": 3}
    assert [(r["by"], r["prompts"], r["text_queries"], r["audio_queries"]) for r in data["rows"]] == [
        ("track", "captions", 3, 3),
        ("window", "This is {}.", 3, 3),
    ]
    first = data["rows"][0]["metrics"]
    assert list(first) == list(NAMES)
    assert first["t2a_r5"] == {"value": round(2 / 3, 6), "low": None, "high": None}
    assert first["t2a_median_rank"]["value"] == 3.0
    assert data["rows"][1]["metrics"]["a2t_r1"]["low"] is not None


def test_per_query_csv_worst_first(result, tmp_path):
    out = tmp_path / "deep" / "per-query.csv"
    assert write_per_query(result, out) == 6
    with open(out, newline="", encoding="utf-8") as f:
        lines = list(csv.reader(f))
    assert lines[0] == list(QUERY_COLUMNS)
    assert lines[1] == ["m", "6 max", "track", "captions", "3", "pads", "a", "12", "b | c"]
    assert [line[7] for line in lines[1:4]] == ["12", "3", "1"]
    assert lines[2][5] == "fast drums, loud"
    assert {line[2] for line in lines[4:]} == {"window"}


def test_notes_name_missing_failed_and_cached(result):
    lines = notes(result)
    assert lines[0].startswith("2 clips of set.csv missing from") and "(3 captions left out), e.g. zz, yy" in lines[0]
    assert lines[1] == "1 clip could not be indexed, left out: e.g. d: soundfile: bad"
    assert lines[2] == "m-w6: 3 clips embedded this run"
    cached = EvalResult(result.dataset, result.rows, result.queries, result.clips, {"m-w6": 0})
    assert notes(cached)[-1] == "m-w6: nothing to embed (cached)"


def test_a_direction_without_queries_shows_a_dash(result):
    empty = summarize(np.array([1]), np.array([], np.int64), resamples=0)
    assert np.isnan(empty["a2t_r1"].value) and empty["a2t_r1"].low is None
    r = EvalResult(result.dataset, (Row("m", "1 max", "track", "captions", empty),), result.queries[:1], ("a",))
    assert list(table(r).columns[9].cells) == ["-"]
