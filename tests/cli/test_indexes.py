"""``musicsearch indexes`` and ``--index NAME``: several libraries, each an index with a name."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import musicsearch.context
from musicsearch.cli import app

runner = CliRunner()


@pytest.fixture
def fake_model(monkeypatch, fake_embedder_cls):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())


@pytest.fixture
def data_home(isolated_home):
    return isolated_home["XDG_DATA_HOME"] / "musicsearch"


def test_named_indexes_are_made_listed_and_searched_by_name(data_home, catalog, fake_model, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["indexes"])
    assert r.exit_code == 0 and r.output.startswith(f"No indexes yet in {data_home / 'indexes'}.")
    for name, folder in (("jazz", "jazz"), ("rock", "rock")):
        r = runner.invoke(app, ["index", str(catalog / folder), "--index", name, "-q"])
        assert r.exit_code == 0, r.output
        assert (data_home / "indexes" / name / "musicsearch.db").is_file()
    r = runner.invoke(app, ["query", "anything", "--index", "rock", "-k", "20", "--json"])
    assert r.exit_code == 0, r.output
    assert [h["genre"] for h in json.loads(r.output)] == ["Rock"] * 10
    listed = json.loads(runner.invoke(app, ["indexes", "--json"]).output)
    assert [(e["name"], e["tracks"], e["model"], e["path"]) for e in listed] == [
        ("jazz", 10, "fake-embedder", str(data_home / "indexes" / "jazz")),
        ("rock", 10, "fake-embedder", str(data_home / "indexes" / "rock")),
    ]
    r = runner.invoke(app, ["indexes"])
    lines = r.output.splitlines()
    assert lines[0].split() == ["NAME", "TRACKS", "MODEL", "SIZE", "LAST", "RUN"]
    assert lines[1].split()[:3] == ["jazz", "10", "fake-embedder"] and " MB " in lines[1] and lines[1].endswith("UTC")
    assert lines[2].split()[:3] == ["rock", "10", "fake-embedder"]
    assert lines[3] == f"({data_home / 'indexes'})"
    assert not (tmp_path / "jazz").exists()  # a name is not a folder here


def test_a_path_still_works(catalog, fake_model, tmp_path, monkeypatch, data_home):
    monkeypatch.chdir(tmp_path)
    for given, made in (("./here", tmp_path / "here"), (str(tmp_path / "abs"), tmp_path / "abs")):
        r = runner.invoke(app, ["index", str(catalog / "jazz"), "--index", given, "-q"])
        assert r.exit_code == 0, r.output
        assert (made / "musicsearch.db").is_file()
    (tmp_path / "jazz-idx").mkdir()  # an existing folder given by its bare name stays that folder
    assert runner.invoke(app, ["index", str(catalog / "jazz"), "--index", "jazz-idx", "-q"]).exit_code == 0
    assert (tmp_path / "jazz-idx" / "musicsearch.db").is_file()
    r = runner.invoke(app, ["info", "--index", "./here", "--json"])
    assert json.loads(r.output)["tracks"] == 10
    assert not (data_home / "indexes").exists()


def test_the_older_default_index_is_still_found(data_home, catalog, fake_embedder_cls, monkeypatch):
    """An index at today's default place (the data folder's ``index``), built before names:
    a new process with no ``--index`` still uses it, and ``indexes`` lists it as default."""
    from musicsearch import MusicIndex
    from musicsearch.config import Settings

    old = data_home / "index"
    with MusicIndex(settings=Settings(index_dir=old), embedder=fake_embedder_cls()) as idx:
        idx.index(catalog)
    monkeypatch.delenv("MUSICSEARCH_INDEX")
    code = "from musicsearch.cli import app; app()"
    info = subprocess.run([sys.executable, "-c", code, "info", "--json"], capture_output=True, text=True)
    assert info.returncode == 0, info.stderr
    assert (json.loads(info.stdout)["path"], json.loads(info.stdout)["tracks"]) == (str(old), 20)
    listed = subprocess.run([sys.executable, "-c", code, "indexes", "--json"], capture_output=True, text=True)
    assert [(e["name"], e["path"], e["tracks"]) for e in json.loads(listed.stdout)] == [("default", str(old), 20)]
