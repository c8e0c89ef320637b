"""The search page and its assets, and the API docs (Swagger UI and ReDoc from files shipped by
the ``fastapi-offline`` package, so they work with no internet)."""

from __future__ import annotations

from importlib import resources
from pathlib import Path

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

router = APIRouter(include_in_schema=False)


@router.get("/docs")
def docs(request: Request) -> HTMLResponse:
    return get_swagger_ui_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title="musicsearch API",
        swagger_js_url="/docs-assets/swagger-ui-bundle.js",
        swagger_css_url="/docs-assets/swagger-ui.css",
        swagger_favicon_url="/docs-assets/favicon.png",
        swagger_ui_parameters={"validatorUrl": None},  # no call to the online validator
    )


@router.get("/redoc")
def redoc(request: Request) -> HTMLResponse:
    return get_redoc_html(
        openapi_url=request.app.openapi_url or "/openapi.json",
        title="musicsearch API",
        redoc_js_url="/docs-assets/redoc.standalone.js",
        redoc_favicon_url="/docs-assets/favicon.png",
        with_google_fonts=False,
    )


def page(name: str, media_type: str) -> Response:
    """One file of the page, from the package's ``static`` folder, never cached stale."""
    body = resources.files("musicsearch").joinpath("static").joinpath(name).read_bytes()
    return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})


for _route, (_name, _media_type) in PAGES.items():
    router.add_api_route(_route, lambda name=_name, media_type=_media_type: page(name, media_type), methods=["GET"])
