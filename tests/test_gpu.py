"""The GPU path: run for real where CUDA is available (those tests skip elsewhere, e.g. in
CI), plus the parts of it that a CPU can check (precision resolution and its check, the
chunked mel, what pickling ships)."""

import logging
import pickle
from collections.abc import Callable

import numpy as np
import pytest
import torch

from musicsearch import device
from musicsearch.clap import ClapEmbedder
from musicsearch.device import pick_device
from musicsearch.errors import ModelLoadError
from musicsearch.features import LogMel

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU here")


@pytest.fixture
def windows(tone, noise) -> Callable[[], np.ndarray]:
    """Three 10-s windows: noise, a 440 Hz tone, quiet noise over a 3 kHz tone."""
    return lambda: np.stack([noise(10, seed=1), tone(440, 10), noise(10, amp=0.05, seed=2) + tone(3000, 10)])


@pytest.mark.gpu
@cuda
def test_auto_device_picks_cuda():
    assert pick_device("auto") == "cuda"


@pytest.mark.gpu
@cuda
def test_cuda_embeddings_equal_cpu(tiny_model, noise, tone):
    waves = np.stack([noise(10, seed=1), tone(440, 10), np.zeros(480_000, np.float32)])
    cpu = ClapEmbedder(str(tiny_model), device="cpu").embed_windows(waves)
    gpu_embedder = ClapEmbedder(str(tiny_model), device="cuda", precision="fp32")
    assert gpu_embedder.features(waves).device.type == "cuda"  # the mel runs on the GPU
    gpu = gpu_embedder.embed_windows(waves)
    assert (np.sum(cpu * gpu, axis=1) >= 0.99999).all()
    texts = ["solo piano", "loud drums"]
    cpu_t = ClapEmbedder(str(tiny_model), device="cpu").embed_texts(texts)
    assert (np.sum(cpu_t * gpu_embedder.embed_texts(texts), axis=1) >= 0.99999).all()


@pytest.mark.gpu
@cuda
def test_batched_mel_on_the_device_equals_the_cpu_mel(tiny_model, windows):
    spec = ClapEmbedder(str(tiny_model), device="cpu").mel_spec
    on_gpu = LogMel(spec, "cuda")
    assert on_gpu.chunk > 1  # batched on the device
    x = windows()
    np.testing.assert_allclose(on_gpu(x).cpu().numpy(), LogMel(spec)(x).numpy(), atol=1e-3)


@pytest.mark.gpu
@cuda
def test_pinned_non_blocking_feed(tiny_model, windows):
    e = ClapEmbedder(str(tiny_model), device="cuda", precision="fp32")
    x = e._to_device(windows())
    assert x.device.type == "cuda" and e._pinned.is_pinned()
    np.testing.assert_array_equal(x.cpu().numpy(), windows())
    first = e._pinned
    e._to_device(windows()[:2])  # a smaller batch reuses the buffer
    assert e._pinned is first
    assert 1 <= e.device_batch(10_000) <= device.GPU_BATCH_CAP and e.device_batch(2) == 2


@pytest.mark.gpu
@cuda
def test_half_precision_is_checked_on_the_device(tiny_model, windows):
    e = ClapEmbedder(str(tiny_model), device="cuda", precision="auto")
    assert e.precision == ("bf16" if torch.cuda.is_bf16_supported() else "fp16")
    ref = ClapEmbedder(str(tiny_model), device="cuda", precision="fp32").embed_windows(windows())
    out = e.embed_windows(windows())  # the first batch with sound runs the check
    assert (np.sum(ref * out, axis=1) >= 0.9999).all()
    (note,) = e.take_notes()
    facts = e.prepared.facts()
    cosine = facts[f"audio_{e.precision}_cosine"] if e.precision != "fp32" else None
    assert ("cosine" in note) and (cosine is None or cosine >= device.PRECISION_MIN_COSINE)


# --- what a CPU can check -----------------------------------------------------------------


def test_half_precision_on_a_cpu_says_it_is_for_gpus(tiny_model, caplog):
    with caplog.at_level(logging.WARNING, "musicsearch"):
        e = ClapEmbedder(str(tiny_model), device="cpu", precision="bf16")
    assert e.precision == "fp32"
    (msg,) = [r.getMessage() for r in caplog.records]
    assert msg == "half precision (bf16) is only for CUDA GPUs; the audio tower runs fp32 on cpu"
    assert e.take_notes() == [msg] and e.take_notes() == []
    assert ClapEmbedder(str(tiny_model), device="cpu", precision="auto").precision == "fp32"
    with pytest.raises(ModelLoadError, match="unknown precision 'fp8'"):
        ClapEmbedder(str(tiny_model), device="cpu", precision="fp8")


@pytest.mark.parametrize("threshold,kept", [(0.5, "bf16"), (1.000001, "fp32")])
def test_precision_check_keeps_or_falls_back(tiny_model, monkeypatch, caplog, threshold, kept, windows):
    """The check itself, run on the CPU (torch autocast bf16): kept when the cosine clears the
    threshold, else fp32 with a WARNING; the cosine is recorded and told either way."""
    monkeypatch.setattr(device, "PRECISION_MIN_COSINE", threshold)
    e = ClapEmbedder(str(tiny_model), device="cpu")
    e.precision, e._precision_checked = "bf16", False
    feats = e.features(windows())
    with caplog.at_level(logging.WARNING, "musicsearch"):
        out = e.check_precision(feats)
    np.testing.assert_allclose(out, e._tower(feats, "fp32"), atol=1e-6)  # the fp32 vectors
    cosine = e.prepared.facts()["audio_bf16_cosine"]
    assert 0.99 < cosine < 1.0 and e.prepared.facts()["audio_bf16_device"] == "cpu"
    assert e.precision == kept and e._precision_checked
    (note,) = e.take_notes()
    assert f"{cosine:.6f}" in note
    # the fallback's WARNING, and only then (other WARNINGs, e.g. from a prepared-folder repair, are not it)
    assert bool([r for r in caplog.records if "stays fp32" in r.getMessage()]) == (kept == "fp32")


def test_chunked_mel_equals_one_window_at_a_time(tiny_model, windows):
    spec = ClapEmbedder(str(tiny_model), device="cpu").mel_spec
    assert LogMel(spec).chunk == 1  # a CPU keeps one window at a time
    x = windows()
    np.testing.assert_array_equal(LogMel(spec, chunk=2)(x).numpy(), LogMel(spec)(x).numpy())


def test_pickling_ships_only_what_prepare_needs(tiny_model, windows):
    e = ClapEmbedder(str(tiny_model), device="cpu")
    e.use_onnx_audio()  # a loaded tower (an onnxruntime session cannot be pickled)
    blob = pickle.dumps(e)
    assert len(blob) < 270_000  # the mel filters (513 x 64 float64, 263 KB) and a few names
    copy = pickle.loads(blob)
    assert copy._audio is None and copy._audio_model is None and copy.model_id == e.model_id
    np.testing.assert_array_equal(copy.prepare(windows()), e.prepare(windows()))
