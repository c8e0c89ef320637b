"""Errors raised by musicsearch. Every user or setup error is a MusicSearchError whose
message is one line, fit to print after ``Error:``."""

from __future__ import annotations

from pathlib import Path


class MusicSearchError(Exception):
    """Base class: a user or setup error with a one-line message."""


class IndexNotFound(MusicSearchError):
    """The index folder holds no index yet."""


class ModelMismatch(MusicSearchError):
    """An index built with one model was asked to work with another."""


class ModelLoadError(MusicSearchError):
    """The model could not be loaded (not found, offline, or unusable)."""


class CollapsedModel(ModelLoadError):
    """The model maps unrelated prompts to (nearly) the same vector."""


class DecodeError(MusicSearchError):
    """One audio file could not be decoded; the run skips it and goes on."""

    def __init__(self, path: Path | str, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{self.path}: {reason}")
