"""Tests of musicsearch/cli/options.py: what the shared options parse to (through a command of
the test's own that takes them and prints what it got), their bounds, and ``settings``."""

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from musicsearch.cli import options
from musicsearch.config import DEFAULT_INDEX_DIR, Settings
from musicsearch.errors import MusicSearchError

runner = CliRunner()
probe = typer.Typer()


@probe.command()
def show(
    index: options.IndexOpt = DEFAULT_INDEX_DIR,
    model: options.ModelOpt = None,
    no_model_check: options.NoCheckOpt = False,
    k: options.KOpt = 10,
    by: options.ByOpt = "track",
    negative: options.NotOpt = None,
    min_score: options.MinScoreOpt = None,
    year: options.YearOpt = None,
    tag: options.TagOpt = None,
    m3u: options.M3uOpt = None,
    path_map: options.PathMapOpt = None,
    max_per_artist: options.MaxPerArtistOpt = None,
    exclude_artist: options.ExcludeArtistOpt = None,
    variation: options.VariationOpt = 0.0,
    seed: options.SeedOpt = None,
    as_json: options.JsonOpt = False,
) -> None:
    """Prints the values the options parsed to."""
    values = dict(locals())
    typer.echo(json.dumps({key: str(v) if isinstance(v, Path) else v for key, v in values.items()}))


def parsed(*args: str, env: dict[str, str] | None = None) -> dict:
    r = runner.invoke(probe, list(args), env=env)
    assert r.exit_code == 0, r.output
    return json.loads(r.output)


def test_the_defaults(monkeypatch):
    monkeypatch.delenv("MUSICSEARCH_INDEX")
    assert parsed() == {
        "index": str(DEFAULT_INDEX_DIR),
        "model": None,
        "no_model_check": False,
        "k": 10,
        "by": "track",
        "negative": None,
        "min_score": None,
        "year": None,
        "tag": None,
        "m3u": None,
        "path_map": None,
        "max_per_artist": None,
        "exclude_artist": None,
        "variation": 0.0,
        "seed": None,
        "as_json": False,
    }


def test_values_and_repeatable_options(tmp_path):
    got = parsed(
        *(
            "--index",
            str(tmp_path / "idx"),
            "--model",
            "my/clap",
            "--no-model-check",
            "--top",
            "25",
            "--by",
            "window",
            "--min-score",
            "0.25",
        ),
        *("--not", "drums", "--not", "noise::0.2", "--year", "1990-", "--tag", "piano", "--tag", "calm"),
        *("--m3u", "out.m3u8", "--path-map", "/a=/b", "--max-per-artist", "2", "--exclude-artist", "Ann"),
        *("--variation", "0.5", "--seed", "7", "--json"),
    )
    assert got == {
        "index": str(tmp_path / "idx"),
        "model": "my/clap",
        "no_model_check": True,
        "k": 25,
        "by": "window",
        "negative": ["drums", "noise::0.2"],
        "min_score": 0.25,
        "year": "1990-",
        "tag": ["piano", "calm"],
        "m3u": "out.m3u8",
        "path_map": ["/a=/b"],
        "max_per_artist": 2,
        "exclude_artist": ["Ann"],
        "variation": 0.5,
        "seed": 7,
        "as_json": True,
    }
    assert parsed("-k", "3")["k"] == 3


def test_index_is_a_name_or_a_folder(tmp_path, isolated_home, monkeypatch):
    named = isolated_home["XDG_DATA_HOME"] / "musicsearch" / "indexes" / "jazz"
    assert parsed("--index", "jazz")["index"] == str(named)
    assert parsed("--index", str(tmp_path / "idx"))["index"] == str(tmp_path / "idx")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "rock").mkdir()  # an existing folder of that name stays a folder
    assert parsed("--index", "rock")["index"] == "rock"
    assert parsed("--index", "./jazz")["index"] == "jazz"
    assert parsed(env={"MUSICSEARCH_INDEX": "blues"})["index"] == str(named.with_name("blues"))
    assert parsed()["index"] == str(isolated_home["MUSICSEARCH_INDEX"])  # the suite's own, from the environment
    assert parsed(env={"MUSICSEARCH_NO_MODEL_CHECK": "1"})["no_model_check"] is True


@pytest.mark.parametrize(
    ("args", "bad"),
    [
        (["-k", "0"], "-k"),
        (["--top", "10001"], "--top"),
        (["--max-per-artist", "0"], "--max-per-artist"),
        (["--variation", "1.5"], "--variation"),
        (["--variation", "-0.1"], "--variation"),
        (["--min-score", "high"], "--min-score"),
    ],
)
def test_values_out_of_bounds_are_usage_errors(args, bad):
    r = runner.invoke(probe, args)
    assert r.exit_code == 2 and bad in r.output and "Traceback" not in r.output
    assert "{" not in r.stdout  # the command never ran


def test_settings_keeps_the_defaults_for_what_was_not_given(tmp_path):
    got = options.settings(tmp_path / "idx", model=None, device="cpu", batch_size=None, model_check=False)
    assert got == Settings(index_dir=tmp_path / "idx", device="cpu", model_check=False)
    assert (got.model, got.batch_size, got.full) == (None, None, False)
    unset = options.settings(tmp_path, device=None, precision=None, workers=None, onnx_audio=None)
    assert unset == Settings(index_dir=tmp_path)  # None is "not given", never the value
    assert (unset.device, unset.precision, unset.onnx_audio, unset.workers) == (
        "auto",
        "auto",
        True,
        Settings().workers,
    )


@pytest.mark.parametrize(
    ("kw", "message"),
    [
        ({"batch_size": 0}, "batch_size must be at least 1"),
        ({"workers": 0}, "workers must be at least 1"),
        ({"precision": "fp8"}, "precision must be one of auto, fp32, bf16, fp16"),
    ],
)
def test_settings_out_of_range_is_the_users_error(tmp_path, kw, message):
    with pytest.raises(MusicSearchError) as err:
        options.settings(tmp_path, **kw)
    assert str(err.value) == message and err.value.__cause__ is None and err.value.__suppress_context__
