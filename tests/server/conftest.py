"""What the server tests share: an app over the tiny model's index (``built``, ``client``),
one over the fake embedder's known geometry (``fake_client``), each built once for the
package, and the checks of an error response."""

import logging

import numpy as np
import pytest
from fastapi.testclient import TestClient

from musicsearch import MusicIndex, Settings
from musicsearch.server import create_app


@pytest.fixture(scope="package")
def built(tmp_path_factory, tiny_model, write_audio, tone, noise):
    tmp = tmp_path_factory.mktemp("server")
    lib = tmp / "lib"
    write_audio(lib / "a" / "low.wav", tone(150, 25))
    write_audio(lib / "b" / "mid.flac", tone(600, 12))
    write_audio(lib / "b" / "noise.ogg", noise(8))
    idx = MusicIndex(tmp / "idx", settings=Settings(model=str(tiny_model), model_check=False))
    idx.index(lib)
    return idx, lib, tmp


@pytest.fixture(scope="package")
def client(built):
    idx, _, _ = built
    return TestClient(create_app(idx, max_upload_bytes=2 * 1024 * 1024))


@pytest.fixture(scope="package")
def fake_client(tmp_path_factory, write_audio, tagged, fake_embedder_cls, tone):

    tmp = tmp_path_factory.mktemp("fake-server")
    lib = tmp / "lib"
    write_audio(lib / "mix.wav", np.concatenate([tone(150, 10), tone(2400, 10)]))
    for i, (freq, artist) in enumerate([(600, "Ann"), (600, "Ann"), (600, "Bob"), (1200, "Bob")]):
        tagged(write_audio(lib / f"s{i}.flac", tone(freq, 5)), title=f"Song {i}", artist=artist, genre="Jazz")
    idx = MusicIndex(tmp / "idx", settings=Settings(batch_size=4), embedder=fake_embedder_cls())
    idx.index(lib)
    return TestClient(create_app(idx)), idx, lib


@pytest.fixture
def no_error_logged(caplog):
    """Fails the test if anything logs at ERROR (uvicorn/starlette log a traceback for a 500)."""
    caplog.set_level(logging.ERROR)
    yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


@pytest.fixture(scope="session")
def error_of():
    """Checks a response's status and its ``{"error": ...}`` shape; returns the message."""

    def error_of(r, status):
        assert r.status_code == status, r.text
        body = r.json()
        assert set(body) == {"error"} and "Traceback" not in body["error"]
        return body["error"]

    return error_of
