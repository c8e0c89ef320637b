"""Tempo and key through an index run (musicsearch/indexing/backfill.py and the feed): the
estimates stored with their source, a file's own tag winning, and an index from before the
analysis gaining it on the next run without embedding anything again."""

from __future__ import annotations

import mutagen
import pytest
from test_analysis import SR, chords, drums

from musicsearch import MusicIndex, Settings


def rows(idx):
    sql = "select path, bpm, bpm_source, key, key_source, analysed from tracks order by path"
    return {r[0].rsplit("/", 1)[1]: r[1:] for r in idx.context.store().conn.execute(sql)}


@pytest.fixture
def music(tmp_path, write_audio):
    root = tmp_path / "lib"
    write_audio(root / "beat.flac", drums(124, 12), SR)
    write_audio(root / "chords.flac", chords("A minor", 12), SR)
    tagged = write_audio(root / "tagged.flac", drums(124, 12), SR)
    f = mutagen.File(tagged)
    f["BPM"] = "62"
    f["INITIALKEY"] = "3B"
    f.save()
    return root


def test_estimates_and_tags_are_stored_with_their_source(tmp_path, music, fake):
    with MusicIndex(tmp_path / "idx", settings=Settings(model_check=False), embedder=fake) as idx:
        idx.index(music)
        got = rows(idx)
    beat, chord, tagged = got["beat.flac"], got["chords.flac"], got["tagged.flac"]
    assert beat[0] == pytest.approx(124, rel=0.02) and beat[1] == "estimate" and beat[4] == 1
    assert chord[2:] == ("A minor", "estimate", 1)
    assert tagged == (62.0, "tag", "Db major", "tag", 1)


def test_an_old_index_gains_the_analysis_without_embedding_again(tmp_path, music, fake):
    with MusicIndex(tmp_path / "idx", settings=Settings(model_check=False), embedder=fake) as idx:
        idx.index(music)
        expected = rows(idx)
        store = idx.context.store()
        with store.write(vectors=False):  # as an index built before the analysis existed
            store.conn.execute(
                "update tracks set bpm = null, bpm_source = null, key = null, key_source = null, analysed = null"
            )
        generation = store.generation
        report = idx.index(music)
        assert report.windows == 0 and not report.added and not report.updated
        assert "tempo and key analysed for 3 tracks indexed before (nothing embedded again)" in report.notes
        assert rows(idx) == expected and store.generation == generation
        again = idx.index(music)  # analysed once: the next run decodes nothing
        assert not any("tempo and key" in n for n in again.notes)
