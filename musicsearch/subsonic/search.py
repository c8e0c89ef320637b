"""``search3``: the query string is searched as ``musicsearch query`` searches it (one
``SearchRequest`` from the parser every front end uses, run by the one runner: names and sound
together), so "rainy night jazz" typed in any Subsonic app finds songs that sound like it; the
artists and albums are those whose names hold every word. An empty query (``""``) lists the
whole library page by page, which is how several apps copy a library for offline use."""

from __future__ import annotations

from collections.abc import Mapping

from ..errors import MusicSearchError
from ..hits import Hit
from ..search.request import SearchRequest, parse_request
from .catalog import Catalog, Song, sort_key
from .params import Params
from .responses import GENERIC, SubsonicError
from .state import Call, Handler

MAX_QUERY = 500  # characters, as the HTTP API's q
MAX_PAGE = 5000  # songs, albums or artists in one page of the library
MAX_RANKED = 500  # songs ranked for one text query (offset + count)


def request(fields: Mapping[str, object]) -> SearchRequest:
    """``parse_request`` with its refusal as error 0."""
    try:
        return parse_request(fields)
    except MusicSearchError as exc:
        raise SubsonicError(GENERIC, str(exc)) from None


def page(params: Params, what: str) -> tuple[int, int]:
    """(count, offset) of ``songCount``/``songOffset`` and the like (20 and 0 by default)."""
    return params.number(f"{what}Count", 20, 0, MAX_PAGE), params.number(f"{what}Offset", 0, 0, 10**9)


def has_words(query: str, *names: str) -> bool:
    words = query.casefold().split()
    text = " ".join(names).casefold()
    return bool(words) and all(w in text for w in words)


def ranked_songs(call: Call, catalog: Catalog, query: str, count: int, offset: int) -> list[Song]:
    """The songs a text query finds, best first, the page asked for (within ``MAX_RANKED``)."""
    k = min(offset + count, MAX_RANKED)
    if count == 0 or k <= offset:
        return []
    wanted = request({"q": query, "k": k})
    hits: list[Hit] = call.library.run(lambda idx: idx.search(wanted), [])
    songs = [catalog.songs[h.track.id] for h in hits if h.track.id in catalog.songs]
    return songs[offset:k]


def search3(call: Call) -> dict:
    query = (call.params.text("query") or "").strip().strip("*").strip()
    if query in ('""', "''"):
        query = ""
    if len(query) > MAX_QUERY:
        raise SubsonicError(GENERIC, f"query: at most {MAX_QUERY} characters")
    (songs_n, songs_at), (albums_n, albums_at), (artists_n, artists_at) = (
        page(call.params, w) for w in ("song", "album", "artist")
    )
    catalog = call.library.catalog()
    albums = sorted(catalog.albums.values(), key=lambda a: (sort_key(a.name), sort_key(a.artist)))
    artists = sorted(catalog.artists.values(), key=lambda a: sort_key(a.name))
    if query:
        albums = [a for a in albums if has_words(query, a.name, a.artist)]
        artists = [a for a in artists if has_words(query, a.name)]
        songs = ranked_songs(call, catalog, query, songs_n, songs_at)
    else:
        songs = list(catalog.songs.values())[songs_at : songs_at + songs_n]
    return {
        "searchResult3": {
            "artist": [a.entry() for a in artists[artists_at : artists_at + artists_n]],
            "album": [a.entry() for a in albums[albums_at : albums_at + albums_n]],
            "song": [s.child() for s in songs],
        }
    }


HANDLERS: dict[str, Handler] = {"search3": search3}
