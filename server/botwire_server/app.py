"""The app factory: ``create_app(settings)``; for uvicorn: ``botwire_server.app:create_app``.

The lifespan opens the store (the core's SQLite store, with the limits and
per-namespace accounting) and runs the background sweeper; each app built by
the factory is isolated, so tests build as many as they like.

``/mcp`` serves MCP over Streamable HTTP on the same store, with the same tokens
(``botwire.mcp.http``), when the ``mcp`` SDK is installed (``botwire[mcp]``);
``mcp=False`` (``botwire serve --no-mcp``, ``BOTWIRE_SERVER_MCP=off``) leaves it out.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import importlib.util
import inspect
import logging
import os
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from botwire.stores import Store
from botwire.stores.base import Sweeping

from . import errors, openapi, routes_compat, routes_v1, routing, ui
from .auth import Tokens, authorize
from .errors import json_response
from .metrics import Metrics
from .middleware import BodyLimit, OpenModeNotice, RecordMetrics, StrictUtf8
from .settings import Settings, open_stores
from .watch import Watchers, answer_on_exit
from .writes import WriteQueue

log = logging.getLogger("botwire.server")


def create_app(settings: Settings | None = None, *, mcp: bool | None = None) -> FastAPI:
    settings = settings or Settings.from_env()
    metrics = Metrics()
    mcp_mount = _mcp_mount(settings, mcp)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        store, admin = open_stores(settings)
        app.state.store = store
        app.state.writes = WriteQueue(store)
        app.state.tokens = Tokens(admin) if settings.auth == "token" else None
        sweeper = asyncio.create_task(_sweep_forever(store, settings.sweep_interval))
        _freeze_once()
        _return_large_buffers()
        try:
            async with contextlib.AsyncExitStack() as stack:
                stack.callback(answer_on_exit(app.state.watchers))
                if mcp_mount is not None:

                    async def authorizer(header: str | None, namespace: str, write: bool) -> None:
                        await authorize(app.state.tokens, header, namespace, write=write)

                    running = mcp_mount.running(store, authorizer, app.state.writes.submit)
                    await stack.enter_async_context(running)
                yield
        finally:
            sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sweeper
            store.close()
            admin.close()

    app = FastAPI(
        title="botwire",
        summary="Persistent, namespaced key-value memory for AI agents.",
        version=_version(),
        lifespan=lifespan,
        **_no_telemetry(),
    )
    app.state.settings = settings
    app.state.metrics = metrics
    app.state.watchers = Watchers(settings.max_watchers, settings.max_connections)
    errors.install(app)
    routing.install(app, routes_v1.routes, routes_v1.listing, routes_compat.routes)
    if mcp_mount is not None:  # an ASGI app as the endpoint: Starlette passes requests through
        app.router.add_route("/mcp", mcp_mount, include_in_schema=False)
    if settings.ui:
        ui.install(app)

    @app.get("/healthz", tags=["operations"], summary="Liveness and database check")
    async def healthz(request: Request) -> Response:
        await run_in_threadpool(request.app.state.store.batch, "!health", [])
        return json_response({"ok": True})

    @app.get(
        "/metrics",
        tags=["operations"],
        summary="Prometheus metrics of this worker",
        responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}}},
    )
    async def prometheus() -> Response:
        body, content_type = metrics.render()
        return Response(body, media_type=content_type)

    original = app.openapi

    def with_schemas() -> dict[str, Any]:
        if app.openapi_schema is None:
            app.openapi_schema = openapi.add_schemas(original())
        return app.openapi_schema

    app.openapi = with_schemas  # type: ignore[method-assign]
    # Outermost first: metrics see every answer, including a 413 for a large body.
    app.add_middleware(StrictUtf8)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    app.add_middleware(RecordMetrics, metrics=metrics)
    if settings.auth == "open":  # a client that sends a key learns it was not checked
        app.add_middleware(OpenModeNotice)
    return app


def _mcp_mount(settings: Settings, wanted: bool | None) -> Any:
    """``/mcp``'s app, or ``None``: switched off, or the ``mcp`` SDK is not installed."""
    if wanted is None:
        wanted = os.environ.get("BOTWIRE_SERVER_MCP", "on").lower() not in MCP_OFF
    if not wanted or importlib.util.find_spec("mcp") is None:
        return None
    from botwire.mcp.http import HttpMount

    return HttpMount(
        host=settings.host,
        open_mode=settings.auth == "open",
        max_body_bytes=settings.max_body_bytes,
    )


MCP_OFF = ("0", "off", "false", "no")


async def _sweep_forever(store: Store, interval: float) -> None:
    if not isinstance(store, Sweeping):  # nothing to reclaim
        return
    while True:
        await asyncio.sleep(interval)
        try:
            while await run_in_threadpool(store.sweep, 1000) == 1000:
                pass  # a backlog: keep going
        except Exception:  # keep sweeping; the next round may succeed
            log.exception("sweep failed")


def _no_telemetry() -> dict[str, Any]:
    """Newer FastAPI checks for OpenTelemetry on every request (~10% of a GET); we
    export Prometheus metrics ourselves, so switch it off where it exists."""
    if "telemetry" not in inspect.signature(FastAPI.__init__).parameters:
        return {}
    return {"telemetry": {"tracing": False, "metrics": False, "logs": False}}


def _version() -> str:
    import botwire

    return botwire.__version__


_frozen = False


def _return_large_buffers() -> None:
    """Give buffers of 128 KiB and more back to the system as soon as they are freed.

    glibc raises its mmap threshold after the first large free, so answers of
    several MB built in worker threads stay in per-thread arenas and a worker's
    memory never comes down after a burst (tested: 20 unread 10 MB answers).
    Fixing the threshold (which also stops that adjustment) keeps it bounded.
    """
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    if name is None or not hasattr(ctypes, "CDLL"):
        return
    try:
        libc = ctypes.CDLL(name)
        libc.mallopt(-3, 128 * 1024)  # M_MMAP_THRESHOLD (glibc); a no-op elsewhere
    except (OSError, AttributeError):
        pass


def _freeze_once() -> None:
    """Keep what the first startup made (imports, the app) out of every GC pass.

    Once per process: an app made again in the same process (tests) must not
    make the garbage of the previous one immortal.
    """
    global _frozen
    if not _frozen:
        gc.freeze()
        _frozen = True
