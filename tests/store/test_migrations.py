"""Tests of musicsearch/store/migrations.py: an old-schema index is migrated, a new one gets the
same schema, a newer one is refused."""

import shutil
import sqlite3
from pathlib import Path

import pytest

from musicsearch.errors import MusicSearchError
from musicsearch.store import MIGRATIONS_TABLE, IndexMeta, Store
from musicsearch.vectors import load_or_build, search

FIXTURE = Path(__file__).parent.parent / "fixtures" / "index-schema2"
MIGRATIONS = ["m001_initial", "m002_drop_unused_meta", "m003_track_warnings", "m004_vector_log", "m005_tracks_fts"]
MIGRATIONS += ["m006_tempo_key"]


def schema(conn):
    rows = conn.execute(
        "select type, name, sql from sqlite_master where tbl_name != ? and name not like 'sqlite_%'", [MIGRATIONS_TABLE]
    )
    return sorted(rows)


def test_an_index_from_before_migrations_is_migrated(tmp_path, fake_embedder_cls):
    shutil.copytree(FIXTURE, tmp_path / "old")
    raw = sqlite3.connect(tmp_path / "old" / "musicsearch.db")
    before = dict(raw.execute("select key, value from meta").fetchall())
    old_schema = schema(raw)
    raw.close()
    assert (before["schema_version"], before["hop_seconds"], before["sample_rate"]) == ("2", "10.0", "48000")
    dropped = ("hop_seconds", "sample_rate", "text_onnx", "text_onnx_cosine", "logit_scale", "pad_token_id")
    assert all(k in before for k in dropped)

    store = Store(tmp_path / "old")
    assert store.applied_migrations() == MIGRATIONS and store.pending_migrations() == []
    after = dict(store.conn.execute("select key, value from meta").fetchall())
    assert {k: v for k, v in before.items() if k not in (*dropped, "schema_version")} == {
        k: v for k, v in after.items() if k not in ("schema_version", "vector_log_since")
    }
    assert after["schema_version"] == "7" and store.generation == 2
    assert after["vector_log_since"] == "2"  # migration 4: the log is complete from now on
    new_schema = schema(store.conn)  # migrations 1-2 left today's tables as they were; 3 added one column
    added = {"vector_log", "vector_log_generation", "tracks_filters"} | {
        f"{t}_vector_{e}" for t in ("tracks", "windows") for e in ("add", "del", "upd")
    }
    fts = {"tracks_fts", "tracks_fts_add", "tracks_fts_del", "tracks_fts_upd"} | {
        f"tracks_fts_{part}" for part in ("config", "content", "data", "docsize", "idx")
    }
    added |= fts  # migration 5: full-text search over the names, kept in step by triggers
    added |= {"tracks_tempo_key"}  # migration 6: the tempo and key filters' index
    assert {r[1] for r in new_schema} - {r[1] for r in old_schema} == added  # migrations 4, 5 and 6
    assert [r for r in new_schema if r[1] not in ("tracks", *added)] == [r for r in old_schema if r[1] != "tracks"]
    (old_tracks,) = [r[2] for r in old_schema if r[:2] == ("table", "tracks")]
    (new_tracks,) = [r[2] for r in new_schema if r[:2] == ("table", "tracks")]
    musical = ", bpm real, bpm_confidence real, bpm_source text, key text, key_confidence real, key_source text"
    musical += ", energy real, analysed integer"
    assert new_tracks.replace(", warning text", "").replace(musical, "") == old_tracks and new_tracks != old_tracks
    # migration 6: no track is analysed yet (the next index run analyses them, embedding nothing)
    assert store.conn.execute("select count(*) from tracks where analysed is null").fetchone()[0] == 2
    assert store.conn.execute("select count(*) from tracks where bpm is not null or key is not null").fetchone() == (0,)
    assert store.index_meta() == IndexMeta(
        model="fake-embedder",
        revision=None,
        dim=24,
        window_seconds=10.0,
        pipeline_version="1",
        model_check="passed",
        created_at="2026-11-21T14:36:45+00:00",
    )

    assert store.counts() == {"tracks": 2, "windows": 5, "failures": 1}
    tracks = store.tracks([1, 2])
    assert [(t.title, t.n_windows, t.duration) for t in tracks.values()] == [("a440", 3, 25.0), ("b1200", 2, 12.0)]
    assert [r[1].split(" (")[0] for r in store.failures()] == ["not audio, or a format FFmpeg cannot read"]
    assert store.tags_of([2])[2][0][:2] == ("genre", "lo-fi")
    starts, ends, _vecs = store.window_vectors([1])[1]
    assert starts.tolist() == [0.0, 10.0, 15.0] and ends.tolist() == [10.0, 20.0, 25.0]

    fake = fake_embedder_cls()
    queries = fake.embed_texts(["a 440 Hz tone", "a 1200 Hz tone"])
    hits = search(load_or_build(store, "tracks"), queries, 2)
    assert [ids[0] for ids, _ in hits] == [1, 2] and [round(float(s[0]), 5) for _, s in hits] == [1.0, 1.0]
    ((window_ids, _),) = search(load_or_build(store, "windows"), queries[1], 5)
    assert sorted(window_ids[:2].tolist()) == [4, 5]  # the two windows of the 1200 Hz track
    store.close()

    again = Store(tmp_path / "old")  # nothing left to apply
    assert again.applied_migrations() == MIGRATIONS
    assert again.conn.execute(f"select count(*) from {MIGRATIONS_TABLE}").fetchone()[0] == len(MIGRATIONS)


def test_a_new_index_gets_the_schema_of_an_old_one(tmp_path):
    fresh = Store(tmp_path / "new", create=True)
    shutil.copytree(FIXTURE, tmp_path / "old")
    Store(tmp_path / "old").close()  # migrated
    old = sqlite3.connect(tmp_path / "old" / "musicsearch.db")
    assert schema(fresh.conn) == schema(old)
    assert fresh.applied_migrations() == MIGRATIONS and fresh.generation == 0
    assert fresh.conn.execute("select value from meta where key = 'schema_version'").fetchone() == ("7",)
    assert fresh.conn.execute("pragma journal_mode").fetchone() == ("wal",)
    old.close()


def test_migrations_table_is_the_one_sqlite_utils_uses():
    from sqlite_utils.migrations import Migrations

    assert Migrations.migrations_table == MIGRATIONS_TABLE


def test_an_index_from_a_newer_version_is_refused(tmp_path):
    Store(tmp_path / "idx", create=True).close()
    with sqlite3.connect(tmp_path / "idx" / "musicsearch.db") as conn:
        conn.execute(
            f"insert into {MIGRATIONS_TABLE} (migration_set, name, applied_at) values ('musicsearch', 'm099_x', 'now')"
        )
    with pytest.raises(
        MusicSearchError, match=r"written by a newer musicsearch \(migration m099_x\); upgrade musicsearch$"
    ):
        Store(tmp_path / "idx")
