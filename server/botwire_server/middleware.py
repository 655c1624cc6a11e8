"""Pure ASGI middleware: strict UTF-8 in URLs, the request body limit, per-request metrics,
and the open-mode notice.

The body limit answers 413 before a body is read whole: at once from
``Content-Length``, or as soon as a streamed body passes the limit.

URLs: servers decode percent-escapes leniently (``%FF`` becomes U+FFFD), so two
different byte strings would name one key. A path or query string whose
escapes are not valid UTF-8 is refused with 400 before any route sees it.

Open mode checks no key: a request that carries ``Authorization`` anyway gets
``Botwire-Auth: open`` on its answer, so a client configured with a key can tell
its user the key is ignored (instead of the user believing it protects anything).
"""

from __future__ import annotations

import time
from typing import Any

import orjson
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from botwire import BotwireError, InvalidName, InvalidRequest, RequestTooLarge
from botwire.wire import parse_uint

from .metrics import Metrics


class BodyLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not self.max_bytes:
            await self.app(scope, receive, send)
            return
        declared = _header(scope, b"content-length")
        if declared is not None and not _fits(declared, self.max_bytes):
            await _send_error(
                send, RequestTooLarge(f"the request body is over {self.max_bytes} bytes")
            )
            return
        seen = 0

        async def limited() -> Message:
            nonlocal seen
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_bytes:
                raise RequestTooLarge(f"the request body is over {self.max_bytes} bytes")
            return message

        await self.app(scope, limited, send)


class StrictUtf8:
    """Refuse a request whose percent-decoded path or query string is not UTF-8."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            error = _utf8_error(scope)
            if error is not None:
                await _send_error(send, error)
                return
        await self.app(scope, receive, send)


def _utf8_error(scope: Scope) -> BotwireError | None:
    from urllib.parse import unquote_to_bytes

    raw_path: bytes = scope.get("raw_path") or scope["path"].encode("utf-8", "surrogateescape")
    try:
        unquote_to_bytes(raw_path).decode("utf-8")
    except UnicodeDecodeError:
        return InvalidName("the URL path is not valid UTF-8 once its %-escapes are decoded")
    query: bytes = scope.get("query_string") or b""
    try:
        unquote_to_bytes(query.replace(b"+", b" ")).decode("utf-8")
    except UnicodeDecodeError:
        return InvalidRequest("the query string is not valid UTF-8 once its %-escapes are decoded")
    return None


def _fits(declared: str, max_bytes: int) -> bool:
    try:
        parse_uint(declared.strip(), "Content-Length", 0, max_bytes)
    except InvalidRequest:
        return False
    return True


class OpenModeNotice:
    """Add ``Botwire-Auth: open`` to the answer of a request that sent ``Authorization``."""

    HEADER = (b"botwire-auth", b"open")

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _header(scope, b"authorization") is None:
            await self.app(scope, receive, send)
            return

        async def noting(message: Message) -> None:
            if message["type"] == "http.response.start":
                message = {**message, "headers": [*message.get("headers", ()), self.HEADER]}
            await send(message)

        await self.app(scope, receive, noting)


class RecordMetrics:
    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = getattr(scope.get("route"), "path", "unmatched")
            state: dict[str, Any] = scope.get("state") or {}
            code = state.get("error_code") if status >= 400 else None
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start, code)


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _send_error(send: Send, error: BotwireError) -> None:
    """Answer ``error`` in the JSON error shape, and close the connection."""
    body = orjson.dumps({"error": error.to_dict()})
    await send(
        {
            "type": "http.response.start",
            "status": error.status,
            "headers": [(b"content-type", b"application/json"), (b"connection", b"close")],
        }
    )
    await send({"type": "http.response.body", "body": body})
