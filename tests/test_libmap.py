"""The library map and window scores (musicsearch/libmap.py) on the fake embedder, whose
geometry is known: a window's vector is the one-hot band of its tone."""

import json
import math

import numpy as np
import pytest

import musicsearch.libmap
from musicsearch import MusicIndex, Settings
from musicsearch.libmap import library_map, map_coordinates, project, window_scores
from musicsearch.store import Store


@pytest.fixture
def idx(tmp_path, library, fake, write_audio, tone):
    write_audio(library / "mix.wav", np.concatenate([tone(150, 10), tone(2400, 10)]))
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake)
    index.index(library)
    return index


def test_project_scales_into_the_unit_square_and_keeps_neighbours(one_hot):
    v = np.stack([one_hot(0), one_hot(0), one_hot(5), one_hot(10)])
    xy = project(v)
    assert xy.shape == (4, 2) and xy.min() == 0.0 and xy.max() == 1.0
    assert np.allclose(xy[0], xy[1])  # identical vectors, one place
    assert project(v[:1]).tolist() == [[0.5, 0.5]]
    assert project(np.zeros((0, 24))).shape == (0, 2)


def test_map_has_every_track_once_with_finite_coordinates(idx):
    store = Store(idx.path)
    points = library_map(store)
    ids, _ = store.track_vectors()
    assert sorted(p.track_id for p in points) == sorted(ids.tolist()) and len(points) == 5
    assert all(math.isfinite(p.x) and math.isfinite(p.y) and 0 <= p.x <= 1 and 0 <= p.y <= 1 for p in points)
    assert {p.title for p in points} == {"t150", "t600", "t1200", "t2400", "mix"}


def test_map_is_cached_once_per_generation(idx, monkeypatch, tmp_path, library, write_audio, tone):
    store = Store(idx.path)
    calls = []
    real = musicsearch.libmap.project
    monkeypatch.setattr(musicsearch.libmap, "project", lambda v: calls.append(len(v)) or real(v))
    first = map_coordinates(store)
    cache = idx.path / f"map-g{store.generation}.json"
    assert cache.is_file() and calls == [5]
    assert json.loads(cache.read_text())["generation"] == store.generation
    assert map_coordinates(store) == first and calls == [5]  # reused, not computed again
    write_audio(library / "more.wav", tone(300, 5))
    idx.index(library)
    store = Store(idx.path)
    second = map_coordinates(store)
    assert calls == [5, 6] and len(second) == 6
    assert [p.name for p in idx.path.glob("map-g*.json")] == [f"map-g{store.generation}.json"]  # old one gone


def test_an_unreadable_cache_is_computed_again(idx, caplog):
    store = Store(idx.path)
    (idx.path / f"map-g{store.generation}.json").write_text("{not json")
    assert len(map_coordinates(store)) == 5
    assert "unreadable" in caplog.text
    assert len(json.loads((idx.path / f"map-g{store.generation}.json").read_text())["points"]) == 5


def test_window_scores_follow_the_known_geometry(idx, one_hot, band_of, fake_embedder_cls):
    store = Store(idx.path)
    (mix,) = store.find_tracks("mix.wav")
    q = fake_embedder_cls().embed_texts(["a 2400 Hz tone"])[0]
    scores = window_scores(store, mix.id, q)
    assert [(w["start"], w["end"]) for w in scores] == [(0.0, 10.0), (10.0, 20.0)]
    low, high = one_hot(band_of(150)), one_hot(band_of(2400))
    assert scores[1]["score"] == pytest.approx(1.0, abs=1e-5)
    assert scores[0]["score"] == pytest.approx(float(low @ high), abs=1e-5) and scores[0]["score"] < 0.05
    assert window_scores(store, 999_999, q) == []
