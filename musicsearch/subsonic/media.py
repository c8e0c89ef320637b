"""The files themselves: ``stream`` and ``download`` send an indexed file as it is on disk (no
transcoding: ``maxBitRate``, ``format`` and ``timeOffset`` are ignored), with HTTP Range;
``getCoverArt`` sends the picture embedded in a song's file, or the ``cover.jpg``/``folder.jpg``
(or .png, ``front.*``) beside it. Only indexed files and pictures in an indexed file's own
folder are ever read: an id names a song, an album or an artist, never a path."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import mutagen
from fastapi.responses import FileResponse, Response
from mutagen.flac import Picture

from .catalog import Song
from .responses import NOT_FOUND, SubsonicError
from .state import Call, Handler

COVER_NAMES = ("cover", "folder", "front", "album")
IMAGE_TYPES = {".jpg": "image/jpeg", ".jpeg": "image/jpeg", ".png": "image/png", ".webp": "image/webp"}
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_SONGS_TRIED = 20  # songs of an album or artist looked at for a picture


def _file(call: Call) -> tuple[Song, Path]:
    song = call.library.catalog().song(call.params.required("id"))
    path = Path(song.path)
    if not path.is_file():
        raise SubsonicError(NOT_FOUND, f"the file of song {song.id} is no longer there; run musicsearch index again")
    return song, path


def stream(call: Call) -> Response:
    song, path = _file(call)
    return FileResponse(path, media_type=song.child()["contentType"])


def download(call: Call) -> Response:
    song, path = _file(call)
    return FileResponse(path, media_type=song.child()["contentType"], filename=path.name)


def embedded_picture(path: Path) -> tuple[bytes, str] | None:
    """The first picture in the file's tags (FLAC, ID3, MP4, Vorbis comments), with its type."""
    try:
        audio = mutagen.File(path)
        if audio is None:
            return None
        pictures = list(getattr(audio, "pictures", None) or [])
        tags = audio.tags
        if not pictures and tags is not None and hasattr(tags, "getall"):  # ID3 (MP3, AIFF, WAV)
            return next(((f.data, f.mime) for f in tags.getall("APIC")), None)
        if not pictures and tags is not None and "covr" in tags:  # MP4
            cover = tags["covr"][0]
            return bytes(cover), "image/png" if getattr(cover, "imageformat", 0) == 14 else "image/jpeg"
        if not pictures and tags is not None and "metadata_block_picture" in tags:  # Ogg Vorbis, Opus
            pictures = [Picture(base64.b64decode(tags["metadata_block_picture"][0]))]
    except (mutagen.MutagenError, OSError, ValueError, KeyError, TypeError, IndexError):
        return None
    return (pictures[0].data, pictures[0].mime or "image/jpeg") if pictures else None


def folder_picture(path: Path) -> tuple[bytes, str] | None:
    """``cover.jpg``, ``folder.jpg`` ... in the file's own folder (any case; a plain file, not a link)."""
    try:
        entries = {e.name.lower(): e for e in os.scandir(path.parent)}
    except OSError:
        return None
    for stem in COVER_NAMES:
        for suffix, kind in IMAGE_TYPES.items():
            entry = entries.get(stem + suffix)
            if entry is None:
                continue
            try:
                if (
                    entry.is_file(follow_symlinks=False)
                    and entry.stat(follow_symlinks=False).st_size <= MAX_IMAGE_BYTES
                ):
                    return Path(entry.path).read_bytes(), kind
            except OSError:
                continue
    return None


def get_cover_art(call: Call) -> Response:
    songs = call.library.catalog().songs_of(call.params.required("id"))
    for song in songs[:MAX_SONGS_TRIED]:
        path = Path(song.path)
        found = embedded_picture(path) or folder_picture(path)
        if found is not None:
            data, kind = found
            return Response(data, media_type=kind, headers={"Cache-Control": "max-age=86400"})
    raise SubsonicError(NOT_FOUND, "no cover art")


HANDLERS: dict[str, Handler] = {"stream": stream, "download": download, "getCoverArt": get_cover_art}
