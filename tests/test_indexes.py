"""musicsearch/indexes.py: named indexes under the user data folder, and their listing."""

from __future__ import annotations

import pytest

from musicsearch import MusicIndex
from musicsearch.config import Settings
from musicsearch.indexes import list_indexes


@pytest.fixture
def data_home(isolated_home):
    return isolated_home["XDG_DATA_HOME"] / "musicsearch"


def test_a_named_index_from_python_is_made_and_listed(data_home, catalog, fake, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert list_indexes() == []
    with MusicIndex("jazz", embedder=fake) as idx:
        assert idx.path == data_home / "indexes" / "jazz"
        assert len(idx.index(catalog).added) == 20
    with MusicIndex("rock", embedder=fake) as idx:
        idx.index(catalog / "rock")
    (data_home / "indexes" / "empty-folder").mkdir()  # no database: not an index
    found = list_indexes()
    assert [e.name for e in found] == ["jazz", "rock"]
    jazz = found[0]
    assert (jazz.path, jazz.tracks, jazz.model, jazz.error) == (
        data_home / "indexes" / "jazz",
        20,
        "fake-embedder",
        None,
    )
    assert jazz.size_bytes == sum(p.stat().st_size for p in jazz.path.iterdir() if p.is_file()) > 0
    assert jazz.last_run.endswith(" UTC") and jazz.last_run[:2] == "20"
    assert jazz.to_json()["path"] == str(jazz.path)
    assert found[1].tracks == 10
    with MusicIndex("rock", embedder=fake) as idx:  # the name finds it again
        assert {h.track.genre for h in idx.search("anything", k=20)} == {"Rock"}


def test_the_older_default_index_is_listed_as_default(data_home, catalog, fake):
    old = data_home / "index"
    with MusicIndex(settings=Settings(index_dir=old), embedder=fake) as idx:
        idx.index(catalog)
    [entry] = list_indexes()
    assert (entry.name, entry.path, entry.tracks) == ("default", old, 20)
    with MusicIndex("default", embedder=fake) as idx:
        assert idx.path == old and idx.info().tracks == 20
    (data_home / "indexes" / "default").mkdir(parents=True)  # once the new place holds one, both are listed
    with MusicIndex("default", embedder=fake) as idx:
        assert idx.path == data_home / "indexes" / "default"
        idx.index(catalog / "jazz")
    assert [e.name for e in list_indexes()] == [str(old), "default"]


def test_an_unreadable_index_is_listed_with_its_reason(data_home):
    broken = data_home / "indexes" / "broken"
    broken.mkdir(parents=True)
    (broken / "musicsearch.db").write_bytes(b"not a database" * 100)
    [entry] = list_indexes()
    assert (entry.name, entry.tracks, entry.model) == ("broken", None, "")
    assert entry.error
