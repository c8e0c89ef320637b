"""CLAP towers as ONNX graphs stored in the index folder, exported once per index from the
index's own model and checked against torch before use.

- Text: a query then needs only onnxruntime + tokenizers + faiss (about 0.3 s to import)
  instead of torch + transformers (6-8 s); int8-quantized when it stays close enough to torch.
- Audio (CPU only): onnxruntime ran the full-size audio tower 1.22x faster than torch eager on
  the 2-core development machine, cosine >= 0.9999998 (scripts/bench_index.py measures it).
"""

from __future__ import annotations

import logging
import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelLoadError

ONNX_FILE = "text-tower.onnx"
AUDIO_ONNX_FILE = "audio-tower.onnx"
AUDIO_INT8_FILE = "audio-tower-int8.onnx"
# Opt-in int8 audio tower (Settings.audio_int8): measured 1.76x faster on the 2-core CPU
# (8.74 vs 4.96 windows/s), min cosine 0.99916 against the fp32 graph.
MIN_COSINE_AUDIO_INT8 = 0.99
TOKENIZER_FILE = "text-tokenizer.json"
CHECK_PROMPTS = (
    "upbeat electronic with a strong bassline",
    "solo piano, slow and sad",
    "warm analog synth pads",
    "heavy metal with distorted guitars",
    "a quiet acoustic folk song with a female singer",
    "orchestral film score with epic drums " * 8,  # longer than 77 tokens: truncation
)
MIN_COSINE = 0.9999
# An int8 (dynamic quantization) text graph is kept when it stays this close to torch: on the
# full-size model it was 4x smaller (126 vs 500 MB) and 3.3x faster (11 vs 37 ms a query),
# min cosine 0.99966 on the check prompts.
MIN_COSINE_INT8 = 0.999
MAX_TOKENS = 77


def export_text_tower(model: torch.nn.Module, tokenizer: Any, index_dir: Path) -> tuple[float, str]:  # noqa: F821
    """Export a loaded ``ClapTextModelWithProjection`` + L2 normalization (and its
    tokenizer) to ``index_dir`` and check it against torch on ``CHECK_PROMPTS``.

    The fp32 graph must agree with torch (cosine >= MIN_COSINE); its int8 quantization
    replaces it when that one still reaches MIN_COSINE_INT8.

    Returns:
        (the lowest cosine between the kept graph and torch, "int8" or "fp32").

    Raises:
        ModelLoadError: the export fails or disagrees with torch; nothing is left in
            ``index_dir`` then.
    """
    import torch

    class Normalized(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask).text_embeds
            return torch.nn.functional.normalize(out, dim=-1)

    batch = tokenizer(list(CHECK_PROMPTS), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    batch = batch.to(next(model.parameters()).device)
    wrapped = Normalized(model).eval()  # the exporter restores this mode on the shared tower afterwards
    with torch.inference_mode():
        reference = wrapped(batch["input_ids"], batch["attention_mask"]).cpu().numpy()
    with tempfile.TemporaryDirectory(dir=index_dir) as tmp:
        graph = Path(tmp) / ONNX_FILE
        try:
            with warnings.catch_warnings():  # tracer chatter; the check below is what counts
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapped,
                    (batch["input_ids"], batch["attention_mask"]),
                    str(graph),
                    input_names=["input_ids", "attention_mask"],
                    output_names=["embeds"],
                    dynamic_axes={
                        "input_ids": {0: "batch", 1: "tokens"},
                        "attention_mask": {0: "batch", 1: "tokens"},
                        "embeds": {0: "batch"},
                    },
                    opset_version=17,
                    dynamo=False,
                )
            tokenizer.backend_tokenizer.save(str(Path(tmp) / TOKENIZER_FILE))
        except Exception as exc:
            raise ModelLoadError(f"could not export the text tower to ONNX ({type(exc).__name__}: {exc})") from None

        def agreement() -> float:
            encoder = OnnxTextEncoder(Path(tmp), "check", None, reference.shape[1], pad_id=tokenizer.pad_token_id)
            return float(np.min(np.sum(encoder.embed_texts(CHECK_PROMPTS) * reference, axis=1)))

        cosine, kind = agreement(), "fp32"
        if cosine < MIN_COSINE:
            raise ModelLoadError(
                f"the ONNX text tower disagrees with torch (cosine {cosine:.6f}); queries stay on torch"
            )
        fp32 = Path(tmp) / "fp32.onnx"
        os.replace(graph, fp32)
        root, null = logging.getLogger(), logging.NullHandler()
        root.addHandler(null)  # the quantizer's advice goes to the root logger: keep it quiet
        logging.disable(logging.WARNING)
        try:
            from onnxruntime.quantization import QuantType, quantize_dynamic

            quantize_dynamic(str(fp32), str(graph), weight_type=QuantType.QInt8)
            quantized = agreement()
        except Exception:
            quantized = -1.0
        finally:
            logging.disable(logging.NOTSET)
            root.removeHandler(null)
        if quantized >= MIN_COSINE_INT8:
            cosine, kind = quantized, "int8"
        else:
            os.replace(fp32, graph)
        for name in (ONNX_FILE, TOKENIZER_FILE):
            os.replace(Path(tmp) / name, index_dir / name)
    return cosine, kind


class OnnxTextEncoder:
    """Embeds prompts with the exported graph; the text half of the ``Embedder`` shape."""

    def __init__(self, folder: Path, model_id: str, revision: str | None, dim: int, pad_id: int = 1):
        from tokenizers import Tokenizer

        self.model_id, self.revision, self.dim = model_id, revision, dim
        self._session = _session(folder / ONNX_FILE, prepack=False)
        self._tokenizer = Tokenizer.from_file(str(folder / TOKENIZER_FILE))
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding(pad_id=pad_id)

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        encodings = self._tokenizer.encode_batch(list(texts))
        ids = np.array([e.ids for e in encodings], dtype=np.int64)
        mask = np.array([e.attention_mask for e in encodings], dtype=np.int64)
        return self._session.run(None, {"input_ids": ids, "attention_mask": mask})[0].astype(np.float32)


def has_onnx(index_dir: Path) -> bool:
    return (index_dir / ONNX_FILE).exists() and (index_dir / TOKENIZER_FILE).exists()


def remove_onnx(index_dir: Path) -> None:
    for name in (ONNX_FILE, TOKENIZER_FILE):
        (index_dir / name).unlink(missing_ok=True)


def audio_session(index_dir: Path) -> object | None:
    """A session on the index's audio graph (checked when it was exported), or None."""
    path = index_dir / AUDIO_ONNX_FILE
    return _session(path) if path.exists() else None


def _session(path: Path, prepack: bool = True):
    """An onnxruntime CPU session. ``prepack`` keeps a pre-packed copy of the weights: for the
    audio tower 145 MB more and 4-5 % faster; the text tower goes without: packing at start-up
    made a cold ``musicsearch query`` 0.70 s instead of 0.65 s (both on the 2-core machine)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    if not prepack:
        options.add_session_config_entry("session.disable_prepacking", "1")
    # Idle threads yield the cores to the decode threads instead of spinning (measured on the
    # 2-core machine).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _check_windows() -> np.ndarray:
    """Noise, a tone and silence: 10-s windows at 48 kHz."""
    rng = np.random.default_rng(0)
    t = np.arange(480_000) / 48_000
    return np.stack(
        [
            (0.2 * rng.standard_normal(480_000)).astype(np.float32),
            (0.5 * np.sin(2 * np.pi * 440 * t)).astype(np.float32),
            np.zeros(480_000, np.float32),
        ]
    )


def export_audio_tower(model: torch.nn.Module, mel: object, index_dir: Path) -> tuple[object, float]:  # noqa: F821
    """Export an audio tower (``ClapAudioModelWithProjection``) + L2 normalization to
    ``index_dir`` and check it against ``model`` on generated windows.

    Returns:
        (an onnxruntime session, the lowest cosine against torch).

    Raises:
        ModelLoadError: the export fails or disagrees with torch (cosine < MIN_COSINE); a
            disagreeing file is removed.
    """
    import torch

    class Normalized(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_features: torch.Tensor) -> torch.Tensor:
            return torch.nn.functional.normalize(self.inner(input_features=input_features).audio_embeds, dim=-1)

    wrapped = Normalized(model).eval()
    feats = mel(_check_windows()).clone()  # type: ignore[operator]
    with torch.no_grad():
        reference = wrapped(feats).numpy()
    target = index_dir / AUDIO_ONNX_FILE
    with tempfile.TemporaryDirectory(dir=index_dir) as tmp:
        graph = Path(tmp) / AUDIO_ONNX_FILE
        try:
            with warnings.catch_warnings(), torch.no_grad():
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapped,
                    (feats,),
                    str(graph),
                    input_names=["input_features"],
                    output_names=["embeds"],
                    opset_version=17,
                    dynamo=False,
                    dynamic_axes={"input_features": {0: "batch"}, "embeds": {0: "batch"}},
                )
        except Exception as exc:
            raise ModelLoadError(f"could not export the audio tower to ONNX ({type(exc).__name__}: {exc})") from None
        os.replace(graph, target)
    session = _session(target)
    out = session.run(None, {"input_features": feats.numpy()})[0]
    cosine = float(np.min(np.sum(out * reference, axis=1)))
    if cosine < MIN_COSINE:
        target.unlink(missing_ok=True)
        raise ModelLoadError(
            f"the ONNX audio tower disagrees with torch (cosine {cosine:.6f}); indexing stays on torch"
        )
    return session, cosine


def quantize_audio_tower(index_dir: Path, fp32_session: object, mel: object) -> tuple[object, float]:
    """An int8 (dynamic quantization) copy of the index's audio graph, checked against the
    fp32 graph on generated windows.

    Returns:
        (an onnxruntime session on the int8 graph, the lowest cosine against fp32).

    Raises:
        ModelLoadError: quantization failed or the cosine fell below MIN_COSINE_AUDIO_INT8
            (the int8 file is removed; the fp32 graph stays in use).
    """
    target = index_dir / AUDIO_INT8_FILE
    if not target.exists():
        with tempfile.TemporaryDirectory(dir=index_dir) as tmp:
            graph = Path(tmp) / AUDIO_INT8_FILE
            logging.disable(logging.WARNING)
            try:
                from onnxruntime.quantization import QuantType, quantize_dynamic

                quantize_dynamic(str(index_dir / AUDIO_ONNX_FILE), str(graph), weight_type=QuantType.QInt8)
            except Exception as exc:
                raise ModelLoadError(f"could not quantize the audio tower ({type(exc).__name__}: {exc})") from None
            finally:
                logging.disable(logging.NOTSET)
            os.replace(graph, target)
    feats = mel(_check_windows()).numpy()  # type: ignore[operator]
    session = _session(target)
    out = session.run(None, {"input_features": feats})[0]
    ref = fp32_session.run(None, {"input_features": feats})[0]  # type: ignore[attr-defined]
    cosine = float(np.min(np.sum(out * ref, axis=1)))
    if cosine < MIN_COSINE_AUDIO_INT8:
        target.unlink(missing_ok=True)
        raise ModelLoadError(f"the int8 audio tower strays from fp32 (cosine {cosine:.5f}); indexing stays in fp32")
    return session, cosine
