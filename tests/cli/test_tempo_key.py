"""Tempo and key through the CLI and the HTTP API: --bpm (half and double time unless
--strict-bpm), --key, --key-compatible, the table's bpm and key columns, the JSON fields,
the same fields over HTTP, one-line errors."""

import json

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from musicsearch import MusicIndex
from musicsearch.cli import app
from musicsearch.server import create_app
from musicsearch.store import Store

runner = CliRunner()
# Song 00 ... Song 19 of the catalog: a tempo and a key for some of them
MUSIC = {
    0: (124.0, "A minor"),
    1: (62.5, "E minor"),
    2: (248.0, "C major"),
    3: (100.0, "A minor"),
    4: (127.0, "F# major"),
}


@pytest.fixture
def music_idx(idx):
    store = Store(idx)
    with store.write(vectors=False):
        store.conn.execute("update tracks set bpm = null, key = null")  # the tones' estimates: none
        for i, (bpm, key) in MUSIC.items():
            store.conn.execute(
                "update tracks set bpm = ?, bpm_source = 'tag', key = ?, key_source = 'estimate' where title = ?",
                [bpm, key, f"Song {i:02d}"],
            )
    store.close()
    return idx


def titles(*args):
    r = runner.invoke(app, ["query", "150 Hz", "-k", "20", "--json", *args])
    assert r.exit_code == 0, r.output
    return sorted(h["title"] for h in json.loads(r.output))


def test_bpm_and_key_filters(music_idx):
    at = ["--index", music_idx]
    assert titles(*at, "--bpm", "120-128") == ["Song 00", "Song 01", "Song 02", "Song 04"]
    assert titles(*at, "--bpm", "120-128", "--strict-bpm") == ["Song 00", "Song 04"]
    assert titles(*at, "--bpm", "124") == ["Song 00", "Song 01", "Song 02"]
    assert titles(*at, "--key", "8A") == ["Song 00", "Song 03"]
    assert titles(*at, "--key-compatible", "8A") == ["Song 00", "Song 01", "Song 02", "Song 03"]
    assert titles(*at, "--key-compatible", "Am", "--bpm", "90-110", "--strict-bpm") == ["Song 03"]


def test_hits_show_tempo_and_key(music_idx):
    r = runner.invoke(app, ["query", "150 Hz", "-k", "20", "--key", "8A", "--index", music_idx], terminal_width=300)
    assert r.exit_code == 0, r.output
    header, *rows = [line for line in r.output.splitlines() if line.strip()]
    assert "bpm" in header and "key" in header
    (row,) = [line for line in rows if "Song 00" in line]
    assert " 124 " in row and "8A Am" in row
    r = runner.invoke(app, ["query", "150 Hz", "-k", "1", "--key", "8A", "--json", "--index", music_idx])
    hit = json.loads(r.output)[0]
    assert (hit["bpm"], hit["bpm_source"], hit["key"], hit["camelot"], hit["key_source"]) == (
        124.0 if hit["title"] == "Song 00" else 100.0,
        "tag",
        "A minor",
        "8A",
        "estimate",
    )
    plain = runner.invoke(app, ["query", "150 Hz", "-k", "3", "--year", "2005-", "--index", music_idx])
    assert "bpm" not in plain.output.splitlines()[0]  # no tempo or key among the hits: no columns


def test_bad_bpm_and_key_are_one_line(music_idx, one_error_line):
    line = one_error_line(runner.invoke(app, ["query", "x", "--bpm", "fast", "--index", music_idx]))
    assert "bad bpm 'fast'" in line
    line = one_error_line(runner.invoke(app, ["query", "x", "--key-compatible", "13A", "--index", music_idx]))
    assert "bad key '13A'" in line


def test_the_http_api_takes_the_same_fields(music_idx):
    with MusicIndex(music_idx) as index:
        client = TestClient(create_app(index))
        got = client.get("/api/search", params={"q": "150 Hz", "k": 20, "bpm": "120-128", "strict_bpm": "true"})
        assert got.status_code == 200 and sorted(h["title"] for h in got.json()) == ["Song 00", "Song 04"]
        got = client.get("/api/search", params={"q": "150 Hz", "k": 20, "key_compatible": "8A", "key": "Em"})
        assert [(h["title"], h["camelot"]) for h in got.json()] == [("Song 01", "9A")]
        bad = client.get("/api/search", params={"q": "150 Hz", "bpm": "fast"})
        assert bad.status_code == 400 and "bad bpm" in bad.text


def test_the_web_page_has_the_tempo_and_key_filters(music_idx):
    import re

    with MusicIndex(music_idx) as index:
        client = TestClient(create_app(index))
        page = client.get("/").text
        api = client.get("/openapi.json").json()["paths"]
    form = page[page.index('<form id="search-form"') : page.index("</form>")]
    names = set(re.findall(r'name="(\w+)"', form))
    assert {"bpm", "strict_bpm", "key", "key_compatible", "sound_only"} <= names
    assert names <= {p["name"] for p in api["/api/search"]["get"]["parameters"]}  # the URL's keys are the API's
    assert "sound_only" in {p["name"] for p in api["/api/path"]["get"]["parameters"]}
    script = client.get("/app.js").text
    assert "hit.camelot" in script and "BPM" in script


def test_info_counts_tempo_and_key(music_idx, run_json):
    r = runner.invoke(app, ["info", "--index", music_idx])
    assert r.exit_code == 0, r.output
    assert "tempo:    5 tracks (5 from their tags)" in r.output
    assert "key:      5 tracks (0 from their tags)\n" in r.output
    data = run_json("info", "--index", music_idx)
    assert data["tempo_key"] == {"bpm": 5, "bpm_tags": 5, "key": 5, "key_tags": 0, "unanalysed": 0}
