"""The command as a whole (musicsearch/cli/__init__.py): user errors caught once, every command's help, main."""

import re

import pytest
import typer.main
from typer.testing import CliRunner

from musicsearch.cli import app

runner = CliRunner()


def test_user_errors_are_one_line(indexed, tmp_path, tiny_model, one_error_line):
    idx, _ = indexed
    assert "no index at" in one_error_line(runner.invoke(app, ["query", "x", "--index", str(tmp_path / "nothing")]))
    assert "empty query" in one_error_line(runner.invoke(app, ["query", "  ", "--index", str(idx)]))
    assert "no such file or folder" in one_error_line(
        runner.invoke(app, ["index", str(tmp_path / "nope"), "--index", str(idx)])
    )
    other = tmp_path / "other-model"
    import shutil

    shutil.copytree(tiny_model, other)
    assert "was built with model" in one_error_line(
        runner.invoke(app, ["query", "x", "--index", str(idx), "--model", str(other)])
    )
    assert "no index at" in one_error_line(runner.invoke(app, ["info", "--index", str(tmp_path / "nothing")]))


def test_every_command_has_help():
    commands = typer.main.get_command(app).commands  # the click group typer builds, sub-groups included
    assert len(commands) == len(app.registered_commands) + len(app.registered_groups)
    assert {"index", "query", "similar", "duplicates", "classify", "tag", "info", "serve"} <= set(commands)
    for name in commands:
        r = runner.invoke(app, [name, "--help"], terminal_width=200)
        assert r.exit_code == 0, (name, r.output)
        assert re.search(rf"Usage: \S+ {name} \[OPTIONS\]", r.output), (name, r.output)
    r = runner.invoke(app, ["no-such-command", "--help"])  # what a broken one looks like
    assert r.exit_code == 2 and "No such command" in r.output


def test_the_command_freezes_the_collector_as_it_ends(monkeypatch, tmp_path):
    """The process ends after ``main``: its objects are frozen so that the exit's collections
    skip them (a fresh machine's first run: 1.1-1.3 s less), whatever the command's outcome."""
    import gc
    import sys

    from musicsearch.cli import main

    gc.unfreeze()
    try:
        monkeypatch.setattr(sys, "argv", ["musicsearch", "info", "--index", str(tmp_path / "none")])
        with pytest.raises(SystemExit) as exit_:
            main()
        assert exit_.value.code == 1 and gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_a_file_the_user_named_that_cannot_be_written_is_one_line(indexed, tmp_path, one_error_line):
    idx, _ = indexed
    folder = tmp_path / "a-folder.m3u8"
    folder.mkdir()  # the playlist path names a folder: the write fails with an OSError
    line = one_error_line(runner.invoke(app, ["query", "x", "--index", str(idx), "--m3u", str(folder)]))
    assert str(folder) in line
