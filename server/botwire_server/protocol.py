"""The HTTP/1.1 protocol ``botwire serve`` runs: uvicorn's httptools protocol, with bounds.

uvicorn buffers request headers without a limit, waits for a request's head
and body for ever, and accepts connections until the process runs out of file
descriptors. A hostile client exploits each (a 300 MB header, thousands of idle
half-open sockets). This subclass adds, per worker:

* ``max_header_bytes``: the request line and headers together, and whatever
  else of a request is not its body (chunk framing beyond a small allowance,
  trailers); past it the answer is 431 and the connection closes. Memory held
  is the limit plus one socket read (asyncio reads at most 256 KiB at a time).
  Trailers are dropped, never added to the request's headers.
* ``read_timeout``: seconds from a connection's first byte of a request (or
  from the connection itself) until the whole request, head and body, is in;
  past it, 408 (or a plain close once the app has the request) — slow-drip
  ("slowloris") clients and idle sockets are closed. The keep-alive timeout
  between requests stays uvicorn's. An answer the client does not read is
  dropped with its connection once ``read_timeout`` passes with no progress,
  so unread answers do not hold a worker's memory.
* ``max_connections``: open connections; one more is answered 503 with
  ``Retry-After`` and closed, so file descriptors stay for the database.

Settings come from the ``BOTWIRE_SERVER_*`` environment that ``botwire serve``
gives each worker (``Settings.from_env``).
"""

from __future__ import annotations

import asyncio
from typing import Any

import orjson
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from .settings import Settings

_settings: Settings | None = None


def _limits() -> Settings:
    global _settings
    if _settings is None:
        _settings = Settings.from_env()
    return _settings


class BoundedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with header, time and connection bounds (see above)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        settings = _limits()
        self.max_header_bytes = settings.max_header_bytes
        self.read_timeout = settings.read_timeout
        self.max_connections = settings.max_connections
        self._reading_head = True  # between a request's first byte and its headers' end
        self._overhead = 0  # bytes of this request, so far, that were not its body
        self._counted = 0  # bytes the parser handed us of this head (URL and headers)
        self._refused = False
        self._read_timer: asyncio.TimerHandle | None = None
        self._drain_timer: asyncio.TimerHandle | None = None
        self._unsent = 0  # the write buffer at the last drain check

    # -- connections --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if self.max_connections and len(self.connections) > self.max_connections:
            self._refuse(503, "unavailable", "too many open connections; retry shortly")
            return
        self._arm()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self._drain_timer is not None:
            self._drain_timer.cancel()
            self._drain_timer = None
        super().connection_lost(exc)

    # -- reading a request --------------------------------------------------------------

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self.max_header_bytes and self._overhead > self.max_header_bytes:
            self._too_large()  # counted from earlier reads: all of it was not body
            return
        self._overhead += len(data)  # on_body and on_chunk_header take back what was body
        super().data_received(data)

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._reading_head = True
        self._counted = 0
        if self._read_timer is None:
            self._arm()

    def on_url(self, url: bytes) -> None:
        if self._count(len(url)):
            super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        if self._reading_head and self._count(len(name) + len(value) + 4):
            super().on_header(name, value)  # not a trailer: those are dropped

    def on_headers_complete(self) -> None:
        if self._refused:
            return
        if self.max_header_bytes and self._counted > self.max_header_bytes:
            self._too_large()
            return
        self._reading_head = False
        super().on_headers_complete()

    def on_chunk_header(self) -> None:
        self._overhead -= _CHUNK_FRAMING  # a chunk's size line and CRLFs are not head

    def on_body(self, body: bytes) -> None:
        self._overhead -= len(body)
        if not self._refused:
            super().on_body(body)

    def on_message_complete(self) -> None:
        if self._refused:
            return
        self._overhead = 0  # (the next request's bytes in this read go uncounted: one read)
        self._disarm()  # the whole request is in: the app takes it from here
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()  # may have closed the transport (Connection: close)
        if self.read_timeout and self._drain_timer is None and self._pending() > 0:
            self._unsent = self._pending()
            self._drain_timer = self.loop.call_later(self.read_timeout, self._check_drain)

    # -- answers the client does not read --------------------------------------------------

    def _pending(self) -> int:
        """Bytes of answers not yet taken by the client (a closing transport still holds them)."""
        return self.transport.get_write_buffer_size()

    def _check_drain(self) -> None:
        """Drop the connection if the client read nothing of its answer since the last check."""
        self._drain_timer = None
        left = self._pending()
        if left == 0:
            return
        if left >= self._unsent:
            self.transport.abort()
            return
        self._unsent = left
        self._drain_timer = self.loop.call_later(self.read_timeout, self._check_drain)

    def send_400_response(self, msg: str) -> None:
        """uvicorn's answer to a request its parser refuses, in the JSON error shape."""
        self._refuse(400, "invalid_request", f"not a valid HTTP/1.1 request ({msg})")

    # -- bounds -------------------------------------------------------------------------

    def _count(self, size: int) -> bool:
        """Count ``size`` bytes of head; ``False`` (and stop keeping them) past the limit."""
        self._counted += size
        return not self._refused and not (
            self.max_header_bytes and self._counted > self.max_header_bytes
        )

    def _arm(self) -> None:
        if self.read_timeout:
            self._read_timer = self.loop.call_later(self.read_timeout, self._timed_out)

    def _disarm(self) -> None:
        if self._read_timer is not None:
            self._read_timer.cancel()
            self._read_timer = None

    def _timed_out(self) -> None:
        self._read_timer = None
        if self.transport.is_closing():
            return
        if self.cycle is not None and not self.cycle.response_complete and not self._reading_head:
            self.transport.close()  # the app has the request and waits for its body: cut it
            return
        message = f"the request was not sent within {self.read_timeout} s"
        self._refuse(408, "request_timeout", message)

    def _too_large(self) -> None:
        self._refuse(
            431,
            "headers_too_large",
            f"the request line and headers are over {self.max_header_bytes} bytes",
        )

    def _refuse(self, status: int, code: str, message: str) -> None:
        """Answer ``status`` with the JSON error shape, then close the connection."""
        self._refused = True
        self._disarm()
        if self.transport.is_closing():
            return
        body = orjson.dumps({"error": {"code": code, "message": message}})
        head = [
            b"HTTP/1.1 %d %s\r\n" % (status, _REASONS[status]),
            b"content-type: application/json\r\n",
            b"content-length: %d\r\n" % len(body),
            b"connection: close\r\n",
        ]
        if status == 503:
            head.append(b"retry-after: 1\r\n")
        self.transport.write(b"".join([*head, b"\r\n", body]))
        self.transport.close()


_CHUNK_FRAMING = 32  # allowance per chunk: its hex size, extensions and CRLFs

_REASONS = {
    400: b"Bad Request",
    408: b"Request Timeout",
    431: b"Request Header Fields Too Large",
    503: b"Service Unavailable",
}
