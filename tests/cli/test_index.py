"""musicsearch index: the run's summary, incremental runs, models refused in one line, what a
Ctrl-C, a folder without audio and half precision on a CPU say."""

import re

from typer.testing import CliRunner

import musicsearch.context
from musicsearch.cli import app
from musicsearch.config import AUDIO_EXTENSIONS

runner = CliRunner()
COUNTED = ", ".join(sorted(AUDIO_EXTENSIONS))


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
    line = one_error_line(r)  # the way out: the fetch command, and the folder passed with --model
    assert "'musicsearch model fetch nobody/nothing-here --to ~/clap'" in line and "pass --model ~/clap" in line
    assert not (tmp_path / "i").exists()


def test_ctrl_c_says_what_was_saved_and_the_rerun_resumes(tmp_path, library, monkeypatch, fake_embedder_cls):
    class Dies(fake_embedder_cls):  # Ctrl-C arrives during the third batch (the ETA's warm-up windows come alone)
        batches = 0

        def embed(self, waves):
            if len(waves) > 1:
                self.batches += 1
                if self.batches == 3:
                    raise KeyboardInterrupt
            return super().embed(waves)

    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: Dies())
    idx = tmp_path / "idx"
    args = ["index", str(library), "--index", str(idx), "--batch-size", "2", "--workers", "1", "-q"]
    r = runner.invoke(app, args)
    assert r.exit_code == 130 and "Traceback" not in r.output
    (line,) = r.stderr.splitlines()
    saved = int(
        re.fullmatch(
            rf"Interrupted: (\d) of 4 files were saved to {idx}; run the same command again to resume with the rest\.",
            line,
        ).group(1)
    )
    assert 0 < saved < 4
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    assert f"{4 - saved} added, 0 updated, 0 moved, 0 removed, {saved} unchanged, 0 failed" in r.stdout


def test_ctrl_c_before_embedding_says_the_index_is_as_it_was(tmp_path, library, monkeypatch):
    def interrupted(*a, **k):
        raise KeyboardInterrupt  # while the model loads

    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", interrupted)
    r = runner.invoke(app, ["index", str(library), "--index", str(tmp_path / "idx")])
    assert r.exit_code == 130
    assert r.stderr.splitlines()[-1] == (
        f"Interrupted before embedding started; {tmp_path / 'idx'} is as it was. Run the same command to start."
    )


def test_a_folder_without_audio_says_which_extensions_count(tmp_path, monkeypatch, one_error_line):
    def no_model(*a, **k):
        raise AssertionError("no model is loaded for a folder with nothing to index")

    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", no_model)
    empty = tmp_path / "empty"
    (empty / "art").mkdir(parents=True)
    (empty / "cover.jpg").write_bytes(b"\xff\xd8")
    (empty / "notes.txt").write_text("liner notes")
    idx = tmp_path / "idx"
    line = one_error_line(runner.invoke(app, ["index", str(empty), "--index", str(idx)]))
    assert line == f"Error: no audio files found in {empty}: the extensions that count are {COUNTED}"
    line = one_error_line(runner.invoke(app, ["index", str(empty / "notes.txt"), "--index", str(idx)]))
    assert line == f"Error: {empty / 'notes.txt'} is not an audio file: the extensions that count are {COUNTED}"
    assert not idx.exists()


def test_a_folder_emptied_since_the_last_run_removes_its_tracks(tmp_path, library, monkeypatch, fake_embedder_cls):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    idx = tmp_path / "idx"
    assert runner.invoke(app, ["index", str(library), "--index", str(idx), "-q"]).exit_code == 0
    for f in library.rglob("*"):
        if f.is_file():
            f.unlink()
    r = runner.invoke(app, ["index", str(library), "--index", str(idx), "-q"])
    assert r.exit_code == 0, r.output
    assert "0 added, 0 updated, 0 moved, 4 removed, 0 unchanged, 0 failed" in r.stdout


def test_half_precision_on_a_cpu_is_refused_in_one_line(tmp_path, library, monkeypatch, one_error_line):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", None)  # refused before any model
    for precision in ("bf16", "fp16"):
        args = ["index", str(library), "--index", str(tmp_path / "i"), "--device", "cpu", "--precision", precision]
        line = one_error_line(runner.invoke(app, args))
        assert line == (
            f"Error: --precision {precision} is for CUDA GPUs; this run embeds on cpu, where the audio tower "
            "runs fp32: leave --precision out"
        )
    assert not (tmp_path / "i").exists()
