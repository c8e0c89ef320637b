"""Tests of musicsearch/server/service.py: the ``Service`` behind every route (a track or a 404,
calls into the index under its lock, uploads written to a folder within the size limit), the
422 of an undecodable upload, and the dependency that hands routes the app's service."""

import asyncio
import io

import pytest
from fastapi import HTTPException, UploadFile
from starlette.requests import Request

from musicsearch import MusicIndex, Settings
from musicsearch.errors import DecodeError
from musicsearch.server.limits import MAX_UPLOAD_BYTES
from musicsearch.server.service import AUDIO_TYPES, Service, get_service, undecodable

MB = 1024 * 1024


@pytest.fixture
def service(fake_client):
    _, idx, _ = fake_client
    return Service(idx, max_upload_bytes=2 * MB)


def upload(data: bytes, filename: str | None) -> UploadFile:
    return UploadFile(io.BytesIO(data), filename=filename)


def test_a_track_and_its_tags_or_a_404(service, fake_client):
    _, idx, lib = fake_client
    [song] = idx.tracks_under(lib / "s2.flac").values()
    track, tags = service.track_or_404(song.id)
    assert (track.path, track.title, track.artist, track.genre) == (str(lib / "s2.flac"), "Song 2", "Bob", "Jazz")
    assert tags == []
    with pytest.raises(HTTPException) as err:
        service.track_or_404(999_999)
    assert (err.value.status_code, err.value.detail) == (404, "no track 999999")


def test_no_index_yet_is_a_404_too(tmp_path, fake_embedder_cls):
    empty = Service(MusicIndex(tmp_path / "none", settings=Settings(), embedder=fake_embedder_cls()), 1)
    with pytest.raises(HTTPException) as err:
        empty.track_or_404(1)
    assert (err.value.status_code, err.value.detail) == (404, "no track 1")


def test_the_index_is_called_under_the_lock(service, monkeypatch):
    held = []
    monkeypatch.setattr(service.index, "track", lambda track_id: held.append(service.lock.locked()))
    with pytest.raises(HTTPException):
        service.track_or_404(1)  # the stand-in finds nothing
    assert held == [True] and not service.lock.locked()
    assert Service(service.index, 1).lock is not service.lock  # a lock per service


@pytest.mark.parametrize(
    ("filename", "saved_as"),
    [
        ("clip.MP3", "upload.mp3"),
        ("a.b.flac", "upload.flac"),
        ("x.exe", "upload.bin"),
        ("noext", "upload.bin"),
        (None, "upload.bin"),
    ],
)
def test_an_upload_is_written_under_a_name_of_its_own(service, tmp_path, filename, saved_as):
    data = b"\x01\x02" * (MB // 2 + 7)  # two chunks: 1 MiB and 14 bytes
    path = asyncio.run(service.saved_upload(upload(data, filename), str(tmp_path)))
    assert path == tmp_path / saved_as and path.read_bytes() == data
    assert [p.name for p in tmp_path.iterdir()] == [saved_as]


def test_an_upload_over_the_limit_is_413_and_an_empty_one_400(service, tmp_path):
    exact = asyncio.run(service.saved_upload(upload(b"x" * 2 * MB, "at.wav"), str(tmp_path)))
    assert exact.stat().st_size == 2 * MB  # at the limit: kept
    with pytest.raises(HTTPException) as err:
        asyncio.run(service.saved_upload(upload(b"x" * (2 * MB + 1), "big.wav"), str(tmp_path)))
    assert (err.value.status_code, err.value.detail) == (413, "upload larger than 2 MB")
    with pytest.raises(HTTPException) as err:
        asyncio.run(service.saved_upload(upload(b"", "empty.ogg"), str(tmp_path)))
    assert (err.value.status_code, err.value.detail) == (400, "the uploaded file is empty")


def test_an_undecodable_upload_is_422_without_the_temp_path():
    exc = undecodable(DecodeError("/tmp/xyz/upload.mp3", "no audio stream"))
    assert (exc.status_code, exc.detail) == (422, "the uploaded file could not be decoded as audio (no audio stream)")


def test_routes_get_the_apps_service(fake_client):
    client, _, _ = fake_client
    got = asyncio.run(get_service(Request({"type": "http", "app": client.app})))
    assert got is client.app.state.service and isinstance(got, Service)
    assert got.max_upload_bytes == MAX_UPLOAD_BYTES  # create_app's default


def test_the_audio_types():
    assert AUDIO_TYPES == {
        ".mp3": "audio/mpeg",
        ".flac": "audio/flac",
        ".ogg": "audio/ogg",
        ".oga": "audio/ogg",
        ".opus": "audio/ogg",
        ".wav": "audio/wav",
        ".m4a": "audio/mp4",
        ".aac": "audio/aac",
        ".alac": "audio/mp4",
        ".aif": "audio/aiff",
        ".aiff": "audio/aiff",
        ".wma": "audio/x-ms-wma",
    }
