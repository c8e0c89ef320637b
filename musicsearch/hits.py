"""What a search returns: a ``Hit`` per track, naming the ``Segment`` (window) that matches best."""

from __future__ import annotations

from dataclasses import dataclass

from .keys import camelot
from .store import Track


@dataclass(frozen=True)
class Segment:
    """The best-matching window of a track, in seconds, with its own score."""

    start: float
    end: float
    score: float


@dataclass(frozen=True)
class Hit:
    """One search result; ``tags`` are the track's top (label, score) from ``tag``."""

    rank: int
    score: float
    track: Track
    segment: Segment
    tags: tuple[tuple[str, float], ...] = ()
    matched: str = ""  # why it matched: "sound", "title", "artist", "album", "artist+sound" (lexical.py)

    def to_dict(self) -> dict:
        """The JSON shape shared by ``query --json`` and the HTTP API."""
        t = self.track
        return {
            "rank": self.rank,
            "score": round(float(self.score), 6),
            "track_id": t.id,
            "path": t.path,
            "title": t.title,
            "artist": t.artist,
            "album": t.album,
            "albumartist": t.albumartist,
            "genre": t.genre,
            "year": t.year,
            "tracknumber": t.tracknumber,
            "duration": t.duration,
            "bpm": t.bpm,
            "bpm_source": t.bpm_source,
            "bpm_confidence": t.bpm_confidence,
            "key": t.key,
            "camelot": camelot(t.key),
            "key_source": t.key_source,
            "key_confidence": t.key_confidence,
            "energy": t.energy,
            "segment_start": self.segment.start,
            "segment_end": self.segment.end,
            "segment_score": round(float(self.segment.score), 6),
            "tags": [{"label": label, "score": round(float(score), 6)} for label, score in self.tags],
            "matched": self.matched,
        }
