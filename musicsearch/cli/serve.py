"""``musicsearch serve``: the search page and HTTP API, optionally following a music folder."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from ..api import MusicIndex
from ..config import DEFAULT_INDEX_DIR, Settings
from ..errors import MusicSearchError
from ..subsonic.users import UserStore, is_loopback
from ..watch import LibraryWatcher, WatchSettings
from .options import DeviceOpt, IndexOpt, NoCheckOpt, settings
from .output import report_line


def serve(
    index: IndexOpt = DEFAULT_INDEX_DIR,
    host: Annotated[
        str, typer.Option("--host", metavar="HOST", help="Address to bind (loopback unless told otherwise).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", metavar="PORT", min=1, max=65535, help="Port to listen on.")] = 7860,
    device: DeviceOpt = "auto",
    no_model_check: NoCheckOpt = False,
    watch: Annotated[
        Optional[Path],
        typer.Option("--watch", metavar="FOLDER", help="Also follow this music folder and keep the index in step."),
    ] = None,
    poll: Annotated[
        Optional[float], typer.Option("--poll", metavar="SECONDS", help="--watch: poll every SECONDS (network shares).")
    ] = None,
) -> None:
    """Serve the search page and HTTP API (docs at /docs)."""
    try:
        from ..server import listen
        from ..server import serve as run_server
    except ImportError as exc:
        raise MusicSearchError(f"the web server needs fastapi and uvicorn ({exc.name} is missing)") from None
    if not is_loopback(host) and not UserStore().load():
        raise MusicSearchError(
            f"refusing to serve on {host} with no user to log in as: add one with musicsearch user add NAME"
        )
    config = settings(index, device=device, model_check=not no_model_check)
    music = MusicIndex(settings=config)
    if watch is None:
        music.info()  # no index there: one line saying how to build it, before the model loads
    sock = listen(host, port)  # a port in use: one line now, not uvicorn's after the model loaded
    typer.echo(f"musicsearch on http://{host}:{port}/ (index {config.index_dir})", err=True)
    stop = threading.Event()
    watcher = None
    try:
        if watch is not None:
            watcher = _start_watcher(config, watch, WatchSettings(poll_seconds=poll), stop)
        run_server(music, host, port, sock=sock)
    finally:
        sock.close()
        stop.set()
        if watcher is not None:
            watcher.join(timeout=30)


def _start_watcher(settings: Settings, folder: Path, ws: WatchSettings, stop: threading.Event) -> threading.Thread:
    """``serve --watch``: the watcher in a daemon thread with an index of its own. Its errors
    end the watching, not the server: the thread reports them itself."""
    watcher = LibraryWatcher(
        MusicIndex(settings=settings),
        folder,
        ws,
        stop_event=stop,
        on_report=lambda r: typer.echo(f"watch: {report_line(r)}", err=True),
    )

    def run() -> None:
        try:
            watcher.run()
        except MusicSearchError as exc:
            typer.echo(f"Error: watching {folder} stopped: {exc}", err=True)

    thread = threading.Thread(target=run, name="musicsearch-watch", daemon=True)
    thread.start()
    typer.echo(f"watching {watcher.root}", err=True)
    return thread
