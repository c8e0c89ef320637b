"""The search page and its assets, and the API docs (Swagger UI and ReDoc from files shipped by
the ``fastapi-offline`` package, so they work with no internet). No page asks anything of
another machine: ReDoc's one address of its own (its footer's logo) is pointed at a local
file, and every page carries a Content-Security-Policy that lets the browser load from this
server only."""

from __future__ import annotations

from functools import cache
from importlib import resources
from pathlib import Path
from typing import TypeVar

import fastapi_offline
from fastapi import APIRouter, Request
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import HTMLResponse, Response

DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI 5 and ReDoc, no CDN
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}

# what the pages may load: this server only ('unsafe-inline' for the docs pages' inline script
# and ReDoc's injected styles, 'unsafe-eval' for the schema validator ReDoc compiles, data: and
# blob: for images, fonts and workers the bundles make in the page)
CSP = "; ".join(
    [
        "default-src 'self'",
        "script-src 'self' 'unsafe-inline' 'unsafe-eval'",
        "style-src 'self' 'unsafe-inline'",
        "img-src 'self' data: blob:",
        "font-src 'self' data:",
        "worker-src 'self' blob:",
        "connect-src 'self'",
        "media-src 'self'",
        "object-src 'none'",
        "base-uri 'none'",
        "form-action 'self'",
    ]
)
R = TypeVar("R", bound=Response)
REDOC_LOGO = "https://cdn.redoc.ly/redoc/logo-mini.svg"  # the image beside ReDoc's "API docs by Redocly"

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return _local(
        get_swagger_ui_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title="musicsearch API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to the online validator
        )
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return _local(
        get_redoc_html(
            openapi_url=request.app.openapi_url or "/openapi.json",
            title="musicsearch API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )
    )


# registered before the /docs-assets mount (create_app), so this route answers for the file
@router.get("/docs-assets/redoc.standalone.js")
def redoc_script() -> Response:
    return Response(_redoc_script(), media_type="text/javascript; charset=utf-8")


@cache
def _redoc_script() -> bytes:
    """ReDoc's bundle with its footer's logo, which it would fetch from its CDN, the local favicon."""
    bundle = (DOCS_ASSETS / "redoc.standalone.js").read_bytes()
    return bundle.replace(REDOC_LOGO.encode(), b"/docs-assets/favicon.png")


def _local(response: R) -> R:
    """``response`` with the policy that keeps the browser on this server."""
    response.headers["Content-Security-Policy"] = CSP
    return response


def page(name: str, media_type: str) -> Response:
    """One file of the page, from the package's ``static`` folder, never cached stale."""
    body = resources.files("musicsearch").joinpath("static").joinpath(name).read_bytes()
    return _local(Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"}))


for _route, (_name, _media_type) in PAGES.items():
    router.add_api_route(_route, lambda name=_name, media_type=_media_type: page(name, media_type), methods=["GET"])
