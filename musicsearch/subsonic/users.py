"""The Subsonic users: ``users.json`` in the user config folder, readable and writable by its
owner only (mode 0600, written atomically).

Subsonic's token authentication sends ``md5(password + salt)`` with a fresh salt, so the server
must know each password itself to check it: passwords are kept as given, not hashed, and the
file's mode is what protects them (docs/subsonic.md says so). API keys (OpenSubsonic's
``apiKey``) need no such thing: only their SHA-256 is kept, and a key is shown once, when made."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import os
import secrets
import threading
from dataclasses import dataclass, field
from pathlib import Path

from ..config import config_dir
from ..errors import MusicSearchError

FILE_NAME = "users.json"
FORMAT = 1
MAX_NAME = 64
MAX_PASSWORD = 256

_lock = threading.Lock()


@dataclass(frozen=True)
class User:
    """One user: the password as given (see the module docstring) and the SHA-256 of each API key."""

    name: str
    password: str
    api_keys: tuple[str, ...] = field(default_factory=tuple)


def key_digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def check_name(name: str) -> str:
    """A user name as typed, or one line saying what is wrong with it."""
    if not name or len(name) > MAX_NAME or not name.isprintable() or name != name.strip():
        raise MusicSearchError(f"bad user name {name!r}: give 1 to {MAX_NAME} printable characters, no outer spaces")
    return name


def check_password(password: str) -> str:
    if not password:
        raise MusicSearchError("the password is empty")
    if len(password) > MAX_PASSWORD or not password.isprintable():
        raise MusicSearchError(f"the password must be 1 to {MAX_PASSWORD} printable characters")
    return password


class UserStore:
    """The users of ``path`` (default: ``users.json`` in the user config folder). Reads are
    cached until the file changes, so a server sees ``musicsearch user add`` at once."""

    def __init__(self, path: Path | str | None = None) -> None:
        self.path = Path(path) if path is not None else config_dir() / FILE_NAME
        self._cache: tuple[tuple[int, int], dict[str, User]] | None = None

    def load(self) -> dict[str, User]:
        """Every user by name ({} when there is no file)."""
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return {}
        stamp = (st.st_mtime_ns, st.st_size)
        if self._cache is not None and self._cache[0] == stamp:
            return self._cache[1]
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            if data.get("format", FORMAT) > FORMAT:
                raise MusicSearchError(f"{self.path} comes from a newer musicsearch; upgrade to use it")
            users = {
                str(u["name"]): User(str(u["name"]), str(u["password"]), tuple(map(str, u.get("api_keys", ()))))
                for u in data.get("users", [])
            }
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise MusicSearchError(f"{self.path} is damaged ({exc}); fix or delete it") from exc
        self._cache = (stamp, users)
        return users

    def _write(self, users: dict[str, User]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        payload = {
            "format": FORMAT,
            "users": [{"name": u.name, "password": u.password, "api_keys": list(u.api_keys)} for u in users.values()],
        }
        tmp = self.path.with_name(f".{FILE_NAME}.{os.getpid()}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), 0o600)  # also when an older temp file had another mode
            json.dump(payload, f, ensure_ascii=False, indent=2)
            f.write("\n")
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def add(self, name: str, password: str) -> bool:
        """Add a user or set the password of an existing one; True when the user is new.
        The user's API keys are kept."""
        check_name(name)
        check_password(password)
        with _lock:
            users = dict(self.load())
            old = users.get(name)
            users[name] = User(name, password, old.api_keys if old else ())
            self._write(users)
        return old is None

    def remove(self, name: str) -> None:
        with _lock:
            users = dict(self.load())
            if name not in users:
                raise MusicSearchError(f"no user named {name!r} (musicsearch user list)")
            del users[name]
            self._write(users)

    def new_api_key(self, name: str) -> str:
        """A new API key for ``name`` (kept as its SHA-256 only; the others stay valid)."""
        with _lock:
            users = dict(self.load())
            if name not in users:
                raise MusicSearchError(f"no user named {name!r}: add one with musicsearch user add {name}")
            key = secrets.token_urlsafe(32)
            user = users[name]
            users[name] = User(user.name, user.password, (*user.api_keys, key_digest(key)))
            self._write(users)
        return key

    def by_api_key(self, key: str) -> User | None:
        digest = key_digest(key)
        for user in self.load().values():
            if any(secrets.compare_digest(digest, d) for d in user.api_keys):
                return user
        return None


def is_loopback(host: str) -> bool:
    """Whether ``host`` (as given to ``serve --host``) reaches this machine only."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
