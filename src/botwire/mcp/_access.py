"""Who the caller is, which namespace a call uses, and botwire errors as MCP errors.

Every tool call, resource read and subscription is resolved to one namespace
here, by :meth:`Access.resolve`, from the call's ``namespace`` argument (or the
namespace in a resource URI), the namespace the server is fixed to (``botwire
mcp --namespace``, or ``?namespace=`` on the ``/mcp`` URL) and the default.
Over HTTP the bearer token of that very request is then checked against it by
the server's own ``authorize``, exactly as for ``/v1``; over stdio any
namespace is reached (the store itself may still refuse: a remote store checks
its API key).

The middleware (``server.py``) resolves before the handler runs and binds the
result to the request's context, so a tool reaches its namespace through
:meth:`Access.memory` / :meth:`Access.amemory` and cannot skip the check.
"""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from mcp.shared.exceptions import MCPError
from mcp.shared.uri_template import UriTemplate
from mcp_types import INTERNAL_ERROR, INVALID_PARAMS, CallToolResult, TextContent

from botwire import AsyncMemory, BotwireError, Forbidden, InvalidName, Memory
from botwire.stores import Store
from botwire.wire import check_namespace

DEFAULT_NAMESPACE = "mcp"
"""The namespace of a call that names none, on a server not fixed to one."""

KEY_TEMPLATE = "botwire://{namespace}/{+key}"
NAMESPACE_TEMPLATE = "botwire://{namespace}"
_KEY = UriTemplate.parse(KEY_TEMPLATE)
_NAMESPACE = UriTemplate.parse(NAMESPACE_TEMPLATE)

Authorizer = Callable[[str | None, str, bool], Awaitable[None]]
"""``(authorization header, namespace, write)``: raises ``Unauthorized``/``Forbidden``."""


@dataclass(frozen=True)
class Caller:
    """What one request carries: its ``Authorization`` header and the namespace it is fixed to."""

    authorization: str | None = None
    fixed: str | None = None


_NOBODY = Caller()  # stdio: no header, no namespace of its own
_caller: ContextVar[Caller | None] = ContextVar("botwire_mcp_caller", default=None)
_bound: ContextVar[str | None] = ContextVar("botwire_mcp_namespace", default=None)


class Access:
    """The store a server uses, and the one place a call's namespace is decided and checked.

    ``namespace``: fix the server to it (a call naming another gets ``forbidden``).
    ``authorizer``: over HTTP, the server's token check; ``None`` reaches any namespace.
    ``store`` may be given later (a server mounted in ``botwire serve`` opens its store
    in its lifespan).
    """

    def __init__(
        self,
        store: Store | None = None,
        *,
        namespace: str | None = None,
        authorizer: Authorizer | None = None,
    ) -> None:
        self._store = store
        self.fixed = None if namespace is None else check_namespace(namespace)
        self.authorizer = authorizer

    @property
    def store(self) -> Store:
        if self._store is None:
            raise RuntimeError("the MCP server's store is not open yet")
        return self._store

    @store.setter
    def store(self, store: Store | None) -> None:
        self._store = store

    @staticmethod
    def caller() -> Caller:
        return _caller.get() or _NOBODY

    @contextlib.contextmanager
    def calling(self, caller: Caller) -> Iterator[None]:
        """Make ``caller`` the caller of the current request (the middleware does)."""
        token = _caller.set(caller)
        try:
            yield
        finally:
            _caller.reset(token)

    async def resolve(self, requested: Any, *, write: bool) -> str:
        """The namespace a call uses, once the caller is allowed to read (or ``write``) it.

        Raises ``InvalidName``, ``Forbidden`` (outside the fixed namespace or the token's
        patterns) or ``Unauthorized``.
        """
        caller = self.caller()
        fixed = self.fixed or caller.fixed or None
        if requested is not None and not isinstance(requested, str):
            raise InvalidName("namespace must be a string")
        namespace = check_namespace(requested or fixed or DEFAULT_NAMESPACE)
        if fixed is not None and namespace != fixed:
            raise Forbidden(
                f"calls here are fixed to namespace {fixed!r} (botwire mcp --namespace, or "
                f"?namespace= on the /mcp URL); {namespace!r} is out of reach"
            )
        if self.authorizer is not None:
            await self.authorizer(caller.authorization, namespace, write)
        return namespace

    async def reaches(self, namespace: str) -> bool:
        """Whether the caller may read ``namespace`` (``Unauthorized`` still raises)."""
        try:
            await self.resolve(namespace, write=False)
        except Forbidden:
            return False
        return True

    @contextlib.contextmanager
    def bound(self, namespace: str) -> Iterator[None]:
        """Bind the namespace :meth:`resolve` gave to the current call."""
        token = _bound.set(namespace)
        try:
            yield
        finally:
            _bound.reset(token)

    @staticmethod
    def namespace() -> str:
        """The current call's namespace, resolved and checked by the middleware."""
        namespace = _bound.get()
        if namespace is None:
            raise RuntimeError("no namespace was resolved for this call")
        return namespace

    def amemory(self, namespace: str | None = None) -> AsyncMemory:
        """An ``AsyncMemory`` on the current call's namespace (or ``namespace``)."""
        return AsyncMemory(namespace or self.namespace(), url=self.store)

    def memory(self) -> Memory:
        """A ``Memory`` on the current call's namespace: what the graph tools are given."""
        return Memory(self.namespace(), url=self.store)


# -- resource URIs ----------------------------------------------------------------------


def key_uri(namespace: str, key: str) -> str:
    """``botwire://{namespace}/{key}``, escaped so that :func:`parse_uri` gives both back."""
    return f"botwire://{quote(namespace, safe=':@')}/{quote(key, safe='/:@')}"


def namespace_uri(namespace: str) -> str:
    return f"botwire://{quote(namespace, safe=':@')}"


def parse_uri(uri: Any) -> tuple[str, str | None] | None:
    """``(namespace, key)`` of a key's URI, ``(namespace, None)`` of a namespace's, else
    ``None`` (not a botwire URI). Names are not checked here."""
    if not isinstance(uri, str):
        return None
    found = _KEY.match(uri)
    if found is not None:
        return str(found["namespace"]), str(found["key"])
    found = _NAMESPACE.match(uri)
    if found is not None:
        return str(found["namespace"]), None
    return None


# -- errors -------------------------------------------------------------------------------


def error_text(exc: BotwireError) -> str:
    """``"<code>: <message>"``: what a model reads."""
    return f"{exc.code}: {exc.message}"


def error_result(exc: BotwireError) -> CallToolResult:
    """A tool error (``isError``) carrying botwire's error object as structured content."""
    return CallToolResult(
        content=[TextContent(type="text", text=error_text(exc))],
        structured_content={"error": exc.to_dict()},
        is_error=True,
    )


def protocol_error(exc: BotwireError) -> MCPError:
    """A JSON-RPC error for a resource or subscription request; ``data`` is botwire's error."""
    code = INTERNAL_ERROR if exc.status >= 500 else INVALID_PARAMS
    return MCPError(code, error_text(exc), data=exc.to_dict())
