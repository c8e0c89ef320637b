"""The index run (musicsearch/indexer.py): the plan against the store without any audio, then
what a run records for unreadable folders and truncated files."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
from conftest import noise, tone, write_audio

from musicsearch import MusicIndex, Settings
from musicsearch.events import Phase, Progress, RunStart
from musicsearch.indexing.plan import apply_plan, plan_run
from musicsearch.library import AudioFile, content_hash
from musicsearch.store import Store, TrackRecord


def put(store: Store, path: Path, size: int, mtime_ns: int, digest: str) -> int:
    with store.write():
        return store.put_track(
            TrackRecord(str(path), size, mtime_ns, digest, {"title": path.stem}, 10.0, [0.0], [10.0], np.eye(2)[:1]),
            "now",
        )


def disk(path: Path, data: bytes) -> AudioFile:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    st = path.stat()
    return AudioFile(path, st.st_size, st.st_mtime_ns)


def test_plan_sorts_files_into_new_changed_touched_moved_removed(tmp_path):
    root = tmp_path / "lib"
    store = Store(tmp_path / "idx", create=True)
    same = disk(root / "same.wav", b"a" * 10)
    touched = disk(root / "touched.wav", b"b" * 11)
    changed = disk(root / "changed.wav", b"c" * 12)
    moved_to = disk(root / "sub" / "moved.wav", b"d" * 13)
    new = disk(root / "new.wav", b"e" * 14)
    same_id = put(store, same.path, same.size, same.mtime_ns, content_hash(same.path))
    touched_id = put(store, touched.path, touched.size, touched.mtime_ns - 5, content_hash(touched.path))
    put(store, changed.path, changed.size, changed.mtime_ns - 5, "an older content")
    moved_id = put(store, root / "old" / "moved.wav", 13, 1, content_hash(moved_to.path))
    gone_id = put(store, root / "gone.wav", 99, 1, "gone")
    outside = put(store, tmp_path / "elsewhere" / "x.wav", 5, 1, "x")  # not below root: never touched

    plan = plan_run(store, root, [same, touched, changed, moved_to, new])
    assert [f.path.name for f in plan.to_embed] == ["changed.wav", "new.wav"]
    assert plan.updates == {str(changed.path)}
    assert plan.touched == [(touched_id, touched)] and plan.unchanged == 2
    assert plan.moves == [(moved_id, str(root / "old" / "moved.wav"), moved_to)]
    assert plan.removed == {str(root / "gone.wav"): gone_id}
    assert apply_plan(store, plan) == [(str(root / "old" / "moved.wav"), str(moved_to.path))]
    assert sorted(store.tracks([same_id, touched_id, moved_id, gone_id, outside])) == [
        same_id,
        touched_id,
        moved_id,
        outside,
    ]
    assert store.known_files(root)[str(moved_to.path)][0] == moved_id


def test_plan_keeps_tracks_below_an_unreadable_folder_and_records_it(tmp_path):
    root = tmp_path / "lib"
    store = Store(tmp_path / "idx", create=True)
    kept = put(store, root / "locked" / "a.wav", 10, 1, "a")
    gone = put(store, root / "open" / "b.wav", 10, 1, "b")
    plan = plan_run(store, root, [], unreadable={str(root / "locked"): "cannot read folder (Permission denied)"})
    assert plan.removed == {str(root / "open" / "b.wav"): gone}
    apply_plan(store, plan)
    assert list(store.tracks([kept, gone])) == [kept]
    assert store.failures() == [(str(root / "locked"), "cannot read folder (Permission denied)")]
    again = plan_run(store, root, [], unreadable={str(root / "locked"): "cannot read folder (Permission denied)"})
    assert again.stale_failures == []  # still unreadable: the failure stays
    assert plan_run(store, root, []).stale_failures == [str(root / "locked")]  # readable again: it goes


def test_failed_files_are_skipped_until_they_change(tmp_path):
    root = tmp_path / "lib"
    store = Store(tmp_path / "idx", create=True)
    bad = disk(root / "bad.mp3", b"junk")
    with store.write():
        store.put_failure(str(bad.path), bad.size, bad.mtime_ns, "not audio", "now")
    assert (plan_run(store, root, [bad]).to_embed, plan_run(store, root, [bad]).skipped_failed) == ([], 1)
    assert plan_run(store, root, [bad], retry_failed=True).to_embed == [bad]
    changed = disk(root / "bad.mp3", b"junk, fixed")
    assert plan_run(store, root, [changed]).to_embed == [changed]


def test_an_unreadable_folder_is_a_failure_and_its_tracks_stay(tmp_path, fake, monkeypatch):
    root = tmp_path / "lib"
    write_audio(root / "locked" / "a.wav", tone(600, 12))
    write_audio(root / "open" / "b.wav", tone(1200, 12))
    idx = MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake)
    assert len(idx.index(root).added) == 2
    real_scandir = os.scandir

    def scandir(path):  # as chmod 000 would do (root ignores permission bits)
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(os, "scandir", scandir)
    report = idx.index(root)
    assert report.failed == [(str(root / "locked"), "cannot read folder (Permission denied)")]
    assert report.removed == [] and report.unchanged == 1 and idx.info().tracks == 2
    assert idx.failures() == [(str(root / "locked"), "cannot read folder (Permission denied)")]


def test_a_truncated_file_is_indexed_with_a_warning(tmp_path, fake):
    root = tmp_path / "lib"
    whole = write_audio(root / "whole.ogg", noise(60, seed=1))
    cut = root / "cut.ogg"
    cut.write_bytes(whole.read_bytes()[:20_000])  # a download that stopped early
    idx = MusicIndex(tmp_path / "idx", settings=Settings(), embedder=fake)
    report = idx.index(root)
    assert sorted(Path(p).name for p in report.added) == ["cut.ogg", "whole.ogg"]
    assert [(Path(p).name, "truncated?" in w) for p, w in report.warnings] == [("cut.ogg", True)]
    assert idx.warnings() == report.warnings and idx.failures() == []


def test_events_tell_the_phases_and_progress(tmp_path, library, fake):
    events: list = []
    MusicIndex(tmp_path / "idx", settings=Settings(batch_size=2), embedder=fake).index(library, on_event=events.append)
    kinds = [type(e) for e in events]
    assert kinds[0] is RunStart and kinds[-1] is Phase and events[-1].message == "Saving the search index"
    progress = [e for e in events if isinstance(e, Progress)]
    assert [p.files_done for p in progress] == sorted(p.files_done for p in progress)
    assert progress[-1].files_done == progress[-1].files_total == 4 and progress[-1].windows == 8


def test_a_first_run_on_a_cpu_prepares_onnx_whatever_its_size(tmp_path, tiny_model, monkeypatch):
    """The audio graph is exported once per machine anyway, so even a 5-window first run
    exports it first and embeds with it (not the torch tower, then the export)."""
    import musicsearch.engine as engine
    from musicsearch.embed import ClapEmbedder
    from musicsearch.onnx_towers import AUDIO_ONNX_FILE, OnnxAudioTower

    off = ClapEmbedder(str(tiny_model), device="cpu")
    assert engine.prepare_audio(off, Settings(device="cpu", onnx_audio=False), windows=5) == []
    assert not off.prepared.has(AUDIO_ONNX_FILE) and not isinstance(off.audio_tower(), OnnxAudioTower)
    small = ClapEmbedder(str(tiny_model), device="cpu")
    notes = engine.prepare_audio(small, Settings(device="cpu"), windows=5)
    assert notes and "audio tower on onnxruntime" in notes[0] and small.prepared.has(AUDIO_ONNX_FILE)
    assert isinstance(small.audio_tower(), OnnxAudioTower) and small._audio_model is None  # torch tower freed
    again = ClapEmbedder(str(tiny_model), device="cpu")
    assert engine.prepare_audio(again, Settings(device="cpu"), windows=600) == []  # prepared once: reused
    assert isinstance(again.audio_tower(), OnnxAudioTower)


def test_a_small_run_decodes_in_threads_and_a_large_one_in_processes(tmp_path, monkeypatch, fake_embedder_cls):
    import musicsearch.indexing.feed as feed

    monkeypatch.setattr(feed, "SMALL_RUN_WINDOWS", 64)  # the real policy

    files = [disk(tmp_path / f"f{i}.wav", b"x") for i in range(40)]
    small = feed.open_feed(fake_embedder_cls(), files[:5], {}, 1, 2, 8)
    large = feed.open_feed(fake_embedder_cls(), files, {}, 6, 2, 8)
    try:
        assert isinstance(small, feed.ThreadFeed) and isinstance(large, feed.ProcessFeed)
    finally:
        small.close()
        large.close()


def test_small_run_counts_windows_from_headers_not_files(tmp_path, monkeypatch):
    """One 11-minute file is 66 windows when whole tracks are embedded: not small, although it
    is one file (it used to count as 18 windows and decode in a thread)."""
    import soundfile as sf

    import musicsearch.indexing.feed as feed

    monkeypatch.setattr(feed, "SMALL_RUN_WINDOWS", 64)  # the real policy
    long = tmp_path / "long.wav"
    sf.write(long, np.zeros(660 * 8000, dtype=np.int16), 8000)  # silence, 11 min at 8 kHz
    st = long.stat()
    f = AudioFile(long, st.st_size, st.st_mtime_ns)
    assert feed.estimate_windows([f], 10.0, None) == 66
    assert not feed.small_run([f], 10.0, None)
    assert feed.small_run([f], 10.0, 18)  # the CPU window budget caps it
    unreadable = [disk(tmp_path / f"u{i}.wav", b"x") for i in range(4)]
    assert feed.small_run(unreadable[:3], 10.0, None)  # 3 x 18 = 54 windows assumed
    assert not feed.small_run(unreadable, 10.0, None)  # 4 x 18 = 72
