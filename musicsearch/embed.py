"""Embedders turn 10-s windows of 48 kHz audio and text prompts into L2-normalized vectors
of one shared space.

``ClapEmbedder`` loads a CLAP checkpoint (Hub id or local folder) with ``from_pretrained`` and
keeps one tower per job: the audio tower for indexing, the text tower for queries, each loaded
on first use. Anything with the ``Embedder`` shape can stand in (tests use a fake one).
"""

from __future__ import annotations

import contextlib
import logging
import os
import weakref
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import numpy as np

from .config import DEFAULT_MODEL, PRECISIONS
from .errors import ModelLoadError
from .features import MelSpec, NumpyLogMel
from .prepared import PreparedModel
from .process import collection_deferred, freeze_collector, own_child_process

log = logging.getLogger(__name__)

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
# A half-precision audio tower is used only when its vectors stay this close to fp32's on
# the run's first real windows (the least cosine of the batch).
PRECISION_MIN_COSINE = 0.9999
# Windows per device call on a GPU: at most this many, fewer when the free memory is short.
GPU_BATCH_CAP = 256
# A process that has loaded these runs threads of theirs that make forking it unsafe.
FORK_UNSAFE_MODULES = ("grpc", "ray")
# How long an index run waits for the child process that prepares the text tower (about 4 s
# for the full-size model on 2 cores, beside the run) before it stops it and queries stay on torch.
TEXT_CHILD_TIMEOUT_S = 600.0
# The model's mel filterbank in its prepared folder (the other preprocessing values are facts).
MEL_FILTERS_FILE = "mel-filters.npy"


@runtime_checkable
class TextEmbedder(Protocol):
    """What a search needs from a model: prompts -> unit vectors in the index's space.

    Implemented by ``ClapEmbedder`` (torch text tower) and ``onnx_towers.OnnxTextEncoder``
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


def pick_device(device: str = "auto") -> str:
    """``auto`` -> cuda, then mps, then cpu; anything else is returned as given."""
    if device != "auto":
        return device
    if _no_gpu_here():
        return "cpu"
    import torch

    if torch.cuda.is_available():
        return "cuda"
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        return "mps"
    return "cpu"


def _no_gpu_here() -> bool:
    """True when this machine certainly has no GPU torch could use (Linux without NVIDIA,
    ROCm or WSL GPU device nodes), so ``auto`` means the CPU without importing torch (1.5 s)."""
    import sys

    if not sys.platform.startswith("linux"):
        return False
    nodes = ("/dev/nvidiactl", "/dev/nvidia0", "/dev/kfd", "/dev/dxg")
    return not any(Path(node).exists() for node in nodes)


def mean_pairwise_cosine(vectors: np.ndarray) -> float:
    """Mean cosine over all distinct pairs of rows (rows assumed unit length)."""
    sims = vectors @ vectors.T
    n = len(vectors)
    return float((sims.sum() - np.trace(sims)) / (n * (n - 1)))


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

    if Path(model).is_absolute() and not Path(model).is_dir():  # a Hub id is never absolute
        raise ModelLoadError(
            f"model folder {model} does not exist (moved or deleted?); put it back there, or pass --model "
            "with a folder or Hub id (an index keeps the model it was built with)"
        )
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


class ClapEmbedder:
    """A CLAP checkpoint, one tower loaded per use; implements ``Embedder``.

    On a CPU, ``prepare`` computes the log-mel (in the decode workers) and ``embed`` runs
    the audio tower; elsewhere ``prepare`` passes the samples through and ``embed`` computes
    the log-mel batched on the device before the tower. The audio tower is torch unless
    ``use_onnx_audio`` moved it to the prepared ONNX graph: the one place that picks it.

    Args:
        model: Hub id or local folder.
        revision: Hub revision.
        device: ``auto`` or a torch device string.
        precision: the audio tower's precision on a CUDA GPU (``config.PRECISIONS``); half
            precision runs only after ``PRECISION_MIN_COSINE`` is checked on real windows.

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
        self.notes: list[str] = []  # for the run's report (precision checks), taken by take_notes
        self.precision = self._resolve_precision(precision)
        self._precision_checked = self.precision == "fp32"
        self._pinned: Any = None
        self._device_batch: int | None = None
        self._text_job: _TextJob | None = None

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

        config = _load(ClapConfig, self.model_id, self.revision)
        if getattr(config.audio_config, "enable_fusion", False):
            raise ModelLoadError(f"model {self.model_id} uses feature fusion, which musicsearch does not support")
        dim = int(config.projection_dim)
        fe = _load(ClapFeatureExtractor, self.model_id, self.revision)
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

    # --- GPU feed and precision -------------------------------------------------------------

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
        self._precision_checked = self.precision == "fp32"
        self._pinned = None
        self._device_batch = None
        self._text_job = None

    def _resolve_precision(self, precision: str) -> str:
        """``auto`` -> bf16 on CUDA where supported, else fp16 on CUDA, fp32 elsewhere."""
        if precision not in PRECISIONS:
            raise ModelLoadError(f"unknown precision {precision!r}; use one of {', '.join(PRECISIONS)}")
        cuda = self._device.startswith("cuda")
        if precision == "auto":
            if not cuda:
                return "fp32"
            import torch

            return "bf16" if torch.cuda.is_bf16_supported() else "fp16"
        if precision != "fp32" and not cuda:
            # measured on the 2-core CPU: torch bf16 autocast 1.4 windows/s, onnxruntime fp32 4.8
            msg = f"half precision ({precision}) is only for CUDA GPUs; the audio tower runs fp32 on {self._device}"
            log.warning("%s", msg)
            self.notes.append(msg)
            return "fp32"
        return precision

    def take_notes(self) -> list[str]:
        """What the report should say about this run's model (and forget it)."""
        notes, self.notes = self.notes, []
        return notes

    def _to_device(self, waves: np.ndarray) -> Any:
        """Samples to the device; on CUDA through a reused pinned host buffer with a
        non-blocking copy (safe to reuse: each device call ends by copying its vectors back,
        which waits for the copy)."""
        import torch

        x = torch.from_numpy(np.ascontiguousarray(waves, dtype=np.float32))
        if not self._device.startswith("cuda"):
            return x.to(self._device)
        if self._pinned is None or self._pinned.shape[0] < len(x) or self._pinned.shape[1:] != x.shape[1:]:
            self._pinned = torch.empty(x.shape, dtype=torch.float32).pin_memory()
        buf = self._pinned[: len(x)]
        buf.copy_(x)
        return buf.to(self._device, non_blocking=True)

    def _tower(self, feats: Any, precision: str) -> np.ndarray:
        import torch

        if precision == "fp32":
            return np.asarray(self.audio_tower()(feats), dtype=np.float32)
        dtype = torch.bfloat16 if precision == "bf16" else torch.float16
        with torch.autocast(device_type=torch.device(self._device).type, dtype=dtype):
            return np.asarray(self.audio_tower()(feats), dtype=np.float32)

    def check_precision(self, feats: Any) -> np.ndarray:
        """Run ``feats`` (real windows) in fp32 and in the requested half precision; keep the
        half precision only if every window's cosine is >= ``PRECISION_MIN_COSINE``, else fall
        back to fp32 (WARNING). The cosine is recorded in the prepared model's facts and told
        as a note. Returns the fp32 vectors."""
        import torch

        ref = self._tower(feats, "fp32")
        half = self._tower(feats, self.precision)
        cosine = float(np.min(np.sum(ref * half, axis=1)))
        name = torch.cuda.get_device_name(self._device) if self._device.startswith("cuda") else self._device
        self._precision_checked = True
        self.prepared.record(**{f"audio_{self.precision}_cosine": cosine, f"audio_{self.precision}_device": name})
        if cosine >= PRECISION_MIN_COSINE:
            self.notes.append(
                f"audio tower in {self.precision} on {name} (cosine {cosine:.6f} vs fp32 on {len(ref)} real windows)"
            )
        else:
            msg = (
                f"audio tower stays fp32 on {name}: {self.precision} gave cosine {cosine:.6f} vs fp32 "
                f"(< {PRECISION_MIN_COSINE})"
            )
            log.warning("%s", msg)
            self.notes.append(msg)
            self.precision = "fp32"
        return ref

    def device_batch(self, requested: int) -> int:
        """Windows per device call: ``requested`` capped by what the GPU's free memory holds
        (measured once: the peak memory of a 2-window call, and ``torch.cuda.mem_get_info``;
        half of the free memory at most, ``GPU_BATCH_CAP`` windows at most)."""
        if not self._device.startswith("cuda"):
            return requested
        if self._device_batch is None:
            import torch

            probe = np.zeros((2, int(round(self.window_seconds * self.mel_spec.sample_rate))), np.float32)
            self.audio_tower()  # weights are not activations: loaded before measuring
            torch.cuda.synchronize(self._device)
            base = torch.cuda.memory_allocated(self._device)
            torch.cuda.reset_peak_memory_stats(self._device)
            self._tower(self._ensure_mel()(self._to_device(probe)), "fp32")  # fp32: the larger
            per_window = max(1, (torch.cuda.max_memory_allocated(self._device) - base) // 2)
            free, _ = torch.cuda.mem_get_info(self._device)
            self._device_batch = int(max(1, min(GPU_BATCH_CAP, free // 2 // per_window)))
            log.info("GPU batch: up to %d windows (%.0f MB a window)", self._device_batch, per_window / 2**20)
        return max(1, min(requested, self._device_batch))

    def _embed_on_device(self, waves: np.ndarray) -> np.ndarray:
        """Samples -> vectors on a GPU: chunks that fit, mel batched on the device, the tower
        in the checked precision (the first chunk with sound checks it)."""
        step = self.device_batch(len(waves))
        out = []
        for i in range(0, len(waves), step):
            chunk = waves[i : i + step]
            feats = self.features(self._to_device(chunk))
            if not self._precision_checked and np.abs(chunk).max() > 0:
                out.append(self.check_precision(feats))
            else:
                out.append(self._tower(feats, self.precision if self._precision_checked else "fp32"))
        return np.concatenate(out) if out else np.zeros((0, self.dim), np.float32)

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
                    _load(ClapAudioModelWithProjection, self.model_id, self.revision).to(self._device).eval()
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

                self._tokenizer = _load(AutoTokenizer, self.model_id, self.revision)
                self._text = _load(ClapTextModelWithProjection, self.model_id, self.revision).to(self._device).eval()
        return self._text

    @property
    def logit_scale(self) -> float:
        """exp(logit_scale_a), read from the checkpoint without loading the towers."""
        if self._logit_scale is None:
            self._logit_scale = _read_logit_scale(self.model_id, self.revision)
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

            self._tokenizer = _load(AutoTokenizer, self.model_id, self.revision)
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
        if not _TextJob.possible():
            return False
        self._text_job = _TextJob.start(self)
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


class _TextJob:
    """``ClapEmbedder.prepare_text_onnx`` running in a forked child process; ``result`` waits
    for it. The child's WARNINGs are sent back and logged here, so they read as if the
    export had run in this process."""

    def __init__(self, process: Any, conn: Any):
        self._process, self._conn = process, conn

    @staticmethod
    def possible() -> bool:
        """Whether this process can be forked safely: Linux, and no other Python thread and no
        gRPC (Ray) threads that could hold a lock the child would wait on forever."""
        import multiprocessing
        import sys
        import threading

        if not (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()):
            return False
        busy = [name for name in FORK_UNSAFE_MODULES if name in sys.modules]
        if threading.active_count() > 1 or busy:
            log.warning(
                "the text tower is prepared after the run, not beside it (forking this process is unsafe: %s)",
                f"{', '.join(busy)} loaded" if busy else f"{threading.active_count()} threads",
            )
            return False
        return True

    @classmethod
    def start(cls, embedder: ClapEmbedder) -> _TextJob | None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        args = (embedder, send, os.getpid())
        process = ctx.Process(target=_text_child, args=args, name="musicsearch-text-export", daemon=True)
        try:
            process.start()
        except OSError as exc:
            log.warning("could not start a process to prepare the text tower (%s); it is prepared after the run", exc)
            return None
        send.close()
        return cls(process, receive)

    def result(self) -> tuple[float, str]:
        message, hung = None, False
        try:
            if self._conn.poll(TEXT_CHILD_TIMEOUT_S):
                message = self._conn.recv()
            else:  # a hung child (say, a lock held by another thread at the fork) is stopped
                hung = True
                self._process.kill()
        except (EOFError, OSError):
            pass
        finally:
            self._conn.close()
            self._process.join()
        if message is None:
            what = f"took over {TEXT_CHILD_TIMEOUT_S:.0f} s and was stopped" if hung else "died"
            raise ModelLoadError(
                f"the process preparing the text tower {what} (exit code {self._process.exitcode}); queries stay on torch"
            )
        status, payload, records = message
        for name, level, text in records:
            logging.getLogger(name).log(level, "%s", text)
        if status == "error":
            raise ModelLoadError(payload)
        cosine, kind = payload
        return float(cosine), str(kind)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _text_child(embedder: ClapEmbedder, conn: Any, parent: int) -> None:
    """In the forked child: prepare the text tower and send (status, result, WARNINGs)."""
    try:  # killed with its parent: no export goes on behind a killed run
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before that
        os._exit(1)
    own_child_process()
    # What the child inherited is never collected here: no collection walks the parent's
    # objects, so none of their pages is copied for it (Python's advice for fork).
    freeze_collector()
    collect = _Collect()
    package = logging.getLogger("musicsearch")
    package.addHandler(collect)
    package.propagate = False  # the parent logs them
    try:
        import torch

        # The parent's audio export and embedding come first: the child takes one thread at a
        # lower priority, i.e. mostly the core the parent leaves idle (its imports, the exporter's
        # own passes, loading the graph).
        torch.set_num_threads(1)
        os.nice(10)
        embedder._text_job = None
        message: tuple[str, Any, list[tuple[str, int, str]]] = ("ok", embedder.prepare_text_onnx(), collect.records)
    except ModelLoadError as exc:
        message = ("error", str(exc), collect.records)
    except BaseException as exc:  # reported to the parent, which goes on
        message = ("error", f"could not prepare the text tower ({type(exc).__name__}: {exc})", collect.records)
    conn.send(message)
    conn.close()
