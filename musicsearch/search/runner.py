"""Runs a ``SearchRequest`` against an open index, the one path every front end's search takes:

    request -> query vector (prompts with names, or seeds and prompts) -> vector search
    (filters) -> names fused -> variety -> order -> Hits

or, for a path, its two ends -> waypoints (filters, variety) -> Hits. The pieces are the
modules beside this one: prompts.py (prompts and seeds to a vector), names.py (names in
prompts), variety.py (per-artist cap, duplicates, shuffle), paths.py (paths, smooth order);
the vector search itself is ``vectors.query.search_vector``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Protocol

import numpy as np

from ..embed import TextEmbedder
from ..errors import MusicSearchError
from ..hits import Hit
from ..libmap import window_scores as scores
from ..store import Store
from ..vectors import AnyIndex
from ..vectors.query import search_vector
from .names import fuse, named_hits, named_query
from .paths import path_hits, path_ids, smooth_order
from .prompts import Query, resolve_seed, similar_query, text_query
from .request import SearchRequest
from .variety import accepts, reshape


class SearchContext(Protocol):
    """What a search needs of an open index (``context.IndexContext`` is one)."""

    def store(self) -> Store: ...

    def ready(self) -> tuple[Store, TextEmbedder]: ...

    def vector_index(self, kind: str = "tracks") -> AnyIndex: ...

    def embed_file(self, path: Path) -> np.ndarray: ...

    def embed_range(self, path: Path, start: float, end: float) -> np.ndarray: ...


def run(ctx: SearchContext, request: SearchRequest) -> list[Hit]:
    """The hits of ``request``: its ``k`` best tracks (exactly k when k tracks qualify), or
    the steps of its path."""
    if request.path:
        return _path(ctx, request)
    return rank(ctx.store(), ctx.vector_index, query_of(ctx, request), request)


def query_of(ctx: SearchContext, request: SearchRequest) -> Query:
    """The query of a request: seeds and prompts (``similar``), or prompts with their names
    resolved (``names``), or prompts alone. The text model is loaded only when prompts need it."""
    if request.seeds:
        store = ctx.store()
        encoder = ctx.ready()[1] if (request.prompts or request.negatives) else None
        return similar_query(
            store, request.seeds, ctx.embed_file, encoder, request.prompts, request.negatives, ctx.embed_range
        )
    store, encoder = ctx.ready()
    if request.names:
        return named_query(store, encoder, request.prompts, request.negatives, include_named=request.include_named)
    return Query(text_query(encoder, request.prompts, request.negatives))


def rank(store: Store, get_index: Callable[[str], AnyIndex], query: Query, request: SearchRequest) -> list[Hit]:
    """The vector search of ``query`` under the request's filters, fused with the tracks its
    names brought (reciprocal rank fusion, names first), reshaped by the variety and put in the
    request's order. More candidates are fetched until ``k`` hits survive the variety."""
    filters = request.filters if query.allowed is None else request.filters.restricted_to(query.allowed)
    active = filters if filters.active else None
    k, variety = request.k, request.variety
    depth = k * 3 if variety.reshapes else k
    q = np.asarray(query.vector, np.float32)
    named = named_hits(store, q, query.names, active, set(query.exclude)) if query.names else {}
    if request.min_score is not None:
        named = {t: h for t, h in named.items() if h.score >= request.min_score}
    while True:
        found = search_vector(
            store,
            get_index,
            q,
            depth,
            filters=active,
            by=request.by,
            exclude=query.exclude,
            min_score=request.min_score,
        )
        sound = {h.track.id: replace(h, matched=query.matched) for h in found}
        pool = {**sound, **{t: h for t, h in named.items() if t not in sound}}
        for t, h in named.items():
            if t in sound:
                pool[t] = replace(sound[t], matched=h.matched)
        if named:
            ranked = [pool[t] for t in fuse(list(sound), [t for t, _ in query.names if t in named])]
        else:
            ranked = list(sound.values())
        vecs: dict[int, np.ndarray] = {}
        if variety.dedupe:
            ids, arr = store.track_vectors([h.track.id for h in ranked])
            vecs = {int(i): v for i, v in zip(ids, arr)}
        hits = reshape(ranked, k, variety, vecs)
        if len(hits) >= k or len(found) < depth:
            break
        depth *= 4
    return smooth_order(store, hits, request.sound_only) if request.order == "smooth" else hits


def _path(ctx: SearchContext, request: SearchRequest) -> list[Hit]:
    store = ctx.store()
    ends = []
    for seed in request.seeds:
        _, track_id = resolve_seed(store, seed, ctx.embed_file)
        if track_id is None:
            raise MusicSearchError(f"{seed.given!r} is not an indexed track: a path runs between indexed tracks")
        ends.append(track_id)
    active = request.filters if request.filters.active else None
    ids = path_ids(
        store,
        ctx.vector_index,
        ends[0],
        ends[1],
        request.k,
        filters=active,
        accept=accepts(store, request.variety),
        sound_only=request.sound_only,
    )
    return path_hits(store, ids)


def search_vectors(ctx: SearchContext, vectors: object, request: SearchRequest) -> list[list[Hit]]:
    """One hit list per query vector (the request's prompts and seeds unused); no model is loaded."""
    store = ctx.store()
    q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    meta = store.index_meta()
    if q.ndim != 2 or (meta is not None and q.shape[1] != meta.dim) or not np.isfinite(q).all():
        raise MusicSearchError(f"query vectors must be finite and {meta.dim if meta else '?'}-d, not shaped {q.shape}")
    active = request.filters if request.filters.active else None
    return [search_vector(store, ctx.vector_index, v, request.k, filters=active, by=request.by) for v in q]


def window_scores(ctx: SearchContext, track_id: int, request: SearchRequest | None, like: int | None) -> list[dict]:
    """[{start, end, score}] of each window of a track: its cosine to the request's query, or
    to track ``like``'s vector."""
    if like is not None:
        store = ctx.store()
        _, vecs = store.track_vectors([like])
        if not len(vecs):
            raise MusicSearchError(f"no track {like}")
        return scores(store, track_id, vecs[0])
    assert request is not None
    return scores(ctx.store(), track_id, query_of(ctx, request).vector)
