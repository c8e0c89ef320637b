import numpy as np
import pytest
import torch
from conftest import FakeEmbedder, noise, tone
from transformers import ClapModel, ClapProcessor

from musicsearch.audio import repeatpad
from musicsearch.embed import (
    ClapEmbedder,
    check_not_collapsed,
    mean_pairwise_cosine,
    pick_device,
)
from musicsearch.errors import CollapsedModel, ModelLoadError

W = 480_000


@pytest.fixture(scope="module")
def reference(tiny_model):
    return ClapModel.from_pretrained(tiny_model).eval(), ClapProcessor.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def embedder(tiny_model):
    return ClapEmbedder(str(tiny_model), device="cpu")


def test_loads_config_facts(embedder, tiny_model):
    assert embedder.model_id == str(tiny_model.resolve())
    assert embedder.dim == 16 and embedder.window_seconds == 10.0


def test_window_embeddings_equal_reference_path(embedder, reference):
    model, proc = reference
    clips = [noise(10, seed=1), tone(440, 10), np.zeros(W, np.float32), tone(1000, 2.5)]
    windows = np.stack([c if len(c) == W else repeatpad(c, W) for c in clips])
    ours = embedder.embed_windows(windows)
    for clip, vec in zip(clips, ours):
        inputs = proc(audio=[clip], sampling_rate=48_000, return_tensors="pt")
        with torch.no_grad():
            ref = model.get_audio_features(**inputs).pooler_output[0].numpy()
        assert float(np.dot(ref, vec)) >= 0.99999
        assert abs(np.linalg.norm(vec) - 1) < 1e-5


def test_text_embeddings_equal_reference_path(embedder, reference):
    model, proc = reference
    texts = ["solo piano, slow and sad", "upbeat electronic with a strong bassline " * 30]
    ours = embedder.embed_texts(texts)
    batch = proc.tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        ref = model.get_text_features(**batch).pooler_output.numpy()
    assert (np.sum(ours * ref, axis=1) >= 0.99999).all()


def test_missing_folder_and_offline_hub_id_are_one_line_errors(tmp_path, monkeypatch):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    with pytest.raises(ModelLoadError, match="cannot load model from folder"):
        ClapEmbedder(str(bad))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        ClapEmbedder("someone/no-such-clap-model")
    assert "could not be downloaded" in str(err.value) or "cannot be reached" in str(err.value)
    assert "--model also accepts a local folder" in str(err.value)
    assert "\n" not in str(err.value)


class Collapsed(FakeEmbedder):
    model_id = "collapsed"

    def embed_texts(self, texts):
        v = np.ones((len(texts), self.dim), np.float32)
        v += np.random.default_rng(0).standard_normal(v.shape).astype(np.float32) * 1e-3
        return v / np.linalg.norm(v, axis=1, keepdims=True)


def test_collapse_guard():
    with pytest.raises(CollapsedModel, match="same vector for any text") as err:
        check_not_collapsed(Collapsed())
    assert "laion/larger_clap_general" in str(err.value)
    assert check_not_collapsed(FakeEmbedder()) < 0.95


def test_random_weight_clap_looks_collapsed(embedder):
    # why random-weight test models must opt out of the guard
    from musicsearch.embed import PROBE_PROMPTS

    assert mean_pairwise_cosine(embedder.embed_texts(list(PROBE_PROMPTS))) > 0.95


def test_pick_device():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        assert pick_device("auto") in {"mps", "cpu"}


def test_the_text_tower_is_prepared_in_a_child_process_whose_warnings_reach_this_one(tiny_model, monkeypatch, caplog):
    import musicsearch.onnx_towers as towers

    monkeypatch.setattr(towers, "MIN_COSINE_INT8", 1.01)  # the forked child sees it: its fallback WARNING comes back
    e = ClapEmbedder(str(tiny_model), device="cpu")
    assert e.start_text_preparation() and e.text_preparing() and not e.start_text_preparation()  # one at a time
    with caplog.at_level("WARNING"):
        cosine, kind = e.prepare_text_onnx()
    assert kind == "fp32" and cosine >= towers.MIN_COSINE and "strays from torch" in caplog.text
    assert not e.text_preparing() and e.text_prepared() and e.prepared.facts()["text_onnx"] == "fp32"
    assert not e.start_text_preparation()  # prepared: nothing to start
    assert not list(e.prepared.folder.glob("tmp-*"))


def test_a_child_that_dies_hangs_or_disagrees_leaves_queries_on_torch(tiny_model, monkeypatch):
    import os
    import time

    import musicsearch.embed as embed
    import musicsearch.onnx_towers as towers

    monkeypatch.setattr(towers, "export_text_tower", lambda *args: os._exit(3))  # would end pytest if run here
    dies = ClapEmbedder(str(tiny_model), device="cpu")
    assert dies.start_text_preparation()
    with pytest.raises(ModelLoadError, match=r"died \(exit code 3\); queries stay on torch"):
        dies.prepare_text_onnx()
    monkeypatch.setattr(towers, "export_text_tower", lambda *args: time.sleep(120))
    monkeypatch.setattr(embed, "TEXT_CHILD_TIMEOUT_S", 1.0)
    hangs = ClapEmbedder(str(tiny_model), device="cpu")
    assert hangs.start_text_preparation()
    with pytest.raises(ModelLoadError, match=r"took over 1 s and was stopped \(exit code -9\)"):
        hangs.prepare_text_onnx()
    monkeypatch.undo()
    monkeypatch.setattr(towers, "MIN_COSINE", 1.01)  # no graph can pass
    monkeypatch.setattr(towers, "MIN_COSINE_INT8", 1.01)
    refused = ClapEmbedder(str(tiny_model), device="cpu")
    assert refused.start_text_preparation()
    with pytest.raises(ModelLoadError, match="text tower disagrees"):
        refused.prepare_text_onnx()
    assert not refused.text_prepared() and not refused.prepared.has(towers.ONNX_FILE)
    assert not list(refused.prepared.folder.glob("tmp-*"))
