"""Tests of musicsearch/store/connection.py: opening, the meta table, the write transaction and
its generation, reads without sqlite-utils."""

import subprocess
import sys

import pytest

from musicsearch.config import PIPELINE_VERSION
from musicsearch.errors import IndexNotFound
from musicsearch.store import IndexMeta, Store
from musicsearch.vectors import load_or_build

META = IndexMeta(
    model="org/clap",
    revision="abc123",
    dim=512,
    window_seconds=10.0,
    pipeline_version=PIPELINE_VERSION,
    model_check="passed",
    created_at="2025-01-02T03:04:05+00:00",
)


def test_missing_index_is_not_created_on_read(tmp_path):
    with pytest.raises(IndexNotFound):
        Store(tmp_path / "nothing")
    assert not (tmp_path / "nothing").exists()


def test_every_write_bumps_generation_and_faiss_follows(store, rec):
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


def test_failed_write_rolls_back(store, rec):
    g0 = store.generation
    with pytest.raises(RuntimeError), store.write():
        store.put_track(rec("/a.wav", [[1, 0]]), "now")
        raise RuntimeError("killed")
    assert store.counts()["tracks"] == 0 and store.generation == g0


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
