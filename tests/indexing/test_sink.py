"""The sink (musicsearch/indexing/sink.py): the one track assembler, whatever order windows,
vectors and ends arrive in; its writers (the store, one transaction per write; Parquet
shards that ingest reads back); and the one write path that local runs and ingest share
(tests/indexing/test_cluster.py checks the cluster run's)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musicsearch import MusicIndex, Settings
from musicsearch.errors import MusicSearchError
from musicsearch.events import IndexReport, Progress
from musicsearch.indexing import sink as sink_module
from musicsearch.indexing.feed import FileEnd
from musicsearch.indexing.ingest import read_shard
from musicsearch.indexing.sink import SHARD_META_KEY, ShardWriter, StoreWriter, TrackSink, shard_contents
from musicsearch.library import AudioFile
from musicsearch.store import Store, TrackRecord

DIM = 4


class Recorder:
    """A writer that keeps what it is given, one entry per write."""

    def __init__(self) -> None:
        self.writes: list[tuple[list[TrackRecord], list[tuple[AudioFile, str]]]] = []
        self.closed = False

    def write(self, tracks, failures=()):
        self.writes.append((list(tracks), list(failures)))

    def close(self) -> None:
        self.closed = True


def files(tmp_path: Path, n: int) -> list[AudioFile]:
    return [AudioFile(tmp_path / f"f{i}.wav", 100 + i, 1_000 + i) for i in range(n)]


def vec(k: int) -> np.ndarray:
    v = np.zeros(DIM, np.float32)
    v[k % DIM] = 1.0
    return v


def test_windows_of_several_files_become_whole_tracks_in_window_order(tmp_path):
    fs = files(tmp_path, 2)
    report, events, out = IndexReport("root"), [], Recorder()
    sink = TrackSink(fs, out, report, updates={str(fs[1].path)}, on_event=events.append)
    sink.window(0, 1, 10.0, 20.0)  # spans first, vectors after the batch is embedded
    sink.window(1, 0, 0.0, 10.0, vec(3))  # or both at once, as the cluster's rows come
    sink.window(0, 0, 0.0, 10.0)
    sink.end(0, FileEnd({"title": "a"}, "h0", None, 2))
    sink.vector(0, 1, vec(1))
    sink.commit()
    assert out.writes == [] and events == []  # file 0 lacks a vector, file 1 its end
    sink.vector(0, 0, vec(0))
    sink.end(1, FileEnd({"title": "b"}, "h1", "cut short", 1))
    sink.commit()
    ((tracks, failures),) = out.writes
    assert failures == [] and [t.path for t in tracks] == [str(fs[0].path), str(fs[1].path)]
    a, b = tracks
    assert (a.starts, a.ends, a.duration, a.hash, a.tags, a.size, a.mtime_ns) == (
        [0.0, 10.0],
        [10.0, 20.0],
        20.0,
        "h0",
        {"title": "a"},
        100,
        1_000,
    )
    np.testing.assert_array_equal(a.vectors, np.stack([vec(0), vec(1)]))
    assert a.vectors.dtype == np.float32 and b.warning == "cut short"
    assert report.added == [str(fs[0].path)] and report.updated == [str(fs[1].path)]
    assert report.warnings == [(str(fs[1].path), "cut short")] and report.windows == 3
    (progress,) = events
    assert isinstance(progress, Progress) and (progress.files_done, progress.files_total, progress.windows) == (2, 2, 3)
    sink.finish()
    sink.close()
    assert out.closed and len(out.writes) == 1  # nothing left: no empty write


def test_a_failed_file_drops_its_windows_and_is_recorded(tmp_path):
    fs = files(tmp_path, 2)
    report, out = IndexReport("root", failed=[("/x", "unreadable folder")]), Recorder()
    sink = TrackSink(fs, out, report, updates=set())
    sink.window(0, 0, 0.0, 10.0)
    sink.fail(0, "decoder crashed")
    sink.vector(0, 0, vec(0))  # its window was in a batch already: counted, not kept
    sink.window(1, 0, 0.0, 5.0, vec(2))
    sink.end(1, FileEnd({}, "h", None, 1))
    sink.finish()
    ((tracks, failures),) = out.writes
    assert [t.path for t in tracks] == [str(fs[1].path)] and failures == [(fs[0], "decoder crashed")]
    assert report.failed == [("/x", "unreadable folder"), (str(fs[0].path), "decoder crashed")]
    assert report.windows == 2


def test_finish_refuses_a_run_that_lost_part_of_a_track(tmp_path):
    fs = files(tmp_path, 1)
    out = Recorder()
    sink = TrackSink(fs, out, IndexReport("root"), updates=set())
    sink.window(0, 0, 0.0, 10.0, vec(0))  # no end: the run lost the rest of the file
    with pytest.raises(MusicSearchError, match="incomplete tracks"):
        sink.finish()
    assert out.writes == []


def record(path: str, n: int, **tags) -> TrackRecord:
    v = np.stack([vec(k) for k in range(n)])
    starts = [10.0 * k for k in range(n)]
    return TrackRecord(
        path, 7, 8, "h-" + path, {"title": Path(path).stem, **tags}, 10.0 * n, starts, [s + 10 for s in starts], v
    )


def test_the_store_writer_writes_each_batch_in_one_transaction(tmp_path):
    store = Store(tmp_path / "idx", create=True)
    writer = StoreWriter(store)
    before = store.generation
    writer.write([record("/m/a.flac", 2)], [(AudioFile(tmp_path / "bad.mp3", 3, 4), "not audio")])
    writer.write([record("/m/a.flac", 3)], new=[record("/m/b.flac", 1)])  # a replaced, b added in bulk
    assert store.generation == before + 2
    assert sorted(store.known_files(Path("/m"))) == ["/m/a.flac", "/m/b.flac"]
    assert store.counts()["windows"] == 4 and store.failures() == [(str(tmp_path / "bad.mp3"), "not audio")]


def test_shards_hold_whole_tracks_that_ingest_reads_back(tmp_path):
    out = tmp_path / "shards"
    writer = ShardWriter(out, "some/model", DIM, shard_windows=3)
    writer.write([record("/m/a.flac", 2, artist="Ann", year=1999)])
    assert list(out.glob("*.parquet")) == []  # 2 windows: below a shard
    writer.write([record("/m/b.flac", 2)], [(AudioFile(Path("/m/bad.mp3"), 5, 6), "not audio")])
    writer.write([record("/m/c.flac", 1)])
    writer.close()
    shards = sorted(out.glob("*.parquet"))
    assert len(shards) == 2 and not list(out.glob("*.tmp"))
    meta = json.loads(pq.read_schema(shards[0]).metadata[SHARD_META_KEY])
    assert (meta["model"], meta["dim"], sorted(meta["files"])) == ("some/model", DIM, ["/m/a.flac", "/m/b.flac"])
    assert shard_contents(out) == (
        {"/m/a.flac": (7, 8), "/m/b.flac": (7, 8), "/m/c.flac": (7, 8)},
        {"/m/bad.mp3": (5, 6, "not audio")},
    )
    assert pq.read_table(shards[0]).schema.field("vector").type == pa.list_(pa.float32())
    tracks = {r.path: r for s in shards for r in read_shard(s, DIM)}
    assert sorted(tracks) == ["/m/a.flac", "/m/b.flac", "/m/c.flac"]
    a = tracks["/m/a.flac"]
    assert (a.starts, a.ends, a.duration) == ([0.0, 10.0], [10.0, 20.0], 20.0)
    assert a.tags == {"title": "a", "artist": "Ann", "year": 1999}
    np.testing.assert_array_equal(a.vectors, record("/m/a.flac", 2).vectors)


def test_local_runs_and_ingest_write_through_the_one_sink(tmp_path, library, fake, monkeypatch):
    writes: list[list[str]] = []
    assembled: list[int] = []
    real_write, real_commit = StoreWriter.write, TrackSink.commit

    def spy_write(self, tracks, failures=(), new=()):
        writes.append(sorted(r.path for r in [*tracks, *new]))
        return real_write(self, tracks, failures, new)

    def spy_commit(self):
        assembled.append(len(self.files))
        return real_commit(self)

    monkeypatch.setattr(sink_module.StoreWriter, "write", spy_write)
    monkeypatch.setattr(sink_module.TrackSink, "commit", spy_commit)
    report = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=3), embedder=fake).index(library)
    assert sorted(p for batch in writes for p in batch) == sorted(report.added) and len(report.added) == 4
    assert assembled and set(assembled) == {4}  # the run's tracks went through the assembler

    writes.clear()
    shard = tmp_path / "s.parquet"
    rows = {"path": ["/m/x.flac", "/m/x.flac"], "start": [0.0, 10.0], "end": [10.0, 20.0]}
    vectors = pa.array([vec(0).tolist(), vec(1).tolist()], pa.list_(pa.float32()))
    pq.write_table(pa.table({**rows, "vector": vectors}), shard)
    assert MusicIndex(tmp_path / "ingested").ingest([shard], model="some/model").added == 1
    assert writes == [["/m/x.flac"]]
