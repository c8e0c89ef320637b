"""What every ``/rest/`` answer looks like: the ``subsonic-response`` envelope in JSON or XML
(``f=json|xml``; XML is the protocol's default), with the OpenSubsonic fields (``type``,
``serverVersion``, ``openSubsonic: true``), and errors in-band: HTTP 200 with status
``failed`` and a Subsonic error code (``SubsonicError``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from xml.etree import ElementTree as ET

from fastapi.responses import JSONResponse, Response

API_VERSION = "1.16.1"
SERVER_TYPE = "musicsearch"
SERVER_VERSION = "0.1.0"
XMLNS = "http://subsonic.org/restapi"

# The protocol's error codes (subsonic.org/pages/api.jsp, OpenSubsonic's apiKeyAuthentication)
GENERIC = 0
MISSING = 10  # a required parameter is missing
CLIENT_TOO_OLD = 20
WRONG_CREDENTIALS = 40
AUTH_UNSUPPORTED = 42  # this authentication mechanism is not supported
CONFLICTING_AUTH = 43  # several authentication mechanisms at once
INVALID_API_KEY = 44
NOT_AUTHORIZED = 50  # the user may not do this
NOT_FOUND = 70


class SubsonicError(Exception):
    """A refusal the client reads in-band: ``code`` (one of the codes above) and a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def envelope(payload: Mapping[str, Any] | None = None, *, status: str = "ok") -> dict[str, Any]:
    """The body of ``subsonic-response``: status, versions and the payload's elements."""
    body: dict[str, Any] = {
        "status": status,
        "version": API_VERSION,
        "type": SERVER_TYPE,
        "serverVersion": SERVER_VERSION,
        "openSubsonic": True,
    }
    body.update(payload or {})
    return body


def render(body: Mapping[str, Any], fmt: str) -> Response:
    """``body`` (an ``envelope``) as JSON (``f=json``) or XML (anything else, as the protocol says)."""
    if fmt == "json":
        return JSONResponse({"subsonic-response": body})
    root = ET.Element("subsonic-response", {"xmlns": XMLNS})
    _fill(root, body)
    text = ET.tostring(root, encoding="unicode", xml_declaration=False)
    return Response('<?xml version="1.0" encoding="UTF-8"?>\n' + text, media_type="text/xml; charset=utf-8")


def error_body(exc: SubsonicError) -> dict[str, Any]:
    """The envelope of a refusal."""
    return envelope({"error": {"code": exc.code, "message": exc.message}}, status="failed")


def _scalar(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _fill(element: ET.Element, data: Mapping[str, Any]) -> None:
    """Subsonic's XML mapping of the JSON shape: scalars become attributes, objects child
    elements, lists repeated child elements (a list of scalars: elements holding the text)."""
    for key, value in data.items():
        if value is None:
            continue
        if isinstance(value, Mapping):
            _fill(ET.SubElement(element, key), value)
        elif isinstance(value, (list, tuple)):
            for item in value:
                child = ET.SubElement(element, key)
                if isinstance(item, Mapping):
                    _fill(child, item)
                else:
                    child.text = _scalar(item)
        elif key == "value" and element.tag in ("genre", "lyrics"):
            element.text = _scalar(value)  # <genre songCount=".." albumCount="..">Jazz</genre>
        else:
            element.set(key, _scalar(value))
