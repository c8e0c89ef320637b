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


def test_tag_writes_tempo_and_key_into_files_only_when_asked(idx, catalog, run_json):
    import hashlib

    import mutagen

    from musicsearch.keys import find_key
    from musicsearch.store import Store

    files = sorted(p for p in catalog.rglob("*") if p.is_file())
    digest = {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files}
    r = runner.invoke(app, ["tag", "--index", idx, "--top", "1"])
    assert r.exit_code == 0 and "tempo and key" not in r.output
    assert {p: hashlib.sha256(p.read_bytes()).hexdigest() for p in files} == digest  # untouched

    r = runner.invoke(app, ["tag", "--index", idx, "--top", "1", "--write-tags"])
    assert r.exit_code == 0, r.output
    store = Store(idx)
    tracks = list(store.tracks(int(i) for i in store.filtered_ids()).values())
    store.close()
    known = [t for t in tracks if t.bpm is not None or t.key is not None]
    assert known and f"Wrote tempo and key into {len(known)} files (0 already had them, 0 failed)." in r.output
    for t in known:
        tags = mutagen.File(t.path).tags
        bpm = tags.get("TBPM") or tags.get("BPM") or tags.get("tmpo")
        key = tags.get("TKEY") or tags.get("INITIALKEY") or tags.get("----:com.apple.iTunes:initialkey")
        assert str(getattr(bpm, "text", bpm)[0]) == str(round(t.bpm))
        assert find_key(str(getattr(key, "text", key)[0])).name == t.key
    assert not list(catalog.rglob(".*.tmp"))  # no temporary copy left behind
    # the audio is the same: the next index run embeds nothing, and writing again changes nothing
    again = runner.invoke(app, ["index", str(catalog), "--index", idx])
    assert again.exit_code == 0 and f": 0 added, 0 updated, 0 moved, 0 removed, {len(tracks)} unchanged" in again.output
    r = runner.invoke(app, ["tag", "--index", idx, "--top", "1", "--write-tags"])
    assert f"into 0 files ({len(known)} already had them, 0 failed)" in r.output
