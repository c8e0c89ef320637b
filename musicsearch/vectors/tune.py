"""Tuning an approximate index at build time: the fastest (nprobe, re-rank depth) whose recall
against exact search, on out-of-distribution text-like queries, reaches the policy's target."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np

from .protocol import ScalePolicy, SearchResult
from .sidecar import Sidecar

SearchAt = Callable[[np.ndarray, int, int, int], list[SearchResult]]
"""``(queries, nprobe, rerank, keep) -> results``: an approximate index's search of the 10 best
at that nprobe and re-rank depth, keeping the best ``keep`` candidates (0: 10)."""


def ood_queries(sample: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """Out-of-distribution, text-like queries: a stored vector diluted by a larger random
    direction, so that its best cosine is ~0.45 (as CLAP text-to-audio cosines are) and
    the stored vectors near it stand out from the rest by a few standard deviations."""
    rng = np.random.default_rng(seed)
    a = sample[rng.integers(0, len(sample), n)].astype(np.float32)
    r = rng.standard_normal(a.shape).astype(np.float32)
    r /= np.linalg.norm(r, axis=1, keepdims=True)
    q = 0.45 * a + 0.89 * r
    return (q / np.linalg.norm(q, axis=1, keepdims=True)).astype(np.float32)


def exact_top(sidecar: Sidecar, queries: np.ndarray, k: int, by_owner: bool = False) -> list[np.ndarray]:
    """The exact top-k ids of each query over the live rows of ``sidecar``; ``by_owner``: the
    top-k owners (tracks, by their best window: what a search by window ranks)."""
    carry = 4 * k if by_owner else k  # an owner split across two chunks appears twice
    best_ids = np.full((len(queries), 0), -1, np.int64)
    best_scores = np.zeros((len(queries), 0), np.float32)
    live_ids, live_rows = sidecar.live()
    for start in range(0, len(live_ids), 200_000):
        ids = live_ids[start : start + 200_000]
        scores = queries @ sidecar.gather(live_rows[start : start + 200_000]).T
        if by_owner and sidecar.owners is not None:
            own = np.asarray(sidecar.owners[live_rows[start : start + 200_000]])
            runs = np.flatnonzero(np.r_[True, own[1:] != own[:-1]])
            ids, scores = own[runs], np.maximum.reduceat(scores, runs, axis=1)
        cat_ids = np.concatenate([best_ids, np.broadcast_to(ids, scores.shape)], axis=1)
        cat_scores = np.concatenate([best_scores, scores], axis=1)
        keep = np.argsort(-cat_scores, axis=1, kind="stable")[:, :carry]
        best_ids = np.take_along_axis(cat_ids, keep, axis=1)
        best_scores = np.take_along_axis(cat_scores, keep, axis=1)
    if by_owner:
        return [_first_unique(row, k) for row in best_ids]
    return list(best_ids)


def _first_unique(ids: np.ndarray, k: int) -> np.ndarray:
    """The first ``k`` distinct values of ``ids``, in order."""
    _, first = np.unique(ids, return_index=True)
    return ids[np.sort(first)][:k]


def recall_at(found: list[SearchResult], truth: list[np.ndarray], k: int = 10) -> float:
    """Mean share of the exact top-k found."""
    if not truth:
        return 1.0
    return float(
        np.mean([len(set(f[0][:k].tolist()) & set(t[:k].tolist())) / max(len(t[:k]), 1) for f, t in zip(found, truth)])
    )


def tune(sidecar: Sidecar, search_at: SearchAt, rerank: int, nlist: int, policy: ScalePolicy) -> tuple[int, int, float]:
    """The fastest (nprobe, re-rank depth) whose R@10 against exact search on
    out-of-distribution queries (``ood_queries``) reaches the target, and that recall: for
    each depth (``rerank``, x4, x16) the smallest nprobe (of at most ``nlist``) reaching it,
    timed; the best recall found when none does. Windows (a sidecar with owners) are measured
    by the top 10 tracks by best window among every re-ranked candidate. (Queries aimed at an
    IVF list's centroid instead were harder still: 0.95 with half the lists scanned.)"""
    sc = sidecar
    rng = np.random.default_rng(policy.seed)
    sample = sc.gather(np.sort(rng.choice(sc.rows, min(sc.rows, 4096), replace=False)))
    by_owner = sc.owners is not None  # windows: what counts is the tracks a search by window finds
    # the windows index is a fallback (a search by window scores the windows of the best tracks):
    # fewer queries tune it, at 6M windows each costs ~1 s
    queries = ood_queries(sample, policy.tune_queries // 4 if by_owner else policy.tune_queries, policy.seed)
    truth = exact_top(sc, queries, 10, by_owner)
    best: tuple[float, int, int, float] | None = None  # (seconds, nprobe, rerank, recall)
    fallback = (1, rerank, 0.0)
    for depth in sorted({min(rerank * f, 4096) for f in (1, 4, 16)}):
        nprobe = 1
        while True:
            t0 = time.perf_counter()
            found = search_at(queries, nprobe, depth, depth if by_owner else 0)
            if sc.owners is not None:
                found = [(_first_unique(sc.owners[sc.rows_of(ids)[0]], 10), s) for ids, s in found]
            recall = recall_at(found, truth)
            seconds = time.perf_counter() - t0
            if recall > fallback[2]:
                fallback = (nprobe, depth, recall)
            if recall >= policy.target_recall:
                if best is None or seconds < best[0]:
                    best = (seconds, nprobe, depth, recall)
                break
            if nprobe >= nlist or nprobe >= 1024:
                break
            nprobe *= 2
    return best[1:] if best is not None else fallback
