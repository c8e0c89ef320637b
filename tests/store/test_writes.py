"""Tests of musicsearch/store/writes.py: tracks replaced in place, failures, float16 windows."""

import numpy as np

from musicsearch.store import IndexMeta, Store


def test_put_track_replaces_in_place(store, rec):
    with store.write():
        tid = store.put_track(rec("/a.wav", [[1, 0], [0, 1]]), "now")
    with store.write():
        assert store.put_track(rec("/a.wav", [[0, 1]], size=2), "now") == tid
    assert store.counts() == {"tracks": 1, "windows": 1, "failures": 0}
    starts, _ends, vecs = store.window_vectors([tid])[tid]
    assert starts.tolist() == [0.0] and vecs.tolist() == [[0.0, 1.0]]


def test_failure_replaces_a_track(store, rec):
    with store.write():
        store.put_track(rec("/a.wav", [[1, 0]]), "now")
    with store.write():
        store.put_failure("/a.wav", 5, 5, "empty file (0 bytes)", "now")
    assert store.counts() == {"tracks": 0, "windows": 0, "failures": 1}


def test_windows_turn_float16_past_the_threshold_and_both_dtypes_read_back(tmp_path, rec):
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
