"""Prompts and seeds to one query vector (musicsearch/search/prompts.py): weights, negatives,
seed tracks and files, through the public API."""

import numpy as np
import pytest

from musicsearch import Filters, MusicIndex, Settings
from musicsearch.errors import MusicSearchError
from musicsearch.search.prompts import combine
from musicsearch.search.request import parse_prompt


@pytest.fixture
def idx(tmp_path, catalog, fake):
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake)
    report = index.index(catalog)
    assert len(report.added) == 20
    return index


def titles(hits):
    return [h.track.title for h in hits]


def test_weighted_and_negative_prompts(idx):
    both = idx.search(["600 Hz", "1200 Hz"], k=10)
    assert {h.track.title for h in both[:10]} == {f"Song {i:02d}" for i in range(20) if i % 4 in (1, 2)}
    weighted = idx.search(["600 Hz::2", "1200 Hz"], k=10)
    assert all(h.track.title in {f"Song {i:02d}" for i in range(1, 20, 4)} for h in weighted[:5])
    negative = idx.search("600 Hz", k=20, negative=["1200 Hz::1"])
    assert all(int(h.track.title[-2:]) % 4 == 2 for h in negative[-5:])  # 1200 Hz songs sink to the bottom
    assert negative[-1].score < 0 < negative[0].score


def test_parse_prompt_and_combine():
    assert parse_prompt("warm pads::2") == ("warm pads", 2.0)
    assert parse_prompt("a: b", 0.5) == ("a: b", 0.5)
    with pytest.raises(MusicSearchError):
        parse_prompt("  ::2")
    v = np.array([1.0, 0.0], np.float32)
    with pytest.raises(MusicSearchError, match="cancel"):
        combine([(v, 1.0)], [(v, 1.0)])


def test_similar_to_an_indexed_track_excludes_it(idx, catalog):
    seed = catalog / "jazz" / "song01.flac"  # 600 Hz
    hits = idx.similar(str(seed), k=4)
    assert len(hits) == 4 and str(seed) not in {h.track.path for h in hits}
    assert {h.track.title for h in hits} == {"Song 05", "Song 09", "Song 13", "Song 17"}
    assert titles(idx.similar("Song 01", k=4)) == titles(hits)  # by title
    assert titles(idx.similar("jazz/song01", k=4)) == titles(hits)  # by part of the path
    rock = idx.similar(str(seed), k=3, filters=Filters(genre="rock"))
    assert set(titles(rock[:2])) == {"Song 13", "Song 17"}
    assert all(h.track.genre == "Rock" for h in rock) and len(rock) == 3


def test_similar_to_an_outside_file(idx, tmp_path, fake, write_audio, tone):
    outside = write_audio(tmp_path / "elsewhere" / "clip.ogg", tone(1200, 8))
    hits = idx.similar(str(outside), k=5)
    assert all(int(h.track.title[-2:]) % 4 == 2 for h in hits)


def test_similar_mixes_text_and_audio(idx, catalog):
    hits = idx.similar("Song 01", k=9, text=["2400 Hz"])  # 4 other 600 Hz songs + 5 at 2400 Hz
    assert {int(h.track.title[-2:]) % 4 for h in hits} == {1, 3}


def test_similar_errors(idx, tmp_path):
    with pytest.raises(MusicSearchError, match="matches several tracks"):
        idx.similar("Song 1")
    with pytest.raises(MusicSearchError, match="no indexed track matches"):
        idx.similar("Nothing like this")
    junk = tmp_path / "junk.wav"
    junk.write_bytes(b"zzz" * 10)
    with pytest.raises(MusicSearchError, match=r"junk\.wav"):
        idx.similar(str(junk))
