"""``musicsearch eval`` end to end with the tiny model on a generated MusicCaps-style set:
a row per ranking and prompt form (two templates: each, and their ensemble), missing clips
named, the JSON and per-query CSV, nothing re-embedded on a second run; a dataset that is not
there is one line."""

from __future__ import annotations

import csv
import json

import pytest
from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()
TEMPLATES = ["This is a {} song.", "{} music"]
FORMS = ["captions", *TEMPLATES, "ensemble of 2"]


@pytest.fixture
def musiccaps(tmp_path, write_audio, tone):
    """Five 10-s clips named by ytid in audio/ beside the CSV, and a sixth row whose clip is missing."""
    root = tmp_path / "musiccaps"
    rows = [["ytid", "start_s", "end_s", "audioset_positive_labels", "aspect_list", "caption", "author_id"]]
    for i, freq in enumerate([220, 330, 440, 660, 990]):
        ytid = f"clip{i:02d}-abcd"  # 11 characters, as YouTube's
        write_audio(root / "audio" / f"{ytid}.wav", tone(freq, 10))
        rows.append([ytid, 30, 40, "/m/04rlf", "['tone']", f"A steady {freq} Hz tone, nothing else.", i])
    rows.append(["gone0000000", 0, 10, "/m/04rlf", "['rock']", "A rock band.", 9])
    with open(root / "musiccaps-public.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return root


def eval_args(musiccaps, tiny_model, *extra):
    args = ["eval", str(musiccaps), "--model", str(tiny_model), "--no-model-check", "--by", "track", "--by", "window"]
    for template in TEMPLATES:
        args += ["--template", template]
    return [*args, "--bootstrap", "50", *extra]


def test_eval_with_the_tiny_model_and_two_templates(musiccaps, tiny_model, tmp_path):
    first = runner.invoke(app, [*eval_args(musiccaps, tiny_model), "--per-query", str(tmp_path / "q.csv")])
    assert first.exit_code == 0, first.output
    lines = first.stdout.splitlines()
    assert "musiccaps: 5 captions of 5 clips" in lines[0]
    body = [line for line in lines if line.startswith("│") and "tiny-clap" in line]
    assert len(body) == 8  # 2 rankings x 4 prompt forms, each its own row
    assert [next(f for f in reversed(FORMS) if f in line) for line in body] == FORMS * 2
    assert [("window" in line) for line in body] == [False] * 4 + [True] * 4
    assert "1 clip of musiccaps-public.csv missing from" in first.stdout and "gone0000000" in first.stdout
    assert "5 clips embedded this run" in first.stdout
    with open(tmp_path / "q.csv", newline="") as f:
        per_query = list(csv.DictReader(f))
    assert len(per_query) == 8 * 5
    assert {int(q["rank"]) for q in per_query} <= set(range(1, 6))
    assert all(len(q["top_hits"].split(" | ")) == 3 for q in per_query)

    second = runner.invoke(app, [*eval_args(musiccaps, tiny_model), "--json", "--seed", "3"])
    assert second.exit_code == 0, second.output
    data = json.loads(second.stdout)
    assert list(data["embedded"].values()) == [0]  # every clip was indexed by the first run
    assert len(data["rows"]) == 8 and {r["prompts"] for r in data["rows"]} == set(FORMS)
    assert data["dataset"]["clips"] == 5 and data["dataset"]["missing"] == ["gone0000000"]
    for row in data["rows"]:
        r10 = row["metrics"]["t2a_r10"]
        assert r10["value"] == 1.0  # 5 clips: the right one is always in the top 10
        assert row["metrics"]["t2a_median_rank"]["value"] <= 5


def test_a_dataset_that_is_not_there_is_one_line(tmp_path, one_error_line):
    r = runner.invoke(app, ["eval", str(tmp_path / "song-describer")])
    line = one_error_line(r)
    assert "no dataset at" in line and "nothing is downloaded" in line


def test_an_audio_folder_that_is_not_there_is_one_line(musiccaps, tmp_path, one_error_line):
    r = runner.invoke(app, ["eval", str(musiccaps), "--audio", str(tmp_path / "nope")])
    assert "no audio folder at" in one_error_line(r)


def test_a_bad_template_or_format_is_one_line(musiccaps, one_error_line):
    r = runner.invoke(app, ["eval", str(musiccaps), "--template", "no slot"])
    assert "a template holds {} where the caption goes" in one_error_line(r)
    r = runner.invoke(app, ["eval", str(musiccaps), "--format", "coco"])
    assert "--format must be one of songdescriber, musiccaps, csv" in one_error_line(r)
