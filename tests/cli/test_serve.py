"""``musicsearch serve`` (musicsearch/cli/serve.py): what stops it before the model loads (no
index there, a port in use) is one ``Error:`` line; a good start reaches the server with the
port already bound."""

import os
import socket
import subprocess
import sys

import pytest
from typer.testing import CliRunner

import musicsearch.server
from musicsearch.cli import app

runner = CliRunner()


@pytest.fixture
def served(monkeypatch):
    """Stands in for the server (which would load the model and block): records each call
    with the address its socket is bound to."""
    calls = []

    def fake_serve(index, host, port, sock=None):
        calls.append((index.path, host, port, sock.getsockname()))

    monkeypatch.setattr(musicsearch.server, "serve", fake_serve)
    return calls


@pytest.fixture
def busy_port():
    """A port on loopback that something is listening on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield s.getsockname()[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_missing_index_is_one_line_before_the_model(tmp_path, served, one_error_line):
    missing = tmp_path / "nonexistent"
    line = one_error_line(runner.invoke(app, ["serve", "--index", str(missing), "--port", str(free_port())]))
    assert line == f"Error: no index at {missing}; build one with: musicsearch index FOLDER --index {missing}"
    assert served == [] and not missing.exists()


def test_busy_port_is_one_line_before_the_model(idx, busy_port, served, one_error_line):
    line = one_error_line(runner.invoke(app, ["serve", "--index", idx, "--port", str(busy_port)]))
    assert f"127.0.0.1:{busy_port}" in line and "in use" in line and "--port" in line
    assert served == []


def test_a_good_start_hands_the_bound_port_to_the_server(idx, served):
    port = free_port()
    r = runner.invoke(app, ["serve", "--index", idx, "--port", str(port)])
    assert r.exit_code == 0, r.output
    assert [(str(path), host, p, addr) for path, host, p, addr in served] == [
        (idx, "127.0.0.1", port, ("127.0.0.1", port))
    ]
    assert f"musicsearch on http://127.0.0.1:{port}/" in r.stderr
    with socket.socket() as s:  # closed again once the server returned
        s.bind(("127.0.0.1", port))


def test_watch_may_start_on_a_missing_index(tmp_path, served, monkeypatch):
    """``serve --watch`` builds the index itself, so a missing one is no error there."""
    import musicsearch.cli.serve

    monkeypatch.setattr(musicsearch.cli.serve, "_start_watcher", lambda *a: None)
    (tmp_path / "music").mkdir()
    missing = tmp_path / "new-index"
    r = runner.invoke(
        app, ["serve", "--index", str(missing), "--port", str(free_port()), "--watch", str(tmp_path / "music")]
    )
    assert r.exit_code == 0, r.output
    assert len(served) == 1 and served[0][0] == missing


def test_busy_port_from_the_command_line(idx, busy_port):
    """As a user meets it: the real command in its own process, nothing but the one line."""
    proc = subprocess.run(
        [sys.executable, "-m", "musicsearch", "serve", "--index", idx, "--port", str(busy_port)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "MUSICSEARCH_NO_MODEL_CHECK": "1"},
    )
    assert proc.returncode == 1 and proc.stdout == ""
    assert proc.stderr.strip().splitlines() == [
        f"Error: cannot listen on 127.0.0.1:{busy_port}: the port is in use (another musicsearch serve?); "
        "choose another with --port"
    ]
