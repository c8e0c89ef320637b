"""What every request is checked against: the size limits, the text checks, and the one JSON
error shape ``{"error": "..."}`` every refusal takes."""

from __future__ import annotations

import unicodedata
from typing import Annotated

from fastapi import HTTPException
from fastapi import Path as PathParam
from fastapi.responses import JSONResponse
from pydantic import ValidationError

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

TrackId = Annotated[int, PathParam(ge=1, le=MAX_TRACK_ID, description="A track id from search results")]


def error_response(status: int, message: str) -> JSONResponse:
    """The JSON error every refusal takes: ``{"error": message}``."""
    return JSONResponse({"error": message}, status_code=status)


def first_error(exc: ValidationError) -> str:
    """``where: what`` of a pydantic error's first complaint."""
    errors = exc.errors()
    where = ".".join(str(p) for p in errors[0]["loc"]) if errors else ""
    return f"{where or 'body'}: {errors[0]['msg'] if errors else 'invalid'}"


def control_character(text: str) -> str | None:
    """The first control character (Unicode category Cc) in ``text``, if any."""
    return next((c for c in text if unicodedata.category(c) == "Cc"), None)


def check_text(name: str, text: str) -> None:
    """400 if the form field ``name`` holds a control character."""
    bad = control_character(text)
    if bad is not None:
        raise HTTPException(400, f"{name} contains a control character ({bad!a})")


def check_prompts(not_: list[str] | None) -> None:
    """422 if one of the ``not`` prompts is longer than a query may be."""
    for prompt in not_ or ():
        if len(prompt) > MAX_QUERY_CHARS:
            raise HTTPException(422, f"not: each prompt has at most {MAX_QUERY_CHARS} characters")


def check_each(name: str, values: list[str] | None, limit: int = MAX_FILTER_CHARS) -> None:
    """422 if one of a repeated parameter's values is longer than ``limit``."""
    for value in values or ():
        if len(value) > limit:
            raise HTTPException(422, f"{name}: each value has at most {limit} characters")


def parse_ids(ids: str) -> list[int]:
    """``"3,1,3"`` -> ``[3, 1]``: track ids, comma-separated, each once, in order."""
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


def size_text(n: int) -> str:
    """A byte limit as people read it: ``50 MB``, ``64 KB``."""
    return f"{n // (1024 * 1024)} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"
