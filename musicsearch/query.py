"""What ``MusicIndex`` asks of an index: turn what a user gives (prompts, seed tracks or files,
vectors computed elsewhere, two ends of a path) into hits. The query vectors are built in
search.py (prompts, weights, negatives, seeds) and lexical.py (names), ranked in variety.py
(names fused, artists capped, order) and paths.py; this module joins them to an index."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from .classify import Classification, classify_vector
from .context import IndexContext
from .errors import MusicSearchError
from .filters import Filters
from .hits import Hit
from .lexical import named_query
from .search import resolve_seed, similar_query, text_query
from .variety import Variety, accepts, run_search
from .vectors.query import search_vector


def _active(filters: Filters | None, k: int | None = None) -> Filters | None:
    if k is not None and k < 1:
        raise MusicSearchError("k must be at least 1")
    return filters if filters is not None and filters.active else None


def search(
    ctx: IndexContext,
    texts: Sequence[str],
    k: int,
    *,
    negative: Sequence[str],
    filters: Filters | None,
    by: str,
    min_score: float | None,
    lexical: bool,
    include_named: bool,
    variety: Variety | None,
    order: str,
) -> list[Hit]:
    """``MusicIndex.search``: prompts (names in them acting as names unless ``lexical`` is off)
    to hits."""
    store, encoder = ctx.ready()
    active = _active(filters, k)
    if not lexical:
        q = text_query(encoder, texts, negative)
        return run_search(
            store, ctx.vector_index, q, k, filters=active, by=by, min_score=min_score, variety=variety, order=order
        )
    nq = named_query(store, encoder, texts, negative, include_named=include_named)
    return run_search(
        store,
        ctx.vector_index,
        nq.vector,
        k,
        filters=active if nq.allowed is None else (active or Filters()).restricted_to(nq.allowed),
        by=by,
        exclude=nq.exclude,
        min_score=min_score,
        names=nq.names,
        matched=nq.matched,
        variety=variety,
        order=order,
    )


def similar(
    ctx: IndexContext,
    seeds: Sequence[str | Path],
    k: int,
    *,
    text: Sequence[str],
    negative: Sequence[str],
    filters: Filters | None,
    by: str,
    min_score: float | None,
    variety: Variety | None,
    order: str,
) -> list[Hit]:
    """``MusicIndex.similar``: seed tracks or files, with prompts mixed in, to hits (the seed
    tracks left out)."""
    store = ctx.store()
    encoder = ctx.ready()[1] if (text or negative) else None
    q, exclude = similar_query(store, seeds, ctx.embed_file, encoder, text, negative, embed_range=ctx.embed_range)
    active = _active(filters, k)
    return run_search(
        store,
        ctx.vector_index,
        q,
        k,
        filters=active,
        by=by,
        exclude=exclude,
        min_score=min_score,
        variety=variety,
        order=order,
    )


def search_vectors(ctx: IndexContext, vectors: object, k: int, filters: Filters | None, by: str) -> list[list[Hit]]:
    """``MusicIndex.search_vectors``: one hit list per query vector; no model is loaded."""
    store = ctx.store()
    q = np.atleast_2d(np.asarray(vectors, dtype=np.float32))
    meta = store.index_meta()
    if q.ndim != 2 or (meta is not None and q.shape[1] != meta.dim) or not np.isfinite(q).all():
        raise MusicSearchError(f"query vectors must be finite and {meta.dim if meta else '?'}-d, not shaped {q.shape}")
    active = _active(filters, k)
    return [search_vector(store, ctx.vector_index, v, k, filters=active, by=by) for v in q]


def path_between(
    ctx: IndexContext, start: str | Path, end: str | Path, n: int, filters: Filters | None, variety: Variety | None
) -> list[Hit]:
    """``MusicIndex.path_between``: ``n`` tracks from one indexed track to another
    (musicsearch/paths.py), with the filters and ``variety`` honoured."""
    from .paths import path_hits, path_ids

    store = ctx.store()
    ends = []
    for target in (start, end):
        _, track_id = resolve_seed(store, target, ctx.embed_file)
        if track_id is None:
            raise MusicSearchError(f"{str(target)!r} is not an indexed track: a path runs between indexed tracks")
        ends.append(track_id)
    variety = variety or Variety()
    active = variety.applied_to(filters)
    ids = path_ids(store, ctx.vector_index, ends[0], ends[1], n, filters=active, accept=accepts(store, variety))
    return path_hits(store, ids)


def classify(ctx: IndexContext, target: str | Path, labels: str | Sequence[str], template: str) -> Classification:
    """``MusicIndex.classify``: an indexed track's stored vector or an audio file's, against
    ``labels``."""
    store, encoder = ctx.ready()
    vec, _ = resolve_seed(store, target, ctx.embed_file)
    return classify_vector(encoder, vec, labels, template)


def window_scores(
    ctx: IndexContext, track_id: int, text: str | None, negative: Sequence[str], like: int | None, lexical: bool
) -> list[dict]:
    """``MusicIndex.window_scores``: each window's cosine to a text query or to the track
    ``like``'s vector."""
    from .libmap import window_scores as scores

    if like is not None:
        store = ctx.store()
        _, vecs = store.track_vectors([like])
        if not len(vecs):
            raise MusicSearchError(f"no track {like}")
        return scores(store, track_id, vecs[0])
    store, encoder = ctx.ready()
    prompt = [text or ""]
    q = named_query(store, encoder, prompt, negative).vector if lexical else text_query(encoder, prompt, negative)
    return scores(store, track_id, q)
