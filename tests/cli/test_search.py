"""musicsearch query, similar, duplicates: tables, JSON, filters, playlists, an empty --not,
an empty index."""

import json

from typer.testing import CliRunner

import musicsearch.context
from musicsearch.cli import app

runner = CliRunner()


def test_query_table(indexed):
    idx, _ = indexed
    r = runner.invoke(app, ["query", "solo piano, slow and sad", "--index", str(idx), "-k", "3"], terminal_width=200)
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "score" in lines[0] and "match" in lines[0] and "path" in lines[0]
    body = [line for line in lines[2:] if line.strip()]
    assert len(body) == 3
    assert body[0].split()[0] == "1" and "0:" in body[0] and "–" in body[0]


def test_query_json(indexed, library):
    idx, _ = indexed
    r = runner.invoke(app, ["query", "warm analog synth pads", "--index", str(idx), "--json", "-k", "10"])
    assert r.exit_code == 0, r.output
    hits = json.loads(r.output)
    assert len(hits) == 4 and [h["rank"] for h in hits] == [1, 2, 3, 4]
    keys = {
        "rank",
        "score",
        "track_id",
        "path",
        "title",
        "artist",
        "album",
        "genre",
        "year",
        "duration",
        "segment_start",
        "segment_end",
    }
    assert keys <= set(hits[0])
    assert {h["path"] for h in hits} == {str(p) for p in library.rglob("t*.*")}
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True)
    t150 = next(h for h in hits if h["title"] == "t150")
    assert t150["duration"] == 25 and t150["segment_end"] - t150["segment_start"] == 10


def test_query_filters_json(idx, run_json):
    hits = run_json("query", "2400 Hz", "--index", idx, "-k", "5", "--genre", "jazz", "--year", "1990-1999")
    assert len(hits) == 5 and {h["genre"] for h in hits} == {"Jazz"}
    assert {h["title"] for h in hits[:2]} == {"Song 03", "Song 07"}
    hits = run_json("query", "600 Hz", "--index", idx, "-k", "20", "--min-duration", "0:20", "--path", "*/rock/*")
    assert {h["title"] for h in hits} == {f"Song {i:02d}" for i in range(15, 20)}


def test_query_table_by_window_and_m3u(idx, tmp_path):
    m3u = tmp_path / "out.m3u8"
    r = runner.invoke(app, ["query", "1200 Hz", "--index", idx, "-k", "3", "--by", "window", "--m3u", str(m3u)])
    assert r.exit_code == 0, r.output
    assert "match" in r.output and "Wrote 3 tracks to" in r.output
    lines = m3u.read_text().splitlines()
    assert lines[0] == "#EXTM3U" and len(lines) == 7 and lines[1].startswith("#EXTINF:")


def test_query_negative_and_min_score(idx, run_json):
    hits = run_json("query", "600 Hz", "1200 Hz", "--not", "1200 Hz::1", "--index", idx, "-k", "3")
    assert all(int(h["title"][-2:]) % 4 == 1 for h in hits)
    r = runner.invoke(app, ["query", "600 Hz", "--index", idx, "--min-score", "2"])
    assert r.exit_code == 0 and "No tracks match." in r.output


def test_bad_filter_is_one_error_line(idx):
    r = runner.invoke(app, ["query", "x", "--index", idx, "--year", "soon"])
    assert r.exit_code == 1 and r.stderr.startswith("Error: bad year")
    r = runner.invoke(app, ["query", "x", "--index", idx, "--by", "album"])
    assert r.exit_code == 1 and "--by must be" in r.stderr


def test_similar(idx, catalog, tmp_path, write_audio, tone, run_json):
    hits = run_json("similar", "Song 01", "--index", idx, "-k", "4")
    assert {h["title"] for h in hits} == {"Song 05", "Song 09", "Song 13", "Song 17"}
    clip = write_audio(tmp_path / "clip.wav", tone(150, 4))
    hits = run_json("similar", str(clip), "--index", idx, "-k", "2", "--genre", "rock")
    assert {h["title"] for h in hits} == {"Song 12", "Song 16"}  # the rock songs at 150 Hz
    r = runner.invoke(app, ["similar", "Song 1", "--index", idx])
    assert r.exit_code == 1 and "matches several tracks" in r.stderr


def test_similar_table_and_m3u(idx, tmp_path):
    m3u = tmp_path / "like.m3u8"
    r = runner.invoke(app, ["similar", "Song 01", "--index", idx, "-k", "4", "--m3u", str(m3u)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "score" in lines[0] and "match" in lines[0]
    body = [line for line in lines[2:] if line.strip() and not line.startswith("Wrote")]
    assert len(body) == 4 and not any("song01.flac" in line for line in body)
    assert m3u.read_text().count("#EXTINF:") == 4


def test_duplicates(idx, catalog, tmp_path, run_json):
    r = runner.invoke(app, ["duplicates", "--index", idx])
    assert r.exit_code == 0
    groups = run_json("duplicates", "--index", idx, "--threshold", "0.999")
    # the fake maps every 600 Hz song to one vector: the four bands are four groups of five
    assert [len(g) for g in groups] == [5, 5, 5, 5]
    assert {"track_id", "path", "title", "score"} <= set(groups[0][0])
    assert "Group 1 (5 tracks)" in r.output


def test_an_empty_negative_prompt_names_not(idx, one_error_line):
    for negative in ("", "  ", "::0.5"):
        line = one_error_line(runner.invoke(app, ["query", "600 Hz", "--not", negative, "--index", idx]))
        assert line == "Error: --not got an empty prompt: give the text to steer away from, or leave it out"


def test_a_query_on_an_empty_index_says_how_to_fill_it(tmp_path, monkeypatch, fake_embedder_cls, one_error_line):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: fake_embedder_cls())
    music = tmp_path / "music"
    music.mkdir()
    (music / "broken.wav").write_bytes(b"RIFF....garbage")  # the only file fails: the index holds no track
    idx = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(music), "--index", str(idx), "-q"])
    assert r.exit_code == 0 and "0 added" in r.stdout and "1 failed" in r.stdout
    for args in (["600 Hz"], ["600 Hz", "--json"]):
        line = one_error_line(runner.invoke(app, ["query", *args, "--index", str(idx)]))
        assert line == (
            f"Error: index {idx} holds no tracks (its files failed or were removed); "
            "fill it with: musicsearch index FOLDER"
        )
