"""Paths between tracks and smooth order (musicsearch/paths.py) on the fake embedder: nine
tracks blend 150 Hz and 2400 Hz windows in steps of one eighth (mix0 = all 2400 Hz, mix8 =
all 150 Hz), so their mean vectors lie on a known arc; five tones elsewhere are distractors."""

import json

import numpy as np
import pytest
from typer.testing import CliRunner

import musicsearch.api
from musicsearch import MusicIndex, Settings
from musicsearch.cli import app
from musicsearch.errors import MusicSearchError
from musicsearch.search.paths import step_distances
from musicsearch.search.variety import Variety
from musicsearch.store import Store

SR = 16_000


@pytest.fixture
def blend(tmp_path, tagged, write_audio, tone):
    root = tmp_path / "blend"
    for j in range(9):
        audio = np.concatenate([tone(150 if w < j else 2400, 10, SR) for w in range(8)])
        tagged(write_audio(root / f"mix{j}.flac", audio, SR), title=f"mix{j}", artist=f"Artist {j % 3}")
    for i, freq in enumerate([600, 600, 800, 1200, 1200]):
        tagged(write_audio(root / f"other{i}.flac", tone(freq, 10, SR), SR), title=f"other{i}", artist="Other")
    return root


@pytest.fixture
def idx(tmp_path, blend, fake):
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=8), embedder=fake)
    index.index(blend)
    return index


def titles(hits):
    return [h.track.title for h in hits]


def test_a_path_moves_steadily_from_a_to_b(idx):
    hits = idx.path_between("mix0", "mix8", 5)
    assert titles(hits) == ["mix0", "mix2", "mix4", "mix6", "mix8"]
    long = idx.path_between("mix0", "mix8", 9)
    assert titles(long) == [f"mix{j}" for j in range(9)]
    ids = [h.track.id for h in hits]
    assert len(set(ids)) == len(ids) and [h.rank for h in hits] == [1, 2, 3, 4, 5]
    # the score order: A, the three tracks most like A, then B
    near = [h.track.id for h in idx.similar("mix0", k=3)]
    store = Store(idx.path)
    score_steps = step_distances(store, [ids[0], *near, ids[-1]])
    path_steps = step_distances(store, ids)
    assert np.std(path_steps) < np.std(score_steps) / 5
    assert hits[1].score == pytest.approx(1 - path_steps[0], abs=1e-5)  # each score: cosine to the step before


def test_a_path_honours_variety_and_filters(idx):
    hits = idx.path_between("mix0", "mix8", 5, variety=Variety(exclude_artists=["artist 2"]))
    names = titles(hits)
    assert names[0] == "mix0" and names[-1] == "mix8" and not {"mix2", "mix5"} & set(names)
    assert len(names) == 5 and len(set(names)) == 5
    capped = idx.path_between("mix0", "mix8", 9, variety=Variety(max_per_artist=3))
    assert len(capped) == 9  # mix0..mix8 are three per artist


def test_a_path_needs_two_indexed_tracks(idx, tmp_path, write_audio, tone):
    with pytest.raises(MusicSearchError, match="at least 2"):
        idx.path_between("mix0", "mix8", 1)
    with pytest.raises(MusicSearchError, match="two different"):
        idx.path_between("mix0", "mix0", 4)
    outside = write_audio(tmp_path / "x.wav", tone(440, 3))
    with pytest.raises(MusicSearchError, match="not an indexed track"):
        idx.path_between(str(outside), "mix8", 4)


def test_smooth_order_keeps_neighbours_close(idx):
    score = idx.search("a 800 Hz tone", k=14)
    smooth = idx.search("a 800 Hz tone", k=14, order="smooth")
    store = Store(idx.path)
    assert smooth[0].track.id == score[0].track.id and {h.track.id for h in smooth} == {h.track.id for h in score}
    assert [h.rank for h in smooth] == list(range(1, 15))
    s_steps = step_distances(store, [h.track.id for h in smooth])
    o_steps = step_distances(store, [h.track.id for h in score])
    assert s_steps.sum() < o_steps.sum()
    with pytest.raises(MusicSearchError, match="--order"):
        idx.search("a 800 Hz tone", order="random")


def test_cli_path_with_m3u(tmp_path, blend, monkeypatch, fake_embedder_cls):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    runner = CliRunner()
    index_dir = str(tmp_path / "cidx")
    assert runner.invoke(app, ["index", str(blend), "--index", index_dir, "-q"]).exit_code == 0
    m3u = tmp_path / "walk.m3u8"
    out = runner.invoke(app, ["path", "mix0", "mix8", "-n", "5", "--m3u", str(m3u), "--json", "--index", index_dir])
    assert out.exit_code == 0, out.output
    assert [h["title"] for h in json.loads(out.output)] == ["mix0", "mix2", "mix4", "mix6", "mix8"]
    lines = [x for x in m3u.read_text().splitlines() if x and not x.startswith("#")]
    assert [x.rsplit("/", 1)[-1] for x in lines] == ["mix0.flac", "mix2.flac", "mix4.flac", "mix6.flac", "mix8.flac"]
    smooth = runner.invoke(app, ["similar", "mix4", "-k", "4", "--order", "smooth", "--json", "--index", index_dir])
    assert smooth.exit_code == 0, smooth.output


# -- more like this moment (track@start-end) -------------------------------------------


def test_similar_from_a_moment_uses_those_windows_only(idx, tmp_path, write_audio, tone):
    # mix4: 0-40 s at 150 Hz (like mix8), 40-80 s at 2400 Hz (like mix0)
    early = idx.similar("mix4@0:00-0:25", k=1)
    late = idx.similar("mix4@0:50-1:10", k=1)
    assert titles(early) == ["mix8"] and titles(late) == ["mix0"]
    assert "mix4" not in titles(idx.similar("mix4@0:50-1:10", k=12))
    outside = write_audio(tmp_path / "clip.flac", np.concatenate([tone(150, 10, SR), tone(2400, 20, SR)]), SR)
    assert titles(idx.similar(f"{outside}@0-0:09", k=1)) == ["mix8"]
    assert titles(idx.similar(f"{outside}@0:12-0:30", k=1)) == ["mix0"]
    with pytest.raises(MusicSearchError, match="after the start"):
        idx.similar("mix4@1:00-0:10")
    with pytest.raises(MusicSearchError, match="only 80 s long"):
        idx.similar("mix4@5:00-6:00")
