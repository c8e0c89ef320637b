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
    from musicsearch.clap import ClapEmbedder
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


NOT_FOR_A_QUERY = (
    "torch",
    "transformers",
    "musicsearch.indexing.runner",
    "musicsearch.indexing.feed",
    "musicsearch.indexing.ingest",
    "musicsearch.audio",
    "soundfile",
    "librosa",
    "fastapi",
    "musicsearch.subsonic.router",
    "tqdm",
)


def test_a_query_imports_only_what_a_query_needs(indexed):
    """``musicsearch query`` through the prepared ONNX text graph, in a process of its own,
    imports neither torch nor transformers, nor the index run, audio decoding or the web app."""
    import subprocess
    import sys

    idx, _ = indexed
    code = (
        "import runpy, sys\n"
        f"sys.argv = ['musicsearch', 'query', 'calm strings', '--index', {str(idx)!r}, '--json', '--no-model-check']\n"
        "try:\n"
        "    runpy.run_module('musicsearch', run_name='__main__')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"print('IMPORTED', [m for m in {NOT_FOR_A_QUERY!r} if m in sys.modules])\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip().splitlines()[-1] == "IMPORTED []"
    assert '"rank": 1' in out


def test_the_text_session_loads_the_graph_optimized_once_with_the_same_vectors(indexed, tiny_model, caplog):
    import musicsearch.onnx_towers as towers
    from musicsearch.clap import ClapEmbedder
    from musicsearch.onnx_towers import ONNX_FILE, TEXT_OPTIMIZED_PREFIX, OnnxTextEncoder

    prepared = ClapEmbedder(str(tiny_model), device="cpu").prepared
    saved = sorted(prepared.folder.glob(TEXT_OPTIMIZED_PREFIX + "*"))
    assert [p.suffix for p in saved] == [".onnx", ".data"]  # saved by the export's check, weights beside it
    graph, stamp = saved[0], saved[0].stat().st_mtime_ns
    encoder = OnnxTextEncoder.from_prepared(prepared)
    assert encoder is not None and graph.stat().st_mtime_ns == stamp  # loaded, not optimized again
    plain = OnnxTextEncoder(
        towers._session(prepared.path(ONNX_FILE), prepack=False), encoder._tokenizer, "m", None, 16, 1.0
    )
    texts = ["x", "a much longer prompt about slow sad solo piano music", "drums " * 100]
    assert np.array_equal(encoder.embed_texts(texts), plain.embed_texts(texts))
    graph.write_bytes(b"not a graph")  # damaged: optimized and saved again, with a warning
    again = OnnxTextEncoder.from_prepared(prepared)
    assert again is not None and "optimizing it again" in caplog.text
    assert np.array_equal(again.embed_texts(texts), plain.embed_texts(texts))
    assert graph.stat().st_size > 1000 and not list(prepared.folder.glob("tmp-*"))


def test_cpu_indexing_uses_a_checked_onnx_audio_tower(indexed, tiny_model, library):
    from musicsearch.audio import iter_windows
    from musicsearch.clap import ClapEmbedder
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
    from musicsearch.clap import ClapEmbedder

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


def _graph(values: dict[str, np.ndarray]):
    """x (batch, 8) @ W (8, 4) and a Gather of rows ``ids`` from a table T (10, 4): the shapes
    of a Linear layer and an embedding table, with W and T declared as initializers whose
    values are kept aside (as ``_export`` hands them over)."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("MatMul", ["x", "W"], ["y"]), helper.make_node("Gather", ["T", "ids"], ["rows"], axis=0)],
        "g",
        [
            helper.make_tensor_value_info("x", TensorProto.FLOAT, ["batch", 8]),
            helper.make_tensor_value_info("ids", TensorProto.INT64, ["n"]),
        ],
        [
            helper.make_tensor_value_info("y", TensorProto.FLOAT, ["batch", 4]),
            helper.make_tensor_value_info("rows", TensorProto.FLOAT, ["n", 4]),
        ],
        [TensorProto(name=n, dims=list(v.shape), data_type=TensorProto.FLOAT) for n, v in values.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)], ir_version=8)


def test_int8_quantizer_writes_int8_weights_and_stays_close(tmp_path):
    import onnx
    import onnxruntime as ort
    from onnx import numpy_helper

    from musicsearch.onnx_towers import _save_external, quantize_int8

    rng = np.random.default_rng(0)
    values = {"W": rng.standard_normal((8, 4)).astype(np.float32), "T": rng.standard_normal((10, 4)).astype(np.float32)}
    values["W"][2, 1] = -3.5  # the largest magnitude sets the scale
    model = _graph(values)
    assert quantize_int8(model, values, tmp_path / "int8.onnx") == 2
    _save_external(model, values, tmp_path / "fp32.onnx")
    assert not list(tmp_path.glob("int8.onnx.data"))  # the int8 graph is one file
    saved = {i.name: numpy_helper.to_array(i) for i in onnx.load(str(tmp_path / "int8.onnx")).graph.initializer}
    assert float(saved["W_scale"]) == np.float32(3.5 / 127)
    assert saved["W_int8"].dtype == np.int8 and saved["W_int8"][2, 1] == -127
    np.testing.assert_array_equal(saved["W_int8"], np.rint(values["W"] / np.float32(3.5 / 127)).astype(np.int8))
    ops = [n.op_type for n in onnx.load(str(tmp_path / "int8.onnx")).graph.node]
    assert "MatMul" not in ops and {"MatMulInteger", "DynamicQuantizeLinear", "DequantizeLinear"} <= set(ops)

    feeds = {"x": rng.standard_normal((3, 8)).astype(np.float32), "ids": np.array([0, 9, 9, 4])}
    fp32 = ort.InferenceSession(str(tmp_path / "fp32.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    int8 = ort.InferenceSession(str(tmp_path / "int8.onnx"), providers=["CPUExecutionProvider"]).run(None, feeds)
    np.testing.assert_array_equal(fp32[1], values["T"][[0, 9, 9, 4]])  # the fp32 graph reads its external data
    t_scale = float(saved["T_scale"])
    np.testing.assert_allclose(int8[1], saved["T_int8"][[0, 9, 9, 4]] * t_scale, rtol=1e-6)  # exact int8 rows
    assert np.abs(int8[1] - fp32[1]).max() <= t_scale / 2 + 1e-6  # rounding: at most half a step
    assert 0 < np.abs(int8[0] - fp32[0]).max() < 0.1 * np.abs(fp32[0]).max()  # quantized, and close


def test_export_folds_linear_weights_and_its_reference_is_the_torch_output(tmp_path):
    import onnxruntime as ort
    import torch

    from musicsearch.onnx_towers import _export, _save_external

    torch.manual_seed(0)
    inner = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.GELU(), torch.nn.Linear(16, 4)).eval()
    x = torch.randn(3, 5, 8)  # 3-d input: the exporter writes MatMul(x, Transpose(W))
    reference, model, values = _export(
        torch,
        inner,
        lambda m, v: torch.nn.functional.normalize(m(v), dim=-1),
        {"x": x},
        {"x": {0: "batch"}},
        tmp_path / "g.onnx",
    )
    with torch.no_grad():
        np.testing.assert_array_equal(reference, torch.nn.functional.normalize(inner(x), dim=-1).numpy())
    matmuls = [n for n in model.graph.node if n.op_type == "MatMul"]
    inits = {i.name for i in model.graph.initializer}
    assert len(matmuls) == 2 and all(n.input[1] in inits for n in matmuls)  # B is a constant, not Transpose(W)
    assert [i.name for i in model.graph.input] == ["x"]  # the weights are no longer inputs
    np.testing.assert_array_equal(values[matmuls[0].input[1]], inner[0].weight.detach().numpy().T)
    _save_external(model, values, tmp_path / "g.onnx")
    session = ort.InferenceSession(str(tmp_path / "g.onnx"), providers=["CPUExecutionProvider"])
    assert session.run(None, {"x": torch.randn(2, 5, 8).numpy()})[0].shape == (2, 5, 4)  # another batch size
    np.testing.assert_allclose(session.run(None, {"x": x.numpy()})[0], reference, atol=1e-6)


@pytest.mark.parametrize("bar", [0.999, 1.01])  # the real bar, and one no int8 graph can pass
def test_the_text_graph_queries_load_is_the_checked_one(tiny_model, monkeypatch, caplog, bar):
    import musicsearch.onnx_towers as towers
    from musicsearch.clap import ClapEmbedder

    monkeypatch.setattr(towers, "MIN_COSINE_INT8", bar)
    e = ClapEmbedder(str(tiny_model), device="cpu")
    with caplog.at_level("WARNING"):
        cosine, kind = e.prepare_text_onnx()
    fp32_data = e.prepared.path(towers.FP32_TEXT_FILE + ".data")
    if bar > 1:  # refused: said so, and the fp32 graph (its weights beside it) is checked and kept
        assert kind == "fp32" and cosine >= towers.MIN_COSINE and "strays from torch" in caplog.text
        assert fp32_data.is_file()
    else:
        assert kind == "int8" and cosine >= bar and not caplog.text and not fp32_data.exists()
    assert not list(e.prepared.folder.glob("tmp-*"))
    onnx = towers.OnnxTextEncoder.from_prepared(e.prepared)
    assert onnx is not None
    texts = ["slow sad piano", "drums " * 100]
    assert (np.sum(onnx.embed_texts(texts) * e.embed_texts(texts), axis=1) >= min(bar, towers.MIN_COSINE)).all()


def test_a_failed_quantization_keeps_the_checked_fp32_graph(tiny_model, monkeypatch, caplog):
    import musicsearch.onnx_towers as towers
    from musicsearch.clap import ClapEmbedder

    def broken(*args, **kwargs):
        raise RuntimeError("no int8 today")

    monkeypatch.setattr(towers, "quantize_int8", broken)
    e = ClapEmbedder(str(tiny_model), device="cpu")
    with caplog.at_level("WARNING"):
        cosine, kind = e.prepare_text_onnx()
    assert kind == "fp32" and cosine >= towers.MIN_COSINE and "could not quantize" in caplog.text
    assert e.prepared.facts()["text_onnx"] == "fp32"


def test_a_graph_that_disagrees_with_torch_is_refused_and_torch_stays(tiny_model, monkeypatch, caplog):
    import musicsearch.engine as engine
    import musicsearch.onnx_towers as towers
    from musicsearch.clap import ClapEmbedder, TorchAudioTower
    from musicsearch.config import Settings
    from musicsearch.errors import ModelLoadError

    monkeypatch.setattr(towers, "MIN_COSINE", 1.01)  # no graph can pass
    monkeypatch.setattr(towers, "MIN_COSINE_INT8", 1.01)
    e = ClapEmbedder(str(tiny_model), device="cpu")
    with pytest.raises(ModelLoadError, match="text tower disagrees"):
        e.prepare_text_onnx()
    with caplog.at_level("WARNING"):
        notes = engine.prepare_audio(e, Settings(device="cpu"), windows=5)
    assert "audio tower disagrees" in notes[0] and "audio tower disagrees" in caplog.text
    assert isinstance(e.audio_tower(), TorchAudioTower)  # indexing goes on with torch
    assert not e.prepared.has(towers.ONNX_FILE) and not e.prepared.has(towers.AUDIO_ONNX_FILE)
    assert not list(e.prepared.folder.glob("tmp-*"))
    monkeypatch.setattr(towers, "MIN_COSINE", 0.9999)  # the real bar: the same model passes
    assert e.use_onnx_audio() >= 0.9999 and e.prepared.has(towers.AUDIO_ONNX_FILE, towers.AUDIO_ONNX_FILE + ".data")


def test_quantizing_from_a_read_once_mapping_frees_each_weight_and_writes_the_same_graph(tmp_path):
    """The text export's weights live only in a ``_Consumed`` mapping: each is dropped once
    quantized, and the int8 graph is byte for byte the one quantized from a plain dict."""
    import weakref

    from musicsearch.onnx_towers import _Consumed, quantize_int8

    rng = np.random.default_rng(1)
    values = {"W": rng.standard_normal((8, 4)).astype(np.float32), "T": rng.standard_normal((10, 4)).astype(np.float32)}
    model = _graph(values)
    owned = {name: array.copy() for name, array in values.items()}
    alive = [weakref.ref(array) for array in owned.values()]
    consumed = _Consumed(owned)
    assert sorted(consumed) == ["T", "W"] and len(consumed) == 2 and "W" in consumed
    assert quantize_int8(model, consumed, tmp_path / "a.onnx") == quantize_int8(model, values, tmp_path / "b.onnx") == 2
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert len(consumed) == 0 and not owned and all(ref() is None for ref in alive)
    with pytest.raises(KeyError):
        consumed["W"]


def test_an_int8_graph_removes_the_fp32_weights_an_earlier_fallback_left(tiny_model, monkeypatch):
    import musicsearch.onnx_towers as towers
    from musicsearch.clap import ClapEmbedder

    data = ClapEmbedder(str(tiny_model), device="cpu").prepared.path(towers.FP32_TEXT_FILE + ".data")
    monkeypatch.setattr(towers, "MIN_COSINE_INT8", 1.01)  # the fallback: the fp32 graph and its weights
    assert ClapEmbedder(str(tiny_model), device="cpu").prepare_text_onnx()[1] == "fp32" and data.is_file()
    monkeypatch.setattr(towers, "MIN_COSINE_INT8", 0.999)
    e = ClapEmbedder(str(tiny_model), device="cpu")
    assert e.prepare_text_onnx()[1] == "int8" and not data.exists()
    assert towers.OnnxTextEncoder.from_prepared(e.prepared) is not None


def test_a_small_run_starts_its_audio_session_without_prepacked_weights(tiny_model):
    """Below PREPACK_FROM_WINDOWS windows the session skips weight pre-packing (a faster start),
    whether it exports the graph now or loads the prepared one; a run of unknown or many
    windows packs them."""
    import musicsearch.onnx_towers as towers
    from musicsearch.clap import ClapEmbedder

    def unpacked(e: ClapEmbedder) -> bool:
        options = e.audio_tower().session.get_session_options()
        try:
            return options.get_session_config_entry("session.disable_prepacking") == "1"
        except Exception:  # onnxruntime raises for an entry never set
            return False

    fresh = ClapEmbedder(str(tiny_model), device="cpu")
    assert not fresh.audio_prepared()
    assert fresh.use_onnx_audio(windows=towers.PREPACK_FROM_WINDOWS - 1) >= 0.9999 and unpacked(fresh)
    for windows, expected in ((5, True), (towers.PREPACK_FROM_WINDOWS, False), (None, False)):
        again = ClapEmbedder(str(tiny_model), device="cpu")
        assert again.use_onnx_audio(windows=windows) is None  # the prepared graph
        assert unpacked(again) is expected, windows
