"""The index files' lifecycle (musicsearch/vectors/files.py): a missing, stale or damaged file is
rebuilt from SQLite and older generations removed; a read-only folder still answers; the
cache re-reads only when the generation moves; a killed update leaves the last good index."""

import numpy as np
import pytest

from musicsearch import vectors
from musicsearch.store import Store
from musicsearch.vectors import VectorIndexes, build, files, index_path, load, load_or_build, search

IDS = np.array([10, 20, 30, 40], dtype=np.int64)
VECS = np.array([[1, 0, 0], [0.6, 0.8, 0], [0, 0, 1], [0, 0.6, 0.8]], dtype=np.float32)
DIM = 32
SMALL = vectors.ScalePolicy(exact_max={"tracks": 500, "windows": 1500}, tune_queries=40)


def test_missing_file_is_built_and_older_generations_removed(store, r6, faiss_files):
    g = store.generation
    build(IDS, VECS, 3).save(index_path(store.dir, "tracks", g - 1))
    index = load_or_build(store, "tracks")
    assert index.ntotal == 2 and faiss_files(store) == [f"tracks-g{g}.faiss"]
    assert load(store.dir / f"tracks-g{g}.faiss").ntotal == 2
    windows = load_or_build(store, "windows")
    assert windows.ntotal == 3 and faiss_files(store) == [f"tracks-g{g}.faiss", f"windows-g{g}.faiss"]
    ((ids, scores),) = search(windows, np.array([0, 1], np.float32), 3)
    assert len(ids) == 3 and r6(scores) == [1.0, 0.8, 0.0]
    assert store.windows_by_id(ids[:1].tolist())[int(ids[0])][0] == 2  # the window of /b.wav


def test_stale_file_is_rebuilt(store):
    path = index_path(store.dir, "tracks", store.generation)
    build(np.array([1], np.int64), np.array([[1, 0]], np.float32), 2).save(path)  # one vector, two rows
    assert load(path).ntotal == 1
    assert load_or_build(store, "tracks").ntotal == 2
    assert load(path).ntotal == 2


@pytest.mark.parametrize("damage", ["garbage", "truncated", "cut_short", "empty"])
def test_damaged_file_is_rebuilt(store, damage):
    path = index_path(store.dir, "tracks", store.generation)
    build(np.array([1, 2], np.int64), np.array([[1, 0], [0, 1]], np.float32), 2).save(path)
    good = path.read_bytes()
    damaged = {
        "garbage": b"\x00\xffnot a faiss index" * 10,
        "truncated": good[: len(good) // 2],
        "cut_short": good[:-8],  # the last id missing
        "empty": b"",
    }
    path.write_bytes(damaged[damage])
    with pytest.raises(RuntimeError):
        load(path)
    index = load_or_build(store, "tracks")
    assert index.ntotal == 2
    ((ids, _scores),) = search(index, np.array([0, 1], np.float32), 1)
    assert ids.tolist() == [2]
    assert load(path).ntotal == 2


def test_read_only_folder_still_answers(store, monkeypatch, faiss_files):
    def refuse(self, target):
        raise PermissionError(13, "Permission denied", str(target))

    monkeypatch.setattr(vectors.FlatIndex, "save", refuse)
    index = load_or_build(store, "tracks")
    assert index.ntotal == 2 and faiss_files(store) == []


def test_cache_rereads_only_when_the_generation_moves(store, monkeypatch, rec):
    reads = []
    real = files._load_or_build
    monkeypatch.setattr(
        files, "_load_or_build", lambda s, kind, g, *more: reads.append((kind, g)) or real(s, kind, g, *more)
    )
    cache = VectorIndexes(store)
    first = cache.get("tracks")
    assert cache.get("tracks") is first and reads == [("tracks", store.generation)]
    with store.write():
        store.put_track(rec("/c.wav", [[0.6, 0.8]]), "now")
    assert cache.get("tracks").ntotal == 3 and len(reads) == 2
    with store.write(vectors=False):
        store.set_tags(1, [("genre", "rock", 0.5)])
    cache.get("tracks")
    assert len(reads) == 2  # tags change no vector: the index stays
    with pytest.raises(ValueError, match="kind"):
        cache.get("albums")


def test_a_killed_update_leaves_the_last_good_index_in_use(big, monkeypatch, clustered_records):
    cache = VectorIndexes(big, SMALL)
    good = cache.get("tracks").state
    with big.write():
        big.add_tracks(clustered_records(2000, 2010, DIM), "now")

    def killed(self, folder):
        raise KeyboardInterrupt  # dies after the sidecar append and the index file, before the state

    monkeypatch.setattr(vectors.IndexState, "write", killed)
    with pytest.raises(KeyboardInterrupt):
        VectorIndexes(big, SMALL).get("tracks")
    monkeypatch.undo()
    assert not vectors.state_path(big.dir, "tracks", big.generation).exists()  # not in use: no state
    f16, _ = vectors.Sidecar.paths(big.dir, good.sidecar)
    assert f16.stat().st_size > good.rows * DIM * 2  # the dead run's rows are there...
    index = VectorIndexes(Store(big.dir), SMALL).get("tracks")
    assert index.ntotal == 2010 and index.state.rows == good.rows + 10  # ...and were cut off, then rewritten
    assert f16.stat().st_size == index.state.rows * DIM * 2
