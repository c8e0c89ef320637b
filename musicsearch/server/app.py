"""The app's wiring: one ``Service`` over the index, the request guard, the error handlers that
give every failure the ``{"error": "..."}`` shape, and the routers; ``serve`` runs it."""

from __future__ import annotations

import errno
import socket

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from .. import process
from ..api import MusicIndex
from ..errors import IndexNotFound, MusicSearchError
from ..subsonic.router import mount as mount_subsonic
from . import classify, pages, search, tracks
from .guard import RequestGuard
from .limits import MAX_UPLOAD_BYTES, error_response
from .service import Service


def create_app(index: MusicIndex, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The app serving ``index``. Calls into the index are serialized by a lock (one model,
    one SQLite connection)."""
    app = FastAPI(
        title="musicsearch",
        description="Search, listen to and classify an indexed music library.",
        version="0.1.0",
        docs_url=None,
        redoc_url=None,
    )
    app.state.service = Service(index, max_upload_bytes)
    app.add_middleware(RequestGuard, upload_limit=max_upload_bytes)
    _add_error_handlers(app)
    for module in (pages, tracks, search, classify):
        app.include_router(module.router)
    mount_subsonic(app, index, app.state.service.lock)  # /rest/: the OpenSubsonic API (musicsearch/subsonic/)
    # after the routers: pages serves its own redoc.standalone.js (see pages.redoc_script)
    app.mount("/docs-assets", StaticFiles(directory=pages.DOCS_ASSETS), name="docs-assets")
    return app


def _add_error_handlers(app: FastAPI) -> None:
    """Every error a client can meet, as ``{"error": "..."}`` with a 4xx (or, for a bug, 500) status."""

    @app.exception_handler(MusicSearchError)
    async def _user_error(request: Request, exc: MusicSearchError) -> JSONResponse:
        return error_response(404 if isinstance(exc, IndexNotFound) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return error_response(422, f"{where}: {first.get('msg', 'invalid value')}")

    # Starlette's HTTPException covers FastAPI's and Starlette's own (unknown route, bad multipart)
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return error_response(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return error_response(500, f"internal error ({type(exc).__name__})")


def listen(host: str, port: int) -> socket.socket:
    """A socket bound to ``host``:``port`` for ``serve``, made before anything slow (the model)
    so that a port in use or an address this machine lacks is one clear error at once."""
    where = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn: a restart need not wait
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        if exc.errno == errno.EADDRINUSE:
            raise MusicSearchError(
                f"cannot listen on {where}: the port is in use (another musicsearch serve?); choose another with --port"
            ) from None
        if exc.errno == errno.EACCES:
            raise MusicSearchError(
                f"cannot listen on {where}: permission denied (ports below 1024 need privileges); "
                "choose another with --port"
            ) from None
        reason = exc.strerror or str(exc)
        raise MusicSearchError(f"cannot listen on {where}: {reason}; check --host and --port") from None
    return sock


def serve(index: MusicIndex, host: str = "127.0.0.1", port: int = 7860, sock: socket.socket | None = None) -> None:
    """Run the app under uvicorn on ``sock`` (or a socket made by ``listen``) with the model
    loaded before the first request. The server owns the process while it runs: the
    process-wide tweaks are on (musicsearch/process.py)."""
    import uvicorn

    sock = sock if sock is not None else listen(host, port)
    with sock, process.switched_on():
        try:
            index.warm()
        except IndexNotFound:
            pass  # serve --watch builds it; the page says the index is empty meanwhile
        server = uvicorn.Server(uvicorn.Config(create_app(index), host=host, port=port, log_level="info"))
        try:
            server.run(sockets=[sock])
        except KeyboardInterrupt:
            pass  # Ctrl-C is how a server is stopped: uvicorn re-raises the signal after its shutdown (uvicorn.run passes it too)
