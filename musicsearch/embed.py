"""Embedders turn 10-s windows of 48 kHz audio and text prompts into L2-normalized vectors
of one shared space.

``ClapEmbedder`` loads a CLAP checkpoint (Hub id or local folder) with ``from_pretrained`` and
keeps one tower per job: the audio tower for indexing, the text tower for queries, each loaded
on first use. Anything with the ``Embedder`` shape can stand in (tests use a fake one).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import DEFAULT_MODEL
from .errors import CollapsedModel, ModelLoadError

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
TEXT_MAX_TOKENS = 77


@runtime_checkable
class Embedder(Protocol):
    """What the indexer and the search need from a model."""

    model_id: str
    revision: str | None
    dim: int
    window_seconds: float

    def embed_windows(self, waves: np.ndarray) -> np.ndarray:
        """(batch, window samples) float32 at 48 kHz -> (batch, dim) unit vectors."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        """n prompts -> (n, dim) unit vectors."""


def pick_device(device: str = "auto") -> str:
    """``auto`` -> cuda, then mps, then cpu; anything else is returned as given."""
    if device != "auto":
        return device
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over all distinct pairs of rows (rows assumed unit length)."""
    sims = vectors @ vectors.T
    n = len(vectors)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


def check_not_collapsed(embedder: Embedder) -> float:
    """Embed the probe prompts and refuse a model that gives them all the same vector.

    Returns:
        The mean pairwise cosine of the probe prompts.

    Raises:
        CollapsedModel: the mean pairwise cosine is above ``COLLAPSE_THRESHOLD``.
    """
    score = mean_pairwise_cosine(embedder.embed_texts(list(PROBE_PROMPTS)))
    if score > COLLAPSE_THRESHOLD:
        raise CollapsedModel(
            f"model {embedder.model_id} produces the same vector for any text (mean cosine "
            f"{score:.4f} between unrelated prompts), as the Hub's laion/larger_clap_music does; "
            f"use --model {DEFAULT_MODEL}, or --no-model-check to use it anyway"
        )
    return score


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """Silence load reports (the unused tower's weights are expected to be 'unexpected')."""
    import logging

    from transformers.utils import logging as hf_logging

    level = hf_logging.get_verbosity()
    hub_logger = logging.getLogger("huggingface_hub")
    hub_level = hub_logger.level
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    hub_logger.setLevel(logging.ERROR)
    try:
        yield
    finally:
        hf_logging.set_verbosity(level)
        hf_logging.enable_progress_bar()
        hub_logger.setLevel(hub_level)


def resolve_model(model: str) -> str:
    """A local folder becomes its absolute path (so the index names it unambiguously);
    anything else is taken as a Hub id."""
    path = Path(model).expanduser()
    if path.is_dir():
        return str(path.resolve())
    return model


def _hub_reachable(timeout: float = 3.0) -> bool:
    """Whether the Hub endpoint answers a TCP connection (fails fast when offline, instead
    of the Hub client's ~25 s of retries)."""
    import os
    import socket
    from urllib.parse import urlparse

    if os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}:
        return False
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    try:
        socket.create_connection((url.hostname, url.port or (443 if url.scheme == "https" else 80)), timeout).close()
        return True
    except OSError:
        return False


def _load(loader: Any, model: str, revision: str | None, **kwargs: Any) -> Any:
    """``loader.from_pretrained(model)``: a local folder or the cache first, then the Hub."""

    def first_line(exc: BaseException) -> str:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0]

    with _quiet_transformers():
        if Path(model).is_dir():
            try:
                return loader.from_pretrained(model, **kwargs)
            except (OSError, ValueError, ImportError) as exc:
                raise ModelLoadError(f"cannot load model from folder {model}: {first_line(exc)}") from None
        try:
            return loader.from_pretrained(model, revision=revision, local_files_only=True, **kwargs)
        except (OSError, ValueError):
            pass
        if not _hub_reachable():
            raise ModelLoadError(
                f"could not load model {model!r}: it is not cached and the Hub cannot be reached (offline?); "
                "--model also accepts a local folder saved with save_pretrained"
            )
        try:
            return loader.from_pretrained(model, revision=revision, **kwargs)
        except (OSError, ValueError, ImportError) as exc:
            raise ModelLoadError(f"could not load model {model!r}: {first_line(exc)}") from None


def _read_logit_scale(model: str, revision: str | None) -> float:
    from transformers.utils import cached_file

    with _quiet_transformers():
        try:
            path = cached_file(
                model, "model.safetensors", revision=revision, _raise_exceptions_for_missing_entries=False
            )
        except OSError:
            path = None
        if path:
            from safetensors import safe_open

            with safe_open(path, framework="pt") as f:
                if "logit_scale_a" in f.keys():  # noqa: SIM118 (safe_open is not iterable)
                    return float(f.get_tensor("logit_scale_a").float().exp())
    from transformers import ClapModel  # sharded or .bin checkpoints: load it all once

    return float(_load(ClapModel, model, revision).logit_scale_a.exp())


class ClapEmbedder:
    """A CLAP checkpoint, one tower loaded per use.

    Args:
        model: Hub id or local folder.
        revision: Hub revision.
        device: ``auto`` or a torch device string.
    """

    def __init__(self, model: str = DEFAULT_MODEL, revision: str | None = None, device: str = "auto"):
        from transformers import ClapConfig, ClapFeatureExtractor

        from .features import MelSpec

        self.model_id = resolve_model(model)
        self.revision = revision
        self.device = pick_device(device)
        config = _load(ClapConfig, self.model_id, revision)
        if getattr(config.audio_config, "enable_fusion", False):
            raise ModelLoadError(f"model {self.model_id} uses feature fusion, which musicsearch does not support")
        self.dim = int(config.projection_dim)
        fe = _load(ClapFeatureExtractor, self.model_id, revision)
        try:
            self.mel_spec = MelSpec.from_feature_extractor(fe)
        except ValueError as exc:
            raise ModelLoadError(f"model {self.model_id}: {exc}") from None
        self.window_seconds = self.mel_spec.max_length_s
        self._logit_scale: float | None = None
        self._audio: Any = None
        self._audio_onnx: Any = None
        self._audio_int8 = False
        self._text: Any = None
        self._tokenizer: Any = None
        self._mel: Any = None

    def _ensure_mel(self) -> Any:
        if self._mel is None:
            from .features import LogMel

            self._mel = LogMel(self.mel_spec, self.device)
        return self._mel

    def _audio_tower(self) -> Any:
        if self._audio is None:
            from transformers import ClapAudioModelWithProjection

            self._audio = _load(ClapAudioModelWithProjection, self.model_id, self.revision).to(self.device).eval()
        return self._audio

    def _text_tower(self) -> Any:
        if self._text is None:
            from transformers import AutoTokenizer, ClapTextModelWithProjection

            self._tokenizer = _load(AutoTokenizer, self.model_id, self.revision)
            self._text = _load(ClapTextModelWithProjection, self.model_id, self.revision).to(self.device).eval()
        return self._text

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale_a): CLAP's temperature for audio-to-text logits, read from the
        checkpoint without loading the towers."""
        if self._logit_scale is None:
            self._logit_scale = _read_logit_scale(self.model_id, self.revision)
        return self._logit_scale

    def export_text_onnx(self, folder: Path) -> tuple[float, str]:
        """Export the text tower to ONNX in ``folder``; returns (its cosine against torch,
        "int8" or "fp32")."""
        from .onnx_towers import export_text_tower

        return export_text_tower(self._text_tower(), self._tokenizer, folder)

    @property
    def pad_token_id(self) -> int:
        self._text_tower()
        return int(self._tokenizer.pad_token_id)

    @property
    def mel_in_workers(self) -> bool:
        """On a CPU the indexer computes each window's log-mel in its decode thread, beside
        the decoding, and hands the model features: the mel costs ~4 ms a window but, run
        between model batches while decode threads hold the cores, about nine times that. On a GPU
        the mel runs batched on the device, in ``embed_windows``."""
        return self.device == "cpu"

    def features(self, waves: np.ndarray) -> Any:
        """Log-mel features (batch, 1, frames, mels) on the model's device (one window may
        be given as a 1-d array)."""
        return self._ensure_mel()(waves)

    def use_onnx_audio(self, folder: Path, int8: bool = False) -> float | None:
        """On a CPU, run the audio tower under onnxruntime: the graph in ``folder`` when there
        is one (checked when it was exported), else exported now and checked against torch;
        the torch tower is freed. With ``int8``, then an int8 copy of the graph (checked
        against fp32). Returns the check's cosine when it exported or quantized now, else None.

        Raises:
            ModelLoadError: export failed or disagreed; torch stays in use.
        """
        if self.device != "cpu":
            return None
        from .onnx_towers import audio_session, export_audio_tower, quantize_audio_tower

        cosine = None
        if self._audio_onnx is None:
            self._audio_onnx = audio_session(folder)
            if self._audio_onnx is None:
                self._audio_onnx, cosine = export_audio_tower(self._audio_tower(), self._ensure_mel(), folder)
            self._audio = None  # the torch tower is no longer needed
        if int8 and not self._audio_int8:
            self._audio_onnx, cosine = quantize_audio_tower(folder, self._audio_onnx, self._ensure_mel())
            self._audio_int8 = True
        return cosine

    def embed_features(self, feats: Any) -> np.ndarray:
        """(batch, 1, frames, mels) log-mel features (a tensor or an array) -> (batch, dim)
        unit vectors."""
        import torch

        if self._audio_onnx is not None:
            x = feats.cpu().numpy() if torch.is_tensor(feats) else np.asarray(feats, np.float32)
            return self._audio_onnx.run(None, {"input_features": x})[0].astype(np.float32)
        model = self._audio_tower()
        with torch.inference_mode():
            out = model(input_features=torch.as_tensor(feats, device=self.device)).audio_embeds
            out = torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy().astype(np.float32)

    def embed_windows(self, waves: np.ndarray) -> np.ndarray:
        return self.embed_features(self.features(waves))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self._text_tower()
        batch = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=TEXT_MAX_TOKENS, return_tensors="pt"
        ).to(self.device)
        with torch.inference_mode():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds
            out = torch.nn.functional.normalize(out.float(), dim=-1)
        return out.cpu().numpy().astype(np.float32)
