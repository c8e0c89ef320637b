"""The index as a Subsonic library: songs (an indexed track each, its id the track id, which
an index run keeps when a file is moved or re-embedded), albums and artists grouped from the
tags as Navidrome groups them (an album is its album artist, or else its artist, with its album
name), with ids derived from those names so that they too stay the same across index runs."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

from ..library import AUDIO_TYPES
from .responses import NOT_FOUND, SubsonicError

UNKNOWN_ARTIST = "[Unknown Artist]"
UNKNOWN_ALBUM = "[Unknown Album]"
ARTICLES = ("The", "El", "La", "Los", "Las", "Le", "Les")  # ignored when artists are indexed by letter


def name_id(prefix: str, *names: str) -> str:
    """A short id from names, the same for the same names whatever their case."""
    digest = hashlib.blake2b("\x1f".join(n.casefold() for n in names).encode("utf-8"), digest_size=8)
    return f"{prefix}-{digest.hexdigest()}"


def sort_key(name: str) -> str:
    """``The Beatles`` sorts as ``beatles``."""
    first, _, rest = name.partition(" ")
    return (rest if rest and first in ARTICLES else name).casefold()


@dataclass(frozen=True)
class Song:
    id: int
    path: str
    size: int
    title: str
    artist: str
    album: str
    album_artist: str
    genre: str | None
    year: int | None
    track: int | None
    duration: float | None
    created: str | None
    album_id: str
    artist_id: str
    bpm: int | None = None  # tagged or estimated at indexing, whole beats per minute

    def child(self) -> dict:
        """The song as the protocol's ``Child``."""
        suffix = Path(self.path).suffix.lstrip(".").lower()
        out: dict = {
            "id": str(self.id),
            "parent": self.album_id,
            "isDir": False,
            "title": self.title,
            "album": self.album,
            "artist": self.artist,
            "track": self.track,
            "year": self.year,
            "genre": self.genre,
            "coverArt": self.album_id,
            "size": self.size,
            "contentType": AUDIO_TYPES.get("." + suffix, "application/octet-stream"),
            "suffix": suffix,
            "duration": int(round(self.duration)) if self.duration else 0,
            "bpm": self.bpm,
            # where the file sits for the client (artist/album/file), never the server's own path
            "path": f"{self.album_artist}/{self.album}/{os.path.basename(self.path)}",
            "isVideo": False,
            "created": self.created,
            "albumId": self.album_id,
            "artistId": self.artist_id,
            "type": "music",
            "mediaType": "song",
            "displayArtist": self.artist,
            "displayAlbumArtist": self.album_artist,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Album:
    id: str
    name: str
    artist: str
    artist_id: str
    songs: list[Song] = field(default_factory=list)

    @property
    def year(self) -> int | None:
        return next((s.year for s in self.songs if s.year), None)

    @property
    def genre(self) -> str | None:
        return next((s.genre for s in self.songs if s.genre), None)

    @property
    def created(self) -> str | None:
        return min((s.created for s in self.songs if s.created), default=None)

    def entry(self) -> dict:
        """The album as the protocol's ``AlbumID3``."""
        out = {
            "id": self.id,
            "name": self.name,
            "artist": self.artist,
            "artistId": self.artist_id,
            "coverArt": self.id,
            "songCount": len(self.songs),
            "duration": int(round(sum(s.duration or 0 for s in self.songs))),
            "created": self.created,
            "year": self.year,
            "genre": self.genre,
        }
        return {k: v for k, v in out.items() if v is not None}


@dataclass
class Artist:
    id: str
    name: str
    albums: list[Album] = field(default_factory=list)

    def entry(self) -> dict:
        """The artist as the protocol's ``ArtistID3``."""
        cover = self.albums[0].id if self.albums else None
        out = {"id": self.id, "name": self.name, "albumCount": len(self.albums), "coverArt": cover}
        return {k: v for k, v in out.items() if v is not None}


def _created(indexed_at: str | None) -> str | None:
    """``indexed_at`` (ISO, UTC) as the protocol's dates: ``2024-05-01T10:00:00Z``."""
    if not indexed_at:
        return None
    try:
        moment = datetime.fromisoformat(indexed_at).astimezone(timezone.utc)
    except ValueError:
        return None
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _text(value: object) -> str | None:
    return str(value).strip() or None if value is not None else None


def _whole(value: object) -> int | None:
    try:
        return int(value) if value is not None and value != "" else None  # type: ignore[call-overload]
    except (TypeError, ValueError):
        return None


class Catalog:
    """Songs, albums and artists of one state of the index (build it from ``MusicIndex.catalog``'s rows)."""

    def __init__(self, rows: list[tuple]) -> None:
        self.songs: dict[int, Song] = {}
        self.albums: dict[str, Album] = {}
        self.artists: dict[str, Artist] = {}
        for row in rows:
            self._add(row)
        for album in self.albums.values():
            album.songs.sort(key=lambda s: (s.track or 0, s.title.casefold(), s.id))
        for artist in self.artists.values():
            artist.albums.sort(key=lambda a: (a.year or 0, a.name.casefold()))

    def _artist(self, name: str) -> Artist:
        artist_id = name_id("ar", name)
        if artist_id not in self.artists:
            self.artists[artist_id] = Artist(artist_id, name)
        return self.artists[artist_id]

    def _add(self, row: tuple) -> None:
        track_id, path, size, title, artist, album, albumartist, genre, year, tracknumber, duration, indexed, bpm = row
        artist_name = _text(artist) or _text(albumartist) or UNKNOWN_ARTIST
        album_artist_name = _text(albumartist) or artist_name
        album_name = _text(album) or UNKNOWN_ALBUM
        album_id = name_id("al", album_artist_name, album_name)
        if album_id not in self.albums:
            owner = self._artist(album_artist_name)
            self.albums[album_id] = Album(album_id, album_name, album_artist_name, owner.id)
            owner.albums.append(self.albums[album_id])
        performer = self._artist(artist_name)
        if self.albums[album_id] not in performer.albums:  # the albums a track artist appears on
            performer.albums.append(self.albums[album_id])
        song = Song(
            id=int(track_id),
            path=str(path),
            size=int(size or 0),
            title=_text(title) or Path(str(path)).stem,
            artist=artist_name,
            album=album_name,
            album_artist=album_artist_name,
            genre=_text(genre),
            year=_whole(year),
            track=_whole(tracknumber),
            duration=float(duration) if isinstance(duration, (int, float)) else None,
            created=_created(indexed),
            album_id=album_id,
            artist_id=performer.id,
            bpm=int(round(bpm)) if isinstance(bpm, (int, float)) and bpm > 0 else None,
        )
        self.songs[song.id] = song
        self.albums[album_id].songs.append(song)

    def song(self, raw: str) -> Song:
        """The song of id ``raw``, or error 70."""
        text = raw.strip()
        if text.isascii() and text.isdigit() and len(text) <= 18 and int(text) in self.songs:
            return self.songs[int(text)]
        raise SubsonicError(NOT_FOUND, f"song not found: {raw[:40]}")

    def album(self, raw: str) -> Album:
        if raw in self.albums:
            return self.albums[raw]
        raise SubsonicError(NOT_FOUND, f"album not found: {raw[:40]}")

    def artist(self, raw: str) -> Artist:
        if raw in self.artists:
            return self.artists[raw]
        raise SubsonicError(NOT_FOUND, f"artist not found: {raw[:40]}")

    def songs_of(self, raw: str) -> list[Song]:
        """The songs an id stands for: a song, an album's songs or an artist's (error 70 otherwise)."""
        if raw in self.albums:
            return list(self.albums[raw].songs)
        if raw in self.artists:
            return [s for a in self.artists[raw].albums for s in a.songs if s.artist_id == raw or a.artist_id == raw]
        return [self.song(raw)]

    def genres(self) -> list[dict]:
        """Each genre with its song and album counts, by name."""
        songs: dict[str, int] = {}
        albums: dict[str, set[str]] = {}
        for s in self.songs.values():
            if s.genre:
                songs[s.genre] = songs.get(s.genre, 0) + 1
                albums.setdefault(s.genre, set()).add(s.album_id)
        return [
            {"songCount": songs[g], "albumCount": len(albums[g]), "value": g} for g in sorted(songs, key=str.casefold)
        ]
