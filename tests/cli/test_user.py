"""``musicsearch user``: users added from stdin, listed, given API keys and removed; ``serve``
on another address than loopback refused while there is none."""

import stat

from typer.testing import CliRunner

from musicsearch.cli import app
from musicsearch.subsonic import UserStore

runner = CliRunner()


def test_add_list_apikey_remove(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    r = runner.invoke(app, ["user", "list"])
    assert r.exit_code == 0 and r.output == "No users yet: add one with musicsearch user add NAME\n"
    r = runner.invoke(app, ["user", "add", "ann", "--password-stdin"], input="pass word\n")
    users = UserStore()
    assert r.exit_code == 0 and r.output == f"Added user ann ({users.path})\n"
    assert users.path == tmp_path / "cfg" / "musicsearch" / "users.json"
    assert users.load()["ann"].password == "pass word" and stat.S_IMODE(users.path.stat().st_mode) == 0o600
    r = runner.invoke(app, ["user", "add", "ann", "--password-stdin"], input="other\n")
    assert r.output.startswith("Changed the password of user ann")
    key = runner.invoke(app, ["user", "apikey", "ann"]).output.strip()
    assert len(key) >= 40 and UserStore().by_api_key(key).name == "ann"
    assert runner.invoke(app, ["user", "list"]).output == "ann\t1 API key\n"
    assert runner.invoke(app, ["user", "remove", "ann"]).output == "Removed user ann\n"
    assert UserStore().load() == {}


def test_refusals_are_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    for args, stdin, message in [
        (["user", "add", "ann", "--password-stdin"], "", "Error: --password-stdin: stdin held no password"),
        (["user", "add", "ann"], "pw\n", "Error: no terminal to ask for the password: pipe it with --password-stdin"),
        (["user", "remove", "bob"], None, "Error: no user named 'bob' (musicsearch user list)"),
        (["user", "apikey", "bob"], None, "Error: no user named 'bob': add one with musicsearch user add bob"),
        (["user", "add", " x", "--password-stdin"], "pw\n", "Error: bad user name ' x'"),
    ]:
        r = runner.invoke(app, args, input=stdin)
        assert r.exit_code == 1 and r.stderr.startswith(message) and r.stderr.count("\n") == 1, (args, r.stderr)


def test_serve_elsewhere_than_loopback_needs_a_user(monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "cfg"))
    r = runner.invoke(app, ["serve", "--host", "0.0.0.0", "--index", str(tmp_path / "none")])
    assert r.exit_code == 1
    assert (
        r.stderr
        == "Error: refusing to serve on 0.0.0.0 with no user to log in as: add one with musicsearch user add NAME\n"
    )
