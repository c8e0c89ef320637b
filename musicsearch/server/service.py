"""What the routes share: the one ``MusicIndex`` behind a lock, reached through a FastAPI
dependency, and the helpers that turn a missing track or a bad upload into an HTTP error."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated

from fastapi import Depends, HTTPException, Request, UploadFile

from ..api import MusicIndex
from ..errors import DecodeError, IndexNotFound
from ..library import AUDIO_TYPES
from ..store import Track


@dataclass
class Service:
    """The index an app serves. Calls into it are serialized by ``lock`` (one model, one
    SQLite connection)."""

    index: MusicIndex
    max_upload_bytes: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def track_or_404(self, track_id: int) -> tuple[Track, list[tuple[str, str, float]]]:
        """The track and its tags, or a 404 (also when there is no index yet)."""
        with self.lock:
            try:
                found = self.index.track(track_id)
            except IndexNotFound:
                found = None
        if found is None:
            raise HTTPException(404, f"no track {track_id}")
        return found

    async def saved_upload(self, upload: UploadFile, folder: str) -> Path:
        """Writes an uploaded clip into ``folder``, refusing it once it passes the upload limit."""
        suffix = Path(upload.filename or "upload").suffix.lower()
        if suffix not in AUDIO_TYPES:
            suffix = ".bin"
        target = Path(folder) / f"upload{suffix}"
        size = 0
        with open(target, "wb") as out:
            while chunk := await upload.read(1 << 20):
                size += len(chunk)
                if size > self.max_upload_bytes:
                    raise HTTPException(413, f"upload larger than {self.max_upload_bytes // (1024 * 1024)} MB")
                out.write(chunk)
        if size == 0:
            raise HTTPException(400, "the uploaded file is empty")
        return target


def undecodable(exc: DecodeError) -> HTTPException:
    """422 for an upload that is not audio."""
    # exc.reason, not str(exc): the temp path means nothing to the client
    return HTTPException(422, f"the uploaded file could not be decoded as audio ({exc.reason})")


async def get_service(request: Request) -> Service:
    """The dependency every API route takes: the app's ``Service``."""
    service: Service = request.app.state.service
    return service


Svc = Annotated[Service, Depends(get_service)]
