"""The MCP server's tools (musicsearch/mcp_server.py) through the mcp SDK's own client,
connected in memory to the server over an index of tagged tones built by the fake embedder
(a prompt naming a frequency maps to that tone's band, so the right first track is known).
The same server over stdio, as ``musicsearch mcp``, is in tests/cli/test_mcp.py."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("mcp.server.mcpserver", reason="the mcp extra (mcp >= 2) is not installed: pip install '.[mcp]'")

import anyio  # anyio comes with mcp
from mcp import Client

from musicsearch import MusicIndex, Settings
from musicsearch.mcp_server import MAX_K, MusicTools, create_server

TOOLS = {
    "search": ["text"],
    "similar": ["track"],
    "path": ["start", "end"],
    "classify": ["track", "labels"],
    "info": [],
    "write_playlist": ["file"],
}


@pytest.fixture(scope="module")
def index(tmp_path_factory, write_audio, tone, tagged, fake_embedder_cls) -> Iterator[MusicIndex]:
    """Tones at 150, 600, 1200 and 2400 Hz and a 148-Hz hum in the 150-Hz band, two of them
    tagged with an artist, genre and year; indexed once by the fake embedder (the tools only
    read it)."""
    lib = tmp_path_factory.mktemp("mcp") / "lib"
    for name, freq, seconds in [("low/t150.wav", 150, 25), ("mid/t600.flac", 600, 12), ("mid/t1200.ogg", 1200, 4)]:
        write_audio(lib / name, tone(freq, seconds))
    write_audio(lib / "high" / "t2400.wav", tone(2400, 15))
    write_audio(lib / "low" / "hum148.flac", tone(148, 6))
    tagged(lib / "low" / "hum148.flac", title="Hum", artist="Ann Arbor", genre="Jazz", date="1995")
    tagged(lib / "mid" / "t600.flac", title="Six Hundred", artist="Bob Beat", genre="Rock", date="2004")
    idx = MusicIndex(lib.parent / "idx", settings=Settings(), embedder=fake_embedder_cls())
    assert len(idx.index(lib).added) == 5
    yield idx
    idx.close()


@pytest.fixture
def tools(index: MusicIndex) -> MusicTools:
    return MusicTools(index)


def ask(tools: MusicTools, name: str, arguments: dict[str, Any]) -> Any:
    """Calls one tool through the SDK's client: its structured answer, or ``("error", text)``."""

    async def call() -> Any:
        async with Client(create_server(tools)) as client:
            result = await client.call_tool(name, arguments)
        if result.is_error:
            assert len(result.content) == 1
            return ("error", result.content[0].text)
        return result.structured_content

    return anyio.run(call)


def names(answer: dict[str, Any]) -> list[str]:
    return [Path(t["path"]).name for t in answer["tracks"]]


def test_the_tools_listed_with_their_required_arguments(tools):
    async def listed() -> Any:
        async with Client(create_server(tools)) as client:
            return (await client.list_tools()).tools

    found = {t.name: sorted(t.input_schema.get("required", [])) for t in anyio.run(listed)}
    assert found == {name: sorted(required) for name, required in TOOLS.items()}
    described = {t.name: t.description or "" for t in anyio.run(listed)}
    assert "segment_start" in described["search"] and "@1:20-1:40" in described["similar"]


def test_search_puts_the_described_track_first_and_says_where_it_matches(tools):
    answer = ask(tools, "search", {"text": "a 1200 Hz tone", "k": 2})
    first = answer["tracks"][0]
    assert len(answer["tracks"]) == 2 and Path(first["path"]).name == "t1200.ogg"
    assert first["score"] == pytest.approx(1.0) and first["matched"] == "sound"
    assert (first["segment_start"], first["segment_end"]) == (0.0, first["duration"])  # a 4-s track: one window
    by_window = ask(tools, "search", {"text": ["a 2400 Hz tone"], "by": "window", "k": 1})
    assert names(by_window) == ["t2400.wav"]
    away = ask(tools, "search", {"text": "a 150 Hz tone", "negative": ["a 148 Hz tone::5"], "k": 5})
    assert names(away)[-2:] in (["t150.wav", "hum148.flac"], ["hum148.flac", "t150.wav"])


def test_search_filters(tools):
    jazz = ask(tools, "search", {"text": "a 150 Hz tone", "filters": {"genre": "jazz", "year": "1990-1999"}})
    assert names(jazz) == ["hum148.flac"]
    not_ann = ask(tools, "search", {"text": "a 150 Hz tone", "k": 3, "filters": {"exclude_artist": ["ann"]}})
    assert names(not_ann)[0] == "t150.wav" and "hum148.flac" not in names(not_ann)
    short = ask(tools, "search", {"text": "a 2400 Hz tone", "filters": {"max_duration": "0:05", "path": "*/mid/*"}})
    assert names(short) == ["t1200.ogg"]
    by_name = ask(tools, "search", {"text": "Six Hundred", "k": 1})
    assert names(by_name) == ["t600.flac"] and "title" in by_name["tracks"][0]["matched"]


def test_similar_from_a_track_and_from_a_moment(tools):
    answer = ask(tools, "similar", {"track": "t150", "k": 2})
    assert names(answer)[0] == "hum148.flac" and "t150.wav" not in names(answer)
    assert answer["tracks"][0]["score"] == pytest.approx(1.0)
    moment = ask(tools, "similar", {"track": "t150@0:10-0:20", "text": ["a 600 Hz tone"], "k": 5})
    assert "t150.wav" not in names(moment) and len(moment["tracks"]) == 4
    assert set(names(moment)[:2]) == {"hum148.flac", "t600.flac"}  # the moment's band and the prompt's
    assert names(ask(tools, "similar", {"track": "Hum", "k": 3, "filters": {"artist": "bob"}})) == ["t600.flac"]


def test_path_runs_from_start_to_end(tools):
    answer = ask(tools, "path", {"start": "t150", "end": "t2400", "n": 3})
    got = names(answer)
    assert len(got) == 3 and got[0] == "t150.wav" and got[-1] == "t2400.wav"


def test_classify_and_info(tools):
    answer = ask(tools, "classify", {"track": "t1200", "labels": ["a 150 Hz tone", "a 1200 Hz tone"]})
    assert answer["top_label"] == "a 1200 Hz tone" and answer["labels"][0]["label"] == "a 1200 Hz tone"
    assert sum(lab["score"] for lab in answer["labels"]) == pytest.approx(1.0, abs=1e-5)
    info = ask(tools, "info", {})
    assert (info["tracks"], info["failures"], info["model"]) == (5, 0, "fake-embedder")
    assert info["path"] == str(tools.index.path)


def test_write_playlist_of_ids_and_of_a_search(tools, tmp_path):
    found = ask(tools, "search", {"text": "a 600 Hz tone", "k": 2})["tracks"]
    target = tmp_path / "mix.m3u8"
    ids = [found[1]["track_id"], found[0]["track_id"]]
    answer = ask(tools, "write_playlist", {"file": str(target), "track_ids": ids})
    assert answer["file"] == str(target) and answer["count"] == 2
    assert [t["track_id"] for t in answer["tracks"]] == ids
    lines = target.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#EXTM3U" and lines[2::2] == [found[1]["path"], found[0]["path"]]
    assert lines[3] == "#EXTINF:12,Bob Beat - Six Hundred"
    answer = ask(tools, "write_playlist", {"file": str(target), "text": "a 2400 Hz tone", "k": 1, "relative": True})
    assert target.read_text(encoding="utf-8").splitlines()[2] == os.path.relpath(answer["tracks"][0]["path"], tmp_path)
    ask(tools, "write_playlist", {"file": str(target), "start": "t150", "end": "t600", "k": 2})
    assert target.read_text(encoding="utf-8").count("#EXTINF") == 2
    ask(tools, "write_playlist", {"file": str(target), "like": "t150", "k": 1})
    assert target.read_text(encoding="utf-8").splitlines()[2].endswith("hum148.flac")


def test_write_playlist_refuses_what_it_must_not_write(tools, tmp_path):
    precious = tmp_path / "notes.m3u"
    precious.write_text("my notes\n")
    (tmp_path / "folder.m3u8").mkdir()
    refused = {
        "mix.m3u8": "file: give an absolute path for the playlist, not 'mix.m3u8'",
        str(tmp_path / "mix.txt"): "file: a playlist's name ends in .m3u8 or .m3u, not 'mix.txt'",
        str(tmp_path): f"file: {str(tmp_path)!r} is a folder; give a file name such as "
        f"{str(tmp_path / 'playlist.m3u8')!r}",
        str(tmp_path / "folder.m3u8"): f"file: {str(tmp_path / 'folder.m3u8')!r} is a folder; give a file name "
        f"such as {str(tmp_path / 'folder.m3u8' / 'playlist.m3u8')!r}",
        str(tmp_path / "no" / "mix.m3u8"): f"file: cannot write the playlist {tmp_path / 'no' / 'mix.m3u8'}: "
        f"no folder {tmp_path / 'no'}",
        str(precious): f"file: {precious} exists and is not an M3U playlist; it is left alone",
    }
    for file, message in refused.items():
        assert ask(tools, "write_playlist", {"file": file, "track_ids": [1]}) == (
            "error",
            f"Error executing tool write_playlist: {message}",
        )
    assert precious.read_text() == "my notes\n"
    target = str(tmp_path / "mix.m3u8")
    for arguments, message in [
        ({"track_ids": [1, 99]}, "no track with id 99 in the index"),
        ({"track_ids": []}, "track_ids is empty: give the ids of the tracks to write"),
        ({"track_ids": [1], "text": "x"}, "give track_ids or a search (text, like, start and end), not both"),
        ({}, "give track_ids, text, like, or start and end: the tracks to write"),
        ({"start": "t150"}, "a path playlist takes start and end, and no text or like"),
    ]:
        assert ask(tools, "write_playlist", {"file": target, **arguments}) == (
            "error",
            f"Error executing tool write_playlist: {message}",
        )
    assert not Path(target).exists()


@pytest.mark.parametrize(
    "name, arguments, message",
    [
        ("search", {"text": "  "}, "empty query"),
        ("search", {"text": "x", "by": "album"}, "--by must be track or window, not 'album'"),
        ("search", {"text": "x", "k": 0}, "k must be at least 1"),
        ("search", {"text": "x", "k": MAX_K + 1}, f"k must be at most {MAX_K}, not {MAX_K + 1}"),
        ("search", {"text": "pads::x"}, "the weight after '::' in 'pads::x' must be a number, e.g. 'warm pads::2'"),
        ("search", {"text": "x", "negative": [""]}, "--not got an empty prompt: give the text to steer away from"),
        ("similar", {"track": "no such song"}, "no indexed track matches 'no such song', and no such file"),
        ("similar", {"track": "t150@0:20-0:10"}, "bad time range in 't150@0:20-0:10'"),
        ("path", {"start": "t150", "end": "t600", "n": 1}, "a path needs at least 2 tracks (-n 2)"),
        ("classify", {"track": "t150", "labels": []}, "give at least two labels"),
        ("search", {"text": "x", "filters": {"key": "H#"}}, "bad key 'H#': use Camelot (8A)"),
        ("search", {"text": "x", "filters": {"bpm": "fast"}}, "bad bpm 'fast': use 124, 120-128"),
    ],
)
def test_bad_input_is_a_tool_error_with_the_parsers_line(tools, name, arguments, message):
    kind, text = ask(tools, name, arguments)
    assert kind == "error" and text.startswith(f"Error executing tool {name}: {message}")
    assert "\n" not in text and "Traceback" not in text


def test_arguments_outside_the_schema_are_tool_errors(tools):
    for name, arguments in [
        ("search", {"text": "x", "filters": {"mood": "sad"}}),
        ("search", {"text": "x", "k": "many"}),
        ("search", {}),
        ("classify", {"track": "t150", "labels": "rock"}),
    ]:
        kind, text = ask(tools, name, arguments)
        assert kind == "error" and text.startswith(f"Error executing tool {name}: ")
    assert ask(tools, "info", {})["tracks"] == 5  # still answering


def test_an_index_run_beside_the_server_is_seen_by_the_next_call(tmp_path, write_audio, tone, fake_embedder_cls):
    lib = tmp_path / "lib"
    write_audio(lib / "t150.wav", tone(150, 3))
    with MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake_embedder_cls()) as idx:
        idx.index(lib)
    served = MusicTools(MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake_embedder_cls()))
    assert names(ask(served, "search", {"text": "a 2400 Hz tone", "k": 1})) == ["t150.wav"]
    write_audio(lib / "t2400.wav", tone(2400, 3))
    with MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake_embedder_cls()) as other:
        assert len(other.index(lib).added) == 1
    assert names(ask(served, "search", {"text": "a 2400 Hz tone", "k": 1})) == ["t2400.wav"]
    assert ask(served, "info", {})["tracks"] == 2
    served.index.close()
