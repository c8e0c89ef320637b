"""Read tags with mutagen: title, artist, album, albumartist, genre, year, track number,
tempo (BPM), key and duration, from every tag format mutagen reads: ID3 (MP3, AIFF, WAV, DSF...), Vorbis
comments (FLAC, Ogg Vorbis, Opus), MP4 atoms (m4a), ASF attributes (WMA) and APEv2
(WavPack, Monkey's Audio, Musepack, APE tags on MP3). WAV and AIFF files without ID3 fall
back to their RIFF INFO / AIFF text chunks (read by libsndfile). The title falls back to the
file name; a file mutagen cannot parse still gets one."""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import mutagen

from .keys import find_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Tags:
    title: str
    artist: str | None = None
    album: str | None = None
    albumartist: str | None = None
    genre: str | None = None
    year: int | None = None
    tracknumber: int | None = None
    duration: float | None = None
    bpm: float | None = None  # the file's own tempo tag (ID3 TBPM, Vorbis BPM, MP4 tmpo ...)
    key: str | None = None  # the file's own key tag, as ``Key.name`` ("A minor"); None if unreadable


# Each field's keys in every tag format: Vorbis comments and APEv2 (case-insensitive), ID3
# frames, MP4 atoms, ASF attributes. The first key with a non-empty value wins.
KEYS: dict[str, tuple[str, ...]] = {
    "title": ("title", "TIT2", "\xa9nam", "Title"),
    "artist": ("artist", "TPE1", "\xa9ART", "Author"),
    "album": ("album", "TALB", "\xa9alb", "WM/AlbumTitle"),
    "albumartist": (
        "albumartist",
        "album artist",
        "album_artist",
        "TPE2",
        "TXXX:ALBUMARTIST",
        "TXXX:ALBUM ARTIST",
        "aART",
        "WM/AlbumArtist",
    ),
    "genre": ("genre", "TCON", "\xa9gen", "gnre", "WM/Genre"),
    "year": ("date", "year", "originaldate", "TDRC", "TDOR", "\xa9day", "WM/Year", "WM/OriginalReleaseYear"),
    "tracknumber": ("tracknumber", "track", "TRCK", "trkn", "WM/TrackNumber", "WM/Track"),
    "bpm": ("bpm", "TBPM", "tmpo", "----:com.apple.iTunes:BPM", "WM/BeatsPerMinute", "TXXX:BPM"),
    "key": (
        "initialkey",
        "initial key",
        "key",
        "TKEY",
        "TXXX:INITIALKEY",
        "TXXX:KEY",
        "----:com.apple.iTunes:initialkey",
        "----:com.apple.iTunes:KEY",
        "WM/InitialKey",
    ),
}
MIN_BPM, MAX_BPM = 20.0, 400.0  # a tempo tag outside this is taken for a mistake


def _texts(key: str, value: Any) -> list[str]:
    """The text values of one tag value, whatever the format's value type."""
    if isinstance(value, (list, tuple)) and not (key == "trkn" and value and isinstance(value[0], int)):
        return [t for v in value for t in _texts(key, v)]
    if key == "trkn":  # MP4 (track, total)
        return [str(value[0])] if isinstance(value, tuple) and value and value[0] else []
    if key == "gnre":  # MP4 ID3v1 genre number, one-based
        from mutagen.id3 import TCON

        names = TCON.GENRES
        return [names[value - 1]] if isinstance(value, int) and 0 < value <= len(names) else []
    if key == "WM/Track" and hasattr(value, "value"):  # zero-based, unlike WM/TrackNumber
        n = _leading_int(str(value.value))
        return [] if n is None else [str(n + 1)]
    genres = getattr(value, "genres", None)  # ID3 TCON: "(17)" and "17" are "Rock"
    if genres is not None:
        return [str(g) for g in genres]
    text = getattr(value, "text", None)  # other ID3 text frames
    if isinstance(text, list):
        return [str(t) for t in text]
    if hasattr(value, "value") and not isinstance(value, (str, bytes)):  # ASF attribute
        value = value.value
    if isinstance(value, bytes):  # MP4 freeform atoms ("----:...") hold UTF-8 text
        return [value.decode("utf-8", "replace")] if key.startswith("----:") else []
    if isinstance(value, str):
        return value.split("\0")  # APEv2 lists are NUL-separated
    try:
        return [str(v) for v in value] if not isinstance(value, (int, float)) else [str(value)]
    except TypeError:
        return [str(value)]


def _first(tags: Any, keys: Iterable[str]) -> str | None:
    for key in keys:
        try:
            value = tags[key]
        except (KeyError, ValueError, TypeError, IndexError):
            continue
        for text in _texts(key, value):
            text = text.strip()
            if text:
                return text
    return None


def _leading_int(text: str | None) -> int | None:
    m = re.match(r"\s*(\d+)", text or "")
    return int(m.group(1)) if m else None


def _bpm(text: str | None) -> float | None:
    """A tempo tag's value ("128", "127.5", "127,50"), or None when empty, zero or implausible."""
    m = re.match(r"\s*(\d+(?:[.,]\d+)?)", text or "")
    if not m:
        return None
    bpm = float(m.group(1).replace(",", "."))
    return bpm if MIN_BPM <= bpm <= MAX_BPM else None


def _key(text: str | None) -> str | None:
    key = find_key(text)
    return key.name if key else None


def _fields(tags: Any) -> dict[str, str | None]:
    return {field: _first(tags, keys) for field, keys in KEYS.items()} if tags else {}


def _soundfile_fields(path: Path) -> dict[str, str | None]:
    """RIFF INFO (WAV) or text chunks (AIFF) through libsndfile."""
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as f:
            meta = f.copy_metadata()
    except Exception:
        return {}
    fields: dict[str, str | None] = {
        k: (meta.get(k) or "").strip() or None for k in ("title", "artist", "album", "genre", "tracknumber")
    }
    fields["year"] = (meta.get("date") or "").strip() or None
    return fields


def read_tags(path: Path | str) -> Tags:
    """Tags of one file; never raises for a bad or untagged file (title = file stem)."""
    path = Path(path)
    return tags_of(path, parse(path))


def parse(path: Path) -> Any:
    """The file's mutagen object (tags and stream info), or None where mutagen cannot read it."""
    try:
        return mutagen.File(path)
    except Exception as exc:  # mutagen raises many types for damaged files
        log.debug("%s: mutagen cannot read it (%s)", path, exc)
        return None


def tags_of(path: Path, f: Any) -> Tags:
    """The tags of ``path`` from its mutagen object ``f`` (from ``parse``; None: unreadable)."""
    fields = _fields(getattr(f, "tags", None))
    kind = type(f).__name__
    if not any(fields.values()) and kind in {"MP3", "TrueAudio"}:  # APEv2 tags on MP3
        from mutagen.apev2 import APEv2

        try:
            fields = _fields(APEv2(path))
        except Exception:
            pass
    if not any(fields.values()) and (kind in {"WAVE", "AIFF"} or path.suffix.lower() in {".wav", ".aif", ".aiff"}):
        fields = _soundfile_fields(path)
    duration = None
    info = getattr(f, "info", None)
    if info is not None and getattr(info, "length", None):
        duration = float(info.length)
    return Tags(
        title=fields.get("title") or path.stem,
        artist=fields.get("artist"),
        album=fields.get("album"),
        albumartist=fields.get("albumartist"),
        genre=fields.get("genre"),
        year=_leading_int(fields.get("year")),
        tracknumber=_leading_int(fields.get("tracknumber")),
        duration=duration,
        bpm=_bpm(fields.get("bpm")),
        key=_key(fields.get("key")),
    )
