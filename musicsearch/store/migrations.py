"""The schema, as numbered migrations (sqlite-utils ``Migrations``, recorded in the
``_sqlite_migrations`` table), applied in order when a store is opened; and the one place that
imports sqlite-utils (``import_sqlite_utils``), which reads never need."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from ..process import pandas_hidden

if TYPE_CHECKING:
    from sqlite_utils import Database
    from sqlite_utils.migrations import Migrations

# The ``schema_version`` meta key: 1 + the number of the last migration applied (the schema
# from before numbered migrations, which migration 1 reproduces, already called itself 2).
SCHEMA_VERSION = 7
MIGRATION_SET = "musicsearch"
# Where sqlite-utils records applied migrations (``Migrations.migrations_table``); read with
# plain sqlite3 so that opening an up-to-date index does not import sqlite-utils.
MIGRATIONS_TABLE = "_sqlite_migrations"


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


def m006_tempo_key(db: Database) -> None:
    """Tempo and key (musicsearch/analysis.py): each value with its source, 'tag' (the file's
    own tag) or 'estimate' (the analysis), the estimates' confidences, the RMS level
    (``energy``, dBFS), and ``analysed``, the analysis version that filled them (NULL: not
    analysed yet, so the next index run analyses the track without embedding it again).
    Indexed for the tempo and key filters."""
    for column, kind in (
        ("bpm", "real"),
        ("bpm_confidence", "real"),
        ("bpm_source", "text"),
        ("key", "text"),
        ("key_confidence", "real"),
        ("key_source", "text"),
        ("energy", "real"),
        ("analysed", "integer"),
    ):
        db.execute(f"alter table tracks add column {column} {kind}")
    db.execute("create index tracks_tempo_key on tracks (bpm, key)")
    db.execute("insert or replace into meta (key, value) values ('schema_version', '7')")


MIGRATIONS = (
    m001_initial,
    m002_drop_unused_meta,
    m003_track_warnings,
    m004_vector_log,
    m005_tracks_fts,
    m006_tempo_key,
)


def import_sqlite_utils() -> None:
    """Import sqlite-utils, without pandas where the process's owner allows it
    (``process.pandas_hidden``: sqlite-utils imports pandas for nothing musicsearch writes)."""
    if "sqlite_utils.db" in sys.modules:
        return
    with pandas_hidden():
        import sqlite_utils.db  # noqa: F401


def migration_set() -> Migrations:
    """The numbered migrations as a sqlite-utils ``Migrations`` set (imports sqlite-utils)."""
    import_sqlite_utils()
    from sqlite_utils.migrations import Migrations

    migrations = Migrations(MIGRATION_SET)
    for fn in MIGRATIONS:
        migrations()(fn)
    return migrations
