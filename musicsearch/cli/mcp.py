"""``musicsearch mcp``: the index as tools for an assistant, over the Model Context Protocol on
stdin/stdout (musicsearch/mcp_server.py; needs the ``mcp`` extra)."""

from __future__ import annotations

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_DIR
from ..errors import MusicSearchError
from .options import DeviceOpt, IndexOpt, ModelOpt, NoCheckOpt, RevisionOpt, settings


def mcp(
    index: IndexOpt = DEFAULT_INDEX_DIR,
    model: ModelOpt = None,
    revision: RevisionOpt = None,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
) -> None:
    """Serve the index to an MCP client (Claude Desktop, an IDE, ...) over stdio: search,
    similar, path, classify, info and write_playlist (see docs/mcp.md)."""
    try:
        from ..mcp_server import serve_stdio
    except ImportError as exc:
        if not (exc.name or "").startswith(("mcp", "pydantic")):
            raise
        raise MusicSearchError("the MCP server needs the mcp package: pip install 'musicsearch[mcp]'") from None
    config = settings(index, model=model, revision=revision, device=device, model_check=not no_model_check)
    music = MusicIndex(settings=config)
    music.info()  # no index there: one line saying how to build it, before the protocol starts
    with music:
        serve_stdio(music)
