import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from musicsearch.config import PIPELINE_VERSION
from musicsearch.errors import IndexNotFound, ModelMismatch, MusicSearchError
from musicsearch.store import MIGRATIONS_TABLE, IndexMeta, Store, TrackRecord, track_vector
from musicsearch.vectors import load_or_build, search

FIXTURE = Path(__file__).parent / "fixtures" / "index-schema2"
MIGRATIONS = ["m001_initial", "m002_drop_unused_meta", "m003_track_warnings", "m004_vector_log", "m005_tracks_fts"]


def rec(path, vecs, size=1, mtime=1):
    vecs = np.asarray(vecs, np.float32)
    n = len(vecs)
    return TrackRecord(
        path,
        size,
        mtime,
        "h" + path,
        {"title": path},
        10.0 * n,
        [10.0 * i for i in range(n)],
        [10.0 * (i + 1) for i in range(n)],
        vecs,
    )


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "idx", create=True)
    s.record_meta(IndexMeta.new("m", None, 2, 10.0, checked=False))
    return s


def test_missing_index_is_not_created_on_read(tmp_path):
    with pytest.raises(IndexNotFound):
        Store(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_track_vector_is_normalized_mean():
    v = track_vector(np.array([[1, 0], [0, 1]], np.float32))
    np.testing.assert_allclose(v, [2**-0.5, 2**-0.5], atol=1e-7)


def test_put_track_replaces_in_place(store):
    with store.write():
        tid = store.put_track(rec("/a.wav", [[1, 0], [0, 1]]), "now")
    with store.write():
        assert store.put_track(rec("/a.wav", [[0, 1]], size=2), "now") == tid
    assert store.counts() == {"tracks": 1, "windows": 1, "failures": 0}
    starts, _ends, vecs = store.window_vectors([tid])[tid]
    assert starts.tolist() == [0.0] and vecs.tolist() == [[0.0, 1.0]]


def test_every_write_bumps_generation_and_faiss_follows(store):
    g0 = store.generation
    with store.write():
        store.put_track(rec("/a.wav", [[1, 0]]), "now")
    assert store.generation == g0 + 1
    index = load_or_build(store, "tracks")
    assert index.ntotal == 1
    assert [p.name for p in store.dir.glob("*.faiss")] == [f"tracks-g{g0 + 1}.faiss"]
    with store.write():
        store.put_track(rec("/b.wav", [[0, 1]]), "now")
    assert load_or_build(store, "tracks").ntotal == 2
    assert [p.name for p in store.dir.glob("*.faiss")] == [f"tracks-g{g0 + 2}.faiss"]


def test_failed_write_rolls_back(store):
    g0 = store.generation
    with pytest.raises(RuntimeError), store.write():
        store.put_track(rec("/a.wav", [[1, 0]]), "now")
        raise RuntimeError("killed")
    assert store.counts()["tracks"] == 0 and store.generation == g0


def test_failure_replaces_a_track(store):
    with store.write():
        store.put_track(rec("/a.wav", [[1, 0]]), "now")
    with store.write():
        store.put_failure("/a.wav", 5, 5, "empty file (0 bytes)", "now")
    assert store.counts() == {"tracks": 0, "windows": 0, "failures": 1}


# typed meta ---------------------------------------------------------------------

META = IndexMeta(
    model="org/clap",
    revision="abc123",
    dim=512,
    window_seconds=10.0,
    pipeline_version=PIPELINE_VERSION,
    model_check="passed",
    created_at="2025-01-02T03:04:05+00:00",
)


def test_meta_is_none_until_a_model_is_recorded(tmp_path):
    s = Store(tmp_path / "idx", create=True)
    assert s.index_meta() is None
    s.record_meta(META)
    assert s.index_meta() == META
    rows = dict(s.conn.execute("select key, value from meta").fetchall())
    assert {k: rows[k] for k in ("revision", "dim", "window_seconds", "model_check")} == {
        "revision": "abc123",
        "dim": "512",
        "window_seconds": "10.0",
        "model_check": "passed",
    }
    assert "hop_seconds" not in rows and "sample_rate" not in rows


def test_new_meta_records_this_pipeline():
    meta = IndexMeta.new("org/clap", "", 512, 10, checked=False)
    assert (meta.revision, meta.dim, meta.window_seconds, meta.pipeline_version, meta.model_check) == (
        None,
        512,
        10.0,
        PIPELINE_VERSION,
        "skipped",
    )
    assert not meta.passed_check("org/clap") and META.passed_check("org/clap") and not META.passed_check("other")


def test_meta_checks_itself_against_a_model():
    META.check("org/clap", "abc123", 512, "/idx")  # the same model: no error
    cases = [
        (("other/clap", None, 512), "index /idx was built with model org/clap@abc123, not other/clap; "),
        (("org/clap", "def", 512), "index /idx was built with model org/clap@abc123, not org/clap@def; "),
        (("org/clap", "abc123", 768), "index /idx holds 512-d vectors; the model gives 768-d"),
    ]
    for args, message in cases:
        with pytest.raises(ModelMismatch) as err:
            META.check(*args, "/idx")
        assert str(err.value).startswith(message)
    with pytest.raises(ModelMismatch) as err:
        IndexMeta(**{**META.__dict__, "revision": None}).check("org/clap", "v2", 512, "/idx")
    assert str(err.value) == (
        "index /idx was built with model org/clap, not org/clap@v2; drop --model, or use another --index folder"
    )
    with pytest.raises(ModelMismatch) as err:
        IndexMeta(**{**META.__dict__, "pipeline_version": "0"}).check("org/clap", "abc123", 512, "/idx")
    assert str(err.value) == (
        f"index /idx was built by pipeline version 0 (this is {PIPELINE_VERSION}); rebuild it in a new --index folder"
    )


def test_damaged_meta_is_one_error_line():
    with pytest.raises(MusicSearchError, match=r"^index /idx has a damaged meta table: dim = 'wide'$"):
        IndexMeta.from_values({"model": "m", "dim": "wide"}, "/idx")


# migrations ---------------------------------------------------------------------


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
    assert after["schema_version"] == "6" and store.generation == 2
    assert after["vector_log_since"] == "2"  # migration 4: the log is complete from now on
    new_schema = schema(store.conn)  # migrations 1-2 left today's tables as they were; 3 added one column
    added = {"vector_log", "vector_log_generation", "tracks_filters"} | {
        f"{t}_vector_{e}" for t in ("tracks", "windows") for e in ("add", "del", "upd")
    }
    fts = {"tracks_fts", "tracks_fts_add", "tracks_fts_del", "tracks_fts_upd"} | {
        f"tracks_fts_{part}" for part in ("config", "content", "data", "docsize", "idx")
    }
    added |= fts  # migration 5: full-text search over the names, kept in step by triggers
    assert {r[1] for r in new_schema} - {r[1] for r in old_schema} == added  # migrations 4 and 5
    assert [r for r in new_schema if r[1] not in ("tracks", *added)] == [r for r in old_schema if r[1] != "tracks"]
    (old_tracks,) = [r[2] for r in old_schema if r[:2] == ("table", "tracks")]
    (new_tracks,) = [r[2] for r in new_schema if r[:2] == ("table", "tracks")]
    assert new_tracks.replace(", warning text", "") == old_tracks and new_tracks != old_tracks
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
    assert fresh.conn.execute("select value from meta where key = 'schema_version'").fetchone() == ("6",)
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


def test_reads_do_not_import_sqlite_utils(tmp_path):
    Store(tmp_path / "idx", create=True).close()
    script = f"""
import sys
import musicsearch.process
import musicsearch.store
heavy = lambda: sorted(m for m in ("sqlite_utils", "pandas") if m in sys.modules)
print(heavy())
store = musicsearch.store.Store({str(tmp_path / "idx")!r})
store.counts(), store.index_meta(), store.track_vectors(), store.find_tracks("x"), store.generation
print(heavy())
with musicsearch.process.switched_on(), store.write():  # as the command runs it
    pass
print(heavy())
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True).stdout
    # a write does import sqlite-utils, and not pandas (whether pandas is installed or not)
    assert out.splitlines() == ["[]", "[]", "['sqlite_utils']"]


# compact window vectors ------------------------------------------------------------


def test_windows_turn_float16_past_the_threshold_and_both_dtypes_read_back(tmp_path):
    rng = np.random.default_rng(0)
    vecs = rng.standard_normal((3, 512)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    s = Store(tmp_path / "idx", create=True, compact_from=2)
    s.record_meta(IndexMeta.new("m", None, 512, 10.0, checked=False))
    with s.write():  # 0 tracks before this write: float32, exact
        a = s.put_track(rec("/a.wav", vecs), "now")
        s.put_track(rec("/b.wav", vecs[:1]), "now")
    with s.write():  # 2 tracks: float16 from now on
        c = s.put_track(rec("/c.wav", vecs), "now")
    sizes = dict(s.conn.execute("select track_id, max(length(vector)) from windows group by track_id").fetchall())
    assert (sizes[a], sizes[c]) == (512 * 4, 512 * 2)
    assert s.conn.execute("select length(vector) from tracks where id = ?", [c]).fetchone() == (512 * 4,)
    exact, half = s.window_vectors([a])[a][2], s.window_vectors([c])[c][2]
    assert np.array_equal(exact, vecs) and half.dtype == np.float32
    cosines = (half * vecs).sum(axis=1) / np.linalg.norm(half, axis=1)
    assert cosines.min() > 0.999999 and np.abs(half - vecs).max() < 2**-11  # float16: 11 significant bits
    ids, mixed = s.all_window_vectors()  # float32 and float16 rows side by side
    assert len(ids) == 7 and np.array_equal(mixed[:3], vecs) and np.allclose(mixed[4:], vecs, atol=2**-11)
    assert [len(i) for i, _ in s.iter_vectors("windows", chunk=3)] == [3, 3, 1]


def test_loss_of_float16_on_clap_like_vectors():
    """The measured loss: cosine between each float32 vector and its float16 copy."""
    from musicsearch.store import from_blobs, to_blob

    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((2000, 512)).astype(np.float32) + 0.5  # clustered off the origin, like CLAP's
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    half = from_blobs([to_blob(v, np.float16) for v in vecs], 512).astype(np.float64)
    cos = (half * vecs).sum(axis=1) / np.linalg.norm(half, axis=1) / np.linalg.norm(vecs.astype(np.float64), axis=1)
    assert 0.9999995 < cos.min() <= cos.mean() < 1 - 1e-9  # lossy, but by less than 5e-7 in cosine
    with pytest.raises(MusicSearchError, match="has 10 bytes; the index is 512-d"):
        from_blobs([to_blob(vecs[0]), b"0123456789"], 512)


def test_the_vector_log_names_every_change(store):
    g0 = store.generation
    with store.write():
        a = store.put_track(rec("/a.wav", [[1, 0], [0, 1]]), "now")
        b = store.put_track(rec("/b.wav", [[1, 0]]), "now")
    assert store.changed_ids("tracks", g0).tolist() == [a, b]
    assert store.changed_ids("windows", g0).tolist() == [1, 2, 3]
    g1 = store.generation
    with store.write(vectors=False):
        store.move_track(a, "/moved.wav", 1, 1)  # no vector changes
    assert store.changed_ids("tracks", g1).tolist() == []
    with store.write():
        store.put_track(rec("/b.wav", [[0, 1]], size=2), "now")  # re-embedded: same id, new window
    with store.write():
        store.remove_tracks([a])
    assert store.changed_ids("tracks", g1).tolist() == [a, b]
    # /b.wav's new window reused the id of its old one (SQLite hands out max(rowid) + 1): an id
    # diff against SQLite would miss that change, the log does not
    assert store.changed_ids("windows", g1).tolist() == [1, 2, 3]
    store.prune_vector_log(g1)
    assert store.changed_ids("tracks", g0) is None and store.changed_ids("tracks", g1).tolist() == [a, b]
