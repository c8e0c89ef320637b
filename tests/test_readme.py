"""README's examples, run as a user runs them, so that an example that stops working fails CI.

Every command line in README's code blocks runs, in README's order, against a generated
library in the home folder (``~/Music``, ``~/Downloads/clip.mp3``; the suite's own home, see
conftest.py) whose tracks carry the names README uses ("Teardrop", "Daft Punk", ...), with
the tiny model standing in for the Hub's: ``demo`` and the first ``index`` get ``--model``
and ``MUSICSEARCH_NO_MODEL_CHECK`` waives the check that random weights fail. Each must exit
0, unless it is listed below with the reason it cannot run here (printed). The Python snippet
runs as README shows it, as a plain script, after new music arrived: it must print its hits
and nothing on stderr. A command this test does not know fails it, to be run or listed."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from musicsearch.cli import app

README = Path(__file__).resolve().parents[1] / "README.md"

# musicsearch commands that cannot run here: a part of the line, and why.
NOT_HERE = [
    ("musicsearch serve", "a web server runs until stopped (tests/server/ and tests/cli/test_serve.py start it)"),
    ("musicsearch watch", "follows the folder until Ctrl-C (tests/test_watch.py)"),
    ("--mpd ", "needs an MPD server (tests/test_mpd.py talks to a stand-in)"),
    ("musicsearch ingest SHARD...", "placeholders for Parquet shards made elsewhere (tests/indexing/test_ingest.py)"),
    ("--cluster ", "starts a Ray cluster (tests/indexing/test_cluster.py)"),
    ("musicsearch model fetch", "downloads from the Hub (tests/cli/test_model.py uses a stand-in)"),
]
# Other commands in README's code blocks: how a line starts, and why it does not run here.
SETUP = "set-up: a new virtual environment and installs from the network (CI installs this way)"
SUITE = "the test command: CI runs it (.ci/run)"
OTHERS = [
    ("python3 -m venv ", SETUP),
    (". .venv/bin/activate", SETUP),
    ("pip install ", SETUP),
    ("ruff ", SUITE),
    ("mypy", SUITE),
    ("python -m pytest", SUITE),
    (
        "python scripts/make_random_clap.py models/random-clap",
        "builds the full-size random model (about a minute and 2 GB: tests/test_full_size.py);"
        " the tiny model stands in for models/random-clap",
    ),
]
# Tracks named by README's examples: path under ~/Music, tags, seconds, tone (Hz).
TRACKS = [
    ("Electronic/teardrop.flac", dict(title="Teardrop", artist="Mezzanine", genre="Electronic", date="1998"), 262, 600),
    ("Electronic/windowlicker.ogg", dict(title="Windowlicker", artist="AFX", genre="Electronic", date="1999"), 40, 900),
    ("Electronic/around.flac", dict(title="Around the World", artist="Daft Punk", genre="Electronic"), 30, 1200),
    ("Electronic/one-more.flac", dict(title="One More Time", artist="Daft Punk", genre="Electronic"), 25, 1500),
    ("Classical/lullaby.flac", dict(title="Lullaby", artist="Ryan Reilly", genre="Classical", date="2010"), 190, 300),
    ("Classical/nocturne.flac", dict(title="Nocturne", artist="Ryan Reilly", genre="Classical"), 30, 350),
    ("Soundtrack/siege.flac", dict(title="Siege of Laurelmor", artist="Wesnoth", genre="Soundtrack"), 45, 200),
    ("Soundtrack/transience.ogg", dict(title="Transience", artist="Wesnoth", genre="Soundtrack"), 35, 2400),
    ("Christmas/bells.flac", dict(title="Bells", artist="Choir", genre="Christmas", date="1995"), 20, 3000),
    ("Podcasts/episode.ogg", dict(title="Episode One", artist="Talk", genre="Podcast"), 30, 180),
    ("Ambient/rain.flac", dict(title="Rain", artist="Field", genre="Ambient"), 30, 0),
]
SR = 16_000


def code_blocks(text: str) -> list[tuple[str, str]]:
    """README's fenced code blocks: (language, text)."""
    return [(m.group(1).strip(), m.group(2)) for m in re.finditer(r"^```([^\n]*)\n(.*?)^```", text, re.M | re.S)]


def commands(block: str) -> list[str]:
    """The commands of a shell block: one a line, chains split at ``&&``, comments dropped."""
    out = []
    for line in block.splitlines():
        words = shlex.split(line, comments=True)
        while words:
            cut = words.index("&&") if "&&" in words else len(words)
            out.append(shlex.join(words[:cut]))
            words = words[cut + 1 :]
    return out


def sound(seconds: float, freq: float, seed: int) -> np.ndarray:
    """A tone with a little noise (pure noise at 0 Hz)."""
    t = np.arange(int(seconds * SR)) / SR
    noise = 0.05 * np.random.default_rng(seed).standard_normal(len(t))
    return (0.3 * np.sin(2 * np.pi * freq * t) + noise).astype(np.float32) if freq else (4 * noise).astype(np.float32)


def make_library(home: Path, cwd: Path, write_audio, tagged) -> None:
    """``~/Music`` with README's tracks, a clip in ``~/Downloads``, and in the working folder
    ``library/`` and ``my-labels.txt``."""
    for i, (rel, tags, seconds, freq) in enumerate(TRACKS):
        tagged(write_audio(home / "Music" / rel, sound(seconds, freq, i), SR), **tags)
    write_audio(home / "Music" / "Classical" / "lullaby-copy.wav", sound(190, 300, 4), SR)  # a duplicate
    write_audio(home / "Downloads" / "clip.mp3", sound(20, 700, 99), SR)
    write_audio(cwd / "library" / "tone.flac", sound(15, 440, 7), SR)
    (cwd / "my-labels.txt").write_text("piano\ncalm\nstrings\ndrums\n")


def not_here(command: str) -> str | None:
    """Why ``command`` cannot run here, or None."""
    if command.startswith("musicsearch "):
        return next((why for part, why in NOT_HERE if part in command), None)
    return next((why for start, why in OTHERS if command.startswith(start)), None)


def cli_args(command: str, tiny_model: Path, index: Path) -> list[str]:
    """The command's arguments as the shell passes them (``~`` expanded), the tiny model in
    place of README's random one, and as the ``--model`` of a command that builds an index
    (``demo``, and the ``index`` run that creates the default one)."""
    args = [os.path.expanduser(w) if w.startswith("~") else w for w in shlex.split(command)[1:]]
    args = [str(tiny_model) if a == "models/random-clap" else a for a in args]
    builds = args[0] == "demo" or (args[0] == "index" and not index.exists())
    if builds and "--model" not in args:
        args += ["--model", str(tiny_model)]
    return args


def test_readme_examples_run(tmp_path, tiny_model, isolated_home, monkeypatch, write_audio, tagged, capsys):
    home, index = isolated_home["HOME"], isolated_home["MUSICSEARCH_INDEX"]
    monkeypatch.setenv("MUSICSEARCH_NO_MODEL_CHECK", "1")  # random weights embed every prompt alike
    monkeypatch.chdir(tmp_path)
    make_library(home, tmp_path, write_audio, tagged)
    runner = CliRunner()
    ran, skipped, snippets = [], [], 0
    for language, block in code_blocks(README.read_text()):
        if language == "python":
            run_snippet(block, home, index, tmp_path / f"snippet{snippets}.py", write_audio)
            snippets += 1
            continue
        for command in commands(block):
            why = not_here(command)
            if why is not None:
                skipped.append(f"{command}\n    not run here: {why}")
                continue
            assert command.startswith("musicsearch "), f"README runs {command!r}: run it here or list it in OTHERS"
            result = runner.invoke(app, cli_args(command, tiny_model, index))
            assert result.exit_code == 0, f"{command}\n{result.output}\n{result.exception!r}"
            ran.append(command)
    with capsys.disabled():
        print("\nREADME commands not run here:\n" + "\n".join(skipped))
    assert snippets >= 1 and len(ran) >= 20
    assert "musicsearch similar Teardrop@1:20-1:40" in ran
    assert_moment_had_no_stored_window(index)


def run_snippet(source: str, home: Path, index: Path, script: Path, write_audio) -> None:
    """README's Python snippet as a plain script (no ``__main__`` guard), once new music
    arrived: enough windows (12 tracks x 6) that a run would decode in worker processes.
    It adds them to the default index and prints ten hits, and nothing on stderr."""
    before = tracks_in(index)
    for i in range(12):
        write_audio(home / "Music" / "New" / f"new{i:02d}.flac", sound(70, 250 + 150 * i, 50 + i), SR)
    script.write_text(source)
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, cwd=script.parent, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr and "could not start" not in done.stderr, done.stderr
    assert done.stderr == ""
    hits = done.stdout.splitlines()
    assert [h.split()[0] for h in hits] == [str(r) for r in range(1, 11)], done.stdout
    assert tracks_in(index) == before + 12


def tracks_in(index: Path) -> int:
    from musicsearch.store import Store

    store = Store(index)
    try:
        return store.counts()["tracks"]
    finally:
        store.close()


def assert_moment_had_no_stored_window(index: Path) -> None:
    """README's moment example met the case of the 4:22 track a user met on a CPU index: of
    its 6 stored windows, none overlaps 1:20-1:40, so the moment was embedded from the file
    (it used to fail with "the track is only 262 s long")."""
    from musicsearch.store import Store

    store = Store(index)
    try:
        track = store.find_tracks("Teardrop")[0]
        starts, ends, _ = store.window_vectors([track.id])[track.id]
        spans = list(zip(starts.tolist(), ends.tolist()))
        assert len(spans) == 6 and not any(a < 100 and b > 80 for a, b in spans), spans
    finally:
        store.close()


@pytest.mark.parametrize(
    "line, expected",
    [
        ('musicsearch index ~/Music   # walk, "tag"', ["musicsearch index '~/Music'"]),
        ("a && musicsearch query 'x y' && b", ["a", "musicsearch query 'x y'", "b"]),
    ],
)
def test_commands_split_chains_and_drop_comments(line, expected):
    assert commands(line) == expected
