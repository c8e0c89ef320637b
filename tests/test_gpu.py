"""The GPU path, run for real where CUDA is available (skipped elsewhere, e.g. in CI)."""

import numpy as np
import pytest
import torch
from conftest import noise, tone

from musicsearch.embed import ClapEmbedder, pick_device

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")]


def test_auto_device_picks_cuda():
    assert pick_device("auto") == "cuda"


def test_cuda_embeddings_equal_cpu(tiny_model):
    windows = np.stack([noise(10, seed=1), tone(440, 10), np.zeros(480_000, np.float32)])
    cpu = ClapEmbedder(str(tiny_model), device="cpu").embed_windows(windows)
    gpu_embedder = ClapEmbedder(str(tiny_model), device="cuda")
    assert gpu_embedder.features(windows).device.type == "cuda"  # the mel runs on the GPU
    gpu = gpu_embedder.embed_windows(windows)
    assert (np.sum(cpu * gpu, axis=1) >= 0.99999).all()
    texts = ["solo piano", "loud drums"]
    cpu_t = ClapEmbedder(str(tiny_model), device="cpu").embed_texts(texts)
    assert (np.sum(cpu_t * gpu_embedder.embed_texts(texts), axis=1) >= 0.99999).all()
