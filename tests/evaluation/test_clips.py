"""A dataset's clips become files the index run takes: whole recordings linked, ranges cut
from longer ones (the right 10 s), a clip saved already cut taken whole, nothing made twice,
and an undecodable source reported with its reason."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from musicsearch.evaluation.clips import clip_name, dataset_key, place_clips
from musicsearch.evaluation.datasets import Clip, Dataset

SR = 48_000


def dominant_hz(samples: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(samples))
    return float(np.argmax(spec[1:]) + 1) * SR / len(samples)


def dataset(tmp_path, clips):
    return Dataset(tmp_path / "set.csv", "csv", tmp_path, tuple(clips), ())


def test_whole_files_linked_ranges_cut_and_kept(tmp_path, write_audio, tone):
    whole = write_audio(tmp_path / "src" / "whole.wav", tone(440, 3))
    long = tone(220, 45, sr=44_100)
    long[30 * 44_100 : 40 * 44_100] = tone(1000, 10, sr=44_100)
    longer = write_audio(tmp_path / "src" / "long.flac", long, 44_100)
    short = write_audio(tmp_path / "src" / "short.wav", tone(660, 10))
    clips = [
        Clip("whole", whole),
        Clip("long@30-40", longer, 30.0, 40.0),
        Clip("short", short, 30.0, 40.0, whole_if_short=True),  # MusicCaps: saved already cut
        Clip("long-range-of-long", longer, 30.0, 40.0, whole_if_short=True),  # longer than its range: cut
    ]
    files = place_clips(dataset(tmp_path, clips), tmp_path / "clips")
    assert files.failed == ()
    by_key = {k: tmp_path / "clips" / p for p, k in files.keys.items()}
    assert sorted(by_key) == sorted(c.key for c in clips)
    assert by_key["whole"].is_symlink() and by_key["whole"].resolve() == whole.resolve()
    assert by_key["short"].is_symlink() and by_key["short"].resolve() == short.resolve()
    for key in ("long@30-40", "long-range-of-long"):
        audio, rate = sf.read(str(by_key[key]), dtype="float32")
        assert rate == SR and by_key[key].suffix == ".flac"
        assert len(audio) == 10 * SR
        assert abs(dominant_hz(audio) - 1000) < 5
    stamps = {p: (tmp_path / "clips" / p).lstat().st_mtime_ns for p in files.keys}
    again = place_clips(dataset(tmp_path, clips), tmp_path / "clips")
    assert again.keys == files.keys
    assert {p: (tmp_path / "clips" / p).lstat().st_mtime_ns for p in again.keys} == stamps
    assert not [p for p in (tmp_path / "clips").iterdir() if p.name.startswith(".")]


def test_a_range_past_the_end_or_an_undecodable_source_is_reported(tmp_path, write_audio, tone):
    short = write_audio(tmp_path / "short.wav", tone(440, 5))
    broken = tmp_path / "broken.mp3"
    broken.write_bytes(b"ID3 not really audio" * 50)
    clips = [Clip("late", short, 30.0, 40.0), Clip("broken", broken, 0.0, 10.0), Clip("ok", short)]
    files = place_clips(dataset(tmp_path, clips), tmp_path / "clips")
    assert sorted(files.keys.values()) == ["ok"]
    reasons = dict(files.failed)
    assert reasons["late"] == "is 5.0 s long: nothing at 30-40 s"
    assert "soundfile" in reasons["broken"] and "PyAV" in reasons["broken"]


def test_names_are_safe_and_distinct(tmp_path):
    a = clip_name(Clip("cat/a b.flac@0-10", tmp_path / "a b.flac", 0.0, 10.0), cut=True)
    b = clip_name(Clip("cat/a_b.flac@0-10", tmp_path / "a_b.flac", 0.0, 10.0), cut=True)
    assert a != b and "/" not in a and " " not in a and a.endswith(".flac")
    assert clip_name(Clip("x", tmp_path / "x.MP3"), cut=False).endswith(".mp3")
    first = dataset_key(dataset(tmp_path, []))
    assert first == dataset_key(dataset(tmp_path, [])) and first.startswith("set-")
    assert first != dataset_key(Dataset(tmp_path / "set.csv", "csv", tmp_path / "other", (), ()))
