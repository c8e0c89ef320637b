import numpy as np
import pytest

from musicsearch.embed import embed_windows, mean_pairwise_cosine
from musicsearch.engine import check_not_collapsed
from musicsearch.errors import CollapsedModel


def test_embed_windows_prepares_then_embeds_a_window_or_a_batch(fake, tone):
    one = tone(440, 10)
    batch = np.stack([one, tone(1000, 10)])
    np.testing.assert_array_equal(embed_windows(fake, one), fake.embed(fake.prepare(one[None])))
    np.testing.assert_array_equal(embed_windows(fake, batch), fake.embed(fake.prepare(batch)))
    assert embed_windows(fake, one).shape == (1, fake.dim)


def test_mean_pairwise_cosine():
    assert mean_pairwise_cosine(np.eye(3, dtype=np.float32)) == 0.0
    assert mean_pairwise_cosine(np.ones((4, 2), np.float32) / np.sqrt(2)) == pytest.approx(1.0)
    assert mean_pairwise_cosine(np.array([[1.0, 0.0], [0.6, 0.8]])) == pytest.approx(0.6)


def test_collapse_guard(fake_embedder_cls):
    class Collapsed(fake_embedder_cls):
        model_id = "collapsed"

        def embed_texts(self, texts):
            v = np.ones((len(texts), self.dim), np.float32)
            v += np.random.default_rng(0).standard_normal(v.shape).astype(np.float32) * 1e-3
            return v / np.linalg.norm(v, axis=1, keepdims=True)

    with pytest.raises(CollapsedModel, match="same vector for any text") as err:
        check_not_collapsed(Collapsed())
    assert "laion/larger_clap_general" in str(err.value)
    assert check_not_collapsed(fake_embedder_cls()) < 0.95
