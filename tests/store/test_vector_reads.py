"""Tests of musicsearch/store/vector_reads.py: the vector log."""


def test_the_vector_log_names_every_change(store, rec):
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
