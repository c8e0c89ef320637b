"""The suite's own home: every place the code (and the libraries it loads) would write the
user's files resolves under the suite's temp folders, in a test, in a module-scoped fixture
(set up before any function-scoped one), at import time, and in a process a test starts."""

from __future__ import annotations

import os
import pwd
import subprocess
import sys
from pathlib import Path

import platformdirs
import pytest

import musicsearch.config
from musicsearch.config import Settings, default_index_dir
from musicsearch.prepared import cache_root

REAL_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)
XDG = ("XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME")


def outside_real_home(path: Path) -> bool:
    return not Path(path).resolve().is_relative_to(REAL_HOME.resolve())


@pytest.fixture(scope="module")
def seen_by_a_module_fixture() -> dict[str, Path]:
    return {"cache": cache_root(), "home": Path.home(), "index": Settings.from_env().index_dir}


def test_a_test_has_a_home_caches_and_index_of_its_own(isolated_home, tmp_path_factory, prepared_cache):
    base = tmp_path_factory.getbasetemp()
    home = isolated_home["HOME"]
    assert home.is_relative_to(base) and outside_real_home(home)
    assert Path.home() == home and Path(os.path.expanduser("~")) == home
    for name in XDG:
        assert Path(os.environ[name]) == isolated_home[name] and isolated_home[name].is_relative_to(home)
    assert cache_root() == prepared_cache == isolated_home["MUSICSEARCH_CACHE"]
    assert prepared_cache.is_relative_to(base)
    assert Settings.from_env().index_dir == isolated_home["MUSICSEARCH_INDEX"]
    assert not isolated_home["MUSICSEARCH_INDEX"].exists()  # created only by a run, as a user's


def test_without_musicsearch_cache_the_default_cache_is_under_the_test_home(isolated_home, monkeypatch):
    monkeypatch.delenv("MUSICSEARCH_CACHE")
    assert cache_root() == isolated_home["XDG_CACHE_HOME"] / "musicsearch"
    assert Path(platformdirs.user_cache_dir("musicsearch")) == cache_root()
    monkeypatch.delenv("MUSICSEARCH_INDEX")
    assert default_index_dir() == isolated_home["XDG_DATA_HOME"] / "musicsearch" / "indexes" / "default"
    assert Settings.from_env().index_dir == musicsearch.config.DEFAULT_INDEX_DIR


def test_paths_resolved_at_import_are_the_sessions_not_the_users(isolated_home):
    """``DEFAULT_INDEX_DIR`` (``Settings()``'s index) was resolved when musicsearch was first
    imported, before any fixture ran: under the session's home, not the user's."""
    for path in (musicsearch.config.DEFAULT_INDEX_DIR, Settings().index_dir):
        assert outside_real_home(path) and "musicsearch-tests-" in str(path)
    import huggingface_hub.constants

    assert outside_real_home(Path(huggingface_hub.constants.HF_HUB_CACHE))


def test_a_module_scoped_fixture_sees_the_isolated_paths(seen_by_a_module_fixture):
    for path in seen_by_a_module_fixture.values():
        assert outside_real_home(path) and "musicsearch-tests-" in str(path)


def test_a_process_started_by_a_test_inherits_them(isolated_home):
    code = (
        "from pathlib import Path; from musicsearch.prepared import cache_root; "
        "from musicsearch.config import DEFAULT_INDEX_DIR; print(cache_root()); print(DEFAULT_INDEX_DIR); "
        "print(Path.home())"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split("\n")
    assert out[:3] == [
        str(isolated_home["MUSICSEARCH_CACHE"]),
        str(isolated_home["XDG_DATA_HOME"] / "musicsearch" / "indexes" / "default"),
        str(isolated_home["HOME"]),
    ]
