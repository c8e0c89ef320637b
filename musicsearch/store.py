"""The index on disk: SQLite (via sqlite-utils) is the source of truth, vectors included;
the FAISS file is derived from it and rebuilt whenever missing or stale.

Every write transaction bumps ``meta.generation``. The FAISS file is named after the
generation it was built from (``tracks-g<N>.faiss``), written to a temp file, fsynced and
renamed, so a reader either finds the file of the current generation or rebuilds it: a
killed run can never leave a half-written or out-of-date index in use.
"""

from __future__ import annotations

import os
import sqlite3
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import sqlite_utils

from .errors import IndexNotFound

DB_NAME = "musicsearch.db"
SCHEMA_VERSION = 2


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


_TRACK_FIELDS = [f.name for f in fields(Track)]


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


def to_blob(vector: np.ndarray) -> bytes:
    return np.ascontiguousarray(vector, dtype=np.float32).tobytes()


def track_vector(window_vectors: np.ndarray) -> np.ndarray:
    """L2-normalized mean of a track's window vectors."""
    mean = window_vectors.astype(np.float64).mean(axis=0)
    norm = np.linalg.norm(mean)
    return (mean / norm if norm > 0 else mean).astype(np.float32)


class Store:
    """The SQLite database of one index folder."""

    def __init__(self, index_dir: Path | str, create: bool = False):
        self.dir = Path(index_dir).expanduser()
        self.db_path = self.dir / DB_NAME
        if not self.db_path.exists():
            if not create:
                raise IndexNotFound(
                    f"no index at {self.dir}; build one with: musicsearch index FOLDER --index {self.dir}"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the web server shares one store between worker threads
        # (it serializes access with a lock).
        self.db = sqlite_utils.Database(sqlite3.connect(str(self.db_path), check_same_thread=False))
        self.db.execute("PRAGMA busy_timeout = 10000")
        self.db.execute("PRAGMA foreign_keys = ON")
        if not create and "meta" not in self.db.table_names():
            raise IndexNotFound(f"{self.db_path} is not a musicsearch index")
        if create or int(self.meta("schema_version") or 0) < SCHEMA_VERSION:
            self._create_schema()  # every step is "if not exists": this is also the migration

    def _create_schema(self) -> None:
        db = self.db
        db.enable_wal()
        with db.atomic():
            db["meta"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
            db["tracks"].create(
                {
                    "id": int,
                    "path": str,
                    "size": int,
                    "mtime_ns": int,
                    "hash": str,
                    "title": str,
                    "artist": str,
                    "album": str,
                    "albumartist": str,
                    "genre": str,
                    "year": int,
                    "tracknumber": int,
                    "duration": float,
                    "n_windows": int,
                    "vector": bytes,
                    "indexed_at": str,
                },
                pk="id",
                not_null={"path", "size", "mtime_ns", "hash", "title", "vector"},
                if_not_exists=True,
            )
            db["tracks"].create_index(["path"], unique=True, if_not_exists=True)
            db["tracks"].create_index(["hash"], if_not_exists=True)
            db["windows"].create(
                {"id": int, "track_id": int, "idx": int, "start": float, "end": float, "vector": bytes},
                pk="id",
                foreign_keys=[("track_id", "tracks", "id")],
                not_null={"track_id", "vector"},
                if_not_exists=True,
            )
            db["windows"].create_index(["track_id"], if_not_exists=True)
            db["failures"].create(
                {"path": str, "size": int, "mtime_ns": int, "reason": str, "failed_at": str},
                pk="path",
                if_not_exists=True,
            )
            db["track_tags"].create(
                {"track_id": int, "vocab": str, "label": str, "score": float},
                pk=("track_id", "vocab", "label"),
                foreign_keys=[("track_id", "tracks", "id")],
                if_not_exists=True,
            )
            db["track_tags"].create_index(["label"], if_not_exists=True)
            if self.meta("generation") is None:
                self._set_meta({"generation": "0"})
            self._set_meta({"schema_version": str(SCHEMA_VERSION)})

    # meta -----------------------------------------------------------------

    def meta(self, key: str) -> str | None:
        row = self.db.execute("select value from meta where key = ?", [key]).fetchone()
        return row[0] if row else None

    def _set_meta(self, values: dict[str, str]) -> None:
        self.db["meta"].upsert_all([{"key": k, "value": v} for k, v in values.items()], pk="key")

    def set_meta(self, values: dict[str, str], vectors: bool = True) -> None:
        with self.write(vectors):
            self._set_meta(values)

    @property
    def generation(self) -> int:
        return int(self.meta("generation") or 0)

    @contextmanager
    def write(self, vectors: bool = True) -> Iterator[None]:
        """One transaction, all or nothing; it bumps the generation (so the FAISS files are
        rebuilt) unless ``vectors`` is False (it changes no track or window vector)."""
        with self.db.atomic():
            if vectors:
                self.db.execute("update meta set value = cast(value as integer) + 1 where key = 'generation'")
            yield

    # reads ----------------------------------------------------------------

    def _under(self, table: str, columns: str, root: Path) -> dict[str, tuple]:
        """path -> the other ``columns`` of the rows of ``table`` at or below ``root``."""
        prefix = str(root).rstrip(os.sep) + os.sep
        rows = self.db.execute(
            f"select path, {columns} from {table} where path = ? or substr(path, 1, ?) = ?",
            [str(root), len(prefix), prefix],
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def known_files(self, root: Path) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, hash) of the tracks at or below ``root``."""
        return self._under("tracks", "id, size, mtime_ns, hash", root)

    def known_failures(self, root: Path) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, reason) of recorded failures at or below ``root``."""
        return self._under("failures", "size, mtime_ns, reason", root)

    def failures(self) -> list[tuple[str, str]]:
        return self.db.execute("select path, reason from failures order by path").fetchall()

    def counts(self) -> dict[str, int]:
        q = self.db.execute
        return {
            "tracks": q("select count(*) from tracks").fetchone()[0],
            "windows": q("select count(*) from windows").fetchone()[0],
            "failures": q("select count(*) from failures").fetchone()[0],
        }

    def tracks(self, ids: Iterable[int]) -> dict[int, Track]:
        ids = list(ids)
        if not ids:
            return {}
        cols = ", ".join(f"[{c}]" for c in _TRACK_FIELDS)
        marks = ", ".join("?" * len(ids))
        rows = self.db.execute(f"select {cols} from tracks where id in ({marks})", ids)
        return {r[0]: Track(*r) for r in rows}

    def _vectors(self, sql: str, params: Iterable = ()) -> tuple[np.ndarray, np.ndarray]:
        rows = self.db.execute(sql, list(params)).fetchall()
        dim = int(self.meta("dim") or 0)
        ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
        vecs = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), dim)
        return ids, vecs

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

    def filtered_ids(self, where: str, params: list, windows: bool = False) -> np.ndarray:
        """Ids of the tracks (or of their windows) that satisfy ``where`` over ``tracks t``."""
        if windows:
            sql = f"select w.id from windows w join tracks t on t.id = w.track_id where {where}"
        else:
            sql = f"select t.id from tracks t where {where}"
        return np.array([r[0] for r in self.db.execute(sql, params)], dtype=np.int64)

    def windows_by_id(self, window_ids: Iterable[int]) -> dict[int, tuple[int, float, float]]:
        """window id -> (track id, start, end)."""
        ids = list(window_ids)
        if not ids:
            return {}
        rows = self.db.execute(
            f"select id, track_id, start, [end] from windows where id in ({', '.join('?' * len(ids))})", ids
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def find_tracks(self, text: str, limit: int = 5) -> list[Track]:
        """Tracks whose path is ``text``, else whose path or title contains it (case-insensitive);
        an exact title match wins over substring matches."""
        cols = ", ".join(f"[{c}]" for c in _TRACK_FIELDS)
        q = self.db.execute
        for sql, params in (
            (f"select {cols} from tracks where path = ?", [text]),
            (f"select {cols} from tracks where lower(title) = lower(?) order by path limit ?", [text, limit + 1]),
            (
                f"select {cols} from tracks where instr(lower(path), lower(?)) > 0 or instr(lower(title), lower(?)) > 0"
                " order by path limit ?",
                [text, text, limit + 1],
            ),
        ):
            rows = q(sql, params).fetchall()
            if rows:
                return [Track(*r) for r in rows]
        return []

    def tags_of(self, track_ids: Iterable[int]) -> dict[int, list[tuple[str, str, float]]]:
        """track id -> [(vocab, label, score)], best first."""
        ids = list(track_ids)
        out: dict[int, list[tuple[str, str, float]]] = {i: [] for i in ids}
        if ids:
            for tid, vocab, label, score in self.db.execute(
                f"select track_id, vocab, label, score from track_tags where track_id in ({', '.join('?' * len(ids))})"
                " order by track_id, score desc",
                ids,
            ):
                out[tid].append((vocab, label, score))
        return out

    def untagged_ids(self) -> list[int]:
        return [
            r[0]
            for r in self.db.execute(
                "select id from tracks where id not in (select track_id from track_tags) order by id"
            )
        ]

    def window_vectors(self, track_ids: Iterable[int]) -> dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """track id -> (starts, ends, vectors (n, dim)) of its windows."""
        ids = list(track_ids)
        out: dict[int, list[tuple[float, float, bytes]]] = {i: [] for i in ids}
        if ids:
            marks = ", ".join("?" * len(ids))
            for tid, start, end, vec in self.db.execute(
                f"select track_id, start, [end], vector from windows where track_id in ({marks}) order by track_id, idx",
                ids,
            ):
                out[tid].append((start, end, vec))
        return {
            tid: (
                np.array([w[0] for w in ws]),
                np.array([w[1] for w in ws]),
                np.frombuffer(b"".join(w[2] for w in ws), dtype=np.float32).reshape(len(ws), -1),
            )
            for tid, ws in out.items()
        }

    # writes (call inside ``with store.write():``) ---------------------------

    def put_track(self, rec: TrackRecord, now: str) -> int:
        """Insert or replace the track at ``rec.path`` (keeping its id) and its windows."""
        row = self.db.execute("select id from tracks where path = ?", [rec.path]).fetchone()
        values = {
            "path": rec.path,
            "size": rec.size,
            "mtime_ns": rec.mtime_ns,
            "hash": rec.hash,
            "duration": rec.duration,
            "n_windows": len(rec.vectors),
            "vector": to_blob(track_vector(rec.vectors)),
            "indexed_at": now,
            **rec.tags,
        }
        if row:
            track_id = row[0]
            self.db.execute("delete from windows where track_id = ?", [track_id])
            self.db.execute("delete from track_tags where track_id = ?", [track_id])
            self.db["tracks"].update(track_id, values)
        else:
            track_id = self.db["tracks"].insert(values).last_pk
        self.db["windows"].insert_all(
            {"track_id": track_id, "idx": i, "start": s, "end": e, "vector": to_blob(v)}
            for i, (s, e, v) in enumerate(zip(rec.starts, rec.ends, rec.vectors))
        )
        self.db.execute("delete from failures where path = ?", [rec.path])
        return track_id

    def move_track(self, track_id: int, path: str, size: int, mtime_ns: int) -> None:
        self.db["tracks"].update(track_id, {"path": path, "size": size, "mtime_ns": mtime_ns})

    def remove_tracks(self, track_ids: Iterable[int]) -> None:
        for tid in track_ids:
            self.db.execute("delete from windows where track_id = ?", [tid])
            self.db.execute("delete from track_tags where track_id = ?", [tid])
            self.db.execute("delete from tracks where id = ?", [tid])

    def put_failure(self, path: str, size: int, mtime_ns: int, reason: str, now: str) -> None:
        for table in ("windows", "track_tags"):
            self.db.execute(f"delete from {table} where track_id in (select id from tracks where path = ?)", [path])
        self.db.execute("delete from tracks where path = ?", [path])
        self.db["failures"].upsert(
            {"path": path, "size": size, "mtime_ns": mtime_ns, "reason": reason, "failed_at": now}, pk="path"
        )

    def set_tags(self, track_id: int, tags: Iterable[tuple[str, str, float]]) -> None:
        """Replace a track's tags with (vocab, label, score) rows."""
        self.db.execute("delete from track_tags where track_id = ?", [track_id])
        self.db["track_tags"].insert_all(
            {"track_id": track_id, "vocab": v, "label": lab, "score": sc} for v, lab, sc in tags
        )

    def remove_failures(self, paths: Iterable[str]) -> None:
        for p in paths:
            self.db.execute("delete from failures where path = ?", [p])

    def close(self) -> None:
        self.db.close()


# FAISS ------------------------------------------------------------------------


def _faiss_path(index_dir: Path, kind: str, generation: int) -> Path:
    return index_dir / f"{kind}-g{generation}.faiss"


def _write_atomic(index: object, target: Path) -> None:
    import faiss

    fd, tmp = tempfile.mkstemp(prefix=target.name + ".", suffix=".tmp", dir=target.parent)
    os.close(fd)
    try:
        faiss.write_index(index, tmp)
        with open(tmp, "rb") as f:
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dfd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    except OSError:
        pass


def build_faiss(ids: np.ndarray, vectors: np.ndarray, dim: int) -> object:
    """IndexIDMap2 over IndexFlatIP, keyed by track id."""
    import faiss

    index = faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
    if len(ids):
        index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), ids.astype(np.int64))
    return index


def load_faiss(store: Store, kind: str = "tracks") -> object:
    """The FAISS index (``tracks`` or ``windows``, keyed by their ids) of the store's current
    generation: read from disk, or rebuilt from SQLite (and saved atomically, older
    generations removed) when missing or stale."""
    import faiss

    generation = store.generation
    path = _faiss_path(store.dir, kind, generation)
    if path.exists():
        try:
            index = faiss.read_index(str(path))
            if index.ntotal == store.counts()[kind]:
                return index
        except RuntimeError:
            pass
    ids, vecs = store.track_vectors() if kind == "tracks" else store.all_window_vectors()
    index = build_faiss(ids, vecs, int(store.meta("dim") or 0) or (vecs.shape[1] if len(vecs) else 1))
    try:
        _write_atomic(index, path)
    except OSError:
        return index  # a read-only index folder still answers queries
    for old in store.dir.glob(f"{kind}-g*.faiss"):
        if old != path:
            old.unlink(missing_ok=True)
    return index
