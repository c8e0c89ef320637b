import json
import re

import pytest
import typer.main
from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()


@pytest.fixture
def indexed(tmp_path, library, tiny_model, monkeypatch):
    monkeypatch.setenv("MUSICSEARCH_NO_MODEL_CHECK", "1")  # random weights look collapsed
    idx = tmp_path / "idx"
    (library / "broken.wav").write_bytes(b"RIFF....garbage")
    r = runner.invoke(app, ["index", str(library), "--index", str(idx), "--model", str(tiny_model), "-q"])
    assert r.exit_code == 0, r.output
    return idx, r.output


def test_index_summary(indexed):
    _, out = indexed
    assert "4 added, 0 updated, 0 moved, 0 removed, 0 unchanged, 1 failed" in out
    assert "broken.wav" in out and "8 windows" in out


def test_query_table(indexed):
    idx, _ = indexed
    r = runner.invoke(app, ["query", "solo piano, slow and sad", "--index", str(idx), "-k", "3"], terminal_width=200)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "score" in lines[0] and "match" in lines[0] and "path" in lines[0]
    body = [line for line in lines[2:] if line.strip()]
    assert len(body) == 3
    assert body[0].split()[0] == "1" and "0:" in body[0] and "–" in body[0]


def test_query_json(indexed, library):
    idx, _ = indexed
    r = runner.invoke(app, ["query", "warm analog synth pads", "--index", str(idx), "--json", "-k", "10"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert len(hits) == 4 and [h["rank"] for h in hits] == [1, 2, 3, 4]
    keys = {
        "rank",
        "score",
        "track_id",
        "path",
        "title",
        "artist",
        "album",
        "genre",
        "year",
        "duration",
        "segment_start",
        "segment_end",
    }
    assert keys <= set(hits[0])
    assert {h["path"] for h in hits} == {str(p) for p in library.rglob("t*.*")}
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    t150 = next(h for h in hits if h["title"] == "t150")
    assert t150["duration"] == 25 and t150["segment_end"] - t150["segment_start"] == 10


def test_info(indexed, tiny_model):
    idx, _ = indexed
    r = runner.invoke(app, ["info", "--index", str(idx), "--json"])
    data = json.loads(r.output)
    assert (data["tracks"], data["windows"], data["failures"], data["dim"]) == (4, 8, 1, 16)
    assert data["model"] == str(tiny_model.resolve())
    r = runner.invoke(app, ["info", "--index", str(idx)])
    assert "tracks:   4" in r.output and "16-d" in r.output


def test_rerun_is_incremental(indexed, library, tiny_model):
    idx, _ = indexed
    r = runner.invoke(app, ["index", str(library), "--index", str(idx), "-q"])
    assert "0 added, 0 updated, 0 moved, 0 removed, 4 unchanged, 0 failed, 1 failed before" in r.output


def test_env_var_names_the_index(indexed, monkeypatch):
    idx, _ = indexed
    monkeypatch.setenv("MUSICSEARCH_INDEX", str(idx))
    r = runner.invoke(app, ["info", "--json"])
    assert json.loads(r.output)["tracks"] == 4


def one_error_line(r):
    assert r.exit_code == 1
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: ")
    assert "Traceback" not in r.output
    return lines[0]


def test_user_errors_are_one_line(indexed, tmp_path, tiny_model):
    idx, _ = indexed
    assert "no index at" in one_error_line(runner.invoke(app, ["query", "x", "--index", str(tmp_path / "nothing")]))
    assert "empty query" in one_error_line(runner.invoke(app, ["query", "  ", "--index", str(idx)]))
    assert "no such file or folder" in one_error_line(
        runner.invoke(app, ["index", str(tmp_path / "nope"), "--index", str(idx)])
    )
    other = tmp_path / "other-model"
    import shutil

    shutil.copytree(tiny_model, other)
    assert "was built with model" in one_error_line(
        runner.invoke(app, ["query", "x", "--index", str(idx), "--model", str(other)])
    )
    assert "no index at" in one_error_line(runner.invoke(app, ["info", "--index", str(tmp_path / "nothing")]))


def test_collapsed_model_is_refused_by_default(tmp_path, library, tiny_model, monkeypatch):
    monkeypatch.delenv("MUSICSEARCH_NO_MODEL_CHECK", raising=False)
    r = runner.invoke(app, ["index", str(library), "--index", str(tmp_path / "i"), "--model", str(tiny_model)])
    line = one_error_line(r)
    assert "same vector for any text" in line and "laion/larger_clap_general" in line


def test_offline_hub_model_is_one_line(tmp_path, library, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = runner.invoke(app, ["index", str(library), "--index", str(tmp_path / "i"), "--model", "nobody/nothing-here"])
    assert "local folder" in one_error_line(r)
    assert not (tmp_path / "i").exists()


def test_every_command_has_help():
    commands = typer.main.get_command(app).commands  # the click group typer builds, sub-groups included
    assert len(commands) == len(app.registered_commands) + len(app.registered_groups)
    assert {"index", "query", "similar", "duplicates", "classify", "tag", "info", "serve"} <= set(commands)
    for name in commands:
        r = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert r.exit_code == 0, (name, r.output)
        assert re.search(rf"Usage: \S+ {name} \[OPTIONS\]", r.output), (name, r.output)
    r = runner.invoke(app, ["no-such-command", "--help"])  # what a broken one looks like
    assert r.exit_code == 2 and "No such command" in r.output


def test_the_command_freezes_the_collector_as_it_ends(monkeypatch, tmp_path):
    """The process ends after ``main``: its objects are frozen so that the exit's collections
    skip them (a fresh machine's first run: 1.1-1.3 s less), whatever the command's outcome."""
    import gc
    import sys

    from musicsearch.cli import main

    gc.unfreeze()
    try:
        monkeypatch.setattr(sys, "argv", ["musicsearch", "info", "--index", str(tmp_path / "none")])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 1 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
