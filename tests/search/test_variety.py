"""Variety and exclusions (musicsearch/variety.py) on the fake embedder's catalog: twenty
tones, four bands of five identical vectors, artists alternating (Ann Arbor: odd songs)."""

import json

import pytest
from typer.testing import CliRunner

import musicsearch.api
from musicsearch import Filters, MusicIndex, Settings
from musicsearch.cli import app
from musicsearch.errors import MusicSearchError
from musicsearch.search.variety import Variety, base_title


@pytest.fixture
def idx(tmp_path, catalog, fake):
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake)
    index.index(catalog)
    return index


def test_max_per_artist_still_gives_k(idx):
    plain = idx.search("600 Hz", k=4)
    assert {h.track.artist for h in plain} == {"Ann Arbor"}  # the five 600 Hz songs are all Ann's
    hits = idx.search("600 Hz", k=2, variety=Variety(max_per_artist=1))
    assert sorted(h.track.artist for h in hits) == ["Ann Arbor", "Bob Beat"] and [h.rank for h in hits] == [1, 2]
    hits = idx.search("600 Hz", k=6, variety=Variety(max_per_artist=3))
    assert len(hits) == 6 and sorted(h.track.artist for h in hits) == ["Ann Arbor"] * 3 + ["Bob Beat"] * 3
    assert len(idx.search("600 Hz", k=5, variety=Variety(max_per_artist=2))) == 4  # only 2 artists qualify


def test_dedupe_counts_identical_vectors_and_versions_once(idx):
    hits = idx.search("600 Hz", k=10, variety=Variety(dedupe=True))
    assert len(hits) == 4  # four distinct sounds in the catalog
    assert base_title("Halo (Live at Wembley)") == base_title("Halo [2011 Remaster]") == "halo"
    assert base_title("Halo - Remastered 2009") == base_title("HALO") == "halo"
    assert base_title("Live Forever") == "live forever" and base_title("Song (for you)") == "song for you"


def test_exclusions_keep_k(idx):
    hits = idx.search("600 Hz", k=5, variety=Variety(exclude_artists=["ann"]))
    assert len(hits) == 5 and {h.track.artist for h in hits} == {"Bob Beat"}
    hits = idx.search("600 Hz", k=5, variety=Variety(exclude_genres=("ROCK",)), filters=Filters(year="1990-"))
    assert len(hits) == 5 and {h.track.genre for h in hits} == {"Jazz"}
    hits = idx.search("600 Hz", k=7, variety=Variety(exclude_paths="*/rock/*", exclude_artists="bob"))
    assert len(hits) == 5 and all("/jazz/" in h.track.path and h.track.artist == "Ann Arbor" for h in hits)


def test_variation_is_repeatable_with_a_seed(idx):
    base = [h.track.id for h in idx.search("600 Hz", k=8)]
    assert [h.track.id for h in idx.search("600 Hz", k=8, variety=Variety(variation=0.0, seed=1))] == base
    runs = {
        s: [h.track.id for h in idx.search("600 Hz", k=8, variety=Variety(variation=1.0, seed=s))] for s in range(6)
    }
    again = [h.track.id for h in idx.search("600 Hz", k=8, variety=Variety(variation=1.0, seed=3))]
    assert again == runs[3]
    assert len({tuple(r) for r in runs.values()}) > 1 and any(r != base for r in runs.values())


@pytest.mark.parametrize(
    "kwargs", [{"max_per_artist": 0}, {"variation": 1.5}, {"variation": -0.1}, {"exclude_artists": [""]}]
)
def test_bad_variety_is_refused(kwargs):
    with pytest.raises(MusicSearchError):
        Variety(**kwargs)


def test_cli_variety_options(tmp_path, catalog, monkeypatch, fake_embedder_cls):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    runner = CliRunner()
    index_dir = str(tmp_path / "cidx")
    assert runner.invoke(app, ["index", str(catalog), "--index", index_dir, "-q"]).exit_code == 0
    out = runner.invoke(app, ["query", "600 Hz", "-k", "2", "--max-per-artist", "1", "--json", "--index", index_dir])
    assert out.exit_code == 0, out.output
    assert sorted(h["artist"] for h in json.loads(out.output)) == ["Ann Arbor", "Bob Beat"]
    args = ["similar", "song01", "-k", "3", "--exclude-genre", "jazz", "--dedupe", "--json", "--index", index_dir]
    out = runner.invoke(app, args)
    assert out.exit_code == 0, out.output
    assert [h["genre"] for h in json.loads(out.output)] == ["Rock"] * 3
    bad = runner.invoke(app, ["query", "x", "--variation", "2", "--index", index_dir])
    assert bad.exit_code != 0
