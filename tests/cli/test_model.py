"""``musicsearch model fetch`` and the offline dead end, as a user meets them: the one-line
error names the fetch command; the fetched folder indexes and answers queries with --model."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()


def test_offline_without_the_model_the_error_names_the_fetch_command(library, tmp_path, monkeypatch, one_error_line):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # this machine has no Hub: the same answer, without waiting
    r = runner.invoke(app, ["index", str(library), "--index", str(tmp_path / "idx"), "-q"])
    assert one_error_line(r) == (
        "Error: could not load model 'laion/larger_clap_general': it is not cached and the Hub cannot be "
        "reached (offline?); on a machine with a network run 'musicsearch model fetch laion/larger_clap_general "
        "--to ~/clap', copy that folder to ~/clap here and pass --model ~/clap (Python: Settings(model='~/clap'))"
    )
    r = runner.invoke(app, ["model", "fetch", "--to", str(tmp_path / "clap")])
    assert one_error_line(r).startswith(
        "Error: cannot fetch 'laion/larger_clap_general': the Hub cannot be reached from this machine (offline?)"
    )
    assert not (tmp_path / "clap").exists()


def test_a_fetched_folder_indexes_and_answers_with_model(tiny_model, library, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("MUSICSEARCH_NO_MODEL_CHECK", "1")  # random weights look collapsed
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["model", "fetch", str(tiny_model), "--to", "clap"])
    assert r.exit_code == 0, r.output
    folder = tmp_path / "clap"
    assert r.output.startswith(f"Fetched {tiny_model} into {folder} (") and r.output.rstrip().endswith(
        f"MB); use it with --model {folder}"
    )
    r = runner.invoke(app, ["index", str(library), "--index", "./idx", "--model", "clap", "-q"])
    assert r.exit_code == 0, r.output
    r = runner.invoke(app, ["query", "a steady tone", "--index", "./idx", "-k", "3", "--json"])
    assert r.exit_code == 0, r.output
    assert len(json.loads(r.output)) == 3
    info = json.loads(runner.invoke(app, ["info", "--index", "./idx", "--json"]).output)
    assert info["model"] == str(folder)
