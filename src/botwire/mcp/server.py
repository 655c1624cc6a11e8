"""The botwire MCP server: one ``MCPServer`` (the official SDK's 2.x API) over an :class:`Access`.

:func:`build_server` assembles it: the key-value tools (``_kv.py``), the
resources and their subscriptions (``_resources.py``), the knowledge-graph tools
(``graph.py``) and one middleware, the only place a request's namespace is
decided and checked:

* ``tools/call``: the tool's ``namespace`` argument (or the server's) is resolved
  and authorized, for writing unless the tool is annotated read-only, and bound
  to the call; a refusal is a tool error with botwire's code;
* ``resources/read`` and ``subscriptions/listen``: the namespace of each
  ``botwire://`` URI, for reading; a refusal is a JSON-RPC error;
* ``resources/list``: answered here, a page at a time, over the namespaces the
  caller reaches.

:func:`serve_stdio` is ``botwire mcp``; ``http.py`` mounts the same server in
``botwire serve`` at ``/mcp``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

import anyio
import anyio.abc
from mcp.server.context import CallNext, HandlerResult, ServerRequestContext
from mcp.server.mcpserver import MCPServer
from mcp.server.subscriptions import InMemorySubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS
from starlette.requests import Request

import botwire
from botwire import BotwireError, Memory

from . import _kv, _resources, graph, graph_tools
from ._access import DEFAULT_NAMESPACE, Access, Caller, error_result, parse_uri, protocol_error

__all__ = ["DEFAULT_NAMESPACE", "Access", "build_server", "serve_stdio"]

RECHECK_SECONDS = 1.0  # how often an open subscription's token is checked again (HTTP)

INSTRUCTIONS = """\
botwire: persistent key-value memory shared by every process and agent that uses the same store.
remember/recall/forget/list_memories/append/increment work on one namespace: the server's
unless a call names another (within what this server lets it reach). Use if_version
(compare-and-set) when several agents may change one key. Each key is also a resource,
botwire://{namespace}/{key}, that can be read and subscribed to."""


def build_server(
    access: Access, *, poll_interval: float = _resources.POLL_SECONDS
) -> MCPServer[Any]:
    """The MCP server over ``access``'s store, with every tool, resource and subscription."""
    bus = InMemorySubscriptionBus()
    watcher = _resources.Watcher(access, bus, poll_interval)

    @contextlib.asynccontextmanager
    async def lifespan(_: MCPServer[Any]) -> AsyncIterator[dict[str, Any]]:
        async with anyio.create_task_group() as group:
            watcher.task_group = group
            try:
                yield {}
            finally:
                watcher.task_group = None
                group.cancel_scope.cancel()

    middleware = _Middleware(access, watcher)
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    server: MCPServer[Any] = MCPServer(
        "botwire",
        title="botwire memory",
        version=botwire.__version__,
        instructions=INSTRUCTIONS,
        log_level="WARNING",
        lifespan=lifespan,
        subscriptions=bus,
        middleware=[middleware],
    )
    # MCPServer configures the root logger (logging.basicConfig); leave that to the application
    root.handlers[:], root.level = handlers, level
    _kv.register(server, access)
    _resources.register(server, access)
    graph_tools.register(server, access.memory)
    middleware.server = server
    return server


class _Middleware:
    """Resolves and checks the namespace of every request (see the module docstring)."""

    def __init__(self, access: Access, watcher: _resources.Watcher) -> None:
        self.access = access
        self.watcher = watcher
        self.server: MCPServer[Any] | None = None
        self._read_only: dict[str, bool] | None = None

    async def __call__(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext
    ) -> HandlerResult:
        with self.access.calling(_caller_of(ctx.request)):
            params = ctx.params or {}
            if ctx.method == "tools/call":
                return await self._call_tool(ctx, params, call_next)
            if ctx.method == "resources/read":
                return await self._read(ctx, params, call_next)
            if ctx.method == "resources/list":
                return await _resources.list_page(self.access, params.get("cursor"))
            if ctx.method == "subscriptions/listen":
                return await self._listen(ctx, params, call_next)
            return await call_next(ctx)

    async def _tools(self) -> dict[str, bool]:
        """Each tool's name and whether it is annotated read-only."""
        if self._read_only is None:
            assert self.server is not None
            self._read_only = {
                tool.name: bool(tool.annotations and tool.annotations.read_only_hint)
                for tool in await self.server.list_tools()
            }
        return self._read_only

    async def _call_tool(
        self, ctx: ServerRequestContext[Any, Any], params: Any, call_next: CallNext
    ) -> HandlerResult:
        read_only = (await self._tools()).get(params.get("name"))
        arguments = params.get("arguments") or {}
        if read_only is None or not isinstance(arguments, dict):
            return await call_next(ctx)  # the SDK answers an unknown tool or bad arguments
        try:
            namespace = await self.access.resolve(arguments.get("namespace"), write=not read_only)
        except BotwireError as exc:
            return error_result(exc)
        with self.access.bound(namespace):
            return await call_next(ctx)

    async def _read(
        self, ctx: ServerRequestContext[Any, Any], params: Any, call_next: CallNext
    ) -> HandlerResult:
        parsed = parse_uri(params.get("uri"))
        if parsed is None:
            return await call_next(ctx)  # not ours: the SDK answers "not found"
        try:
            namespace = await self.access.resolve(parsed[0], write=False)
        except BotwireError as exc:
            raise protocol_error(exc) from None
        with self.access.bound(namespace):
            return await call_next(ctx)

    async def _listen(
        self, ctx: ServerRequestContext[Any, Any], params: Any, call_next: CallNext
    ) -> HandlerResult:
        wanted = (params.get("notifications") or {}).get("resourceSubscriptions") or []
        if not isinstance(wanted, list):
            return await call_next(ctx)  # the SDK refuses malformed params
        if len(wanted) > _resources.MAX_SUBSCRIBED_URIS:
            raise MCPError(
                INVALID_PARAMS,
                f"at most {_resources.MAX_SUBSCRIBED_URIS} resources in one subscription",
            )
        targets: list[tuple[str, str | None, str]] = []
        for uri in wanted:
            parsed = parse_uri(uri)
            if parsed is None:
                continue  # honoured by the SDK, and never fires
            try:
                namespace = await self.access.resolve(parsed[0], write=False)
            except BotwireError as exc:
                raise protocol_error(exc) from None
            targets.append((namespace, parsed[1], uri))
        async with self.watcher.watching(targets):
            if self.access.authorizer is None or not targets:
                return await call_next(ctx)
            return await self._while_allowed(ctx, call_next, {t[0] for t in targets})

    async def _while_allowed(
        self, ctx: ServerRequestContext[Any, Any], call_next: CallNext, namespaces: set[str]
    ) -> HandlerResult:
        """Serve a listen stream while its token still reaches ``namespaces``: a token
        revoked meanwhile ends the stream with its error."""
        refused: list[BotwireError] = []
        result: HandlerResult = None

        async def recheck(group: anyio.abc.TaskGroup) -> None:
            while True:
                await anyio.sleep(RECHECK_SECONDS)
                try:
                    for namespace in namespaces:
                        await self.access.resolve(namespace, write=False)
                except BotwireError as exc:
                    refused.append(exc)
                    group.cancel_scope.cancel()
                    return

        async with anyio.create_task_group() as group:
            group.start_soon(recheck, group)
            result = await call_next(ctx)
            group.cancel_scope.cancel()
        if refused:
            raise protocol_error(refused[0])
        return result


def _caller_of(request: Any) -> Caller:
    """The caller of an HTTP request (its bearer token, its ``?namespace=``); on stdio, nobody."""
    if not isinstance(request, Request):
        return Caller()
    return Caller(request.headers.get("authorization"), request.query_params.get("namespace"))


def serve_stdio(
    url: str | None = None,
    *,
    namespace: str | None = None,
    api_key: str | None = None,
    import_graph: str | None = None,
) -> None:
    """``botwire mcp``: serve MCP over standard input and output until the client leaves.

    The store is ``url`` (else ``$BOTWIRE_URL``, else the embedded file); with
    ``namespace`` every call is fixed to it. ``import_graph`` first imports a
    reference memory server's ``memory.jsonl`` into that namespace.
    """
    holder = Memory(namespace or DEFAULT_NAMESPACE, url=url, api_key=api_key, cache=False)
    try:
        if import_graph is not None:
            graph.import_graph(holder, import_graph)
        server = build_server(Access(holder.store, namespace=namespace))
        server.run("stdio")
    finally:
        holder.close()
