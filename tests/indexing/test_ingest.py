import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musicsearch import MusicIndex
from musicsearch.errors import ModelMismatch, MusicSearchError
from musicsearch.filters import Filters
from musicsearch.store import Store, track_vector

DIM = 8


def unit(rng, n):
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    return v / np.linalg.norm(v, axis=1, keepdims=True)


def write_shard(path, tracks, rng):
    """tracks: {path: n_windows}; returns {path: window vectors}."""
    rows = {"path": [], "start": [], "end": [], "vector": [], "artist": [], "year": []}
    vecs = {}
    for i, (p, n) in enumerate(tracks.items()):
        vecs[p] = unit(rng, n)
        for j in reversed(range(n)):  # rows out of order: ingest sorts them by start
            rows["path"].append(p)
            rows["start"].append(10.0 * j)
            rows["end"].append(10.0 * j + 10)
            rows["vector"].append(vecs[p][j].tolist())
            rows["artist"].append(f"artist {i % 2}")
            rows["year"].append(2000 + i)
    table = pa.table({**rows, "vector": pa.array(rows["vector"], pa.list_(pa.float32()))})
    pq.write_table(table, path)
    return vecs


def test_ingest_search_and_reingest(tmp_path):
    rng = np.random.default_rng(0)
    shards = tmp_path / "shards"
    shards.mkdir()
    a = write_shard(shards / "a.parquet", {"/m/a1.flac": 3, "/m/a2.flac": 1}, rng)
    b = write_shard(shards / "b.parquet", {"/m/b1.flac": 2}, rng)
    idx = MusicIndex(tmp_path / "idx")
    with pytest.raises(MusicSearchError, match="name the model"):
        idx.ingest([shards])
    assert not (tmp_path / "idx").exists()  # refused before anything was created
    report = idx.ingest([shards], model="some/model")
    assert (report.shards, report.added, report.updated, report.unchanged, report.windows) == (2, 3, 0, 0, 6)
    info = idx.info()
    assert (info.tracks, info.windows, info.model, info.dim) == (3, 6, "some/model", DIM)
    store = Store(tmp_path / "idx")
    (t,) = store.find_tracks("/m/a1.flac")
    assert (t.title, t.artist, t.year, t.duration, t.n_windows) == ("a1", "artist 0", 2000, 30.0, 3)
    starts, _ends, wv = store.window_vectors([t.id])[t.id]
    assert starts.tolist() == [0.0, 10.0, 20.0] and np.allclose(wv, a["/m/a1.flac"])
    np.testing.assert_allclose(store.track_vectors([t.id])[1][0], track_vector(a["/m/a1.flac"]), atol=1e-6)

    queries = np.stack([track_vector(a["/m/a2.flac"]), track_vector(b["/m/b1.flac"])])
    hits = idx.search_vectors(queries, k=2)
    assert [h[0].track.path for h in hits] == ["/m/a2.flac", "/m/b1.flac"] and [len(h) for h in hits] == [2, 2]
    assert round(hits[0][0].score, 5) == 1.0
    filtered = idx.search_vectors(queries[1], k=5, filters=Filters(artist="artist 0"))
    assert [sorted(h.track.path for h in hs) for hs in filtered] == [["/m/a1.flac", "/m/b1.flac"]]
    with pytest.raises(MusicSearchError, match="8-d"):
        idx.search_vectors(np.ones((1, 3)), k=2)

    generation = store.generation
    again = idx.ingest([shards / "b.parquet", shards / "a.parquet"])
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3) and store.generation == generation
    write_shard(shards / "b.parquet", {"/m/b1.flac": 4}, rng)  # re-computed: replaced in place
    changed = idx.ingest([shards / "b.parquet"])
    assert (changed.added, changed.updated, changed.windows) == (0, 1, 4) and store.generation == generation + 1
    assert store.find_tracks("/m/b1.flac")[0].id == 3 and store.counts()["windows"] == 8
    with pytest.raises(ModelMismatch):
        idx.ingest([shards], model="other/model")


def test_bad_shards_are_one_line_errors(tmp_path):
    rng = np.random.default_rng(1)
    good = tmp_path / "good.parquet"
    write_shard(good, {"/x.wav": 1}, rng)
    idx = MusicIndex(tmp_path / "idx")
    idx.ingest([good], model="m")
    pq.write_table(pa.table({"path": ["/y.wav"], "start": [0.0], "vector": [[0.0] * DIM]}), tmp_path / "noend.parquet")
    with pytest.raises(MusicSearchError, match="lacks the column"):
        idx.ingest([tmp_path / "noend.parquet"])
    pq.write_table(
        pa.table({"path": ["/y.wav"], "start": [0.0], "end": [1.0], "vector": [[1.0] * 3]}), tmp_path / "d3.parquet"
    )
    with pytest.raises(MusicSearchError, match="holds 3-d vectors; the index is 8-d"):
        idx.ingest([tmp_path / "d3.parquet"])
    (tmp_path / "junk.parquet").write_bytes(b"not parquet")
    with pytest.raises(MusicSearchError, match="not a readable Parquet"):
        idx.ingest([tmp_path / "junk.parquet"])
    with pytest.raises(MusicSearchError, match="no such shard"):
        idx.ingest([tmp_path / "missing.parquet"])
    nan = [[float("nan")] * DIM, [1.0] + [0.0] * (DIM - 1)]
    pq.write_table(
        pa.table({"path": ["/nan.wav", "/ok.wav"], "start": [0.0, 0.0], "end": [1.0, 1.0], "vector": nan}),
        tmp_path / "nan.parquet",
    )
    report = idx.ingest([tmp_path / "nan.parquet"])
    assert report.added == 1 and report.failed == [("/nan.wav", "a window vector is not finite or is zero")]
    assert idx.info().tracks == 2


def test_cli_ingest_and_info(tmp_path):
    from typer.testing import CliRunner

    from musicsearch.cli import app

    write_shard(tmp_path / "s.parquet", {"/a.flac": 2, "/b.flac": 1}, np.random.default_rng(2))
    run = CliRunner().invoke
    args = ["ingest", str(tmp_path / "s.parquet"), "--index", str(tmp_path / "idx")]
    out = run(app, [*args, "--model", "x/y"])
    assert out.exit_code == 0 and out.output.startswith("1 shard(s): 2 added, 0 updated, 0 unchanged, 0 failed")
    assert run(app, args).output.startswith("1 shard(s): 0 added, 0 updated, 2 unchanged")
    info = run(app, ["info", "--index", str(tmp_path / "idx")]).output
    assert "index:    tracks: IDMap2,Flat (exact)" in info and "index:    windows: IDMap2,Flat (exact)" in info
    missing = run(app, ["ingest", str(tmp_path / "none.parquet"), "--index", str(tmp_path / "idx")])
    assert missing.exit_code == 1 and "no such shard" in missing.output


def _reference_records(path, dim):
    """read_shard as it was written first (one track at a time): the hashes of shards ingested
    then must not change, or re-ingesting them would replace every track."""
    import hashlib
    import itertools
    import json
    from pathlib import Path

    table = pq.read_table(path)
    vecs = np.asarray(table.column("vector").combine_chunks().flatten().to_numpy(zero_copy_only=False), np.float32)
    vecs = vecs.reshape(table.num_rows, dim)
    keys = np.asarray(["" if p is None else str(p) for p in table.column("path").to_pylist()], dtype=object)
    starts, ends = (np.asarray(table.column(c).to_numpy(zero_copy_only=False), np.float64) for c in ("start", "end"))
    extra = {c: table.column(c).to_pylist() for c in ("title", "year") if c in table.column_names}
    order = np.lexsort((starts, keys))
    bounds = np.flatnonzero(np.r_[True, keys[order][1:] != keys[order][:-1], True])
    out = []
    for a, b in itertools.pairwise(bounds):
        rows = order[a:b]
        p, v = str(keys[rows[0]]), vecs[rows]
        norms = np.linalg.norm(v.astype(np.float64), axis=1)
        if not p or not np.isfinite(v).all() or (norms == 0).any():
            out.append(p or None)
            continue
        if np.abs(norms - 1).max() > 1e-3:
            v = (v / norms[:, None]).astype(np.float32)
        tags = {c: extra[c][rows[0]] for c in extra if extra[c][rows[0]] is not None}
        if "year" in tags:
            try:
                tags["year"] = int(tags["year"])
            except (TypeError, ValueError):
                del tags["year"]
        tags.setdefault("title", Path(p).stem or p)
        duration = float(ends[rows].max())
        h = hashlib.sha1(np.ascontiguousarray(v).tobytes())
        h.update(starts[rows].tobytes() + ends[rows].tobytes())
        h.update(json.dumps([tags, duration], sort_keys=True, default=str).encode())
        out.append((p, "ingest:" + h.hexdigest(), v.tobytes(), starts[rows].tolist()))
    return out


@pytest.mark.parametrize("shuffled", [False, True])
def test_the_vectorized_reader_gives_the_records_and_hashes_of_the_first_one(tmp_path, shuffled):
    from musicsearch.indexing.ingest import read_shard

    rng = np.random.default_rng(3)
    rows: dict[str, list] = {"path": [], "start": [], "end": [], "vector": [], "year": [], "title": []}
    for i in range(60):
        for j in range(1 + i % 4):
            v = rng.standard_normal(DIM).astype(np.float32)
            v = v / np.linalg.norm(v) if i % 3 else v  # some tracks' windows are not unit vectors
            v = np.full(DIM, np.nan, np.float32) if i == 5 else np.zeros(DIM, np.float32) if i == 6 else v
            v = v * np.float32(1.0005) if i == 8 and j == 0 else v  # one window barely off unit length
            rows["path"].append(None if i == 7 else f"/p/{i:02d}.flac")
            rows["start"].append(10.0 * j)
            rows["end"].append(10.0 * j + 10)
            rows["vector"].append(v.tolist())
            rows["year"].append(None if i % 4 == 0 else "19x" if i == 9 else str(1900 + i))
            rows["title"].append(None if i % 5 == 0 else f"t{i}")
    order = rng.permutation(len(rows["path"])) if shuffled else np.arange(len(rows["path"]))
    table = pa.table({c: [col[k] for k in order] for c, col in rows.items()})
    table = table.set_column(3, "vector", pa.array(table.column("vector").to_pylist(), pa.list_(pa.float32())))
    pq.write_table(table, tmp_path / "s.parquet")
    got = []
    for r in read_shard(tmp_path / "s.parquet", DIM):
        got.append(r[0] or None if isinstance(r, tuple) else (r.path, r.hash, r.vectors.tobytes(), r.starts))
    want = _reference_records(tmp_path / "s.parquet", DIM)
    assert got == want and len(want) == 60
    assert [g for g in got if not isinstance(g, tuple)] == [None, "/p/05.flac", "/p/06.flac"]  # refused ones


def test_ingest_is_refused_while_an_index_run_holds_the_index(tmp_path):
    from musicsearch.errors import StorageError
    from musicsearch.indexing.plan import run_lock

    rng = np.random.default_rng(3)
    write_shard(tmp_path / "a.parquet", {"/m/a1.flac": 2}, rng)
    idx = MusicIndex(tmp_path / "idx")
    idx.ingest([tmp_path / "a.parquet"], model="some/model")
    write_shard(tmp_path / "b.parquet", {"/m/b1.flac": 1}, rng)
    with run_lock(tmp_path / "idx"), pytest.raises(StorageError, match="another index run"):
        idx.ingest([tmp_path / "b.parquet"])
    assert idx.info().tracks == 1  # refused before anything was written
    assert idx.ingest([tmp_path / "b.parquet"]).added == 1  # and taken once the run is over
