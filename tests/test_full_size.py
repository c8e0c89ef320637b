"""The exact laion/larger_clap_general architecture (random weights, 193,913,882 parameters):
our pipeline against the reference path, and the ONNX graphs against torch. Slow (builds a
776 MB model): run with `python -m pytest -m slow`."""

import numpy as np
import pytest
import torch
from transformers import ClapModel, ClapProcessor

from musicsearch.audio import repeatpad
from musicsearch.clap import ClapEmbedder
from musicsearch.randmodel import build_random_clap

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def full_model(tmp_path_factory):
    return build_random_clap(tmp_path_factory.mktemp("full") / "clap", "full", seed=0)


def test_parameter_count(full_model):
    assert sum(p.numel() for p in ClapModel.from_pretrained(full_model).parameters()) == 193_913_882


def test_full_size_matches_reference_and_onnx(full_model, tmp_path, noise, tone):
    model, proc = ClapModel.from_pretrained(full_model).eval(), ClapProcessor.from_pretrained(full_model)
    clips = [noise(10, seed=3), tone(440, 10), tone(1000, 2.5)]
    windows = np.stack([c if len(c) == 480_000 else repeatpad(c, 480_000) for c in clips])
    ours = ClapEmbedder(str(full_model), device="cpu")
    torch_vecs = ours.embed_windows(windows)
    for clip, vec in zip(clips, torch_vecs):
        with torch.no_grad():
            ref = model.get_audio_features(
                **proc(audio=[clip], sampling_rate=48_000, return_tensors="pt")
            ).pooler_output[0]
        assert float(np.dot(ref.numpy(), vec)) >= 0.99999
    assert ours.use_onnx_audio() >= 0.9999
    assert (np.sum(ours.embed_windows(windows) * torch_vecs, axis=1) >= 0.9999).all()
    cosine, kind = ours.prepare_text_onnx()
    assert cosine >= (0.999 if kind == "int8" else 0.9999)
