"""What every part of the store shares: the open connection (plain ``sqlite3`` for reads,
sqlite-utils for writes, imported on first use), the migrations applied on opening, the
``meta`` table with its generation, and the write transaction."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..errors import IndexNotFound, MusicSearchError
from .migrations import MIGRATION_SET, MIGRATIONS, MIGRATIONS_TABLE, import_sqlite_utils, migration_set
from .records import IndexMeta

if TYPE_CHECKING:
    from sqlite_utils import Database

log = logging.getLogger(__name__)

DB_NAME = "musicsearch.db"
# Window vectors are written as float16 (half the disk; cosine to the float32 vector
# >= 0.99999) once an index holds this many tracks; below it as float32, as always. A blob's
# length tells its dtype (dim * 4 or dim * 2 bytes), so both live side by side.
COMPACT_FROM = 100_000


class Connection:
    """The SQLite database of one index folder, opened: the base every part of ``Store``
    builds on.

    Opening it applies the migrations it lacks. Reads go through ``conn`` (plain sqlite3);
    ``db`` (sqlite-utils, imported on first use) serves writes.
    """

    def __init__(self, index_dir: Path | str, create: bool = False, compact_from: int = COMPACT_FROM):
        self.dir = Path(index_dir).expanduser()
        self.compact_from = compact_from
        self._window_dtype: type = np.float32
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
        import_sqlite_utils()
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
