"""What a run tells its listener and returns (musicsearch/events.py)."""

from __future__ import annotations

from musicsearch.events import IndexReport, Phase, Progress, RunStart, quiet


def test_rates_and_eta_are_derived_and_safe_at_zero():
    assert Progress(1, 4, 30, 2.0).windows_per_second == 15.0
    assert Progress(0, 4, 0, 0.0).windows_per_second == 0.0
    assert RunStart(2, 40, 18, "cpu", 8.0).eta_seconds == 5.0
    assert RunStart(2, 40, None, "cuda", None).eta_seconds is None  # a small run measures no speed
    report = IndexReport("/music", windows=12, seconds=3.0)
    assert report.windows_per_second == 4.0 and IndexReport("/music").windows_per_second == 0.0
    assert (report.added, report.failed, report.notes, report.warnings) == ([], [], [], [])
    assert IndexReport("/a").added is not IndexReport("/b").added  # no list shared between reports


def test_the_quiet_listener_takes_every_event():
    for event in (Phase("Loading"), Progress(1, 1, 1, 1.0), RunStart(1, 1, None, None, None)):
        assert quiet(event) is None
