"""The web page and HTTP API: a FastAPI app over one MusicIndex, with the model loaded once.

No endpoint takes a path: audio is served by track id, and only files that are in the index.
Bad input gets a 4xx JSON error ``{"error": "..."}``, never a 500 or a traceback: every parameter
is validated (track ids within SQLite's integer range, each prompt's length, no control characters,
a query string that is valid UTF-8), and request bodies are bounded before they are read.
The ``/docs`` page loads Swagger UI from files shipped by the ``fastapi-offline`` package, so it
works with no internet.

Modules: ``app`` (create_app: wiring, middleware, error handlers; listen, serve), ``guard`` (the request
guard), ``limits`` (limits and checks), ``service`` (the index behind its lock), and the routers
``pages`` (page, docs), ``tracks`` (info, track, audio, windows, map, playlist), ``search``
(search, similar, path) and ``classify``.
"""

from .app import create_app, listen, serve
from .limits import MAX_JSON_BYTES, MAX_PROMPTS, MAX_QUERY_CHARS, MAX_UPLOAD_BYTES

__all__ = ["MAX_JSON_BYTES", "MAX_PROMPTS", "MAX_QUERY_CHARS", "MAX_UPLOAD_BYTES", "create_app", "listen", "serve"]
