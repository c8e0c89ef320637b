"""Prompts and seeds -> one query vector (the vector search itself is ``vectors.query``)."""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from .embed import TextEmbedder
from .errors import MusicSearchError
from .store import Store

NEGATIVE_WEIGHT = 0.5  # default weight of a --not prompt


def parse_prompt(text: str, default_weight: float = 1.0) -> tuple[str, float]:
    """``"warm pads::2"`` -> ("warm pads", 2.0); no ``::weight`` suffix -> default weight.

    Raises:
        MusicSearchError: empty prompt, a weight that is not a number (``"pads::x"``), or
            text that is not valid Unicode (e.g. invalid UTF-8 on the command line).
    """
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise MusicSearchError(f"the prompt {text!r} is not valid text (invalid UTF-8?)") from None
    prompt, sep, tail = text.rpartition("::")
    if not sep:
        prompt, weight = text, default_weight
    else:
        try:
            weight = float(tail)
        except ValueError:
            raise MusicSearchError(f"the weight after '::' in {text!r} must be a number, e.g. 'warm pads::2'") from None
        if weight != weight or weight in (float("inf"), float("-inf")):
            raise MusicSearchError(f"the weight after '::' in {text!r} must be a finite number")
    prompt = prompt.strip()
    if not prompt:
        raise MusicSearchError("empty query")
    return prompt, weight


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


def prompt_vectors(
    encoder: TextEmbedder, texts: Sequence[str], default_weight: float
) -> list[tuple[np.ndarray, float]]:
    """Each prompt's vector with its weight (``"text::w"``, else ``default_weight``)."""
    parsed = [parse_prompt(t, default_weight) for t in texts]
    if not parsed:
        return []
    vecs = encoder.embed_texts([p for p, _ in parsed])
    return [(v, w) for v, (_, w) in zip(vecs, parsed)]


def text_query(encoder: TextEmbedder, texts: Sequence[str], negative: Sequence[str] = ()) -> np.ndarray:
    """The query vector of prompts (summed by weight) minus ``negative`` ones."""
    if not texts or not all(t and t.strip() for t in texts):
        raise MusicSearchError("empty query")
    return combine(prompt_vectors(encoder, texts, 1.0), prompt_vectors(encoder, negative, NEGATIVE_WEIGHT))


EmbedFile = Callable[[Path], np.ndarray]


EmbedRange = Callable[[Path, float, float], np.ndarray]
_MOMENT = re.compile(r"(.+)@([\d:.]+)-([\d:.]+)")


def _moment_seed(
    store: Store, target: str, embed_file: EmbedFile, embed_range: EmbedRange | None
) -> tuple[np.ndarray, int | None] | None:
    """``"track@1:20-1:40"``: the normalized mean of the windows overlapping that time range
    (stored ones for an indexed track, ``embed_range`` for a file outside the index); None
    when ``target`` is not of that form."""
    from .filters import parse_duration

    m = _MOMENT.fullmatch(target)
    if m is None or Path(target).expanduser().is_file():
        return None
    start, end = parse_duration(m.group(2)), parse_duration(m.group(3))
    assert start is not None and end is not None
    if end <= start:
        raise MusicSearchError(f"bad time range in {target!r}: the end must come after the start")
    _, track_id = resolve_seed(store, m.group(1), lambda p: np.zeros(0, np.float32))
    if track_id is None:
        if embed_range is None:
            raise MusicSearchError(f"a time range on a file outside the index is not supported here: {target!r}")
        return embed_range(Path(m.group(1)).expanduser(), start, end), None
    starts, ends, vecs = store.window_vectors([track_id])[track_id]
    keep = (starts < end) & (ends > start)
    if not keep.any():
        last = float(ends.max()) if len(ends) else 0.0
        raise MusicSearchError(f"{target!r}: the track is only {last:.0f} s long")
    mean = vecs[keep].astype(np.float64).mean(axis=0)
    return (mean / max(float(np.linalg.norm(mean)), 1e-12)).astype(np.float32), track_id


def resolve_seed(
    store: Store, target: str | Path, embed_file: EmbedFile, embed_range: EmbedRange | None = None
) -> tuple[np.ndarray, int | None]:
    """A seed's vector, and its track id when it is an indexed track: a path (indexed or
    not; a file outside the index goes through ``embed_file``), or a unique part of an
    indexed track's path or title; ``"that@1:20-1:40"`` seeds from that moment only."""
    moment = _moment_seed(store, str(target), embed_file, embed_range)
    if moment is not None:
        return moment
    path = Path(target).expanduser()
    if path.is_file():
        found = store.find_tracks(str(path.absolute()))
        if found and found[0].path == str(path.absolute()):
            return store.track_vectors([found[0].id])[1][0], found[0].id
        return embed_file(path), None  # DecodeError: path and reason
    found = store.find_tracks(str(target))
    if not found:
        raise MusicSearchError(f"no indexed track matches {str(target)!r}, and no such file")
    if len(found) > 1:
        names = "; ".join(t.path for t in found[:3])
        more = "; ..." if len(found) > 3 else ""
        raise MusicSearchError(f"{str(target)!r} matches several tracks ({names}{more}); be more specific")
    return store.track_vectors([found[0].id])[1][0], found[0].id


def similar_query(
    store: Store,
    seeds: Sequence[str | Path],
    embed_file: EmbedFile,
    encoder: TextEmbedder | None,
    text: Sequence[str] = (),
    negative: Sequence[str] = (),
    embed_range: EmbedRange | None = None,
) -> tuple[np.ndarray, list[int]]:
    """The query vector of seed tracks or files plus prompts, and the seed track ids (to
    leave out of the hits)."""
    if not seeds:
        raise MusicSearchError("give a track or an audio file to start from")
    vectors, exclude = [], []
    for target in seeds:
        vec, track_id = resolve_seed(store, target, embed_file, embed_range)
        vectors.append((vec, 1.0))
        if track_id is not None:
            exclude.append(track_id)
    positive, minus = list(vectors), []
    if encoder is not None:
        positive += prompt_vectors(encoder, text, 1.0)
        minus = prompt_vectors(encoder, negative, NEGATIVE_WEIGHT)
    return combine(positive, minus), exclude
