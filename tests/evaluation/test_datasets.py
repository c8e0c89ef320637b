"""The three loaders on small sets in their published formats, written here with generated
audio: Song Describer (several captions per track, excerpts found by the CSV's path or the
track id, a nested audio folder, a missing track), MusicCaps (clips named by ytid, a clip
range, missing clips counted) and a plain CSV (ranges, a header or none, missing files)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from musicsearch.errors import MusicSearchError
from musicsearch.evaluation.datasets import find_csv, guess_format, load_dataset

SD_COLUMNS = [
    "caption_id",
    "track_id",
    "caption",
    "is_valid_subset",
    "familiarity",
    "artist_id",
    "album_id",
    "path",
    "duration",
]
MC_COLUMNS = [
    "ytid",
    "start_s",
    "end_s",
    "audioset_positive_labels",
    "aspect_list",
    "caption",
    "author_id",
    "is_balanced_subset",
    "is_audioset_eval",
]


def write_csv(path: Path, header: list[str] | None, rows: list[list[object]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        if header:
            w.writerow(header)
        w.writerows(rows)
    return path


@pytest.fixture
def song_describer(tmp_path, write_audio, tone):
    """Tracks 1048 (two captions, found by the CSV's path as its .2min.mp3 excerpt), 212 (found
    by its id under the nested audio/audio/ the archive unpacks to) and 77 (missing)."""
    root = tmp_path / "sdd"
    write_audio(root / "audio" / "48" / "1048.2min.mp3", tone(440, 3))
    write_audio(root / "audio" / "audio" / "12" / "212.2min.mp3", tone(880, 3))
    rows = [
        [1, 1048, "Warm piano, slow and quiet.", True, 0, 5, 9, "48/1048.mp3", 200.5],
        [2, 212, "Fast drums, distorted bass.", True, 1, 6, 10, "12/212.mp3", 180.0],
        [3, 1048, "A calm solo piano piece, good for studying.", False, 2, 5, 9, "48/1048.mp3", 200.5],
        [4, 77, "Choir singing in a church.", True, 0, 7, 11, "77/77.mp3", 100.0],
    ]
    write_csv(root / "song_describer.csv", SD_COLUMNS, rows)
    return root


def test_song_describer_as_published(song_describer):
    data = load_dataset(song_describer)  # the folder: its song_describer.csv, its audio/
    assert data.format == "songdescriber"
    assert data.csv_path == song_describer / "song_describer.csv"
    assert [(c.key, c.source.relative_to(song_describer).as_posix()) for c in data.clips] == [
        ("1048", "audio/48/1048.2min.mp3"),
        ("212", "audio/audio/12/212.2min.mp3"),
    ]
    assert all(c.start is None and c.end is None for c in data.clips)
    assert [(c.id, c.clip) for c in data.captions] == [("1", "1048"), ("2", "212"), ("3", "1048")]
    assert data.captions[2].text == "A calm solo piano piece, good for studying."
    assert data.missing == ("77",)
    assert data.missing_captions == 1
    assert "2 clips" in data.summary() and "1 clip missing" in data.summary()


def test_song_describer_limited_keeps_each_clips_captions(song_describer):
    data = load_dataset(song_describer / "song_describer.csv").limited(1)
    assert [c.key for c in data.clips] == ["1048"]
    assert [c.id for c in data.captions] == ["1", "3"]


@pytest.fixture
def musiccaps(tmp_path, write_audio, tone):
    """Four clips: one saved already cut (<ytid>.wav, 10 s), one inside a longer recording
    named <ytid>_<start>-<end> (45 s: 30-40 s is a 1 kHz tone, the rest 220 Hz), two missing."""
    root = tmp_path / "mc"
    write_audio(root / "clips" / "-0Gj8-vB1q4.wav", tone(440, 10))
    long = tone(220, 45)
    long[30 * 48_000 : 40 * 48_000] = tone(1000, 10)
    write_audio(root / "clips" / "sub" / "_ab12CD34ef_30-40.flac", long)
    rows = [
        ["-0Gj8-vB1q4", 30, 40, "/m/0140axq", "['low quality']", "A man sings over a guitar.", 4, False, True],
        ["_ab12CD34ef", 30, 40, "/m/04rlf", "['beeps']", "A high electronic beep.", 0, True, False],
        ["zzzzzzzzzzz", 0, 10, "/m/04rlf", "['rock']", "Loud rock band live.", 1, False, False],
        ["yyyyyyyyyyy", 10, 20, "/m/04rlf", "['jazz']", "Smooth jazz trio.", 2, True, True],
    ]
    return write_csv(root / "musiccaps-public.csv", MC_COLUMNS, rows)


def test_musiccaps_as_published(musiccaps):
    data = load_dataset(musiccaps, audio=musiccaps.parent / "clips")
    assert data.format == "musiccaps"
    assert [(c.key, c.source.name, c.start, c.end, c.whole_if_short) for c in data.clips] == [
        ("-0Gj8-vB1q4", "-0Gj8-vB1q4.wav", 30.0, 40.0, True),
        ("_ab12CD34ef", "_ab12CD34ef_30-40.flac", 30.0, 40.0, True),
    ]
    assert [c.text for c in data.captions] == ["A man sings over a guitar.", "A high electronic beep."]
    assert data.missing == ("zzzzzzzzzzz", "yyyyyyyyyyy")
    assert data.missing_captions == 2


def test_musiccaps_with_no_clip_on_disk_is_one_line(musiccaps, tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(MusicSearchError, match=r"none of the 4 clips .* is in .*docs/evaluation.md"):
        load_dataset(musiccaps, audio=tmp_path / "empty")


def test_plain_csv_with_ranges_and_several_captions(tmp_path, write_audio, tone):
    write_audio(tmp_path / "cat" / "a.flac", tone(300, 30))
    write_audio(tmp_path / "cat" / "b.wav", tone(600, 5))
    rows = [
        ["cat/a.flac", "The opening, strings only", 0, 10],
        ["cat/a.flac", "The drop, full band", 20, 30],
        ["cat/b.wav", "A short sting", "", ""],
        ["cat/b.wav", "Jingle for the news", "", ""],
        ["cat/gone.mp3", "Lost track", "", ""],
    ]
    data = load_dataset(write_csv(tmp_path / "notes.csv", ["path", "caption", "start", "end"], rows))
    assert data.format == "csv"
    assert [(c.key, c.start, c.end) for c in data.clips] == [
        ("cat/a.flac@0-10", 0.0, 10.0),
        ("cat/a.flac@20-30", 20.0, 30.0),
        ("cat/b.wav", None, None),
    ]
    assert [c.clip for c in data.captions] == ["cat/a.flac@0-10", "cat/a.flac@20-30", "cat/b.wav", "cat/b.wav"]
    assert data.missing == ("cat/gone.mp3",) and data.missing_captions == 1


def test_plain_csv_without_header_and_absolute_paths(tmp_path, write_audio, tone):
    a = write_audio(tmp_path / "x" / "a.wav", tone(300, 3))
    data = load_dataset(write_csv(tmp_path / "list.csv", None, [[str(a), "a tone"], ["rel.wav", "missing"]]))
    assert [c.source for c in data.clips] == [a]
    assert data.missing == ("rel.wav",)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        (["a.wav", ""], "row 1 of the CSV needs a path and a caption"),
        (["a.wav", "x", "5", ""], "row 1: give both start and end"),
        (["a.wav", "x", "5", "2"], "row 1: give both start and end, the end after the start"),
        (["a.wav", "x", "soon", "9"], "start in row 1 must be a number of seconds"),
    ],
)
def test_plain_csv_bad_rows_are_one_line(tmp_path, row, message):
    with pytest.raises(MusicSearchError, match=message):
        load_dataset(write_csv(tmp_path / "bad.csv", ["path", "caption", "start", "end"], [row]))


def test_guess_format():
    assert guess_format(SD_COLUMNS) == "songdescriber"
    assert guess_format(MC_COLUMNS) == "musiccaps"
    assert guess_format(["path", "caption"]) == "csv"
    assert guess_format(["a.wav", "some caption"]) == "csv"


def test_missing_dataset_audio_folder_and_columns_are_one_line(tmp_path, write_audio, tone):
    with pytest.raises(MusicSearchError, match=r"^no dataset at .*nothing is downloaded$"):
        load_dataset(tmp_path / "nowhere")
    with pytest.raises(MusicSearchError, match="no CSV of captions in"):
        find_csv(tmp_path)
    sd = write_csv(tmp_path / "sd.csv", SD_COLUMNS, [[1, 2, "x", True, 0, 1, 1, "02/2.mp3", 1]])
    with pytest.raises(MusicSearchError, match=r"no audio folder at .*--audio"):
        load_dataset(sd, audio=tmp_path / "no-audio")
    with pytest.raises(MusicSearchError, match="lacks the column 'start_s' of the musiccaps format"):
        load_dataset(write_csv(tmp_path / "mc.csv", ["ytid", "caption"], [["x", "y"]]), format="musiccaps")
    with pytest.raises(MusicSearchError, match="--format must be one of"):
        load_dataset(sd, format="coco")
    write_csv(tmp_path / "two.csv", ["path", "caption"], [])
    with pytest.raises(MusicSearchError, match="several CSVs"):
        find_csv(tmp_path)
