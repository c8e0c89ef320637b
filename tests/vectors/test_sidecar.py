"""The float16 sidecar (musicsearch/vectors/sidecar.py): later rows win, each track lists its
windows, gathers read runs of rows and leave no pages resident, and prefetch reads a file
into the page cache unless it is too large."""

import sys
from pathlib import Path

import numpy as np
import pytest

from musicsearch import vectors
from musicsearch.vectors import sidecar


def test_sidecar_later_rows_win_and_each_track_lists_its_windows(tmp_path):
    vecs = np.eye(8, dtype=np.float32)[:, :4]
    rows = vectors.Sidecar.append(
        tmp_path, "w", 4, 0, iter([(np.array([1, 2, 3]), vecs[:3], np.array([10, 10, 11]))]), owners=True
    )
    sc = vectors.Sidecar(tmp_path, "w", 4, rows)
    # track 10 re-embedded (windows 1, 2 -> 4, 5), window 3 of track 11 written again
    chunk = (np.array([3, 4, 5]), vecs[3:6], np.array([11, 10, 10]))
    rows = vectors.Sidecar.append(tmp_path, "w", 4, rows, iter([chunk]), owners=True)
    sc.extend(rows)
    fresh = vectors.Sidecar(tmp_path, "w", 4, rows)
    for s in (sc, fresh):
        got, found = s.rows_of(np.array([1, 2, 3, 4, 5, 9, -1]))
        assert got[found].tolist() == [0, 1, 3, 4, 5] and found.tolist() == [True] * 5 + [False, False]
        listed = s.track_rows(np.array([10, 11, 12]))
        assert listed is not None
        assert [a.tolist() for a in listed] == [[4, 5, 3], [0, 2], [10, 11]]
        assert s.owner_of(np.array([5, 3, 9])).tolist() == [10, 11, -1]
        assert s.gather(np.array([3, 0])).tolist() == [vecs[3].tolist(), vecs[0].tolist()]
    # track 10 re-embedded again, its new windows reusing ids 4, 5 (SQLite gives max(id) + 1): rows 6, 7 follow
    # rows 4, 5 of the same track, yet are a run of their own, not one of four windows
    rows = vectors.Sidecar.append(
        tmp_path, "w", 4, rows, iter([(np.array([4, 5]), vecs[6:8], np.array([10, 10]))]), owners=True
    )
    sc.extend(rows)
    for s in (sc, vectors.Sidecar(tmp_path, "w", 4, rows)):
        listed = s.track_rows(np.array([10]))
        assert listed is not None and [a.tolist() for a in listed] == [[6, 7], [0], [10]]
    # a sidecar written before owners existed has none: nothing is guessed
    vectors.Sidecar.append(tmp_path, "t", 4, 0, iter([(np.array([1]), vecs[:1])]))
    old = vectors.Sidecar(tmp_path, "t", 4, 1)
    assert old.track_rows(np.array([1])) is None and old.owner_of(np.array([1])) is None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_a_gather_leaves_no_sidecar_pages_resident(tmp_path, monkeypatch):
    def rss_file_kb():
        status = dict(line.split(":", 1) for line in Path("/proc/self/status").read_text().splitlines() if ":" in line)
        return int(status["RssFile"].split()[0])

    n, dim = 40_000, 512  # 40 MB of float16
    rng = np.random.default_rng(0)
    chunks = (
        (np.arange(a, a + 10_000), rng.standard_normal((10_000, dim)).astype(np.float16)) for a in range(0, n, 10_000)
    )
    rows = vectors.Sidecar.append(tmp_path, "v", dim, 0, chunks)
    sc = vectors.Sidecar(tmp_path, "v", dim, rows)
    (tmp_path / "v.f16").read_bytes()  # in the page cache, as on a serving machine
    picks = [np.sort(rng.choice(n, 2000, replace=False)) for _ in range(3)]
    expected = [sc.vectors[p].astype(np.float32) for p in picks]
    sc.release()
    before = rss_file_kb()
    got = [sc.gather(picks[0])]  # preadv: nothing mapped
    kept = rss_file_kb() - before
    monkeypatch.setattr(sc, "_fd", -1)  # where preadv is missing: the mapping, released after each block
    before = rss_file_kb()
    got.append(sc.gather(picks[1]))
    kept_mapped = rss_file_kb() - before
    monkeypatch.setattr(sc, "release", lambda: None)  # the bad case: pages stay mapped
    before = rss_file_kb()
    got.append(sc.gather(picks[2]))
    unreleased = rss_file_kb() - before
    assert kept < 1024 and kept_mapped < 1024
    assert unreleased > 2000 * dim * 2 // 1024  # at least the rows themselves stay resident
    assert all(np.array_equal(g, e) for g, e in zip(got, expected))


def test_a_gather_reads_runs_of_rows_in_any_order_with_repeats(tmp_path):
    dim = 8
    vecs = np.arange(100 * dim, dtype=np.float16).reshape(100, dim) / 8
    rows = vectors.Sidecar.append(tmp_path, "v", dim, 0, iter([(np.arange(100), vecs)]))
    sc = vectors.Sidecar(tmp_path, "v", dim, rows)
    picks = np.array([5, 6, 7, 99, 0, 6, 50, 51, 3, 4], np.int64)  # runs, a repeat, both ends, unsorted
    assert np.array_equal(sc.gather(picks), vecs[picks].astype(np.float32))
    assert sc.gather(np.zeros(0, np.int64)).shape == (0, dim)
    with pytest.raises(IndexError):
        sc.gather(np.array([100]))


def test_prefetch_reads_the_file_and_skips_one_too_large(tmp_path, monkeypatch):
    path = tmp_path / "v.f16"
    path.write_bytes(b"\0" * 2500)
    reads = []
    real_open = open

    class Counting:
        def __init__(self, f):
            self.f = f

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.f.close()

        def readinto(self, buf):
            n = self.f.readinto(buf)
            reads.append(n)
            return n

    monkeypatch.setattr("builtins.open", lambda p, *a, **kw: Counting(real_open(p, *a, **kw)))
    monkeypatch.setattr(sidecar, "PREFETCH_CHUNK", 1000)
    monkeypatch.setattr(sidecar, "memory_available", lambda: 10_000)
    thread = vectors.prefetch(path, 0.5)
    assert thread is not None
    thread.join(5)
    assert reads == [1000, 1000, 500, 0] * 2  # the whole file, chunk by chunk, twice
    reads.clear()
    assert vectors.prefetch(path, 0.2) is None and reads == []  # 2,500 bytes > 0.2 x 10,000
    monkeypatch.setattr(sidecar, "memory_available", lambda: None)
    assert vectors.prefetch(path, 0.5) is None
