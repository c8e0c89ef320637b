"""The command as a whole (musicsearch/cli/__init__.py): user errors caught once, every command's help
(plain, cli/help.py), main."""

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


def _command_paths(command, path=()):
    """Every command and sub-command below ``command`` (a click group), as argument lists."""
    for name, sub in command.commands.items():
        yield [*path, name]
        if hasattr(sub, "commands"):
            yield from _command_paths(sub, (*path, name))


def test_help_reads_plainly_everywhere():
    """No type labels (<bool>, <str>, <list[str]>), no {folder}, no Rich boxes, no markup eaten:
    plain metavars and the help text as written, on every help screen."""
    root = typer.main.get_command(app)
    paths = list(_command_paths(root))
    assert ["playlist", "save"] in paths and len(paths) >= 17
    for path in [[], *paths]:
        r = runner.invoke(app, [*path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        out = r.output
        assert not re.search(r"<\w+(\[[^>]*\])?>|<[a-z ]+range>", out), (path, out)  # <bool>, <list[str]>, <int range>
        assert not re.search(r"\{\w+\}", out), (path, out)  # {folder}
        assert "╭" not in out and "[OPTIONS]" in out, (path, out)
    index_help = runner.invoke(app, ["index", "--help"]).output
    assert "Usage: musicsearch index [OPTIONS] FOLDER\n" in index_help.replace("root", "musicsearch")
    flat = " ".join(index_help.split())
    assert "pip install 'musicsearch[ray]'" in flat
    for shown in ("--workers N", "--precision PRECISION", "--shards FOLDER", "--index FOLDER|NAME", "-q, --quiet"):
        assert shown in flat, shown
    query_help = " ".join(runner.invoke(app, ["query", "--help"]).output.split())
    for shown in ("TEXT...", "--m3u FILE", "--path-map FROM=TO", "--year YEARS", "--by track|window", "--tag LABEL"):
        assert shown in query_help, shown
    watch_help = " ".join(runner.invoke(app, ["watch", "--help"]).output.split())
    assert "--poll SECONDS" in watch_help and "--settle SECONDS" in watch_help


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
