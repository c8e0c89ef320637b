"""The typed rows the store reads and writes: a track's metadata (``Track``), a fully embedded
track to write (``TrackRecord``) with its tempo and key (``Musical``), the index's model facts (``IndexMeta``), and the time every
write records (``utc_now``)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

import numpy as np

from ..config import PIPELINE_VERSION
from ..errors import ModelMismatch, MusicSearchError

_T = TypeVar("_T")


@dataclass(frozen=True)
class Track:
    """An indexed track's metadata."""

    id: int
    path: str
    title: str
    artist: str | None = None
    album: str | None = None
    albumartist: str | None = None
    genre: str | None = None
    year: int | None = None
    tracknumber: int | None = None
    duration: float | None = None
    n_windows: int = 0
    bpm: float | None = None
    bpm_source: str | None = None  # "tag" or "estimate"
    key: str | None = None  # "A minor" (keys.Key.name)
    key_source: str | None = None  # "tag" or "estimate"
    energy: float | None = None  # RMS level, dBFS
    bpm_confidence: float | None = None  # of an estimate (0-1)
    key_confidence: float | None = None  # of an estimate (correlation with the key's profile)


TRACK_FIELDS = [f.name for f in fields(Track)]


@dataclass(frozen=True)
class Musical:
    """A track's tempo, key and energy as stored: each value with its source ("tag": the
    file's own tag; "estimate": the analysis) and the estimates' confidences. ``analysed``:
    the analysis version that filled them (None: not analysed)."""

    bpm: float | None = None
    bpm_confidence: float | None = None
    bpm_source: str | None = None
    key: str | None = None
    key_confidence: float | None = None
    key_source: str | None = None
    energy: float | None = None
    analysed: int | None = None

    def values(self) -> dict[str, float | str | int | None]:
        """The ``tracks`` columns."""
        return dict(self.__dict__)


MUSICAL_FIELDS = [f.name for f in fields(Musical)]


@dataclass(frozen=True)
class TrackRecord:
    """A fully embedded track, ready to write."""

    path: str
    size: int
    mtime_ns: int
    hash: str
    tags: dict
    duration: float
    starts: list[float]
    ends: list[float]
    vectors: np.ndarray  # (n_windows, dim) unit vectors
    warning: str | None = None  # e.g. decoded far shorter than the header declares
    musical: Musical | None = None  # tempo, key, energy (None: not analysed, e.g. ingested)


def utc_now() -> str:
    """The time every write records (indexed_at, failed_at, created_at): UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class IndexMeta:
    """What the ``meta`` table records about the model of an index, parsed once.

    Written once, when the first model is bound to the index. (What queries need to skip
    torch lives with the model's prepared graphs, musicsearch/prepared.py.)
    """

    model: str
    revision: str | None
    dim: int
    window_seconds: float
    pipeline_version: str
    model_check: str  # "passed" or "skipped"
    created_at: str

    @classmethod
    def new(cls, model: str, revision: str | None, dim: int, window_seconds: float, *, checked: bool) -> IndexMeta:
        """The meta of an index bound now to ``model`` by this pipeline version; ``checked``:
        whether the model passed the collapse guard (else it was skipped)."""
        return cls(
            model=model,
            revision=revision or None,
            dim=int(dim),
            window_seconds=float(window_seconds),
            pipeline_version=PIPELINE_VERSION,
            model_check="passed" if checked else "skipped",
            created_at=utc_now(),
        )

    @classmethod
    def from_values(cls, values: Mapping[str, str], where: Path | str = "index") -> IndexMeta | None:
        """Parse the ``meta`` rows (key -> value); None while no model is recorded.

        Raises:
            MusicSearchError: a value does not parse (``where`` names the index in the message).
        """
        if not values.get("model"):
            return None

        def parse(key: str, kind: Callable[[str], _T]) -> _T | None:
            raw = values.get(key)
            if raw is None or raw == "":
                return None
            try:
                return kind(raw)
            except ValueError:
                raise MusicSearchError(f"index {where} has a damaged meta table: {key} = {raw!r}") from None

        return cls(
            model=values["model"],
            revision=values.get("revision") or None,
            dim=parse("dim", int) or 0,
            window_seconds=parse("window_seconds", float) or 0.0,
            pipeline_version=values.get("pipeline_version", ""),
            model_check=values.get("model_check", ""),
            created_at=values.get("created_at", ""),
        )

    def values(self) -> dict[str, str]:
        """The ``meta`` rows, in the formats the index has always used (the fast-query facts
        only where known)."""
        out = {
            "model_check": self.model_check,
            "model": self.model,
            "revision": self.revision or "",
            "dim": str(self.dim),
            "window_seconds": str(self.window_seconds),
            "pipeline_version": self.pipeline_version,
            "created_at": self.created_at,
        }
        return out

    def passed_check(self, model_id: str) -> bool:
        """Whether ``model_id`` is this index's model and passed the collapse guard here."""
        return self.model_check == "passed" and self.model == model_id

    def check_settled(self, model_id: str) -> bool:
        """Whether the collapse guard need not run again for ``model_id``: it is this index's
        model, and it passed the guard here or the guard was waived (``--no-model-check``)
        when the index was built, a choice the index keeps."""
        return self.model == model_id and self.model_check in ("passed", "skipped")

    def check(self, model_id: str, revision: str | None, dim: int, index_dir: Path | str) -> None:
        """Refuse a model other than the one that built the index.

        Raises:
            ModelMismatch: another model or revision, another dimension, or vectors from
                another pipeline version.
        """
        if self.model != model_id or self.revision != (revision or None):
            raise ModelMismatch(
                f"index {index_dir} was built with model {self.model}{'@' + self.revision if self.revision else ''}, "
                f"not {model_id}{'@' + revision if revision else ''}; drop --model, or use another --index folder"
            )
        if self.dim != dim:
            raise ModelMismatch(f"index {index_dir} holds {self.dim}-d vectors; the model gives {dim}-d")
        if self.pipeline_version != PIPELINE_VERSION:
            raise ModelMismatch(
                f"index {index_dir} was built by pipeline version {self.pipeline_version} "
                f"(this is {PIPELINE_VERSION}); rebuild it in a new --index folder"
            )
