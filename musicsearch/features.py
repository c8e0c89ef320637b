"""Log-mel features in torch, batched, on any device, equal to ``ClapFeatureExtractor``
(built with the model's preprocessing values) for windows of exactly one model length.

The STFT runs in float64: in float32 the bins far below a pure tone's peak land near the
1e-10 power floor with errors of several hundredths of a dB; float64 stays within 1e-3 dB.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch


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


class LogMel:
    """Callable turning a (batch, samples) float tensor into (batch, 1, frames, n_mels)
    float32 log-mel features, as the CLAP audio tower takes them."""

    def __init__(self, spec: MelSpec, device: torch.device | str = "cpu", chunk: int | None = None):
        self.spec = spec
        self.device = torch.device(device)
        # periodic Hann, as transformers' window_function(n_fft, "hann") (equal within 4e-16),
        # built without importing transformers (decode workers start faster without it)
        self.window = torch.hann_window(spec.n_fft, periodic=True, dtype=torch.float64, device=self.device)
        self.filters = torch.as_tensor(spec.mel_filters, dtype=torch.float64, device=self.device)
        # windows per STFT call: one on a CPU (the float64 STFT of a whole batch is a
        # transient of ~17 MB per window, and costs no less batched there); on a GPU as many
        # as a quarter of its free memory holds, at most 64
        self.chunk = chunk if chunk is not None else self._device_chunk()

    def _device_chunk(self) -> int:
        if self.device.type != "cuda":
            return 1
        free, _ = torch.cuda.mem_get_info(self.device)
        return int(max(1, min(64, free // 4 // self.bytes_per_window())))

    def bytes_per_window(self) -> int:
        """Peak transient of one window's float64 STFT, power and mel (bytes, estimated)."""
        frames = int(self.spec.max_length_s * self.spec.sample_rate) // self.spec.hop_length + 1
        bins = self.spec.n_fft // 2 + 1
        return 8 * frames * bins * 4  # complex STFT (2 doubles) + power + matmul input

    @torch.inference_mode()
    def __call__(self, waves: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(waves)
        if x.ndim == 1:
            x = x[None]
        return torch.cat([self._batch(x[i : i + self.chunk]) for i in range(0, len(x), self.chunk)])

    def _batch(self, waves: torch.Tensor) -> torch.Tensor:
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
        logmel = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        return logmel.to(torch.float32)[:, None]
