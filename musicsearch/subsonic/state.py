"""What every ``/rest/`` handler gets: the library (the index behind the server's lock, its
catalog rebuilt when the index changes, the users, the playlists) and the call itself."""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from fastapi.responses import Response

from ..api import MusicIndex
from ..errors import IndexNotFound, MusicSearchError
from .catalog import Catalog
from .params import Params
from .responses import GENERIC, SubsonicError
from .users import UserStore

T = TypeVar("T")


@dataclass
class Library:
    """The index a server's ``/rest/`` serves. ``lock`` is the server's own: one model and one
    SQLite connection, so every call into the index holds it."""

    index: MusicIndex
    lock: threading.Lock
    users: UserStore = field(default_factory=UserStore)
    saved: dict[tuple, list[int]] = field(default_factory=dict)  # saved searches' songs, for one stamp
    _catalog: tuple[tuple[int, int], Catalog] | None = None

    @property
    def stamp(self) -> tuple[int, int] | None:
        """The index's change stamp as of the last ``catalog()``."""
        return self._catalog[0] if self._catalog else None

    def catalog(self) -> Catalog:
        """The songs, albums and artists as of now (rebuilt only when the index changed)."""
        with self.lock:
            since = self._catalog[0] if self._catalog else None
            try:
                stamp, rows = self.index.catalog(since)
            except IndexNotFound:
                return Catalog([])
            except MusicSearchError as exc:
                raise SubsonicError(GENERIC, str(exc)) from None
            if rows is not None or self._catalog is None:
                self._catalog = (stamp, Catalog(rows or []))
            return self._catalog[1]

    def run(self, work: Callable[[MusicIndex], T], empty: T) -> T:
        """``work(index)`` under the lock; ``empty`` when there is no index yet, a library
        error as error 0 with its message."""
        with self.lock:
            try:
                return work(self.index)
            except IndexNotFound:
                return empty
            except MusicSearchError as exc:
                raise SubsonicError(GENERIC, str(exc)) from None


@dataclass(frozen=True)
class Call:
    """One authenticated ``/rest/`` call: its parameters, the library and who made it."""

    params: Params
    library: Library
    user: str
    method: str


Handler = Callable[[Call], dict | Response]
