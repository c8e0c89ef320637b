"""``musicsearch demo``, README's first command: results on a machine with no music folder
(the tiny model folder standing in for the Hub), a second run reusing the library and index,
and offline, the one-line way out."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from musicsearch.cli import app
from musicsearch.demo import DEMO_QUERIES, DEMO_TRACKS

runner = CliRunner()


def test_demo_ends_with_results_and_a_second_run_reuses_everything(tiny_model, isolated_home, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["demo", "--model", str(tiny_model), "--no-model-check"])
    assert r.exit_code == 0, r.output
    data = isolated_home["XDG_DATA_HOME"] / "musicsearch"
    assert r.stderr.startswith(f"Library: {data / 'demo-library'}\n")
    out = r.stdout.splitlines()
    assert (
        out[0]
        == f"Indexed {data / 'demo-library'}: {len(DEMO_TRACKS)} added, 0 updated, 0 moved, 0 removed, 0 unchanged, 0 failed"
    )
    titles = {t.title for t in DEMO_TRACKS}
    for query in DEMO_QUERIES:
        at = out.index(f'musicsearch query "{query}" -k 3 --index demo')
        hits = out[at + 3 : at + 6]  # after the table's header and rule: one line per hit
        assert [line.split("│")[0].strip() for line in hits] == ["1", "2", "3"], out
        assert all(any(f"– {title} " in line for title in titles) for line in hits)
    assert out[-1] == 'Ask your own: musicsearch query "..." --index demo; index your music: musicsearch index FOLDER'
    library = {p.name: p.stat().st_mtime_ns for p in (data / "demo-library").iterdir()}

    (tmp_path / "demo").mkdir()  # a folder of that name here neither takes the index nor the hints
    r = runner.invoke(app, ["demo", "--model", str(tiny_model), "--no-model-check", "-k", "2"])
    assert r.exit_code == 0, r.output
    assert f"0 added, 0 updated, 0 moved, 0 removed, {len(DEMO_TRACKS)} unchanged, 0 failed" in r.stdout.splitlines()[0]
    assert f'musicsearch query "{DEMO_QUERIES[0]}" -k 2 --index {data / "indexes" / "demo"}' in r.stdout.splitlines()
    assert list(tmp_path.joinpath("demo").iterdir()) == []
    (tmp_path / "demo").rmdir()
    assert {p.name: p.stat().st_mtime_ns for p in (data / "demo-library").iterdir()} == library
    listed = json.loads(runner.invoke(app, ["indexes", "--json"]).output)
    assert [(e["name"], e["tracks"], e["model"]) for e in listed] == [("demo", len(DEMO_TRACKS), str(tiny_model))]
    r = runner.invoke(app, ["query", "a drum loop", "--index", "demo", "--model", str(tiny_model), "--no-model-check"])
    assert r.exit_code == 0 and "Demo " in r.stdout


def test_offline_the_demo_ends_with_the_way_out(isolated_home, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")  # this machine has no Hub: the same answer, without waiting
    r = runner.invoke(app, ["demo"])
    assert r.exit_code == 1
    assert r.stderr.strip().splitlines()[-1] == (
        "Error: could not load model 'laion/larger_clap_general': it is not cached and the Hub cannot be "
        "reached (offline?); on a machine with a network run 'musicsearch model fetch laion/larger_clap_general "
        "--to ~/clap', copy that folder to ~/clap here and pass --model ~/clap (Python: Settings(model='~/clap'))"
    )
    assert r.stdout == ""
    assert not (isolated_home["XDG_DATA_HOME"] / "musicsearch" / "indexes" / "demo").exists()


def test_music_asks_for_the_platforms_music_folder(isolated_home, one_error_line):
    r = runner.invoke(app, ["demo", "--music"])
    assert one_error_line(r) == (
        f"Error: there is no music folder at {isolated_home['HOME'] / 'Music'}; leave out --music to try the "
        "generated library"
    )


def test_readmes_first_set_up_command_ends_with_the_demo():
    """The command the test above runs is the one README's set-up ends with; the test command
    still ends with the suite."""
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    blocks = readme.split("## Set-up: two commands", 1)[1].split("```")[1::2]
    assert blocks[0].strip().startswith("python3 -m venv .venv && ")
    assert blocks[0].strip().endswith(" && pip install -e . && musicsearch demo")
    assert blocks[1].strip().endswith(" && python -m pytest -q")
