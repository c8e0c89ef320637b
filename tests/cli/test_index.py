"""musicsearch index: the run's summary, incremental runs, models refused in one line."""

from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()


def test_index_summary(indexed):
    _, out = indexed
    assert "4 added, 0 updated, 0 moved, 0 removed, 0 unchanged, 1 failed" in out
    assert "broken.wav" in out and "8 windows" in out


def test_rerun_is_incremental(indexed, library, tiny_model):
    idx, _ = indexed
    r = runner.invoke(app, ["index", str(library), "--index", str(idx), "-q"])
    assert "0 added, 0 updated, 0 moved, 0 removed, 4 unchanged, 0 failed, 1 failed before" in r.output


def test_collapsed_model_is_refused_by_default(tmp_path, library, tiny_model, monkeypatch, one_error_line):
    monkeypatch.delenv("MUSICSEARCH_NO_MODEL_CHECK", raising=False)
    r = runner.invoke(app, ["index", str(library), "--index", str(tmp_path / "i"), "--model", str(tiny_model)])
    line = one_error_line(r)
    assert "same vector for any text" in line and "laion/larger_clap_general" in line


def test_offline_hub_model_is_one_line(tmp_path, library, monkeypatch, one_error_line):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    r = runner.invoke(app, ["index", str(library), "--index", str(tmp_path / "i"), "--model", "nobody/nothing-here"])
    assert "local folder" in one_error_line(r)
    assert not (tmp_path / "i").exists()
