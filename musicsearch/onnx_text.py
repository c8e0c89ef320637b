"""The text tower as an ONNX graph stored in the index folder, so a query needs only
onnxruntime + tokenizers + faiss (about 0.3 s to import) instead of torch + transformers
(6-8 s). Exported once per index from the index's own model and checked against torch."""

from __future__ import annotations

import os
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .errors import ModelLoadError

ONNX_FILE = "text-tower.onnx"
TOKENIZER_FILE = "text-tokenizer.json"
CHECK_PROMPTS = (
    "upbeat electronic with a strong bassline", "solo piano, slow and sad", "warm analog synth pads",
    "heavy metal with distorted guitars", "a quiet acoustic folk song with a female singer",
    "orchestral film score with epic drums " * 8,  # longer than 77 tokens: truncation
)
MIN_COSINE = 0.9999
MAX_TOKENS = 77


def export_text_tower(model_id: str, revision: str | None, index_dir: Path) -> float:
    """Export ``ClapTextModelWithProjection`` + L2 normalization to ``index_dir`` and check
    it against torch on ``CHECK_PROMPTS``.

    Returns:
        The lowest cosine between the ONNX and torch embeddings.

    Raises:
        ModelLoadError: the export fails or disagrees with torch (cosine < MIN_COSINE);
            nothing is left in ``index_dir`` then.
    """
    import torch
    from transformers import AutoTokenizer, ClapTextModelWithProjection

    from .embed import _load

    model = _load(ClapTextModelWithProjection, model_id, revision).eval()
    tokenizer = _load(AutoTokenizer, model_id, revision)

    class Normalized(torch.nn.Module):
        def __init__(self, inner: torch.nn.Module):
            super().__init__()
            self.inner = inner

        def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
            out = self.inner(input_ids=input_ids, attention_mask=attention_mask).text_embeds
            return torch.nn.functional.normalize(out, dim=-1)

    batch = tokenizer(list(CHECK_PROMPTS), padding=True, truncation=True, max_length=MAX_TOKENS, return_tensors="pt")
    wrapped = Normalized(model)
    with torch.inference_mode():
        reference = wrapped(batch["input_ids"], batch["attention_mask"]).numpy()
    with tempfile.TemporaryDirectory(dir=index_dir) as tmp:
        graph = Path(tmp) / ONNX_FILE
        try:
            with warnings.catch_warnings():  # tracer chatter; the check below is what counts
                warnings.simplefilter("ignore")
                torch.onnx.export(
                    wrapped, (batch["input_ids"], batch["attention_mask"]), str(graph),
                    input_names=["input_ids", "attention_mask"], output_names=["embeds"],
                    dynamic_axes={"input_ids": {0: "batch", 1: "tokens"}, "attention_mask": {0: "batch", 1: "tokens"},
                                  "embeds": {0: "batch"}},
                    opset_version=17, dynamo=False,
                )
            tokenizer.backend_tokenizer.save(str(Path(tmp) / TOKENIZER_FILE))
        except Exception as exc:
            raise ModelLoadError(f"could not export the text tower to ONNX ({type(exc).__name__}: {exc})") from None
        encoder = OnnxTextEncoder(Path(tmp), model_id, revision, reference.shape[1], pad_id=tokenizer.pad_token_id)
        cosine = float(np.min(np.sum(encoder.embed_texts(CHECK_PROMPTS) * reference, axis=1)))
        if cosine < MIN_COSINE:
            raise ModelLoadError(f"the ONNX text tower disagrees with torch (cosine {cosine:.6f}); queries stay on torch")
        for name in (ONNX_FILE, TOKENIZER_FILE):
            os.replace(Path(tmp) / name, index_dir / name)
    return cosine


class OnnxTextEncoder:
    """Embeds prompts with the exported graph; the text half of the ``Embedder`` shape."""

    def __init__(self, folder: Path, model_id: str, revision: str | None, dim: int, pad_id: int = 1):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.model_id, self.revision, self.dim = model_id, revision, dim
        options = ort.SessionOptions()
        options.log_severity_level = 3
        self._session = ort.InferenceSession(str(folder / ONNX_FILE), options, providers=["CPUExecutionProvider"])
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

