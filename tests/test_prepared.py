"""A model prepared once per machine (musicsearch/prepared.py): where it lives, what makes it
stale, and two processes preparing one model at once."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import numpy as np
import pytest

from musicsearch.onnx_towers import AUDIO_ONNX_FILE, ONNX_FILE, TOKENIZER_FILE
from musicsearch.prepared import STALE_TMP_SECONDS, TMP_PREFIX, PreparedModel, cache_root, model_key


def test_cache_root_follows_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MUSICSEARCH_CACHE", str(tmp_path / "c"))
    assert cache_root() == tmp_path / "c"
    monkeypatch.delenv("MUSICSEARCH_CACHE")
    assert cache_root().name == "musicsearch"


def test_the_key_names_the_model_and_changes_with_its_files(tmp_path):
    folder = tmp_path / "my-model"
    folder.mkdir()
    (folder / "config.json").write_text("{}")
    key = model_key(str(folder), None)
    assert key.startswith("my-model-") and key == model_key(str(folder), None)
    assert model_key(str(folder), "v2") != key
    (folder / "config.json").write_text('{"changed": 1}')
    assert model_key(str(folder), None) != key  # a changed folder is prepared again
    assert model_key("laion/larger_clap_general", None).startswith("laion_larger_clap_general-")


def test_facts_merge_and_files_land_whole(tmp_path):
    prepared = PreparedModel("some/model", None, root=tmp_path)
    assert prepared.facts() == {} and not prepared.has("x.onnx")
    prepared.record(dim=512)
    prepared.record(logit_scale=33.4)
    assert prepared.facts() == {"dim": 512, "logit_scale": 33.4, "model": "some/model", "revision": None}
    with prepared.staging() as tmp:
        (tmp / "x.onnx").write_bytes(b"graph")
        assert not prepared.has("x.onnx")  # nothing visible until installed
        prepared.install(tmp, "x.onnx")
    assert prepared.has("x.onnx") and not list(prepared.folder.glob(TMP_PREFIX + "*"))


def test_stale_temp_folders_of_a_killed_export_are_removed(tmp_path):
    prepared = PreparedModel("some/model", None, root=tmp_path)
    old = prepared.ensure() / f"{TMP_PREFIX}killed"
    old.mkdir()
    (old / "half.onnx").write_bytes(b"half")
    recent = prepared.folder / f"{TMP_PREFIX}running"
    recent.mkdir()
    past = time.time() - STALE_TMP_SECONDS - 10
    os.utime(old, (past, past))
    prepared.ensure()
    assert not old.exists() and recent.exists()  # a running export's folder is left alone


PREPARE = """
import sys
from musicsearch.clap import ClapEmbedder
e = ClapEmbedder(sys.argv[1], device="cpu")
e.use_onnx_audio()
print(e.prepare_text_onnx()[1])
"""


def test_two_processes_preparing_one_model_both_end_up_correct(tmp_path, tiny_model, monkeypatch):
    env = dict(os.environ, MUSICSEARCH_CACHE=str(tmp_path / "cache"))
    procs = [
        subprocess.Popen([sys.executable, "-c", PREPARE, str(tiny_model)], env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    outs = [p.communicate(timeout=300)[0].strip() for p in procs]
    assert [p.returncode for p in procs] == [0, 0] and all(o in ("int8", "fp32") for o in outs)
    monkeypatch.setenv("MUSICSEARCH_CACHE", env["MUSICSEARCH_CACHE"])
    from musicsearch.clap import ClapEmbedder

    e = ClapEmbedder(str(tiny_model), device="cpu")
    assert e.prepared.folder.parent == tmp_path / "cache" / "prepared"
    assert e.prepared.has(AUDIO_ONNX_FILE, ONNX_FILE, TOKENIZER_FILE)
    assert not list(e.prepared.folder.glob(TMP_PREFIX + "*"))
    facts = e.prepared.facts()
    assert {"dim", "logit_scale", "pad_token_id", "text_onnx", "audio_onnx_cosine"} <= facts.keys()
    windows = np.random.default_rng(0).standard_normal((2, 480_000)).astype(np.float32) * 0.1
    reference = ClapEmbedder(str(tiny_model), device="cpu").embed_windows(windows)
    assert e.use_onnx_audio() is None  # the prepared graph is reused, not exported again
    assert (np.sum(e.embed_windows(windows) * reference, axis=1) >= 0.9999).all()


def test_a_damaged_prepared_graph_falls_back_and_is_prepared_again(tmp_path, tiny_model, caplog):
    from musicsearch.clap import ClapEmbedder

    e = ClapEmbedder(str(tiny_model), device="cpu")
    assert e.use_onnx_audio() is not None  # exported now
    e.prepared.path(AUDIO_ONNX_FILE).write_bytes(b"not a graph")
    again = ClapEmbedder(str(tiny_model), device="cpu")
    with caplog.at_level("WARNING"):
        assert again.use_onnx_audio() is not None  # exported again, with a warning
    assert "cannot be loaded" in caplog.text


PREPARED_RUN = """
import sys
import numpy as np
import pytest
from musicsearch.clap import ClapEmbedder
from musicsearch.engine import check_not_collapsed
e = ClapEmbedder(sys.argv[1], device="cpu")
print(e.use_onnx_audio())
windows = np.load(sys.argv[2])
np.save(sys.argv[3], e.embed(e.prepare(windows)))
score = check_not_collapsed(e)
loaded = sorted(m for m in ("torch", "transformers") if m in sys.modules)
print(e.dim, e.window_seconds, round(e.logit_scale, 4), round(score, 6), loaded)
"""


def test_a_prepared_machine_runs_without_torch_or_transformers(tmp_path, tiny_model, monkeypatch):
    """After one first run (facts recorded, both graphs exported), a new process builds the
    embedder, embeds windows and passes the collapse guard importing neither torch nor
    transformers, with the same vectors as the torch path."""
    from musicsearch.clap import ClapEmbedder
    from musicsearch.embed import mean_pairwise_cosine

    first = ClapEmbedder(str(tiny_model), device="cpu")
    windows = np.random.default_rng(1).standard_normal((3, 480_000)).astype(np.float32) * 0.1
    reference = first.embed_windows(windows)  # torch tower
    first.prepared.record(probe_mean_cosine=0.5)  # a pass (the tiny model itself looks collapsed)
    assert first.export_audio_graph() is not None and first.export_audio_graph() is None  # once
    first.prepare_text_onnx()
    facts = first.prepared.facts()
    assert {"dim", "mel", "logit_scale", "probe_mean_cosine", "audio_onnx_cosine"} <= facts.keys()
    np.save(tmp_path / "w.npy", windows)
    out = subprocess.run(
        [sys.executable, "-c", PREPARED_RUN, str(tiny_model), str(tmp_path / "w.npy"), str(tmp_path / "v.npy")],
        env=dict(os.environ),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split("\n")
    assert out[0] == "None"  # the prepared graph, not exported again
    assert out[1] == f"16 10.0 {round(first.logit_scale, 4)} 0.5 []"
    assert (np.sum(np.load(tmp_path / "v.npy") * reference, axis=1) >= 0.9999).all()
    assert mean_pairwise_cosine(reference) < 1.0  # the windows differ (the check has power)


def test_the_collapse_guard_is_recorded_once(tiny_model, monkeypatch):
    from musicsearch.clap import ClapEmbedder
    from musicsearch.engine import check_not_collapsed
    from musicsearch.errors import CollapsedModel

    e = ClapEmbedder(str(tiny_model), device="cpu")
    calls = []
    real = ClapEmbedder.embed_texts

    def counting(self, texts):
        calls.append(len(texts))
        return real(self, texts)

    monkeypatch.setattr(ClapEmbedder, "embed_texts", counting)
    for _ in range(2):  # a random-weight model is refused, from the record the second time
        with pytest.raises(CollapsedModel):
            check_not_collapsed(ClapEmbedder(str(tiny_model), device="cpu"))
    assert calls == [8] and e.prepared.facts()["probe_mean_cosine"] > 0.95


def test_damaged_prepared_preprocessing_reads_the_model_again(tiny_model, caplog):
    from musicsearch.clap import MEL_FILTERS_FILE, ClapEmbedder

    e = ClapEmbedder(str(tiny_model), device="cpu")
    good = e.mel_spec.mel_filters
    e.prepared.save_array(MEL_FILTERS_FILE, good[:10])
    with caplog.at_level("WARNING"):
        again = ClapEmbedder(str(tiny_model), device="cpu")
    assert "damaged" in caplog.text
    np.testing.assert_array_equal(again.mel_spec.mel_filters, good)  # read again and recorded
    np.testing.assert_array_equal(e.prepared.load_array(MEL_FILTERS_FILE), good)
