"""Tempo and key in paths and smooth order (musicsearch/search/mixing.py, paths.py): on a
library whose tempo and key are known, a path's tempo and key steps are smaller than those of
the path by sound alone, and ``sound_only`` gives the sound-only path back."""

import itertools
import math

import numpy as np
import pytest

from musicsearch import MusicIndex, Settings
from musicsearch.keys import find_key, wheel_distance
from musicsearch.search import mixing
from musicsearch.search.request import parse_request
from musicsearch.store import Store

SR = 16_000
# mix0 ... mix8 lie on an arc in sound; every other one jumps in tempo and key
MUSIC = {
    0: (120.0, "A minor"),
    1: (121.0, "A minor"),
    2: (172.0, "F# major"),
    3: (123.0, "E minor"),
    4: (90.0, "Db major"),
    5: (125.0, "E minor"),
    6: (171.0, "Bb minor"),
    7: (127.0, "A minor"),
    8: (128.0, "A minor"),
}


@pytest.fixture
def idx(tmp_path, tagged, write_audio, tone, fake):
    root = tmp_path / "blend"
    for j in range(9):
        audio = np.concatenate([tone(150 if w < j else 2400, 10, SR) for w in range(8)])
        tagged(write_audio(root / f"mix{j}.flac", audio, SR), title=f"mix{j}")
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=8), embedder=fake)
    index.index(root)
    store = Store(index.path)
    with store.write(vectors=False):
        for j, (bpm, key) in MUSIC.items():
            store.conn.execute("update tracks set bpm = ?, key = ? where title = ?", [bpm, key, f"mix{j}"])
    store.close()
    return index


def steps(hits):
    tempo = [abs(math.log2(b.track.bpm / a.track.bpm)) for a, b in itertools.pairwise(hits)]
    keys = [wheel_distance(find_key(a.track.key), find_key(b.track.key)) for a, b in itertools.pairwise(hits)]
    return tempo, keys


def test_a_path_takes_small_tempo_and_key_steps(idx):
    by_sound = idx.search(parse_request({"between": ["mix0", "mix8"], "k": 5, "sound_only": True}))
    assert [h.track.title for h in by_sound] == ["mix0", "mix2", "mix4", "mix6", "mix8"]
    mixed = idx.search(parse_request({"between": ["mix0", "mix8"], "k": 5}))
    titles = [h.track.title for h in mixed]
    assert titles[0] == "mix0" and titles[-1] == "mix8" and len(set(titles)) == 5
    (tempo, keys), (sound_tempo, sound_keys) = steps(mixed), steps(by_sound)
    assert max(tempo) < 0.1 < min(sound_tempo)  # every step under 7 %; by sound each one over 7 %
    assert sum(keys) < sum(sound_keys) and max(keys) <= 1
    assert idx.path_between("mix0", "mix8", 5) == mixed  # the Python API: the same two paths
    assert idx.path_between("mix0", "mix8", 5, sound_only=True) == by_sound
    assert all(int(t[3:]) % 2 == 1 for t in titles[1:-1])  # the tracks off the tempo and key left out
    assert titles == sorted(titles)  # still in order from A to B


def test_smooth_order_takes_tempo_and_key_into_account(idx):
    fields = {"q": "a 150 Hz tone", "k": 9, "order": "smooth", "lexical": False}
    mixed = idx.search(parse_request(fields))
    sound = idx.search(parse_request(fields | {"sound_only": True}))
    assert sorted(h.track.title for h in mixed) == sorted(h.track.title for h in sound)
    (tempo, keys), (sound_tempo, sound_keys) = steps(mixed), steps(sound)
    assert sum(tempo) < sum(sound_tempo) and sum(keys) < sum(sound_keys)


def test_mixing_costs():
    assert mixing.tempo_cost(120, 120) == 0 and mixing.tempo_cost(60, 120) == 0  # double time mixes
    assert mixing.tempo_cost(120, 129.6) == pytest.approx(1.0)  # 8 %: one step
    assert mixing.tempo_cost(None, 120) == 0 and mixing.tempo_cost(120, 170) == mixing.MAX_COST
    assert mixing.key_cost("A minor", "C major") == 0.5 and mixing.key_cost("A minor", "A minor") == 0
    assert mixing.key_cost("A minor", "Eb minor") == 3.0 and mixing.key_cost(None, "A minor") == 0
    assert mixing.waypoint_tempo(120, 240, 0.5) == pytest.approx(120)  # 240 is 120 an octave up
    assert mixing.waypoint_tempo(100, 121, 0.5) == pytest.approx(110)
    assert mixing.waypoint_tempo(None, 121, 0.5) == 121


def test_an_unsure_tempo_estimate_does_not_count():
    from dataclasses import replace

    from musicsearch.store import Track

    a = Track(1, "/a", "a", bpm=120.0, bpm_source="estimate", bpm_confidence=0.9)
    b = replace(a, id=2, bpm=170.0)
    assert mixing.mix_cost(a, b) == mixing.MAX_COST
    unsure = replace(b, bpm_confidence=0.2)
    assert mixing.mix_cost(a, unsure) == 0 and not mixing.known([unsure])
    assert mixing.mix_cost(a, replace(unsure, bpm_source="tag")) == mixing.MAX_COST  # a tag always counts
