"""The user file: mode 0600, passwords as the protocol needs them, API keys as digests."""

import stat

import pytest

from musicsearch.errors import MusicSearchError
from musicsearch.subsonic.users import UserStore, is_loopback


def test_add_change_remove_and_keys(tmp_path):
    users = UserStore(tmp_path / "cfg" / "users.json")
    assert users.load() == {}
    assert users.add("ann", "pw one") is True
    assert stat.S_IMODE(users.path.stat().st_mode) == 0o600
    key = users.new_api_key("ann")
    assert users.add("ann", "pw two") is False  # a new password; the key stays
    assert users.load()["ann"].password == "pw two" and users.by_api_key(key).name == "ann"
    assert UserStore(users.path).by_api_key("nope") is None
    users.remove("ann")
    assert users.load() == {} and stat.S_IMODE(users.path.stat().st_mode) == 0o600
    with pytest.raises(MusicSearchError, match="no user named 'ann'"):
        users.remove("ann")
    with pytest.raises(MusicSearchError, match="no user named 'ann'"):
        users.new_api_key("ann")


def test_bad_names_passwords_and_files(tmp_path):
    users = UserStore(tmp_path / "users.json")
    for name in ("", " ann", "a\nb", "x" * 65):
        with pytest.raises(MusicSearchError, match="bad user name"):
            users.add(name, "pw")
    with pytest.raises(MusicSearchError, match="empty"):
        users.add("ann", "")
    users.path.write_text("{not json")
    with pytest.raises(MusicSearchError, match="damaged"):
        users.load()


def test_loopback():
    assert all(map(is_loopback, ["127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"]))
    assert not any(map(is_loopback, ["0.0.0.0", "192.168.1.2", "::", "example.org"]))
