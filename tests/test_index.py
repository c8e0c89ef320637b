import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import FakeEmbedder, tone, write_audio

from musicsearch import MusicIndex, Settings
from musicsearch.errors import IndexNotFound, ModelMismatch, MusicSearchError
from musicsearch.events import RunStart


def open_index(tmp_path, fake, **kw):
    return MusicIndex(tmp_path / "idx", settings=Settings(model_check=True, **kw), embedder=fake)


def test_right_track_ranks_first(tmp_path, library, fake):
    idx = open_index(tmp_path, fake, batch_size=3)
    report = idx.index(library)
    assert len(report.added) == 4 and not report.failed
    assert report.windows == 3 + 2 + 1 + 2
    for freq, name in [(150, "t150"), (600, "t600"), (1200, "t1200"), (2400, "t2400")]:
        hits = idx.search(f"a {freq} Hz tone", k=4)
        assert hits[0].track.title == name
        assert [h.rank for h in hits] == [1, 2, 3, 4]
        assert hits[0].score > hits[1].score
        assert Path(hits[0].track.path).is_absolute()


def test_best_segment_is_named(tmp_path, fake):
    root = tmp_path / "lib"
    x = np.concatenate([tone(150, 20), tone(2400, 10), tone(150, 10)])
    write_audio(root / "mix.wav", x)
    write_audio(root / "other.wav", tone(600, 30))
    idx = open_index(tmp_path, fake)
    idx.index(root)
    (hit,) = [h for h in idx.search("2400 hz", k=2) if h.track.title == "mix"]
    assert (hit.segment.start, hit.segment.end) == (20, 30)
    (hit,) = [h for h in idx.search("150 hz", k=2) if h.track.title == "mix"]
    assert hit.segment.start in (0, 10, 30)


def test_track_vector_is_normalized_mean_of_windows(tmp_path, library, fake):
    idx = open_index(tmp_path, fake)
    idx.index(library)
    store = idx.context.store()
    ids, vecs = store.track_vectors()
    for tid, v in zip(ids, vecs):
        _, _, w = store.window_vectors([int(tid)])[int(tid)]
        m = w.mean(axis=0)
        np.testing.assert_allclose(v, m / np.linalg.norm(m), atol=1e-6)


def test_rerun_skips_unchanged_without_decoding(tmp_path, library, fake):
    idx = open_index(tmp_path, fake)
    idx.index(library)
    fake.windows_embedded = 0
    report = idx.index(library)
    assert report.unchanged == 4 and fake.windows_embedded == 0
    assert not (report.added or report.updated or report.moved or report.removed)


def test_touched_file_is_not_re_embedded(tmp_path, library, fake):
    idx = open_index(tmp_path, fake)
    idx.index(library)
    target = library / "low" / "t150.wav"
    os.utime(target, ns=(target.stat().st_atime_ns, target.stat().st_mtime_ns + 10**9))
    fake.windows_embedded = 0
    report = idx.index(library)
    assert report.unchanged == 4 and not report.updated and fake.windows_embedded == 0
    assert idx.index(library).unchanged == 4 and fake.windows_embedded == 0


def test_changed_file_replaces_its_vectors(tmp_path, library, fake):
    idx = open_index(tmp_path, fake)
    idx.index(library)
    before = idx.info()
    target = library / "low" / "t150.wav"
    write_audio(target, tone(2400, 5))
    report = idx.index(library)
    assert report.updated == [str(target)] and report.unchanged == 3
    info = idx.info()
    assert info.tracks == 4 and info.windows == before.windows - 3 + 1
    assert idx.search("2400 Hz", k=1)[0].track.path in {str(target), str(library / "high" / "t2400.wav")}
    assert {h.track.path for h in idx.search("2400 Hz", k=2)} == {str(target), str(library / "high" / "t2400.wav")}


def test_moved_file_keeps_vectors(tmp_path, library, fake):
    idx = open_index(tmp_path, fake)
    idx.index(library)
    old = library / "mid" / "t600.flac"
    track_id = idx.search("600 hz", k=1)[0].track.id
    new = library / "renamed" / "six hundred.flac"
    new.parent.mkdir()
    shutil.move(old, new)
    fake.windows_embedded = 0
    report = idx.index(library)
    assert report.moved == [(str(old), str(new))] and fake.windows_embedded == 0
    assert not report.removed and not report.added
    hit = idx.search("600 hz", k=1)[0]
    assert hit.track.id == track_id and hit.track.path == str(new)


def test_removed_files_are_pruned_only_under_the_indexed_root(tmp_path, library, fake):
    other = tmp_path / "other"
    write_audio(other / "x.wav", tone(300, 5))
    idx = open_index(tmp_path, fake)
    idx.index(library)
    idx.index(other)
    (library / "high" / "t2400.wav").unlink()
    report = idx.index(library)
    assert report.removed == [str(library / "high" / "t2400.wav")]
    assert idx.info().tracks == 4  # 3 left in library + 1 in other
    assert idx.index(other).unchanged == 1


def test_failures_recorded_skipped_and_retried(tmp_path, library, fake):
    (library / "empty.wav").write_bytes(b"")
    (library / "junk.mp3").write_bytes(b"nope " * 50)
    idx = open_index(tmp_path, fake)
    report = idx.index(library)
    assert len(report.added) == 4
    assert sorted(Path(p).name for p, _ in report.failed) == ["empty.wav", "junk.mp3"]
    assert {Path(p).name: r for p, r in idx.failures()}["empty.wav"] == "empty file (0 bytes)"
    report = idx.index(library)
    assert report.failed == [] and report.skipped_failed == 2 and report.unchanged == 4
    assert len(idx.index(library, retry_failed=True).failed) == 2
    write_audio(library / "empty.wav", tone(1200, 3))  # fixed: changed size and mtime
    report = idx.index(library)
    assert report.added == [str(library / "empty.wav")] and report.skipped_failed == 1
    assert idx.info().failures == 1
    (library / "junk.mp3").unlink()
    idx.index(library)
    assert idx.info().failures == 0


def test_interrupted_run_resumes_without_duplicates(tmp_path, library, fake):
    class Dies(FakeEmbedder):
        def embed(self, waves):
            if self.calls == 2:
                raise KeyboardInterrupt
            return super().embed(waves)

    dying = Dies()
    idx = open_index(tmp_path, dying, batch_size=2, workers=1)
    with pytest.raises(KeyboardInterrupt):
        idx.index(library)
    done = idx.info()
    assert 0 < done.tracks < 4
    idx2 = open_index(tmp_path, fake, batch_size=2)
    report = idx2.index(library)
    assert report.unchanged == done.tracks and len(report.added) == 4 - done.tracks
    info = idx2.info()
    assert (info.tracks, info.windows) == (4, 8)


KILL_SCRIPT = """
import sys, time
sys.path.insert(0, {tests!r})
from conftest import FakeEmbedder
from musicsearch import MusicIndex, Settings

class Slow(FakeEmbedder):
    def embed(self, waves):
        time.sleep(0.15)
        return super().embed(waves)

MusicIndex({idx!r}, settings=Settings(batch_size=1, workers=1), embedder=Slow()).index({lib!r})
"""


def test_sigkill_leaves_a_usable_resumable_index(tmp_path, fake):
    lib = tmp_path / "lib"
    for i, f in enumerate([150, 300, 600, 1200, 2400, 4000]):
        write_audio(lib / f"t{f}.wav", tone(f, 20 + i))
    idx_dir = tmp_path / "idx"
    code = KILL_SCRIPT.format(tests=str(Path(__file__).parent), idx=str(idx_dir), lib=str(lib))
    proc = subprocess.Popen([sys.executable, "-c", code])
    db = idx_dir / "musicsearch.db"
    deadline = time.time() + 60
    while time.time() < deadline:  # kill once some tracks are in, mid-run
        time.sleep(0.1)
        if db.exists():
            try:
                if MusicIndex(idx_dir).info().tracks >= 2:
                    break
            except Exception:
                pass
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    idx = open_index(tmp_path, fake)
    partial = idx.info()
    assert 2 <= partial.tracks < 6
    expected = {f"t{f}": 2 if i == 0 else 3 for i, f in enumerate([150, 300, 600, 1200, 2400, 4000])}
    rows = (
        idx.context.store()
        .db.execute("select title, n_windows, (select count(*) from windows w where w.track_id = t.id) from tracks t")
        .fetchall()
    )
    assert all(n == m == expected[title] for title, n, m in rows)  # only whole tracks were kept
    assert len(idx.search("150 hz", k=10)) == partial.tracks
    report = idx.index(lib)
    assert report.unchanged == partial.tracks and len(report.added) == 6 - partial.tracks
    assert (idx.info().tracks, idx.info().windows) == (6, 17)
    assert idx.search("4000 hz", k=1)[0].track.title == "t4000"


def test_stale_or_missing_faiss_is_rebuilt(tmp_path, library, fake):
    idx = open_index(tmp_path, fake)
    idx.index(library)
    files = list((tmp_path / "idx").glob("tracks-g*.faiss"))
    assert len(files) == 1
    files[0].unlink()
    idx2 = open_index(tmp_path, FakeEmbedder())
    assert idx2.search("600 hz", k=1)[0].track.title == "t600"
    assert len(list((tmp_path / "idx").glob("tracks-g*.faiss"))) == 1
    files[0].write_bytes(b"garbage")  # an old generation's leftover is ignored
    assert idx2.search("600 hz", k=1)[0].track.title == "t600"


def test_errors(tmp_path, library, fake):
    with pytest.raises(IndexNotFound, match="no index at"):
        MusicIndex(tmp_path / "none", embedder=fake).search("x")
    idx = open_index(tmp_path, fake)
    idx.index(library)
    with pytest.raises(MusicSearchError, match="empty query"):
        idx.search("   ")
    with pytest.raises(MusicSearchError, match="no such file or folder"):
        idx.index(tmp_path / "missing")

    class Other(FakeEmbedder):
        model_id = "other-model"

    with pytest.raises(ModelMismatch, match="was built with model fake-embedder"):
        open_index(tmp_path, Other()).search("x")
    with pytest.raises(ModelMismatch):
        open_index(tmp_path, Other()).index(library)


def test_collapsed_model_refused_unless_opted_out(tmp_path, library):
    from test_embed import Collapsed

    from musicsearch.errors import CollapsedModel

    with pytest.raises(CollapsedModel):
        open_index(tmp_path, Collapsed()).index(library)
    assert not (tmp_path / "idx" / "musicsearch.db").exists() or MusicIndex(tmp_path / "idx").info().tracks == 0
    idx = MusicIndex(tmp_path / "idx2", settings=Settings(model_check=False), embedder=Collapsed())
    assert len(idx.index(library).added) == 4


def test_window_budget_follows_the_device():
    from musicsearch.config import CPU_MAX_WINDOWS

    assert Settings().window_budget("cpu") == CPU_MAX_WINDOWS
    assert Settings().window_budget("cuda") is None
    assert Settings(full=True).window_budget("cpu") is None
    assert Settings(max_windows=2).window_budget("cuda") == 2


def test_cpu_default_budget_and_start_report(tmp_path):
    from musicsearch.config import CPU_MAX_WINDOWS

    class CpuFake(FakeEmbedder):
        device = "cpu"

    root = tmp_path / "lib"
    write_audio(root / "long.flac", tone(600, 100))  # 10 full windows
    write_audio(root / "short.wav", tone(150, 25))  # 3 windows
    started = []
    idx = MusicIndex(tmp_path / "i", embedder=CpuFake())
    report = idx.index(root, on_event=lambda e: isinstance(e, RunStart) and started.append(e))
    assert report.windows == CPU_MAX_WINDOWS + 3
    (run,) = started
    assert (run.files, run.windows, run.max_windows, run.device) == (2, CPU_MAX_WINDOWS + 3, CPU_MAX_WINDOWS, "cpu")
    assert run.windows_per_second > 0 and run.eta_seconds > 0
    full = MusicIndex(tmp_path / "j", settings=Settings(full=True), embedder=CpuFake()).index(root)
    assert full.windows == 13


@pytest.mark.parametrize("onnx_audio", [False, True])
def test_cpu_index_computes_mel_in_decode_threads_with_equal_vectors(tmp_path, library, tiny_model, onnx_audio):
    from musicsearch.audio import iter_windows
    from musicsearch.embed import ClapEmbedder

    embedder = ClapEmbedder(str(tiny_model), device="cpu")
    assert embedder.prepare(np.zeros((1, 480_000), np.float32)).shape == (1, 1, 1001, 64)  # the mel, in the workers
    idx = MusicIndex(
        tmp_path / "idx",
        settings=Settings(
            model=str(tiny_model),
            device="cpu",
            model_check=False,
            fast_queries=False,
            onnx_audio=onnx_audio,
            full=True,
            batch_size=3,
        ),
    )
    report = idx.index(library)
    assert not report.failed
    store = idx.context.store()
    reference = ClapEmbedder(str(tiny_model), device="cpu")
    ids, _ = store.track_vectors()
    tracks = store.tracks(int(i) for i in ids)
    assert sorted(t.path for t in tracks.values()) == sorted(report.added)
    for tid, track in tracks.items():
        path = track.path
        _, _, stored = store.window_vectors([tid])[tid]
        expected = reference.embed_windows(np.stack([w.samples for w in iter_windows(path)]))
        assert stored.shape == expected.shape
        assert (np.sum(stored * expected, axis=1) >= 0.9999).all()


def test_kills_at_random_moments_then_resumes_whole(tmp_path, fake):
    lib = tmp_path / "lib"
    freqs = [150, 300, 600, 1200, 2400, 4000]
    for i, f in enumerate(freqs):
        write_audio(lib / f"t{f}.wav", tone(f, 20 + i))
    idx_dir = tmp_path / "idx"
    code = KILL_SCRIPT.format(tests=str(Path(__file__).parent), idx=str(idx_dir), lib=str(lib))
    rng = np.random.default_rng(7)
    for delay in rng.uniform(0.5, 4.0, size=4):  # anywhere from start-up to the last batches
        proc = subprocess.Popen([sys.executable, "-c", code])
        time.sleep(float(delay))
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if idx_dir.exists() and (idx_dir / "musicsearch.db").exists():
            rows = (
                MusicIndex(idx_dir)
                .context.store()
                .db.execute("select n_windows, (select count(*) from windows w where w.track_id = t.id) from tracks t")
                .fetchall()
            )
            assert all(n == m for n, m in rows)  # only whole tracks, whatever the moment
    idx = open_index(tmp_path, fake)
    idx.index(lib)
    store = idx.context.store()
    paths = [r[0] for r in store.db.execute("select path from tracks").fetchall()]
    assert sorted(paths) == sorted(str(lib / f"t{f}.wav") for f in freqs)  # each once
    assert (idx.info().tracks, idx.info().windows) == (6, 17)
    assert idx.search("4000 hz", k=1)[0].track.title == "t4000"
