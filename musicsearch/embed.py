"""The model contract: embedders turn 10-s windows of 48 kHz audio and text prompts into
L2-normalized vectors of one shared space. Indexing and search see only ``Embedder`` and
``TextEmbedder``; ``clap.ClapEmbedder`` implements them for a CLAP checkpoint,
``onnx_towers.OnnxTextEncoder`` for a prepared text graph, and anything with the same shape
can stand in (tests use a fake one). The collapse guard's probe (``PROBE_PROMPTS``,
``COLLAPSE_THRESHOLD``) applies to any text embedder.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol, runtime_checkable

import numpy as np

# Unrelated prompts: a working CLAP spreads them out (mean cosine well below 0.9); a collapsed
# one (the Hub's laion/larger_clap_music) maps them all to one vector (about 0.9993).
PROBE_PROMPTS = (
    "a dog barking",
    "solo classical piano, slow and sad",
    "heavy metal with distorted electric guitars",
    "rain falling on a tin roof",
    "upbeat electronic dance music with a strong bassline",
    "a crowd cheering in a stadium",
    "a man speaking on the telephone",
    "jazz saxophone improvisation",
)
COLLAPSE_THRESHOLD = 0.95


@runtime_checkable
class TextEmbedder(Protocol):
    """What a search needs from a model: prompts -> unit vectors in the index's space.

    Implemented by ``clap.ClapEmbedder`` (torch text tower) and ``onnx_towers.OnnxTextEncoder``
    (the prepared ONNX graph; no torch import)."""

    model_id: str
    revision: str | None
    dim: int

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale_a): CLAP's temperature for audio-to-text logits."""
        ...

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """n prompts -> (n, dim) unit vectors."""
        ...


@runtime_checkable
class Embedder(TextEmbedder, Protocol):
    """What an index run needs from a model, on top of ``TextEmbedder``.

    Audio goes through two calls: ``prepare`` runs wherever decoding runs (a decode thread,
    a worker process, a remote worker) and must return something picklable; ``embed`` runs
    where the model is, on batches that mix windows of several files.
    """

    window_seconds: float

    @property
    def device(self) -> str:
        """Where ``embed`` runs: ``cpu``, ``cuda``, ``mps``..."""
        ...

    def prepare(self, waves: np.ndarray) -> np.ndarray:
        """(batch, window samples) float32 at 48 kHz -> what ``embed`` takes (a batch)."""
        ...

    def embed(self, prepared: np.ndarray) -> np.ndarray:
        """A batch from ``prepare`` (or several concatenated) -> (batch, dim) unit vectors."""
        ...


def embed_windows(embedder: Embedder, waves: np.ndarray) -> np.ndarray:
    """(batch, window samples) -> (batch, dim) unit vectors: ``prepare`` then ``embed``."""
    return embedder.embed(embedder.prepare(np.atleast_2d(waves)))


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over all distinct pairs of rows (rows assumed unit length)."""
    sims = vectors @ vectors.T
    n = len(vectors)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))
