import numpy as np
import pytest
import torch
from transformers import ClapModel, ClapProcessor

from musicsearch.audio import repeatpad
from musicsearch.embed import (
    ClapEmbedder,
    mean_pairwise_cosine,
    pick_device,
)
from musicsearch.engine import check_not_collapsed
from musicsearch.errors import CollapsedModel, ModelLoadError

W = 480_000


@pytest.fixture(scope="module")
def reference(tiny_model):
    return ClapModel.from_pretrained(tiny_model).eval(), ClapProcessor.from_pretrained(tiny_model)


@pytest.fixture(scope="module")
def embedder(tiny_model):
    return ClapEmbedder(str(tiny_model), device="cpu")


def test_loads_config_facts(embedder, tiny_model):
    assert embedder.model_id == str(tiny_model.resolve())
    assert embedder.dim == 16 and embedder.window_seconds == 10.0


def test_window_embeddings_equal_reference_path(embedder, reference, noise, tone):
    model, proc = reference
    clips = [noise(10, seed=1), tone(440, 10), np.zeros(W, np.float32), tone(1000, 2.5)]
    windows = np.stack([c if len(c) == W else repeatpad(c, W) for c in clips])
    ours = embedder.embed_windows(windows)
    for clip, vec in zip(clips, ours):
        inputs = proc(audio=[clip], sampling_rate=48_000, return_tensors="pt")
        with torch.no_grad():
            ref = model.get_audio_features(**inputs).pooler_output[0].numpy()
        assert float(np.dot(ref, vec)) >= 0.99999
        assert abs(np.linalg.norm(vec) - 1) < 1e-5


def test_text_embeddings_equal_reference_path(embedder, reference):
    model, proc = reference
    texts = ["solo piano, slow and sad", "upbeat electronic with a strong bassline " * 30]
    ours = embedder.embed_texts(texts)
    batch = proc.tokenizer(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        ref = model.get_text_features(**batch).pooler_output.numpy()
    assert (np.sum(ours * ref, axis=1) >= 0.99999).all()


def test_missing_folder_and_offline_hub_id_are_one_line_errors(tmp_path, monkeypatch):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    with pytest.raises(ModelLoadError, match="cannot load model from folder"):
        ClapEmbedder(str(bad))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        ClapEmbedder("someone/no-such-clap-model")
    assert "could not be downloaded" in str(err.value) or "cannot be reached" in str(err.value)
    assert "--model also accepts a local folder" in str(err.value)
    assert "\n" not in str(err.value)


def test_collapse_guard(fake_embedder_cls):
    class Collapsed(fake_embedder_cls):
        model_id = "collapsed"

        def embed_texts(self, texts):
            v = np.ones((len(texts), self.dim), np.float32)
            v += np.random.default_rng(0).standard_normal(v.shape).astype(np.float32) * 1e-3
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    with pytest.raises(CollapsedModel, match="same vector for any text") as err:
        check_not_collapsed(Collapsed())
    assert "laion/larger_clap_general" in str(err.value)
    assert check_not_collapsed(fake_embedder_cls()) < 0.95


def test_random_weight_clap_looks_collapsed(embedder):
    # why random-weight test models must opt out of the guard
    from musicsearch.embed import PROBE_PROMPTS

    assert mean_pairwise_cosine(embedder.embed_texts(list(PROBE_PROMPTS))) > 0.95


def test_pick_device():
    assert pick_device("cpu") == "cpu"
    assert pick_device("auto") in {"cuda", "mps", "cpu"}
    if not torch.cuda.is_available():
        assert pick_device("auto") in {"mps", "cpu"}


CHILD_CASES = """
import logging, os, sys, time
import musicsearch.embed as embed
import musicsearch.onnx_towers as towers
from musicsearch.errors import ModelLoadError
logging.basicConfig(level=logging.WARNING, stream=sys.stdout, format="WARNING %(message)s")
model, root = sys.argv[1], sys.argv[2]

def case(name, **patches):
    os.environ["MUSICSEARCH_CACHE"] = os.path.join(root, name)
    saved = {k: getattr(towers if hasattr(towers, k) else embed, k) for k in patches}
    for k, v in patches.items():
        setattr(towers if hasattr(towers, k) else embed, k, v)
    e = embed.ClapEmbedder(model, device="cpu")
    started = e.start_text_preparation()
    again = e.start_text_preparation()
    try:
        print(name, started, again, e.text_preparing(), *e.prepare_text_onnx(), e.text_prepared(), os.getpid())
    except ModelLoadError as exc:
        print(name, started, again, "error", exc, e.text_prepared(), e.prepared.has(towers.ONNX_FILE))
    print(name, "tmp left", list(e.prepared.folder.glob("tmp-*")))
    for k, v in saved.items():
        setattr(towers if hasattr(towers, k) else embed, k, v)

def export_reporting_gc(*args):  # what the child's collector looked like during an export
    import gc
    return float(gc.get_freeze_count() > 0), "int8" if not gc.isenabled() else "fp32"

case("gc", export_text_tower=export_reporting_gc)
case("fallback", MIN_COSINE_INT8=1.01)
case("dies", export_text_tower=lambda *args: os._exit(3))
case("hangs", export_text_tower=lambda *args: time.sleep(120), TEXT_CHILD_TIMEOUT_S=1.0)
case("refused", MIN_COSINE=1.01, MIN_COSINE_INT8=1.01)
e = embed.ClapEmbedder(model, device="cpu")
sys.modules["grpc"] = sys  # a process with gRPC threads is not forked
print("grpc", e.start_text_preparation(), e.text_preparing())
"""


def test_the_text_tower_prepared_in_a_child_process_and_its_failures(tmp_path, tiny_model):
    """In a clean process (this one may run Ray's threads): the child's result and WARNINGs
    reach the parent; a child that dies, hangs or disagrees leaves queries on torch with
    nothing installed; a process with gRPC loaded is not forked (said at WARNING)."""
    import subprocess
    import sys

    run = subprocess.run(
        [sys.executable, "-c", CHILD_CASES, str(tiny_model), str(tmp_path)], capture_output=True, text=True, timeout=600
    )
    out = run.stdout.splitlines()
    assert run.returncode == 0, run.stderr[-2000:]
    line = {w.split()[0]: w for w in out if not w.startswith("WARNING") and "tmp left" not in w}
    fallback = line["fallback"].split()
    assert fallback[1:4] == ["True", "False", "True"] and fallback[5] == "fp32" and fallback[6] == "True"
    assert float(fallback[4]) >= 0.9999 and any("strays from torch" in w for w in out if w.startswith("WARNING"))
    assert "died (exit code 3); queries stay on torch False False" in line["dies"]
    assert "took over 1 s and was stopped (exit code -9)" in line["hangs"] and line["hangs"].endswith("False False")
    assert "text tower disagrees" in line["refused"] and line["refused"].endswith("False False")
    assert all(w.endswith("tmp left []") for w in out if "tmp left" in w)
    assert line["grpc"] == "grpc False False" and any("grpc loaded" in w for w in out)
    # the child froze what it inherited, and its export ran with the collector deferred
    assert line["gc"].split()[1:6] == ["True", "False", "True", "1.0", "int8"]


def test_a_process_with_other_threads_is_not_forked(tiny_model, caplog):
    import threading

    stop = threading.Event()
    thread = threading.Thread(target=stop.wait)
    thread.start()
    try:
        e = ClapEmbedder(str(tiny_model), device="cpu")
        with caplog.at_level("WARNING"):
            assert not e.start_text_preparation() and not e.text_preparing()
        assert "prepared after the run, not beside it (forking this process is unsafe" in caplog.text
    finally:
        stop.set()
        thread.join()
