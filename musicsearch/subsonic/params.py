"""The parameters of one ``/rest/`` call, from the query string and a form POST body alike,
each read and checked once: a missing one is error 10, a bad one error 0, with its name."""

from __future__ import annotations

from collections.abc import Iterable

from .responses import GENERIC, MISSING, SubsonicError

MAX_TEXT = 2000  # characters in one parameter (a query, a name, an API key)
MAX_VALUES = 1000  # values of one repeated parameter (songId=...)


class Params:
    """The (name, value) pairs of a request, in order; names are case-sensitive as in the protocol."""

    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        for key, value in pairs:
            self._values.setdefault(key, []).append(value)

    def __contains__(self, name: str) -> bool:
        return name in self._values

    def text(self, name: str, default: str | None = None) -> str | None:
        """The last value of ``name`` (``default`` when absent)."""
        values = self._values.get(name)
        if not values:
            return default
        if len(values[-1]) > MAX_TEXT:
            raise SubsonicError(GENERIC, f"parameter {name} is longer than {MAX_TEXT} characters")
        return values[-1]

    def required(self, name: str) -> str:
        """The value of ``name``, or error 10."""
        value = self.text(name)
        if value is None or value == "":
            raise SubsonicError(MISSING, f"required parameter is missing: {name}")
        return value

    def all(self, name: str) -> list[str]:
        """Every value of a repeated parameter (``songId=1&songId=2``)."""
        values = self._values.get(name, [])
        if len(values) > MAX_VALUES:
            raise SubsonicError(GENERIC, f"at most {MAX_VALUES} values of {name}")
        for value in values:
            if len(value) > MAX_TEXT:
                raise SubsonicError(GENERIC, f"parameter {name} is longer than {MAX_TEXT} characters")
        return values

    def number(self, name: str, default: int, low: int, high: int) -> int:
        """A whole number between ``low`` and ``high`` (``default`` when absent), or error 0."""
        raw = self.text(name)
        if raw is None or raw.strip() == "":
            return default
        value = whole(name, raw)
        if not low <= value <= high:
            raise SubsonicError(GENERIC, f"{name} must be between {low} and {high}, not {value}")
        return value

    def flag(self, name: str, default: bool = False) -> bool:
        raw = self.text(name)
        if raw is None or raw == "":
            return default
        if raw.lower() not in ("true", "false"):
            raise SubsonicError(GENERIC, f"{name} must be true or false, not {raw[:20]!r}")
        return raw.lower() == "true"


def whole(name: str, raw: str) -> int:
    """``raw`` as a whole number of at most 18 digits (error 0 otherwise)."""
    text = raw.strip()
    digits = text[1:] if text[:1] in "+-" else text
    if not digits.isascii() or not digits.isdigit() or len(digits) > 18:
        raise SubsonicError(GENERIC, f"{name} must be a whole number, not {raw[:20]!r}")
    return int(text)
