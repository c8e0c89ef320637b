import numpy as np
import pytest

from musicsearch.errors import IndexNotFound
from musicsearch.store import Store, TrackRecord, load_faiss, track_vector


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
    s.set_meta({"dim": "2"})
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
    index = load_faiss(store)
    assert index.ntotal == 1
    assert [p.name for p in store.dir.glob("*.faiss")] == [f"tracks-g{g0 + 1}.faiss"]
    with store.write():
        store.put_track(rec("/b.wav", [[0, 1]]), "now")
    assert load_faiss(store).ntotal == 2
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
