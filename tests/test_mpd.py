"""--mpd against a real MPD (Debian's ``mpd``), started here on a free loopback port with a
null audio output; skipped, saying why, where there is no mpd."""

import shutil
import socket
import subprocess
import time

import pytest
from typer.testing import CliRunner

import musicsearch.api
from musicsearch.cli import app
from musicsearch.errors import MusicSearchError
from musicsearch.mpd import MpdAddress, MpdClient, mpd_uri, queue_paths, quote

runner = CliRunner()
MPD = shutil.which("mpd") or (shutil.which("mpd", path="/usr/sbin:/usr/bin"))


def test_address_parsing():
    assert MpdAddress.parse("localhost") == MpdAddress("localhost", 6600)
    assert MpdAddress.parse("box:6601") == MpdAddress("box", 6601)
    assert MpdAddress.parse("secret@box:6601") == MpdAddress("box", 6601, "secret")
    assert MpdAddress.parse("[::1]:7000") == MpdAddress("::1", 7000)
    assert MpdAddress.parse("/run/mpd/socket") == MpdAddress("/run/mpd/socket", 0)
    for bad in ("box:x", "box:0", ":6600", "box:70000"):
        with pytest.raises(MusicSearchError, match="bad --mpd"):
            MpdAddress.parse(bad)


def test_quote_and_uri(tmp_path):
    assert quote('a "b" \\c') == '"a \\"b\\" \\\\c"'
    assert mpd_uri(str(tmp_path / "lib" / "A b" / "x.flac"), tmp_path / "lib") == "A b/x.flac"
    assert mpd_uri(str(tmp_path / "other" / "x.flac"), tmp_path / "lib") is None
    assert mpd_uri(str(tmp_path / "lib2" / "x.flac"), tmp_path / "lib") is None  # a sibling with the same prefix


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(predicate, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout} s waiting for {what}")


@pytest.fixture
def mpd_server(tmp_path, catalog):
    """A real mpd serving ``catalog`` on a free loopback port; yields (address, music dir)."""
    if MPD is None:
        pytest.skip("no mpd here (Debian: apt-get install mpd); .ci/run installs it")
    conf_dir = tmp_path / "mpd"
    conf_dir.mkdir()
    port = _free_port()
    conf = conf_dir / "mpd.conf"
    conf.write_text(
        f'music_directory "{catalog}"\n'
        f'db_file "{conf_dir / "db"}"\n'
        f'log_file "{conf_dir / "log"}"\n'
        f'state_file "{conf_dir / "state"}"\n'
        'bind_to_address "127.0.0.1"\n'
        f'port "{port}"\n'
        'zeroconf_enabled "no"\n'
        'auto_update "no"\n'
        'audio_output {\n  type "null"\n  name "null"\n}\n'
    )
    proc = subprocess.Popen(
        [MPD, "--no-daemon", "--stderr", str(conf)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    addr = MpdAddress("127.0.0.1", port)

    def connect():
        if proc.poll() is not None:
            out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
            pytest.skip(f"mpd could not start here: {out.strip()[-300:]}")
        try:
            return MpdClient(addr, timeout=5)
        except MusicSearchError:
            return None

    try:
        client = _wait(connect, 15, "mpd to listen")
        with client:
            client.command("update")
            _wait(lambda: "updating_db" not in dict(client.command("status")), 30, "mpd's database update")
            songs = [v for k, v in client.command("listall") if k == "file"]
        assert len(songs) == 20, songs
        yield addr, catalog
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def _queue(addr):
    with MpdClient(addr) as c:
        return [v for k, v in c.command("playlistinfo") if k == "file"]


def test_queue_paths_replace_append_and_errors(mpd_server, tmp_path):
    addr, music = mpd_server
    first = [str(music / "jazz" / "song03.flac"), str(music / "rock" / "song12.flac")]
    r = queue_paths(addr, first, music_dir=music)
    assert (r.added, r.skipped, r.replaced) == (2, [], True)
    assert _queue(addr) == ["jazz/song03.flac", "rock/song12.flac"]
    r = queue_paths(
        addr, [str(music / "jazz" / "song01.flac"), str(tmp_path / "elsewhere.flac")], music_dir=music, append=True
    )
    assert (r.added, r.skipped) == (1, [str(tmp_path / "elsewhere.flac")])
    assert _queue(addr) == ["jazz/song03.flac", "rock/song12.flac", "jazz/song01.flac"]
    queue_paths(addr, first[1:], music_dir=music)
    assert _queue(addr) == ["rock/song12.flac"]
    with pytest.raises(
        MusicSearchError,
        match=r"MPD refused add \"jazz/missing.flac\": No such directory \(is MPD.s database up to date\? mpc update\)",
    ):
        queue_paths(addr, [str(music / "jazz" / "missing.flac")], music_dir=music, append=True)
    with pytest.raises(MusicSearchError, match="pass --mpd-music-dir"):
        queue_paths(addr, first)  # over TCP MPD does not tell its music directory
    with pytest.raises(MusicSearchError, match="none of the 1 tracks"):
        queue_paths(addr, [str(tmp_path / "x.flac")], music_dir=music)
    with pytest.raises(MusicSearchError, match="cannot reach MPD"):
        queue_paths(MpdAddress("127.0.0.1", _free_port()), first, music_dir=music)


def test_cli_query_and_similar_fill_the_queue(mpd_server, tmp_path, monkeypatch, fake_embedder_cls):
    addr, music = mpd_server
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    idx = str(tmp_path / "idx")
    assert runner.invoke(app, ["index", str(music), "--index", idx, "-q"]).exit_code == 0
    mpd = ["--mpd", str(addr), "--mpd-music-dir", str(music)]
    r = runner.invoke(app, ["query", "2400 Hz", "--index", idx, "-k", "2", "--genre", "jazz", *mpd])
    assert r.exit_code == 0, r.output
    assert "Queued 2 tracks on MPD 127.0.0.1" in r.output
    assert sorted(_queue(addr)) == ["jazz/song03.flac", "jazz/song07.flac"]
    r = runner.invoke(app, ["similar", "Song 01", "--index", idx, "-k", "2", "--genre", "rock", *mpd, "--append"])
    assert r.exit_code == 0, r.output
    q = _queue(addr)
    assert sorted(q[:2]) == ["jazz/song03.flac", "jazz/song07.flac"]
    assert sorted(q[2:]) == ["rock/song13.flac", "rock/song17.flac"]  # the rock songs at 600 Hz
    r = runner.invoke(app, ["query", "2400 Hz", "--index", idx, "--mpd", str(addr)])
    assert r.exit_code == 1 and r.stderr.startswith("Error: MPD at 127.0.0.1") and "--mpd-music-dir" in r.stderr
