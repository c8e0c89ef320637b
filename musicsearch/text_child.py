"""The text tower prepared beside an index run: ``TextJob`` forks a child process (Linux) that
exports, quantizes and checks the text tower on the second core while the run's process
exports the audio tower and embeds; the child's result and WARNINGs come back through a pipe.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any

from .errors import ModelLoadError
from .process import freeze_collector, own_child_process

log = logging.getLogger(__name__)

# A process that has loaded these runs threads of theirs that make forking it unsafe.
FORK_UNSAFE_MODULES = ("grpc", "ray")
# How long an index run waits for the child process that prepares the text tower (about 4 s
# for the full-size model on 2 cores, beside the run) before it stops it and queries stay on torch.
TEXT_CHILD_TIMEOUT_S = 600.0


class TextJob:
    """The text tower's preparation (``ClapEmbedder.prepare_text_onnx``) running in a forked
    child process; ``result`` waits for it. The child's WARNINGs are sent back and logged here, so they read as if the
    export had run in this process."""

    def __init__(self, process: Any, conn: Any):
        self._process, self._conn = process, conn

    @staticmethod
    def possible() -> bool:
        """Whether this process can be forked safely: Linux, and no other Python thread and no
        gRPC (Ray) threads that could hold a lock the child would wait on forever."""
        import multiprocessing
        import sys

        if not (sys.platform.startswith("linux") and "fork" in multiprocessing.get_all_start_methods()):
            return False
        from .process import other_threads

        busy = [name for name in FORK_UNSAFE_MODULES if name in sys.modules]
        others = other_threads()
        if others or busy:
            log.warning(
                "the text tower is prepared after the run, not beside it (forking this process is unsafe: %s)",
                f"{', '.join(busy)} loaded" if busy else f"{others + 1} threads",
            )
            return False
        return True

    @classmethod
    def start(cls, prepare: Callable[[], tuple[float, str]]) -> TextJob | None:
        """Fork a child that runs ``prepare`` (None when it could not be started: WARNING)."""
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        receive, send = ctx.Pipe(duplex=False)
        args = (prepare, send, os.getpid())
        process = ctx.Process(target=_text_child, args=args, name="musicsearch-text-export", daemon=True)
        try:
            process.start()
        except OSError as exc:
            log.warning("could not start a process to prepare the text tower (%s); it is prepared after the run", exc)
            return None
        send.close()
        return cls(process, receive)

    def result(self) -> tuple[float, str]:
        """Wait for the child: its (cosine, kind), its WARNINGs logged here.

        Raises:
            ModelLoadError: the child failed, died or hung (and was stopped).
        """
        message, hung = None, False
        try:
            if self._conn.poll(TEXT_CHILD_TIMEOUT_S):
                message = self._conn.recv()
            else:  # a hung child (say, a lock held by another thread at the fork) is stopped
                hung = True
                self._process.kill()
        except (EOFError, OSError):
            pass
        finally:
            self._conn.close()
            self._process.join()
        if message is None:
            what = f"took over {TEXT_CHILD_TIMEOUT_S:.0f} s and was stopped" if hung else "died"
            raise ModelLoadError(
                f"the process preparing the text tower {what} (exit code {self._process.exitcode}); queries stay on torch"
            )
        status, payload, records = message
        for name, level, text in records:
            logging.getLogger(name).log(level, "%s", text)
        if status == "error":
            raise ModelLoadError(payload)
        cosine, kind = payload
        return float(cosine), str(kind)


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.records: list[tuple[str, int, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append((record.name, record.levelno, record.getMessage()))


def _text_child(prepare: Callable[[], tuple[float, str]], conn: Any, parent: int) -> None:
    """In the forked child: ``prepare`` the text tower and send (status, result, WARNINGs)."""
    try:  # killed with its parent: no export goes on behind a killed run
        import ctypes
        import signal

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before that
        os._exit(1)
    own_child_process()
    # What the child inherited is never collected here: no collection walks the parent's
    # objects, so none of their pages is copied for it (Python's advice for fork).
    freeze_collector()
    collect = _Collect()
    package = logging.getLogger("musicsearch")
    package.addHandler(collect)
    package.propagate = False  # the parent logs them
    try:
        import torch

        # The parent's audio export and embedding come first: the child takes one thread at a
        # lower priority, i.e. mostly the core the parent leaves idle (its imports, the exporter's
        # own passes, loading the graph).
        torch.set_num_threads(1)
        os.nice(10)
        message: tuple[str, Any, list[tuple[str, int, str]]] = ("ok", prepare(), collect.records)
    except ModelLoadError as exc:
        message = ("error", str(exc), collect.records)
    except BaseException as exc:  # reported to the parent, which goes on
        message = ("error", f"could not prepare the text tower ({type(exc).__name__}: {exc})", collect.records)
    conn.send(message)
    conn.close()
