"""Prompts and seeds -> one query vector: weighted prompts summed, negatives subtracted, seed
tracks, files and moments averaged in (the vector search itself is ``vectors.query``)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..embed import TextEmbedder
from ..errors import MusicSearchError
from ..store import Store, Track
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


def _clock(seconds: float) -> str:
    """``262`` -> ``"4:22"``."""
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def _covers(starts: np.ndarray, ends: np.ndarray, start: float, end: float) -> bool:
    """Whether the windows ``starts``..``ends`` together cover ``start``..``end`` (s)."""
    at = start
    for a, b in sorted(zip(starts.tolist(), ends.tolist())):
        if a > at + 1e-3:
            break
        at = max(at, b)
    return at >= end - 1e-3


def _moment_vector(store: Store, seed: Seed, embed_range: EmbedRange | None) -> tuple[np.ndarray, int | None]:
    """A moment seed (``"track@1:20-1:40"``): the normalized mean of the windows overlapping
    that time range. An indexed track's stored windows serve where they cover the range;
    elsewhere (an index keeping a few windows per track) and for a file outside the index,
    ``embed_range`` decodes and embeds that range from the file."""
    assert seed.start is not None and seed.end is not None
    track = _indexed_track(store, seed.target)
    if track is None:
        if embed_range is None:
            raise MusicSearchError(f"a time range on a file outside the index is not supported here: {seed.given!r}")
        return embed_range(Path(seed.target).expanduser(), seed.start, seed.end), None
    starts, ends, vecs = store.window_vectors([track.id])[track.id]
    length = track.duration if track.duration is not None else float(ends.max())
    if len(starts) == 1 and starts[0] > 0:  # one window mid-track: the file tells the length
        length = float("inf")
    if seed.start >= length:
        raise MusicSearchError(f"{seed.given!r}: the track is only {length:.0f} s long ({_clock(length)})")
    keep = (starts < seed.end) & (ends > seed.start)
    if not keep.any() or not _covers(starts[keep], ends[keep], seed.start, min(seed.end, length)):
        if embed_range is None:
            raise MusicSearchError(f"{seed.given!r}: the index keeps no window of that time range")
        return embed_range(Path(track.path), seed.start, seed.end), track.id
    mean = vecs[keep].astype(np.float64).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), track.id


def _indexed_track(store: Store, target: str) -> Track | None:
    """The indexed track a seed names: a path (None for a file outside the index), or a
    unique part of an indexed track's path or title."""
    path = Path(target).expanduser()
    if path.is_file():
        found = store.find_tracks(str(path.absolute()))
        return found[0] if found and found[0].path == str(path.absolute()) else None
    found = store.find_tracks(target)
    if not found:
        raise MusicSearchError(f"no indexed track matches {target!r}, and no such file")
    if len(found) > 1:
        names = "; ".join(t.path for t in found[:3])
        more = "; ..." if len(found) > 3 else ""
        raise MusicSearchError(f"{target!r} matches several tracks ({names}{more}); be more specific")
    return found[0]


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
    track = _indexed_track(store, seed.target)
    if track is None:
        return embed_file(Path(seed.target).expanduser()), None  # DecodeError: path and reason
    return store.track_vectors([track.id])[1][0], track.id


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
