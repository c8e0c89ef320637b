"""``/api/classify``: zero-shot scores of the given labels for an uploaded clip or a track."""

from __future__ import annotations

import tempfile
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, UploadFile

from ..errors import DecodeError
from ..search.classify import parse_labels, prompts
from .limits import MAX_TRACK_ID, check_text
from .service import Svc, undecodable

router = APIRouter()


@router.post("/api/classify", summary="Zero-shot scores of comma-separated labels for an uploaded clip or a track")
async def classify(
    svc: Svc,
    labels: Annotated[str, Form(max_length=2000, description="Comma-separated candidate labels")],
    audio: Annotated[UploadFile | None, File(description="An audio clip")] = None,
    track_id: Annotated[int | None, Form(ge=1, le=MAX_TRACK_ID)] = None,
    template: Annotated[str, Form(max_length=200)] = "{}",
) -> dict:
    if (audio is None) == (track_id is None):
        raise HTTPException(422, "send exactly one of: a file in the field 'audio', or a track_id")
    check_text("labels", labels)
    check_text("template", template)
    prompts(parse_labels(labels), template)  # bad labels or template: 400 before any upload work
    if audio is not None:
        with tempfile.TemporaryDirectory() as tmp:
            path = await svc.saved_upload(audio, tmp)
            with svc.lock:
                try:
                    result = svc.index.classify(str(path), labels, template)
                except DecodeError as exc:
                    raise undecodable(exc) from None
    else:
        t, _ = svc.track_or_404(track_id)  # type: ignore[arg-type]
        with svc.lock:
            result = svc.index.classify(t.path, labels, template)
    return {
        "labels": [{"label": lab, "score": round(p, 6)} for lab, p in result.labels],
        "top_label": result.top_label,
        "confidence": round(result.confidence, 6),
    }
