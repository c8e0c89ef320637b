"""Process-wide tweaks: changes to what the whole Python process shares (the garbage collector,
the table of imported modules, file descriptor 2), each worth a visible cost on the command
line. Library code never makes them by itself: a caller that owns the process switches them on,
and only while it runs: the ``musicsearch`` command (``cli.main``, which ``musicsearch serve``
runs in) and ``server.serve``; the processes musicsearch starts for its own work (decode
workers, the forked text child) switch them on for themselves (``own_child_process``).
A program that imports musicsearch gets none of them unless it asks (``with switched_on():``).

What each does and why (figures from ``scripts/bench_first_run.py --phases``):

- ``collection_deferred``: the cyclic collector is off while a model is imported, loaded or
  exported. That work allocates about a million long-lived objects and little cyclic garbage,
  so each automatic full collection walks them all for nothing: seven of them took 0.9 s of a
  fresh machine's first 9-s index run.
- ``freeze_collector``: as the command ends, what exists is frozen, so the collections of the
  interpreter's exit skip it (1.1-1.3 s of that first run); exit handlers and reference
  counting still run. In the forked text child it keeps collections from touching the
  parent's objects, so none of their pages is copied (Python's advice for fork).
- ``pandas_hidden``: where pandas is installed (it comes with the Ray extra), sqlite-utils
  imports it only to store ``pandas.Timestamp`` values, which musicsearch never writes; that
  import took 0.34 s of every index run. ``None`` in ``sys.modules`` makes it fail while
  sqlite-utils loads; pandas imports normally afterwards.
- ``quiet_stderr``: libsndfile's MP3 decoder (mpg123) prints "Note: Illegal Audio-MPEG-Header
  ..." to file descriptor 2 for anything it cannot sync to, and no setting turns that off; the
  command's progress bar and one-line errors would drown in it.

Not here, as they change no process state: the Hub reachability check before a download
(``loading._hub_reachable``, one TCP connection that fails fast offline) and ``malloc_trim``
after a tower is freed (``onnx_towers``).
"""

from __future__ import annotations

import gc
import logging
import os
import re
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

log = logging.getLogger(__name__)

_on = False


def is_on() -> bool:
    """Whether the process's owner switched the tweaks on."""
    return _on


@contextmanager
def switched_on() -> Iterator[None]:
    """The tweaks on while the block runs (an entry point wraps its whole run in it); the
    previous state comes back after, so it nests and a test leaves nothing behind."""
    global _on
    was = _on
    _on = True
    try:
        yield
    finally:
        _on = was


def freeze_collector() -> None:
    """Freeze every object that exists now: collections skip them from here on. For an owner
    whose process ends next (``cli.main``), not for code whose caller goes on."""
    gc.freeze()


def own_child_process() -> None:
    """In a process musicsearch started for its own work, which ends with that work (a decode
    worker, a Ray decode task's worker, the forked text child): the tweaks on for the rest of
    its life. They change that process only, never the caller's."""
    global _on
    _on = True


@contextmanager
def collection_deferred() -> Iterator[None]:
    """With the tweaks on, defer the cyclic garbage collector while a model is imported,
    loaded or exported; otherwise change nothing. Explicit ``gc.collect()`` still works
    inside; reference counting frees as usual. Restores the collector's previous state (it
    stays off when it was off), so windows nest."""
    was_enabled = gc.isenabled()
    if _on:
        gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


class QuietThread(threading.Thread):
    """A thread that never imports and takes no lock a forked child could need, except under a
    lock its owner holds across a fork (``os.register_at_fork``): the command's progress redraws
    (cli/output.py). ``other_threads`` leaves it out, so it does not stop the text child's fork or
    the hiding of pandas."""


def other_threads() -> int:
    """How many Python threads besides this one could import a module or hold a lock across a
    fork (every thread but this one and the ``QuietThread`` ones)."""
    me = threading.current_thread()
    return sum(1 for t in threading.enumerate() if t is not me and not isinstance(t, QuietThread))


@contextmanager
def pandas_hidden() -> Iterator[None]:
    """With the tweaks on, ``import pandas`` fails inside the block, unless pandas is imported
    already or another Python thread runs (which could import pandas meanwhile)."""
    hidden = _on and "pandas" not in sys.modules and other_threads() == 0
    if hidden:
        sys.modules["pandas"] = None  # type: ignore[assignment]
    try:
        yield
    finally:
        if hidden and "pandas" in sys.modules and sys.modules["pandas"] is None:
            del sys.modules["pandas"]


class _QuietStderr:
    """Send file descriptor 2 to a temporary file while libsndfile probes a file. The
    descriptor belongs to the whole process, so concurrent decode threads share one redirect
    (counted); the decoder's lines go to the debug log, and anything else written meanwhile
    is written back to the real stderr."""

    NOISE = re.compile(r"^(Note|Warning|Error): |^\[[^\]]*(mpg123|mpeg)[^\]]*\]", re.IGNORECASE)

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._depth = 0
        self._saved = -1  # the real stderr while redirected, else -1
        self._sink: Any = None  # one temporary file, reused

    @contextmanager
    def __call__(self) -> Iterator[None]:
        with self._lock:
            if self._depth == 0:
                self._redirect()
            self._depth += 1
        try:
            yield
        finally:
            with self._lock:
                self._depth -= 1
                if self._depth == 0 and self._saved >= 0:
                    self._restore()

    def _redirect(self) -> None:
        try:
            sys.stderr.flush()
            if self._sink is None:
                self._sink = tempfile.TemporaryFile()  # noqa: SIM115 (kept for the process)
            saved = os.dup(2)
            os.dup2(self._sink.fileno(), 2)
            self._saved = saved
        except (OSError, ValueError, AttributeError):  # no stderr to redirect: leave it be
            self._saved = -1

    def _restore(self) -> None:
        os.dup2(self._saved, 2)
        os.close(self._saved)
        self._saved = -1
        sink = self._sink
        if sink.tell():
            sink.seek(0)
            text = sink.read().decode("utf-8", "replace")
            sink.seek(0)
            sink.truncate()
            self._replay(text)

    def _replay(self, text: str) -> None:
        keep = []
        for line in text.splitlines(keepends=True):
            if self.NOISE.match(line):
                log.debug("decoder: %s", line.rstrip())
            else:
                keep.append(line)
        if keep:
            os.write(2, "".join(keep).encode("utf-8", "replace"))


_muffle = _QuietStderr()  # one per process, as file descriptor 2 is


@contextmanager
def quiet_stderr() -> Iterator[None]:
    """With the tweaks on, keep the decoder's lines off file descriptor 2 while the block runs
    (the rest written meanwhile comes back after it); otherwise change nothing."""
    if not _on:
        yield
        return
    with _muffle():
        yield
