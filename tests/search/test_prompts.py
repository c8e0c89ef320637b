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


# -- moments of an index that keeps a few windows per track (as on a CPU) ----------------


@pytest.fixture
def sampled(tmp_path, fake, write_audio, tone):
    """An index keeping 2 windows per track (0-10 s and the last 10 s), as a CPU index keeps
    6: "mix" is 150 Hz for 0-50 s, 600 Hz for 50-70 s, 2400 Hz for 70-120 s, so its stored
    windows never hear 600 Hz; "low", "mid" and "high" are 20 s at one of those each."""
    from fakes import SR

    lib = tmp_path / "lib"
    write_audio(lib / "mix.flac", np.concatenate([tone(150, 50), tone(600, 20), tone(2400, 50)]), SR)
    for name, freq in (("low", 150), ("mid", 600), ("high", 2400)):
        write_audio(lib / f"{name}.flac", tone(freq, 20), SR)
    index = MusicIndex(tmp_path / "idx", settings=Settings(max_windows=2), embedder=fake)
    assert len(index.index(lib).added) == 4
    return index, lib


def test_a_moment_between_stored_windows_is_embedded_from_the_file(sampled, fake):
    from musicsearch.search.prompts import resolve_seed

    idx, lib = sampled
    ctx, store = idx.context, idx.context.store()
    mix = store.find_tracks("mix")[0]
    starts, ends, _ = store.window_vectors([mix.id])[mix.id]
    assert list(zip(starts, ends)) == [(0.0, 10.0), (110.0, 120.0)]  # nothing stored at 55-65 s
    assert [h.track.title for h in idx.similar("mix@0:55-1:05", k=1)] == ["mid"]
    vector, track_id = resolve_seed(store, "mix@0:55-1:05", ctx.embed_file, ctx.embed_range)
    assert track_id == mix.id
    np.testing.assert_allclose(vector, fake.embed_texts(["600 Hz"])[0], atol=1e-6)  # the file's 50-70 s windows
    np.testing.assert_allclose(vector, ctx.embed_range(lib / "mix.flac", 55.0, 65.0), atol=1e-6)
    partly = resolve_seed(store, "mix@1:45-1:55", ctx.embed_file, ctx.embed_range)[0]  # 110-120 stored, 105-110 not
    np.testing.assert_allclose(partly, ctx.embed_range(lib / "mix.flac", 105.0, 115.0), atol=1e-6)


def test_a_moment_inside_a_stored_window_uses_it_without_decoding(sampled, fake):
    from musicsearch.search.prompts import resolve_seed

    idx, _ = sampled
    store = idx.context.store()
    mix = store.find_tracks("mix")[0]
    _, _, vectors = store.window_vectors([mix.id])[mix.id]
    before = fake.windows_embedded
    vector, _ = resolve_seed(store, "mix@0:02-0:08", idx.context.embed_file, idx.context.embed_range)
    np.testing.assert_allclose(vector, vectors[0], atol=1e-6)
    assert fake.windows_embedded == before


def test_a_moment_past_the_end_names_the_tracks_length(sampled):
    idx, _ = sampled
    with pytest.raises(MusicSearchError, match=r"'mix@2:05-2:30': the track is only 120 s long \(2:00\)"):
        idx.similar("mix@2:05-2:30")
    assert [h.track.title for h in idx.similar("mix@1:55-2:30", k=1)] == ["high"]  # runs past the end: its part


def test_one_window_mid_track_is_not_the_tracks_end(tmp_path, fake, write_audio, tone):
    """With one window per track, the stored window sits mid-track (55-65 s of 120): 70-80 s
    is decoded from the file, and past the file's real end the message gives its length."""
    from fakes import SR

    write_audio(tmp_path / "lib" / "mix.flac", np.concatenate([tone(150, 70), tone(2400, 50)]), SR)
    write_audio(tmp_path / "lib" / "high.flac", tone(2400, 20), SR)
    write_audio(tmp_path / "lib" / "low.flac", tone(150, 20), SR)
    idx = MusicIndex(tmp_path / "idx", settings=Settings(max_windows=1), embedder=fake)
    idx.index(tmp_path / "lib")
    assert [h.track.title for h in idx.similar("mix@1:10-1:20", k=1)] == ["high"]
    with pytest.raises(MusicSearchError, match=r"only 120 s long \(2:00\)"):
        idx.similar("mix@2:10-2:20")
