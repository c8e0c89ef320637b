"""musicsearch info."""

import json

from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()


def test_info(indexed, tiny_model):
    idx, _ = indexed
    r = runner.invoke(app, ["info", "--index", str(idx), "--json"])
    data = json.loads(r.output)
    assert (data["tracks"], data["windows"], data["failures"], data["dim"]) == (4, 8, 1, 16)
    assert data["model"] == str(tiny_model.resolve())
    r = runner.invoke(app, ["info", "--index", str(idx)])
    assert "tracks:   4" in r.output and "16-d" in r.output


def test_env_var_names_the_index(indexed, monkeypatch):
    idx, _ = indexed
    monkeypatch.setenv("MUSICSEARCH_INDEX", str(idx))
    r = runner.invoke(app, ["info", "--json"])
    assert json.loads(r.output)["tracks"] == 4


def test_a_waived_model_check_is_remembered_and_shown(tmp_path, library, tiny_model, monkeypatch, one_error_line):
    """README's own commands: an index built with --no-model-check needs no flag on later
    queries and index runs; info says the check was waived."""
    monkeypatch.delenv("MUSICSEARCH_NO_MODEL_CHECK", raising=False)  # random weights look collapsed
    idx = str(tmp_path / "idx")
    r = runner.invoke(
        app, ["index", str(library), "--index", idx, "--model", str(tiny_model), "--no-model-check", "-q"]
    )
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["query", "anything", "--index", idx, "-k", "2", "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.stdout)) == 2
    r = runner.invoke(app, ["index", str(library), "--index", idx, "-q"])
    assert r.exit_code == 0 and "4 unchanged" in r.stdout, r.output
    r = runner.invoke(app, ["info", "--index", idx])
    assert "16-d; collapse check waived (--no-model-check)" in r.stdout
    assert json.loads(runner.invoke(app, ["info", "--index", idx, "--json"]).stdout)["model_check"] == "skipped"
    other = tmp_path / "other"  # a new index still checks its model
    line = one_error_line(
        runner.invoke(app, ["index", str(library), "--index", str(other), "--model", str(tiny_model)])
    )
    assert "same vector for any text" in line


def test_info_of_a_checked_model(idx, run_json):
    assert run_json("info", "--index", idx)["model_check"] == "passed"
    assert "waived" not in runner.invoke(app, ["info", "--index", idx]).stdout
