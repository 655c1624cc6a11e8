"""The MCP server mounted in ``botwire serve`` at ``/mcp`` (Streamable HTTP).

:class:`HttpMount` is the ASGI app of the route; the server app enters
:meth:`HttpMount.running` in its lifespan with its own store, its token check
and its group commit, so MCP calls use the server's database directly (no HTTP
round trip to itself), count against the same limits, and reach exactly the
namespaces the request's bearer token reaches on ``/v1``. In token mode a
request without a valid token is refused with 401 before MCP sees it; each call
is then checked against the namespace it uses (see ``_access.py``).

The MCP server is built on the first request to ``/mcp`` (off the event loop:
importing the SDK and deriving the tools' schemas takes a while), so an app
that never serves MCP pays nothing for it. This module imports no SDK itself.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio
import orjson
from starlette.types import ASGIApp, Receive, Scope, Send

from botwire import Forbidden, Unauthorized
from botwire.ops import Idempotency, NamespaceInfo, Op, is_read_only
from botwire.stores import Store
from botwire.stores import namespaces as namespaces_of

if TYPE_CHECKING:
    from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

Authorizer = Callable[[str | None, str, bool], Awaitable[None]]
Submit = Callable[[str, list[Op], Idempotency | None], Awaitable[list[Any]]]
LOOPBACK = ("127.0.0.1", "localhost", "::1")


class HttpMount:
    """The ``/mcp`` route of a server app.

    ``host``: the address the server listens on. In open mode on a loopback address
    the Host and Origin headers must be loopback ones too, so that a web page cannot
    reach the memory through DNS rebinding; in token mode (where such a page has no
    token) they are not checked, so a reverse proxy may pass its own Host.
    ``max_body_bytes``: the largest request body (0: the SDK's own limit).
    """

    def __init__(
        self, *, host: str = "127.0.0.1", open_mode: bool = True, max_body_bytes: int = 0
    ) -> None:
        self.host = host
        self.open_mode = open_mode
        self.max_body_bytes = max_body_bytes
        self._store: Store | None = None
        self._authorizer: Authorizer | None = None
        self._task: asyncio.Task[None] | None = None
        self._lock: anyio.Lock | None = None
        self._app: ASGIApp | None = None

    @contextlib.asynccontextmanager
    async def running(
        self, store: Store, authorizer: Authorizer, submit: Submit | None = None
    ) -> AsyncIterator[None]:
        """Serve MCP on ``store``, checking each caller with ``authorizer``; writes go
        through ``submit`` (the server's group commit) when given."""
        self._store, self._authorizer = _ServedStore(store, submit), authorizer
        self._lock = anyio.Lock()
        try:
            yield
        finally:
            task, self._task = self._task, None
            self._app = self._store = self._authorizer = None
            if task is not None:  # ends the session manager and its sessions
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._authorizer is not None:
            try:
                # "-" is no namespace a token is for: only the token itself is checked here
                await self._authorizer(_header(scope, b"authorization"), "-", False)
            except Unauthorized as exc:
                await _refuse(send, exc)
                return
            except Forbidden:  # a valid token, for other namespaces
                pass
        app = self._app or await self._start()
        await app(scope, receive, send)

    async def _start(self) -> ASGIApp:
        if self._lock is None or self._store is None:
            raise RuntimeError("/mcp is served only while the app's lifespan runs")
        async with self._lock:
            if self._app is None:
                manager = await anyio.to_thread.run_sync(self._build)
                # A task of its own, not a task group of the lifespan's: a lifespan may be
                # entered and left by two different tasks (tests/loopback.py does).
                ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
                self._task = asyncio.create_task(_serve(manager, ready))
                await ready
                from mcp.server.streamable_http_manager import StreamableHTTPASGIApp

                self._app = StreamableHTTPASGIApp(manager)
        return self._app

    def _build(self) -> StreamableHTTPSessionManager:
        from mcp.server.transport_security import TransportSecuritySettings

        from ._access import Access
        from .server import build_server

        server = build_server(Access(self._store, authorizer=self._authorizer))
        security = TransportSecuritySettings(enable_dns_rebinding_protection=False)
        if self.open_mode and self.host in LOOPBACK:
            security = TransportSecuritySettings(
                enable_dns_rebinding_protection=True,
                allowed_hosts=["127.0.0.1:*", "localhost:*", "[::1]:*"],
                allowed_origins=["http://127.0.0.1:*", "http://localhost:*", "http://[::1]:*"],
            )
        options: dict[str, Any] = {}
        if self.max_body_bytes:
            options["max_request_body_size"] = self.max_body_bytes
        # Builds the session manager; its Starlette app is not used: HttpMount is the route.
        server.streamable_http_app(transport_security=security, host=self.host, **options)
        return server.session_manager


async def _serve(manager: StreamableHTTPSessionManager, ready: asyncio.Future[None]) -> None:
    """Run the session manager until cancelled; ``ready`` once it serves (or its failure)."""
    try:
        async with manager.run():
            ready.set_result(None)
            await anyio.sleep_forever()
    except BaseException as exc:
        if not ready.done():
            if isinstance(exc, asyncio.CancelledError):
                ready.cancel()
            else:
                ready.set_exception(exc)
        raise


class _ServedStore(Store):
    """The server's store as the MCP server uses it: writes join the server's group commit."""

    def __init__(self, store: Store, submit: Submit | None) -> None:
        self.store = store
        self.submit = submit

    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        return self.store.batch(namespace, ops, idempotency=idempotency)

    async def abatch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        if self.submit is None or is_read_only(ops):
            return await self.store.abatch(namespace, ops, idempotency=idempotency)
        return await self.submit(namespace, list(ops), idempotency)

    def namespaces(
        self, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[NamespaceInfo]:
        return namespaces_of(self.store, prefix, after, limit)

    def close(self) -> None:  # the server app closes its own store
        pass


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def _refuse(send: Send, exc: Unauthorized) -> None:
    body = orjson.dumps({"error": exc.to_dict()})
    await send(
        {
            "type": "http.response.start",
            "status": exc.status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"www-authenticate", b'Bearer realm="botwire"'),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
