"""Mixes from the vectors: ``getSimilarSongs``/``getSimilarSongs2`` (songs like a song, an
album or an artist), and the OpenSubsonic ``sonicSimilarity`` extension's
``getSonicSimilarTracks`` and ``findSonicPath``, whose ``sonicMatch`` entries carry a
similarity from 0 (opposite) to 1 (the same sound): (1 + cosine) / 2."""

from __future__ import annotations

from ..filters import Filters
from ..hits import Hit
from .catalog import Catalog, Song
from .responses import GENERIC, SubsonicError
from .search import request
from .state import Call, Handler

MAX_SIMILAR = 500
MAX_PATH = 200
MAX_SEEDS = 10  # songs of an album or artist that seed getSimilarSongs


def similarity(cosine: float) -> float:
    return round(max(0.0, min(1.0, (1.0 + float(cosine)) / 2.0)), 6)


def _songs(catalog: Catalog, hits: list[Hit]) -> list[tuple[Song, float]]:
    return [(catalog.songs[h.track.id], float(h.score)) for h in hits if h.track.id in catalog.songs]


def similar_to(call: Call, seeds: list[Song], count: int, catalog: Catalog) -> list[tuple[Song, float]]:
    """The ``count`` songs most like ``seeds`` (which are left out), with their cosines."""
    if count == 0:
        return []
    wanted = request({"like": [s.path for s in seeds[:MAX_SEEDS]], "k": count})
    return _songs(catalog, call.library.run(lambda idx: idx.similar(wanted), []))


def get_similar_songs2(call: Call) -> dict:
    catalog = call.library.catalog()
    seeds = catalog.songs_of(call.params.required("id"))
    count = call.params.number("count", 50, 0, MAX_SIMILAR)
    return {"similarSongs2": {"song": [s.child() for s, _ in similar_to(call, seeds, count, catalog)]}}


def get_similar_songs(call: Call) -> dict:
    return {"similarSongs": get_similar_songs2(call)["similarSongs2"]}


def get_sonic_similar_tracks(call: Call) -> dict:
    catalog = call.library.catalog()
    seed = catalog.song(call.params.required("id"))
    count = call.params.number("count", 10, 0, MAX_SIMILAR)
    found = similar_to(call, [seed], count, catalog)
    return {"sonicMatch": [{"entry": s.child(), "similarity": similarity(c)} for s, c in found]}


def find_sonic_path(call: Call) -> dict:
    """``count`` songs from the start song (first) to the end song (last), each with its
    similarity to the start song."""
    catalog = call.library.catalog()
    start = catalog.song(call.params.required("startSongId"))
    end = catalog.song(call.params.required("endSongId"))
    count = call.params.number("count", 25, 2, MAX_PATH)
    if start.id == end.id:
        raise SubsonicError(GENERIC, "a path needs two different songs")
    path_request = request({"between": [start.path, end.path], "k": count})
    steps = _songs(catalog, call.library.run(lambda idx: idx.search(path_request), []))
    others = [s.id for s, _ in steps if s.id != start.id]
    cosines = {start.id: 1.0}
    if others:
        to_start = request({"like": [start.path], "k": len(others), "filters": Filters(track_ids=others)})
        cosines |= {s.id: c for s, c in _songs(catalog, call.library.run(lambda idx: idx.similar(to_start), []))}
    return {
        "sonicMatch": [
            {"entry": s.child(), "similarity": 1.0 if s.id == start.id else similarity(cosines.get(s.id, -1.0))}
            for s, _ in steps
        ]
    }


HANDLERS: dict[str, Handler] = {
    "getSimilarSongs": get_similar_songs,
    "getSimilarSongs2": get_similar_songs2,
    "getSonicSimilarTracks": get_sonic_similar_tracks,
    "findSonicPath": find_sonic_path,
}
