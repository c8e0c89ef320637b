import pytest

from musicsearch.clap import ClapEmbedder
from musicsearch.errors import ModelLoadError
from musicsearch.loading import resolve_model


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


def test_resolve_model_names_a_folder_absolutely_and_leaves_a_hub_id(tmp_path, monkeypatch):
    (tmp_path / "clap").mkdir()
    monkeypatch.chdir(tmp_path)
    assert resolve_model("clap") == str((tmp_path / "clap").resolve())
    assert resolve_model("laion/larger_clap_general") == "laion/larger_clap_general"
