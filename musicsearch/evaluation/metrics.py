"""Retrieval metrics from a score matrix, with bootstrap intervals.

``scores[i, j]`` is how well caption ``i`` matches clip ``j`` (the index's score: cosine to the
track vector, or to the best window); ``truth[i]`` is the column of caption ``i``'s clip.

- **Text -> audio** (each caption a query, every clip a candidate): the rank of the right
  clip; R@k (its share of queries with the right clip in the top k), mAP@10 (mean of
  1/rank when rank <= 10, else 0: with one right clip per caption, average precision at 10
  is the reciprocal rank), and the median rank.
- **Audio -> text** (each clip a query, every caption a candidate): the rank of the best-ranked
  of the clip's own captions (a Song Describer track has several); R@k as above.

Ties count against the right answer: its rank is the number of candidates scoring at least
as high (itself included), so a model that scores everything alike ranks nothing first.
Intervals are 95 % percentile bootstraps over queries (captions for text -> audio, clips for
audio -> text), reproducible with a seed.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np

RECALL_AT = (1, 5, 10)
MAP_AT = 10
NAMES = (
    "t2a_r1",
    "t2a_r5",
    "t2a_r10",
    "t2a_map10",
    "t2a_median_rank",
    "a2t_r1",
    "a2t_r5",
    "a2t_r10",
)
LABELS = {
    "t2a_r1": "T→A R@1",
    "t2a_r5": "T→A R@5",
    "t2a_r10": "T→A R@10",
    "t2a_map10": "T→A mAP@10",
    "t2a_median_rank": "T→A med. rank",
    "a2t_r1": "A→T R@1",
    "a2t_r5": "A→T R@5",
    "a2t_r10": "A→T R@10",
}
CONFIDENCE = 0.95


@dataclass(frozen=True)
class Estimate:
    """A metric's value on the whole set and its bootstrap interval (None without one)."""

    value: float
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Metrics:
    """Every metric of ``NAMES`` by name, and how many queries each direction had."""

    values: Mapping[str, Estimate]
    text_queries: int
    audio_queries: int

    def __getitem__(self, name: str) -> Estimate:
        return self.values[name]


def _rank_of(row: np.ndarray, j: int | np.ndarray) -> np.ndarray:
    """How many entries of ``row`` score at least as high as ``row[j]`` (ties count against)."""
    return np.count_nonzero(row[None, :] >= np.atleast_1d(row[j])[:, None], axis=1)


def text_to_audio_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(n captions,) 1-based rank of each caption's clip among all clips."""
    s = np.asarray(scores, np.float64)
    right = s[np.arange(len(s)), truth]
    return np.count_nonzero(s >= right[:, None], axis=1).astype(np.int64)


def audio_to_text_ranks(scores: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """(clips with a caption,) 1-based rank, among all captions, of the best-ranked caption
    of each clip (clips in column order; a clip without a caption is left out)."""
    s = np.asarray(scores, np.float64)
    truth = np.asarray(truth)
    ranks = []
    for clip in range(s.shape[1]):
        own = np.flatnonzero(truth == clip)
        if len(own):
            ranks.append(int(_rank_of(s[:, clip], own).min()))
    return np.asarray(ranks, np.int64)


def _mean_of(values: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    def mean(idx: np.ndarray) -> np.ndarray:
        return np.asarray(values[idx].mean(axis=-1))

    return mean


def _statistics(ranks: np.ndarray, prefix: str) -> dict[str, Callable[[np.ndarray], np.ndarray]]:
    """name -> a function of resampled positions (rows of indices into ``ranks``) giving the
    metric of each resample."""
    out: dict[str, Callable[[np.ndarray], np.ndarray]] = {}
    for k in RECALL_AT:
        hit = (ranks <= k).astype(np.float64)
        out[f"{prefix}_r{k}"] = _mean_of(hit)
    if prefix == "t2a":
        ap = np.where(ranks <= MAP_AT, 1.0 / ranks, 0.0)
        out[f"t2a_map{MAP_AT}"] = _mean_of(ap)
        out["t2a_median_rank"] = lambda idx: np.median(ranks[idx].astype(np.float64), axis=-1)
    return out


def summarize(t2a: np.ndarray, a2t: np.ndarray, resamples: int = 1000, seed: int = 0) -> Metrics:
    """The metrics of text -> audio ranks ``t2a`` and audio -> text ranks ``a2t``, each with a
    95 % interval from ``resamples`` bootstrap resamples (0: no intervals) drawn with ``seed``."""
    rng = np.random.default_rng(seed)
    values: dict[str, Estimate] = {}
    for ranks, prefix in ((np.asarray(t2a, np.int64), "t2a"), (np.asarray(a2t, np.int64), "a2t")):
        stats = _statistics(ranks, prefix)
        draws = rng.integers(0, len(ranks), (resamples, len(ranks))) if resamples and len(ranks) else None
        for name, stat in stats.items():
            if not len(ranks):
                values[name] = Estimate(float("nan"))
                continue
            value = float(stat(np.arange(len(ranks))))
            if draws is None:
                values[name] = Estimate(value)
                continue
            sample = stat(draws)
            tail = (1 - CONFIDENCE) / 2 * 100
            low, high = np.percentile(sample, [tail, 100 - tail])
            values[name] = Estimate(value, float(low), float(high))
    return Metrics({n: values[n] for n in NAMES}, len(t2a), len(a2t))
