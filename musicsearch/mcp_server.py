"""The Model Context Protocol server: the index as tools an assistant can call (``musicsearch
mcp``, over stdio, built on the official ``mcp`` SDK, the optional ``mcp`` extra).

Tools: ``search`` (text -> tracks, with where each matches), ``similar`` (a track or a moment
-> tracks like it), ``path`` (a playlist from one track to another), ``classify`` (zero-shot
labels of a track or file), ``info`` (what the index holds) and ``write_playlist`` (the tracks
of a search or given ids to an M3U8 file). Every search goes through ``parse_request``, the
parser the CLI and the HTTP API use, so a value means and is checked the same everywhere; a
user error comes back as the tool's error result (``isError``, the one-line message), never as
a crash of the server.

Calls run one at a time (``MusicTools.lock``: one model, one SQLite connection); the model
loads once, in the background as the server starts (``warm_in_background``), so the client's
handshake is answered at once. stdout is the protocol's channel: this module only logs, and
the SDK's stdio transport sends what else writes to file descriptor 1 to stderr.
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp.server.mcpserver.exceptions import ToolError
from pydantic import BaseModel, ConfigDict, Field

from .api import MusicIndex
from .errors import MusicSearchError
from .hits import Hit, Segment
from .playlist import check_m3u_path, write_m3u
from .search.request import parse_request

log = logging.getLogger(__name__)

MAX_K = 500
"""The most tracks one call returns: more would fill an assistant's context, not help it."""
PLAYLIST_SUFFIXES = (".m3u8", ".m3u")
INSTRUCTIONS = (
    "Search a local music library by what the music sounds like (CLAP embeddings) and by its tags. "
    "Tracks are named by path, a unique part of the path or title, or a moment 'title@1:20-1:40'; "
    "each hit has a track_id that write_playlist takes."
)

_F = TypeVar("_F", bound=Callable[..., Any])


class TrackFilters(BaseModel):
    """Conditions on the tracks a search may return (each optional; text matches any case)."""

    model_config = ConfigDict(extra="forbid")

    artist: str | None = Field(None, description="Artist or album artist contains this.")
    album: str | None = Field(None, description="Album contains this.")
    genre: str | None = Field(None, description="Genre tag contains this.")
    year: str | None = Field(None, description="1997, 1990-1999, 1990- or -1999.")
    min_duration: str | None = Field(None, description="Seconds or mm:ss.")
    max_duration: str | None = Field(None, description="Seconds or mm:ss.")
    path: str | None = Field(None, description="Glob on the absolute path, e.g. '*/Jazz/*'.")
    tag: list[str] | None = Field(None, description="Has each of these labels from 'musicsearch tag'.")
    bpm: str | None = Field(None, description="Tempo: 120-128, 124 (within 2 %), 120- or -128; half/double time too.")
    strict_bpm: bool | None = Field(None, description="bpm: the range alone, not half or double time.")
    key: str | None = Field(None, description="In this key: 8A, 1m, Am, A minor.")
    key_compatible: str | None = Field(None, description="Mixes into this key: the same, +-1 on the wheel, relative.")
    exclude_artist: list[str] | None = Field(None, description="Leave out these artists (substrings).")
    exclude_genre: list[str] | None = Field(None, description="Leave out these genres (substrings).")
    exclude_path: list[str] | None = Field(None, description="Leave out paths matching these globs.")

    def fields(self) -> dict[str, object]:
        """As ``parse_request`` fields (the names are the same)."""
        return self.model_dump(exclude_none=True)


def _fields(filters: TrackFilters | None, k: int) -> dict[str, object]:
    """The filters and ``k`` as ``parse_request`` fields; ``k`` over ``MAX_K`` is refused."""
    if not isinstance(k, bool) and isinstance(k, int) and k > MAX_K:
        raise MusicSearchError(f"k must be at most {MAX_K}, not {k}")
    return {"k": k} | (filters.fields() if filters is not None else {})


def _tool_errors(method: _F) -> _F:
    """A tool body run under the tools' lock, whose user errors (and file-system errors, as
    the CLI counts them) become the tool's error result with their one-line message."""

    @functools.wraps(method)
    def wrapper(self: MusicTools, *args: Any, **kwargs: Any) -> Any:
        try:
            with self.lock:
                return method(self, *args, **kwargs)
        except (MusicSearchError, OSError) as exc:
            raise ToolError(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _hits(hits: list[Hit]) -> dict[str, Any]:
    """Hits in the JSON shape of ``query --json`` (``segment_start``/``segment_end``: the best
    window; ``matched``: why it matched)."""
    return {"tracks": [h.to_dict() for h in hits]}


class MusicTools:
    """The tools' bodies over one index, each returning what the tool answers (JSON-ready)."""

    def __init__(self, index: MusicIndex):
        self.index = index
        self.lock = threading.Lock()

    @_tool_errors
    def search(
        self,
        text: str | list[str],
        k: int = 10,
        by: str = "track",
        negative: list[str] | None = None,
        filters: TrackFilters | None = None,
    ) -> dict[str, Any]:
        """Find the tracks that best match a description of their sound ("rainy night jazz", "a
        melancholic piano piece") or names in it ("piano by ARTIST", a title). Several prompts
        add up; "text::2" weighs one. by: "track" (the whole track) or "window" (its best 10-s
        window). negative: prompts to steer away from. Each track says where it matches best
        (segment_start/segment_end, seconds), its score, and why it matched (sound, title,
        artist, album)."""
        request = parse_request({"q": text, "not": negative, "by": by} | _fields(filters, k))
        return _hits(self.index.search(request))

    @_tool_errors
    def similar(
        self,
        track: str | list[str],
        text: list[str] | None = None,
        k: int = 10,
        filters: TrackFilters | None = None,
    ) -> dict[str, Any]:
        """Find tracks that sound like a track (its path, or a unique part of its path or
        title), like a moment of one ("Teardrop@1:20-1:40") or like an audio file; several add
        up, and text prompts may be mixed in. The tracks given are left out."""
        request = parse_request({"like": track, "q": text} | _fields(filters, k))
        return _hits(self.index.similar(request))

    @_tool_errors
    def path(self, start: str, end: str, n: int = 12, filters: TrackFilters | None = None) -> dict[str, Any]:
        """A playlist of n tracks from the start track to the end track (each a path, or a
        unique part of a path or title) whose steps move steadily from one sound to the other;
        each score is the cosine to the step before."""
        request = parse_request({"between": [start, end]} | _fields(filters, n))
        return _hits(self.index.search(request))

    @_tool_errors
    def classify(self, track: str, labels: list[str], template: str = "{}") -> dict[str, Any]:
        """Zero-shot classify a track (path, or a unique part of its path or title) or an audio
        file among labels ("rock", "jazz", ...): each label's probability, best first. template
        wraps each label, e.g. "This audio is a {} song."."""
        result = self.index.classify(track, labels, template)
        return {
            "labels": [{"label": label, "score": round(p, 6)} for label, p in result.labels],
            "top_label": result.top_label,
            "confidence": round(result.confidence, 6),
        }

    @_tool_errors
    def info(self) -> dict[str, Any]:
        """What the index holds: tracks, windows, failures, the model, its size on disk."""
        return dict(self.index.info().__dict__)

    @_tool_errors
    def write_playlist(
        self,
        file: str,
        track_ids: list[int] | None = None,
        text: str | list[str] | None = None,
        like: str | list[str] | None = None,
        start: str | None = None,
        end: str | None = None,
        k: int = 20,
        filters: TrackFilters | None = None,
        relative: bool = False,
    ) -> dict[str, Any]:
        """Write an extended M3U8 playlist file (absolute path ending in .m3u8 or .m3u) for a
        music player: the tracks of track_ids (from earlier results, in that order), or of a
        search (text), a similar search (like, text mixed in) or a path (start and end), with
        k tracks and filters as those tools take them. relative: paths relative to the
        playlist's folder. An existing file is replaced only if it is a playlist."""
        target = _playlist_file(file)
        if track_ids is not None:
            if text is not None or like is not None or start is not None or end is not None:
                raise MusicSearchError("give track_ids or a search (text, like, start and end), not both")
            hits = self._hits_of(track_ids)
        else:
            hits = self.index.search(parse_request(_playlist_search(text, like, start, end) | _fields(filters, k)))
        written = write_m3u(hits, target, relative=relative)
        entries = [{"track_id": h.track.id, "path": h.track.path, "title": h.track.title} for h in hits]
        return {"file": str(written), "count": len(hits), "tracks": entries}

    def _hits_of(self, ids: list[int]) -> list[Hit]:
        """The tracks of ``ids`` in that order, as hits to write (no score: none was asked)."""
        if not ids:
            raise MusicSearchError("track_ids is empty: give the ids of the tracks to write")
        tracks = self.index.tracks(ids)
        missing = [i for i in ids if i not in tracks]
        if missing:
            raise MusicSearchError(f"no track with id {missing[0]} in the index")
        return [Hit(n, 0.0, tracks[i], Segment(0.0, tracks[i].duration or 0.0, 0.0)) for n, i in enumerate(ids, 1)]


def _playlist_search(
    text: str | list[str] | None, like: str | list[str] | None, start: str | None, end: str | None
) -> dict[str, object]:
    """``write_playlist``'s search as ``parse_request`` fields (without k and filters)."""
    if start is not None or end is not None:
        if start is None or end is None or text is not None or like is not None:
            raise MusicSearchError("a path playlist takes start and end, and no text or like")
        return {"between": [start, end]}
    if like is not None:
        return {"like": like, "q": text}
    if text is None:
        raise MusicSearchError("give track_ids, text, like, or start and end: the tracks to write")
    return {"q": text}


def _playlist_file(file: str) -> Path:
    """Where ``write_playlist`` may write: an absolute path (``~`` allowed) ending in .m3u8 or
    .m3u, in a folder that exists, replacing no file but a playlist; an assistant must not be
    able to overwrite anything else.

    Raises:
        MusicSearchError: a relative path, another suffix, a folder, a missing folder, or an
            existing file that is not an M3U playlist.
    """
    given = Path(file).expanduser()
    if not given.is_absolute():
        raise MusicSearchError(f"file: give an absolute path for the playlist, not {file!r}")
    if given.suffix.lower() not in PLAYLIST_SUFFIXES and not given.is_dir():
        raise MusicSearchError(f"file: a playlist's name ends in .m3u8 or .m3u, not {given.name!r}")
    target = check_m3u_path(given, "file")
    if target.is_symlink() or (target.exists() and not (target.is_file() and _is_playlist(target))):
        raise MusicSearchError(f"file: {target} exists and is not an M3U playlist; it is left alone")
    return target


def _is_playlist(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(16)
    return head.lstrip(b"\xef\xbb\xbf").startswith(b"#EXTM3U") or not head


def create_server(tools: MusicTools) -> MCPServer:
    """The MCP server answering with ``tools``: the six tools, named as the assistant sees
    them, each described by its docstring."""
    server: MCPServer = MCPServer(name="musicsearch", instructions=INSTRUCTIONS, log_level="WARNING")
    for name in ("search", "similar", "path", "classify", "info", "write_playlist"):
        server.add_tool(getattr(tools, name), name=name, structured_output=True)
    return server


def warm_in_background(tools: MusicTools) -> threading.Thread:
    """Load the model and vector index in a daemon thread, under the tools' lock, so the
    first call finds them loaded (it waits for them otherwise). A failure is logged; the next
    call meets it again and answers it as its error."""

    def warm() -> None:
        try:
            with tools.lock:
                tools.index.warm()
        except Exception as exc:  # the first call reports it to the assistant
            log.warning("loading the model failed: %s", exc)

    thread = threading.Thread(target=warm, name="musicsearch-mcp-warm", daemon=True)
    thread.start()
    return thread


def serve_stdio(index: MusicIndex) -> None:
    """Answer an MCP client on stdin/stdout until it closes them. ``index`` must exist
    (callers check with ``index.info()`` first, for a one-line error before the protocol)."""
    tools = MusicTools(index)
    server = create_server(tools)
    warm_in_background(tools)
    log.info("musicsearch MCP server on stdio (index %s)", index.path)
    server.run("stdio")
