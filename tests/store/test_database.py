"""Tests of musicsearch/store/database.py: ``Store`` joins every part of the store. Opened or
created, one write is read back through each part (track reads, vector reads, selection, the
name index, meta), reopened from disk, and closed. (Each part's own cases:
tests/store/test_<part>.py.)"""

import sqlite3
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from musicsearch.errors import IndexNotFound
from musicsearch.filters import Filters
from musicsearch.store import MIGRATIONS, IndexMeta, Store, Track
from musicsearch.store.connection import Connection
from musicsearch.store.names import Names
from musicsearch.store.selection import Selection
from musicsearch.store.track_reads import TrackReads
from musicsearch.store.vector_reads import VectorReads
from musicsearch.store.writes import Writes

PARTS = (Writes, TrackReads, VectorReads, Selection, Names)
A_TAGS = {"title": "Blue", "artist": "Ann Lee", "album": "Nights", "genre": "Jazz", "year": 1995, "tracknumber": 3}


def test_the_store_is_every_part_joined():
    assert Store.__mro__[1:7] == (*PARTS, Connection)
    for part in (*PARTS, Connection):
        public = {name for name in vars(part) if not name.startswith("_")}
        assert public and all(getattr(Store, name) is getattr(part, name) for name in public), part


def test_opening_a_missing_index_is_an_error_and_creating_one_migrates_it(tmp_path):
    with pytest.raises(IndexNotFound) as err:
        Store(tmp_path / "idx")
    assert str(err.value) == (
        f"no index at {tmp_path / 'idx'}; build one with: musicsearch index FOLDER --index {tmp_path / 'idx'}"
    )
    assert not (tmp_path / "idx").exists()
    (tmp_path / "other").mkdir()
    sqlite3.connect(tmp_path / "other" / "musicsearch.db").close()  # an empty database: not an index
    with pytest.raises(IndexNotFound) as err:
        Store(tmp_path / "other")
    assert str(err.value) == f"{tmp_path / 'other' / 'musicsearch.db'} is not a musicsearch index"
    store = Store(tmp_path / "idx", create=True)
    assert (store.dir, store.db_path) == (tmp_path / "idx", tmp_path / "idx" / "musicsearch.db")
    assert store.applied_migrations() == [m.__name__ for m in MIGRATIONS] and store.pending_migrations() == []
    assert (store.generation, store.index_meta()) == (0, None)
    assert store.counts() == {"tracks": 0, "windows": 0, "failures": 0} and store.has_name_index()
    store.close()


@pytest.fixture
def written(tmp_path, rec):
    """A store after one write: /m/a.flac (two windows, tagged), /m/b.wav (one window), a failure."""
    store = Store(tmp_path / "idx", create=True)
    meta = IndexMeta.new("m", None, 2, 10.0, checked=False)
    store.record_meta(meta)
    with store.write():
        a = store.put_track(replace(rec("/m/a.flac", [[1, 0], [0, 1]], size=5, mtime=6), tags=A_TAGS), "now")
        b = store.put_track(rec("/m/b.wav", [[0.6, 0.8]]), "now")
        store.set_tags(a, [("v", "piano", 0.9), ("v", "calm", 0.4)])
        store.put_failure("/m/c.mp3", 7, 8, "not audio", "now")
    yield store, meta, a, b
    store.close()


def test_one_write_reads_back_through_every_part(written):
    store, meta, a, b = written
    assert store.index_meta() == meta and store.generation == 1  # record_meta changes no vector
    # track reads
    assert store.counts() == {"tracks": 2, "windows": 3, "failures": 1}
    assert store.tracks([a, b]) == {
        a: Track(a, "/m/a.flac", "Blue", "Ann Lee", "Nights", None, "Jazz", 1995, 3, 20.0, 2),
        b: Track(b, "/m/b.wav", "/m/b.wav", None, None, None, None, None, None, 10.0, 1),
    }
    assert store.known_files(Path("/m")) == {"/m/a.flac": (a, 5, 6, "h/m/a.flac"), "/m/b.wav": (b, 1, 1, "h/m/b.wav")}
    assert store.known_failures(Path("/m")) == {"/m/c.mp3": (7, 8, "not audio")}
    assert store.hashes_of(["/m/a.flac", "/m/x.flac"]) == {"/m/a.flac": "h/m/a.flac"}
    assert store.failures() == [("/m/c.mp3", "not audio")]
    assert [t.id for t in store.find_tracks("blue")] == [a]
    assert store.tags_of([a, b]) == {a: [("v", "piano", 0.9), ("v", "calm", 0.4)], b: []}
    assert store.untagged_ids() == [b]
    # vector reads: each track's vector is the normalized mean of its windows
    ids, vecs = store.track_vectors()
    assert ids.tolist() == [a, b] and np.round(vecs.astype(np.float64), 6).tolist() == [
        [0.707107, 0.707107],
        [0.6, 0.8],
    ]
    wids, wvecs = store.all_window_vectors()
    assert len(wids) == 3 and wvecs.tolist() == [[1, 0], [0, 1], [np.float32(0.6), np.float32(0.8)]]
    assert store.windows_by_id(wids.tolist()) == {
        wids[0]: (a, 0.0, 10.0),
        wids[1]: (a, 10.0, 20.0),
        wids[2]: (b, 0.0, 10.0),
    }
    # selection and the name index
    assert store.filtered_ids(Filters(genre="jazz")).tolist() == [a]
    assert store.count_filtered(Filters(year="1990-1999"), 10) == 1
    columns = store.filter_columns()
    assert columns is not None and columns.year[a] == 1995 and np.isnan(columns.year[b])
    assert store.name_matches(["ann", "lee"], ["artist"], 5) == [(a, "Ann Lee")]


def test_a_failed_write_leaves_nothing_and_a_reopened_store_reads_the_same(written, rec):
    store, meta, a, _ = written
    with pytest.raises(RuntimeError), store.write():
        store.remove_tracks([a])
        store.put_track(rec("/m/d.wav", [[1, 0]]), "now")
        raise RuntimeError("killed")
    assert store.counts() == {"tracks": 2, "windows": 3, "failures": 1} and store.generation == 1
    again = Store(store.dir)  # opened, not created: nothing to migrate
    assert again.pending_migrations() == [] and again.index_meta() == meta and again.generation == 1
    assert again.tracks([a]) == store.tracks([a]) and again.tags_of([a]) == store.tags_of([a])
    assert again.track_vectors()[1].tolist() == store.track_vectors()[1].tolist()
    again.close()
    with pytest.raises(sqlite3.ProgrammingError):
        again.counts()
    assert store.counts()["tracks"] == 2  # the other connection stays open
