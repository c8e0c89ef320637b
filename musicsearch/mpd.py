"""Send hits to MPD's queue over its plain text protocol (no client library needed).

MPD names songs by their path relative to its ``music_directory``. ``--mpd-music-dir`` says
where that folder is on this machine; without it, MPD is asked (its ``config`` command answers
only on a local socket)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from .errors import MusicSearchError

log = logging.getLogger(__name__)

DEFAULT_PORT = 6600


@dataclass(frozen=True)
class MpdAddress:
    """Where MPD listens: a TCP host and port, or a local socket path (``host`` starting with
    ``/``); ``password`` from ``PASSWORD@HOST``."""

    host: str
    port: int = DEFAULT_PORT
    password: str | None = None

    @classmethod
    def parse(cls, spec: str) -> MpdAddress:
        """``HOST``, ``HOST:PORT``, ``[IPv6]:PORT``, ``/path/to/socket``, each optionally
        preceded by ``PASSWORD@``.

        Raises:
            MusicSearchError: an empty host or a port that is not a number in 1..65535.
        """
        password, at, rest = spec.rpartition("@")
        password_or_none = password if at else None
        rest = rest.strip()
        if rest.startswith("/"):
            return cls(rest, 0, password_or_none)
        host, port_text = rest, ""
        if rest.startswith("["):  # [::1]:6600
            host, _, tail = rest[1:].partition("]")
            port_text = tail[1:] if tail.startswith(":") else ""
        elif rest.count(":") == 1:
            host, _, port_text = rest.partition(":")
        if not host:
            raise MusicSearchError(f"bad --mpd {spec!r}: expected HOST[:PORT] or a socket path")
        try:
            port = int(port_text) if port_text else DEFAULT_PORT
        except ValueError:
            port = 0
        if not 1 <= port <= 65535:
            raise MusicSearchError(f"bad --mpd port in {spec!r}: expected a number from 1 to 65535")
        return cls(host, port, password_or_none)

    @property
    def local(self) -> bool:
        return self.host.startswith("/")

    def __str__(self) -> str:
        return self.host if self.local else f"{self.host}:{self.port}"


def quote(arg: str) -> str:
    """An MPD command argument: double quotes, with backslash and double quote escaped."""
    if "\n" in arg:
        raise MusicSearchError(f"an MPD argument cannot hold a line break: {arg!r}")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


class MpdClient:
    """One connection to MPD; commands return their ``key: value`` lines as pairs.

    Raises:
        MusicSearchError: MPD cannot be reached, is not MPD, or refuses a command (its ACK
            message is kept).
    """

    def __init__(self, address: MpdAddress, timeout: float = 10.0):
        self.address = address
        try:
            if address.local:
                self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                self.sock.settimeout(timeout)
                self.sock.connect(address.host)
            else:
                self.sock = socket.create_connection((address.host, address.port), timeout=timeout)
        except OSError as exc:
            raise MusicSearchError(f"cannot reach MPD at {address}: {exc.strerror or exc}") from exc
        self.file = self.sock.makefile("rwb")
        hello = self._line()
        if not hello.startswith("OK MPD "):
            self.close()
            raise MusicSearchError(f"{address} is not MPD (it said {hello[:60]!r})")
        self.version = hello[7:]
        if address.password:
            self.command("password", address.password)

    def _line(self) -> str:
        try:
            raw = self.file.readline()
        except OSError as exc:
            raise MusicSearchError(f"MPD at {self.address} stopped answering: {exc}") from exc
        if not raw:
            raise MusicSearchError(f"MPD at {self.address} closed the connection")
        return raw.decode("utf-8", "replace").rstrip("\n")

    def _send(self, lines: Sequence[str]) -> None:
        try:
            self.file.write(("\n".join(lines) + "\n").encode("utf-8"))
            self.file.flush()
        except OSError as exc:
            raise MusicSearchError(f"MPD at {self.address} stopped answering: {exc}") from exc

    def _read_reply(self, what: str | Sequence[str]) -> list[tuple[str, str]]:
        """The reply's pairs up to ``OK``; an ``ACK [code@n] {cmd} message`` becomes an error
        naming the command (``what``, or ``what[n]`` for the n-th of a command list)."""
        out: list[tuple[str, str]] = []
        while True:
            line = self._line()
            if line == "OK":
                return out
            if line.startswith("ACK "):
                where, _, rest = line[4:].partition(" ")
                message = rest.partition("} ")[2] or rest
                if isinstance(what, str):
                    name = what
                else:
                    try:
                        name = what[int(where.strip("[]").partition("@")[2])]
                    except (ValueError, IndexError):
                        name = what[0]
                raise MusicSearchError(f"MPD refused {name}: {message}")
            key, _, value = line.partition(": ")
            out.append((key, value))

    def command(self, name: str, *args: str) -> list[tuple[str, str]]:
        self._send([" ".join([name, *(quote(a) for a in args)])])
        return self._read_reply(name)

    def command_list(self, commands: Sequence[tuple[str, ...]]) -> None:
        """Several commands in one round trip; MPD stops at the first that fails (ACK)."""
        if not commands:
            return
        lines = [" ".join([c[0], *(quote(a) for a in c[1:])]) for c in commands]
        self._send(["command_list_begin", *lines, "command_list_end"])
        self._read_reply(lines)

    def music_directory(self) -> str | None:
        """MPD's music directory, where MPD tells it (local sockets only)."""
        if not self.address.local:
            return None
        try:
            return dict(self.command("config")).get("music_directory")
        except MusicSearchError:
            return None

    def close(self) -> None:
        try:
            self._send(["close"])
        except MusicSearchError:
            pass
        self.file.close()
        self.sock.close()

    def __enter__(self) -> MpdClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass(frozen=True)
class QueueResult:
    added: int
    skipped: list[str]  # paths outside MPD's music directory
    replaced: bool


def mpd_uri(path: str, music_dir: Path) -> str | None:
    """``path`` relative to ``music_dir`` in MPD's form (forward slashes), or None outside it."""
    try:
        rel = Path(os.path.abspath(path)).relative_to(Path(os.path.abspath(music_dir)))
    except ValueError:
        return None
    return rel.as_posix() if rel.parts else None


def queue_paths(
    address: MpdAddress | str,
    paths: Sequence[str],
    *,
    music_dir: Path | str | None = None,
    append: bool = False,
    timeout: float = 10.0,
) -> QueueResult:
    """Replace MPD's queue with ``paths`` (in order), or add them at its end (``append``).

    Args:
        music_dir: MPD's ``music_directory`` as this machine sees it; asked from MPD when None
            (works on a local socket only).

    Raises:
        MusicSearchError: MPD unreachable or refusing (e.g. a file its database does not know
            yet: run ``mpc update``), no music directory known, or no path inside it.
    """
    addr = MpdAddress.parse(address) if isinstance(address, str) else address
    with MpdClient(addr, timeout) as client:
        root = Path(music_dir).expanduser() if music_dir is not None else None
        if root is None:
            told = client.music_directory()
            if told is None:
                raise MusicSearchError(
                    f"MPD at {addr} does not say where its music directory is over TCP; "
                    "pass --mpd-music-dir (the folder of this machine that is MPD's music_directory)"
                )
            root = Path(told)
        uris: list[str] = []
        skipped: list[str] = []
        for p in paths:
            uri = mpd_uri(p, root)
            if uri is None:
                skipped.append(p)
            else:
                uris.append(uri)
        for p in skipped:
            log.warning("%s is outside MPD's music directory %s; not queued", p, root)
        if paths and not uris:
            raise MusicSearchError(f"none of the {len(paths)} tracks is inside MPD's music directory {root}")
        commands: list[tuple[str, ...]] = [] if append else [("clear",)]
        commands += [("add", u) for u in uris]
        try:
            client.command_list(commands)
        except MusicSearchError as exc:
            raise MusicSearchError(f"{exc} (is MPD's database up to date? mpc update)") from exc
    return QueueResult(len(uris), skipped, not append)
