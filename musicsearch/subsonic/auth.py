"""Who is calling: Subsonic's ``u`` with a token (``t`` = md5(password + ``s``)) or a password
(``p``, plain or ``enc:`` + hex), or OpenSubsonic's ``apiKey``. Every refusal is an in-band
error: 10 (nothing to check), 40 (wrong user or password), 43 (an API key with ``u``), 44 (an
unknown API key)."""

from __future__ import annotations

import hashlib
import secrets

from .params import Params
from .responses import CONFLICTING_AUTH, INVALID_API_KEY, MISSING, WRONG_CREDENTIALS, SubsonicError
from .users import UserStore

WRONG = "wrong username or password"


def authenticate(params: Params, users: UserStore) -> str:
    """The name of the user the request authenticates as.

    Raises:
        SubsonicError: with the codes in the module docstring.
    """
    api_key = params.text("apiKey")
    if api_key is not None:
        if "u" in params or "p" in params or "t" in params:
            raise SubsonicError(CONFLICTING_AUTH, "give an apiKey or u with a password or token, not both")
        user = users.by_api_key(api_key)
        if user is None:
            raise SubsonicError(INVALID_API_KEY, "invalid API key")
        return user.name
    name = params.required("u")
    token, salt, password = params.text("t"), params.text("s"), params.text("p")
    if token is None and password is None:
        raise SubsonicError(MISSING, "required parameter is missing: t and s, or p")
    user = users.load().get(name)
    if user is None:
        secrets.compare_digest("x", "y")  # the same work for an unknown user
        raise SubsonicError(WRONG_CREDENTIALS, WRONG)
    if token is not None:
        if salt is None or salt == "":
            raise SubsonicError(MISSING, "required parameter is missing: s")
        if not any(secrets.compare_digest(t, token.lower().encode("utf-8")) for t in _tokens(user.password, salt)):
            raise SubsonicError(WRONG_CREDENTIALS, WRONG)
        return user.name
    assert password is not None
    if not secrets.compare_digest(_plain(password).encode("utf-8"), user.password.encode("utf-8")):
        raise SubsonicError(WRONG_CREDENTIALS, WRONG)
    return user.name


def _tokens(password: str, salt: str) -> list[bytes]:
    """The tokens a client may send for ``password``: md5 of its UTF-8 bytes and the salt's,
    and, for a password Latin-1 can spell, of its Latin-1 bytes (JavaScript clients such as
    npm's subsonic-api hash each UTF-16 unit as one byte, so "é" arrives as 0xE9)."""
    out = [hashlib.md5((password + salt).encode("utf-8")).hexdigest().encode()]
    try:
        out.append(hashlib.md5(password.encode("latin-1") + salt.encode("utf-8")).hexdigest().encode())
    except UnicodeEncodeError:
        pass
    return out


def _plain(password: str) -> str:
    """``p`` as sent: ``enc:`` + the UTF-8 bytes in hex, or the password itself."""
    if not password.startswith("enc:"):
        return password
    try:
        return bytes.fromhex(password[4:]).decode("utf-8")
    except ValueError:  # bad hex or bad UTF-8: a password that matches nobody
        raise SubsonicError(WRONG_CREDENTIALS, WRONG) from None
