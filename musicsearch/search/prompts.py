"""Prompts and seeds -> one query vector: weighted prompts summed, negatives subtracted, seed
tracks, files and moments averaged in (the vector search itself is ``vectors.query``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embed import TextEmbedder
from ..errors import MusicSearchError
from ..store import Store
from .request import Prompt, Seed, parse_seed

EmbedFile = Callable[[Path], np.ndarray]
EmbedRange = Callable[[Path, float, float], np.ndarray]


@dataclass(frozen=True)
class Query:
    """A query vector and what came with it: the tracks named by whole prompts ((track id,
    field), best first, names.py), the only tracks allowed ("by X"/"from X"; None: any), the
    tracks to leave out (seeds, "like X"'s own), and why its sound-ranked hits matched."""

    vector: np.ndarray
    names: tuple[tuple[int, str], ...] = ()
    allowed: tuple[int, ...] | None = None
    exclude: tuple[int, ...] = ()
    matched: str = "sound"


def combine(
    positive: Sequence[tuple[np.ndarray, float]], negative: Sequence[tuple[np.ndarray, float]] = ()
) -> np.ndarray:
    """Unit vector along ``sum(w * p) - sum(w * n)``."""
    if not positive:
        raise MusicSearchError("a query needs at least one prompt or seed track")
    q = np.zeros(len(positive[0][0]), np.float64)
    for v, w in positive:
        q = q + w * v.astype(np.float64)
    for v, w in negative:
        q = q - w * v.astype(np.float64)
    norm = float(np.linalg.norm(q))
    if norm < 1e-9:
        raise MusicSearchError("the prompts cancel each other out")
    return (q / norm).astype(np.float32)


def prompt_vectors(encoder: TextEmbedder, prompts: Sequence[Prompt]) -> list[tuple[np.ndarray, float]]:
    """Each prompt's vector with its weight."""
    if not prompts:
        return []
    vecs = encoder.embed_texts([p.text for p in prompts])
    return [(v, p.weight) for v, p in zip(vecs, prompts)]


def text_query(encoder: TextEmbedder, prompts: Sequence[Prompt], negatives: Sequence[Prompt] = ()) -> np.ndarray:
    """The query vector of prompts (summed by weight) minus ``negatives``."""
    if not prompts:
        raise MusicSearchError("empty query")
    return combine(prompt_vectors(encoder, prompts), prompt_vectors(encoder, negatives))


def _moment_vector(store: Store, seed: Seed, embed_range: EmbedRange | None) -> tuple[np.ndarray, int | None]:
    """A moment seed (``"track@1:20-1:40"``): the normalized mean of the windows overlapping
    that time range (stored ones for an indexed track, ``embed_range`` for a file outside the
    index)."""
    assert seed.start is not None and seed.end is not None
    _, track_id = resolve_seed(store, Seed(seed.target, seed.target), lambda p: np.zeros(0, np.float32))
    if track_id is None:
        if embed_range is None:
            raise MusicSearchError(f"a time range on a file outside the index is not supported here: {seed.given!r}")
        return embed_range(Path(seed.target).expanduser(), seed.start, seed.end), None
    starts, ends, vecs = store.window_vectors([track_id])[track_id]
    keep = (starts < seed.end) & (ends > seed.start)
    if not keep.any():
        last = float(ends.max()) if len(ends) else 0.0
        raise MusicSearchError(f"{seed.given!r}: the track is only {last:.0f} s long")
    mean = vecs[keep].astype(np.float64).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), track_id


def resolve_seed(
    store: Store, seed: Seed | str | Path, embed_file: EmbedFile, embed_range: EmbedRange | None = None
) -> tuple[np.ndarray, int | None]:
    """A seed's vector, and its track id when it is an indexed track: a path (indexed or
    not; a file outside the index goes through ``embed_file``), or a unique part of an
    indexed track's path or title; a moment seeds from that time range only."""
    if not isinstance(seed, Seed):
        seed = parse_seed(seed)
    if seed.start is not None:
        return _moment_vector(store, seed, embed_range)
    target = seed.target
    path = Path(target).expanduser()
    if path.is_file():
        found = store.find_tracks(str(path.absolute()))
        if found and found[0].path == str(path.absolute()):
            return store.track_vectors([found[0].id])[1][0], found[0].id
        return embed_file(path), None  # DecodeError: path and reason
    found = store.find_tracks(target)
    if not found:
        raise MusicSearchError(f"no indexed track matches {target!r}, and no such file")
    if len(found) > 1:
        names = "; ".join(t.path for t in found[:3])
        more = "; ..." if len(found) > 3 else ""
        raise MusicSearchError(f"{target!r} matches several tracks ({names}{more}); be more specific")
    return store.track_vectors([found[0].id])[1][0], found[0].id


def similar_query(
    store: Store,
    seeds: Sequence[Seed],
    embed_file: EmbedFile,
    encoder: TextEmbedder | None,
    prompts: Sequence[Prompt] = (),
    negatives: Sequence[Prompt] = (),
    embed_range: EmbedRange | None = None,
) -> Query:
    """The query of seed tracks, files or moments plus prompts; the seed tracks are left out
    of its hits."""
    if not seeds:
        raise MusicSearchError("give a track or an audio file to start from")
    vectors, exclude = [], []
    for seed in seeds:
        vec, track_id = resolve_seed(store, seed, embed_file, embed_range)
        vectors.append((vec, 1.0))
        if track_id is not None:
            exclude.append(track_id)
    positive, minus = list(vectors), []
    if encoder is not None:
        positive += prompt_vectors(encoder, prompts)
        minus = prompt_vectors(encoder, negatives)
    return Query(combine(positive, minus), exclude=tuple(exclude))
