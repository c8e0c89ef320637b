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
