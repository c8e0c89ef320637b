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

    def __init__(self, spec: MelSpec, device: torch.device | str = "cpu"):
        from transformers.audio_utils import window_function

        self.spec = spec
        self.device = torch.device(device)
        self.window = torch.as_tensor(window_function(spec.n_fft, "hann"), dtype=torch.float64, device=self.device)
        self.filters = torch.as_tensor(spec.mel_filters, dtype=torch.float64, device=self.device)

    @torch.inference_mode()
    def __call__(self, waves: torch.Tensor | np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(waves)
        if x.ndim == 1:
            x = x[None]
        # One window at a time: the float64 STFT of a whole batch is a transient of ~17 MB
        # per window, and costs no less batched.
        return torch.cat([self._one(row) for row in x])

    def _one(self, wave: torch.Tensor) -> torch.Tensor:
        x = wave.to(self.device, torch.float64)
        stft = torch.stft(
            x,
            self.spec.n_fft,
            self.spec.hop_length,
            window=self.window,
            center=True,
            pad_mode="reflect",
            return_complex=True,
        )
        power = stft.real.square() + stft.imag.square()  # (freq, frames)
        mel = torch.matmul(power.T, self.filters)  # (frames, n_mels)
        logmel = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
        return logmel.to(torch.float32)[None, None]
