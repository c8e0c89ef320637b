"""Filters as SQL: the only place where a typed ``Filters`` becomes SQL text, and the columns
(year, duration; genre, artist, albumartist, album as codes into their distinct values) that
let year, duration, text-substring and track-id filters run in numpy instead."""

from __future__ import annotations

import logging
import sqlite3
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import cast

import numpy as np

from ..filters import Filters, bpm_ranges
from ..keys import compatible, parse_key
from .connection import Connection
from .text_columns import TextColumn

log = logging.getLogger(__name__)


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
    texts: dict[str, TextColumn] = field(default_factory=dict)  # read on first use (Selection.filter_mask)

    def mask(self, filters: Filters) -> np.ndarray | None:
        """Which track ids pass ``filters`` (a boolean array indexed by id), or None when they
        hold a filter these columns cannot match (a path glob, tags: those run in SQLite), or
        a text filter whose column is not in ``texts``. An unknown (NaN) value passes no
        bound, as NULL in SQL; a NULL text contains nothing (and so is never excluded)."""
        needed = text_columns_needed(filters)
        if needed is None or not needed <= self.texts.keys():
            return None
        mask = np.ones(len(self.year), bool)
        if isinstance(filters.year, tuple):
            mask &= (self.year >= filters.year[0]) & (self.year <= filters.year[1])
        if filters.min_duration is not None:
            mask &= self.duration >= float(filters.min_duration)
        if filters.max_duration is not None:
            mask &= self.duration <= float(filters.max_duration)
        for name in ("genre", "album"):
            if (value := getattr(filters, name)) is not None:
                mask &= self.texts[name].containing(value)
        if filters.artist is not None:
            mask &= self._artist(filters.artist)
        for name in filters.exclude_artists:
            mask &= ~self._artist(name)
        for genre in filters.exclude_genres:
            mask &= ~self.texts["genre"].containing(genre)
        if filters.exclude_artists or filters.exclude_genres:  # ids without a track contain nothing
            mask &= next(iter(self.texts.values())).present()
        if filters.track_ids is not None:
            ids = np.asarray(filters.track_ids, np.int64)
            only = np.zeros(len(mask), bool)
            only[ids[(ids >= 0) & (ids < len(mask))]] = True
            mask &= only
        return mask

    def _artist(self, name: str) -> np.ndarray:
        """The tracks whose artist or album artist contains ``name``."""
        return self.texts["artist"].containing(name) | self.texts["albumartist"].containing(name)


_COLUMNAR = frozenset(("year", "min_duration", "max_duration", "track_ids", "genre", "album", "artist"))
_COLUMNAR |= {"exclude_artists", "exclude_genres"}


def text_columns_needed(filters: Filters) -> set[str] | None:
    """The text columns that ``FilterColumns.mask`` needs for ``filters``; None when they
    hold a filter it cannot match, or none at all."""
    given = {k for k, v in vars(filters).items() if v not in (None, ()) or (k == "track_ids" and v is not None)}
    if not given or not given <= _COLUMNAR:
        return None
    needed: set[str] = {name for name in ("genre", "album") if name in given}
    if given & {"artist", "exclude_artists"}:
        needed |= {"artist", "albumartist"}
    if "exclude_genres" in given:
        needed.add("genre")
    return needed


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
    if isinstance(filters.bpm, tuple):
        ranges = bpm_ranges(cast(tuple[float, float], filters.bpm), bool(filters.strict_bpm))  # parsed by Filters
        where.append("(" + " or ".join("t.bpm between ? and ?" for _ in ranges) + ")")
        params += [end for r in ranges for end in r]
    if filters.key is not None:
        where.append("t.key = ?")
        params.append(filters.key)
    if filters.key_compatible is not None:
        names = [k.name for k in compatible(parse_key(filters.key_compatible))]
        where.append(f"t.key in ({', '.join('?' * len(names))})")
        params += names
    if filters.track_ids is not None:
        where.append(f"t.id in ({', '.join('?' * len(filters.track_ids))})")
        params += list(filters.track_ids)
    return (" and ".join(where) or "1"), params


class Selection(Connection):
    """The store's reads of which tracks pass a filter."""

    _filter_columns: tuple[int, FilterColumns | None] | None = None  # (generation, columns), read once per generation

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

    def filter_mask(self, filters: Filters) -> np.ndarray | None:
        """Which track ids pass ``filters``, matched in numpy over ``filter_columns`` (the text
        columns a filter needs read on first use, once per generation): a boolean array
        indexed by id; None when the columns cannot match them (the caller asks SQLite)."""
        needed = text_columns_needed(filters)
        columns = self.filter_columns() if needed is not None else None
        if columns is None or needed is None:
            return None
        for name in needed - columns.texts.keys():
            columns.texts[name] = TextColumn.read(self.conn, name, len(columns.year))
        return columns.mask(filters)

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
