"""``/rest/``: every Subsonic call, as ``/rest/NAME`` and ``/rest/NAME.view``, by GET or by a
form POST (OpenSubsonic's ``formPost``). One route reads the parameters, checks who is calling
(``getOpenSubsonicExtensions`` is public, as the protocol asks), runs the call's handler in a
worker thread and answers in JSON or XML; every refusal is an in-band Subsonic error, never a
5xx."""

from __future__ import annotations

import logging
import threading
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException

from ..api import MusicIndex
from . import browse, media, mixes, playlists, search
from .auth import authenticate
from .params import Params
from .responses import GENERIC, SubsonicError, envelope, error_body, render
from .state import Call, Handler, Library
from .users import UserStore

log = logging.getLogger(__name__)

HANDLERS: dict[str, Handler] = {
    **browse.HANDLERS,
    **search.HANDLERS,
    **media.HANDLERS,
    **mixes.HANDLERS,
    **playlists.HANDLERS,
}
PUBLIC = frozenset({"getOpenSubsonicExtensions"})
MAX_METHOD = 64

router = APIRouter(include_in_schema=False)


def mount(app: FastAPI, index: MusicIndex, lock: threading.Lock, users: UserStore | None = None) -> Library:
    """Serve ``/rest/`` from ``app`` over ``index`` (calls into it hold ``lock``, the server's)."""
    library = Library(index, lock, users or UserStore())
    app.state.subsonic = library
    app.include_router(router)
    return library


async def _params(request: Request) -> Params:
    """The query string's pairs, then a form body's (``application/x-www-form-urlencoded``)."""
    pairs = list(request.query_params.multi_items())
    if request.method == "POST" and request.headers.get("content-type", "").startswith(
        "application/x-www-form-urlencoded"
    ):
        body = await request.body()  # bounded by the app's RequestGuard before it is read
        try:
            pairs += parse_qsl(body.decode("utf-8"), keep_blank_values=True, strict_parsing=False)
        except UnicodeDecodeError:
            raise SubsonicError(GENERIC, "the form body is not valid UTF-8") from None
    return Params(pairs)


def _answer(call: Call, handler: Handler, fmt: str) -> Response:
    """The handler's answer: a file or picture as it is, anything else in the envelope."""
    result: Any = handler(call)
    if isinstance(result, Response):
        return result
    return render(envelope(result), fmt)


@router.api_route("/rest/{method}", methods=["GET", "POST", "HEAD"])
async def rest(method: str, request: Request) -> Response:
    name = method[: -len(".view")] if method.endswith(".view") else method
    fmt = request.query_params.get("f", "xml")
    try:
        params = await _params(request)
        fmt = params.text("f", "xml") or "xml"
        handler = HANDLERS.get(name)
        if handler is None:
            raise SubsonicError(GENERIC, f"not implemented here: {name[:MAX_METHOD]}")
        library: Library = request.app.state.subsonic
        user = "" if name in PUBLIC else await run_in_threadpool(authenticate, params, library.users)
        return await run_in_threadpool(_answer, Call(params, library, user, name), handler, fmt)
    except SubsonicError as exc:
        return render(error_body(exc), fmt)
    except HTTPException:
        raise  # the request guard's 413 for a body past its limit
    except Exception as exc:  # a bug: still an in-band error, with the traceback in the log
        log.exception("/rest/%s failed", name[:MAX_METHOD])
        return render(error_body(SubsonicError(GENERIC, f"internal error ({type(exc).__name__})")), fmt)
