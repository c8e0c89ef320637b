"""What the commands print: the hits table, an index run's progress and summary, the other
commands' reports. Plain text goes to stdout, progress and notes about the run to stderr."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, TextIO

import typer
from rich.console import Console
from rich.table import Table

from ..events import Event, IndexReport, Phase, Progress, RunStart
from ..hits import Hit
from ..keys import find_key
from ..playlist import write_m3u
from ..process import QuietThread

if TYPE_CHECKING:
    from tqdm import tqdm

PACKAGE = "musicsearch"  # the logger whose warnings end an open phase line first

# Held while a progress redraw writes; a fork waits for it and the child starts with it free,
# so a forked child (the text tower's) never inherits a half-written line or a held stream lock.
_DRAWING = threading.Lock()
if hasattr(os, "register_at_fork"):  # not on Windows, where nothing forks
    os.register_at_fork(before=_DRAWING.acquire, after_in_parent=_DRAWING.release, after_in_child=_DRAWING.release)


def mmss(seconds: float | None) -> str:
    """``75.4`` -> ``1:15``; ``None`` -> ``""``."""
    if seconds is None:
        return ""
    s = int(round(seconds))
    return f"{s // 60}:{s % 60:02d}"


def echo_json(data: Any, *, ensure_ascii: bool = True) -> None:
    """``data`` as indented JSON on stdout."""
    typer.echo(json.dumps(data, ensure_ascii=ensure_ascii, indent=2))


class IndexProgress:
    """Draws an index run's events on stderr: phases as lines, then a progress bar.

    On a terminal nothing stays silent for long: while a phase runs, its line is rewritten each
    ``tick`` seconds with the time it has taken so far ("Preparing ... 4 s"), and the bar is
    redrawn as often, so its clock moves between batches. Piped, phases print nothing (an error
    stays one line) and nothing is redrawn."""

    def __init__(self, stream: TextIO | None = None, tick: float = 1.0, clock: Callable[[], float] = time.monotonic):
        self.stream = stream if stream is not None else sys.stderr
        self.tty = self.stream.isatty()
        self.bar: tqdm | None = None
        self.tick = tick
        self.clock = clock
        self._phase: tuple[str, float] | None = None  # the open phase's line: message, start
        self._line_open = False  # the cursor is at the end of the phase's line
        self._breaker = _LineBreak(self)
        self._lock = _DRAWING
        self._stop = threading.Event()
        self._ticker: QuietThread | None = None

    def __call__(self, event: Event) -> None:
        if isinstance(event, Phase):  # on a terminal: errors alone stay one line when piped
            self.close()
            if self.tty:
                with self._lock:
                    self.stream.write(f"{event.message} ...")
                    self.stream.flush()
                    self._phase, self._line_open = (event.message, self.clock()), True
                logging.getLogger(PACKAGE).addHandler(self._breaker)
                self._start_ticker()
        elif isinstance(event, RunStart):
            self.close()
            print_start(event)
            from tqdm import tqdm  # only when a run embeds: not imported by a query

            self.bar = tqdm(total=event.files, unit="file", dynamic_ncols=True, smoothing=0.1, file=self.stream)
            if self.tty:
                self._start_ticker()
        elif isinstance(event, Progress) and self.bar is not None:
            self.bar.update(event.files_done - self.bar.n)
            self.bar.set_postfix_str(f"{event.windows_per_second:.1f} windows/s")

    def _start_ticker(self) -> None:
        if self._ticker is None:
            self._stop.clear()
            self._ticker = QuietThread(target=self._tick, name="musicsearch-progress", daemon=True)
            self._ticker.start()

    def _tick(self) -> None:
        while not self._stop.wait(self.tick):
            with self._lock:
                if self._phase is not None:
                    self._draw_phase(end="")
                elif self.bar is not None:
                    self.bar.refresh()

    def _draw_phase(self, end: str) -> None:
        """The open phase's line again, with its time so far from one second on (lock held)."""
        assert self._phase is not None
        message, start = self._phase
        seconds = self.clock() - start
        took = f" {seconds:.0f} s" if seconds >= 1 else ""
        self.stream.write(f"\r{message} ...{took}{end}")
        self.stream.flush()
        self._line_open = not end

    def break_line(self) -> None:
        """End the open phase's line, so that what is written next (a warning) starts a line
        of its own; the next redraw writes the phase's line again below it."""
        with self._lock:
            if self._phase is not None and self._line_open:
                self.stream.write("\n")
                self.stream.flush()
                self._line_open = False

    def close(self) -> None:
        """Ends the open phase's line or bar (and the redrawing)."""
        logging.getLogger(PACKAGE).removeHandler(self._breaker)
        ticker, self._ticker = self._ticker, None
        if ticker is not None:
            self._stop.set()
            ticker.join()
        with self._lock:
            if self._phase is not None:
                self._draw_phase(end="\n")
                self._phase = None
            if self.bar is not None:
                self.bar.close()
                self.bar = None


class _LineBreak(logging.Handler):
    """While a phase's line is open on a terminal: a warning of the package first ends that
    line. With no logging set up (Python's last-resort handler prints warnings then), it also
    prints the record as that handler would, since a handler here keeps it from doing so."""

    def __init__(self, progress: IndexProgress) -> None:
        super().__init__(logging.WARNING)
        self.progress = progress

    def emit(self, record: logging.LogRecord) -> None:
        self.progress.break_line()
        if not logging.getLogger().handlers and logging.lastResort is not None:
            logging.lastResort.handle(record)


def quiet_event(event: Event) -> None:
    """The listener of ``--quiet`` runs: draws nothing."""


def print_start(run: RunStart) -> None:
    """One stderr line: how many files and windows, on what, and about how long."""
    if run.max_windows is None:
        policy = "whole tracks"
    else:
        policy = f"at most {run.max_windows} windows per track, spread evenly"
        if run.device == "cpu":
            policy += " (the CPU default; --full for whole tracks)"
    eta = ""
    if run.eta_seconds is not None:
        minutes = run.eta_seconds / 60
        eta = f"{minutes / 60:.1f} h" if minutes >= 90 else f"{max(1, round(minutes))} min"
        eta = f"; about {eta} at {run.windows_per_second:.1f} windows/s"
    typer.echo(
        f"Embedding {run.files} files, ~{run.windows} windows on {run.device or 'the model'}: {policy}{eta}", err=True
    )


def print_index_report(report: IndexReport) -> None:
    """An index run's summary: counts, speed, then the first moves, failures, warnings and notes."""
    typer.echo(
        f"Indexed {report.root}: {len(report.added)} added, {len(report.updated)} updated, "
        f"{len(report.moved)} moved, {len(report.removed)} removed, {report.unchanged} unchanged, "
        f"{len(report.failed)} failed"
        + (f", {report.skipped_failed} failed before (not retried; --retry-failed)" if report.skipped_failed else "")
    )
    typer.echo(f"{report.windows} windows in {report.seconds:.1f} s ({report.windows_per_second:.2f} windows/s)")
    for old, new in report.moved[:10]:
        typer.echo(f"  moved  {old} -> {new}")
    for path, reason in report.failed[:20]:
        typer.echo(f"  failed {path}: {reason}")
    for path, warning in report.warnings[:20]:
        typer.echo(f"  warning {path}: {warning} (indexed as decoded)")
    for note in report.notes:
        typer.echo(f"  note: {note}")
    if len(report.failed) > 20:
        typer.echo(f"  ... and {len(report.failed) - 20} more failures (musicsearch info --failures)")


def report_line(report: IndexReport) -> str:
    """A watch run in one line: ``ROOT: 2 added, 1 moved`` (or ``no change``)."""
    parts = [
        f"{len(v)} {k}"
        for k, v in (
            ("added", report.added),
            ("updated", report.updated),
            ("moved", report.moved),
            ("removed", report.removed),
            ("failed", report.failed),
        )
        if v
    ]
    return f"{report.root}: {', '.join(parts) or 'no change'}"


def echo_refresh(result: dict[str, int | str]) -> None:
    """Each saved search's outcome: its track count, or why it failed."""
    for name, outcome in result.items():
        typer.echo(f"  playlist {name}: {outcome if isinstance(outcome, str) else f'{outcome} tracks'}")


def print_hits(
    hits: list[Hit], as_json: bool, m3u: Path | None, relative: bool = False, path_map: list[str] | None = None
) -> None:
    """The hits as JSON or a table (one line per hit when piped); with ``m3u``, also a playlist file."""
    if m3u is not None:
        write_m3u(hits, m3u, relative=relative, path_map=path_map or ())
    if as_json:
        echo_json([h.to_dict() for h in hits], ensure_ascii=False)
        return
    if not hits:
        typer.echo("No tracks match.")
        return
    console = Console(highlight=False)
    if not console.is_terminal:  # piped: one line per hit, paths never folded
        console = Console(highlight=False, width=100_000)
    console.print(_hits_table(hits))
    if m3u is not None:
        typer.echo(f"Wrote {len(hits)} tracks to {m3u}")


def key_label(name: str | None) -> str:
    """ "8A Am" for a stored key name; "" for none."""
    key = find_key(name)
    return f"{key.camelot} {key.short}" if key else ""


def _hits_table(hits: list[Hit]) -> Table:
    with_tags = any(h.tags for h in hits)
    with_tempo = any(h.track.bpm is not None or h.track.key is not None for h in hits)
    with_why = any(h.matched not in ("", "sound") for h in hits)
    table = Table(show_edge=False, pad_edge=False)
    Justify = Literal["left", "right"]
    columns: list[tuple[str, Justify]] = [
        ("#", "right"),
        ("score", "right"),
        ("artist – title", "left"),
        ("length", "right"),
        ("match", "left"),
    ]
    if with_tempo:
        columns += [("bpm", "right"), ("key", "left")]
    if with_tags:
        columns.append(("tags", "left"))
    if with_why:
        columns.append(("why", "left"))
    columns.append(("path", "left"))
    for col, just in columns:
        table.add_column(col, justify=just, overflow="fold")
    for h in hits:
        t = h.track
        name = f"{t.artist} – {t.title}" if t.artist else t.title
        row = [str(h.rank), f"{h.score:.3f}", name, mmss(t.duration), f"{mmss(h.segment.start)}–{mmss(h.segment.end)}"]
        row += [f"{t.bpm:.0f}" if t.bpm is not None else "", key_label(t.key)] * with_tempo
        row += [", ".join(label for label, _ in h.tags)] * with_tags + [h.matched] * with_why + [t.path]
        table.add_row(*row)
    return table
