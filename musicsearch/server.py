"""The web page and HTTP API: a FastAPI app over one MusicIndex, with the model loaded once.

No endpoint takes a path: audio is served by track id, and only files that are in the index.
Bad input gets a 4xx JSON error ``{"error": "..."}``, never a 500 or a traceback.
"""

from __future__ import annotations

import tempfile
import threading
from importlib import resources
from pathlib import Path
from typing import Annotated, Any

from fastapi import FastAPI, File, Form, HTTPException, Query, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse, Response
from pydantic import BaseModel, Field

from .api import MusicIndex
from .classify import parse_labels, prompts
from .errors import DecodeError, IndexNotFound, MusicSearchError
from .filters import parse_filters

MAX_QUERY_CHARS = 500
MAX_K = 200
MAX_UPLOAD_BYTES = 50 * 1024 * 1024
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


class SimilarRequest(BaseModel):
    track_id: int
    k: int = Field(10, ge=1, le=MAX_K)


def _error(status: int, message: str) -> JSONResponse:
    return JSONResponse({"error": message}, status_code=status)


def create_app(index: MusicIndex, max_upload_bytes: int = MAX_UPLOAD_BYTES) -> FastAPI:
    """The app serving ``index``. Calls into the index are serialized by a lock (one model,
    one SQLite connection)."""
    app = FastAPI(
        title="musicsearch", description="Search, listen to and classify an indexed music library.", version="0.1.0"
    )
    lock = threading.Lock()

    @app.exception_handler(MusicSearchError)
    async def _user_error(request: Request, exc: MusicSearchError) -> JSONResponse:
        return _error(404 if isinstance(exc, IndexNotFound) else 400, str(exc))

    @app.exception_handler(RequestValidationError)
    async def _bad_request(request: Request, exc: RequestValidationError) -> JSONResponse:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ())[1:]) or "request"
        return _error(422, f"{where}: {first.get('msg', 'invalid value')}")

    @app.exception_handler(HTTPException)
    async def _http_error(request: Request, exc: HTTPException) -> JSONResponse:
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> JSONResponse:
        return _error(500, f"internal error ({type(exc).__name__})")

    def page(name: str, media_type: str) -> Response:
        body = resources.files("musicsearch").joinpath("static", name).read_bytes()
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
        not_: Annotated[list[str] | None, Query(alias="not", max_length=MAX_QUERY_CHARS)] = None,
        by: Annotated[str, Query(pattern="^(track|window)$")] = "track",
        min_score: float | None = None,
        artist: str | None = None,
        album: str | None = None,
        genre: str | None = None,
        year: str | None = None,
        min_duration: str | None = None,
        max_duration: str | None = None,
        path: str | None = None,
        tag: Annotated[list[str] | None, Query()] = None,
    ) -> list[dict]:
        if not q.strip():
            raise HTTPException(400, "empty query")
        f = parse_filters(artist, album, genre, year, min_duration, max_duration, path, tag)
        with lock:
            hits = index.search(q, k=k, negative=not_ or (), filters=f, by=by, min_score=min_score)
        return [h.to_dict() for h in hits]

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
    def track(track_id: int) -> dict:
        t, tags = track_or_404(track_id)
        return {
            **t.__dict__,
            "track_id": t.id,
            "tags": [{"vocab": v, "label": lab, "score": round(s, 6)} for v, lab, s in tags],
        }

    @app.get("/api/tracks/{track_id}/audio", summary="The indexed file itself, with HTTP Range support")
    def audio(track_id: int) -> FileResponse:
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
            try:
                k = int(form.get("k") or 10)
            except ValueError:
                raise HTTPException(422, "k must be an integer") from None
            if not 1 <= k <= MAX_K:
                raise HTTPException(422, f"k must be between 1 and {MAX_K}")
            with tempfile.TemporaryDirectory() as tmp:
                path = await saved_upload(upload, tmp)  # type: ignore[arg-type]
                with lock:
                    try:
                        hits = index.similar(str(path), k=k)
                    except DecodeError as exc:
                        raise undecodable(exc) from None
            return [h.to_dict() for h in hits]
        try:
            body = SimilarRequest.model_validate(await request.json())
        except Exception as exc:
            raise HTTPException(
                422, f'send JSON {{"track_id": N, "k": K}} or a multipart \'audio\' file ({type(exc).__name__})'
            ) from None
        t, _ = track_or_404(body.track_id)
        with lock:
            hits = index.similar(t.path, k=body.k)
        return [h.to_dict() for h in hits]

    @app.post("/api/classify", summary="Zero-shot scores of comma-separated labels for an uploaded clip or a track")
    async def classify(
        labels: Annotated[str, Form(max_length=2000, description="Comma-separated candidate labels")],
        audio: Annotated[UploadFile | None, File(description="An audio clip")] = None,
        track_id: Annotated[int | None, Form()] = None,
        template: Annotated[str, Form(max_length=200)] = "{}",
    ) -> dict:
        if (audio is None) == (track_id is None):
            raise HTTPException(422, "send exactly one of: a file in the field 'audio', or a track_id")
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
