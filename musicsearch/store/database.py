"""``Store``: the SQLite database of one index folder, every part joined."""

from __future__ import annotations

from .names import Names
from .selection import Selection
from .track_reads import TrackReads
from .vector_reads import VectorReads
from .writes import Writes


class Store(Writes, TrackReads, VectorReads, Selection, Names):
    """The SQLite database of one index folder.

    Opening it applies the migrations it lacks. Reads go through ``conn`` (plain sqlite3);
    ``db`` (sqlite-utils, imported on first use) serves writes. Its parts: ``Connection``
    (opening, migrations, meta, the write transaction), ``TrackReads``, ``VectorReads``,
    ``Selection`` (filters), ``Names`` (the name index) and ``Writes``.
    """
