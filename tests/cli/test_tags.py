"""musicsearch classify and tag."""

from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()


def test_classify(idx, run_json):
    data = run_json("classify", "Song 03", "--labels", "150 Hz, 2400 Hz", "--index", idx)
    assert data["top_label"] == "2400 Hz" and data["confidence"] > 0.9
    assert [x["label"] for x in data["labels"]] == ["2400 Hz", "150 Hz"]
    r = runner.invoke(
        app, ["classify", "Song 03", "--labels", "150 Hz, 2400 Hz", "--template", "a {} tone", "--index", idx]
    )
    assert r.exit_code == 0 and "top: 2400 Hz" in r.output and "█" in r.output


def test_tag_then_filter(idx, tmp_path, run_json):
    labels = tmp_path / "labels.txt"
    labels.write_text("# bands\n150 Hz\n600 Hz\n\n1200 Hz\n2400 Hz\n")
    r = runner.invoke(app, ["tag", "--index", idx, "--top", "1", "--labels-file", str(labels)])
    assert r.exit_code == 0 and "Tagged 20 tracks." in r.output
    hits = run_json("query", "150 Hz", "--index", idx, "-k", "20", "--tag", "1200 hz")
    assert {h["title"] for h in hits} == {f"Song {i:02d}" for i in range(2, 20, 4)}
    assert "1200 Hz" in [t["label"] for t in hits[0]["tags"]]
    r = runner.invoke(app, ["query", "1200 Hz", "--index", idx, "-k", "1"], terminal_width=300)
    assert "tags" in r.output.splitlines()[0]
