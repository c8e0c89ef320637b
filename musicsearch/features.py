"""Log-mel features equal to ``ClapFeatureExtractor`` (built with the model's preprocessing
values) for windows of exactly one model length, two ways:

- ``NumpyLogMel``: numpy float64, no torch import (decode workers and a prepared machine's
  CPU runs use it);
- ``LogMel``: torch, batched, on any device (a GPU computes the features beside the tower).

Both compute the STFT in float64: in float32 the bins far below a pure tone's peak land near
the 1e-10 power floor with errors of several hundredths of a dB; float64 stays within 1e-3 dB.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    import torch

POWER_FLOOR = 1e-10


@dataclass(frozen=True)
class MelSpec:
    """The preprocessing values that matter, read from the model's feature extractor."""

    sample_rate: int
    n_fft: int
    hop_length: int
    max_length_s: float
    mel_filters: np.ndarray  # (n_fft // 2 + 1, n_mels), slaney scale and norm

    @classmethod
    def from_feature_extractor(cls, fe: Any) -> MelSpec:
        """Build from a ``transformers.ClapFeatureExtractor``.

        Raises:
            ValueError: the extractor uses fusion truncation, which this pipeline (one
                10-s window per input) does not reproduce.
        """
        if getattr(fe, "truncation", None) == "fusion":
            raise ValueError("feature extractor uses fusion truncation; only unfused CLAP models are supported")
        return cls(
            sample_rate=int(fe.sampling_rate),
            n_fft=int(fe.fft_window_size),
            hop_length=int(fe.hop_length),
            max_length_s=float(fe.max_length_s),
            mel_filters=np.asarray(fe.mel_filters_slaney, dtype=np.float64),
        )

    def values(self) -> dict[str, Any]:
        """The scalar values (the filterbank is stored apart), for the prepared model's facts."""
        return {
            "sample_rate": self.sample_rate,
            "n_fft": self.n_fft,
            "hop_length": self.hop_length,
            "max_length_s": self.max_length_s,
        }

    @classmethod
    def from_values(cls, values: dict[str, Any], mel_filters: np.ndarray) -> MelSpec:
        """The inverse of ``values`` plus the filterbank.

        Raises:
            ValueError: a value is missing or the filterbank does not fit ``n_fft``.
        """
        try:
            spec = cls(
                sample_rate=int(values["sample_rate"]),
                n_fft=int(values["n_fft"]),
                hop_length=int(values["hop_length"]),
                max_length_s=float(values["max_length_s"]),
                mel_filters=np.asarray(mel_filters, dtype=np.float64),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"incomplete preprocessing values ({exc})") from None
        if spec.mel_filters.ndim != 2 or spec.mel_filters.shape[0] != spec.n_fft // 2 + 1:
            raise ValueError(f"mel filterbank of shape {spec.mel_filters.shape} does not fit n_fft {spec.n_fft}")
        return spec

    def window(self) -> np.ndarray:
        """Periodic Hann, as transformers' ``window_function(n_fft, "hann")`` (equal within 4e-16)."""
        return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(self.n_fft) / self.n_fft)


class NumpyLogMel:
    """Callable turning (batch, samples) float audio into (batch, 1, frames, n_mels) float32
    log-mel features with numpy alone (centre + reflect padding, periodic Hann, power 2,
    slaney mel, 10 log10 with a 1e-10 floor), one window at a time (the float64 frames of a
    window are ~8 MB), in buffers each thread reuses: 4.4 ms of one core a 10-s window against
    8.3-8.9 ms with fresh arrays (``scripts/bench_decode.py``), the same values to the last bit."""

    def __init__(self, spec: MelSpec):
        self.spec = spec
        self.hann = spec.window()
        # Only the FFT bins some mel filter uses (2-298 of 513 for CLAP) enter the power and the product.
        used = (spec.mel_filters != 0).any(axis=1)
        self._lo = int(np.argmax(used))
        self._hi = len(used) - int(np.argmax(used[::-1])) if used.any() else len(used)
        self._filters = np.ascontiguousarray(spec.mel_filters[self._lo : self._hi])
        self._local = threading.local()  # each thread's reused buffers (see _buffers)

    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        del state["_local"]  # buffers stay with their thread; a copy in a worker makes its own
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._local = threading.local()

    def _buffers(self, samples: int) -> dict[str, np.ndarray]:
        """This thread's float64 work arrays for windows of ``samples``, allocated once: fresh
        arrays of these sizes (~20 MB a window) come from new pages each time, which cost as
        much as the FFT itself."""
        bufs = getattr(self._local, "bufs", None)
        if bufs is None or len(bufs["padded"]) != samples + self.spec.n_fft:
            n_fft = self.spec.n_fft
            frames = samples // self.spec.hop_length + 1
            bins = self._hi - self._lo
            bufs = {
                "padded": np.empty(samples + n_fft),
                "windowed": np.empty((frames, n_fft)),
                "spectrum": np.empty((frames, n_fft // 2 + 1), np.complex128),
                "power": np.empty((frames, bins)),
                "imag2": np.empty((frames, bins)),
                "mel": np.empty((frames, self._filters.shape[1])),
            }
            self._local.bufs = bufs
        return bufs

    def __call__(self, waves: np.ndarray) -> np.ndarray:
        x = np.asarray(waves)
        if x.ndim == 1:
            x = x[None]
        if len(x) == 0:
            frames = int(self.spec.max_length_s * self.spec.sample_rate) // self.spec.hop_length + 1
            return np.zeros((0, 1, frames, self.spec.mel_filters.shape[1]), np.float32)
        return np.stack([self._one(w) for w in x])[:, None]

    def _one(self, wave: np.ndarray) -> np.ndarray:
        n_fft, hop, half = self.spec.n_fft, self.spec.hop_length, self.spec.n_fft // 2
        wave = np.asarray(wave)
        if len(wave) <= half:  # too short to reflect: numpy's own padding
            padded = np.pad(np.asarray(wave, np.float64), half, mode="reflect")
            b = self._buffers(len(wave))
        else:  # reflect padding (as np.pad's "reflect") into this thread's buffer
            b = self._buffers(len(wave))
            padded = b["padded"]
            padded[half:-half] = wave
            padded[:half] = wave[half:0:-1]
            padded[-half:] = wave[-2 : -half - 2 : -1]
        frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop]
        windowed = np.multiply(frames, self.hann, out=b["windowed"])
        stft = np.fft.rfft(windowed, axis=-1, out=b["spectrum"])[:, self._lo : self._hi]  # (frames, bins used)
        power = np.multiply(stft.real, stft.real, out=b["power"])
        power += np.multiply(stft.imag, stft.imag, out=b["imag2"])
        mel = np.matmul(power, self._filters, out=b["mel"])  # (frames, n_mels)
        np.maximum(mel, POWER_FLOOR, out=mel)
        np.log10(mel, out=mel)
        mel *= 10.0
        return mel.astype(np.float32)


class LogMel:
    """Callable turning a (batch, samples) float tensor into (batch, 1, frames, n_mels)
    float32 log-mel features, as the CLAP audio tower takes them (torch, on ``device``)."""

    def __init__(self, spec: MelSpec, device: torch.device | str = "cpu", chunk: int | None = None):
        import torch

        self.spec = spec
        self.device = torch.device(device)
        self.window = torch.as_tensor(spec.window(), dtype=torch.float64, device=self.device)
        self.filters = torch.as_tensor(spec.mel_filters, dtype=torch.float64, device=self.device)
        # windows per STFT call: one on a CPU (the float64 STFT of a whole batch is a
        # transient of ~17 MB per window, and costs no less batched there); on a GPU as many
        # as a quarter of its free memory holds, at most 64
        self.chunk = chunk if chunk is not None else self._device_chunk()

    def _device_chunk(self) -> int:
        if self.device.type != "cuda":
            return 1
        import torch

        free, _ = torch.cuda.mem_get_info(self.device)
        return int(max(1, min(64, free // 4 // self.bytes_per_window())))

    def bytes_per_window(self) -> int:
        """Peak transient of one window's float64 STFT, power and mel (bytes, estimated)."""
        frames = int(self.spec.max_length_s * self.spec.sample_rate) // self.spec.hop_length + 1
        bins = self.spec.n_fft // 2 + 1
        return 8 * frames * bins * 4  # complex STFT (2 doubles) + power + matmul input

    def __call__(self, waves: torch.Tensor | np.ndarray) -> torch.Tensor:
        import torch

        with torch.inference_mode():
            x = torch.as_tensor(waves)
            if x.ndim == 1:
                x = x[None]
            return torch.cat([self._batch(x[i : i + self.chunk]) for i in range(0, len(x), self.chunk)])

    def _batch(self, waves: torch.Tensor) -> torch.Tensor:
        import torch

        x = waves.to(self.device, torch.float64)
        stft = torch.stft(
            x,
            self.spec.n_fft,
            self.spec.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = stft.real.square() + stft.imag.square()  # (batch, freq, frames)
        mel = torch.matmul(power.transpose(1, 2), self.filters)  # (batch, frames, n_mels)
        logmel = 10.0 * torch.log10(torch.clamp(mel, min=POWER_FLOOR))
        return logmel.to(torch.float32)[:, None]
