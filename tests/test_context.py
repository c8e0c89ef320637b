"""One open index folder (musicsearch/context.py): what it opens lazily, how it binds a model,
and audio outside the index embedded as the index run embeds it."""

from __future__ import annotations

import numpy as np
import pytest

from musicsearch import Settings
from musicsearch.context import IndexContext, embed_audio_file
from musicsearch.errors import IndexNotFound, ModelMismatch
from musicsearch.store import track_vector


def test_nothing_is_created_until_a_model_is_bound(tmp_path, fake):
    ctx = IndexContext(Settings(index_dir=tmp_path / "idx"), embedder=fake)
    assert not ctx.exists()
    with pytest.raises(IndexNotFound):
        ctx.store()
    assert not (tmp_path / "idx").exists()
    with pytest.raises(IndexNotFound, match="no index at"):
        IndexContext(Settings(index_dir=tmp_path / "idx"), embedder=fake).bind_model(fake)  # a query, no index run


def test_an_index_run_binds_its_model_and_others_are_refused(tmp_path, fake, fake_embedder_cls):
    settings = Settings(index_dir=tmp_path / "idx", model_check=False)
    ctx = IndexContext(settings, embedder=fake)
    store = ctx.bind_model(fake, fake.window_seconds)
    assert ctx.exists() and ctx.store() is store and ctx.embedder() is fake
    info = ctx.info()
    assert (info.model, info.dim, info.tracks, info.window_seconds) == ("fake-embedder", fake.dim, 0, 10.0)

    class Other(fake_embedder_cls):
        model_id = "other-model"

    with pytest.raises(ModelMismatch, match="was built with model fake-embedder"):
        IndexContext(settings, embedder=Other()).bind_model(Other())
    ctx.close()


def test_a_file_outside_the_index_is_the_mean_of_its_windows(tmp_path, fake, write_audio, tone):
    path = write_audio(tmp_path / "two.wav", np.concatenate([tone(150, 10), tone(2400, 10)]))
    ctx = IndexContext(Settings(index_dir=tmp_path / "idx", model_check=False), embedder=fake)
    ctx.bind_model(fake, fake.window_seconds)
    whole = ctx.embed_file(path)
    low, high = fake.embed_texts(["150 hz", "2400 hz"])
    np.testing.assert_allclose(whole, track_vector(np.stack([low, high])), atol=1e-6)
    np.testing.assert_allclose(embed_audio_file(fake, path, batch_size=1), whole, atol=1e-6)  # batch size: no matter
    np.testing.assert_allclose(ctx.embed_range(path, 12.0, 18.0), high, atol=1e-6)  # only the windows in range
