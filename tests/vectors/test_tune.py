"""Tuning (musicsearch/vectors/tune.py): text-like queries, the exact top-k over a sidecar (by
vector or by owner), recall, and the choice of the fastest (nprobe, re-rank depth) that
reaches the target."""

import numpy as np
import pytest

from musicsearch import vectors
from musicsearch.vectors.tune import exact_top, ood_queries, recall_at, tune


@pytest.fixture
def sidecar(tmp_path):
    """12 unit vectors in 4-d, ids 1..12, windows of tracks 100..103 (three each)."""
    rng = np.random.default_rng(3)
    vecs = rng.standard_normal((12, 4)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids, owners = np.arange(1, 13), np.repeat(np.arange(100, 104), 3)
    rows = vectors.Sidecar.append(tmp_path, "w", 4, 0, iter([(ids, vecs, owners)]), owners=True)
    return vectors.Sidecar(tmp_path, "w", 4, rows), ids, vecs.astype(np.float16).astype(np.float32), owners


def test_ood_queries_are_unit_vectors_near_one_stored_vector():
    rng = np.random.default_rng(0)
    sample = rng.standard_normal((50, 512)).astype(np.float32)
    sample /= np.linalg.norm(sample, axis=1, keepdims=True)
    q = ood_queries(sample, 20, seed=1)
    assert q.shape == (20, 512) and q.dtype == np.float32
    assert np.allclose(np.linalg.norm(q, axis=1), 1.0, atol=1e-5)
    best = (q @ sample.T).max(axis=1)
    assert abs(float(best.mean()) - 0.45) < 0.05  # ~0.45, as CLAP text-to-audio cosines are
    assert np.all(best > 0.3)
    assert np.array_equal(q, ood_queries(sample, 20, seed=1))  # repeatable


def test_exact_top_by_vector_and_by_owner(sidecar):
    sc, ids, vecs, owners = sidecar
    queries = ood_queries(vecs, 5, seed=2)
    scores = queries @ vecs.T
    by_vector = exact_top(sc, queries, 4)
    assert [t.tolist() for t in by_vector] == [ids[np.argsort(-s, kind="stable")[:4]].tolist() for s in scores]
    by_owner = exact_top(sc, queries, 2, by_owner=True)
    for got, s in zip(by_owner, scores):
        best = {t: s[owners == t].max() for t in np.unique(owners)}
        assert got.tolist() == sorted(best, key=lambda t: -best[t])[:2]


def test_recall_at_is_the_mean_share_of_the_exact_top_found():
    truth = [np.array([1, 2, 3, 4]), np.array([5, 6, 7, 8])]
    found = [(np.array([1, 2, 9, 10]), np.zeros(4)), (np.array([8, 7, 6, 5]), np.zeros(4))]
    assert recall_at(found, truth, k=4) == pytest.approx(0.75)
    assert recall_at([], [], k=4) == 1.0


def test_tune_picks_the_smallest_nprobe_reaching_the_target_else_the_best_recall(tmp_path):
    rng = np.random.default_rng(4)
    vecs = rng.standard_normal((40, 4)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    ids = np.arange(40)
    rows = vectors.Sidecar.append(tmp_path, "t", 4, 0, iter([(ids, vecs)]))
    sc = vectors.Sidecar(tmp_path, "t", 4, rows)
    policy = vectors.ScalePolicy(tune_queries=8, target_recall=0.99)
    calls = []

    def search_at(reaches):  # exact at nprobe >= reaches, else every id wrong
        def run(queries, nprobe, rerank, keep):
            calls.append((nprobe, rerank, keep))
            if nprobe >= reaches:
                return [(t, np.zeros(len(t))) for t in exact_top(sc, queries, 10)]
            return [(np.arange(100, 110), np.zeros(10)) for _ in queries]

        return run

    nprobe, rerank, recall = tune(sc, search_at(4), 16, 64, policy)
    assert (nprobe, recall) == (4, 1.0) and rerank in (16, 64, 256)
    assert [c[0] for c in calls[:3]] == [1, 2, 4] and all(keep == 0 for *_, keep in calls)  # no owners: keep 0
    calls.clear()
    assert tune(sc, search_at(10_000), 16, 8, policy) == (1, 16, 0.0)  # never reached: the best found
    assert max(c[0] for c in calls) == 8  # at most the lists there are
