"""What the commands print (musicsearch/cli/output.py)."""

import io
import logging
import threading

from musicsearch.cli.output import IndexProgress, mmss, report_line
from musicsearch.events import IndexReport, Phase, Progress, RunStart


def test_mmss():
    assert [mmss(None), mmss(0), mmss(59.6), mmss(75.4), mmss(3600)] == ["", "0:00", "1:00", "1:15", "60:00"]


def test_report_line_names_only_what_changed():
    report = IndexReport(root="/music")
    assert report_line(report) == "/music: no change"
    report.added.extend(["a", "b"])
    report.moved.append(("c", "d"))
    assert report_line(report) == "/music: 2 added, 1 moved"


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    """Seconds that move only when the test says so."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def wait_for(condition, what: str) -> None:
    for _ in range(500):
        if condition():
            return
        threading.Event().wait(0.01)
    raise AssertionError(f"never saw {what}")


def test_a_long_phase_on_a_terminal_shows_its_time_as_it_runs_and_when_it_ends():
    out, clock = Terminal(), Clock()
    progress = IndexProgress(out, tick=0.01, clock=clock)
    progress(Phase("Preparing the audio model"))
    assert out.getvalue().startswith("Preparing the audio model ...")
    clock.now += 3.2
    wait_for(lambda: "\rPreparing the audio model ... 3 s" in out.getvalue(), "the phase's time so far")
    clock.now += 4.0
    wait_for(lambda: "\rPreparing the audio model ... 7 s" in out.getvalue(), "the phase's line rewritten")
    progress(Phase("Saving the search index"))  # the next phase ends the line with its time
    assert "\rPreparing the audio model ... 7 s\nSaving the search index ..." in out.getvalue()
    progress.close()
    assert out.getvalue().endswith("\rSaving the search index ...\n")  # under a second: no time shown
    assert progress._ticker is None


def test_piped_phases_print_nothing_and_start_no_redrawing():
    out = io.StringIO()
    progress = IndexProgress(out, tick=0.01)
    progress(Phase("Loading the model"))
    assert out.getvalue() == "" and progress._ticker is None
    progress.close()
    assert out.getvalue() == ""


def test_the_bar_is_redrawn_between_batches_on_a_terminal(capsys):
    out = Terminal()
    progress = IndexProgress(out, tick=0.01)
    progress(RunStart(files=3, windows=9, max_windows=None, device="cpu", windows_per_second=None))
    drawn = out.getvalue().count("0/3")
    wait_for(lambda: out.getvalue().count("0/3") > drawn + 2, "the bar redrawn with no batch committed")
    progress(Progress(3, 3, 9, 1.0))
    progress.close()
    assert "3/3" in out.getvalue() and progress.bar is None and progress._ticker is None
    assert "Embedding 3 files" in capsys.readouterr().err


def test_a_warning_during_a_phase_starts_a_line_of_its_own(monkeypatch):
    """With no logging set up, the warning is printed as Python's last-resort handler prints it,
    below the phase's line, and the phase's line is drawn again under it."""
    out, clock = Terminal(), Clock()
    monkeypatch.setattr(logging.root, "handlers", [])
    monkeypatch.setattr(logging, "lastResort", logging.StreamHandler(out))
    progress = IndexProgress(out, tick=0.01, clock=clock)
    progress(Phase("Loading the model"))
    logging.getLogger("musicsearch.text_child").warning("the text tower is prepared after the run")
    redraws = "\rLoading the model ..."  # the ticker may redraw the line (no time yet) around the warning
    assert out.getvalue().replace(redraws, "") == "Loading the model ...\nthe text tower is prepared after the run\n"
    clock.now += 2.0
    wait_for(lambda: out.getvalue().endswith("\rLoading the model ... 2 s"), "the phase's line drawn again")
    progress.close()
    assert out.getvalue().endswith("\rLoading the model ... 2 s\n")
    logging.getLogger("musicsearch").warning("after the run")  # the phase is over: printed as before
    assert out.getvalue().endswith(" 2 s\nafter the run\n")
    assert progress._breaker not in logging.getLogger("musicsearch").handlers
