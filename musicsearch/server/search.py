"""The search routes: tracks matching a text query, tracks like a track or an uploaded clip,
and a path from one track to another. Each turns its parameters into one ``SearchRequest``
(``parse_request``, the parser every front end shares), runs it, and returns the hits as
``query --json`` prints them."""

from __future__ import annotations

import tempfile
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.datastructures import FormData

from ..errors import DecodeError
from ..search.request import SearchRequest, parse_request
from .limits import (
    MAX_FILTER_CHARS,
    MAX_K,
    MAX_PATH_STEPS,
    MAX_PROMPTS,
    MAX_QUERY_CHARS,
    MAX_RANGE_CHARS,
    MAX_SEED,
    MAX_TRACK_ID,
    check_each,
    check_prompts,
    first_error,
)
from .service import Svc, undecodable

router = APIRouter()

Excludes = list[Annotated[str, Field(max_length=MAX_FILTER_CHARS)]]
BPM_HELP = "Tempo: 120-128, 124 (within 2 %), 120- or -128; half and double time match too"
COMPATIBLE_HELP = "Keys that mix with this one: the same, ±1 on the Camelot wheel, the relative major/minor"
SOUND_ONLY_HELP = "Smooth order and paths by sound alone (else tempo and key count too)"


class VarietyRequest(BaseModel):
    """Variety and order of a hit list (see musicsearch/search/variety.py); the field names are
    those of ``parse_request``."""

    max_per_artist: int | None = Field(None, ge=1, le=MAX_K)
    dedupe: bool = False
    exclude_artist: Excludes = Field(default_factory=list, max_length=MAX_PROMPTS)
    exclude_genre: Excludes = Field(default_factory=list, max_length=MAX_PROMPTS)
    exclude_path: Excludes = Field(default_factory=list, max_length=MAX_PROMPTS)
    variation: float = Field(0.0, ge=0.0, le=1.0, allow_inf_nan=False)
    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    order: str = Field("score", pattern="^(score|smooth)$")
    bpm: str | None = Field(None, max_length=MAX_RANGE_CHARS)
    strict_bpm: bool = False
    key: str | None = Field(None, max_length=MAX_RANGE_CHARS)
    key_compatible: str | None = Field(None, max_length=MAX_RANGE_CHARS)
    sound_only: bool = False

    def request(self, like: str) -> SearchRequest:
        """The search for tracks like ``like`` (an indexed track's path or a file) with these options."""
        return parse_request({**self.model_dump(exclude={"track_id"}), "like": [like]})


class SimilarRequest(VarietyRequest):
    track_id: int = Field(ge=1, le=MAX_TRACK_ID)
    k: int = Field(10, ge=1, le=MAX_K)


class UploadSimilarRequest(VarietyRequest):
    k: int = Field(10, ge=1, le=MAX_K)


FilterText = Annotated[str | None, Query(max_length=MAX_FILTER_CHARS)]
Repeated = Annotated[list[str] | None, Query(max_length=MAX_PROMPTS)]


@router.get("/api/search", summary="Tracks matching a text query (hits as in `query --json`)")
def search(
    svc: Svc,
    q: Annotated[str, Query(max_length=MAX_QUERY_CHARS, description="What the music sounds like")],
    k: Annotated[int, Query(ge=1, le=MAX_K)] = 10,
    not_: Annotated[
        list[str] | None,
        Query(alias="not", max_length=MAX_PROMPTS, description="Prompts to subtract (each at most 500 characters)"),
    ] = None,
    by: Annotated[str, Query(pattern="^(track|window)$")] = "track",
    min_score: Annotated[float | None, Query(allow_inf_nan=False)] = None,
    artist: FilterText = None,
    album: FilterText = None,
    genre: FilterText = None,
    year: Annotated[
        str | None, Query(max_length=MAX_RANGE_CHARS, description="1997, 1990-1999, 1990- or -1999")
    ] = None,
    min_duration: Annotated[str | None, Query(max_length=MAX_RANGE_CHARS, description="seconds or mm:ss")] = None,
    max_duration: Annotated[str | None, Query(max_length=MAX_RANGE_CHARS, description="seconds or mm:ss")] = None,
    path: FilterText = None,
    tag: Repeated = None,
    lexical: Annotated[bool, Query(description="Names in the query act as names (false: sound only)")] = True,
    include_named: Annotated[bool, Query(description="Keep the tracks of a 'like X' name")] = False,
    max_per_artist: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
    dedupe: Annotated[bool, Query(description="One version of each song")] = False,
    exclude_artist: Repeated = None,
    exclude_genre: Repeated = None,
    exclude_path: Annotated[list[str] | None, Query(max_length=MAX_PROMPTS, description="Glob, e.g. */live/*")] = None,
    variation: Annotated[float, Query(ge=0.0, le=1.0, allow_inf_nan=False)] = 0.0,
    seed: Annotated[int | None, Query(ge=0, le=MAX_SEED)] = None,
    order: Annotated[str, Query(pattern="^(score|smooth)$")] = "score",
    bpm: Annotated[str | None, Query(max_length=MAX_RANGE_CHARS, description=BPM_HELP)] = None,
    strict_bpm: Annotated[bool, Query(description="bpm: the range alone, not half or double time")] = False,
    key: Annotated[str | None, Query(max_length=MAX_RANGE_CHARS, description="8A, 1m, Am or A minor")] = None,
    key_compatible: Annotated[str | None, Query(max_length=MAX_RANGE_CHARS, description=COMPATIBLE_HELP)] = None,
    sound_only: Annotated[bool, Query(description=SOUND_ONLY_HELP)] = False,
) -> list[dict]:
    if not q.strip():
        raise HTTPException(400, "empty query")
    check_prompts(not_)
    check_each("tag", tag)
    check_each("exclude_artist", exclude_artist)
    check_each("exclude_genre", exclude_genre)
    check_each("exclude_path", exclude_path)
    request = parse_request(
        {"q": q, "k": k, "not": not_, "by": by, "min_score": min_score, "lexical": lexical, "order": order}
        | {"artist": artist, "album": album, "genre": genre, "year": year, "path": path, "tag": tag}
        | {"min_duration": min_duration, "max_duration": max_duration, "include_named": include_named}
        | {"max_per_artist": max_per_artist, "dedupe": dedupe, "variation": variation, "seed": seed}
        | {"exclude_artist": exclude_artist, "exclude_genre": exclude_genre, "exclude_path": exclude_path}
        | {"bpm": bpm, "strict_bpm": strict_bpm, "key": key, "key_compatible": key_compatible}
        | {"sound_only": sound_only}
    )
    with svc.lock:
        hits = svc.index.search(request)
    return [h.to_dict() for h in hits]


@router.post("/api/similar", summary="Tracks like an indexed track (JSON) or an uploaded clip (multipart `audio`)")
async def similar(request: Request, svc: Svc) -> list[dict]:
    if request.headers.get("content-type", "").startswith("multipart/"):
        return await _similar_to_upload(await request.form(), svc)
    raw = await request.body()  # bounded by RequestGuard before it is read
    try:
        body = SimilarRequest.model_validate_json(raw)
    except ValidationError as exc:
        raise HTTPException(
            422, f'send JSON {{"track_id": N, "k": K}} or a multipart \'audio\' file ({first_error(exc)})'
        ) from None
    t, _ = svc.track_or_404(body.track_id)
    wanted = body.request(t.path)
    with svc.lock:
        hits = svc.index.similar(wanted)
    return [h.to_dict() for h in hits]


async def _similar_to_upload(form: FormData, svc: Svc) -> list[dict]:
    """``/api/similar`` with a multipart body: the clip in ``audio``, the options as text fields."""
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
        body = UploadSimilarRequest.model_validate(fields)
    except ValidationError as exc:
        raise HTTPException(422, first_error(exc)) from None
    with tempfile.TemporaryDirectory() as tmp:
        path = await svc.saved_upload(upload, tmp)  # type: ignore[arg-type]
        wanted = body.request(str(path))
        with svc.lock:
            try:
                hits = svc.index.similar(wanted)
            except DecodeError as exc:
                raise undecodable(exc) from None
    return [h.to_dict() for h in hits]


@router.get("/api/path", summary="A playlist moving steadily from one track to another (hits as in search)")
def path_between(
    svc: Svc,
    start: Annotated[int, Query(ge=1, le=MAX_TRACK_ID)],
    end: Annotated[int, Query(ge=1, le=MAX_TRACK_ID)],
    n: Annotated[int, Query(ge=2, le=MAX_PATH_STEPS)] = 12,
    max_per_artist: Annotated[int | None, Query(ge=1, le=MAX_K)] = None,
    dedupe: bool = False,
    sound_only: Annotated[bool, Query(description=SOUND_ONLY_HELP)] = False,
) -> list[dict]:
    a, _ = svc.track_or_404(start)
    b, _ = svc.track_or_404(end)
    fields = {"between": [a.path, b.path], "k": n, "max_per_artist": max_per_artist, "dedupe": dedupe}
    request = parse_request(fields | {"sound_only": sound_only})
    with svc.lock:
        hits = svc.index.search(request)
    return [h.to_dict() for h in hits]
