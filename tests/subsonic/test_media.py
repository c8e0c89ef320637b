"""The files themselves: stream and download with Range, cover art, nothing outside the index."""

import os

from musicsearch.subsonic.catalog import name_id


def test_stream_is_the_file_with_range(rest, music, password):
    song = str(music.ids["Sun"])
    data = (music.lib / "Bob/Red/01.flac").read_bytes()
    r = rest("stream", id=song)
    assert r.status_code == 200 and r.content == data and r.headers["content-type"] == "audio/flac"
    refused = rest("stream.view", id=song, password="wrong")
    assert refused.status_code == 200 and refused.json()["subsonic-response"]["error"]["code"] == 40
    ranged = music.client.get(
        "/rest/stream", params={"u": "alice", "p": password, "id": song}, headers={"Range": "bytes=100-199"}
    )
    assert ranged.status_code == 206 and ranged.content == data[100:200]
    down = rest("download", id=song)
    assert down.content == data and "01.flac" in down.headers["content-disposition"]


def test_cover_art(rest, music):
    blue = rest("getCoverArt", id=name_id("al", "Ann", "Blue"))
    assert blue.headers["content-type"] == "image/png" and blue.content.startswith(b"\x89PNG")
    red = rest("getCoverArt", id=str(music.ids["Moon"]))
    assert red.headers["content-type"] == "image/jpeg"
    assert red.content == (music.lib / "Bob/Red/cover.jpg").read_bytes()
    assert rest("getCoverArt", id=name_id("ar", "Bob")).content == red.content
    loose = rest("getCoverArt", id=str(music.ids["untitled"])).json()["subsonic-response"]
    assert loose["error"]["code"] == 70


def test_a_linked_cover_is_not_followed(rest, music, tmp_path):
    secret = tmp_path / "secret.jpg"
    secret.write_bytes(b"secret")
    link = music.lib / "loose" / "cover.jpg"
    os.symlink(secret, link)
    try:
        body = rest("getCoverArt", id=str(music.ids["untitled"])).json()["subsonic-response"]
        assert body["error"]["code"] == 70
    finally:
        link.unlink()


def test_ids_are_never_paths(failed, music):
    for bad in ("../../../../etc/passwd", "/etc/passwd", str(music.lib / "Bob/Red/01.flac"), "1/../2", "%2e%2e", "-1"):
        for method in ("stream", "download", "getCoverArt"):
            failed(method, 70, id=bad)
    failed("stream", 10)


def test_a_vanished_file_is_70(failed, music, write_audio, tone):
    path = music.lib / "Ann/Blue/02.flac"
    data = path.read_bytes()
    path.unlink()
    try:
        assert "no longer there" in failed("stream", 70, id=str(music.ids["Night Walk"]))
    finally:
        path.write_bytes(data)
