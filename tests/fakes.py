"""The deterministic fake embedder, in a plain module because code outside pytest's fixtures
needs it by name: decode worker processes unpickle it, the scripts that tests run as
processes (``beet``, the CLI, a run to kill) import it, and embedders that workers must
unpickle subclass it at module level (tests/indexing/test_feed.py). Tests take it through the
``fake`` and ``fake_embedder_cls`` fixtures of conftest.py."""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

SR = 48_000
FAKE_DIM = 24


def band_of(freq: float) -> int:
    """Quarter-octave band above 100 Hz."""
    return int(np.clip(round(np.log2(max(freq, 1.0) / 100.0) * 4), 0, FAKE_DIM - 1))


def one_hot(i: int) -> np.ndarray:
    v = np.full(FAKE_DIM, 0.01, np.float32)
    v[i] = 1.0
    return v / np.linalg.norm(v)


class FakeEmbedder:
    """Deterministic stand-in for CLAP implementing the ``Embedder`` protocol: a window maps
    to the band of its dominant frequency; a prompt naming a frequency ("a 440 Hz tone")
    maps to that band. So "the right track ranks first" has a known answer."""

    model_id = "fake-embedder"
    revision = None
    dim = FAKE_DIM
    window_seconds = 10.0
    logit_scale = 10.0
    device = "fake"

    def __init__(self) -> None:
        self.windows_embedded = 0
        self.calls = 0

    def prepare(self, waves: np.ndarray) -> np.ndarray:
        return np.asarray(waves, np.float32)

    def embed(self, waves: np.ndarray) -> np.ndarray:
        self.calls += 1
        self.windows_embedded += len(waves)
        out = []
        for w in waves:
            spec = np.abs(np.fft.rfft(w))
            freq = float(np.argmax(spec[1:]) + 1) * SR / len(w)
            out.append(one_hot(band_of(freq)))
        return np.stack(out)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        out = []
        for t in texts:
            m = re.search(r"(\d+(?:\.\d+)?)\s*hz", t.lower())
            if m:
                out.append(one_hot(band_of(float(m.group(1)))))
            else:  # an unrelated prompt: a spread-out vector from its characters
                rng = np.random.default_rng(sum(map(ord, t)))
                v = rng.standard_normal(FAKE_DIM).astype(np.float32)
                out.append(v / np.linalg.norm(v))
        return np.stack(out)
