import json

import pytest
from conftest import FakeEmbedder, tone, write_audio
from typer.testing import CliRunner

import musicsearch.api
from musicsearch.cli import app

runner = CliRunner()


@pytest.fixture
def idx(tmp_path, catalog, monkeypatch):
    monkeypatch.setattr(musicsearch.context, "ClapEmbedder", lambda *a, **k: FakeEmbedder())
    path = tmp_path / "idx"
    r = runner.invoke(app, ["index", str(catalog), "--index", str(path), "-q"])
    assert r.exit_code == 0, r.output
    return str(path)


def run_json(*args):
    r = runner.invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_query_filters_json(idx):
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


def test_query_negative_and_min_score(idx):
    hits = run_json("query", "600 Hz", "1200 Hz", "--not", "1200 Hz::1", "--index", idx, "-k", "3")
    assert all(int(h["title"][-2:]) % 4 == 1 for h in hits)
    r = runner.invoke(app, ["query", "600 Hz", "--index", idx, "--min-score", "2"])
    assert r.exit_code == 0 and "No tracks match." in r.output


def test_bad_filter_is_one_error_line(idx):
    r = runner.invoke(app, ["query", "x", "--index", idx, "--year", "soon"])
    assert r.exit_code == 1 and r.stderr.startswith("Error: bad year")
    r = runner.invoke(app, ["query", "x", "--index", idx, "--by", "album"])
    assert r.exit_code == 1 and "--by must be" in r.stderr


def test_similar(idx, catalog, tmp_path):
    hits = run_json("similar", "Song 01", "--index", idx, "-k", "4")
    assert {h["title"] for h in hits} == {"Song 05", "Song 09", "Song 13", "Song 17"}
    clip = write_audio(tmp_path / "clip.wav", tone(150, 4))
    hits = run_json("similar", str(clip), "--index", idx, "-k", "2", "--genre", "rock")
    assert {h["title"] for h in hits} == {"Song 12", "Song 16"}  # the rock songs at 150 Hz
    r = runner.invoke(app, ["similar", "Song 1", "--index", idx])
    assert r.exit_code == 1 and "matches several tracks" in r.stderr


def test_duplicates(idx, catalog, tmp_path):
    r = runner.invoke(app, ["duplicates", "--index", idx])
    assert r.exit_code == 0
    groups = run_json("duplicates", "--index", idx, "--threshold", "0.999")
    # the fake maps every 600 Hz song to one vector: the four bands are four groups of five
    assert [len(g) for g in groups] == [5, 5, 5, 5]
    assert {"track_id", "path", "title", "score"} <= set(groups[0][0])
    assert "Group 1 (5 tracks)" in r.output


def test_classify(idx):
    data = run_json("classify", "Song 03", "--labels", "150 Hz, 2400 Hz", "--index", idx)
    assert data["top_label"] == "2400 Hz" and data["confidence"] > 0.9
    assert [x["label"] for x in data["labels"]] == ["2400 Hz", "150 Hz"]
    r = runner.invoke(
        app, ["classify", "Song 03", "--labels", "150 Hz, 2400 Hz", "--template", "a {} tone", "--index", idx]
    )
    assert r.exit_code == 0 and "top: 2400 Hz" in r.output and "█" in r.output


def test_tag_then_filter(idx, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("# bands\n150 Hz\n600 Hz\n\n1200 Hz\n2400 Hz\n")
    r = runner.invoke(app, ["tag", "--index", idx, "--top", "1", "--labels-file", str(labels)])
    assert r.exit_code == 0 and "Tagged 20 tracks." in r.output
    hits = run_json("query", "150 Hz", "--index", idx, "-k", "20", "--tag", "1200 hz")
    assert {h["title"] for h in hits} == {f"Song {i:02d}" for i in range(2, 20, 4)}
    assert "1200 Hz" in [t["label"] for t in hits[0]["tags"]]
    r = runner.invoke(app, ["query", "1200 Hz", "--index", idx, "-k", "1"], terminal_width=300)
    assert "tags" in r.output.splitlines()[0]


def test_similar_table_and_m3u(idx, tmp_path):
    m3u = tmp_path / "like.m3u8"
    r = runner.invoke(app, ["similar", "Song 01", "--index", idx, "-k", "4", "--m3u", str(m3u)])
    assert r.exit_code == 0, r.output
    lines = r.output.splitlines()
    assert "score" in lines[0] and "match" in lines[0]
    body = [line for line in lines[2:] if line.strip() and not line.startswith("Wrote")]
    assert len(body) == 4 and not any("song01.flac" in line for line in body)
    assert m3u.read_text().count("#EXTINF:") == 4
