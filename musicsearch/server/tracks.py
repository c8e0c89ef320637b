"""Routes about the indexed tracks themselves: counts, metadata, the audio file, how each
window scores, the library map, and a playlist file of chosen tracks."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import FileResponse, Response

from ..errors import IndexNotFound, MusicSearchError
from ..hits import Hit, Segment
from ..playlist import m3u_text
from .limits import MAX_PLAYLIST_IDS, MAX_PROMPTS, MAX_QUERY_CHARS, MAX_TRACK_ID, TrackId, check_prompts, parse_ids
from .service import AUDIO_TYPES, Svc

router = APIRouter()


@router.get("/api/info", summary="Counts and model of the index")
def info(svc: Svc) -> dict:
    with svc.lock:
        try:
            return dict(svc.index.info().__dict__)
        except IndexNotFound:
            return {"tracks": 0, "windows": 0, "failures": 0, "model": None, "dim": 0}


@router.get("/api/tracks/{track_id}", summary="Metadata of one indexed track")
def track(track_id: TrackId, svc: Svc) -> dict:
    t, tags = svc.track_or_404(track_id)
    return {
        **t.__dict__,
        "track_id": t.id,
        "tags": [{"vocab": v, "label": lab, "score": round(s, 6)} for v, lab, s in tags],
    }


@router.get("/api/tracks/{track_id}/audio", summary="The indexed file itself, with HTTP Range support")
def audio(track_id: TrackId, svc: Svc) -> FileResponse:
    t, _ = svc.track_or_404(track_id)
    path = Path(t.path)
    if not path.is_file():
        raise HTTPException(404, f"track {track_id}'s file is no longer there; run musicsearch index again")
    return FileResponse(path, media_type=AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream"))


@router.get("/api/tracks/{track_id}/windows", summary="How well each window of a track matches a query")
def windows(
    track_id: TrackId,
    svc: Svc,
    q: Annotated[str | None, Query(max_length=MAX_QUERY_CHARS, description="A text query")] = None,
    not_: Annotated[list[str] | None, Query(alias="not", max_length=MAX_PROMPTS)] = None,
    like: Annotated[int | None, Query(ge=1, le=MAX_TRACK_ID, description="Or: a track to compare with")] = None,
    lexical: bool = True,
) -> list[dict]:
    if (q is None or not q.strip()) == (like is None):
        raise HTTPException(400, "send exactly one of: q (a text query) or like (a track id)")
    check_prompts(not_)
    svc.track_or_404(track_id)
    with svc.lock:
        try:
            return svc.index.window_scores(track_id, q, negative=not_ or (), like=like, lexical=lexical)
        except MusicSearchError as exc:
            if like is not None and str(exc) == f"no track {like}":
                raise HTTPException(404, str(exc)) from None
            raise


@router.get("/api/map", summary="Every track on a 2-D map of the library (PCA of the track vectors)")
def library_points(svc: Svc) -> list[dict]:
    with svc.lock:
        try:
            return [p.to_dict() for p in svc.index.library_map()]
        except IndexNotFound:
            return []


@router.get("/api/playlist.m3u8", summary="An M3U8 playlist of the given tracks, in the given order")
def playlist(
    ids: Annotated[str, Query(max_length=MAX_PLAYLIST_IDS * 21, description="Track ids, comma-separated")],
    svc: Svc,
) -> Response:
    wanted = parse_ids(ids)
    with svc.lock:
        try:
            tracks = svc.index.tracks(wanted)
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
