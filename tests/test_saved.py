"""Tests of musicsearch/saved.py: a ``SavedSearch`` as JSON and back, the request it reads back
as, the checks it makes when built, ``filter_strings``, the ``playlists.json`` file (its exact
text, a damaged or newer one as one line), and ``refresh`` rewriting the playlists of an index
of the fake embedder. (The CLI's view of saved searches: tests/cli/test_playlists.py.)"""

import json
import logging
import os
import shutil

import pytest

from musicsearch import MusicIndex, Settings
from musicsearch.errors import MusicSearchError
from musicsearch.filters import Filters
from musicsearch.saved import SavedSearch, SavedSearches, filter_strings, refresh, refresh_one
from musicsearch.search.request import Prompt, SearchRequest

FULL = SavedSearch(
    "Calm jazz ♪",
    ("600 Hz", "warm::2"),
    "/lists/calm.m3u8",
    k=7,
    negative=("drums", "noise::0.25"),
    by="window",
    min_score=0.125,
    filters={"artist": "ann", "year": "1990-1999", "min_duration": "1:00", "tags": ["piano", "calm"], "genre": ""},
    path_map=("/music=/srv/music",),
)
FULL_JSON = {
    "name": "Calm jazz ♪",
    "text": ["600 Hz", "warm::2"],
    "m3u": "/lists/calm.m3u8",
    "k": 7,
    "negative": ["drums", "noise::0.25"],
    "by": "window",
    "min_score": 0.125,
    "filters": {"artist": "ann", "year": "1990-1999", "min_duration": "1:00", "tags": ["piano", "calm"]},
    "relative": False,
    "path_map": ["/music=/srv/music"],
}


def test_to_json_is_the_exact_record_and_reads_back():
    assert FULL.to_json() == FULL_JSON  # lists, not tuples; the empty genre left out
    back = SavedSearch.from_json(json.loads(json.dumps(FULL.to_json())))
    assert back == SavedSearch(**{**FULL.__dict__, "filters": FULL_JSON["filters"]})
    assert (back.text, back.negative, back.path_map) == (("600 Hz", "warm::2"), ("drums", "noise::0.25"), FULL.path_map)


def test_from_json_fills_the_defaults():
    s = SavedSearch.from_json({"name": "x", "text": ["a"], "m3u": "/x.m3u8"})
    assert s == SavedSearch("x", ("a",), "/x.m3u8", 50, (), "track", None, {}, False, ())
    assert s.to_json() == {
        "name": "x",
        "text": ["a"],
        "m3u": "/x.m3u8",
        "k": 50,
        "negative": [],
        "by": "track",
        "min_score": None,
        "filters": {},
        "relative": False,
        "path_map": [],
    }


def test_to_request_reads_back_what_was_typed():
    assert FULL.to_request() == SearchRequest(
        prompts=(Prompt("600 Hz", 1.0), Prompt("warm", 2.0)),
        negatives=(Prompt("drums", 0.5), Prompt("noise", 0.25)),
        filters=Filters(artist="ann", year=(1990, 1999), min_duration=60.0, tags=("piano", "calm")),
        by="window",
        k=7,
        min_score=0.125,
    )
    dj = SavedSearch("dj", ("techno",), "/dj.m3u8", filters=filter_strings(bpm="120-128", strict_bpm=True, key="8A"))
    assert dj.filters == {"bpm": "120-128", "strict_bpm": True, "key": "8A"}
    assert SavedSearch.from_json(json.loads(json.dumps(dj.to_json()))).to_request() == SearchRequest(
        prompts=(Prompt("techno", 1.0),), filters=Filters(bpm=(120.0, 128.0), strict_bpm=True, key="A minor"), k=50
    )
    assert filter_strings(strict_bpm=False, key_compatible="1m") == {"key_compatible": "1m"}
    plain = SavedSearch("p", ("2400 Hz",), "/p.m3u8", filters={"year": 2008, "max_duration": 95})
    assert plain.to_request() == SearchRequest(
        prompts=(Prompt("2400 Hz", 1.0),), filters=Filters(year=(2008, 2008), max_duration=95.0), k=50
    )


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"name": " "}, "bad playlist name ' ': give a non-empty one-line name"),
        ({"name": "a\nb"}, "bad playlist name 'a\\nb': give a non-empty one-line name"),
        ({"text": ()}, "a saved search needs at least one prompt"),
        ({"k": 0}, "k must be at least 1"),
        (
            {"relative": True, "path_map": ("/a=/b",)},
            "--relative and --path-map exclude each other: relative paths need no map",
        ),
        ({"path_map": ("nothing",)}, "bad --path-map 'nothing': expected FROM=TO, e.g. /home/me/Music=/music"),
        ({"by": "album"}, "--by must be track or window, not 'album'"),
        ({"text": ("a::x",)}, None),  # a weight that is not a number
        ({"filters": {"min_duration": "1:99"}}, None),
    ],
)
def test_a_search_that_cannot_run_is_refused_when_built(kwargs, message):
    with pytest.raises(MusicSearchError) as err:
        SavedSearch(**{"name": "n", "text": ("a",), "m3u": "/n.m3u8", **kwargs})
    text = str(err.value)
    assert "\n" not in text
    if message is not None:
        assert text == message


def test_filter_strings_keeps_what_was_given():
    assert filter_strings(artist="ann", album=None, tags=("piano", 3), year="1990-", path=[]) == {
        "artist": "ann",
        "tags": ["piano", "3"],
        "year": "1990-",
    }
    assert filter_strings() == {} and filter_strings(genre=None, tags=None) == {}
    with pytest.raises(ValueError, match=r"unknown filters: \['mood'\]"):
        filter_strings(mood="calm")


def test_the_file_is_sorted_indented_json_written_atomically(tmp_path):
    searches = SavedSearches(tmp_path)
    assert searches.path == tmp_path / "playlists.json" and searches.load() == {}
    b = SavedSearch("b", ("1 Hz",), "/b.m3u8")
    searches.save(b)
    searches.save(FULL)
    expected = {"format": 1, "playlists": [FULL_JSON, b.to_json()]}  # sorted by name: "Calm..." < "b"
    assert searches.path.read_text(encoding="utf-8") == json.dumps(expected, ensure_ascii=False, indent=2) + "\n"
    assert "♪" in searches.path.read_text(encoding="utf-8")  # written as text, not \u escapes
    assert sorted(p.name for p in tmp_path.iterdir()) == ["playlists.json"]  # no temp file left
    again = SavedSearch("b", ("2 Hz",), "/b2.m3u8", k=3)
    searches.save(again)  # the same name: replaced
    assert SavedSearches(tmp_path).load() == {"Calm jazz ♪": SavedSearch.from_json(FULL_JSON), "b": again}
    searches.remove("Calm jazz ♪")
    assert json.loads(searches.path.read_text())["playlists"] == [again.to_json()]


def test_saving_into_an_index_that_does_not_exist_says_how_to_build_it(tmp_path):
    with pytest.raises(MusicSearchError) as err:
        SavedSearches(tmp_path / "nothing").save(FULL)
    assert str(err.value) == (
        f"index {tmp_path / 'nothing'} holds nothing yet; build it with: musicsearch index FOLDER"
    )
    assert not (tmp_path / "nothing").exists()


@pytest.mark.parametrize(
    ("text", "why"),
    [
        ("[1, 2]", "'list' object has no attribute 'get'"),
        ('{"playlists": [{"name": "x"}]}', "'text'"),
        ('{"playlists": [{"name": "x", "text": ["a"], "m3u": "/x", "k": "many"}]}', None),
        ('{"playlists": 5}', "'int' object is not iterable"),
        ("", None),
    ],
)
def test_a_damaged_file_is_one_line_naming_it(tmp_path, text, why):
    path = tmp_path / "playlists.json"
    path.write_text(text)
    with pytest.raises(MusicSearchError) as err:
        SavedSearches(tmp_path).load()
    message = str(err.value)
    assert message.startswith(f"{path} is damaged (") and message.endswith("); fix or delete it")
    assert "\n" not in message
    if why is not None:
        assert message == f"{path} is damaged ({why}); fix or delete it"
    assert path.read_text() == text  # left as it was for the user to look at


def test_a_file_from_a_newer_version_is_refused(tmp_path):
    (tmp_path / "playlists.json").write_text('{"format": 2, "playlists": []}')
    with pytest.raises(MusicSearchError) as err:
        SavedSearches(tmp_path).load()
    assert str(err.value) == f"{tmp_path / 'playlists.json'} comes from a newer musicsearch; upgrade to use it"


# -- refresh: over an index of the fake embedder ---------------------------------

FREQS = {"low": 150, "mid": 600, "high": 2400}


@pytest.fixture(scope="module")
def built(tmp_path_factory, write_audio, tone, tagged, fake_embedder_cls):
    """An index of three tagged 5-s tones (150, 600, 2400 Hz), built once for the module."""
    tmp = tmp_path_factory.mktemp("saved")
    for name, freq in FREQS.items():
        tagged(write_audio(tmp / "lib" / f"{name}.flac", tone(freq, 5)), title=name.title(), artist="Ann")
    with MusicIndex(tmp / "idx", settings=Settings(batch_size=4), embedder=fake_embedder_cls()) as idx:
        idx.index(tmp / "lib")
    return tmp


@pytest.fixture
def idx(built, tmp_path, fake_embedder_cls):
    """A copy of the module's index, for this test to save searches into."""
    shutil.copytree(built / "idx", tmp_path / "idx")
    with MusicIndex(tmp_path / "idx", settings=Settings(batch_size=4), embedder=fake_embedder_cls()) as index:
        yield index


def entry(name: str) -> str:
    return f"#EXTINF:5,Ann - {name.title()}\n"


def test_refresh_one_writes_the_playlist_and_counts_it(idx, built, tmp_path):
    search = SavedSearch("high", ("2400 Hz",), str(tmp_path / "high.m3u8"), k=1)
    assert refresh_one(idx, search) == 1
    assert (tmp_path / "high.m3u8").read_text() == f"#EXTM3U\n{entry('high')}{built / 'lib' / 'high.flac'}\n"
    mapped = SavedSearch("mid", ("600 Hz",), str(tmp_path / "mid.m3u8"), k=1, path_map=(f"{built / 'lib'}=/music",))
    assert refresh_one(idx, mapped) == 1
    assert (tmp_path / "mid.m3u8").read_text() == f"#EXTM3U\n{entry('mid')}/music/mid.flac\n"


def test_refresh_rewrites_every_saved_playlist_or_the_named_ones(idx, built, tmp_path):
    saved = SavedSearches(idx.path)
    for name, freq in FREQS.items():
        saved.save(SavedSearch(name, (f"{freq} Hz",), str(tmp_path / f"{name}.m3u8"), k=1, relative=True))
    assert refresh(idx) == {"high": 1, "low": 1, "mid": 1}
    for name in FREQS:  # relative to the playlist's folder
        path = os.path.relpath(built / "lib" / f"{name}.flac", tmp_path)
        assert (tmp_path / f"{name}.m3u8").read_text() == f"#EXTM3U\n{entry(name)}{path}\n"
    for name in FREQS:
        (tmp_path / f"{name}.m3u8").unlink()
    assert refresh(idx, ["mid"]) == {"mid": 1}
    assert sorted(p.name for p in tmp_path.glob("*.m3u8")) == ["mid.m3u8"]
    with pytest.raises(MusicSearchError) as err:
        refresh(idx, ["mid", "nope"])
    assert str(err.value) == "no saved search named 'nope' (musicsearch playlist list)"
    assert sorted(p.name for p in tmp_path.glob("*.m3u8")) == ["mid.m3u8"]  # nothing ran


def test_one_failing_search_is_reported_and_the_others_still_run(idx, tmp_path, caplog):
    saved = SavedSearches(idx.path)
    saved.save(SavedSearch("gone", ("600 Hz",), str(tmp_path / "missing" / "gone.m3u8")))
    saved.save(SavedSearch("high", ("2400 Hz",), str(tmp_path / "high.m3u8"), k=2))
    with caplog.at_level(logging.WARNING, logger="musicsearch.saved"):
        result = refresh(idx)
    gone = tmp_path / "missing" / "gone.m3u8"
    assert result == {"gone": f"--m3u: cannot write the playlist {gone}: no folder {gone.parent}", "high": 2}
    assert [r.getMessage() for r in caplog.records] == [f"saved search 'gone' not refreshed: {result['gone']}"]
    assert (tmp_path / "high.m3u8").read_text().count("#EXTINF") == 2


def test_refresh_of_an_index_without_saved_searches_is_empty(idx):
    assert refresh(idx) == {} and not (idx.path / "playlists.json").exists()
