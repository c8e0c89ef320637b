import shutil

import pytest

import musicsearch.loading
from musicsearch.clap import ClapEmbedder
from musicsearch.errors import ModelLoadError
from musicsearch.loading import ModelUnavailable, fetch_model, resolve_model


def test_missing_folder_and_offline_hub_id_are_one_line_errors(tmp_path, monkeypatch):
    bad = tmp_path / "not-a-model"
    bad.mkdir()
    with pytest.raises(ModelLoadError, match="cannot load model from folder"):
        ClapEmbedder(str(bad))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        ClapEmbedder("someone/no-such-clap-model")
    assert str(err.value) == (
        "could not load model 'someone/no-such-clap-model': it is not cached and the Hub cannot be reached "
        "(offline?); on a machine with a network run 'musicsearch model fetch someone/no-such-clap-model "
        "--to ~/clap', copy that folder to ~/clap here and pass --model ~/clap (Python: Settings(model='~/clap'))"
    )


def test_resolve_model_names_a_folder_absolutely_and_leaves_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "clap").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("clap") == str((tmp_path / "clap").resolve())
    assert resolve_model("laion/larger_clap_general") == "laion/larger_clap_general"


def test_the_offline_message_names_the_revision_and_each_front_ends_way_to_pass_a_folder(monkeypatch):
    monkeypatch.setattr(musicsearch.loading, "_hub_reachable", lambda timeout=3.0: False)
    with pytest.raises(ModelUnavailable) as err:
        ClapEmbedder("someone/clap", revision="v2")
    assert "run 'musicsearch model fetch someone/clap --revision v2 --to ~/clap'" in str(err.value)
    assert err.value.way_out("set 'model: {folder}' in the config").endswith(
        "copy that folder to ~/clap here and set 'model: ~/clap' in the config"
    )
    assert isinstance(err.value, ModelLoadError)


def test_fetch_copies_a_model_folder_into_a_new_folder_that_loads(tiny_model, tmp_path):
    (tmp_path / "src").mkdir()
    for f in tiny_model.iterdir():
        shutil.copy2(f, tmp_path / "src" / f.name)
    (tmp_path / "src" / "README.md").write_text("not needed")
    got = fetch_model(str(tmp_path / "src"), tmp_path / "out" / "clap")
    assert got == tmp_path / "out" / "clap"
    assert sorted(p.name for p in got.iterdir()) == sorted(p.name for p in tiny_model.iterdir())
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["clap"]  # no partial folder left
    assert ClapEmbedder(str(got)).embed_texts(["a drum loop"]).shape[0] == 1


def test_fetch_refuses_a_used_folder_an_unreachable_hub_and_a_folder_with_no_model(tiny_model, tmp_path, monkeypatch):
    used = tmp_path / "used"
    used.mkdir()
    (used / "x").write_text("x")
    with pytest.raises(ModelLoadError, match="already exists and is not an empty folder"):
        fetch_model(str(tiny_model), used)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelLoadError) as err:
        fetch_model("laion/larger_clap_general", tmp_path / "clap")
    assert str(err.value).startswith(
        "cannot fetch 'laion/larger_clap_general': the Hub cannot be reached from this machine (offline?)"
    )
    half = tmp_path / "half"
    half.mkdir()
    shutil.copy2(tiny_model / "config.json", half / "config.json")
    with pytest.raises(ModelLoadError, match="has no model weights"):
        fetch_model(str(half), tmp_path / "clap")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["half", "used"]


def test_fetch_from_the_hub_asks_for_the_config_processor_and_one_set_of_weights(tiny_model, tmp_path, monkeypatch):
    """The Hub stands in as a listing and a download served from the tiny model's folder."""
    import huggingface_hub

    hub_files = [p.name for p in tiny_model.iterdir()] + ["pytorch_model.bin", "README.md", "onnx/model.onnx"]
    asked = {}

    def snapshot_download(repo_id, revision=None, local_dir=None, allow_patterns=None):
        asked.update(repo=repo_id, revision=revision, files=sorted(allow_patterns))
        for name in allow_patterns:
            shutil.copy2(tiny_model / name, local_dir / name)
        (local_dir / ".cache").mkdir()
        return str(local_dir)

    monkeypatch.setattr(musicsearch.loading, "_hub_reachable", lambda timeout=3.0: True)
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo, revision=None: hub_files)
    monkeypatch.setattr(huggingface_hub, "snapshot_download", snapshot_download)
    got = fetch_model("someone/clap", tmp_path / "clap", revision="main")
    assert asked == {"repo": "someone/clap", "revision": "main", "files": sorted(p.name for p in tiny_model.iterdir())}
    assert sorted(p.name for p in got.iterdir()) == asked["files"]  # the client's .cache is gone
    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", lambda self, repo, revision=None: ["README.md"])
    with pytest.raises(ModelLoadError, match="'someone/other' on the Hub holds no model files"):
        fetch_model("someone/other", tmp_path / "other")

    def missing(self, repo, revision=None):
        raise OSError("404 Client Error: Repository Not Found\nmore")  # as the client words it

    monkeypatch.setattr(huggingface_hub.HfApi, "list_repo_files", missing)
    with pytest.raises(ModelLoadError) as err:
        fetch_model("someone/missing", tmp_path / "missing")
    assert (
        str(err.value) == "could not fetch model 'someone/missing' from the Hub: 404 Client Error: Repository Not Found"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clap"]
