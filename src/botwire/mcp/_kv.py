"""The key-value tools: remember, recall, forget, list_memories, append, increment.

Each tool works on the namespace the middleware resolved and checked for the
call (see ``_access.py``): its ``namespace`` argument is declared here for the
input schema and read there. Results are typed dicts, so each tool publishes an
output schema and answers with structured content. A botwire error becomes a
tool error (``isError``) whose text starts with botwire's code
(``"conflict: ..."``) and whose structured content is ``{"error": {"code",
"message", ...}}``, the body the ``/v1`` API answers with.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable
from typing import Annotated, Any, ParamSpec, TypedDict, TypeVar

from mcp.server.mcpserver import MCPServer
from mcp_types import CallToolResult, ToolAnnotations
from pydantic import Field

from botwire import BotwireError, InvalidRequest
from botwire.ops import Delete, ListKeys, Scan
from botwire.wire import decode_value

from ._access import Access, error_result

MAX_PAGE = 1000

_P = ParamSpec("_P")
_R = TypeVar("_R")

Namespace = Annotated[
    str | None,
    Field(
        description="The namespace (1-128 of A-Z a-z 0-9 . _ - : @). Omit it for the "
        "server's namespace; a server fixed to one refuses any other."
    ),
]
Key = Annotated[str, Field(description="The key: 1-512 bytes of UTF-8, no control characters.")]
IfVersion = Annotated[
    int | None,
    Field(
        description="Compare-and-set: act only if the key's current version is this one "
        "(0: only if the key does not exist); otherwise fail with 'conflict'."
    ),
]


class Remembered(TypedDict):
    namespace: str
    key: str
    version: int


class Recalled(TypedDict):
    namespace: str
    key: str
    found: bool
    value: Any
    version: int | None
    created_at: float | None
    updated_at: float | None
    expires_at: float | None


class Forgotten(TypedDict):
    namespace: str
    key: str
    deleted: bool


class Memories(TypedDict):
    namespace: str
    keys: list[str]
    values: dict[str, Any] | None
    next_cursor: str | None


class Appended(TypedDict):
    namespace: str
    key: str
    length: int


class Incremented(TypedDict):
    namespace: str
    key: str
    value: int | float


def reports_errors(
    fn: Callable[_P, Awaitable[_R]],
) -> Callable[_P, Awaitable[_R | CallToolResult]]:
    """Turn a ``BotwireError`` raised by ``fn`` into a tool error carrying its code.

    (Anything else stays a crash: the SDK answers it without the exception's text.)
    The signature stays ``fn``'s, through ``__wrapped__``, so the schemas do too.
    """

    @functools.wraps(fn)
    async def wrapper(*args: _P.args, **kwargs: _P.kwargs) -> _R | CallToolResult:
        try:
            return await fn(*args, **kwargs)
        except BotwireError as exc:
            return error_result(exc)

    return wrapper


WRITE = ToolAnnotations(read_only_hint=False, destructive_hint=True, idempotent_hint=True)
READ = ToolAnnotations(read_only_hint=True, destructive_hint=False, idempotent_hint=True)
ADD = ToolAnnotations(read_only_hint=False, destructive_hint=False, idempotent_hint=False)


def register(server: MCPServer[Any], access: Access) -> None:
    """Add the six key-value tools to ``server``."""

    @server.tool(annotations=WRITE, title="Remember a value")
    @reports_errors
    async def remember(
        key: Key,
        value: Annotated[Any, Field(description="Any JSON value.")],
        namespace: Namespace = None,
        ttl: Annotated[
            float | None,
            Field(description="Seconds until the key expires; omit: it never does."),
        ] = None,
        if_version: IfVersion = None,
    ) -> Remembered:
        """Store a JSON value under a key, replacing what was there. Returns the new version,
        which `if_version` of a later call can check (compare-and-set)."""
        memory = access.amemory()
        version = await memory.set(key, value, ttl=ttl, if_version=if_version)
        return Remembered(namespace=memory.namespace, key=key, version=version)

    @server.tool(annotations=READ, title="Recall a value")
    @reports_errors
    async def recall(key: Key, namespace: Namespace = None) -> Recalled:
        """Read the value of a key, with its version and times (Unix seconds).
        A missing or expired key answers found=false."""
        memory = access.amemory()
        item = await memory.get_item(key)
        if item is None:
            return Recalled(
                namespace=memory.namespace,
                key=key,
                found=False,
                value=None,
                version=None,
                created_at=None,
                updated_at=None,
                expires_at=None,
            )
        return Recalled(
            namespace=memory.namespace,
            key=key,
            found=True,
            value=item.value,
            version=item.version,
            created_at=item.created_at,
            updated_at=item.updated_at,
            expires_at=item.expires_at,
        )

    @server.tool(
        annotations=ToolAnnotations(
            read_only_hint=False, destructive_hint=True, idempotent_hint=True
        ),
        title="Forget a key",
    )
    @reports_errors
    async def forget(
        key: Key, namespace: Namespace = None, if_version: IfVersion = None
    ) -> Forgotten:
        """Delete a key. deleted=false if it did not exist."""
        memory = access.amemory()
        (deleted,) = await memory.batch([Delete(key, if_version)])
        return Forgotten(namespace=memory.namespace, key=key, deleted=bool(deleted))

    @server.tool(annotations=READ, title="List memories")
    @reports_errors
    async def list_memories(
        namespace: Namespace = None,
        prefix: Annotated[str, Field(description="Only keys starting with this.")] = "",
        cursor: Annotated[
            str | None, Field(description="next_cursor of the previous page; omit for the first.")
        ] = None,
        limit: Annotated[int, Field(description=f"Keys in one page, 1-{MAX_PAGE}.")] = 100,
        include_values: Annotated[bool, Field(description="Also return each key's value.")] = False,
    ) -> Memories:
        """List the live keys of a namespace in order, a page at a time: while next_cursor
        is not null, pass it as cursor for the next page."""
        if type(limit) is not int or not 1 <= limit <= MAX_PAGE:
            raise InvalidRequest(f"limit must be an int from 1 to {MAX_PAGE}, not {limit!r}")
        memory = access.amemory()
        values: dict[str, Any] | None = None
        if include_values:
            (found,) = await memory.batch([Scan(prefix, cursor, limit)])
            keys = [key for key, _ in found]
            values = {key: decode_value(record.data) for key, record in found}
        else:
            (keys,) = await memory.batch([ListKeys(prefix, cursor, limit)])
        return Memories(
            namespace=memory.namespace,
            keys=keys,
            values=values,
            next_cursor=keys[-1] if len(keys) == limit else None,
        )

    @server.tool(annotations=ADD, title="Append to a list")
    @reports_errors
    async def append(
        key: Key,
        items: Annotated[list[Any], Field(description="JSON values to add at the end.")],
        namespace: Namespace = None,
        max_len: Annotated[
            int | None,
            Field(description="Keep only the newest max_len items (a capped log)."),
        ] = None,
        ttl: Annotated[
            float | None,
            Field(
                description="Seconds until the key expires; omit: an existing key keeps its "
                "expiry, a new one never expires."
            ),
        ] = None,
    ) -> Appended:
        """Append items to the list stored under a key, atomically (a missing key starts
        as an empty list; a key holding something else fails with 'wrong_type')."""
        memory = access.amemory()
        if ttl is None:
            length = await memory.append(key, *items, max_len=max_len)
        else:
            length = await memory.append(key, *items, max_len=max_len, ttl=ttl)
        return Appended(namespace=memory.namespace, key=key, length=length)

    @server.tool(annotations=ADD, title="Increment a counter")
    @reports_errors
    async def increment(
        key: Key,
        by: Annotated[int | float, Field(description="How much to add (negative subtracts).")] = 1,
        namespace: Namespace = None,
        ttl: Annotated[
            float | None,
            Field(
                description="Seconds until the key expires; omit: an existing key keeps its "
                "expiry, a new one never expires."
            ),
        ] = None,
    ) -> Incremented:
        """Add to the number stored under a key, atomically (a missing key counts from 0;
        a key holding something else fails with 'wrong_type'). Returns the new value."""
        memory = access.amemory()
        if ttl is None:
            value = await memory.incr(key, by)
        else:
            value = await memory.incr(key, by, ttl=ttl)
        return Incremented(namespace=memory.namespace, key=key, value=value)
