"""The ASGI middleware that checks what a request carries before the app reads it."""

from __future__ import annotations

from urllib.parse import parse_qsl

from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .limits import MAX_JSON_BYTES, MULTIPART_OVERHEAD_BYTES, control_character, error_response, size_text


class RequestGuard:
    """ASGI middleware that checks what every request carries before the app reads it.

    - Bodies are bounded before they are read: multipart bodies to the upload limit (plus room
      for the form fields), any other body to ``json_limit``. A declared Content-Length over the
      limit is refused at once (413) without reading a byte; a body sent without one (chunked) is
      counted as the app reads it and refused as soon as it passes the limit.
    - The query string must be valid UTF-8 without control characters (400).
    """

    def __init__(self, app: ASGIApp, upload_limit: int, json_limit: int = MAX_JSON_BYTES) -> None:
        self.app = app
        self.upload_limit = upload_limit
        self.json_limit = json_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        if headers.get("content-type", "").lower().startswith("multipart/form-data"):
            limit, message = (
                self.upload_limit + MULTIPART_OVERHEAD_BYTES,
                f"upload larger than {size_text(self.upload_limit)}",
            )
        else:
            limit = self.json_limit
            message = f"request body larger than {size_text(limit)} (send audio as a multipart upload)"
        declared = headers.get("content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            status = 413 if declared.isdigit() else 400
            refusal = error_response(status, message if status == 413 else "bad Content-Length header")
            await refusal(scope, receive, send)
            return
        problem = self._query_problem(scope.get("query_string", b""))
        if problem:
            await error_response(400, problem)(scope, receive, send)
            return
        received = 0

        async def bounded_receive() -> Message:
            nonlocal received
            msg = await receive()
            if msg["type"] == "http.request":
                received += len(msg.get("body", b""))
                if received > limit:
                    # an HTTPException reaches the app's handler (413 JSON) from wherever the body is read
                    raise HTTPException(413, message)
            return msg

        await self.app(scope, bounded_receive, send)

    @staticmethod
    def _query_problem(raw: bytes) -> str | None:
        try:
            pairs = parse_qsl(raw.decode("latin-1"), keep_blank_values=True, encoding="utf-8", errors="strict")
        except UnicodeDecodeError:
            return "the query string is not valid UTF-8"
        for key, value in pairs:
            bad = control_character(key + value)
            if bad is not None:
                return f"query parameter {key!r} contains a control character ({bad!a})"
        return None
