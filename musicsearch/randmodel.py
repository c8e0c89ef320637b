"""Build random-weight CLAP model folders for offline tests and benchmarks.

``full`` has the exact architecture of laion/larger_clap_general (HTSAT-base audio tower,
RoBERTa-base text tower, 193,913,882 parameters) and its preprocessing; ``tiny`` keeps the
input geometry (64 mel bins, spec 256, 1001 frames) with small hidden sizes. All are saved
with ``save_pretrained`` and load through the same code users run. The tokenizer is a
byte-level BPE trained here on a few prompts (the real one cannot be downloaded).

Freshly initialised, the audio tower barely reacts to its input: its residual branches are
small (weights of std 0.02-0.05), so the output is little more than the mean of the patch
embeddings; different windows come out within cosine 0.9998 and a +0.1 dB error in the
log-mel moves the output by less than 3e-6, too little for a fidelity test to see. ``small``
(a bit wider than ``tiny``) is *sharpened*: its audio weights are multiplied by a gain and
its input batch norm is given the running statistics of a log-mel in dB, as a trained model
has. Windows of one track then come out at cosine 0.8-0.93 of each other, a +0.1 dB bias
of the log-mel gives cosine 0.997-0.998 and a 100-ms shift 0.74-0.87, while the pipeline's
float32 rounding (features within 4e-6 dB of the reference) keeps cosine >= 0.99999994
(tests/test_fidelity.py).
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from transformers import RobertaTokenizer

HUB_PREPROCESSING: dict[str, Any] = dict(
    feature_size=64,
    sampling_rate=48_000,
    hop_length=480,
    max_length_s=10,
    fft_window_size=1024,
    padding_value=0.0,
    return_attention_mask=False,
    frequency_min=50,
    frequency_max=14_000,
    top_db=None,
    truncation="rand_trunc",
    padding="repeatpad",
)

FULL = dict(
    text=dict(
        vocab_size=50265,
        hidden_size=768,
        num_hidden_layers=12,
        num_attention_heads=12,
        intermediate_size=3072,
        max_position_embeddings=514,
        type_vocab_size=1,
    ),
    audio=dict(
        depths=[2, 2, 12, 2],
        hidden_size=1024,
        patch_embeds_hidden_size=128,
        num_attention_heads=[4, 8, 16, 32],
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
        enable_fusion=False,
    ),
    projection_dim=512,
)
TINY = dict(
    text=dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=37,
        max_position_embeddings=96,
        type_vocab_size=1,
    ),
    audio=dict(
        depths=[1, 1, 1, 1],
        hidden_size=64,
        patch_embeds_hidden_size=8,
        num_attention_heads=[2, 2, 2, 2],
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
        enable_fusion=False,
    ),
    projection_dim=16,
)

SMALL = dict(
    text=TINY["text"],
    audio=dict(
        depths=[1, 1, 1, 1],
        hidden_size=128,
        patch_embeds_hidden_size=16,
        num_attention_heads=[2, 2, 4, 4],
        window_size=8,
        spec_size=256,
        num_mel_bins=64,
        enable_fusion=False,
    ),
    projection_dim=32,
)


@dataclass(frozen=True)
class Sharpening:
    """Makes a random audio tower react to its input: every audio weight matrix and kernel is
    multiplied by ``gain``, and the input batch norm normalizes a log-mel of mean
    ``mel_mean_db`` and standard deviation ``mel_std_db``."""

    gain: float
    mel_mean_db: float
    mel_std_db: float


# Gain 15, measured on music-like audio over seeds 0-2: closest windows at cosine 0.84-0.91,
# +0.1 dB bias 0.9966-0.9987, 100-ms shift 0.90-0.96, 1e-4 dB random noise >= 0.99999998.
SIZES: dict[str, tuple[dict[str, Any], Sharpening | None]] = {
    "tiny": (TINY, None),
    "small": (SMALL, Sharpening(gain=15.0, mel_mean_db=-20.0, mel_std_db=10.0)),
    "full": (FULL, None),
}

_CORPUS = [
    "upbeat electronic with a strong bassline",
    "solo piano, slow and sad",
    "warm analog synth pads",
    "rock jazz classical electronic hip hop ambient folk metal pop",
    "a dog barking in the rain",
    "heavy metal with distorted electric guitars",
    "jazz saxophone improvisation",
    "orchestral strings",
    "This audio is a song. drums, bass, vocals, guitar, violin, cello, flute, choir, 0123456789",
]


def build_tokenizer(vocab_size: int) -> RobertaTokenizer:
    """A RoBERTa-style byte-level BPE tokenizer of ``min(vocab_size, 400)`` tokens, but never
    fewer than its 256 byte tokens and 5 special tokens."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(
        _CORPUS * 4,
        vocab_size=min(vocab_size, 400),
        min_frequency=1,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    with tempfile.TemporaryDirectory() as tmp:
        bpe.save_model(tmp)
        return RobertaTokenizer(vocab=f"{tmp}/vocab.json", merges=f"{tmp}/merges.txt", model_max_length=512)


def sharpen(model: Any, how: Sharpening) -> None:
    """Apply ``how`` to a ``ClapModel``'s audio tower and audio projection, in place."""
    import torch

    with torch.no_grad():
        for name, param in model.named_parameters():
            audio = name.startswith(("audio_model.", "audio_projection."))
            if audio and param.ndim >= 2 and "relative_position" not in name:
                param.mul_(how.gain)
        norm = model.audio_model.audio_encoder.batch_norm
        norm.running_mean.fill_(how.mel_mean_db)
        norm.running_var.fill_(how.mel_std_db**2)


def build_random_clap(folder: Path | str, size: str = "tiny", seed: int = 0) -> Path:
    """Write a random-weight CLAP (``size`` ``tiny``, ``small`` or ``full``, see ``SIZES``)
    with its processor to ``folder`` and return the folder."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    if size not in SIZES:
        raise ValueError(f"unknown size {size!r}; one of {', '.join(SIZES)}")
    spec, sharpening = SIZES[size]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tokenizer = build_tokenizer(spec["text"].get("vocab_size", 50265))
    text = dict(spec["text"])
    text.setdefault("vocab_size", len(tokenizer))
    config = ClapConfig(text_config=text, audio_config=dict(spec["audio"]), projection_dim=spec["projection_dim"])
    torch.manual_seed(seed)
    model = ClapModel(config).eval()
    if sharpening is not None:
        sharpen(model, sharpening)
    model.save_pretrained(folder)
    fe = ClapFeatureExtractor(**HUB_PREPROCESSING)
    ClapProcessor(feature_extractor=fe, tokenizer=tokenizer).save_pretrained(folder)
    return folder
