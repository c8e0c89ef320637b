"""The track routes (musicsearch/server/tracks.py): metadata, audio, windows, map, playlist."""

import math

import pytest

from musicsearch.server import MAX_QUERY_CHARS


def test_track_metadata_and_audio_with_ranges(client, built):
    _, lib, _ = built
    hit = client.get("/api/search", params={"q": "x", "k": 3, "path": "*low.wav"}).json()[0]
    meta = client.get(f"/api/tracks/{hit['track_id']}").json()
    assert meta["path"] == str(lib / "a" / "low.wav") and meta["duration"] == 25
    data = (lib / "a" / "low.wav").read_bytes()
    full = client.get(f"/api/tracks/{hit['track_id']}/audio")
    assert full.status_code == 200 and full.content == data and full.headers["content-type"] == "audio/wav"
    assert full.headers.get("accept-ranges") == "bytes"
    part = client.get(f"/api/tracks/{hit['track_id']}/audio", headers={"Range": "bytes=100-199"})
    assert part.status_code == 206 and part.content == data[100:200]
    assert part.headers["content-range"] == f"bytes 100-199/{len(data)}"


def test_unknown_track(client, error_of):
    assert "no track" in error_of(client.get("/api/tracks/999999"), 404)
    error_of(client.get("/api/tracks/999999/audio"), 404)
    error_of(client.get("/api/tracks/abc"), 422)


@pytest.mark.parametrize(
    "url",
    [
        "/api/tracks/../../../../etc/passwd",
        "/api/tracks/%2e%2e%2f%2e%2e%2fetc%2fpasswd/audio",
        "/api/tracks/1%2f..%2f..%2fetc%2fpasswd/audio",
        "/api/tracks/-1/audio",
        "/..%2f..%2fetc%2fpasswd",
        "/static/../../etc/passwd",
        "/app.js/../../etc/passwd",
        "/api/tracks/1/audio?path=/etc/passwd",
    ],
)
def test_no_file_outside_the_index_can_be_read(client, url):
    r = client.get(url)
    assert b"root:" not in r.content
    if r.status_code == 200:  # only ever an indexed file
        assert r.headers["content-type"].startswith(("audio/", "text/html"))


def test_audio_query_parameters_cannot_pick_the_file(client, built):
    _, lib, _ = built
    hit = client.get("/api/search", params={"q": "x", "k": 1, "path": "*mid.flac"}).json()[0]
    r = client.get(f"/api/tracks/{hit['track_id']}/audio", params={"path": str(lib / "a" / "low.wav")})
    assert r.content == (lib / "b" / "mid.flac").read_bytes()


def test_window_scores_of_a_track_for_a_query(fake_client, one_hot, band_of):

    client, _, _ = fake_client
    mix = client.get("/api/search", params={"q": "2400 Hz", "k": 1}).json()[0]
    assert mix["title"] == "mix" and mix["matched"] == "sound"
    windows = client.get(f"/api/tracks/{mix['track_id']}/windows", params={"q": "2400 Hz"}).json()
    assert [(w["start"], w["end"]) for w in windows] == [(0.0, 10.0), (10.0, 20.0)]
    assert windows[1]["score"] == pytest.approx(1.0, abs=1e-5)
    low_vs_high = float(one_hot(band_of(150)) @ one_hot(band_of(2400)))
    assert windows[0]["score"] == pytest.approx(low_vs_high, abs=1e-5) and low_vs_high < 0.05
    flipped = client.get(f"/api/tracks/{mix['track_id']}/windows", params={"q": "150 Hz", "lexical": False}).json()
    assert flipped[0]["score"] == pytest.approx(1.0, abs=1e-5) and flipped[1]["score"] < 0.05
    song = client.get("/api/search", params={"q": "1200 Hz", "k": 1}).json()[0]
    like = client.get(f"/api/tracks/{song['track_id']}/windows", params={"like": song["track_id"]}).json()
    assert [w["score"] for w in like] == [pytest.approx(1.0, abs=1e-5)]


def test_window_scores_errors(fake_client, error_of):
    client, _, _ = fake_client
    assert "exactly one" in error_of(client.get("/api/tracks/1/windows"), 400)
    assert "exactly one" in error_of(client.get("/api/tracks/1/windows", params={"q": "x", "like": 1}), 400)
    error_of(client.get("/api/tracks/999999/windows", params={"q": "x"}), 404)
    error_of(client.get("/api/tracks/1/windows", params={"like": 999999}), 404)
    error_of(client.get("/api/tracks/1/windows", params={"q": "a" * (MAX_QUERY_CHARS + 1)}), 422)


def test_map_lists_every_track_once(fake_client):
    client, idx, _ = fake_client
    points = client.get("/api/map").json()
    ids = sorted(h["track_id"] for h in client.get("/api/search", params={"q": "x", "k": 50}).json())
    assert sorted(p["track_id"] for p in points) == ids and len(ids) == 5
    assert all(math.isfinite(p["x"]) and math.isfinite(p["y"]) for p in points)
    assert {p["title"] for p in points} >= {"mix", "Song 0"}
    assert next(p for p in points if p["title"] == "Song 0")["tags"]["genre"] == "Jazz"
    files = list(idx.path.glob("map-g*.json"))
    assert len(files) == 1
    before = files[0].stat().st_mtime_ns
    assert client.get("/api/map").json() == points and files[0].stat().st_mtime_ns == before  # cached


def test_playlist_of_selected_tracks(fake_client, error_of):
    client, _, lib = fake_client
    points = {p["title"]: p["track_id"] for p in client.get("/api/map").json()}
    r = client.get("/api/playlist.m3u8", params={"ids": f"{points['Song 2']},{points['mix']}"})
    assert r.status_code == 200 and r.headers["content-type"].startswith("audio/x-mpegurl")
    lines = r.text.splitlines()
    assert lines[0] == "#EXTM3U" and lines[2] == str(lib / "s2.flac") and lines[4] == str(lib / "mix.wav")
    assert lines[1] == "#EXTINF:5,Bob - Song 2"
    error_of(client.get("/api/playlist.m3u8", params={"ids": ""}), 400)
    error_of(client.get("/api/playlist.m3u8", params={"ids": "1,x"}), 422)
    error_of(client.get("/api/playlist.m3u8", params={"ids": "999999"}), 404)
    error_of(client.get("/api/playlist.m3u8", params={"ids": ",".join(["1"] * 2001)}), 422)
