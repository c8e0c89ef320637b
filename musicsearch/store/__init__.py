"""The index on disk: SQLite is the source of truth, vectors included (this package owns the
"store" stage; the FAISS files derived from it belong to ``vectors/``).

Reads use plain ``sqlite3``; writes and migrations use sqlite-utils, imported only when
needed (``migrations.import_sqlite_utils``).

The schema changes through numbered migrations (sqlite-utils ``Migrations``, recorded in the
``_sqlite_migrations`` table), applied in order when a store is opened. Every write
transaction that changes vectors bumps ``meta.generation``; ``vectors/`` names its files
after it.
"""

from .blobs import from_blobs, to_blob, track_vector
from .connection import COMPACT_FROM, DB_NAME
from .database import Store
from .migrations import MIGRATION_SET, MIGRATIONS, MIGRATIONS_TABLE, SCHEMA_VERSION, migration_set
from .names import NAME_FIELDS
from .records import IndexMeta, Musical, Track, TrackRecord, utc_now
from .selection import FilterColumns

__all__ = [
    "COMPACT_FROM",
    "DB_NAME",
    "MIGRATIONS",
    "MIGRATIONS_TABLE",
    "MIGRATION_SET",
    "NAME_FIELDS",
    "SCHEMA_VERSION",
    "FilterColumns",
    "IndexMeta",
    "Musical",
    "Store",
    "Track",
    "TrackRecord",
    "from_blobs",
    "migration_set",
    "to_blob",
    "track_vector",
    "utc_now",
]
