import asyncio
import itertools
import json
import logging
import math
import re

import numpy as np
import pytest
from conftest import noise, tone, write_audio
from fastapi.testclient import TestClient

from musicsearch import MusicIndex, Settings
from musicsearch.server import MAX_JSON_BYTES, MAX_PROMPTS, MAX_QUERY_CHARS, create_app


@pytest.fixture(scope="module")
def built(tmp_path_factory, tiny_model):
    tmp = tmp_path_factory.mktemp("server")
    lib = tmp / "lib"
    write_audio(lib / "a" / "low.wav", tone(150, 25))
    write_audio(lib / "b" / "mid.flac", tone(600, 12))
    write_audio(lib / "b" / "noise.ogg", noise(8))
    idx = MusicIndex(tmp / "idx", settings=Settings(model=str(tiny_model), model_check=False))
    idx.index(lib)
    return idx, lib, tmp


@pytest.fixture(scope="module")
def client(built):
    idx, _, _ = built
    return TestClient(create_app(idx, max_upload_bytes=2 * 1024 * 1024))


def error_of(r, status):
    assert r.status_code == status, r.text
    body = r.json()
    assert set(body) == {"error"} and "Traceback" not in body["error"]
    return body["error"]


def test_page_and_assets_are_served_offline(client):
    page = client.get("/")
    assert page.status_code == 200 and "text/html" in page.headers["content-type"]
    assert 'src="/app.js"' in page.text and "http" not in page.text.split("<body>")[1].replace("http://", "")
    for asset in ("/app.js", "/style.css"):
        r = client.get(asset)
        assert r.status_code == 200 and "//cdn" not in r.text and "https://" not in r.text


def test_openapi_documents_the_api(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {
        "/api/search",
        "/api/tracks/{track_id}",
        "/api/tracks/{track_id}/audio",
        "/api/similar",
        "/api/classify",
        "/api/info",
    } <= set(paths)


def test_search_matches_query_json(client, built):
    idx, _lib, _ = built
    hits = client.get("/api/search", params={"q": "slow sad piano", "k": 3}).json()
    assert len(hits) == 3 and [h["rank"] for h in hits] == [1, 2, 3]
    assert {
        "rank",
        "score",
        "track_id",
        "path",
        "title",
        "artist",
        "album",
        "genre",
        "year",
        "duration",
        "segment_start",
        "segment_end",
    } <= set(hits[0])
    direct = [h.to_dict() for h in idx.search("slow sad piano", k=3)]
    assert hits == json.loads(json.dumps(direct))


def test_search_filters(client):
    hits = client.get("/api/search", params={"q": "x", "k": 10, "path": "*/b/*", "min_duration": "0:09"}).json()
    assert [h["title"] for h in hits] == ["mid"]
    assert client.get("/api/search", params={"q": "x", "by": "window", "k": 2}).status_code == 200


def test_search_errors_are_4xx_json(client):
    assert "empty query" in error_of(client.get("/api/search", params={"q": "   "}), 400)
    error_of(client.get("/api/search", params={"q": "a" * (MAX_QUERY_CHARS + 1)}), 422)
    error_of(client.get("/api/search"), 422)
    for k in (0, 10_000, "many"):
        error_of(client.get("/api/search", params={"q": "x", "k": k}), 422)
    assert "bad year" in error_of(client.get("/api/search", params={"q": "x", "year": "soon"}), 400)
    error_of(client.get("/api/search", params={"q": "x", "by": "album"}), 422)


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


def test_unknown_track(client):
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


def test_similar_by_track_and_by_upload(client, built, tmp_path):
    hits = client.get("/api/search", params={"q": "x", "k": 3}).json()
    seed = hits[0]["track_id"]
    similar = client.post("/api/similar", json={"track_id": seed, "k": 5}).json()
    assert len(similar) == 2 and seed not in [h["track_id"] for h in similar]
    clip = write_audio(tmp_path / "clip.wav", tone(600, 3))
    with open(clip, "rb") as f:
        up = client.post("/api/similar", files={"audio": ("clip.wav", f, "audio/wav")}, data={"k": "2"})
    assert up.status_code == 200 and len(up.json()) == 2
    assert "no track" in error_of(client.post("/api/similar", json={"track_id": 424242}), 404)
    error_of(client.post("/api/similar", json={"track_id": seed, "k": 0}), 422)
    error_of(client.post("/api/similar", content=b"nonsense", headers={"content-type": "application/json"}), 422)


def test_classify_upload_and_track(client, tmp_path):
    clip = write_audio(tmp_path / "clip.flac", tone(440, 4))
    with open(clip, "rb") as f:
        r = client.post(
            "/api/classify", files={"audio": ("clip.flac", f, "audio/flac")}, data={"labels": "rock, jazz, classical"}
        )
    body = r.json()
    assert r.status_code == 200 and set(body) == {"labels", "top_label", "confidence"}
    assert next(x["label"] for x in body["labels"]) == body["top_label"]
    assert sorted(x["label"] for x in body["labels"]) == ["classical", "jazz", "rock"]
    assert abs(sum(x["score"] for x in body["labels"]) - 1) < 1e-5
    track_id = client.get("/api/search", params={"q": "x", "k": 1}).json()[0]["track_id"]
    r = client.post("/api/classify", data={"labels": "a, b", "track_id": str(track_id)})
    assert r.status_code == 200 and r.json()["top_label"] in {"a", "b"}


def test_classify_and_upload_errors(client, tmp_path):
    junk = tmp_path / "junk.mp3"
    junk.write_bytes(b"not audio" * 100)
    with open(junk, "rb") as f:
        msg = error_of(client.post("/api/classify", files={"audio": ("junk.mp3", f)}, data={"labels": "a, b"}), 422)
    assert "could not be decoded" in msg and str(tmp_path) not in msg
    big = tmp_path / "big.wav"
    big.write_bytes(b"\0" * (3 * 1024 * 1024))
    with open(big, "rb") as f:
        assert "larger than" in error_of(
            client.post("/api/classify", files={"audio": ("big.wav", f)}, data={"labels": "a, b"}), 413
        )
    error_of(client.post("/api/classify", data={"labels": "a, b"}), 422)
    assert "at least two labels" in error_of(
        client.post("/api/classify", data={"labels": "solo", "track_id": "1"}), 400
    )
    error_of(client.post("/api/classify", files={"audio": ("e.wav", b"")}, data={"labels": "a, b"}), 400)


def test_empty_or_missing_index(tmp_path, tiny_model):
    app = create_app(MusicIndex(tmp_path / "none", settings=Settings(model=str(tiny_model), model_check=False)))
    c = TestClient(app)
    assert c.get("/api/info").json()["tracks"] == 0
    assert "no index" in error_of(c.get("/api/search", params={"q": "x"}), 404)
    error_of(c.get("/api/tracks/1/audio"), 404)


def test_serve_command_runs_on_loopback(built):
    import os
    import socket
    import subprocess
    import sys
    import time
    import urllib.request

    _, _, tmp = built
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "MUSICSEARCH_NO_MODEL_CHECK": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "musicsearch", "serve", "--index", str(tmp / "idx"), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.time() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/info", timeout=2) as r:
                    info = json.loads(r.read())
                break
            except OSError:
                assert proc.poll() is None and time.time() < deadline, (
                    proc.stdout.read() if proc.poll() is not None else "timeout"
                )
                time.sleep(0.2)
        assert info["tracks"] == 3
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/search?q=strings&k=2", timeout=10) as r:
            assert len(json.loads(r.read())) == 2
    finally:
        proc.terminate()
        out = proc.communicate(timeout=20)[0]
    assert f"http://127.0.0.1:{port}/" in out


# -- every parameter validated, bodies bounded before they are read ------------


@pytest.fixture
def no_error_logged(caplog):
    """Fails the test if anything logs at ERROR (uvicorn/starlette log a traceback for a 500)."""
    caplog.set_level(logging.ERROR)
    yield
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info], caplog.text


@pytest.mark.parametrize("bad_id", ["99999999999999999999999", str(2**63), "0", "-1", "1e3"])
def test_track_ids_outside_sqlite_range_are_4xx(client, bad_id, no_error_logged):
    assert "track_id" in error_of(client.get(f"/api/tracks/{bad_id}"), 422)
    error_of(client.get(f"/api/tracks/{bad_id}/audio"), 422)


def test_largest_sqlite_id_is_a_valid_unknown_track(client, no_error_logged):
    assert "no track" in error_of(client.get(f"/api/tracks/{2**63 - 1}"), 404)
    error_of(client.get(f"/api/tracks/{2**63 - 1}/audio"), 404)
    assert "no track" in error_of(client.post("/api/similar", json={"track_id": 2**63 - 1}), 404)


@pytest.mark.parametrize("bad_id", [99999999999999999999999, 2**63, 0, -1])
def test_similar_and_classify_refuse_ids_outside_sqlite_range(client, bad_id, no_error_logged):
    assert "track_id" in error_of(client.post("/api/similar", json={"track_id": bad_id, "k": 2}), 422)
    assert "track_id" in error_of(client.post("/api/classify", data={"labels": "a, b", "track_id": str(bad_id)}), 422)


def test_each_prompt_is_bounded_and_so_is_their_number(client, no_error_logged):
    ok = "a" * MAX_QUERY_CHARS
    longest = {"q": ok, "not": ["b" * MAX_QUERY_CHARS, "c" * MAX_QUERY_CHARS], "k": 1}
    assert client.get("/api/search", params=longest).status_code == 200
    assert "500 characters" in error_of(client.get("/api/search", params={"q": "x", "not": ["b", ok + "a"]}), 422)
    error_of(client.get("/api/search", params={"q": "x", "not": "n" * 10_000}), 422)
    many = ["n"] * MAX_PROMPTS
    assert client.get("/api/search", params={"q": "x", "not": many, "k": 1}).status_code == 200
    error_of(client.get("/api/search", params={"q": "x", "not": [*many, "n"]}), 422)
    error_of(client.get("/api/search", params={"q": "x", "tag": ["t"] * (MAX_PROMPTS + 1)}), 422)
    error_of(client.get("/api/search", params={"q": "x", "artist": "a" * 10_000}), 422)
    error_of(client.get("/api/search", params={"q": "x", "year": "1" * 1000}), 422)
    error_of(client.get("/api/search", params={"q": "x", "min_score": "nan"}), 422)


def test_filters_that_do_not_parse_are_400(client, no_error_logged):
    for params in ({"min_duration": "-5"}, {"max_duration": "1:99:99"}, {"year": "1999-1990"}):
        assert "bad " in error_of(client.get("/api/search", params={"q": "x", **params}), 400)
    assert client.get("/api/search", params={"q": "x", "year": "", "min_duration": ""}).status_code == 200


def test_invalid_utf8_and_control_characters_are_4xx(client, no_error_logged):
    assert "UTF-8" in error_of(client.get("/api/search?q=caf%E9%20%FF"), 400)
    assert "UTF-8" in error_of(client.get("/api/search?q=x&artist=%C3"), 400)
    for q in ("a\x00b", "red\x1b[31m", "line\nbreak", "del\x7f", "c1\x85"):
        assert "control character" in error_of(client.get("/api/search", params={"q": q}), 400)
    assert "control character" in error_of(client.get("/api/search", params={"q": "x", "not": "a\x07"}), 400)
    assert "control character" in error_of(
        client.post("/api/classify", data={"labels": "a\x00, b", "track_id": "1"}), 400
    )
    # the detector stays quiet on real text, accents and all
    assert client.get("/api/search", params={"q": "café ☕ 日本の音楽", "k": 1}).status_code == 200
    assert client.get("/api/search?q=caf%C3%A9&k=1").status_code == 200


def asgi_request(app, method, path, headers, chunks):
    """Drives the ASGI app directly, feeding the body chunk by chunk, and returns
    (status, JSON body, bytes the app consumed). Unlike TestClient, which reads a generator
    body whole before calling the app, this shows how much of the body the app took."""
    consumed = 0
    sent: list[dict] = []
    body_iter = iter(chunks)

    async def receive():
        nonlocal consumed
        chunk = next(body_iter, None)
        if chunk is None:
            return {"type": "http.request", "body": b"", "more_body": False}
        consumed += len(chunk)
        return {"type": "http.request", "body": chunk, "more_body": True}

    async def send(message):
        sent.append(message)

    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        "client": ("127.0.0.1", 1234),
        "server": ("127.0.0.1", 80),
    }
    asyncio.run(app(scope, receive, send))
    start = next(m for m in sent if m["type"] == "http.response.start")
    body = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return start["status"], json.loads(body), consumed


CHUNK = 64 * 1024
SIXTY_MB = 60 * 1024 * 1024


def endless(total=SIXTY_MB, chunk=CHUNK):
    for _ in range(total // chunk):
        yield b" " * chunk


@pytest.fixture(scope="module")
def guarded_app(built):
    idx, _, _ = built
    return create_app(idx, max_upload_bytes=2 * 1024 * 1024)


@pytest.mark.parametrize("content_type", ["application/json", "text/plain", "application/x-www-form-urlencoded", ""])
def test_declared_oversized_body_is_refused_unread(guarded_app, content_type, no_error_logged):
    headers = {"content-type": content_type, "content-length": str(SIXTY_MB)}
    status, body, consumed = asgi_request(guarded_app, "POST", "/api/similar", headers, endless())
    assert status == 413 and set(body) == {"error"} and "64 KB" in body["error"]
    assert consumed == 0


def test_declared_oversized_upload_is_refused_unread(guarded_app, no_error_logged):
    headers = {"content-type": "multipart/form-data; boundary=xyz", "content-length": str(SIXTY_MB)}
    for path in ("/api/similar", "/api/classify"):
        status, body, consumed = asgi_request(guarded_app, "POST", path, headers, endless())
        assert (status, consumed) == (413, 0) and "larger than 2 MB" in body["error"]


def test_chunked_oversized_body_is_cut_off_at_the_limit(guarded_app, no_error_logged):
    status, body, consumed = asgi_request(
        guarded_app, "POST", "/api/similar", {"content-type": "application/json"}, endless()
    )
    assert status == 413 and set(body) == {"error"}
    assert MAX_JSON_BYTES < consumed <= MAX_JSON_BYTES + CHUNK  # stopped one chunk past the limit, not 60 MB


def test_chunked_oversized_upload_is_cut_off_at_the_limit(guarded_app, no_error_logged):
    head = b'--xyz\r\nContent-Disposition: form-data; name="audio"; filename="a.wav"\r\n\r\n'
    status, body, consumed = asgi_request(
        guarded_app,
        "POST",
        "/api/classify",
        {"content-type": "multipart/form-data; boundary=xyz"},
        itertools.chain([head], endless()),
    )
    assert status == 413 and "larger than 2 MB" in body["error"]
    assert consumed <= 2 * 1024 * 1024 + 64 * 1024 + CHUNK + len(head)


def test_json_body_limit(client, built, no_error_logged):
    seed = client.get("/api/search", params={"q": "x", "k": 1}).json()[0]["track_id"]
    padded = json.dumps({"track_id": seed, "k": 2}).encode()
    just_under = padded[:-1] + b" " * (MAX_JSON_BYTES - len(padded)) + b"}"
    assert len(just_under) == MAX_JSON_BYTES
    r = client.post("/api/similar", content=just_under, headers={"content-type": "application/json"})
    assert r.status_code == 200 and len(r.json()) == 2
    over = just_under[:-1] + b" }"
    assert "larger than" in error_of(
        client.post("/api/similar", content=over, headers={"content-type": "application/json"}), 413
    )


# -- offline /docs ---------------------------------------------------------------


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_outside(client, page):
    r = client.get(page)
    assert r.status_code == 200 and "text/html" in r.headers["content-type"]
    assert not re.search(r"https?:|//[a-z]", r.text, re.I), r.text  # no absolute or protocol-relative URL
    refs = re.findall(r'(?:src|href)="([^"]+)"', r.text)
    assert refs and all(ref.startswith("/docs-assets/") for ref in refs), refs
    for ref in refs:
        asset = client.get(ref)
        assert asset.status_code == 200 and len(asset.content) > 1000, ref
    if page == "/docs":
        assert {"/docs-assets/swagger-ui-bundle.js", "/docs-assets/swagger-ui.css"} <= set(refs)
        assert "SwaggerUIBundle" in client.get("/docs-assets/swagger-ui-bundle.js").text
        assert '"validatorUrl": null' in r.text  # Swagger UI would otherwise call an online validator


def test_docs_assets_cannot_reach_other_files(client):
    for url in ("/docs-assets/../server.py", "/docs-assets/%2e%2e/core.py", "/docs-assets/..%2f..%2fetc%2fpasswd"):
        r = client.get(url)
        assert r.status_code == 404 and b"import" not in r.content and b"root:" not in r.content


def test_framework_errors_have_the_json_error_shape_too(client, no_error_logged):
    error_of(client.get("/no/such/page"), 404)
    error_of(client.delete("/api/info"), 405)
    garbage = b"garbage, not multipart at all"
    error_of(
        client.post("/api/similar", content=garbage, headers={"content-type": "multipart/form-data; boundary=x"}), 400
    )


# issue 14: names, variety, paths and pictures, on the fake embedder (known geometry) --------


@pytest.fixture(scope="module")
def fake_client(tmp_path_factory):
    from conftest import FakeEmbedder, tagged

    tmp = tmp_path_factory.mktemp("fake-server")
    lib = tmp / "lib"
    write_audio(lib / "mix.wav", np.concatenate([tone(150, 10), tone(2400, 10)]))
    for i, (freq, artist) in enumerate([(600, "Ann"), (600, "Ann"), (600, "Bob"), (1200, "Bob")]):
        tagged(write_audio(lib / f"s{i}.flac", tone(freq, 5)), title=f"Song {i}", artist=artist, genre="Jazz")
    idx = MusicIndex(tmp / "idx", settings=Settings(batch_size=4), embedder=FakeEmbedder())
    idx.index(lib)
    return TestClient(create_app(idx)), idx, lib


def test_window_scores_of_a_track_for_a_query(fake_client):
    from conftest import band_of, one_hot

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


def test_window_scores_errors(fake_client):
    client, _, _ = fake_client
    assert "exactly one" in error_of(client.get("/api/tracks/1/windows"), 400)
    assert "exactly one" in error_of(client.get("/api/tracks/1/windows", params={"q": "x", "like": 1}), 400)
    error_of(client.get("/api/tracks/999999/windows", params={"q": "x"}), 404)
    error_of(client.get("/api/tracks/1/windows", params={"like": 999999}), 404)
    error_of(client.get("/api/tracks/1/windows", params={"q": "a" * (MAX_QUERY_CHARS + 1)}), 422)


def test_search_variety_params(fake_client):
    client, _, _ = fake_client
    plain = client.get("/api/search", params={"q": "600 Hz", "k": 3}).json()
    assert [h["artist"] for h in plain].count("Ann") == 2
    one_each = client.get("/api/search", params={"q": "600 Hz", "k": 3, "max_per_artist": 1}).json()
    artists = [h["artist"] for h in one_each]
    assert len(one_each) == 3 and len(set(artists)) == 3  # Ann, Bob and the untagged mix
    deduped = client.get("/api/search", params={"q": "600 Hz", "k": 5, "dedupe": True}).json()
    titles = [h["title"] for h in deduped]  # songs 0-2 are one sound (identical vectors): one of them stays
    assert len(titles) == 3 and sum(titles.count(f"Song {i}") for i in range(3)) == 1
    no_ann = client.get("/api/search", params=[("q", "600 Hz"), ("k", 5), ("exclude_artist", "ann")]).json()
    assert "Ann" not in [h["artist"] for h in no_ann] and len(no_ann) == 3
    no_jazz = client.get("/api/search", params={"q": "600 Hz", "k": 5, "exclude_genre": "jazz"}).json()
    assert [h["title"] for h in no_jazz] == ["mix"]
    no_flac = client.get("/api/search", params={"q": "600 Hz", "k": 5, "exclude_path": "*.flac"}).json()
    assert [h["title"] for h in no_flac] == ["mix"]
    a = client.get("/api/search", params={"q": "600 Hz", "k": 4, "variation": 1, "seed": 7}).json()
    b = client.get("/api/search", params={"q": "600 Hz", "k": 4, "variation": 1, "seed": 7}).json()
    assert a == b and len(a) == 4
    five = client.get("/api/search", params={"q": "600 Hz", "k": 5}).json()
    smooth = client.get("/api/search", params={"q": "600 Hz", "k": 5, "order": "smooth"}).json()
    assert sorted(h["track_id"] for h in smooth) == sorted(h["track_id"] for h in five)


def test_search_names_and_lexical_switch(fake_client):
    client, _, _ = fake_client
    by_bob = client.get("/api/search", params={"q": "600 Hz by Bob", "k": 5}).json()
    assert {h["artist"] for h in by_bob} == {"Bob"} and by_bob[0]["title"] == "Song 2"
    assert "artist" in by_bob[0]["matched"]
    titled = client.get("/api/search", params={"q": "Song 3", "k": 2}).json()
    assert titled[0]["title"] == "Song 3" and titled[0]["matched"] == "title"
    pure = client.get("/api/search", params={"q": "Song 3", "k": 2, "lexical": False}).json()
    assert all(h["matched"] == "sound" for h in pure)


@pytest.mark.parametrize(
    "params",
    [
        {"max_per_artist": 0},
        {"max_per_artist": "two"},
        {"variation": 1.5},
        {"variation": -0.1},
        {"variation": "nan"},
        {"seed": -1},
        {"seed": 2**40},
        {"order": "random"},
        {"lexical": "perhaps"},
        {"dedupe": "maybe"},
        {"exclude_artist": "x" * 501},
        {"exclude_path": ["*"] * 17},
    ],
)
def test_search_bad_variety_params_are_4xx_json(fake_client, params):
    client, _, _ = fake_client
    error_of(client.get("/api/search", params={"q": "600 Hz", **params}), 422)


def test_similar_with_variety_and_order(fake_client):
    client, _, _ = fake_client
    seed = client.get("/api/search", params={"q": "Song 0", "k": 1}).json()[0]
    plain = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 2}).json()
    assert {h["title"] for h in plain} == {"Song 1", "Song 2"}  # the same sound (ties)
    hits = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 3, "exclude_artist": ["Ann"]}).json()
    assert "Ann" not in [h["artist"] for h in hits] and len(hits) == 3
    one = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 3, "max_per_artist": 1}).json()
    assert len({h["artist"] for h in one}) == 3
    smooth = client.post("/api/similar", json={"track_id": seed["track_id"], "k": 3, "order": "smooth"})
    assert smooth.status_code == 200 and len(smooth.json()) == 3
    for bad in ({"variation": 2}, {"order": "up"}, {"max_per_artist": 0}, {"exclude_genre": ["x"] * 17}):
        error_of(client.post("/api/similar", json={"track_id": seed["track_id"], **bad}), 422)


def test_similar_upload_takes_variety_fields(fake_client, tmp_path):
    client, _, _ = fake_client
    clip = write_audio(tmp_path / "clip.wav", tone(600, 3))
    with clip.open("rb") as f:
        r = client.post(
            "/api/similar",
            files={"audio": ("clip.wav", f, "audio/wav")},
            data={"k": "3", "max_per_artist": "1"},
        )
    assert r.status_code == 200, r.text
    assert len({h["artist"] for h in r.json()}) == 3
    with clip.open("rb") as f:
        bad = client.post("/api/similar", files={"audio": ("clip.wav", f, "audio/wav")}, data={"variation": "9"})
    assert "variation" in error_of(bad, 422)


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


def test_playlist_of_selected_tracks(fake_client):
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


def test_path_between_two_tracks(fake_client):
    client, _, _ = fake_client
    ids = {p["title"]: p["track_id"] for p in client.get("/api/map").json()}
    hits = client.get("/api/path", params={"start": ids["Song 0"], "end": ids["Song 3"], "n": 4}).json()
    titles = [h["title"] for h in hits]
    assert titles[0] == "Song 0" and titles[-1] == "Song 3" and len(titles) == len(set(titles)) == 4
    error_of(client.get("/api/path", params={"start": ids["Song 0"], "end": 999999}), 404)
    error_of(client.get("/api/path", params={"start": ids["Song 0"], "end": ids["Song 3"], "n": 1}), 422)
