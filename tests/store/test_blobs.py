"""Tests of musicsearch/store/blobs.py: vectors as float32 or float16 blobs, a track's vector."""

import numpy as np
import pytest

from musicsearch.errors import MusicSearchError
from musicsearch.store import track_vector


def test_track_vector_is_normalized_mean():
    v = track_vector(np.array([[1, 0], [0, 1]], np.float32))
    np.testing.assert_allclose(v, [2**-0.5, 2**-0.5], atol=1e-7)


def test_loss_of_float16_on_clap_like_vectors():
    """The measured loss: cosine between each float32 vector and its float16 copy."""
    from musicsearch.store import from_blobs, to_blob

    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((2000, 512)).astype(np.float32) + 0.5  # clustered off the origin, like CLAP's
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    half = from_blobs([to_blob(v, np.float16) for v in vecs], 512).astype(np.float64)
    cos = (half * vecs).sum(axis=1) / np.linalg.norm(half, axis=1) / np.linalg.norm(vecs.astype(np.float64), axis=1)
    assert 0.9999995 < cos.min() <= cos.mean() < 1 - 1e-9  # lossy, but by less than 5e-7 in cosine
    with pytest.raises(MusicSearchError, match="has 10 bytes; the index is 512-d"):
        from_blobs([to_blob(vecs[0]), b"0123456789"], 512)
