"""Tests of musicsearch/analysis.py on generated audio of known tempo and key, decoded and
cut into windows as an index run does; and the tags' precedence over the estimates."""

import numpy as np
import pytest

from musicsearch.analysis import ANALYSIS_VERSION, STRIDE, Analyzer, Estimate, analyse_file, musical_of
from musicsearch.audio import SAMPLE_RATE
from musicsearch.keys import parse_key

SR = 44_100


def drums(bpm: float, seconds: float) -> np.ndarray:
    """A kick on every beat, a hi-hat on every eighth note."""
    rng = np.random.default_rng(int(bpm))
    out = np.zeros(int(seconds * SR))
    t = np.arange(int(0.12 * SR)) / SR
    kick = np.sin(2 * np.pi * (50 + 100 * np.exp(-t * 30)) * t) * np.exp(-t * 18)
    hat = 0.2 * rng.standard_normal(len(t)) * np.exp(-t * 80)
    beat = 60.0 / bpm
    for n in range(int(seconds / beat * 2)):
        i = int(n * beat / 2 * SR)
        part = (kick + hat if n % 2 == 0 else hat)[: len(out) - i]
        out[i : i + len(part)] += part
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


def chords(key_name: str, seconds: float) -> np.ndarray:
    """I-IV-V-I (i-iv-V-i in minor) of additive tones, two seconds a chord, the root in the bass."""
    key = parse_key(key_name)
    third = 3 if key.mode == "minor" else 4
    t = np.arange(2 * SR) / SR
    env = np.minimum(1, t * 20) * np.exp(-t * 0.6)
    parts = []
    for n in range(int(seconds / 2)):
        root, up = [(0, third), (5, third), (7, 4), (0, third)][n % 4]
        f = 261.63 * 2 ** (((key.tonic + root) % 12) / 12)
        notes = (f, f * 2 ** (up / 12), f * 2 ** (7 / 12), f / 4)
        parts.append(env * sum(np.sin(2 * np.pi * g * h * t) / h for g in notes for h in range(1, 6)))
    out = np.concatenate(parts)
    return (0.5 * out / np.abs(out).max()).astype(np.float32)


@pytest.mark.parametrize("bpm", [90, 124, 140])
def test_tempo_of_a_drum_pattern(tmp_path, write_audio, bpm):
    est = analyse_file(write_audio(tmp_path / "d.flac", drums(bpm, 25), SR), 10.0)
    assert est.bpm == pytest.approx(bpm, rel=0.02)
    assert 0.3 < est.bpm_confidence <= 1.0


@pytest.mark.parametrize("key", ["A minor", "C major", "F# minor", "Eb major"])
def test_key_of_a_chord_progression(tmp_path, write_audio, key):
    est = analyse_file(write_audio(tmp_path / "k.wav", chords(key, 20), SR), 10.0)
    assert est.key == key and est.key_confidence > 0.5


def test_only_one_window_in_four_is_analysed(tmp_path, write_audio):
    """A pure tone's energy: its RMS in dB, from windows 0 and 4 only (the others hold silence)."""
    tone = np.zeros(55 * SR, np.float32)
    tone[: 10 * SR] = 0.5 * np.sin(2 * np.pi * 440 * np.arange(10 * SR) / SR)
    tone[40 * SR : 50 * SR] = tone[: 10 * SR]
    est = analyse_file(write_audio(tmp_path / "t.wav", tone, SR), 10.0)
    assert STRIDE == 4
    assert est.energy == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)), abs=0.05)


def test_the_padding_past_the_end_is_left_out(tmp_path, write_audio):
    """A 5 s clip is one window padded to 10 s by repeating it: its energy is the clip's."""
    clip = (0.5 * np.sin(2 * np.pi * 440 * np.arange(5 * SR) / SR)).astype(np.float32)
    clip[: 2 * SR] = 0
    est = analyse_file(write_audio(tmp_path / "c.wav", clip, SR), 10.0)
    assert est.energy == pytest.approx(20 * np.log10(0.5 / np.sqrt(2)) + 10 * np.log10(3 / 5), abs=0.05)


def test_silence_and_a_short_clip_give_no_tempo_or_key(tmp_path, write_audio):
    est = analyse_file(write_audio(tmp_path / "s.wav", np.zeros(15 * SR, np.float32), SR), 10.0)
    assert (est.bpm, est.key, est.bpm_confidence) == (None, None, None) and est.energy < -100
    short = Analyzer(SAMPLE_RATE)
    short.add(np.full(SAMPLE_RATE, 0.1, np.float32))  # one second: too short for a tempogram
    assert short.result() == Estimate(energy=-20.0)


def test_tags_win_over_the_estimates_and_the_source_is_kept():
    est = Estimate(bpm=126.0, bpm_confidence=0.8, key="A minor", key_confidence=0.7, energy=-12.0)
    both = musical_of({"bpm": 124.0, "key": "C major"}, est)
    assert (both.bpm, both.bpm_source, both.bpm_confidence) == (124.0, "tag", None)
    assert (both.key, both.key_source, both.key_confidence) == ("C major", "tag", None)
    assert (both.energy, both.analysed) == (-12.0, ANALYSIS_VERSION)
    est_only = musical_of({"title": "x"}, est)
    assert (est_only.bpm, est_only.bpm_source, est_only.key, est_only.key_source) == (
        126.0,
        "estimate",
        "A minor",
        "estimate",
    )
    none = musical_of({}, None)  # not analysed (e.g. the analysis failed): the next run tries again
    assert (none.bpm, none.bpm_source, none.analysed) == (None, None, None)
    tag_only = musical_of({"bpm": 100.0}, Estimate())
    assert (tag_only.bpm_source, tag_only.key_source, tag_only.analysed) == ("tag", None, ANALYSIS_VERSION)


def test_the_demo_librarys_known_tempos_and_keys(tmp_path):
    """Audio from another generator (musicsearch demo): drum loops at 90, 124 and 174 BPM,
    pads in C major and A minor."""
    from musicsearch.demo import build_demo_library

    lib = build_demo_library(tmp_path / "demo")
    est = {p.name: analyse_file(p, 10.0) for p in lib.rglob("*.flac") if p.stem.startswith(("drums", "pad"))}
    assert est["drums-090.flac"].bpm == pytest.approx(90, rel=0.02)
    assert est["drums-124.flac"].bpm == pytest.approx(124, rel=0.02)
    assert est["drums-174.flac"].bpm == pytest.approx(174 / 2, rel=0.02)  # half time: the prior's octave error
    assert (est["pad-warm.flac"].key, est["pad-dark.flac"].key) == ("C major", "A minor")
    beatless = max(est["pad-warm.flac"].bpm_confidence, est["pad-dark.flac"].bpm_confidence)
    assert beatless < min(est[f"drums-{n}.flac"].bpm_confidence for n in ("124", "174"))
