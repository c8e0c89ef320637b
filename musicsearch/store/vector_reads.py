"""Reads of track and window vectors (float32, whatever their blobs hold), ids, and the vector
log from which ``vectors/`` updates an approximate index in place."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import numpy as np

from .blobs import from_blobs
from .connection import Connection


class VectorReads(Connection):
    """The store's reads of vectors and vector ids."""

    def _vectors(self, sql: str, params: Iterable = ()) -> tuple[np.ndarray, np.ndarray]:
        rows = self.conn.execute(sql, list(params)).fetchall()
        dim = int(self._meta_value("dim") or 0)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        return ids, from_blobs([r[1] for r in rows], dim)

    def track_vectors(self, ids: Iterable[int] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(ids int64, vectors float32 (n, dim)) of every track (or of ``ids``), in id order."""
        if ids is None:
            return self._vectors("select id, vector from tracks order by id")
        ids = list(ids)
        return self._vectors(
            f"select id, vector from tracks where id in ({', '.join('?' * len(ids))}) order by id", ids
        )

    def all_window_vectors(self) -> tuple[np.ndarray, np.ndarray]:
        """(window ids, vectors) of every window, in id order."""
        return self._vectors("select id, vector from windows order by id")

    def iter_vectors(self, kind: str, chunk: int = 100_000) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """(ids, float32 vectors) of every track or window (``kind``), in id order, ``chunk``
        rows at a time (an index of 6M windows never sits in memory whole)."""
        table = {"tracks": "tracks", "windows": "windows"}[kind]
        last = -(2**63)
        while True:
            ids, vecs = self._vectors(f"select id, vector from {table} where id > ? order by id limit ?", [last, chunk])
            if not len(ids):
                return
            yield ids, vecs
            last = int(ids[-1])

    def vectors_by_id(self, kind: str, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray]:
        """(ids, float32 vectors) of those of ``ids`` that exist, in id order."""
        table = {"tracks": "tracks", "windows": "windows"}[kind]
        wanted = sorted({int(i) for i in ids})
        parts = [
            self._vectors(
                f"select id, vector from {table} where id in ({', '.join('?' * len(part))}) order by id", part
            )
            for part in (wanted[i : i + 10_000] for i in range(0, len(wanted), 10_000))
        ]
        if not parts:
            dim = int(self._meta_value("dim") or 0)
            return np.zeros(0, np.int64), np.zeros((0, dim), np.float32)
        return np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts])

    def iter_windows(self, chunk: int = 100_000) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """(window ids, float32 vectors, track ids) of every window, in id order, ``chunk`` at a time."""
        dim = int(self._meta_value("dim") or 0)
        last = -(2**63)
        while True:
            rows = self.conn.execute(
                "select id, vector, track_id from windows where id > ? order by id limit ?", [last, chunk]
            ).fetchall()
            if not rows:
                return
            ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            owners = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
            yield ids, from_blobs([r[1] for r in rows], dim), owners
            last = int(ids[-1])

    def window_vectors_by_id(self, ids: Iterable[int]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(window ids, float32 vectors, track ids) of those of ``ids`` that exist, in id order."""
        wanted = sorted({int(i) for i in ids})
        dim = int(self._meta_value("dim") or 0)
        rows: list = []
        for i in range(0, len(wanted), 10_000):
            part = wanted[i : i + 10_000]
            rows += self.conn.execute(
                f"select id, vector, track_id from windows where id in ({', '.join('?' * len(part))}) order by id",
                part,
            ).fetchall()
        ids_out = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        owners = np.fromiter((r[2] for r in rows), dtype=np.int64, count=len(rows))
        return ids_out, from_blobs([r[1] for r in rows], dim), owners

    def existing_ids(self, kind: str, ids: Iterable[int]) -> np.ndarray:
        """Those of ``ids`` (track or window ids, ``kind``) that exist, sorted."""
        table = {"tracks": "tracks", "windows": "windows"}[kind]
        wanted = sorted({int(i) for i in ids})
        found: list[int] = []
        for i in range(0, len(wanted), 10_000):
            part = wanted[i : i + 10_000]
            found += [
                r[0]
                for r in self.conn.execute(f"select id from {table} where id in ({', '.join('?' * len(part))})", part)
            ]
        return np.array(sorted(found), dtype=np.int64)

    def changed_ids(self, kind: str, since: int) -> np.ndarray | None:
        """Ids of the tracks or windows (``kind``) whose vectors were added, changed or removed
        by the generations after ``since``; None when the vector log does not reach back to
        ``since`` (an index from before migration 4, or pruned)."""
        start = self._meta_value("vector_log_since")
        if start is None or int(start) > since or not self._has_table("vector_log"):
            return None
        rows = self.conn.execute(
            "select distinct item from vector_log where generation > ? and kind = ?", [since, kind]
        ).fetchall()
        return np.array(sorted(r[0] for r in rows), dtype=np.int64)

    def prune_vector_log(self, upto: int) -> None:
        """Forget the log of generations up to ``upto`` (no index will be updated from one as old)."""
        start = self._meta_value("vector_log_since")
        if start is None or int(start) >= upto:
            return
        with self.write(vectors=False):
            self.conn.execute("delete from vector_log where generation <= ?", [upto])
            self._set_meta({"vector_log_since": str(upto)})

    def max_id(self, kind: str) -> int:
        """The largest track (``tracks``) or window (``windows``) id, 0 when there is none:
        ids are dense rowids, so this bounds how many there are without counting them."""
        if kind not in ("tracks", "windows"):
            raise ValueError(f"kind must be tracks or windows, not {kind!r}")
        return int(self.conn.execute(f"select max(id) from {kind}").fetchone()[0] or 0)

    def window_vectors(self, track_ids: Iterable[int]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """track id -> (starts, ends, vectors (n, dim)) of its windows."""
        ids = list(track_ids)
        out: dict[int, list[tuple[float, float, bytes]]] = {i: [] for i in ids}
        dim = int(self._meta_value("dim") or 0)
        if ids:
            marks = ", ".join("?" * len(ids))
            for tid, start, end, vec in self.conn.execute(
                f"select track_id, start, [end], vector from windows where track_id in ({marks}) order by track_id, idx",
                ids,
            ):
                out[tid].append((start, end, vec))
        return {
            tid: (
                np.array([w[0] for w in ws]),
                np.array([w[1] for w in ws]),
                from_blobs([w[2] for w in ws], dim),
            )
            for tid, ws in out.items()
        }
