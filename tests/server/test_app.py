"""The app's wiring (musicsearch/server/app.py): the documented API, an empty index, the error shape of the framework's own errors, serve."""

import json

from fastapi.testclient import TestClient

from musicsearch import MusicIndex, Settings
from musicsearch.server import create_app


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


def test_empty_or_missing_index(tmp_path, tiny_model, error_of):
    app = create_app(MusicIndex(tmp_path / "none", settings=Settings(model=str(tiny_model), model_check=False)))
    c = TestClient(app)
    assert c.get("/api/info").json()["tracks"] == 0
    assert "no index" in error_of(c.get("/api/search", params={"q": "x"}), 404)
    error_of(c.get("/api/tracks/1/audio"), 404)


def test_framework_errors_have_the_json_error_shape_too(client, no_error_logged, error_of):
    error_of(client.get("/no/such/page"), 404)
    error_of(client.delete("/api/info"), 405)
    garbage = b"garbage, not multipart at all"
    error_of(
        client.post("/api/similar", content=garbage, headers={"content-type": "multipart/form-data; boundary=x"}), 400
    )


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
