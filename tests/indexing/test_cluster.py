"""Indexing on a Ray cluster (musicsearch/indexing/cluster.py), on a simulated 2-node cluster started
once for this module: a head with one CPU and a node with one CPU and a logical GPU (so the
embed actor asks for ``num_gpus=1``; torch here has no CUDA, so it runs on the CPU). The
cluster's vectors equal a local run's; a bad file is recorded with the local run's reason;
a run stopped after two batches resumes without duplicates; shards are written, resumed and
ingested."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from musicsearch import MusicIndex, Settings
from musicsearch.audio import plan_starts
from musicsearch.clap import ClapEmbedder
from musicsearch.library import walk
from musicsearch.store import Store

ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'musicsearch[ray]')")
pytest.importorskip("ray.data", reason="Ray Data is not installed (pip install 'musicsearch[ray]')")

from musicsearch.indexing import cluster  # noqa: E402


@pytest.fixture(scope="module")
def ray_cluster(tmp_path_factory):
    """Two nodes on this machine, Ray's files under a temp folder; the model cache of the
    workers (which inherit this environment) too, never the user's."""
    from ray.cluster_utils import Cluster

    base = tmp_path_factory.mktemp("ray")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("RAY_TMPDIR", str(base))
        mp.setenv("RAY_AUTH_MODE", "disabled")
        mp.setenv("MUSICSEARCH_CACHE", str(base / "cache"))
        mp.setenv("RAY_DATA_DISABLE_PROGRESS_BARS", "1")
        c = Cluster(
            initialize_head=True,
            head_node_args={"num_cpus": 1, "num_gpus": 0, "include_dashboard": False},
        )
        c.add_node(num_cpus=1, num_gpus=1)
        c.wait_for_nodes()
        ray.init(address=c.address, logging_level="WARNING")
        try:
            yield c
        finally:
            ray.shutdown()
            c.shutdown()


@pytest.fixture(scope="module")
def music(tmp_path_factory, write_audio, tone, noise) -> Path:
    """A dozen files: tones and noise of 3-32 s in wav, flac and ogg, and one bad file."""
    root = tmp_path_factory.mktemp("music")
    freqs = [150, 220, 330, 440, 600, 880, 1200, 1500, 2400, 3000, 4000]
    for k, f in enumerate(freqs):
        ext = ("wav", "flac", "ogg")[k % 3]
        seconds = 3 + 3 * k
        data = tone(f, seconds) + (noise(seconds, seed=k) if k % 2 else 0)
        write_audio(root / f"d{k % 3}" / f"t{k:02d}.{ext}", data)
    (root / "d0" / "broken.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + bytes(100))
    return root


def _settings(path: Path, model: Path, **kw) -> Settings:
    return Settings(
        index_dir=path, model=str(model), model_check=False, fast_queries=False, workers=1, max_windows=3, **kw
    )


def _windows(k: int) -> int:
    """Windows of the file t{k}: 3 + 3k seconds, at most 3 windows."""
    return len(plan_starts((3 + 3 * k) * 48_000, 480_000, 3))


ALL_WINDOWS = sum(_windows(k) for k in range(11))


def _vectors(index: Path) -> dict[str, tuple[list[float], np.ndarray]]:
    store = Store(index)
    try:
        ids = {path: i for i, path in store.conn.execute("select id, path from tracks")}
        got = store.window_vectors(ids.values())
        return {p: (got[i][0].tolist(), got[i][2]) for p, i in ids.items()}
    finally:
        store.close()


def _same_vectors(a: dict, b: dict) -> None:
    assert sorted(a) == sorted(b) and len(a) == 11
    for path in a:
        (sa, va), (sb, vb) = a[path], b[path]
        assert sa == sb, path
        cos = np.sum(va * vb, axis=1) / np.linalg.norm(va, axis=1) / np.linalg.norm(vb, axis=1)
        assert cos.min() >= 0.99999, (path, cos)


@pytest.fixture(scope="module")
def local_run(tmp_path_factory, music, tiny_model):
    index = tmp_path_factory.mktemp("local") / "idx"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("MUSICSEARCH_CACHE", str(index.parent / "cache"))
        with MusicIndex(settings=_settings(index, tiny_model)) as idx:
            report = idx.index(music)
            failures = idx.failures()
    assert len(report.added) == 11 and len(report.failed) == 1
    return index, failures


def test_same_vectors_failure_and_rerun(ray_cluster, music, tiny_model, local_run, tmp_path, monkeypatch):
    from musicsearch.indexing import sink

    written: list[str] = []  # the driver writes through the local run's writer
    real_write = sink.StoreWriter.write

    def spy(self, tracks, failures=(), new=()):
        written.extend(r.path for r in tracks)
        return real_write(self, tracks, failures, new)

    monkeypatch.setattr(sink.StoreWriter, "write", spy)
    local_index, local_failures = local_run
    index = tmp_path / "idx"
    with MusicIndex(settings=_settings(index, tiny_model)) as idx:
        report = idx.index(music, cluster="auto")
        assert (len(report.added), len(report.failed), report.windows) == (11, 1, ALL_WINDOWS)
        assert sorted(written) == sorted(report.added)
        assert any("embed actor(s) on cpu" in n for n in report.notes)
        assert idx.failures() == local_failures  # same file, same reason
        (path, reason) = local_failures[0]
        assert path.endswith("broken.wav") and reason
        _same_vectors(_vectors(index), _vectors(local_index))

        again = idx.index(music, cluster="auto")  # nothing to embed: Ray is not even needed
        assert (again.added, again.unchanged, again.skipped_failed, again.windows) == ([], 11, 1, 0)
        # a move and a removal behave as in a local run
        moved = music / "d1" / "t01.flac"
        target = music / "moved.flac"
        os.rename(moved, target)
        try:
            after = idx.index(music, cluster="auto")
            assert after.moved == [(str(moved), str(target))] and after.windows == 0
        finally:
            os.rename(target, moved)
        idx.index(music, cluster="auto")
    assert len(_vectors(index)) == 11


class Stop(Exception):
    pass


def test_interrupted_after_two_batches_then_resumed(ray_cluster, music, tiny_model, tmp_path):
    settings = _settings(tmp_path / "idx", tiny_model, batch_size=2)
    embedder = ClapEmbedder(str(tiny_model))
    files = list(walk(music, settings.extensions))
    store = Store(tmp_path / "idx", create=True)
    seen = []

    def stop_after_two() -> None:
        seen.append(store.counts()["tracks"])
        if len(seen) == 2:
            raise Stop

    with pytest.raises(Stop):
        cluster.run_index_cluster(store, embedder, music, files, settings=settings, on_batch=stop_after_two)
    kept = store.counts()
    assert 0 < kept["tracks"] < 11  # whole tracks only: each has all its windows
    for path, (starts, vecs) in _vectors(tmp_path / "idx").items():
        assert len(starts) == len(vecs) == _windows(int(Path(path).stem[1:]))

    report = cluster.run_index_cluster(store, embedder, music, files, settings=settings)
    assert report.unchanged == kept["tracks"] and len(report.added) == 11 - kept["tracks"]
    counts = store.counts()
    assert (counts["tracks"], counts["windows"]) == (11, ALL_WINDOWS)
    paths = [p for (p,) in store.conn.execute("select path from tracks")]
    assert len(paths) == len(set(paths)) == 11
    store.close()


def test_shards_written_resumed_and_ingested(ray_cluster, music, tiny_model, local_run, tmp_path):
    settings = _settings(tmp_path / "unused", tiny_model)
    embedder = ClapEmbedder(str(tiny_model))
    files = list(walk(music, settings.extensions))
    out = tmp_path / "shards"
    first = cluster.index_to_shards(embedder, music, files[:5], out, settings=settings, shard_windows=4)
    assert len(first.added) + len(first.failed) == 5 and len(list(out.glob("*.parquet"))) >= 2
    second = cluster.index_to_shards(embedder, music, files, out, settings=settings)
    assert second.unchanged + second.skipped_failed == 5 and len(second.added) + len(second.failed) == len(files) - 5
    third = cluster.index_to_shards(embedder, music, files, out, settings=settings)
    assert third.windows == 0 and third.unchanged == 11 and third.skipped_failed == 1
    assert not list(out.glob("*.tmp"))

    with MusicIndex(tmp_path / "ingested") as idx:
        report = idx.ingest([out], model=str(tiny_model))
        assert (report.added, report.failed) == (11, [])
        assert idx.ingest([out]).unchanged == 11  # idempotent
    _same_vectors(_vectors(tmp_path / "ingested"), _vectors(local_run[0]))


def test_without_ray_one_line(monkeypatch):
    import builtins

    real = builtins.__import__

    def no_ray(name, *args, **kw):
        if name == "ray" or name.startswith("ray."):
            raise ImportError(name)
        return real(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", no_ray)
    from musicsearch.errors import MusicSearchError

    with pytest.raises(MusicSearchError, match=r"pip install 'musicsearch\[ray\]'"):
        cluster.require_ray()
