"""Vectors as SQLite blobs: float32 (dim * 4 bytes) or float16 (dim * 2), told apart by their
length, and a track's vector as the normalized mean of its windows'."""

from __future__ import annotations

import numpy as np

from ..errors import MusicSearchError


def to_blob(vector: np.ndarray, dtype: type = np.float32) -> bytes:
    return np.ascontiguousarray(vector, dtype=dtype).tobytes()


def from_blobs(blobs: list[bytes], dim: int) -> np.ndarray:
    """(n, dim) float32 from vector blobs, each float32 (dim * 4 bytes) or float16 (dim * 2)."""
    if not blobs:
        return np.zeros((0, max(dim, 0)), np.float32)
    if dim <= 0:  # no model recorded: float32, as every index before float16 windows
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), -1)
    sizes = {len(b) for b in blobs}
    if sizes == {dim * 4}:
        return np.frombuffer(b"".join(blobs), dtype=np.float32).reshape(len(blobs), dim)
    if sizes == {dim * 2}:
        return np.frombuffer(b"".join(blobs), dtype=np.float16).reshape(len(blobs), dim).astype(np.float32)
    out = np.empty((len(blobs), dim), np.float32)
    for i, b in enumerate(blobs):
        if len(b) not in (dim * 4, dim * 2):
            raise MusicSearchError(f"a stored vector has {len(b)} bytes; the index is {dim}-d")
        out[i] = np.frombuffer(b, dtype=np.float32 if len(b) == dim * 4 else np.float16)
    return out


def track_vector(window_vectors: np.ndarray) -> np.ndarray:
    """L2-normalized mean of a track's window vectors."""
    mean = window_vectors.astype(np.float64).mean(axis=0)
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)
