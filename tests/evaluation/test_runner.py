"""The evaluation run through the real pipeline (clip files, the index run, the index's
ranking) with an embedder that puts each caption's clip at a chosen rank: the ranks and
metrics come out exact, by track and by window, for every window policy; a second run embeds
nothing; the top hits are those a search returns; clips that fail are left out and named."""

from __future__ import annotations

import csv
import re
from collections.abc import Sequence

import numpy as np
import pytest
from fakes import FakeEmbedder, band_of, one_hot  # a base for a module-level class, which workers unpickle

import musicsearch.context
from musicsearch import MusicIndex
from musicsearch.errors import MusicSearchError
from musicsearch.evaluation.clips import place_clips
from musicsearch.evaluation.datasets import load_dataset
from musicsearch.evaluation.metrics import audio_to_text_ranks, summarize
from musicsearch.evaluation.runner import (
    EvalSettings,
    WindowPolicy,
    embed_captions,
    index_name,
    prompt_forms,
    run_eval,
)

FREQS = [round(100 * 2 ** (k / 4)) for k in range(2, 14)]  # 12 tones, each in a band of its own
RANKS = [1, 3, 2, 7, 12, 1, 5, 11, 4, 1, 9, 2]  # where each clip's caption puts it
EXTRA = (0, 6)  # clip 0 has a second caption, which puts it 6th


class RankedEmbedder(FakeEmbedder):
    """Audio as the fake embedder (a window -> the band of its tone); a caption "a F Hz tone
    at rank R" weighs the bands of ``FREQS`` so that F's band comes R-th."""

    def embed_texts(self, texts: Sequence[str]) -> np.ndarray:
        bands = [band_of(f) for f in FREQS]
        out = []
        for text in texts:
            m = re.search(r"(\d+) hz tone at rank (\d+)", text.lower())
            if m is None:
                out.append(super().embed_texts([text])[0])
                continue
            right, rank = band_of(float(m.group(1))), int(m.group(2))
            others = [b for b in bands if b != right]
            order = [*others[: rank - 1], right, *others[rank - 1 :]]
            v = np.zeros(self.dim, np.float32)
            # a profile of its own per caption: no two captions tie on a clip (audio -> text)
            v[order] = np.linspace(1.0, 0.1, len(order)) ** (1 + 0.01 * rank + 0.001 * right)
            out.append(v / np.linalg.norm(v))
        return np.stack(out)


def audio_to_text_expected(captions: Sequence[str]) -> np.ndarray:
    """Each clip's audio -> text rank from the embedder's own vectors, scored in numpy."""
    text = RankedEmbedder().embed_texts(captions).astype(np.float64)
    audio = np.stack([one_hot(band_of(f)) for f in FREQS]).astype(np.float64)
    truth = np.array([*range(len(FREQS)), EXTRA[0]])
    return audio_to_text_ranks(text @ audio.T, truth)


@pytest.fixture
def ranked(monkeypatch):
    """The one embedder every index of the test loads (it counts the windows it embeds)."""
    shared = RankedEmbedder()
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: shared)
    return shared


@pytest.fixture
def tones(tmp_path, write_audio, tone):
    """A plain CSV of 12 tones of 12 s (two windows) and 13 captions; returns the CSV."""
    rows = [["path", "caption"]]
    for i, (freq, rank) in enumerate(zip(FREQS, RANKS)):
        write_audio(tmp_path / "set" / f"t{i:02d}.wav", tone(freq, 12))
        rows.append([f"t{i:02d}.wav", f"a {freq} Hz tone at rank {rank}"])
    rows.append(["t00.wav", f"another {FREQS[EXTRA[0]]} Hz tone at rank {EXTRA[1]}"])
    with open(tmp_path / "set" / "captions.csv", "w", newline="") as f:
        csv.writer(f).writerows(rows)
    return tmp_path / "set" / "captions.csv"


def test_ranks_and_metrics_are_exact_through_the_index(tmp_path, tones, ranked):
    settings = EvalSettings(
        models=("fake",),
        by=("track", "window"),
        policies=(WindowPolicy(max_windows=1), WindowPolicy(full=True)),
        bootstrap=0,
        work_dir=tmp_path / "work",
    )
    result = run_eval(load_dataset(tones), settings)
    assert [(r.windows, r.by, r.prompts) for r in result.rows] == [
        ("1 max", "track", "captions"),
        ("1 max", "window", "captions"),
        ("whole", "track", "captions"),
        ("whole", "window", "captions"),
    ]
    assert sorted(result.embedded) == sorted([index_name("fake", 1), index_name("fake", None)])
    assert sorted(result.embedded.values()) == [12, 12]
    assert ranked.windows_embedded == 12 + 24  # one window a clip, then both
    expected = [*RANKS, EXTRA[1]]
    captions = [c.text for c in result.dataset.captions]
    wanted = summarize(np.array(expected), audio_to_text_expected(captions), resamples=0)
    for n, row in enumerate(result.rows):
        assert [q.rank for q in result.queries if q.row == n] == expected
        assert row.metrics.values == wanted.values
    assert result.rows[0].metrics["t2a_r1"].value == pytest.approx(3 / 13)
    assert result.rows[0].metrics["t2a_median_rank"].value == 4.0  # 1 1 1 2 2 3 (4) 5 6 7 9 11 12
    assert result.clips == tuple(f"t{i:02d}.wav" for i in range(12)) and result.failed == ()


def test_a_second_run_embeds_nothing_and_the_top_hits_are_a_searchs(tmp_path, tones, ranked):
    settings = EvalSettings(models=("fake",), by=("window",), bootstrap=0, top_hits=3, work_dir=tmp_path / "w")
    data = load_dataset(tones)
    first = run_eval(data, settings)
    windows = ranked.windows_embedded
    second = run_eval(data, EvalSettings(models=("fake",), by=("track", "window"), work_dir=tmp_path / "w"))
    assert ranked.windows_embedded == windows
    assert list(second.embedded.values()) == [0]
    assert [q.rank for q in second.queries if q.row == 1] == [q.rank for q in first.queries]
    keys = place_clips(data, first.work_dir / "clips").keys
    (name,) = first.embedded
    with MusicIndex(first.work_dir / "indexes" / name, embedder=RankedEmbedder()) as idx:
        for q in first.queries:
            hits = idx.search(q.caption.text, k=3, lexical=False, by="window")
            assert tuple(keys[h.track.path] for h in hits) == q.top
    assert first.queries[0].top[0] == "t00.wav" and first.queries[2].top[1] == "t02.wav"


def test_clips_that_cannot_be_indexed_are_left_out_and_named(tmp_path, tones, ranked):
    (tones.parent / "t05.wav").write_bytes(b"RIFF....not audio at all" * 10)
    result = run_eval(load_dataset(tones), EvalSettings(models=("fake",), bootstrap=0, work_dir=tmp_path / "w"))
    assert [k for k, _ in result.failed] == ["t05.wav"]
    assert "soundfile" in result.failed[0][1]
    assert "t05.wav" not in result.clips and len(result.clips) == 11
    assert len(result.queries) == 12  # the 13 captions but t05's


def test_prompt_forms_and_the_ensemble():
    assert prompt_forms([]) == [("captions", ("{}",))]
    assert prompt_forms(["a {}", "b {}"]) == [
        ("captions", ("{}",)),
        ("a {}", ("a {}",)),
        ("b {}", ("b {}",)),
        ("ensemble of 2", ("a {}", "b {}")),
    ]
    encoder = FakeEmbedder()
    texts = ["a 440 Hz tone", "wind"]
    got = embed_captions(encoder, texts, ["{}", "the sound of {}"])
    a, b = encoder.embed_texts(texts), encoder.embed_texts([f"the sound of {t}" for t in texts])
    mean = a + b
    assert np.allclose(got, mean / np.linalg.norm(mean, axis=1, keepdims=True), atol=1e-6)
    assert np.allclose(embed_captions(encoder, texts, ["{}"]), a, atol=1e-6)
    assert np.allclose(got[0], one_hot(band_of(440)), atol=1e-6)  # both forms name 440 Hz


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"templates": ("This is a song.",)}, "a template holds {} where the caption goes"),
        ({"by": ("album",)}, "--by must be track or window"),
        ({"bootstrap": -1}, "--bootstrap must be at least 0"),
        ({"models": ()}, "give at least one model"),
    ],
)
def test_settings_are_checked(kwargs, message):
    with pytest.raises(MusicSearchError, match=message):
        EvalSettings(**kwargs)
