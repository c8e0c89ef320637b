"""Variety and exclusions on top of a ranking, and the search runner that applies them
together with names (lexical.py) and smooth order (paths.py).

- ``max_per_artist``: at most N hits by one artist (artist, else album artist).
- ``dedupe``: the same song counts once: a hit whose vector has cosine >= 0.995 with a hit
  kept before it, or whose artist and title equal a kept one's once "(live)", "[remastered]",
  "- 2011 Remaster" and the like are stripped.
- ``exclude_artists`` / ``exclude_genres`` (case-insensitive substrings) and ``exclude_paths``
  (globs on the absolute path) join the filters (``Variety.applied_to``) and run inside the
  vector search.
- ``variation`` (0..1) with ``seed``: a repeatable shuffle among close hits: each hit's score
  gets up to ``variation`` times the spread of the candidate scores added at random.

The runner fetches more candidates until k hits survive (or the library runs out), so k
hits come back whenever k tracks qualify.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from . import vectors
from .errors import MusicSearchError
from .filters import Filters, texts
from .hits import Hit, Segment
from .store import Store
from .vectors.query import best_segments, search_vector

DUPLICATE_COSINE = 0.995
_VERSION_WORDS = (
    r"live|remaster(?:ed)?|\d{4} remaster(?:ed)?|remix(?:ed)?|radio edit|edit|single version|album version|"
    r"mono|stereo|demo|acoustic|extended|original mix|bonus track|deluxe|version|re-?recorded|explicit|clean"
)
_BRACKETED = re.compile(r"\s*[\(\[][^\)\]]*(?:" + _VERSION_WORDS + r")[^\)\]]*[\)\]]", re.IGNORECASE)
_DASHED = re.compile(r"\s+[-–—]\s+[^-–—]*(?:" + _VERSION_WORDS + r")[^-–—]*$", re.IGNORECASE)


def base_title(title: str | None) -> str:
    """A title without version marks: ``"Halo (Live at Wembley)"``, ``"Halo [2011 Remaster]"``
    and ``"Halo - Remastered 2009"`` all give ``"halo"``."""
    text = title or ""
    for _ in range(3):
        text = _DASHED.sub("", _BRACKETED.sub("", text))
    return " ".join(re.findall(r"\w+", text.casefold()))


@dataclass(frozen=True)
class Variety:
    """Variety and exclusions for ``search``/``similar``/``path``; checked at construction."""

    max_per_artist: int | None = None
    dedupe: bool = False
    exclude_artists: tuple[str, ...] | list[str] | str = field(default_factory=tuple)
    exclude_genres: tuple[str, ...] | list[str] | str = field(default_factory=tuple)
    exclude_paths: tuple[str, ...] | list[str] | str = field(default_factory=tuple)
    variation: float = 0.0
    seed: int | None = None

    def __post_init__(self) -> None:
        if self.max_per_artist is not None and (
            isinstance(self.max_per_artist, bool) or not isinstance(self.max_per_artist, int) or self.max_per_artist < 1
        ):
            raise MusicSearchError(f"--max-per-artist must be a whole number >= 1, not {self.max_per_artist!r}")
        if isinstance(self.variation, bool) or not isinstance(self.variation, (int, float)):
            raise MusicSearchError(f"--variation must be a number between 0 and 1, not {self.variation!r}")
        if not 0.0 <= float(self.variation) <= 1.0:
            raise MusicSearchError(f"--variation must be between 0 and 1, not {self.variation}")
        for name in ("exclude_artists", "exclude_genres", "exclude_paths"):
            object.__setattr__(self, name, texts(name.replace("_", "-")[:-1], getattr(self, name)))

    @property
    def reshapes(self) -> bool:
        """Whether hits are dropped or moved after the vector search."""
        return bool(self.max_per_artist or self.dedupe or self.variation)

    def applied_to(self, filters: Filters | None) -> Filters | None:
        """``filters`` with these exclusions added (None when nothing filters)."""
        base = filters or Filters()
        merged = replace(
            base,
            exclude_artists=(*base.exclude_artists, *self.exclude_artists),
            exclude_genres=(*base.exclude_genres, *self.exclude_genres),
            exclude_paths=(*base.exclude_paths, *self.exclude_paths),
        )
        return merged if merged.active else None


def _artist_key(hit: Hit) -> str:
    t = hit.track
    name = (t.artist or t.albumartist or "").strip().casefold()
    return name or f"\0{t.id}"  # no artist: each track on its own


def reshape(hits: Sequence[Hit], k: int, variety: Variety, track_vecs: dict[int, np.ndarray]) -> list[Hit]:
    """Apply ``variation`` (shuffle), then ``dedupe`` and ``max_per_artist`` to ranked hits;
    the first ``k`` survivors, renumbered."""
    ranked = list(hits)
    if variety.variation and len(ranked) > 1:
        rng = np.random.default_rng(variety.seed)
        scores = np.array([h.score for h in ranked])
        spread = float(scores.max() - scores.min()) or 1e-6
        keys = scores + float(variety.variation) * spread * rng.random(len(ranked))
        ranked = [ranked[i] for i in np.argsort(-keys, kind="stable")]
    kept: list[Hit] = []
    per_artist: dict[str, int] = {}
    titles: set[tuple[str, str]] = set()
    kept_vecs: list[np.ndarray] = []
    for hit in ranked:
        if len(kept) == k:
            break
        artist = _artist_key(hit)
        if variety.max_per_artist and per_artist.get(artist, 0) >= variety.max_per_artist:
            continue
        if variety.dedupe:
            key = (artist, base_title(hit.track.title))
            vec = track_vecs.get(hit.track.id)
            if key in titles or (
                vec is not None and kept_vecs and float(np.max(np.stack(kept_vecs) @ vec)) >= DUPLICATE_COSINE
            ):
                continue
            titles.add(key)
            if vec is not None:
                kept_vecs.append(vec)
        per_artist[artist] = per_artist.get(artist, 0) + 1
        kept.append(hit)
    return [replace(h, rank=i + 1) for i, h in enumerate(kept)]


def accepts(store: Store, variety: Variety) -> Callable[[list[int], int], bool] | None:
    """``accept(chosen ids, candidate id)`` for a path: the per-artist cap and duplicates."""
    if not (variety.max_per_artist or variety.dedupe):
        return None

    def accept(chosen: list[int], candidate: int) -> bool:
        tracks = store.tracks([*chosen, candidate])
        hits = [Hit(0, 0.0, tracks[t], Segment(0, 0, 0)) for t in [*chosen, candidate] if t in tracks]
        vecs: dict[int, np.ndarray] = {}
        if variety.dedupe:
            ids, arr = store.track_vectors([h.track.id for h in hits])
            vecs = {int(i): v for i, v in zip(ids, arr)}
        plain = replace(variety, variation=0.0)
        return len(reshape(hits, len(hits), plain, vecs)) == len(hits)

    return accept


def _lexical_hits(
    store: Store, q: np.ndarray, names: Sequence[tuple[int, str]], filters: Filters | None, exclude: set[int]
) -> dict[int, Hit]:
    """Hits for the tracks a name brought (their sound score and best window), those that
    pass ``filters`` and are not excluded."""
    ids = [tid for tid, _ in names if tid not in exclude]
    if filters is not None and ids:
        allowed = set(store.filtered_ids(filters, among=ids).tolist())
        ids = [i for i in ids if i in allowed]
    tracks = store.tracks(ids)
    segments = best_segments(store, q, ids)
    tags = store.tags_of(ids)
    tids, vecs = store.track_vectors(ids)
    score = {int(t): float(v @ q) for t, v in zip(tids, vecs)}
    field_of = dict(names)
    from .classify import shown_tags

    out: dict[int, Hit] = {}
    for tid in ids:
        if tid in tracks and tid in segments:
            out[tid] = Hit(0, score.get(tid, 0.0), tracks[tid], segments[tid], shown_tags(tags[tid]), field_of[tid])
    return out


def run_search(
    store: Store,
    get_index: Callable[[str], vectors.AnyIndex],
    query: np.ndarray,
    k: int,
    *,
    filters: Filters | None = None,
    by: str = "track",
    exclude: Sequence[int] = (),
    min_score: float | None = None,
    names: Sequence[tuple[int, str]] = (),
    matched: str = "sound",
    variety: Variety | None = None,
    order: str = "score",
) -> list[Hit]:
    """``search_vector`` plus names, variety and order: the sound ranking (``matched`` says
    why its hits matched) fused with the tracks ``names`` brings ((track id, field), best
    first; reciprocal rank fusion), then ``variety``, then ``order`` (``score`` or ``smooth``).
    More candidates are fetched until ``k`` hits survive."""
    if order not in ("score", "smooth"):
        raise MusicSearchError(f"--order must be score or smooth, not {order!r}")
    variety = variety or Variety()
    filters = variety.applied_to(filters)
    excluded = {int(e) for e in exclude}
    depth = k * 3 if variety.reshapes else k
    q = np.asarray(query, np.float32)
    named = _lexical_hits(store, q, names, filters, excluded) if names else {}
    if min_score is not None:
        named = {t: h for t, h in named.items() if h.score >= min_score}
    while True:
        found = search_vector(store, get_index, q, depth, filters=filters, by=by, exclude=exclude, min_score=min_score)
        sound = {h.track.id: replace(h, matched=matched) for h in found}
        pool = {**sound, **{t: h for t, h in named.items() if t not in sound}}
        for t, h in named.items():
            if t in sound:
                pool[t] = replace(sound[t], matched=h.matched)
        if named:
            from .lexical import fuse

            ranked = [pool[t] for t in fuse(list(sound), [t for t, _ in names if t in named])]
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
    if order == "smooth":
        from .paths import smooth_order

        hits = smooth_order(store, hits)
    return hits
