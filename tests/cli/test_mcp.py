"""``musicsearch mcp``: the mcp SDK's own stdio client starts the command as a process (with the
fake embedder patched in, as tests/test_watch.py does), lists the tools and calls each; the
command's one-line errors (no index, no mcp extra) in process. What each tool answers is
tested in tests/test_mcp_server.py."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import musicsearch
from musicsearch import MusicIndex, Settings
from musicsearch.cli import app

runner = CliRunner()

CLI = """\
import sys

sys.path.insert(0, {tests!r})
import musicsearch.api
from fakes import FakeEmbedder

musicsearch.context.ClapEmbedder = lambda *a, **k: FakeEmbedder()

if __name__ == "__main__":
    from musicsearch.cli import main

    sys.argv = ["musicsearch", *sys.argv[1:]]
    main()
"""


def session(command: list[str], index: Path, calls: list[tuple[str, dict[str, Any]]]) -> tuple[list, list]:
    """Starts ``COMMAND mcp --index INDEX`` through the SDK's stdio client, in the test's
    environment (its isolated home); returns the tools listed and each call's result."""
    import anyio
    from mcp import ClientSession, StdioServerParameters
    from mcp.client.stdio import stdio_client

    args = [*command[1:], "mcp", "--index", str(index)]
    server = StdioServerParameters(command=command[0], args=args, env=dict(os.environ))

    async def run() -> tuple[list, list]:
        with open(index.parent / "stderr.txt", "w") as errlog:
            async with stdio_client(server, errlog=errlog) as (read, write), ClientSession(read, write) as client:
                await client.initialize()
                tools = (await client.list_tools()).tools
                return tools, [await client.call_tool(name, arguments) for name, arguments in calls]

    return anyio.run(run)


def test_the_stdio_client_lists_the_tools_and_calls_each(tmp_path, write_audio, tone, tagged, fake_embedder_cls):
    pytest.importorskip(
        "mcp.server.mcpserver", reason="the mcp extra (mcp >= 2) is not installed: pip install '.[mcp]'"
    )
    lib = tmp_path / "lib"
    for freq, artist in [(150, "Ann Arbor"), (600, "Ann Arbor"), (1200, "Bob Beat")]:
        tagged(write_audio(lib / f"t{freq}.flac", tone(freq, 4)), title=f"Tone {freq}", artist=artist)
    with MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake_embedder_cls()) as idx:
        assert len(idx.index(lib).added) == 3
    script = tmp_path / "ms.py"
    script.write_text(CLI.format(tests=str(Path(__file__).parents[1])))
    playlist = tmp_path / "mix.m3u8"
    calls = [
        ("search", {"text": "a 600 Hz tone", "k": 2, "filters": {"artist": "ann"}}),
        ("similar", {"track": "t150@0:01-0:03", "k": 1}),
        ("path", {"start": "Tone 150", "end": "Tone 1200", "n": 3}),
        ("classify", {"track": "t1200", "labels": ["a 150 Hz tone", "a 1200 Hz tone"]}),
        ("info", {}),
        ("write_playlist", {"file": str(playlist), "text": "a 1200 Hz tone", "k": 1}),
        ("search", {"text": "x", "by": "album"}),
        ("info", {}),
    ]
    tools, results = session([sys.executable, str(script)], tmp_path / "idx", calls)
    assert {t.name: sorted(t.input_schema.get("required", [])) for t in tools} == {
        "search": ["text"],
        "similar": ["track"],
        "path": ["end", "start"],
        "classify": ["labels", "track"],
        "info": [],
        "write_playlist": ["file"],
    }
    assert [r.is_error for r in results] == [False] * 6 + [True, False]
    search, similar, path, classify, info, written, _, again = [r.structured_content for r in results]
    assert [Path(t["path"]).name for t in search["tracks"]] == ["t600.flac", "t150.flac"]
    assert search["tracks"][0]["title"] == "Tone 600" and search["tracks"][0]["score"] == pytest.approx(1.0)
    assert len(similar["tracks"]) == 1 and similar["tracks"][0]["path"] != str(lib / "t150.flac")
    assert [Path(t["path"]).name for t in path["tracks"]] == ["t150.flac", "t600.flac", "t1200.flac"]
    assert classify["top_label"] == "a 1200 Hz tone"
    assert (info["tracks"], info["model"]) == (3, "fake-embedder") and again == info
    assert written["file"] == str(playlist) and playlist.read_text().splitlines()[2] == str(lib / "t1200.flac")
    assert results[6].content[0].text == "Error executing tool search: --by must be track or window, not 'album'"


def test_the_real_command_loads_the_tiny_model(indexed, tiny_model):
    """``python -m musicsearch mcp`` as installed, nothing patched: the index's model (the tiny
    random one) loads in the server and answers a search and a classification."""
    pytest.importorskip(
        "mcp.server.mcpserver", reason="the mcp extra (mcp >= 2) is not installed: pip install '.[mcp]'"
    )
    idx, _ = indexed
    calls = [("search", {"text": "a calm piano", "k": 2}), ("classify", {"track": "t600", "labels": ["rock", "jazz"]})]
    _, (search, classify) = session([sys.executable, "-m", "musicsearch"], idx, calls)
    assert not search.is_error and len(search.structured_content["tracks"]) == 2
    assert not classify.is_error and {lab["label"] for lab in classify.structured_content["labels"]} == {"rock", "jazz"}


def test_no_index_is_one_line_before_the_protocol(tmp_path, one_error_line):
    pytest.importorskip(
        "mcp.server.mcpserver", reason="the mcp extra (mcp >= 2) is not installed: pip install '.[mcp]'"
    )
    r = runner.invoke(app, ["mcp", "--index", str(tmp_path / "none")])
    assert "no index" in one_error_line(r) and r.stdout == ""


def test_without_the_mcp_extra_one_line(tmp_path, monkeypatch, one_error_line):
    for name in ["mcp", *(m for m in sys.modules if m.startswith("mcp."))]:  # as if it were not installed
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "musicsearch.mcp_server", raising=False)
    monkeypatch.delattr(musicsearch, "mcp_server", raising=False)
    r = runner.invoke(app, ["mcp", "--index", str(tmp_path / "none")])
    assert one_error_line(r) == "Error: the MCP server needs the mcp package: pip install 'musicsearch[mcp]'"
