"""Tests of musicsearch/cli/playlists.py: ``musicsearch playlist save|list|refresh|remove`` with
their exact output, and the refresh an index run ends with (``refresh_after_index``), over the
catalog indexed with the fake embedder (``idx``). Song 03 is the catalog's one jazz song at
2400 Hz before 1996 (8 s, Ann Arbor), Song 01 its one song at 600 Hz before 1993 (6 s, Ann Arbor)."""

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicsearch.cli import app
from musicsearch.cli.playlists import refresh_after_index
from musicsearch.config import Settings

runner = CliRunner()


def invoke(*args: str):
    return runner.invoke(app, ["playlist", *args])


@pytest.fixture
def lists(tmp_path, monkeypatch):
    """A folder for the playlists, and the working directory (so relative --m3u names land there)."""
    folder = tmp_path / "lists"
    folder.mkdir()
    monkeypatch.chdir(folder)
    return folder


@pytest.fixture
def saved(idx, lists):
    """Two saved searches: 'high' (Song 03, with a --not and a path map) and 'mid' (Song 01, relative)."""
    r = invoke(
        *("save", "high", "2400 Hz", "--index", idx, "--m3u", "high.m3u8", "-k", "1", "--genre", "jazz"),
        *("--year", "-1995", "--not", "noise", "--path-map", f"{Path(idx).parent / 'catalog'}=/music"),
    )
    assert r.exit_code == 0, r.output
    assert r.output == f"Saved 'high': wrote 1 tracks to {lists / 'high.m3u8'}\n"
    r = invoke(
        "save",
        "mid",
        "600 Hz",
        "--index",
        idx,
        "--m3u",
        str(lists / "mid.m3u8"),
        "-k",
        "1",
        "--year",
        "-1992",
        "--relative",
    )
    assert r.exit_code == 0, r.output
    assert r.output == f"Saved 'mid': wrote 1 tracks to {lists / 'mid.m3u8'}\n"
    return idx


HIGH = "#EXTM3U\n#EXTINF:8,Ann Arbor - Song 03\n/music/jazz/song03.flac\n"
MID = "#EXTM3U\n#EXTINF:6,Ann Arbor - Song 01\n../catalog/jazz/song01.flac\n"


def test_save_writes_the_playlist_and_the_search_as_typed(saved, lists):
    assert (lists / "high.m3u8").read_text() == HIGH and (lists / "mid.m3u8").read_text() == MID
    data = json.loads((Path(saved) / "playlists.json").read_text())
    assert data == {
        "format": 1,
        "playlists": [
            {
                "name": "high",
                "text": ["2400 Hz"],
                "m3u": str(lists / "high.m3u8"),  # made absolute
                "k": 1,
                "negative": ["noise"],
                "by": "track",
                "min_score": None,
                "filters": {"genre": "jazz", "year": "-1995"},
                "relative": False,
                "path_map": [f"{Path(saved).parent / 'catalog'}=/music"],
            },
            {
                "name": "mid",
                "text": ["600 Hz"],
                "m3u": str(lists / "mid.m3u8"),
                "k": 1,
                "negative": [],
                "by": "track",
                "min_score": None,
                "filters": {"year": "-1992"},
                "relative": True,
                "path_map": [],
            },
        ],
    }


def test_list_shows_each_search_on_one_line(saved, lists, run_json):
    r = invoke("list", "--index", saved)
    assert r.exit_code == 0, r.output
    catalog = Path(saved).parent / "catalog"
    assert r.output == (
        f"high: 2400 Hz (k=1, genre=jazz, year=-1995, not=noise, path-map={catalog}=/music) -> {lists / 'high.m3u8'}\n"
        f"mid: 600 Hz (k=1, year=-1992, relative) -> {lists / 'mid.m3u8'}\n"
    )
    listed = run_json("playlist", "list", "--index", saved)
    assert listed == json.loads((Path(saved) / "playlists.json").read_text())["playlists"]


def test_refresh_rewrites_all_or_the_named_ones(saved, lists):
    for name in ("high", "mid"):
        (lists / f"{name}.m3u8").unlink()
    r = invoke("refresh", "--index", saved)
    assert (r.exit_code, r.output) == (0, "  playlist high: 1 tracks\n  playlist mid: 1 tracks\n")
    assert (lists / "high.m3u8").read_text() == HIGH and (lists / "mid.m3u8").read_text() == MID
    (lists / "mid.m3u8").unlink()
    r = invoke("refresh", "mid", "--index", saved)
    assert (r.exit_code, r.output) == (0, "  playlist mid: 1 tracks\n")
    assert (lists / "mid.m3u8").read_text() == MID


def test_refresh_with_a_failure_reports_it_and_exits_1(saved, lists, tmp_path):
    r = invoke("save", "gone", "150 Hz", "--index", saved, "--m3u", str(tmp_path / "later" / "gone.m3u8"))
    assert r.exit_code == 1 and r.stdout == ""  # its folder does not exist yet: not saved
    (tmp_path / "later").mkdir()
    r = invoke("save", "gone", "150 Hz", "--index", saved, "--m3u", str(tmp_path / "later" / "gone.m3u8"))
    assert r.exit_code == 0, r.output
    (tmp_path / "later" / "gone.m3u8").unlink()
    (tmp_path / "later").rmdir()
    (lists / "high.m3u8").unlink()
    r = invoke("refresh", "--index", saved)
    gone = tmp_path / "later" / "gone.m3u8"
    assert r.exit_code == 1 and r.stderr == ""
    assert r.stdout == (
        f"  playlist gone: --m3u: cannot write the playlist {gone}: no folder {gone.parent}\n"
        "  playlist high: 1 tracks\n  playlist mid: 1 tracks\n"
    )
    assert (lists / "high.m3u8").read_text() == HIGH  # the others still ran


def test_remove_forgets_the_search_and_keeps_its_playlist(saved, lists, one_error_line):
    r = invoke("remove", "high", "--index", saved)
    assert (r.exit_code, r.output) == (0, "Removed 'high'\n")
    assert [p["name"] for p in json.loads((Path(saved) / "playlists.json").read_text())["playlists"]] == ["mid"]
    assert (lists / "high.m3u8").read_text() == HIGH
    line = one_error_line(invoke("remove", "high", "--index", saved))
    assert line == "Error: no saved search named 'high' (musicsearch playlist list)"


def test_a_search_that_cannot_run_is_not_saved(idx, lists, one_error_line):
    line = one_error_line(invoke("save", "x", "600 Hz", "--index", idx, "--m3u", "x.m3u8", "--min-duration", "1:99"))
    assert line == (
        "Error: bad duration '1:99': use seconds (95), mm:ss (1:35) or h:mm:ss (1:02:03), minutes and seconds under 60"
    )
    line = one_error_line(
        invoke("save", "x", "600 Hz", "--index", idx, "--m3u", "x.m3u8", "--relative", "--path-map", "/a=/b")
    )
    assert line == "Error: --relative and --path-map exclude each other: relative paths need no map"
    line = one_error_line(invoke("save", " ", "600 Hz", "--index", idx, "--m3u", "x.m3u8"))
    assert line == "Error: bad playlist name ' ': give a non-empty one-line name"
    assert not (Path(idx) / "playlists.json").exists() and list(lists.iterdir()) == []


def test_the_refresh_after_an_index_run(saved, lists, tmp_path, capsys):
    config = Settings(index_dir=Path(saved))
    (lists / "high.m3u8").unlink()
    refresh_after_index(config)
    assert capsys.readouterr().out == "Refreshed 2 saved searches\n"
    assert (lists / "high.m3u8").read_text() == HIGH
    runner.invoke(app, ["playlist", "remove", "mid", "--index", saved])
    refresh_after_index(config)
    assert capsys.readouterr().out == "Refreshed 1 saved search\n"
    for name in ("high", "mid"):
        (lists / f"{name}.m3u8").unlink()
    lists.rmdir()
    refresh_after_index(config)  # a failure is a note: the run itself succeeded
    high = lists / "high.m3u8"
    assert capsys.readouterr().out == (
        f"Refreshed 0 saved searches\n  failed high: --m3u: cannot write the playlist {high}: no folder {lists}\n"
    )
    (Path(saved) / "playlists.json").write_text("{broken")
    refresh_after_index(config)
    out = capsys.readouterr().out
    assert out.startswith(f"  note: saved searches not refreshed: {Path(saved) / 'playlists.json'} is damaged (")
    assert out.endswith("); fix or delete it\n") and out.count("\n") == 1


def test_an_index_without_saved_searches(idx, run_json, capsys):
    r = invoke("list", "--index", idx)
    assert (r.exit_code, r.output) == (0, "No saved searches.\n")
    assert run_json("playlist", "list", "--index", idx) == []
    r = invoke("refresh", "--index", idx)
    assert (r.exit_code, r.output) == (0, "No saved searches.\n")
    capsys.readouterr()
    refresh_after_index(Settings(index_dir=Path(idx)))
    refresh_after_index(Settings(index_dir=Path(idx).parent / "nothing"))  # no index at all: nothing to say
    assert capsys.readouterr().out == ""
    assert not (Path(idx) / "playlists.json").exists()


def test_save_keeps_tempo_and_key_filters_as_typed(idx, lists):
    r = invoke("save", "dj", "2400 Hz", "--index", idx, "--m3u", "dj.m3u8", "--bpm", "120-128", "--strict-bpm")
    assert r.exit_code == 0, r.output  # the catalog has no tempo: nothing passes, and that is still a saved search
    assert r.output == f"Saved 'dj': wrote 0 tracks to {lists / 'dj.m3u8'}\n"
    saved = json.loads((Path(idx) / "playlists.json").read_text())["playlists"]
    assert next(s for s in saved if s["name"] == "dj")["filters"] == {"bpm": "120-128", "strict_bpm": True}
    r = invoke("save", "bad", "2400 Hz", "--index", idx, "--m3u", "bad.m3u8", "--key", "H#")
    assert r.exit_code == 1 and r.output.startswith("Error: bad key 'H#'")
