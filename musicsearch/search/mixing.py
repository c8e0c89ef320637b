"""How well two tracks mix by tempo and key, as a cost added to their distance in sound when
``path`` and ``--order smooth`` order tracks (``--sound-only`` leaves it out): a tempo step
costs 1 per 8 % of change (half and double time count as the same tempo, as DJs mix them),
a key step half a step on the Camelot wheel (so the same key costs 0, a compatible key 0.5);
each capped at 3, and 0 where either track's value is unknown. An estimated tempo counts
only at a confidence of ``MIN_TEMPO_CONFIDENCE`` or more (beatless sound gets a tempo too,
with a low one; docs/analysis.md); a tag always counts. ``WEIGHT`` turns the cost into
cosine distance: an 8 % tempo step weighs as much as 0.1 of cosine distance.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from ..keys import find_key, wheel_distance
from ..store import Track

WEIGHT = 0.1
TEMPO_STEP = math.log2(1.08)
MAX_COST = 3.0
MIN_TEMPO_CONFIDENCE = 0.35


def tempo_of(track: Track) -> float | None:
    """The tempo ordering goes by: a tag's, or an estimate's held with enough confidence."""
    confident = track.bpm_confidence is None or track.bpm_confidence >= MIN_TEMPO_CONFIDENCE
    return track.bpm if track.bpm_source == "tag" or confident else None


def octave_ratio(a: float, b: float) -> float:
    """How far ``b`` is from ``a`` in octaves, half and double time folded in (0 to 0.5)."""
    x = math.log2(b / a)
    return abs(x - round(x))


def tempo_cost(a: float | None, b: float | None) -> float:
    """The cost of a tempo step from ``a`` to ``b`` BPM (0 where either is unknown)."""
    if not a or not b:
        return 0.0
    return min(octave_ratio(a, b) / TEMPO_STEP, MAX_COST)


def key_cost(a: str | None, b: str | None) -> float:
    """The cost of a key step between two stored key names (0 where either is unknown)."""
    ka, kb = find_key(a), find_key(b)
    if ka is None or kb is None:
        return 0.0
    return min(wheel_distance(ka, kb) / 2, MAX_COST)


def mix_cost(a: Track, b: Track) -> float:
    """The cost of moving from track ``a`` to track ``b`` by tempo and key."""
    return tempo_cost(tempo_of(a), tempo_of(b)) + key_cost(a.key, b.key)


def known(tracks: Sequence[Track]) -> bool:
    """Whether any of ``tracks`` has a tempo or a key."""
    return any(tempo_of(t) is not None or t.key is not None for t in tracks)


def cost_matrix(tracks: Sequence[Track]) -> np.ndarray:
    """``WEIGHT`` x the mix cost between every two of ``tracks``."""
    n = len(tracks)
    out = np.zeros((n, n))
    for i in range(n):
        for j in range(i + 1, n):
            out[i, j] = out[j, i] = WEIGHT * mix_cost(tracks[i], tracks[j])
    return out


def waypoint_tempo(a: float | None, b: float | None, t: float) -> float | None:
    """The tempo ``t`` of the way from ``a`` to ``b`` BPM (geometric, across the nearer octave
    of ``b``), or the one known end's."""
    if not a or not b:
        return a or b or None
    near_b = b * 2.0 ** -round(math.log2(b / a))
    return a * (near_b / a) ** t


def waypoint_cost(track: Track, tempo: float | None, a: Track, b: Track) -> float:
    """``WEIGHT`` x the cost of ``track`` at a path's waypoint whose tempo should be ``tempo``,
    between ends ``a`` and ``b`` (its key against the nearer end's)."""
    keys = [key_cost(track.key, end.key) for end in (a, b) if end.key is not None]
    return WEIGHT * (tempo_cost(tempo, tempo_of(track)) + (min(keys) if keys else 0.0))
