"""The index run (musicsearch/indexing/runner.py) end to end with the fake embedder: the right
track ranks first, vectors and segments as recorded, events, interrupted and killed runs
resume whole, the device's window budget, errors and the collapse guard."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from musicsearch import MusicIndex, Settings
from musicsearch.errors import IndexNotFound, ModelMismatch, MusicSearchError
from musicsearch.events import Phase, Progress, RunStart


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


def test_best_segment_is_named(tmp_path, fake, write_audio, tone):
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


def test_events_tell_the_phases_and_progress(tmp_path, library, fake):
    events: list = []
    MusicIndex(tmp_path / "idx", settings=Settings(batch_size=2), embedder=fake).index(library, on_event=events.append)
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStart and kinds[-1] is Phase and events[-1].message == "Saving the search index"
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.files_done for p in progress] == sorted(p.files_done for p in progress)
    assert progress[-1].files_done == progress[-1].files_total == 4 and progress[-1].windows == 8


def test_interrupted_run_resumes_without_duplicates(tmp_path, library, fake, fake_embedder_cls):
    class Dies(fake_embedder_cls):
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
from fakes import FakeEmbedder
from musicsearch import MusicIndex, Settings
class Slow(FakeEmbedder):
    def embed(self, waves):
        time.sleep(0.15)
        return super().embed(waves)

MusicIndex({idx!r}, settings=Settings(batch_size=1, workers=1), embedder=Slow()).index({lib!r})
"""


def test_sigkill_leaves_a_usable_resumable_index(tmp_path, fake, write_audio, tone):
    lib = tmp_path / "lib"
    for i, f in enumerate([150, 300, 600, 1200, 2400, 4000]):
        write_audio(lib / f"t{f}.wav", tone(f, 20 + i))
    idx_dir = tmp_path / "idx"
    code = KILL_SCRIPT.format(tests=str(Path(__file__).parent.parent), idx=str(idx_dir), lib=str(lib))
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


@pytest.mark.slow  # four killed runs (11 s); test_sigkill_leaves_a_usable_resumable_index kills one mid-run and resumes
def test_kills_at_random_moments_then_resumes_whole(tmp_path, fake, write_audio, tone):
    lib = tmp_path / "lib"
    freqs = [150, 300, 600, 1200, 2400, 4000]
    for i, f in enumerate(freqs):
        write_audio(lib / f"t{f}.wav", tone(f, 20 + i))
    idx_dir = tmp_path / "idx"
    code = KILL_SCRIPT.format(tests=str(Path(__file__).parent.parent), idx=str(idx_dir), lib=str(lib))
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


def test_stale_or_missing_faiss_is_rebuilt(tmp_path, library, fake, fake_embedder_cls):
    idx = open_index(tmp_path, fake)
    idx.index(library)
    files = list((tmp_path / "idx").glob("tracks-g*.faiss"))
    assert len(files) == 1
    files[0].unlink()
    idx2 = open_index(tmp_path, fake_embedder_cls())
    assert idx2.search("600 hz", k=1)[0].track.title == "t600"
    assert len(list((tmp_path / "idx").glob("tracks-g*.faiss"))) == 1
    files[0].write_bytes(b"garbage")  # an old generation's leftover is ignored
    assert idx2.search("600 hz", k=1)[0].track.title == "t600"


def test_errors(tmp_path, library, fake, fake_embedder_cls):
    with pytest.raises(IndexNotFound, match="no index at"):
        MusicIndex(tmp_path / "none", embedder=fake).search("x")
    idx = open_index(tmp_path, fake)
    idx.index(library)
    with pytest.raises(MusicSearchError, match="empty query"):
        idx.search("   ")
    with pytest.raises(MusicSearchError, match="no such file or folder"):
        idx.index(tmp_path / "missing")

    class Other(fake_embedder_cls):
        model_id = "other-model"

    with pytest.raises(ModelMismatch, match="was built with model fake-embedder"):
        open_index(tmp_path, Other()).search("x")
    with pytest.raises(ModelMismatch):
        open_index(tmp_path, Other()).index(library)


def test_collapsed_model_refused_unless_opted_out(tmp_path, library, fake_embedder_cls):
    from musicsearch.errors import CollapsedModel

    class Collapsed(fake_embedder_cls):  # every prompt near one vector, as tests/test_embed.py's
        model_id = "collapsed"

        def embed_texts(self, texts):
            v = np.ones((len(texts), self.dim), np.float32)
            v += np.random.default_rng(0).standard_normal(v.shape).astype(np.float32) * 1e-3
            return v / np.linalg.norm(v, axis=1, keepdims=True)

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


def test_cpu_default_budget_and_start_report(tmp_path, fake_embedder_cls, write_audio, tone):
    from musicsearch.config import CPU_MAX_WINDOWS

    class CpuFake(fake_embedder_cls):
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
