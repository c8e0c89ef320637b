"""The ONNX towers (musicsearch/onnx_towers.py) as indexing and querying use them: the text
tower exported and checked after indexing, queries through it without torch, the audio tower
on onnxruntime on a CPU (and its opt-in int8 copy), each checked against torch."""

import numpy as np
import pytest
from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()


@pytest.fixture
def indexed(tmp_path, library, tiny_model, monkeypatch):
    monkeypatch.setenv("MUSICSEARCH_NO_MODEL_CHECK", "1")  # random weights look collapsed
    idx = tmp_path / "idx"
    (library / "broken.wav").write_bytes(b"RIFF....garbage")
    r = runner.invoke(app, ["index", str(library), "--index", str(idx), "--model", str(tiny_model), "-q"])
    assert r.exit_code == 0, r.output
    return idx, r.output


def test_index_exports_a_checked_onnx_text_tower(indexed, tiny_model):
    from musicsearch.embed import ClapEmbedder
    from musicsearch.onnx_towers import ONNX_FILE, TOKENIZER_FILE, OnnxTextEncoder

    idx, out = indexed
    torch_side = ClapEmbedder(str(tiny_model), device="cpu")
    prepared = torch_side.prepared  # the model's folder in the prepared-model cache, shared by every index
    assert prepared.has(ONNX_FILE, TOKENIZER_FILE) and "exported the text tower to ONNX" in out
    assert not list(idx.glob("*.onnx"))  # nothing model-sized in the index folder
    facts = prepared.facts()
    kind, cosine = facts["text_onnx"], float(facts["text_onnx_cosine"])
    assert kind in ("int8", "fp32") and cosine >= (0.999 if kind == "int8" else 0.9999)
    assert float(facts["logit_scale"]) > 1
    onnx = OnnxTextEncoder.from_prepared(prepared)
    assert onnx is not None and (onnx.dim, onnx.logit_scale) == (16, facts["logit_scale"])
    for texts in (["x"], ["a much longer prompt about slow sad solo piano music", "drums"], ["word " * 200]):
        assert (np.sum(onnx.embed_texts(texts) * torch_side.embed_texts(texts), axis=1) >= 0.999).all()


def test_query_through_onnx_does_not_import_torch(indexed):
    import subprocess
    import sys

    idx, _ = indexed
    code = (
        "import sys, json\n"
        "from musicsearch.cli import app\n"
        "try:\n"
        f"    app(['query', 'calm strings', '--index', {str(idx)!r}, '--json', '--no-model-check'])\n"
        "except SystemExit:\n"
        "    pass\n"
        "print('TORCH' if 'torch' in sys.modules else 'NO-TORCH', 'TRANSFORMERS' if 'transformers' in sys.modules else 'NO-TRANSFORMERS')\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "NO-TORCH NO-TRANSFORMERS"
    assert '"rank": 1' in out


def test_cpu_indexing_uses_a_checked_onnx_audio_tower(indexed, tiny_model, library):
    from musicsearch.audio import iter_windows
    from musicsearch.embed import ClapEmbedder
    from musicsearch.onnx_towers import AUDIO_ONNX_FILE, OnnxAudioTower

    _idx, out = indexed
    windows = np.stack([w.samples for w in iter_windows(library / "low" / "t150.wav")])
    torch_side = ClapEmbedder(str(tiny_model), device="cpu")
    onnx_side = ClapEmbedder(str(tiny_model), device="cpu")
    assert onnx_side.prepared.has(AUDIO_ONNX_FILE) and "audio tower on onnxruntime (cosine" in out
    assert onnx_side.use_onnx_audio() is None  # reuses the prepared graph
    assert onnx_side._audio_model is None and isinstance(onnx_side.audio_tower(), OnnxAudioTower)
    cos = np.sum(torch_side.embed_windows(windows) * onnx_side.embed_windows(windows), axis=1)
    assert (cos >= 0.9999).all()


@pytest.mark.parametrize("threshold", [0.99, 1.01])  # the real bar, and one no graph can pass
def test_int8_audio_tower_is_checked_before_use(tmp_path, library, tiny_model, monkeypatch, threshold):
    import musicsearch.onnx_towers as towers
    from musicsearch.audio import iter_windows
    from musicsearch.embed import ClapEmbedder

    monkeypatch.setenv("MUSICSEARCH_NO_MODEL_CHECK", "1")
    monkeypatch.setattr(towers, "MIN_COSINE_AUDIO_INT8", threshold)
    idx = tmp_path / "i8"
    r = runner.invoke(app, ["index", str(library), "--index", str(idx), "--model", str(tiny_model), "-q", "--int8"])
    assert r.exit_code == 0, r.output
    assert "4 added" in r.output
    e = ClapEmbedder(str(tiny_model), device="cpu")
    if threshold > 1:  # refused: said so, and indexing went on in fp32
        assert "strays from fp32" in r.output and not e.prepared.has(towers.AUDIO_INT8_FILE)
        return
    assert "int8 copy, cosine" in r.output and e.prepared.has(towers.AUDIO_INT8_FILE)
    windows = np.stack([w.samples for w in iter_windows(library / "low" / "t150.wav")])
    reference = ClapEmbedder(str(tiny_model), device="cpu").embed_windows(windows)
    e.use_onnx_audio(int8=True)
    assert e.audio_tower().int8
    assert (np.sum(e.embed_windows(windows) * reference, axis=1) >= 0.99).all()


def test_queries_after_indexing_are_repeatable_and_use_onnx(tmp_path, library, tiny_model):
    from musicsearch import MusicIndex, Settings
    from musicsearch.onnx_towers import OnnxTextEncoder

    idx = MusicIndex(tmp_path / "i", settings=Settings(model=str(tiny_model), model_check=False))
    idx.index(library)  # exports the text tower from the loaded model
    first = [(h.track.id, h.score) for h in idx.search("slow sad piano", k=4)]
    assert [(h.track.id, h.score) for h in idx.search("slow sad piano", k=4)] == first
    assert isinstance(idx.context.text_encoder(), OnnxTextEncoder)
    assert idx.context.embedder()._text is None  # the export freed the torch text tower (reloaded if needed)
    fresh = MusicIndex(tmp_path / "i", settings=Settings(model_check=False))
    assert [(h.track.id, round(h.score, 5)) for h in fresh.search("slow sad piano", k=4)] == [
        (i, round(s, 5)) for i, s in first
    ]
