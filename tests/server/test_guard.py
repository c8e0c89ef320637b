"""The request guard (musicsearch/server/guard.py): bodies bounded before they are read, query strings checked."""

import asyncio
import itertools
import json

import pytest

from musicsearch.server import MAX_JSON_BYTES, create_app


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


@pytest.fixture(scope="package")
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


def test_json_body_limit(client, built, no_error_logged, error_of):
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


def test_invalid_utf8_and_control_characters_are_4xx(client, no_error_logged, error_of):
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
