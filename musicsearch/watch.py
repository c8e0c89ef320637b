"""Watch mode: follow a library folder and keep its index in step.

``watchfiles`` reports changes (inotify and its kin, or polling for network shares where
those see nothing); the changes of a burst are gathered (debounce), then the watcher waits
until every changed file keeps its size and mtime over a short interval (a copy in progress
is not indexed half-written) and runs one incremental index run over the folder holding all
of them, so a move is seen with its old and new paths in the same run and is followed by
content hash without embedding anything. Saved searches are refreshed after each run that
changed something."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import MusicSearchError
from .library import is_audio

if TYPE_CHECKING:
    from .api import MusicIndex
    from .events import IndexReport

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WatchSettings:
    """How the watcher waits.

    Attributes:
        debounce_ms: changes closer together than this are one burst (watchfiles' debounce).
        settle_seconds: a changed file must keep its size and mtime this long before it is indexed.
        max_settle_seconds: index anyway once a file has been changing this long (a file that
            never stops growing).
        poll_seconds: poll the folder every this many seconds instead of file-system events
            (network shares: NFS, SMB, sshfs, where inotify sees nothing); None uses events.
        retry_seconds: after a failed run (the index busy with another run, a full disk), try
            again this much later.
    """

    debounce_ms: int = 1600
    settle_seconds: float = 2.0
    max_settle_seconds: float = 600.0
    poll_seconds: float | None = None
    retry_seconds: float = 30.0

    def __post_init__(self) -> None:
        if self.poll_seconds is not None and not self.poll_seconds > 0:
            raise MusicSearchError("--poll must be a positive number of seconds")
        if self.settle_seconds < 0 or self.debounce_ms < 0:
            raise MusicSearchError("the settle interval and the debounce cannot be negative")


def _snapshot(paths: Iterable[str]) -> dict[str, tuple[int, int] | None]:
    out: dict[str, tuple[int, int] | None] = {}
    for p in paths:
        try:
            st = os.stat(p)
            out[p] = (st.st_size, st.st_mtime_ns)
        except OSError:
            out[p] = None
    return out


def run_target(root: Path, paths: Iterable[str]) -> Path:
    """The folder (or file) one index run must cover so that it sees every changed path: their
    common ancestor inside ``root``, raised to the nearest one that still exists."""
    inside = [p for p in paths if p == str(root) or p.startswith(str(root).rstrip(os.sep) + os.sep)]
    if not inside:
        return root
    target = Path(os.path.commonpath(inside))
    while target != root and not target.exists():
        target = target.parent
    return target


class LibraryWatcher:
    """Keeps the index of ``idx`` in step with ``folder`` until ``stop_event`` is set (or
    Ctrl-C in the main thread). ``on_report`` hears each index run's report; ``on_refresh``
    the result of each refresh of the saved searches."""

    def __init__(
        self,
        idx: MusicIndex,
        folder: Path | str,
        settings: WatchSettings | None = None,
        *,
        stop_event: threading.Event | None = None,
        on_report: Callable[[IndexReport], None] | None = None,
        on_refresh: Callable[[dict[str, int | str]], None] | None = None,
        refresh_playlists: bool = True,
    ):
        self.idx = idx
        self.root = Path(folder).expanduser().absolute()
        if not self.root.is_dir():
            raise MusicSearchError(f"cannot watch {self.root}: not a folder")
        self.settings = settings or WatchSettings()
        self.stop_event = stop_event or threading.Event()
        self.on_report = on_report
        self.on_refresh = on_refresh
        self.refresh_playlists = refresh_playlists
        self.runs = 0

    def _keep(self, change: object, path: str) -> bool:
        """Audio files, and folders (a moved or deleted folder is one event); hidden names
        (temp files of copies and of our own playlist writes) and other files are left out."""
        name = os.path.basename(path)
        if name.startswith("."):
            return False
        if is_audio(Path(name), self.idx.settings.extensions):
            return True
        return os.path.isdir(path) or not os.path.exists(path)  # a folder, or gone (maybe a folder)

    def index_now(self, target: Path | None = None) -> IndexReport | None:
        """One index run over ``target`` (default: the whole folder), then the saved searches;
        a failed run is logged at WARNING and returns None."""
        target = target or self.root
        try:
            report = self.idx.index(target)
        except MusicSearchError as exc:
            log.warning("index run over %s failed: %s; trying again later", target, exc)
            return None
        self.runs += 1
        changed = report.added or report.updated or report.moved or report.removed
        log.info(
            "%s: %d added, %d updated, %d moved, %d removed, %d failed",
            target,
            len(report.added),
            len(report.updated),
            len(report.moved),
            len(report.removed),
            len(report.failed),
        )
        if self.on_report is not None:
            self.on_report(report)
        if changed and self.refresh_playlists:
            from .saved import refresh

            try:
                result = refresh(self.idx)
            except MusicSearchError as exc:
                log.warning("saved searches not refreshed: %s", exc)
            else:
                if result and self.on_refresh is not None:
                    self.on_refresh(result)
        return report

    def _settled(self, pending: set[str]) -> bool:
        """True when no pending file changed size or mtime over the settle interval (or the
        stop event came: the caller then sees it and ends)."""
        before = _snapshot(pending)
        if self.stop_event.wait(self.settings.settle_seconds):
            return True
        return _snapshot(pending) == before

    def run(self, *, initial: bool = True) -> None:
        """Index the folder once (``initial``: what changed while nobody watched), then follow
        it. Returns when the stop event is set; Ctrl-C raises KeyboardInterrupt."""
        try:
            import watchfiles
        except ImportError as exc:
            raise MusicSearchError("watch mode needs the watchfiles package: pip install watchfiles") from exc
        s = self.settings
        initial_due = initial  # run once the watch is set up: nothing changed meanwhile is missed
        pending: set[str] = set()
        first_seen = 0.0
        not_before = 0.0
        wake_ms = max(100, int(s.settle_seconds * 1000))
        for changes in watchfiles.watch(
            self.root,
            watch_filter=self._keep,
            debounce=s.debounce_ms,
            step=50,
            stop_event=self.stop_event,
            rust_timeout=wake_ms,
            yield_on_timeout=True,
            force_polling=s.poll_seconds is not None,
            poll_delay_ms=int((s.poll_seconds or 0.3) * 1000),
            ignore_permission_denied=True,
        ):
            if self.stop_event.is_set():
                break
            if initial_due:
                if time.monotonic() < not_before:
                    continue
                if self.index_now() is None:
                    not_before = time.monotonic() + s.retry_seconds
                    continue
                initial_due = False
                pending = set()  # what changed until the run began is in it; later changes come next
                continue
            if changes and not pending:
                first_seen = time.monotonic()
            pending |= {path for _, path in changes}
            if not pending or time.monotonic() < not_before:
                continue
            waited = time.monotonic() - first_seen
            if not self._settled(pending) and waited < s.max_settle_seconds:
                continue  # still being written: look again at the next wake-up
            if self.stop_event.is_set():
                break
            target = run_target(self.root, pending)
            report = self.index_now(target)
            if report is None:
                not_before = time.monotonic() + s.retry_seconds
            else:
                pending = set()


def watch_library(
    idx: MusicIndex,
    folder: Path | str,
    settings: WatchSettings | None = None,
    *,
    stop_event: threading.Event | None = None,
    on_report: Callable[[IndexReport], None] | None = None,
    on_refresh: Callable[[dict[str, int | str]], None] | None = None,
    initial: bool = True,
) -> None:
    """Follow ``folder`` and keep ``idx`` in step until ``stop_event`` is set (see
    ``LibraryWatcher``)."""
    LibraryWatcher(idx, folder, settings, stop_event=stop_event, on_report=on_report, on_refresh=on_refresh).run(
        initial=initial
    )
