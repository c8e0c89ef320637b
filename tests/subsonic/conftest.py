"""What the Subsonic tests share: a tagged library indexed with the fake embedder (two Jazz
songs at 600 Hz by Ann on "Blue", the first with an embedded picture; Bob's "Red" with a
cover.jpg beside its songs at 1200 and 2400 Hz; an untagged 150 Hz file), an app over it with
a user ``alice`` (``rest`` calls it), built once for the package."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from mutagen.flac import FLAC, Picture

from musicsearch import MusicIndex, Settings
from musicsearch.server import create_app
from musicsearch.subsonic import UserStore

PASSWORD = "sécret pass"
PNG = b"\x89PNG\r\n\x1a\n" + b"picture-bytes" * 10
JPEG = b"\xff\xd8\xff\xe0" + b"cover-jpg" * 10


@dataclass
class Music:
    lib: Path
    idx: MusicIndex
    users: UserStore
    client: TestClient
    ids: dict[str, int]  # title -> track id


def build_library(lib: Path, write_audio, tone, tagged) -> None:
    """The library the module docstring describes."""
    songs = [
        ("Ann/Blue/01.flac", 600, {"title": "Rain Song", "artist": "Ann", "album": "Blue", "tracknumber": "1"}),
        ("Ann/Blue/02.flac", 600, {"title": "Night Walk", "artist": "Ann", "album": "Blue", "tracknumber": "2"}),
        ("Bob/Red/01.flac", 1200, {"title": "Sun", "artist": "Bob", "album": "Red", "genre": "Rock"}),
        ("Bob/Red/02.ogg", 2400, {"title": "Moon", "artist": "Bob", "album": "Red", "genre": "Rock"}),
    ]
    for rel, freq, tags in songs:
        extra = {"genre": "Jazz", "date": "2001"} if tags["artist"] == "Ann" else {"date": "1999"}
        tagged(write_audio(lib / rel, tone(freq, 5)), **tags, **extra)
    flac = FLAC(lib / "Ann/Blue/01.flac")
    picture = Picture()
    picture.type, picture.mime, picture.data = 3, "image/png", PNG
    flac.add_picture(picture)
    flac.save()
    (lib / "Bob/Red/cover.jpg").write_bytes(JPEG)
    write_audio(lib / "loose/untitled.wav", tone(150, 5))


@pytest.fixture(scope="session")
def library_builder():
    """``library_builder(lib, write_audio, tone, tagged)``: writes the library the module docstring describes."""
    return build_library


@pytest.fixture(scope="package")
def music(tmp_path_factory, write_audio, tone, tagged, fake_embedder_cls) -> Music:
    tmp = tmp_path_factory.mktemp("subsonic")
    build_library(tmp / "lib", write_audio, tone, tagged)
    idx = MusicIndex(tmp / "idx", settings=Settings(batch_size=4, workers=1), embedder=fake_embedder_cls())
    idx.index(tmp / "lib")
    users = UserStore(tmp / "config" / "users.json")
    users.add("alice", PASSWORD)
    users.add("bob", "bobs password")
    app = create_app(idx)
    app.state.subsonic.users = users
    ids = {t.title: t.id for t in idx.tracks_under(tmp / "lib").values()}
    return Music(tmp / "lib", idx, users, TestClient(app), ids)


@pytest.fixture(scope="session")
def password() -> str:
    """alice's password (not ASCII: enc: and tokens are UTF-8)."""
    return PASSWORD


@pytest.fixture(scope="package")
def rest(music):
    """``rest(method, user="alice", password=PASSWORD, f="json", **params)``: a GET of
    ``/rest/method`` with plain-password auth; the response."""

    def rest(method: str, *, user: str = "alice", password: str = PASSWORD, f: str = "json", **params):
        query = {"u": user, "p": password, "v": "1.16.1", "c": "tests", "f": f, **params}
        return music.client.get(f"/rest/{method}", params=query)

    return rest


@pytest.fixture(scope="package")
def ok(rest):
    """``ok(method, **params)``: the ``subsonic-response`` of a call that must succeed."""

    def ok(method: str, **params):
        r = rest(method, **params)
        assert r.status_code == 200, r.text
        body = r.json()["subsonic-response"]
        assert body["status"] == "ok", body
        return body

    return ok


@pytest.fixture(scope="package")
def failed(rest):
    """``failed(method, code, **params)``: the error message of a call that must fail with ``code``."""

    def failed(method: str, code: int, **params):
        r = rest(method, **params)
        assert r.status_code == 200, r.text
        body = r.json()["subsonic-response"]
        assert body["status"] == "failed" and body["error"]["code"] == code, body
        assert "Traceback" not in body["error"]["message"]
        return body["error"]["message"]

    return failed


@pytest.fixture
def no_error_logged(caplog):
    """Fails the test if anything logs at ERROR (the router logs a bug's traceback there)."""
    caplog.set_level(logging.ERROR)
    yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text
