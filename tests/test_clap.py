import numpy as np
import pytest
import torch
from transformers import ClapModel, ClapProcessor

from musicsearch.audio import repeatpad
from musicsearch.clap import ClapEmbedder
from musicsearch.embed import PROBE_PROMPTS, mean_pairwise_cosine

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


def test_window_embeddings_equal_reference_path(embedder, reference, noise, tone):
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


def test_random_weight_clap_looks_collapsed(embedder):
    # why random-weight test models must opt out of the guard
    assert mean_pairwise_cosine(embedder.embed_texts(list(PROBE_PROMPTS))) > 0.95
