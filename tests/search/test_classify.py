"""Zero-shot labels and stored tags (musicsearch/search/classify.py), through the public API."""

import shutil

import pytest

from musicsearch import Filters, MusicIndex, Settings
from musicsearch.errors import MusicSearchError


@pytest.fixture
def idx(tmp_path, catalog, fake):
    index = MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake)
    report = index.index(catalog)
    assert len(report.added) == 20
    return index


def test_classify_indexed_track_and_file(idx, tmp_path, fake, write_audio, tone):
    before = fake.windows_embedded
    result = idx.classify("Song 03", "150 Hz, 600 Hz, 2400 Hz")
    assert fake.windows_embedded == before  # stored vector, no decoding
    assert result.top_label == "2400 Hz" and result.confidence > 0.9
    assert next(lab for lab, _ in result.labels) == "2400 Hz"
    assert sum(p for _, p in result.labels) == pytest.approx(1.0)
    outside = write_audio(tmp_path / "x.wav", tone(150, 3))
    assert idx.classify(str(outside), ["600 Hz", "150 Hz"], template="a {} tone").top_label == "150 Hz"
    with pytest.raises(MusicSearchError, match="at least two labels"):
        idx.classify("Song 03", "rock")
    with pytest.raises(MusicSearchError, match="template"):
        idx.classify("Song 03", "a, b", template="no slot")


def test_tag_then_filter_and_show(idx):
    n = idx.tag(top=1, extra_labels=["150 Hz", "600 Hz", "1200 Hz", "2400 Hz"])
    assert n == 20
    assert idx.tag(top=1) == 0  # nothing new to tag
    hits = idx.search("600 Hz", k=20, filters=Filters(tags=("2400 hz",)))
    assert {h.track.title for h in hits} == {f"Song {i:02d}" for i in range(3, 20, 4)}
    top = idx.search("2400 Hz", k=1)[0]
    assert "2400 Hz" in [label for label, _ in top.tags]
    assert len(top.tags) == 4
    assert top.tags[3][0] == "2400 Hz"  # the best of each vocabulary: genre, mood, instrument, then the user's
    vocabs = idx.context.store().db.execute("select distinct vocab from track_tags order by vocab").fetchall()
    assert [v[0] for v in vocabs] == ["genre", "instrument", "mood", "user"]
    assert idx.tag(top=2, retag=True) == 20
    assert idx.context.store().db.execute("select count(*) from track_tags").fetchone()[0] == 20 * 3 * 2


def test_a_new_labels_file_adds_to_tagged_tracks(idx):
    assert idx.tag(top=1) == 20
    before = {h.track.id: h.tags for h in idx.search("600 Hz", k=20)}
    assert all(len(t) == 3 for t in before.values())  # genre, mood, instrument
    assert idx.tag(top=1, extra_labels=["150 Hz", "600 Hz", "1200 Hz", "2400 Hz"]) == 20  # no --retag needed
    after = {h.track.id: h.tags for h in idx.search("600 Hz", k=20)}
    assert all(after[i][:3] == before[i] for i in before)  # the built-in tags stay shown
    assert {after[i][3][0] for i in after} == {"150 Hz", "600 Hz", "1200 Hz", "2400 Hz"}
    assert idx.tag(top=1, extra_labels=["600 Hz", "2400 Hz"]) == 20  # new custom labels replace the old ones
    assert {idx.search("600 Hz", k=20)[0].tags[3][0]} <= {"600 Hz", "2400 Hz"}
    n = idx.context.store().db.execute("select count(*) from track_tags where vocab = 'user'").fetchone()[0]
    assert n == 20


def test_changed_track_loses_stale_tags(idx, catalog):
    idx.tag(top=1)
    p = catalog / "jazz" / "song00.flac"
    shutil.copy(catalog / "jazz" / "song03.flac", p)
    idx.index(catalog)
    assert idx.tag(top=1) == 1
