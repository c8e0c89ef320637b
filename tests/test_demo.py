"""musicsearch/demo.py: the generated demo library: tagged tracks of sounds a description can
tell apart, drum loops at their stated tempos, written once."""

from __future__ import annotations

import numpy as np
import soundfile as sf

from musicsearch.demo import DEMO_TRACKS, SECONDS, SR, build_demo_library, demo_library_dir
from musicsearch.tags import read_tags


def _bar_repeat(audio: np.ndarray, bpm: float) -> float:
    """Correlation of the loop with itself one bar (4 beats at ``bpm``) later."""
    lag = int(round(4 * 60 / bpm * SR))
    a, b = audio[:-lag], audio[lag:]
    return float(np.dot(a, b) / np.sqrt(np.dot(a, a) * np.dot(b, b)))


def test_the_library_is_tagged_audio_in_the_data_folder(isolated_home):
    folder = build_demo_library()
    assert folder == demo_library_dir() == isolated_home["XDG_DATA_HOME"] / "musicsearch" / "demo-library"
    assert sorted(p.name for p in folder.iterdir()) == sorted(t.file for t in DEMO_TRACKS)
    for track in DEMO_TRACKS:
        info = sf.info(str(folder / track.file))
        assert (info.samplerate, info.channels, info.frames) == (SR, 1, int(SECONDS * SR))
        tags = read_tags(folder / track.file)
        assert (tags.title, tags.artist, tags.genre) == (track.title, track.artist, track.genre)
    assert len({t.title for t in DEMO_TRACKS}) == len(DEMO_TRACKS)


def test_drum_loops_repeat_at_their_stated_tempo(tmp_path):
    folder = build_demo_library(tmp_path / "lib")
    for name, bpm, other in (("drums-090.flac", 90, 124), ("drums-124.flac", 124, 174), ("drums-174.flac", 174, 90)):
        audio, _ = sf.read(str(folder / name), dtype="float32")
        assert _bar_repeat(audio, bpm) > 0.9 > _bar_repeat(audio, other) + 0.3, name


def test_the_sounds_differ_where_a_description_would(tmp_path):
    """Bass is low, noise is bright, a pad is smooth: spectral centroids in that order."""
    folder = build_demo_library(tmp_path / "lib")

    def centroid(name: str) -> float:
        audio, _ = sf.read(str(folder / name), dtype="float32")
        power = np.abs(np.fft.rfft(audio)) ** 2
        return float(np.sum(np.fft.rfftfreq(len(audio), 1 / SR) * power) / np.sum(power))

    order = ["bass-deep.flac", "pad-dark.flac", "pad-warm.flac", "rain.flac", "noise.flac"]
    centroids = [centroid(n) for n in order]
    assert centroids == sorted(centroids), dict(zip(order, centroids))


def test_a_second_build_keeps_every_file(tmp_path):
    folder = build_demo_library(tmp_path / "lib")
    before = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    (folder / "rain.flac").unlink()
    build_demo_library(folder)
    after = {p.name: p.stat().st_mtime_ns for p in folder.iterdir()}
    assert after.keys() == before.keys()
    assert {n for n in after if after[n] != before[n]} == {"rain.flac"}
