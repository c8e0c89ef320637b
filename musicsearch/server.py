"""The web page and HTTP API: a FastAPI app over one MusicIndex, with the model loaded once.

No endpoint takes a path: audio is served by track id, and only files that are in the index.
Bad input gets a 4xx JSON error ``{"error": "..."}``, never a 500 or a traceback: every parameter
is validated (track ids within SQLite's integer range, each prompt's length, no control characters,
a query string that is valid UTF-8), and request bodies are bounded before they are read.
The ``/docs`` page loads Swagger UI from files shipped by the ``fastapi-offline`` package, so it
works with no internet.
"""

from __future__ import annotations

import tempfile
import threading
import unicodedata
from importlib import resources
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl

import fastapi_offline
from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .api import MusicIndex
from .classify import parse_labels, prompts
from .errors import DecodeError, IndexNotFound, MusicSearchError
from .filters import parse_filters
from .hits import Hit, Segment
from .playlist import m3u_text
from .variety import Variety

MAX_QUERY_CHARS = 500  # each prompt: the query and each `not`
MAX_PROMPTS = 16  # `not` prompts, and `tag` filters, per request
MAX_FILTER_CHARS = 500  # artist, album, genre, path, tag
MAX_RANGE_CHARS = 32  # year, min_duration, max_duration
MAX_K = 200
MAX_TRACK_ID = 2**63 - 1  # SQLite's largest integer
MAX_SEED = 2**32 - 1  # numpy's seed range
MAX_PLAYLIST_IDS = 2000  # tracks in one /api/playlist.m3u8 request
MAX_PATH_STEPS = 200
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
MAX_JSON_BYTES = 64 * 1024  # any body that is not multipart (JSON requests are a few bytes)
MULTIPART_OVERHEAD_BYTES = 64 * 1024  # boundaries and the small form fields beside the file
DOCS_ASSETS = Path(fastapi_offline.__file__).parent / "static"  # Swagger UI 5 and ReDoc, no CDN
AUDIO_TYPES = {
    ".mp3": "audio/mpeg",
    ".flac": "audio/flac",
    ".ogg": "audio/ogg",
    ".oga": "audio/ogg",
    ".opus": "audio/ogg",
    ".wav": "audio/wav",
    ".m4a": "audio/mp4",
    ".aac": "audio/aac",
    ".alac": "audio/mp4",
    ".aif": "audio/aiff",
    ".aiff": "audio/aiff",
    ".wma": "audio/x-ms-wma",
}
PAGES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/app.js": ("app.js", "text/javascript; charset=utf-8"),
    "/style.css": ("style.css", "text/css; charset=utf-8"),
}


Excludes = list[Annotated[str, Field(max_length=MAX_FILTER_CHARS)]]


class VarietyRequest(BaseModel):
    """Variety and order of a hit list (see musicsearch/variety.py)."""

    max_per_artist: int | None = Field(None, ge=1, le=MAX_K)
    dedupe: bool = False
    exclude_artist: Excludes = Field(default_factory=list, max_length=MAX_PROMPTS)
    exclude_genre: Excludes = Field(default_factory=list, max_length=MAX_PROMPTS)
    exclude_path: Excludes = Field(default_factory=list, max_length=MAX_PROMPTS)
    variation: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    order: str = Field("score", pattern="^(score|smooth)$")

    def variety(self) -> Variety | None:
        v = Variety(
            max_per_artist=self.max_per_artist,
            dedupe=self.dedupe,
            exclude_artists=tuple(self.exclude_artist),
            exclude_genres=tuple(self.exclude_genre),
            exclude_paths=tuple(self.exclude_path),
            variation=self.variation,
            seed=self.seed,
        )
        return v if v != Variety() else None


class SimilarRequest(VarietyRequest):
    track_id: int = Field(ge=1, le=MAX_TRACK_ID)
    k: int = Field(10, ge=1, le=MAX_K)


class UploadSimilarRequest(VarietyRequest):
    k: int = Field(10, ge=1, le=MAX_K)


def _first_error(exc: ValidationError) -> str:
    errors = exc.errors()
    where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
    return f"{where or 'body'}: {errors[0]['msg'] if errors else 'invalid'}"


TrackId = Annotated[int, PathParam(ge=1, le=MAX_TRACK_ID, description="A track id from search results")]


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def _control_character(text: str) -> str | None:
    """The first control character (Unicode category Cc) in ``text``, if any."""
    return next((c for c in text if unicodedata.category(c) == "Cc"), None)


def _check_text(name: str, text: str) -> None:
    bad = _control_character(text)
    if bad is not None:
        raise HTTPException(400, f"{name} contains a control character ({bad!a})")


def _size(n: int) -> str:
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


class RequestGuard:
    """ASGI middleware that checks what every request carries before the app reads it.

    - Bodies are bounded before they are read: multipart bodies to the upload limit (plus room
      for the form fields), any other body to ``json_limit``. A declared Content-Length over the
      limit is refused at once (413) without reading a byte; a body sent without one (chunked) is
      counted as the app reads it and refused as soon as it passes the limit.
    - The query string must be valid UTF-8 without control characters (400).
    """

    def __init__(self, app: ASGIApp, upload_limit: int, json_limit: int = MAX_JSON_BYTES) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.json_limit = json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").lower().startswith("multipart/form-data"):
            limit, message = (
                self.upload_limit + MULTIPART_OVERHEAD_BYTES,
                f"upload larger than {_size(self.upload_limit)}",
            )
        else:
            limit = self.json_limit
            message = f"request body larger than {_size(limit)} (send audio as a multipart upload)"
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            status = 413 if declared.isdigit() else 400
            await _error(status, message if status == 413 else "bad Content-Length header")(scope, receive, send)
            return
        problem = self._query_problem(scope.get("query_string", b""))
        if problem:
            await _error(400, problem)(scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    # an HTTPException reaches the app's handler (413 JSON) from wherever the body is read
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, bounded_receive, send)

    @staticmethod
    def _query_problem(raw: bytes) -> str | None:
        try:
            pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            return "the query string is not valid UTF-8"
        for key, value in pairs:
            bad = _control_character(key + value)
            if bad is not None:
                return f"query parameter {key!r} contains a control character ({bad!a})"
        return None


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
    app.add_middleware(RequestGuard, upload_limit=max_upload_bytes)
    lock = threading.Lock()
    app.mount("/docs-assets", StaticFiles(directory=DOCS_ASSETS), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="musicsearch API",
            swagger_js_url="/docs-assets/swagger-ui-bundle.js",
            swagger_css_url="/docs-assets/swagger-ui.css",
            swagger_favicon_url="/docs-assets/favicon.png",
            swagger_ui_parameters={"validatorUrl": None},  # no call to the online validator
        )

    @app.get("/redoc", include_in_schema=False)
    def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title="musicsearch API",
            redoc_js_url="/docs-assets/redoc.standalone.js",
            redoc_favicon_url="/docs-assets/favicon.png",
            with_google_fonts=False,
        )

    @app.exception_handler(MusicSearchError)
    async def _user_error(request: Request, exc: MusicSearchError) -> JSONResponse:
        return _error(404 if isinstance(exc, IndexNotFound) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(422, f"{where}: {first.get('msg', 'invalid value')}")

    # Starlette's HTTPException covers FastAPI's and Starlette's own (unknown route, bad multipart)
    @app.exception_handler(StarletteHTTPException)
    async def _http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__})")

    def page(name: str, media_type: str) -> Response:
        body = resources.files("musicsearch").joinpath("static").joinpath(name).read_bytes()
        return Response(body, media_type=media_type, headers={"Cache-Control": "no-cache"})

    for route, (name, media_type) in PAGES.items():
        app.add_api_route(
            route,
            lambda name=name, media_type=media_type: page(name, media_type),
            methods=["GET"],
            include_in_schema=False,
        )

    @app.get("/api/info", summary="Counts and model of the index")
    def info() -> dict:
        with lock:
            try:
                return dict(index.info().__dict__)
            except IndexNotFound:
                return {"tracks": 0, "windows": 0, "failures": 0, "model": None, "dim": 0}

    @app.get("/api/search", summary="Tracks matching a text query (hits as in `query --json`)")
    def search(
        q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="What the music sounds like")],
        k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
        not_: Annotated[
            list[str] | None,
            Query(alias="not", max_length=MAX_PROMPTS, description="Prompts to subtract (each at most 500 characters)"),
        ] = None,
        by: Annotated[str, Query(pattern="^(track|window)$")] = "track",
        min_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
        artist: Annotated[str | None, Query(max_length=MAX_FILTER_CHARS)] = None,
        album: Annotated[str | None, Query(max_length=MAX_FILTER_CHARS)] = None,
        genre: Annotated[str | None, Query(max_length=MAX_FILTER_CHARS)] = None,
        year: Annotated[
            str | None, Query(max_length=MAX_RANGE_CHARS, description="1997, 1990-1999, 1990- or -1999")
        ] = None,
        min_duration: Annotated[str | None, Query(max_length=MAX_RANGE_CHARS, description="seconds or mm:ss")] = None,
        max_duration: Annotated[str | None, Query(max_length=MAX_RANGE_CHARS, description="seconds or mm:ss")] = None,
        path: Annotated[str | None, Query(max_length=MAX_FILTER_CHARS)] = None,
        tag: Annotated[list[str] | None, Query(max_length=MAX_PROMPTS)] = None,
        lexical: Annotated[bool, Query(description="Names in the query act as names (false: sound only)")] = True,
        include_named: Annotated[bool, Query(description="Keep the tracks of a 'like X' name")] = False,
        max_per_artist: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
        dedupe: Annotated[bool, Query(description="One version of each song")] = False,
        exclude_artist: Annotated[list[str] | None, Query(max_length=MAX_PROMPTS)] = None,
        exclude_genre: Annotated[list[str] | None, Query(max_length=MAX_PROMPTS)] = None,
        exclude_path: Annotated[
            list[str] | None, Query(max_length=MAX_PROMPTS, description="Glob, e.g. */live/*")
        ] = None,
        variation: Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.0,
        seed: Annotated[int | None, Query(ge=0, le=MAX_SEED)] = None,
        order: Annotated[str, Query(pattern="^(score|smooth)$")] = "score",
    ) -> list[dict]:
        if not q.strip():
            raise HTTPException(400, "empty query")
        check_prompts(not_)
        for name, values in (
            ("tag", tag),
            ("exclude_artist", exclude_artist),
            ("exclude_genre", exclude_genre),
            ("exclude_path", exclude_path),
        ):
            for value in values or ():
                if len(value) > MAX_FILTER_CHARS:
                    raise HTTPException(422, f"{name}: each value has at most {MAX_FILTER_CHARS} characters")
        f = parse_filters(artist, album, genre, year, min_duration, max_duration, path, tag)
        v = VarietyRequest.model_construct(
            max_per_artist=max_per_artist,
            dedupe=dedupe,
            exclude_artist=exclude_artist or [],
            exclude_genre=exclude_genre or [],
            exclude_path=exclude_path or [],
            variation=variation,
            seed=seed,
        ).variety()
        with lock:
            hits = index.search(
                q,
                k=k,
                negative=not_ or (),
                filters=f,
                by=by,
                min_score=min_score,
                lexical=lexical,
                include_named=include_named,
                variety=v,
                order=order,
            )
        return [h.to_dict() for h in hits]

    def check_prompts(not_: list[str] | None) -> None:
        for prompt in not_ or ():
            if len(prompt) > MAX_QUERY_CHARS:
                raise HTTPException(422, f"not: each prompt has at most {MAX_QUERY_CHARS} characters")

    def track_or_404(track_id: int) -> Any:
        with lock:
            try:
                found = index.track(track_id)
            except IndexNotFound:
                found = None
        if found is None:
            raise HTTPException(404, f"no track {track_id}")
        return found

    @app.get("/api/tracks/{track_id}", summary="Metadata of one indexed track")
    def track(track_id: TrackId) -> dict:
        t, tags = track_or_404(track_id)
        return {
            **t.__dict__,
            "track_id": t.id,
            "tags": [{"vocab": v, "label": lab, "score": round(s, 6)} for v, lab, s in tags],
        }

    @app.get("/api/tracks/{track_id}/audio", summary="The indexed file itself, with HTTP Range support")
    def audio(track_id: TrackId) -> FileResponse:
        t, _ = track_or_404(track_id)
        path = Path(t.path)
        if not path.is_file():
            raise HTTPException(404, f"track {track_id}'s file is no longer there; run musicsearch index again")
        return FileResponse(path, media_type=AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"))

    async def saved_upload(upload: UploadFile, folder: str) -> Path:
        suffix = Path(upload.filename or "upload").suffix.lower()
        if suffix not in AUDIO_TYPES:
            suffix = ".bin"
        target = Path(folder) / f"upload{suffix}"
        size = 0
        with open(target, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > max_upload_bytes:
                    raise HTTPException(413, f"upload larger than {max_upload_bytes // (1024 * 1024)} MB")
                out.write(chunk)
        if size == 0:
            raise HTTPException(400, "the uploaded file is empty")
        return target

    def undecodable(exc: DecodeError) -> HTTPException:
        # exc.reason, not str(exc): the temp path means nothing to the client
        return HTTPException(422, f"the uploaded file could not be decoded as audio ({exc.reason})")

    @app.post("/api/similar", summary="Tracks like an indexed track (JSON) or an uploaded clip (multipart `audio`)")
    async def similar(request: Request) -> list[dict]:
        if request.headers.get("content-type", "").startswith("multipart/"):
            form = await request.form()
            upload = form.get("audio")
            if not hasattr(upload, "read"):
                raise HTTPException(422, "multipart requests need a file in the field 'audio'")
            fields: dict[str, Any] = {}
            for key in UploadSimilarRequest.model_fields:
                values = [v for v in form.getlist(key) if isinstance(v, str)]
                if len(values) != len(form.getlist(key)):
                    raise HTTPException(422, f"{key} must be text, not a file")
                if key.startswith("exclude_"):
                    fields[key] = values
                elif values:
                    fields[key] = values[-1]
            try:
                upload_body = UploadSimilarRequest.model_validate(fields)
            except ValidationError as exc:
                raise HTTPException(422, _first_error(exc)) from None
            variety = upload_body.variety()
            with tempfile.TemporaryDirectory() as tmp:
                path = await saved_upload(upload, tmp)  # type: ignore[arg-type]
                with lock:
                    try:
                        hits = index.similar(str(path), k=upload_body.k, variety=variety, order=upload_body.order)
                    except DecodeError as exc:
                        raise undecodable(exc) from None
            return [h.to_dict() for h in hits]
        raw = await request.body()  # bounded by RequestGuard before it is read
        try:
            body = SimilarRequest.model_validate_json(raw)
        except ValidationError as exc:
            raise HTTPException(
                422, f'send JSON {{"track_id": N, "k": K}} or a multipart \'audio\' file ({_first_error(exc)})'
            ) from None
        variety = body.variety()
        t, _ = track_or_404(body.track_id)
        with lock:
            hits = index.similar(t.path, k=body.k, variety=variety, order=body.order)
        return [h.to_dict() for h in hits]

    @app.get("/api/tracks/{track_id}/windows", summary="How well each window of a track matches a query")
    def windows(
        track_id: TrackId,
        q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS, description="A text query")] = None,
        not_: Annotated[list[str] | None, Query(alias="not", max_length=MAX_PROMPTS)] = None,
        like: Annotated[int | None, Query(ge=1, le=MAX_TRACK_ID, description="Or: a track to compare with")] = None,
        lexical: bool = True,
    ) -> list[dict]:
        if (q is None or not q.strip()) == (like is None):
            raise HTTPException(400, "send exactly one of: q (a text query) or like (a track id)")
        check_prompts(not_)
        track_or_404(track_id)
        with lock:
            try:
                return index.window_scores(track_id, q, negative=not_ or (), like=like, lexical=lexical)
            except MusicSearchError as exc:
                if like is not None and str(exc) == f"no track {like}":
                    raise HTTPException(404, str(exc)) from None
                raise

    @app.get("/api/map", summary="Every track on a 2-D map of the library (PCA of the track vectors)")
    def library_points() -> list[dict]:
        with lock:
            try:
                return [p.to_dict() for p in index.library_map()]
            except IndexNotFound:
                return []

    def parse_ids(ids: str) -> list[int]:
        parts = [p for p in ids.split(",") if p.strip()]
        if not parts:
            raise HTTPException(400, "ids: give one or more track ids, comma-separated")
        if len(parts) > MAX_PLAYLIST_IDS:
            raise HTTPException(422, f"ids: at most {MAX_PLAYLIST_IDS} tracks")
        out = []
        for p in parts:
            p = p.strip()
            if not p.isdigit() or not 1 <= int(p) <= MAX_TRACK_ID:
                raise HTTPException(422, f"ids: {p[:20]!r} is not a track id")
            out.append(int(p))
        return list(dict.fromkeys(out))

    @app.get("/api/playlist.m3u8", summary="An M3U8 playlist of the given tracks, in the given order")
    def playlist(
        ids: Annotated[str, Query(max_length=MAX_PLAYLIST_IDS * 21, description="Track ids, comma-separated")],
    ) -> Response:
        wanted = parse_ids(ids)
        with lock:
            try:
                tracks = index.tracks(wanted)
            except IndexNotFound:
                tracks = {}
        missing = [i for i in wanted if i not in tracks]
        if missing:
            raise HTTPException(404, f"no track {missing[0]}")
        hits = [Hit(r, 0.0, tracks[i], Segment(0.0, 0.0, 0.0)) for r, i in enumerate(wanted, 1)]
        return Response(
            m3u_text(hits),
            media_type="audio/x-mpegurl; charset=utf-8",
            headers={"Content-Disposition": 'attachment; filename="musicsearch.m3u8"'},
        )

    @app.get("/api/path", summary="A playlist moving steadily from one track to another (hits as in search)")
    def path_between(
        start: Annotated[int, Query(ge=1, le=MAX_TRACK_ID)],
        end: Annotated[int, Query(ge=1, le=MAX_TRACK_ID)],
        n: Annotated[int, Query(ge=2, le=MAX_PATH_STEPS)] = 12,
        max_per_artist: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
        dedupe: bool = False,
    ) -> list[dict]:
        a, _ = track_or_404(start)
        b, _ = track_or_404(end)
        v = Variety(max_per_artist=max_per_artist, dedupe=dedupe)
        with lock:
            hits = index.path_between(a.path, b.path, n, variety=v)
        return [h.to_dict() for h in hits]

    @app.post("/api/classify", summary="Zero-shot scores of comma-separated labels for an uploaded clip or a track")
    async def classify(
        labels: Annotated[str, Form(max_length=2000, description="Comma-separated candidate labels")],
        audio: Annotated[UploadFile | None, File(description="An audio clip")] = None,
        track_id: Annotated[int | None, Form(ge=1, le=MAX_TRACK_ID)] = None,
        template: Annotated[str, Form(max_length=200)] = "{}",
    ) -> dict:
        if (audio is None) == (track_id is None):
            raise HTTPException(422, "send exactly one of: a file in the field 'audio', or a track_id")
        _check_text("labels", labels)
        _check_text("template", template)
        prompts(parse_labels(labels), template)  # bad labels or template: 400 before any upload work
        if audio is not None:
            with tempfile.TemporaryDirectory() as tmp:
                path = await saved_upload(audio, tmp)
                with lock:
                    try:
                        result = index.classify(str(path), labels, template)
                    except DecodeError as exc:
                        raise undecodable(exc) from None
        else:
            t, _ = track_or_404(track_id)  # type: ignore[arg-type]
            with lock:
                result = index.classify(t.path, labels, template)
        return {
            "labels": [{"label": lab, "score": round(p, 6)} for lab, p in result.labels],
            "top_label": result.top_label,
            "confidence": round(result.confidence, 6),
        }

    return app


def serve(index: MusicIndex, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Run the app under uvicorn with the model loaded before the first request."""
    import uvicorn

    try:
        index.warm()
    except IndexNotFound:
        pass  # the page says the index is empty
    uvicorn.run(create_app(index), host=host, port=port, log_level="info")
