"""Tests of musicsearch/store/records.py: the typed index meta."""

import pytest

from musicsearch.config import PIPELINE_VERSION
from musicsearch.errors import ModelMismatch, MusicSearchError
from musicsearch.store import IndexMeta

META = IndexMeta(
    model="org/clap",
    revision="abc123",
    dim=512,
    window_seconds=10.0,
    pipeline_version=PIPELINE_VERSION,
    model_check="passed",
    created_at="2025-01-02T03:04:05+00:00",
)


def test_new_meta_records_this_pipeline():
    meta = IndexMeta.new("org/clap", "", 512, 10, checked=False)
    assert (meta.revision, meta.dim, meta.window_seconds, meta.pipeline_version, meta.model_check) == (
        None,
        512,
        10.0,
        PIPELINE_VERSION,
        "skipped",
    )
    assert not meta.passed_check("org/clap") and META.passed_check("org/clap") and not META.passed_check("other")
    assert meta.check_settled("org/clap") and META.check_settled("org/clap")  # waived or passed: not run again
    assert not meta.check_settled("other") and not META.check_settled("other")
    assert not IndexMeta(**{**META.__dict__, "model_check": ""}).check_settled("org/clap")  # never recorded


def test_meta_checks_itself_against_a_model():
    META.check("org/clap", "abc123", 512, "/idx")  # the same model: no error
    cases = [
        (("other/clap", None, 512), "index /idx was built with model org/clap@abc123, not other/clap; "),
        (("org/clap", "def", 512), "index /idx was built with model org/clap@abc123, not org/clap@def; "),
        (("org/clap", "abc123", 768), "index /idx holds 512-d vectors; the model gives 768-d"),
    ]
    for args, message in cases:
        with pytest.raises(ModelMismatch) as err:
            META.check(*args, "/idx")
        assert str(err.value).startswith(message)
    with pytest.raises(ModelMismatch) as err:
        IndexMeta(**{**META.__dict__, "revision": None}).check("org/clap", "v2", 512, "/idx")
    assert str(err.value) == (
        "index /idx was built with model org/clap, not org/clap@v2; drop --model, or use another --index folder"
    )
    with pytest.raises(ModelMismatch) as err:
        IndexMeta(**{**META.__dict__, "pipeline_version": "0"}).check("org/clap", "abc123", 512, "/idx")
    assert str(err.value) == (
        f"index /idx was built by pipeline version 0 (this is {PIPELINE_VERSION}); rebuild it in a new --index folder"
    )


def test_damaged_meta_is_one_error_line():
    with pytest.raises(MusicSearchError, match=r"^index /idx has a damaged meta table: dim = 'wide'$"):
        IndexMeta.from_values({"model": "m", "dim": "wide"}, "/idx")
