"""Fixtures of the vector index tests: a four-vector exact index, a two-track store, a
2,000-track clustered store (approximate once ``exact_max`` is lowered), and the helpers that
compare results exactly."""

from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from musicsearch.store import IndexMeta, Store, TrackRecord
from musicsearch.vectors import FlatIndex, build

IDS = np.array([10, 20, 30, 40], dtype=np.int64)
VECS = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 0.6, 0.8]], dtype=np.float32)


def _r6(scores: np.ndarray) -> list[float]:
    return np.round(np.asarray(scores, np.float64), 6).tolist()


def _as_lists(result: list[tuple[np.ndarray, np.ndarray]]) -> list[tuple[list[int], list[float]]]:
    return [(ids.tolist(), _r6(scores)) for ids, scores in result]


def _rec(path: str, vecs: object) -> TrackRecord:
    vecs = np.asarray(vecs, np.float32)
    n = len(vecs)
    starts = [10.0 * i for i in range(n)]
    return TrackRecord(path, 1, 1, "h" + path, {"title": path}, 10.0 * n, starts, [s + 10 for s in starts], vecs)


def _faiss_files(store: Store) -> list[str]:
    return sorted(p.name for p in store.dir.glob("*.faiss"))


@pytest.fixture
def r6() -> Callable[[np.ndarray], list[float]]:
    """Scores rounded to 6 decimals, as a list."""
    return _r6


@pytest.fixture
def as_lists() -> Callable[..., list[tuple[list[int], list[float]]]]:
    """Search results as (ids, scores rounded) lists."""
    return _as_lists


@pytest.fixture
def rec() -> Callable[[str, object], TrackRecord]:
    """A track record of ``path`` with one 10-s window per vector."""
    return _rec


@pytest.fixture
def faiss_files() -> Callable[[Store], list[str]]:
    """The names of a store's ``.faiss`` files, sorted."""
    return _faiss_files


@pytest.fixture
def small() -> FlatIndex:
    return build(IDS, VECS, 3)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    """Two tracks of 2-d vectors: /a.wav (two windows), /b.wav (one)."""
    s = Store(tmp_path / "idx", create=True)
    s.record_meta(IndexMeta.new("m", None, 2, 10.0, checked=False))
    with s.write():
        s.put_track(_rec("/a.wav", [[1, 0], [0.6, 0.8]]), "now")
        s.put_track(_rec("/b.wav", [[0, 1]]), "now")
    yield s
    s.close()


@pytest.fixture
def big(tmp_path: Path, clustered_store: Callable[..., Store]) -> Iterator[Store]:
    """2,000 clustered tracks of 32-d vectors, three windows each."""
    s = clustered_store(tmp_path / "big", dim=32)
    yield s
    s.close()
