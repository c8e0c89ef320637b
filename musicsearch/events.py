"""What an index run tells its caller: the events a listener receives while it runs
(``Phase``, ``RunStart``, ``Progress``) and the ``IndexReport`` it returns. Front ends draw
these; the run only emits them."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class IndexReport:
    """What one ``index`` run did. Paths are absolute strings."""

    root: str
    added: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    moved: list[tuple[str, str]] = field(default_factory=list)  # (old, new)
    removed: list[str] = field(default_factory=list)
    unchanged: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    skipped_failed: int = 0  # recorded failures not retried (file unchanged)
    windows: int = 0
    seconds: float = 0.0
    notes: list[str] = field(default_factory=list)
    warnings: list[tuple[str, str]] = field(default_factory=list)  # (path, warning): indexed all the same

    @property
    def windows_per_second(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class Phase:
    """A step that may take a while, told before it starts (\"Loading the model ...\")."""

    message: str


@dataclass(frozen=True)
class Progress:
    """Told after each committed batch."""

    files_done: int
    files_total: int
    windows: int
    seconds: float

    @property
    def windows_per_second(self) -> float:
        return self.windows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class RunStart:
    """Told before embedding starts: how much work there is and how long it should take."""

    files: int
    windows: int  # estimated from the files' headers
    max_windows: int | None  # the window budget in force (None: whole tracks)
    device: str | None
    windows_per_second: float | None  # measured on a warm-up window

    @property
    def eta_seconds(self) -> float | None:
        return self.windows / self.windows_per_second if self.windows_per_second else None


Event = Phase | RunStart | Progress
Listener = Callable[[Event], None]


def quiet(event: Event) -> None:
    """The listener that ignores every event (the default)."""
