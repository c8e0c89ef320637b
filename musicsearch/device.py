"""Where the audio tower runs: the device choice, and on a GPU how windows reach the tower
(``DeviceFeed``: a reused pinned buffer, chunks the free memory holds, half precision kept
only after a check on real windows). torch is imported inside the functions only.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from .config import PRECISIONS
from .errors import ModelLoadError
from .features import MelSpec
from .prepared import PreparedModel

log = logging.getLogger(__name__)

# A half-precision audio tower is used only when its vectors stay this close to fp32's on
# the run's first real windows (the least cosine of the batch).
PRECISION_MIN_COSINE = 0.9999
# Windows per device call on a GPU: at most this many, fewer when the free memory is short.
GPU_BATCH_CAP = 256


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


class DeviceFeed:
    """The device side of an audio embedder, a base of ``clap.ClapEmbedder``: the precision
    its audio tower runs in, the check that keeps a half precision, and the GPU feed (samples
    through a reused pinned buffer, in chunks the free memory holds, the log-mel on the device).

    The subclass sets ``_device``, ``dim``, ``window_seconds``, ``mel_spec`` and ``prepared``,
    gives ``audio_tower`` and ``features``, and calls ``_start_feed`` once those are set
    (``_clear_feed`` for an unpickled copy, which keeps its resolved ``precision``).
    """

    _device: str
    dim: int
    window_seconds: float
    mel_spec: MelSpec
    prepared: PreparedModel
    notes: list[str]  # for the run's report (precision checks), taken by take_notes
    precision: str
    _precision_checked: bool
    _pinned: Any
    _device_batch: int | None

    def audio_tower(self) -> Any:
        """The audio tower in use: log-mel features -> unit vectors (the subclass's)."""
        raise NotImplementedError

    def features(self, waves: np.ndarray) -> Any:
        """Log-mel features as a tensor on the model's device (the subclass's)."""
        raise NotImplementedError

    def _start_feed(self, precision: str) -> None:
        """Resolve the requested ``precision`` (``config.PRECISIONS``) for this device."""
        self.notes = []
        self.precision = self._resolve_precision(precision)
        self._clear_feed()

    def _clear_feed(self) -> None:
        """No pinned buffer, no batch size measured, a half precision not checked yet."""
        self._precision_checked = self.precision == "fp32"
        self._pinned = None
        self._device_batch = None

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
            self._tower(self.features(self._to_device(probe)), "fp32")  # fp32: the larger
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
