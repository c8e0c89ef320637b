"""Browsing by tags: system calls (ping, licence, extensions), the one music folder, artists
by letter, an artist's albums, an album's songs, a song, album lists, random songs, genres."""

from __future__ import annotations

import random

from .catalog import Album, Song, sort_key
from .params import Params
from .responses import GENERIC, SubsonicError
from .state import Call, Handler

FOLDER = {"id": 1, "name": "Music"}
MAX_LIST = 500  # albums or songs in one list
EXTENSIONS = [
    {"name": "apiKeyAuthentication", "versions": [1]},
    {"name": "formPost", "versions": [1]},
    {"name": "sonicSimilarity", "versions": [1]},
]
ALBUM_LISTS = (
    "random",
    "newest",
    "recent",
    "frequent",
    "highest",
    "starred",
    "alphabeticalByName",
    "alphabeticalByArtist",
    "byYear",
    "byGenre",
)


def ping(call: Call) -> dict:
    return {}


def get_license(call: Call) -> dict:
    return {"license": {"valid": True}}


def get_extensions(call: Call) -> dict:
    return {"openSubsonicExtensions": EXTENSIONS}


def get_music_folders(call: Call) -> dict:
    return {"musicFolders": {"musicFolder": [FOLDER]}}


def get_artists(call: Call) -> dict:
    catalog = call.library.catalog()
    groups: dict[str, list[dict]] = {}
    for artist in sorted(catalog.artists.values(), key=lambda a: sort_key(a.name)):
        first = sort_key(artist.name)[:1].upper()
        groups.setdefault(first if first.isalpha() else "#", []).append(artist.entry())
    index = [{"name": letter, "artist": groups[letter]} for letter in sorted(groups)]
    return {"artists": {"ignoredArticles": "The El La Los Las Le Les", "index": index}}


def get_artist(call: Call) -> dict:
    artist = call.library.catalog().artist(call.params.required("id"))
    return {"artist": {**artist.entry(), "album": [a.entry() for a in artist.albums]}}


def get_album(call: Call) -> dict:
    album = call.library.catalog().album(call.params.required("id"))
    return {"album": {**album.entry(), "song": [s.child() for s in album.songs]}}


def get_song(call: Call) -> dict:
    return {"song": call.library.catalog().song(call.params.required("id")).child()}


def get_genres(call: Call) -> dict:
    return {"genres": {"genre": call.library.catalog().genres()}}


def _years(params: Params) -> tuple[int, int]:
    return params.number("fromYear", 0, 0, 9999), params.number("toYear", 9999, 0, 9999)


def album_list(kind: str, albums: list[Album], params: Params) -> list[Album]:
    """The albums of an ``getAlbumList2`` of type ``kind``, in its order. Nothing here counts
    plays or stars: ``frequent``, ``recent`` and ``highest`` list the newest albums, ``starred``
    none."""
    if kind == "random":
        return random.sample(albums, len(albums))
    if kind in ("newest", "recent", "frequent", "highest"):
        return sorted(albums, key=lambda a: (a.created or "", a.id), reverse=True)
    if kind == "starred":
        return []
    if kind == "alphabeticalByName":
        return sorted(albums, key=lambda a: (sort_key(a.name), sort_key(a.artist)))
    if kind == "alphabeticalByArtist":
        return sorted(albums, key=lambda a: (sort_key(a.artist), a.year or 0, sort_key(a.name)))
    if kind == "byYear":
        low, high = _years(params)
        chosen = [a for a in albums if a.year is not None and min(low, high) <= a.year <= max(low, high)]
        return sorted(chosen, key=lambda a: (a.year or 0, sort_key(a.name)), reverse=low > high)
    genre = params.required("genre")
    return sorted((a for a in albums if (a.genre or "").casefold() == genre.casefold()), key=lambda a: sort_key(a.name))


def get_album_list2(call: Call) -> dict:
    kind = call.params.required("type")
    if kind not in ALBUM_LISTS:
        raise SubsonicError(GENERIC, f"unknown album list type {kind[:40]!r}")
    size = call.params.number("size", 10, 0, MAX_LIST)
    offset = call.params.number("offset", 0, 0, 10**9)
    albums = album_list(kind, list(call.library.catalog().albums.values()), call.params)
    return {"albumList2": {"album": [a.entry() for a in albums[offset : offset + size]]}}


def get_random_songs(call: Call) -> dict:
    size = call.params.number("size", 10, 0, MAX_LIST)
    genre = call.params.text("genre")
    low, high = _years(call.params)

    def wanted(s: Song) -> bool:
        if genre and (s.genre or "").casefold() != genre.casefold():
            return False
        return not ("fromYear" in call.params or "toYear" in call.params) or (
            s.year is not None and low <= s.year <= high
        )

    songs = [s for s in call.library.catalog().songs.values() if wanted(s)]
    return {"randomSongs": {"song": [s.child() for s in random.sample(songs, min(size, len(songs)))]}}


def get_songs_by_genre(call: Call) -> dict:
    genre = call.params.required("genre")
    count = call.params.number("count", 10, 0, MAX_LIST)
    offset = call.params.number("offset", 0, 0, 10**9)
    songs = [s for s in call.library.catalog().songs.values() if (s.genre or "").casefold() == genre.casefold()]
    return {"songsByGenre": {"song": [s.child() for s in songs[offset : offset + count]]}}


HANDLERS: dict[str, Handler] = {
    "ping": ping,
    "getLicense": get_license,
    "getOpenSubsonicExtensions": get_extensions,
    "getMusicFolders": get_music_folders,
    "getArtists": get_artists,
    "getArtist": get_artist,
    "getAlbum": get_album,
    "getSong": get_song,
    "getGenres": get_genres,
    "getAlbumList2": get_album_list2,
    "getRandomSongs": get_random_songs,
    "getSongsByGenre": get_songs_by_genre,
}
