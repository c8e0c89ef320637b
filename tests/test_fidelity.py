"""End to end against the reference path, with a model that can tell.

A music-like stereo 44.1 kHz FLAC is indexed through the public API (walk, decode, downmix,
resample to 48 kHz, windows, log-mel, audio tower, SQLite). Each stored window vector must
equal, within cosine 0.99999, what transformers' own path gives on the same 10 s: the file
decoded independently (soundfile, channel mean, soxr), cut at the stored start, through
``ClapProcessor`` and ``ClapModel.get_audio_features``. Both audio towers are checked: torch
and onnxruntime.

The model is the sharpened ``small`` random CLAP (musicsearch/randmodel.py): the tiny one
barely reacts to its input, so a +1 dB error in the log-mel passed a check like this one.
The same comparison is shown to fail on a window shifted by 100 ms and on a log-mel biased
by +0.1 dB, and different windows of the track are far apart.
"""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import soxr
import torch
from transformers import ClapModel, ClapProcessor

from musicsearch import MusicIndex, Settings
from musicsearch.randmodel import build_random_clap
from musicsearch.store import Store

SR = 48_000
WINDOW = 10 * SR
THRESHOLD = 0.99999
SHIFT = SR // 10  # 100 ms
BIAS_DB = 0.1
FILE_RATE = 44_100


def music(seconds: float = 25.0, sr: int = FILE_RATE, seed: int = 0) -> np.ndarray:
    """Stereo (frames, 2) float32: a plucked note every half second from a pentatonic set
    (left: the note and its octave; right: its fifth), a bass drone and a little noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * sr)
    t = np.arange(n) / sr
    out = np.zeros((n, 2))
    notes = [220.0, 247.5, 277.2, 330.0, 370.0, 440.0]
    step = sr // 2
    for a in range(0, n, step):
        f = notes[rng.integers(len(notes))]
        u = t[a : a + step] - t[a]
        env = np.exp(-4 * u)
        out[a : a + step, 0] += env * (0.3 * np.sin(2 * np.pi * f * u) + 0.1 * np.sin(4 * np.pi * f * u))
        out[a : a + step, 1] += env * 0.25 * np.sin(2 * np.pi * 1.5 * f * u)
    out += 0.08 * np.sin(2 * np.pi * 55 * t)[:, None]
    out += 0.02 * rng.standard_normal((n, 2))
    return out.astype(np.float32)


@pytest.fixture(scope="module")
def small_model(tmp_path_factory) -> Path:
    return build_random_clap(tmp_path_factory.mktemp("models") / "small-clap", "small", seed=0)


@pytest.fixture(scope="module")
def song(tmp_path_factory, write_audio) -> Path:
    return write_audio(tmp_path_factory.mktemp("lib") / "song.flac", music(), FILE_RATE)


@pytest.fixture(scope="module")
def reference(small_model):
    """(model, processor) loaded straight from transformers."""
    return ClapModel.from_pretrained(small_model).eval(), ClapProcessor.from_pretrained(small_model)


@pytest.fixture(scope="module")
def samples(song) -> np.ndarray:
    """The song decoded independently of musicsearch: 48 kHz mono float32."""
    data, rate = sf.read(str(song), dtype="float32", always_2d=True)
    assert (rate, data.shape[1]) == (FILE_RATE, 2)
    return soxr.resample(data.mean(axis=1), rate, SR)


@pytest.fixture(scope="module")
def features_at(reference, samples):
    """start (samples) -> the processor's log-mel of the 10 s from there (cached: both
    towers' checks ask for the same windows)."""
    _, proc = reference

    @functools.cache
    def features(start: int) -> torch.Tensor:
        wave = samples[start : start + WINDOW]
        assert len(wave) == WINDOW  # never let the processor crop (its rand_trunc is random)
        return proc(audio=[wave], sampling_rate=SR, return_tensors="pt")["input_features"]

    return features


def reference_vector(reference, features: torch.Tensor) -> np.ndarray:
    model, _ = reference
    with torch.no_grad():
        return model.get_audio_features(input_features=features).pooler_output[0].numpy()


@pytest.fixture(scope="module", params=["torch", "onnx"])
def stored(request, small_model, song, tmp_path_factory):
    """Index the song with one audio tower; returns (starts, ends, vectors) as stored, and
    the number of onnxruntime runs of the audio tower during indexing."""
    import onnxruntime

    tower = request.param
    runs = []
    original = onnxruntime.InferenceSession.run

    def counting_run(self, output_names, input_feed, *args, **kwargs):
        if "input_features" in input_feed:
            runs.append(len(input_feed["input_features"]))
        return original(self, output_names, input_feed, *args, **kwargs)

    mp = pytest.MonkeyPatch()
    mp.setenv("MUSICSEARCH_CACHE", str(tmp_path_factory.mktemp("cache")))
    mp.setattr(onnxruntime.InferenceSession, "run", counting_run)
    try:
        folder = tmp_path_factory.mktemp(f"index-{tower}")
        settings = Settings(
            model=str(small_model),
            device="cpu",
            model_check=False,  # random weights
            full=True,
            onnx_audio=tower == "onnx",
            fast_queries=False,
        )
        with MusicIndex(folder, settings=settings) as index:
            report = index.index(song.parent)
    finally:
        mp.undo()
    assert len(report.added) == 1 and not report.failed and report.windows == 3
    store = Store(folder)
    try:
        (track_id,) = (int(i) for i in store.track_vectors()[0])
        starts, ends, vectors = store.window_vectors([track_id])[track_id]
    finally:
        store.close()
    return tower, starts, ends, vectors, sum(runs)


def test_windows_cover_the_track(stored):
    _, starts, ends, vectors, _ = stored
    assert starts.tolist() == [0.0, 10.0, 15.0] and ends.tolist() == [10.0, 20.0, 25.0]
    assert vectors.shape == (3, 32)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)


def test_the_asked_tower_embedded_the_windows(stored):
    tower, *_, onnx_windows = stored
    if tower == "onnx":  # the song's three windows, plus any the export checked the graph on
        assert onnx_windows >= 3
    else:
        assert onnx_windows == 0


def test_stored_vectors_equal_the_reference_path(stored, reference, features_at):
    _, starts, _, vectors, _ = stored
    for start, vec in zip(starts, vectors):
        ref = reference_vector(reference, features_at(int(round(start * SR))))
        assert float(ref @ vec) >= THRESHOLD


def test_the_check_sees_a_100_ms_shift(stored, reference, features_at, samples):
    _, starts, _, vectors, _ = stored
    for start, vec in zip(starts, vectors):
        s = int(round(start * SR))
        s = s + SHIFT if s + SHIFT + WINDOW <= len(samples) else s - SHIFT
        assert float(reference_vector(reference, features_at(s)) @ vec) < THRESHOLD


def test_the_check_sees_a_0_1_db_bias_in_the_log_mel(stored, reference, features_at):
    _, starts, _, vectors, _ = stored
    for start, vec in zip(starts, vectors):
        biased = features_at(int(round(start * SR))) + BIAS_DB
        assert float(reference_vector(reference, biased) @ vec) < THRESHOLD


def test_windows_of_the_track_are_far_apart(stored):
    *_, vectors, _ = stored
    cos = vectors @ vectors.T
    assert cos[np.triu_indices(len(vectors), 1)].max() < 0.99
