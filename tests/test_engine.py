"""The engine choice (musicsearch/engine.py): ONNX or torch for CLAP's audio tower, the notes a
run reports, how a cluster node builds the model; any other embedder runs as it is."""

from __future__ import annotations

from musicsearch import Settings


def test_a_first_run_on_a_cpu_prepares_onnx_whatever_its_size(tmp_path, tiny_model, monkeypatch):
    """The audio graph is exported once per machine anyway, so even a 5-window first run
    exports it first and embeds with it (not the torch tower, then the export)."""
    import musicsearch.engine as engine
    from musicsearch.clap import ClapEmbedder
    from musicsearch.onnx_towers import AUDIO_ONNX_FILE, OnnxAudioTower

    off = ClapEmbedder(str(tiny_model), device="cpu")
    assert engine.prepare_audio(off, Settings(device="cpu", onnx_audio=False), windows=5) == []
    assert not off.prepared.has(AUDIO_ONNX_FILE) and not isinstance(off.audio_tower(), OnnxAudioTower)
    small = ClapEmbedder(str(tiny_model), device="cpu")
    notes = engine.prepare_audio(small, Settings(device="cpu"), windows=5)
    assert notes and "audio tower on onnxruntime" in notes[0] and small.prepared.has(AUDIO_ONNX_FILE)
    assert isinstance(small.audio_tower(), OnnxAudioTower) and small._audio_model is None  # torch tower freed
    again = ClapEmbedder(str(tiny_model), device="cpu")
    assert engine.prepare_audio(again, Settings(device="cpu"), windows=600) == []  # prepared once: reused
    assert isinstance(again.audio_tower(), OnnxAudioTower)


def test_any_other_embedder_runs_as_it_is(fake):
    from musicsearch.engine import node_factory, prepare_audio, prepare_queries, run_notes

    settings = Settings(device="cpu")
    assert prepare_audio(fake, settings, windows=5) == [] and prepare_queries(fake, settings) == []
    assert run_notes(fake) == []
    factory = node_factory(fake, settings)
    assert factory(True) is fake and factory(False) is fake  # shipped to the nodes as it is


def test_a_cluster_node_rebuilds_clap_from_its_id(tiny_model):
    import pickle

    from musicsearch.clap import ClapEmbedder
    from musicsearch.engine import node_factory, run_notes

    clap = ClapEmbedder(str(tiny_model), device="cpu", precision="fp16")  # fp16 is for CUDA: refused, noted
    assert run_notes(clap) and run_notes(clap) == []  # taken once
    factory = pickle.loads(pickle.dumps(node_factory(clap, Settings(device="cpu", onnx_audio=False))))
    light = factory(False)
    assert isinstance(light, ClapEmbedder) and light is not clap
    assert (light.model_id, light.device, light.dim) == (clap.model_id, "cpu", clap.dim)
