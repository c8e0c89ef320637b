"""The plan of a run (musicsearch/indexing/plan.py): the plan against the store without any
audio, then what reruns do with unchanged, touched, changed, moved, removed and failed files
and with folders that cannot be read."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import numpy as np

from musicsearch import MusicIndex, Settings
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


def open_index(tmp_path, fake, **kw):
    return MusicIndex(tmp_path / "idx", settings=Settings(model_check=True, **kw), embedder=fake)


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


def test_an_unreadable_folder_is_a_failure_and_its_tracks_stay(tmp_path, fake, monkeypatch, write_audio, tone):
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


def test_changed_file_replaces_its_vectors(tmp_path, library, fake, write_audio, tone):
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


def test_removed_files_are_pruned_only_under_the_indexed_root(tmp_path, library, fake, write_audio, tone):
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


def test_failures_recorded_skipped_and_retried(tmp_path, library, fake, write_audio, tone):
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
