"""The metrics on rankings whose answer is known, ties counted against the right answer, and
bootstrap intervals reproducible with a seed."""

from __future__ import annotations

import numpy as np
import pytest

from musicsearch.evaluation.metrics import NAMES, audio_to_text_ranks, summarize, text_to_audio_ranks


def scores_with_ranks(ranks: list[int], clips: int) -> tuple[np.ndarray, np.ndarray]:
    """Caption i's clip is i % clips; it scores so that exactly rank - 1 clips score higher."""
    truth = np.arange(len(ranks)) % clips
    s = np.zeros((len(ranks), clips))
    for i, r in enumerate(ranks):
        others = [j for j in range(clips) if j != truth[i]]
        order = [*others[: r - 1], truth[i], *others[r - 1 :]]
        s[i, order] = np.linspace(1.0, 0.0, clips)
    return s, truth


def test_text_to_audio_ranks_are_exact():
    ranks = [1, 2, 5, 10, 11, 20, 3, 1]
    s, truth = scores_with_ranks(ranks, 20)
    assert text_to_audio_ranks(s, truth).tolist() == ranks


def test_ties_count_against_the_right_clip():
    s = np.array([[0.5, 0.5, 0.5, 0.1], [0.9, 0.2, 0.2, 0.2]])
    assert text_to_audio_ranks(s, np.array([0, 1])).tolist() == [3, 4]
    assert text_to_audio_ranks(np.ones((3, 3)), np.array([0, 1, 2])).tolist() == [3, 3, 3]


def test_audio_to_text_takes_each_clips_best_caption():
    # captions 0 and 1 describe clip 0, caption 2 clip 1, caption 3 clip 2; clip 3 has none
    s = np.array(
        [
            [0.2, 0.9, 0.1, 0.0],
            [0.8, 0.1, 0.3, 0.0],
            [0.9, 0.5, 0.2, 0.0],
            [0.1, 0.6, 0.4, 0.0],
        ]
    )
    truth = np.array([0, 0, 1, 2])
    # clip 0's column 0.2, 0.8, 0.9, 0.1: its captions 0 and 1 rank 3rd and 2nd -> 2;
    # clip 1's column 0.9, 0.1, 0.5, 0.6: caption 2 (0.5) is 3rd; clip 2's: caption 3 (0.4) is 1st
    assert audio_to_text_ranks(s, truth).tolist() == [2, 3, 1]


def test_summary_values_are_exact():
    t2a = np.array([1, 2, 5, 10, 11, 20, 3, 1])
    a2t = np.array([1, 6, 11, 2])
    m = summarize(t2a, a2t, resamples=0)
    assert m["t2a_r1"].value == pytest.approx(2 / 8)
    assert m["t2a_r5"].value == pytest.approx(5 / 8)
    assert m["t2a_r10"].value == pytest.approx(6 / 8)
    assert m["t2a_map10"].value == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 10 + 0 + 0 + 1 / 3 + 1) / 8)
    assert m["t2a_median_rank"].value == 4.0  # 1 1 2 3 | 5 10 11 20
    assert m["a2t_r1"].value == pytest.approx(1 / 4)
    assert m["a2t_r5"].value == pytest.approx(2 / 4)
    assert m["a2t_r10"].value == pytest.approx(3 / 4)
    assert (m.text_queries, m.audio_queries) == (8, 4)
    assert list(m.values) == list(NAMES)
    assert all(m[n].low is None and m[n].high is None for n in NAMES)


def test_bootstrap_is_reproducible_with_a_seed():
    rng = np.random.default_rng(3)
    t2a, a2t = rng.integers(1, 40, 200), rng.integers(1, 40, 120)
    first, again = summarize(t2a, a2t, 500, seed=7), summarize(t2a, a2t, 500, seed=7)
    other = summarize(t2a, a2t, 500, seed=8)
    assert first == again
    assert first != other
    for name in NAMES:
        e = first[name]
        assert e.low is not None and e.high is not None
        assert e.low <= e.value <= e.high
        assert e.low < e.high  # 200 varied ranks: a real spread
    # a share is within [0, 1]; R@10 over 200 queries of rate ~ 1/4 spreads by about +-0.06
    r10 = first["t2a_r10"]
    assert r10.low >= 0.0 and r10.high <= 1.0
    assert 0.05 < r10.high - r10.low < 0.2


def test_no_queries_in_one_direction_gives_nan_not_an_error():
    m = summarize(np.array([1, 2]), np.array([], np.int64), resamples=10)
    assert np.isnan(m["a2t_r1"].value) and m["t2a_r1"].value == 0.5
