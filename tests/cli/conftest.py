"""What the CLI tests share: an index built through the command with the tiny model
(``indexed``) or with the fake embedder over the catalog (``idx``), and the checks of a
command's output."""

import json

import pytest
from typer.testing import CliRunner

import musicsearch.api
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


@pytest.fixture
def idx(tmp_path, catalog, monkeypatch, fake_embedder_cls):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    path = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(catalog), "--index", str(path), "-q"])
    assert r.exit_code == 0, r.output
    return str(path)


@pytest.fixture
def run_json():
    """Runs a command with --json: its exit code must be 0; returns the parsed output."""

    def run(*args):
        r = runner.invoke(app, [*args, "--json"])
        assert r.exit_code == 0, r.output
        return json.loads(r.output)

    return run


@pytest.fixture
def one_error_line():
    """Checks that a command failed with one ``Error: ...`` line on stderr, and returns it."""

    def check(r):
        assert r.exit_code == 1
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("Error: ")
        assert "Traceback" not in r.output
        return lines[0]

    return check
