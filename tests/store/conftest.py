"""Fixtures of the store tests: a track record builder and a store bound to a 2-d model."""

from collections.abc import Callable

import numpy as np
import pytest

from musicsearch.store import IndexMeta, Store, TrackRecord


def _rec(path: str, vecs: object, size: int = 1, mtime: int = 1) -> TrackRecord:
    vecs = np.asarray(vecs, np.float32)
    n = len(vecs)
    return TrackRecord(
        path,
        size,
        mtime,
        "h" + path,
        {"title": path},
        10.0 * n,
        [10.0 * i for i in range(n)],
        [10.0 * (i + 1) for i in range(n)],
        vecs,
    )


@pytest.fixture
def rec() -> Callable[..., TrackRecord]:
    """A track at ``path`` with one window per row of ``vecs`` (10 s each), titled by its path."""
    return _rec


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "idx", create=True)
    s.record_meta(IndexMeta.new("m", None, 2, 10.0, checked=False))
    return s
