"""The index on disk: SQLite is the source of truth, vectors included (this module owns the
"store" stage; the FAISS files derived from it belong to ``vectors/``).

Reads use plain ``sqlite3``; writes and migrations use sqlite-utils, imported only when
needed (``_sqlite_utils``).

The schema changes through numbered migrations (sqlite-utils ``Migrations``, recorded in the
``_sqlite_migrations`` table), applied in order when a store is opened. Every write
transaction that changes vectors bumps ``meta.generation``; ``vectors/`` names its files
after it.
"""

from __future__ import annotations

import logging
import os
import sqlite3
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, fields
from datetime import datetime, timezone
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from .config import PIPELINE_VERSION
from .errors import IndexNotFound, ModelMismatch, MusicSearchError
from .filters import Filters
from .process import pandas_hidden

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

log = logging.getLogger(__name__)
_T = TypeVar("_T")

DB_NAME = "musicsearch.db"
# The ``schema_version`` meta key: 1 + the number of the last migration applied (the schema
# from before numbered migrations, which migration 1 reproduces, already called itself 2).
SCHEMA_VERSION = 6
# Window vectors are written as float16 (half the disk; cosine to the float32 vector
# >= 0.99999) once an index holds this many tracks; below it as float32, as always. A blob's
# length tells its dtype (dim * 4 or dim * 2 bytes), so both live side by side.
COMPACT_FROM = 100_000
MIGRATION_SET = "musicsearch"
# Where sqlite-utils records applied migrations (``Migrations.migrations_table``); read with
# plain sqlite3 so that opening an up-to-date index does not import sqlite-utils.
MIGRATIONS_TABLE = "_sqlite_migrations"


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
class FilterColumns:
    """Each track's year and duration, indexed by track id (NaN where unknown, or for an id
    without a track), as of store generation ``generation``: numeric filters are evaluated
    over these in numpy (``FilterColumns.mask``) instead of in SQLite, whose track rows hold the
    vectors (at 1M tracks the table is 2 GB; a filter's count, or the check of which of
    3,200 candidates pass, read pages of it at random). 16 bytes a track."""

    generation: int
    year: np.ndarray
    duration: np.ndarray

    def mask(self, filters: Filters) -> np.ndarray | None:
        """Which track ids pass ``filters`` (a boolean array indexed by id), or None when they
        hold more than year and duration bounds (those run in SQLite). An unknown (NaN) value
        passes no bound, as NULL in SQL."""
        if not filters.numeric_only:
            return None
        mask = np.ones(len(self.year), bool)
        if isinstance(filters.year, tuple):
            mask &= (self.year >= filters.year[0]) & (self.year <= filters.year[1])
        if filters.min_duration is not None:
            mask &= self.duration >= float(filters.min_duration)
        if filters.max_duration is not None:
            mask &= self.duration <= float(filters.max_duration)
        return mask


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


def utc_now() -> str:
    """The time every write records (indexed_at, failed_at, created_at): UTC, to the second."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


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


# typed index metadata ------------------------------------------------------------


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


# migrations ------------------------------------------------------------------------
# Each runs once, in order, inside a transaction, recorded by name. Never edit one that has
# shipped: add the next.


def m001_initial(db: Database) -> None:
    """The schema as it was before numbered migrations (``schema_version`` 2). Every step is
    "if not exists": indexes written before migrations already have it."""
    db.table("meta").create({"key": str, "value": str}, pk="key", if_not_exists=True)
    tracks = db.table("tracks")
    tracks.create(
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
    tracks.create_index(["path"], unique=True, if_not_exists=True)
    tracks.create_index(["hash"], if_not_exists=True)
    windows = db.table("windows")
    windows.create(
        {"id": int, "track_id": int, "idx": int, "start": float, "end": float, "vector": bytes},
        pk="id",
        foreign_keys=[("track_id", "tracks", "id")],
        not_null={"track_id", "vector"},
        if_not_exists=True,
    )
    windows.create_index(["track_id"], if_not_exists=True)
    db.table("failures").create(
        {"path": str, "size": int, "mtime_ns": int, "reason": str, "failed_at": str},
        pk="path",
        if_not_exists=True,
    )
    track_tags = db.table("track_tags")
    track_tags.create(
        {"track_id": int, "vocab": str, "label": str, "score": float},
        pk=("track_id", "vocab", "label"),
        foreign_keys=[("track_id", "tracks", "id")],
        if_not_exists=True,
    )
    track_tags.create_index(["label"], if_not_exists=True)
    db.execute("insert or ignore into meta (key, value) values ('generation', '0')")
    db.execute("insert or replace into meta (key, value) values ('schema_version', '2')")


def m002_drop_unused_meta(db: Database) -> None:
    """``hop_seconds`` and ``sample_rate`` were written and never read; the fast-query facts
    (``text_onnx``, ``text_onnx_cosine``, ``logit_scale``, ``pad_token_id``) now live with the
    model's prepared graphs (musicsearch/prepared.py), shared by every index."""
    db.execute(
        "delete from meta where key in ('hop_seconds', 'sample_rate', 'text_onnx', 'text_onnx_cosine',"
        " 'logit_scale', 'pad_token_id')"
    )
    db.execute("insert or replace into meta (key, value) values ('schema_version', '3')")


def m003_track_warnings(db: Database) -> None:
    """A track indexed despite a problem (decoded far shorter than its header declares)
    keeps the warning, shown beside the failures."""
    db.execute("alter table tracks add column warning text")
    db.execute("insert or replace into meta (key, value) values ('schema_version', '4')")


def m004_vector_log(db: Database) -> None:
    """Scale: a log of the track and window ids whose vectors each generation added, changed
    or removed (filled by triggers, so no write path can forget it), from which ``vectors/``
    updates an approximate index in place; ``vector_log_since`` is the generation from which
    the log is complete. And a covering index for the metadata filters, so that counting the
    tracks that pass a filter scans neither the vectors nor the whole table."""
    db.execute(
        "create table vector_log (seq integer primary key, generation integer not null, kind text not null,"
        " item integer not null)"
    )
    db.execute("create index vector_log_generation on vector_log (generation)")
    gen = "(select cast(value as integer) from meta where key = 'generation')"
    for table in ("tracks", "windows"):
        for name, event, ref in (
            ("add", "after insert", "new"),
            ("del", "after delete", "old"),
            ("upd", "after update of vector", "new"),
        ):
            db.execute(
                f"create trigger {table}_vector_{name} {event} on {table} begin"
                f" insert into vector_log (generation, kind, item) values ({gen}, '{table}', {ref}.id); end"
            )
    db.execute("create index tracks_filters on tracks (year, duration, genre, artist, albumartist, album)")
    db.execute(
        "insert or replace into meta (key, value) select 'vector_log_since', value from meta where key = 'generation'"
    )
    db.execute("insert or replace into meta (key, value) values ('schema_version', '5')")


def m005_tracks_fts(db: Database) -> None:
    """Names in queries (musicsearch/search/names.py): an FTS5 index over each track's title,
    artist, album, album artist, genre and file name (rowid = track id), filled from the
    tracks already indexed and kept in step by triggers, so no write path can forget it."""
    db.execute(
        "create virtual table tracks_fts using fts5(title, artist, album, albumartist, genre, file,"
        " tokenize = 'unicode61 remove_diacritics 2')"
    )
    cols = "rowid, title, artist, album, albumartist, genre, file"

    def values(ref: str) -> str:
        base = f"replace({ref}.path, rtrim({ref}.path, replace({ref}.path, '/', '')), '')"  # the file name
        return f"{ref}.id, {ref}.title, {ref}.artist, {ref}.album, {ref}.albumartist, {ref}.genre, {base}"

    db.execute(f"insert into tracks_fts ({cols}) select {values('t')} from tracks t")
    db.execute(
        "create trigger tracks_fts_add after insert on tracks begin"
        f" insert into tracks_fts ({cols}) values ({values('new')}); end"
    )
    db.execute(
        "create trigger tracks_fts_del after delete on tracks begin delete from tracks_fts where rowid = old.id; end"
    )
    db.execute(
        "create trigger tracks_fts_upd after update of title, artist, album, albumartist, genre, path on tracks begin"
        f" delete from tracks_fts where rowid = old.id; insert into tracks_fts ({cols}) values ({values('new')}); end"
    )
    db.execute("insert or replace into meta (key, value) values ('schema_version', '6')")


MIGRATIONS = (m001_initial, m002_drop_unused_meta, m003_track_warnings, m004_vector_log, m005_tracks_fts)
NAME_FIELDS = ("title", "artist", "album", "albumartist", "genre", "file")  # the columns of tracks_fts


def _filter_sql(filters: Filters | None) -> tuple[str, list]:
    """``filters`` as a condition over ``tracks t`` and its parameters: the only place where
    filters become SQL."""
    if filters is None:
        return "1", []
    where: list[str] = []
    params: list = []
    for col, value in (("album", filters.album), ("genre", filters.genre)):
        if value:
            where.append(f"instr(lower(coalesce(t.{col}, '')), lower(?)) > 0")
            params.append(value)
    if filters.artist:
        where.append(
            "(instr(lower(coalesce(t.artist, '')), lower(?)) > 0"
            " or instr(lower(coalesce(t.albumartist, '')), lower(?)) > 0)"
        )
        params += [filters.artist, filters.artist]
    if isinstance(filters.year, tuple):
        where.append("t.year between ? and ?")
        params += list(filters.year)
    if filters.min_duration is not None:
        where.append("t.duration >= ?")
        params.append(filters.min_duration)
    if filters.max_duration is not None:
        where.append("t.duration <= ?")
        params.append(filters.max_duration)
    if filters.path:
        where.append("t.path glob ?")
        params.append(filters.path)
    for tag in filters.tags:
        where.append("exists (select 1 from track_tags g where g.track_id = t.id and lower(g.label) = lower(?))")
        params.append(tag)
    for name in filters.exclude_artists:
        where.append(
            "instr(lower(coalesce(t.artist, '')), lower(?)) = 0"
            " and instr(lower(coalesce(t.albumartist, '')), lower(?)) = 0"
        )
        params += [name, name]
    for genre in filters.exclude_genres:
        where.append("instr(lower(coalesce(t.genre, '')), lower(?)) = 0")
        params.append(genre)
    for glob in filters.exclude_paths:
        where.append("not (t.path glob ?)")
        params.append(glob)
    if filters.track_ids is not None:
        where.append(f"t.id in ({', '.join('?' * len(filters.track_ids))})")
        params += list(filters.track_ids)
    return (" and ".join(where) or "1"), params


def _sqlite_utils() -> None:
    """Import sqlite-utils, without pandas where the process's owner allows it
    (``process.pandas_hidden``: sqlite-utils imports pandas for nothing musicsearch writes)."""
    import sys

    if "sqlite_utils.db" in sys.modules:
        return
    with pandas_hidden():
        import sqlite_utils.db  # noqa: F401


def migration_set() -> Migrations:
    """The numbered migrations as a sqlite-utils ``Migrations`` set (imports sqlite-utils)."""
    _sqlite_utils()
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for fn in MIGRATIONS:
        migrations()(fn)
    return migrations


class Store:
    """The SQLite database of one index folder.

    Opening it applies the migrations it lacks. Reads go through ``conn`` (plain sqlite3);
    ``db`` (sqlite-utils, imported on first use) serves writes.
    """

    def __init__(self, index_dir: Path | str, create: bool = False, compact_from: int = COMPACT_FROM):
        self.dir = Path(index_dir).expanduser()
        self.compact_from = compact_from
        self._window_dtype: type = np.float32
        self._filter_columns: tuple[int, FilterColumns | None] | None = None  # (generation, columns)
        self.db_path = self.dir / DB_NAME
        if not self.db_path.exists():
            if not create:
                raise IndexNotFound(
                    f"no index at {self.dir}; build one with: musicsearch index FOLDER --index {self.dir}"
                )
            self.dir.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: the web server shares one store between worker threads
        # (it serializes access with a lock).
        self.conn = sqlite3.connect(str(self.db_path), check_same_thread=False)
        self.conn.execute("PRAGMA busy_timeout = 10000")
        self.conn.execute("PRAGMA foreign_keys = ON")
        if not create and not self._has_table("meta"):
            self.conn.close()
            raise IndexNotFound(f"{self.db_path} is not a musicsearch index")
        if self.pending_migrations():
            self._migrate()

    @cached_property
    def db(self) -> Database:
        """The same connection wrapped by sqlite-utils (imported here, on first use)."""
        _sqlite_utils()
        from sqlite_utils import Database

        return Database(self.conn)

    def _has_table(self, name: str) -> bool:
        row = self.conn.execute("select 1 from sqlite_master where type = 'table' and name = ?", [name]).fetchone()
        return row is not None

    # migrations -------------------------------------------------------------

    def applied_migrations(self) -> list[str]:
        """Names of the migrations applied to this index, in order."""
        if not self._has_table(MIGRATIONS_TABLE):
            return []
        rows = self.conn.execute(
            f"select name from {MIGRATIONS_TABLE} where migration_set = ? order by rowid", [MIGRATION_SET]
        )
        return [r[0] for r in rows]

    def pending_migrations(self) -> list[str]:
        """Names of the migrations this index still lacks.

        Raises:
            MusicSearchError: the index was migrated by a newer musicsearch.
        """
        applied = self.applied_migrations()
        known = [fn.__name__ for fn in MIGRATIONS]
        newer = [name for name in applied if name not in known]
        if newer:
            raise MusicSearchError(
                f"index {self.dir} was written by a newer musicsearch (migration {newer[-1]}); upgrade musicsearch"
            )
        return [name for name in known if name not in applied]

    def _migrate(self) -> None:
        pending = self.pending_migrations()
        try:
            self.db.enable_wal()  # outside any transaction: SQLite refuses it inside one
            migration_set().apply(self.db)
        except sqlite3.IntegrityError:
            # another process applied the same migration between our check and our write
            if self.pending_migrations():
                raise
        except sqlite3.OperationalError as exc:
            if "readonly" not in str(exc):
                raise
            log.warning("index %s is read-only: reading it without migrations %s", self.dir, ", ".join(pending))
            return
        log.info("index %s: applied migrations %s", self.dir, ", ".join(pending))

    # meta -------------------------------------------------------------------

    def _meta_values(self) -> dict[str, str]:
        return dict(self.conn.execute("select key, value from meta").fetchall())

    def index_meta(self) -> IndexMeta | None:
        """The index's model facts (one read of the ``meta`` table); None while no model is
        bound to the index."""
        return IndexMeta.from_values(self._meta_values(), self.dir)

    def record_meta(self, meta: IndexMeta) -> None:
        """Record the model facts (all of ``meta.values()``) in one transaction."""
        with self.write(vectors=False):
            self._set_meta(meta.values())

    def _meta_value(self, key: str) -> str | None:
        row = self.conn.execute("select value from meta where key = ?", [key]).fetchone()
        return row[0] if row else None

    def _set_meta(self, values: dict[str, str]) -> None:
        self.conn.executemany("insert or replace into meta (key, value) values (?, ?)", list(values.items()))

    @property
    def generation(self) -> int:
        """Bumped by every write that changes vectors; ``vectors/`` names its files after it."""
        return int(self._meta_value("generation") or 0)

    @contextmanager
    def write(self, vectors: bool = True) -> Iterator[None]:
        """One transaction, all or nothing; it bumps the generation (so the FAISS files are
        rebuilt) unless ``vectors`` is False (it changes no track or window vector)."""
        with self.db.atomic():
            if vectors:
                self.conn.execute("update meta set value = cast(value as integer) + 1 where key = 'generation'")
                # the largest track id, not count(*) (a scan of an index of every track: ~0.1 s at
                # 1M): ids are dense, so after removals this turns float16 a little early at most
                n = self.conn.execute("select max(id) from tracks").fetchone()[0] or 0
                self._window_dtype = np.float16 if n >= self.compact_from else np.float32
            yield

    # reads ----------------------------------------------------------------

    def _under(self, table: str, columns: str, root: Path) -> dict[str, tuple]:
        """path -> the other ``columns`` of the rows of ``table`` at or below ``root``."""
        prefix = str(root).rstrip(os.sep) + os.sep
        rows = self.conn.execute(
            f"select path, {columns} from {table} where path = ? or substr(path, 1, ?) = ?",
            [str(root), len(prefix), prefix],
        )
        return {r[0]: tuple(r[1:]) for r in rows}

    def known_files(self, root: Path) -> dict[str, tuple[int, int, int, str]]:
        """path -> (id, size, mtime_ns, hash) of the tracks at or below ``root``."""
        return self._under("tracks", "id, size, mtime_ns, hash", root)

    def hashes_of(self, paths: Iterable[str]) -> dict[str, str]:
        """path -> content hash of those of ``paths`` that are indexed."""
        wanted = list(paths)
        out: dict[str, str] = {}
        for i in range(0, len(wanted), 10_000):
            part = wanted[i : i + 10_000]
            rows = self.conn.execute(
                f"select path, hash from tracks where path in ({', '.join('?' * len(part))})", part
            )
            out.update(dict(rows.fetchall()))
        return out

    def known_failures(self, root: Path) -> dict[str, tuple[int, int, str]]:
        """path -> (size, mtime_ns, reason) of recorded failures at or below ``root``."""
        return self._under("failures", "size, mtime_ns, reason", root)

    def failures(self) -> list[tuple[str, str]]:
        return self.conn.execute("select path, reason from failures order by path").fetchall()

    def warnings(self) -> list[tuple[str, str]]:
        """(path, warning) of the tracks indexed with a warning."""
        return self.conn.execute("select path, warning from tracks where warning is not null order by path").fetchall()

    def counts(self) -> dict[str, int]:
        q = self.conn.execute
        return {
            "tracks": q("select count(*) from tracks").fetchone()[0],
            "windows": q("select count(*) from windows").fetchone()[0],
            "failures": q("select count(*) from failures").fetchone()[0],
        }

    def tracks_under(self, root: Path) -> dict[str, Track]:
        """The tracks at or below ``root`` (a file or a folder), by absolute path."""
        known = self.known_files(root)
        tracks = self.tracks(row[0] for row in known.values())
        return {p: tracks[row[0]] for p, row in known.items() if row[0] in tracks}

    def tracks(self, ids: Iterable[int]) -> dict[int, Track]:
        ids = list(ids)
        if not ids:
            return {}
        cols = ", ".join(f"[{c}]" for c in _TRACK_FIELDS)
        marks = ", ".join("?" * len(ids))
        rows = self.conn.execute(f"select {cols} from tracks where id in ({marks})", ids)
        return {r[0]: Track(*r) for r in rows}

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

    def filtered_ids(
        self, filters: Filters | None = None, *, among: Iterable[int] | None = None, windows: bool = False
    ) -> np.ndarray:
        """Ids of the tracks (or of their windows) that pass ``filters`` (every one when None),
        of the tracks ``among`` only when given (then sorted)."""
        where, params = _filter_sql(filters)
        select = (
            "select w.id from windows w join tracks t on t.id = w.track_id" if windows else "select t.id from tracks t"
        )
        if among is None:
            return np.array([r[0] for r in self.conn.execute(f"{select} where {where}", params)], dtype=np.int64)
        wanted = np.unique(np.fromiter((int(i) for i in among), np.int64))
        found = [np.zeros(0, np.int64)]
        for i in range(0, len(wanted), 5000):
            part = wanted[i : i + 5000].tolist()
            sql = f"{select} where ({where}) and t.id in ({', '.join('?' * len(part))})"
            found.append(np.array([r[0] for r in self.conn.execute(sql, [*params, *part])], dtype=np.int64))
        return np.unique(np.concatenate(found))

    def count_filtered(self, filters: Filters | None, cap: int) -> int:
        """How many tracks pass ``filters``, counted up to ``cap``."""
        where, params = _filter_sql(filters)
        sql = f"select count(*) from (select 1 from tracks t where {where} limit ?)"
        return int(self.conn.execute(sql, [*params, int(cap)]).fetchone()[0])

    def max_id(self, kind: str) -> int:
        """The largest track (``tracks``) or window (``windows``) id, 0 when there is none:
        ids are dense rowids, so this bounds how many there are without counting them."""
        if kind not in ("tracks", "windows"):
            raise ValueError(f"kind must be tracks or windows, not {kind!r}")
        return int(self.conn.execute(f"select max(id) from {kind}").fetchone()[0] or 0)

    def filter_columns(self) -> FilterColumns | None:
        """The tracks' year and duration by id (read once per generation: every write that
        can change them, ``put_track`` and ``add_tracks``, bumps it), from the ``tracks_filters``
        covering index, never the rows; None when a value is not a number (the filters then
        run in SQLite, which orders text after numbers)."""
        generation = self.generation
        if self._filter_columns is not None and self._filter_columns[0] == generation:
            return self._filter_columns[1]
        sql = "select id, year, duration from tracks indexed by tracks_filters"
        try:
            cursor = self.conn.execute(sql)
        except sqlite3.OperationalError:  # no such index: the rows then
            cursor = self.conn.execute(sql.replace(" indexed by tracks_filters", ""))
        top = self.conn.execute("select max(id) from tracks").fetchone()[0]
        top = -1 if top is None else int(top)
        year, duration = np.full(top + 1, np.nan), np.full(top + 1, np.nan)
        columns: FilterColumns | None = FilterColumns(generation, year, duration)
        while rows := cursor.fetchmany(65_536):  # in chunks: 1M rows as Python tuples would take ~200 MB
            try:
                values = np.array(rows, dtype=np.float64).reshape(len(rows), 3)
            except (TypeError, ValueError):
                log.warning("a year or duration is not a number; filters on them run in SQLite")
                columns = None
                break
            ids = values[:, 0].astype(np.int64)
            year[ids], duration[ids] = values[:, 1], values[:, 2]
        cursor.close()
        self._filter_columns = (generation, columns)
        return columns

    def windows_by_id(self, window_ids: Iterable[int]) -> dict[int, tuple[int, float, float]]:
        """window id -> (track id, start, end)."""
        ids = list(window_ids)
        if not ids:
            return {}
        rows = self.conn.execute(
            f"select id, track_id, start, [end] from windows where id in ({', '.join('?' * len(ids))})", ids
        )
        return {r[0]: (r[1], r[2], r[3]) for r in rows}

    def find_tracks(self, text: str, limit: int = 5) -> list[Track]:
        """Tracks whose path is ``text``, else whose path or title contains it (case-insensitive);
        an exact title match wins over substring matches."""
        cols = ", ".join(f"[{c}]" for c in _TRACK_FIELDS)
        q = self.conn.execute
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
            for tid, vocab, label, score in self.conn.execute(
                f"select track_id, vocab, label, score from track_tags where track_id in ({', '.join('?' * len(ids))})"
                " order by track_id, score desc",
                ids,
            ):
                out[tid].append((vocab, label, score))
        return out

    def untagged_ids(self) -> list[int]:
        return [
            r[0]
            for r in self.conn.execute(
                "select id from tracks where id not in (select track_id from track_tags) order by id"
            )
        ]

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

    # writes (call inside ``with store.write():``) ---------------------------

    def put_track(self, rec: TrackRecord, now: str) -> int:
        """Insert or replace the track at ``rec.path`` (keeping its id) and its windows."""
        row = self.conn.execute("select id from tracks where path = ?", [rec.path]).fetchone()
        values = {
            "path": rec.path,
            "size": rec.size,
            "mtime_ns": rec.mtime_ns,
            "hash": rec.hash,
            "duration": rec.duration,
            "n_windows": len(rec.vectors),
            "vector": to_blob(track_vector(rec.vectors)),
            "indexed_at": now,
            "warning": rec.warning,
            **rec.tags,
        }
        if row:
            track_id = row[0]
            self.conn.execute("delete from windows where track_id = ?", [track_id])
            self.conn.execute("delete from track_tags where track_id = ?", [track_id])
            self.db.table("tracks").update(track_id, values)
        else:
            track_id = self.db.table("tracks").insert(values).last_pk
        self.db.table("windows").insert_all(
            {"track_id": track_id, "idx": i, "start": s, "end": e, "vector": to_blob(v, self._window_dtype)}
            for i, (s, e, v) in enumerate(zip(rec.starts, rec.ends, rec.vectors))
        )
        self.conn.execute("delete from failures where path = ?", [rec.path])
        return track_id

    def add_tracks(self, recs: Iterable[TrackRecord], now: str) -> int:
        """Insert new tracks (no track at their paths) and their windows in bulk; returns how
        many. Use ``put_track`` to replace one."""
        tcols = ["path", "size", "mtime_ns", "hash", "duration", "n_windows", "vector", "indexed_at", "warning"]
        tcols += ["title", "artist", "album", "albumartist", "genre", "year", "tracknumber"]
        sql = f"insert into tracks ({', '.join(f'[{c}]' for c in tcols)}) values ({', '.join('?' * len(tcols))})"
        windows: list[tuple] = []
        n = 0
        for rec in recs:
            tags = rec.tags
            cur = self.conn.execute(
                sql,
                [rec.path, rec.size, rec.mtime_ns, rec.hash, rec.duration, len(rec.vectors)]
                + [to_blob(track_vector(rec.vectors)), now, rec.warning]
                + [tags.get(c) for c in tcols[9:]],
            )
            tid = cur.lastrowid
            windows.extend(
                (tid, i, s, e, to_blob(v, self._window_dtype))
                for i, (s, e, v) in enumerate(zip(rec.starts, rec.ends, rec.vectors))
            )
            n += 1
        self.conn.executemany(
            "insert into windows (track_id, idx, start, [end], vector) values (?, ?, ?, ?, ?)", windows
        )
        return n

    def move_track(self, track_id: int, path: str, size: int, mtime_ns: int) -> None:
        self.db.table("tracks").update(track_id, {"path": path, "size": size, "mtime_ns": mtime_ns})

    def remove_tracks(self, track_ids: Iterable[int]) -> None:
        ids = [int(t) for t in track_ids]
        for i in range(0, len(ids), 5000):  # a statement per table per 5,000 tracks, not per track
            part = ids[i : i + 5000]
            marks = ", ".join("?" * len(part))
            self.conn.execute(f"delete from windows where track_id in ({marks})", part)
            self.conn.execute(f"delete from track_tags where track_id in ({marks})", part)
            self.conn.execute(f"delete from tracks where id in ({marks})", part)

    def put_failure(self, path: str, size: int, mtime_ns: int, reason: str, now: str) -> None:
        for table in ("windows", "track_tags"):
            self.conn.execute(f"delete from {table} where track_id in (select id from tracks where path = ?)", [path])
        self.conn.execute("delete from tracks where path = ?", [path])
        self.db.table("failures").upsert(
            {"path": path, "size": size, "mtime_ns": mtime_ns, "reason": reason, "failed_at": now}, pk="path"
        )

    def set_tags(self, track_id: int, tags: Iterable[tuple[str, str, float]]) -> None:
        """Replace a track's tags with (vocab, label, score) rows."""
        self.conn.execute("delete from track_tags where track_id = ?", [track_id])
        self.db.table("track_tags").insert_all(
            {"track_id": track_id, "vocab": v, "label": lab, "score": sc} for v, lab, sc in tags
        )

    def remove_failures(self, paths: Iterable[str]) -> None:
        for p in paths:
            self.conn.execute("delete from failures where path = ?", [p])

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def page_cache(self, kib: int) -> Iterator[None]:
        """SQLite's page cache at ``kib`` KiB for a bulk write, the previous size restored after."""
        before = self.conn.execute("pragma cache_size").fetchone()[0]
        self.conn.execute(f"pragma cache_size = {-int(kib)}")
        try:
            yield
        finally:
            self.conn.execute(f"pragma cache_size = {int(before)}")

    def has_name_index(self) -> bool:
        """Whether the FTS5 index of names ``tracks_fts`` (migration 5) is there."""
        return self.conn.execute("select 1 from sqlite_master where name = 'tracks_fts'").fetchone() is not None

    def name_matches(self, words: Sequence[str], fields: Sequence[str], limit: int) -> list[tuple]:
        """Rows ``(track id, *fields)`` of the tracks one of whose ``fields`` (columns of
        ``tracks_fts``) holds the phrase ``words``, by track id, at most ``limit``.

        Raises:
            sqlite3.OperationalError: no ``tracks_fts`` (an index from before migration 5
                opened read-only).
        """
        unknown = set(fields) - set(NAME_FIELDS)
        if unknown:
            raise ValueError(f"the name fields are {NAME_FIELDS}, not {sorted(unknown)}")
        match = "{" + " ".join(fields) + "} : " + '"' + " ".join(w.replace('"', '""') for w in words) + '"'
        sql = f"select rowid, {', '.join(fields)} from tracks_fts where tracks_fts match ? order by rowid limit ?"
        return self.conn.execute(sql, [match, int(limit)]).fetchall()
