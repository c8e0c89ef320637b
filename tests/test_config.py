"""musicsearch/config.py: frozen settings, their checks, the device-dependent defaults, and the
environment read only by ``Settings.from_env``."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

import pytest

from musicsearch.config import (
    AUDIO_EXTENSIONS,
    CPU_BATCH,
    CPU_MAX_WINDOWS,
    DEFAULT_INDEX_DIR,
    GPU_BATCH,
    Settings,
    default_index_dir,
    default_workers,
    index_path,
    indexes_dir,
    is_index_name,
)


def test_defaults():
    s = Settings()
    assert (s.index_dir, s.model, s.device, s.batch_size, s.max_windows, s.full) == (
        DEFAULT_INDEX_DIR,
        None,
        "auto",
        None,
        None,
        False,
    )
    assert (s.onnx_audio, s.audio_int8, s.fast_queries, s.model_check, s.precision) == (True, False, True, True, "auto")
    assert s.workers == default_workers() == len(os.sched_getaffinity(0))
    assert {"wav", "flac", "ogg", "mp3", "m4a", "wma"} <= s.extensions == AUDIO_EXTENSIONS


def test_settings_are_frozen_and_expand_the_home_folder():
    s = Settings(index_dir="~/idx")
    assert s.index_dir == Path.home() / "idx"
    with pytest.raises(dataclasses.FrozenInstanceError):
        s.device = "cpu"  # type: ignore[misc]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"max_windows": 0}, "max_windows must be at least 1"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"precision": "fp8"}, "precision must be one of auto, fp32, bf16, fp16"),
    ],
)
def test_bad_values_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=f"^{message}$"):
        Settings(**kwargs)


def test_window_budget_and_batch_follow_the_device():
    s = Settings()
    assert (s.window_budget("cpu"), s.window_budget("cuda"), s.window_budget(None)) == (CPU_MAX_WINDOWS, None, None)
    assert (CPU_MAX_WINDOWS, CPU_BATCH, GPU_BATCH) == (6, 4, 32)
    assert Settings(max_windows=2).window_budget("cuda") == 2
    assert Settings(full=True, max_windows=2).window_budget("cpu") is None  # full wins
    assert [s.batch_for(d) for d in ("cpu", "cuda:0", "mps", None)] == [CPU_BATCH, GPU_BATCH, GPU_BATCH, CPU_BATCH]
    assert Settings(batch_size=3).batch_for("cuda") == 3


def test_from_env_reads_the_index_and_the_model_check_and_overrides_win(monkeypatch, tmp_path):
    monkeypatch.setenv("MUSICSEARCH_INDEX", str(tmp_path / "env-idx"))
    monkeypatch.setenv("MUSICSEARCH_NO_MODEL_CHECK", " Yes ")
    s = Settings.from_env()
    assert (s.index_dir, s.model_check) == (tmp_path / "env-idx", False)
    s = Settings.from_env(index_dir=tmp_path / "cli-idx", model=None, device="cpu")  # None: not given
    assert (s.index_dir, s.model, s.device) == (tmp_path / "cli-idx", None, "cpu")
    monkeypatch.setenv("MUSICSEARCH_NO_MODEL_CHECK", "0")
    monkeypatch.delenv("MUSICSEARCH_INDEX")
    s = Settings.from_env()
    assert (s.index_dir, s.model_check) == (DEFAULT_INDEX_DIR, True)


# index names (issue 22, item 11) -----------------------------------------------------------


@pytest.fixture
def data_home(isolated_home):
    """The user data folder of this test (platformdirs reads XDG_DATA_HOME)."""
    return isolated_home["XDG_DATA_HOME"] / "musicsearch"


def test_a_bare_name_is_an_index_under_the_data_folders_indexes(data_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert indexes_dir() == data_home / "indexes"
    assert index_path("jazz") == Settings(index_dir="jazz").index_dir == data_home / "indexes" / "jazz"
    assert index_path("default") == default_index_dir() == data_home / "indexes" / "default"
    assert [is_index_name(v) for v in ("jazz", "jazz.v2", "my index")] == [True, True, True]


def test_what_looks_like_a_path_stays_a_path(data_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rock").mkdir()
    assert index_path("./jazz") == Path("jazz")  # relative to the working folder, as before
    assert index_path("sub/jazz") == Path("sub/jazz")
    assert index_path("~/jazz") == Path.home() / "jazz"
    assert index_path(str(tmp_path / "x")) == tmp_path / "x"
    assert index_path("rock") == Path("rock")  # an existing folder there
    assert index_path(Path("jazz")) == Path("jazz")  # a Path is always a folder
    assert [is_index_name(v) for v in ("", ".hidden", "..", "~", "a/b", "rock")] == [False] * 6


def test_the_older_default_place_keeps_working_until_the_new_one_exists(data_home):
    old = data_home / "index"
    assert default_index_dir() == data_home / "indexes" / "default"
    old.mkdir(parents=True)
    assert default_index_dir() == data_home / "indexes" / "default"  # an empty folder is no index
    (old / "musicsearch.db").write_bytes(b"")
    assert default_index_dir() == index_path("default") == old
    (data_home / "indexes" / "default").mkdir(parents=True)
    assert default_index_dir() == data_home / "indexes" / "default"


def test_from_env_takes_a_name_too(data_home, monkeypatch):
    monkeypatch.setenv("MUSICSEARCH_INDEX", "jazz")
    assert Settings.from_env().index_dir == data_home / "indexes" / "jazz"
