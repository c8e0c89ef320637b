"""Pictures of an index: a 2-D map of every track, and how well each window of a track matches
a query.

The map is a PCA projection (scikit-learn) of the track vectors, scaled into [0, 1] on both
axes. It depends only on the vectors, so it is computed once per index generation and cached in
the index folder as ``map-g<generation>.json`` (written atomically; older maps are removed).
Titles, artists and tags are read fresh from the store on every call (tagging does not bump the
generation).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .store import Store

log = logging.getLogger(__name__)

MAP_PREFIX = "map-g"


@dataclass(frozen=True)
class MapPoint:
    """One track on the map; ``tags`` maps a vocabulary ("genre", "mood", ...) to its top label."""

    track_id: int
    x: float
    y: float
    title: str | None
    artist: str | None
    path: str
    tags: dict[str, str]

    def to_dict(self) -> dict:
        return {
            "track_id": self.track_id,
            "x": round(self.x, 6),
            "y": round(self.y, 6),
            "title": self.title,
            "artist": self.artist,
            "path": self.path,
            "tags": self.tags,
        }


def project(vectors: np.ndarray) -> np.ndarray:
    """(n, dim) vectors -> (n, 2) coordinates in [0, 1]: the first two principal components,
    each axis scaled to [0, 1] (an axis without spread sits at 0.5)."""
    n = len(vectors)
    coords = np.full((n, 2), 0.5)
    if n >= 2:
        from sklearn.decomposition import PCA

        x = np.asarray(vectors, dtype=np.float64)
        parts = min(2, n, x.shape[1])
        coords[:, :parts] = PCA(n_components=parts, svd_solver="full").fit_transform(x)
    for axis in range(2 if n else 0):
        lo, hi = coords[:, axis].min(), coords[:, axis].max()
        coords[:, axis] = (coords[:, axis] - lo) / (hi - lo) if hi - lo > 1e-9 else 0.5
    return coords


def _cache_path(index_dir: Path, generation: int) -> Path:
    return index_dir / f"{MAP_PREFIX}{generation}.json"


def map_coordinates(store: Store) -> dict[int, tuple[float, float]]:
    """track id -> (x, y), from this generation's cache file when there is one, else computed
    and cached (other generations' map files are removed)."""
    gen = store.generation
    path = _cache_path(store.dir, gen)
    if path.is_file():
        try:
            cached = json.loads(path.read_text(encoding="utf-8"))
            return {int(k): (float(v[0]), float(v[1])) for k, v in cached["points"].items()}
        except (OSError, ValueError, KeyError, TypeError, IndexError) as exc:
            log.warning("the cached map %s is unreadable (%s); computing it again", path, exc)
    ids, vecs = store.track_vectors()
    coords = project(vecs)
    points = {int(i): (float(c[0]), float(c[1])) for i, c in zip(ids, coords)}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(
            json.dumps({"generation": gen, "points": {str(k): [x, y] for k, (x, y) in points.items()}}),
            encoding="utf-8",
        )
        os.replace(tmp, path)
        for old in store.dir.glob(f"{MAP_PREFIX}*.json"):
            if old != path:
                old.unlink(missing_ok=True)
    except OSError as exc:
        log.warning("could not cache the library map in %s (%s); it is computed again next time", path, exc)
        tmp.unlink(missing_ok=True)
    return points


def library_map(store: Store) -> list[MapPoint]:
    """Every track of the index once, in id order, with its map position, names and top tags."""
    coords = map_coordinates(store)
    ids = sorted(coords)
    tracks = store.tracks(ids)
    tags = store.tags_of(ids)
    out = []
    for i in ids:
        t = tracks.get(i)
        if t is None:
            continue
        top: dict[str, str] = {}
        if t.genre:
            top["genre"] = t.genre
        for vocab, label, _score in tags.get(i, []):  # best first
            top.setdefault(vocab, label)
        x, y = coords[i]
        out.append(MapPoint(i, x, y, t.title, t.artist, t.path, top))
    return out


def window_scores(store: Store, track_id: int, query: np.ndarray) -> list[dict]:
    """[{start, end, score}] of each window of ``track_id`` in order, ``score`` the cosine of
    the window's vector with ``query`` (an empty list for an unknown track)."""
    q = np.asarray(query, dtype=np.float64).ravel()
    norm = np.linalg.norm(q)
    if norm > 0:
        q = q / norm
    found = store.window_vectors([track_id]).get(track_id)
    if found is None:
        return []
    starts, ends, vecs = found
    v = np.asarray(vecs, dtype=np.float64)
    lengths = np.linalg.norm(v, axis=1)
    scores = (v @ q) / np.where(lengths > 0, lengths, 1.0)
    return [{"start": float(s), "end": float(e), "score": round(float(c), 6)} for s, e, c in zip(starts, ends, scores)]
