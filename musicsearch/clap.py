"""CLAP as an ``embed.Embedder``: ``ClapEmbedder`` loads a checkpoint (Hub id or local folder)
with ``from_pretrained`` and keeps one tower per job: the audio tower for indexing, the text
tower for queries, each loaded on first use. What a run learns about the model (vector size,
preprocessing, logit scale, ONNX graphs) is kept in its prepared folder (``prepared.py``), so
that the next run on this machine needs neither torch nor transformers.
"""

from __future__ import annotations

import logging
import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from .config import DEFAULT_MODEL
from .device import DeviceFeed, pick_device
from .embed import PROBE_PROMPTS, TextEmbedder, mean_pairwise_cosine
from .errors import ModelLoadError
from .features import MelSpec, NumpyLogMel
from .loading import load_pretrained, read_logit_scale, resolve_model
from .prepared import PreparedModel
from .process import collection_deferred
from .text_child import TextJob

log = logging.getLogger(__name__)

TEXT_MAX_TOKENS = 77
# The model's mel filterbank in its prepared folder (the other preprocessing values are facts).
MEL_FILTERS_FILE = "mel-filters.npy"


class TorchAudioTower:
    """The audio tower in torch: log-mel features -> unit vectors, on the model's device."""

    def __init__(self, model: Any, device: str):
        self.model, self.device = model, device

    def __call__(self, feats: Any) -> np.ndarray:
        import torch

        with torch.inference_mode():
            out = self.model(input_features=torch.as_tensor(feats, device=self.device)).audio_embeds
            out = torch.nn.functional.normalize(out.float(), dim=-1)
        return np.asarray(out.cpu().numpy(), dtype=np.float32)


class ClapEmbedder(DeviceFeed):
    """A CLAP checkpoint, one tower loaded per use; implements ``Embedder``.

    On a CPU, ``prepare`` computes the log-mel (in the decode workers) and ``embed`` runs
    the audio tower; elsewhere ``prepare`` passes the samples through and ``embed`` computes
    the log-mel batched on the device before the tower (the GPU feed and the precision check
    are ``device.DeviceFeed``'s). The audio tower is torch unless ``use_onnx_audio`` moved it
    to the prepared ONNX graph: the one place that picks it.

    Args:
        model: Hub id or local folder.
        revision: Hub revision.
        device: ``auto`` or a torch device string.
        precision: the audio tower's precision on a CUDA GPU (``config.PRECISIONS``); half
            precision runs only after ``device.PRECISION_MIN_COSINE`` is checked on real windows.

    Pickling ships only what ``prepare`` needs (model id, device, mel spec), never the towers,
    so decode worker processes get it cheaply.
    """

    def __init__(
        self, model: str = DEFAULT_MODEL, revision: str | None = None, device: str = "auto", precision: str = "auto"
    ):
        self.model_id = resolve_model(model)
        self.revision = revision
        self._device = pick_device(device)
        self.prepared = PreparedModel(self.model_id, revision)
        facts = self.prepared.facts()
        self._logit_scale: float | None = float(facts["logit_scale"]) if "logit_scale" in facts else None
        spec = self._prepared_mel_spec(facts)
        if spec is not None and "dim" in facts:  # prepared on this machine: no transformers import
            self.dim, self.mel_spec = int(facts["dim"]), spec
        else:
            with collection_deferred():
                self.dim, self.mel_spec = self._read_model_facts()
        self.window_seconds = self.mel_spec.max_length_s
        self._audio_model: Any = None
        self._audio: Any = None  # the audio tower in use: TorchAudioTower or OnnxAudioTower
        self._text: Any = None
        self._tokenizer: Any = None
        self._mel: Any = None
        self._np_mel: NumpyLogMel | None = None
        self._start_feed(precision)
        self._text_job: TextJob | None = None

    @property
    def device(self) -> str:
        return self._device

    def _prepared_mel_spec(self, facts: dict[str, Any]) -> MelSpec | None:
        """The preprocessing recorded in the prepared folder, or None (not there or damaged)."""
        if not isinstance(facts.get("mel"), dict):
            return None
        filters = self.prepared.load_array(MEL_FILTERS_FILE)
        if filters is None:
            return None
        try:
            return MelSpec.from_values(facts["mel"], filters)
        except ValueError as exc:
            log.warning(
                "the prepared preprocessing in %s is damaged (%s); reading the model", self.prepared.folder, exc
            )
            return None

    def _read_model_facts(self) -> tuple[int, MelSpec]:
        """Vector size and preprocessing from the checkpoint (transformers), recorded in the
        prepared folder so that the next run on this machine needs neither."""
        from transformers import ClapConfig, ClapFeatureExtractor

        config = load_pretrained(ClapConfig, self.model_id, self.revision)
        if getattr(config.audio_config, "enable_fusion", False):
            raise ModelLoadError(f"model {self.model_id} uses feature fusion, which musicsearch does not support")
        dim = int(config.projection_dim)
        fe = load_pretrained(ClapFeatureExtractor, self.model_id, self.revision)
        try:
            spec = MelSpec.from_feature_extractor(fe)
        except ValueError as exc:
            raise ModelLoadError(f"model {self.model_id}: {exc}") from None
        try:
            self.prepared.save_array(MEL_FILTERS_FILE, spec.mel_filters)
            self.prepared.record(dim=dim, mel=spec.values())
        except OSError as exc:
            log.warning(
                "cannot record the model's facts in %s (%s); the next run reads the model again",
                self.prepared.folder,
                exc,
            )
        return dim, spec

    _SHIPPED = ("model_id", "revision", "_device", "dim", "mel_spec", "window_seconds", "precision")

    def __getstate__(self) -> dict[str, Any]:
        return {k: self.__dict__[k] for k in self._SHIPPED}

    def __setstate__(self, state: dict[str, Any]) -> None:
        """A light copy for a decode worker: ``prepare`` works; towers load only if used."""
        self.__dict__.update(state)
        self.prepared = PreparedModel(self.model_id, self.revision)
        self._logit_scale = None
        self._audio_model = self._audio = self._text = self._tokenizer = self._mel = self._np_mel = None
        self.notes = []
        self._clear_feed()
        self._text_job = None

    def _ensure_mel(self) -> Any:
        if self._mel is None:
            from .features import LogMel

            self._mel = LogMel(self.mel_spec, self._device)
        return self._mel

    def _torch_audio_model(self) -> Any:
        if self._audio_model is None:
            with collection_deferred():
                from transformers import ClapAudioModelWithProjection

                self._audio_model = (
                    load_pretrained(ClapAudioModelWithProjection, self.model_id, self.revision).to(self._device).eval()
                )
        return self._audio_model

    def audio_tower(self) -> Any:
        """The audio tower in use (loaded on first use: torch unless ONNX was chosen)."""
        if self._audio is None:
            self._audio = TorchAudioTower(self._torch_audio_model(), self._device)
        return self._audio

    def release_audio(self) -> None:
        """Free the audio tower (torch or ONNX); it is loaded again if needed."""
        from .onnx_towers import collect_if_alive

        towers = [weakref.ref(t) for t in (self._audio, self._audio_model) if t is not None]
        self._audio = self._audio_model = None
        for ref in towers:
            collect_if_alive(ref)

    def _text_tower(self) -> Any:
        if self._text is None:
            with collection_deferred():
                from transformers import AutoTokenizer, ClapTextModelWithProjection

                self._tokenizer = load_pretrained(AutoTokenizer, self.model_id, self.revision)
                self._text = (
                    load_pretrained(ClapTextModelWithProjection, self.model_id, self.revision).to(self._device).eval()
                )
        return self._text

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale_a), read from the checkpoint without loading the towers."""
        if self._logit_scale is None:
            self._logit_scale = read_logit_scale(self.model_id, self.revision)
            self.prepared.record(logit_scale=self._logit_scale)
        return self._logit_scale

    def probe_score(self) -> float:
        """The collapse guard's score (mean pairwise cosine of ``PROBE_PROMPTS``): recorded in
        the prepared folder the first time, so a prepared machine loads no text tower for it.
        Computed with the prepared text graph when there is one, else the torch tower."""
        recorded = self.prepared.facts().get("probe_mean_cosine")
        if isinstance(recorded, (int, float)):
            return float(recorded)
        encoder: TextEmbedder = prepared_text_encoder(self.model_id, self.revision) or self
        score = mean_pairwise_cosine(encoder.embed_texts(list(PROBE_PROMPTS)))
        self.prepared.record(probe_mean_cosine=score)
        return score

    @property
    def pad_token_id(self) -> int:
        if self._tokenizer is None:
            from transformers import AutoTokenizer

            self._tokenizer = load_pretrained(AutoTokenizer, self.model_id, self.revision)
        return int(self._tokenizer.pad_token_id)

    def start_text_preparation(self) -> bool:
        """Start ``prepare_text_onnx`` in a child process forked now (Linux only), so that the
        text tower is exported, quantized and checked on the second core while this process
        exports the audio tower and embeds; ``prepare_text_onnx`` then waits for it. Fork
        before this process runs torch (its thread pool is not fork-safe).

        Returns:
            Whether a child was started (not when the text graph is prepared already, one is
            running, or this platform has no fork).
        """
        if self._text_job is not None or self.text_prepared():
            return False
        with collection_deferred():  # imported once, here, not again in the child (1.5 s)
            import transformers.models.clap.modeling_clap  # noqa: F401
        if not TextJob.possible():
            return False
        # the child's copy of this embedder has no job (forked before this assignment): it exports
        self._text_job = TextJob.start(self.prepare_text_onnx)
        return self._text_job is not None

    def prepare_text_onnx(self) -> tuple[float, str]:
        """Export the text tower to the model's prepared folder (checked against torch) and
        record what queries need; returns (its cosine against torch, "int8" or "fp32").
        When ``start_text_preparation`` started it in a child, waits for that child instead.

        Raises:
            ModelLoadError: the export failed or disagreed; queries stay on torch.
        """
        if self._text_job is not None:
            job, self._text_job = self._text_job, None
            return job.result()
        from .onnx_towers import export_text_tower

        def take() -> tuple[Any, Any]:  # the export owns the torch tower and frees it once written
            tower, self._text = self._text_tower(), None
            return tower, self._tokenizer

        with collection_deferred():
            cosine, kind = export_text_tower(take, self.prepared)
        self.prepared.record(
            dim=self.dim,
            pad_token_id=self.pad_token_id,
            logit_scale=self.logit_scale,
            text_onnx=kind,
            text_onnx_cosine=cosine,
        )
        return cosine, kind

    def text_preparing(self) -> bool:
        """Whether ``start_text_preparation`` started a child that ``prepare_text_onnx`` has
        not waited for yet."""
        return self._text_job is not None

    def text_prepared(self) -> bool:
        from .onnx_towers import ONNX_FILE, TOKENIZER_FILE

        return self.prepared.has(ONNX_FILE, TOKENIZER_FILE) and "logit_scale" in self.prepared.facts()

    def audio_prepared(self, int8: bool = False) -> bool:
        from .onnx_towers import AUDIO_INT8_FILE, AUDIO_ONNX_FILE

        return self.prepared.has(AUDIO_INT8_FILE if int8 else AUDIO_ONNX_FILE)

    def use_onnx_audio(self, int8: bool = False, windows: int | None = None) -> float | None:
        """On a CPU, run the audio tower under onnxruntime: the prepared graph when there is
        one (checked when it was exported), else exported now and checked against torch; the
        torch tower is freed. With ``int8``, an int8 copy of the graph (checked against fp32).
        ``windows``: about how many windows it will embed (None: unknown, many); below
        ``onnx_towers.PREPACK_FROM_WINDOWS`` the session starts faster without pre-packed weights.
        Returns the check's cosine when it exported or quantized now, else None.

        Raises:
            ModelLoadError: export failed or disagreed; torch stays in use.
        """
        if self._device != "cpu":
            return None
        from .onnx_towers import (
            PREPACK_FROM_WINDOWS,
            OnnxAudioTower,
            audio_session,
            export_audio_tower,
            quantize_audio_tower,
        )

        cosine = None
        current = self._audio
        prepack = windows is None or windows >= PREPACK_FROM_WINDOWS
        with collection_deferred():
            if not isinstance(current, OnnxAudioTower):
                session = audio_session(self.prepared, prepack=prepack)
                if session is None:
                    # the torch tower is handed over (no reference kept here): the export frees it
                    session, cosine = export_audio_tower(
                        self._take_torch_audio_model(), self._numpy_mel(), self.prepared, prepack=prepack
                    )
                current = self._audio = OnnxAudioTower(session)
                self._audio_model = None  # the torch tower is no longer needed
            if int8 and not current.int8:
                session, cosine = quantize_audio_tower(self.prepared, current.session, self._numpy_mel())
                self._audio = OnnxAudioTower(session, int8=True)
        return cosine

    def _take_torch_audio_model(self) -> Any:
        """The torch audio tower, handed over: this embedder keeps no reference to it, so an
        export can free it as soon as its graph is written."""
        model = self._torch_audio_model()
        self._audio = self._audio_model = None
        return model

    def export_audio_graph(self) -> float | None:
        """On a CPU, export the audio tower to the prepared folder once per model per machine
        (checked against torch), so that later runs here import neither torch nor
        transformers. The torch tower is freed afterwards; nothing is kept loaded.

        Returns:
            The check's cosine against torch, or None when there was nothing to do.

        Raises:
            ModelLoadError: the export failed or disagreed; nothing is left in place.
        """
        from .onnx_towers import OnnxAudioTower, export_audio_tower

        if self._device != "cpu" or self.audio_prepared() or isinstance(self._audio, OnnxAudioTower):
            return None
        with collection_deferred():
            _, cosine = export_audio_tower(self._take_torch_audio_model(), self._numpy_mel(), self.prepared, False)
        return cosine

    def _numpy_mel(self) -> NumpyLogMel:
        if self._np_mel is None:
            self._np_mel = NumpyLogMel(self.mel_spec)
        return self._np_mel

    def features(self, waves: np.ndarray) -> Any:
        """Log-mel features (batch, 1, frames, mels) as a tensor on the model's device (one
        window may be given as a 1-d array)."""
        return self._ensure_mel()(waves)

    def prepare(self, waves: np.ndarray) -> np.ndarray:
        if self._device == "cpu":  # numpy: a decode worker needs no torch
            return self._numpy_mel()(waves)
        return np.ascontiguousarray(np.atleast_2d(waves), dtype=np.float32)

    def embed(self, prepared: np.ndarray) -> np.ndarray:
        if self._device != "cpu":
            return self._embed_on_device(prepared)
        return np.asarray(self.audio_tower()(prepared), dtype=np.float32)

    def embed_windows(self, waves: np.ndarray) -> np.ndarray:
        """(batch, window samples) -> (batch, dim) unit vectors."""
        return self.embed(self.prepare(waves))

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        import torch

        model = self._text_tower()
        batch = self._tokenizer(
            list(texts), padding=True, truncation=True, max_length=TEXT_MAX_TOKENS, return_tensors="pt"
        ).to(self._device)
        with torch.inference_mode():
            out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).text_embeds
            out = torch.nn.functional.normalize(out.float(), dim=-1)
        return np.asarray(out.cpu().numpy(), dtype=np.float32)


def prepared_text_encoder(model_id: str, revision: str | None) -> TextEmbedder | None:
    """The model's prepared ONNX text graph on this machine (no torch import), or None."""
    from .onnx_towers import OnnxTextEncoder

    return OnnxTextEncoder.from_prepared(PreparedModel(model_id, revision))
