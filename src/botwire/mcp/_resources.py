"""Keys as resources, listed a page at a time, and subscriptions driven by the change feed.

* ``botwire://{namespace}/{key}`` reads a key's value as JSON;
  ``botwire://{namespace}`` reads the namespace's size (keys, bytes, writes today).
* ``resources/list`` pages through the keys of every namespace the caller
  reaches (only the fixed one on a fixed server), 100 at a time, with an opaque
  cursor.
* A ``subscriptions/listen`` stream naming these URIs gets
  ``notifications/resources/updated`` when a key changes (or, for a namespace's
  URI, when any of its keys does), whichever process changed it: one
  :class:`Watcher` per server polls the change feed (``ops.Changes``) of the
  namespaces someone listens to, every ``interval`` seconds, and stops when
  nobody does.
"""

from __future__ import annotations

import base64
import contextlib
import logging
from collections import Counter
from collections.abc import AsyncIterator, Sequence
from typing import Any

import anyio
import anyio.abc
import orjson
from mcp.server.mcpserver import MCPServer, ResourceSecurity
from mcp.server.mcpserver.exceptions import ResourceNotFoundError
from mcp.server.subscriptions import ResourceUpdated, SubscriptionBus
from mcp.shared.exceptions import MCPError
from mcp_types import INVALID_PARAMS, ListResourcesResult, Resource

from botwire import BotwireError
from botwire.ops import Changes, ListKeys
from botwire.stores import namespaces as namespaces_of

from ._access import KEY_TEMPLATE, NAMESPACE_TEMPLATE, Access, key_uri, protocol_error

log = logging.getLogger("botwire.mcp")

LIST_PAGE = 100  # resources in one resources/list answer
NAMESPACES_PAGE = 100  # namespaces looked at by one resources/list answer, at most
FEED_PAGE = 1000  # changes read by one Changes op
FEED_PAGES = 10  # Changes ops per namespace and poll, at most (the rest waits a turn)
POLL_SECONDS = 0.5
MAX_SUBSCRIBED_URIS = 1000  # in one subscriptions/listen request

# Keys are not file paths: "..", "/x" and "C:\\x" are ordinary keys here.
_KEYS_ARE_NOT_PATHS = ResourceSecurity(reject_path_traversal=False, reject_absolute_paths=False)


def register(server: MCPServer[Any], access: Access) -> None:
    """Add the two resource templates to ``server``."""

    @server.resource(
        KEY_TEMPLATE,
        name="key",
        title="A key's value",
        description="The JSON value stored under a key.",
        mime_type="application/json",
        security=_KEYS_ARE_NOT_PATHS,
    )
    async def read_key(namespace: str, key: str) -> str:
        try:
            memory = access.amemory()
            item = await memory.get_item(key)
        except BotwireError as exc:
            raise protocol_error(exc) from None
        if item is None:
            raise ResourceNotFoundError(f"not_found: no key {key!r} in namespace {namespace!r}")
        return orjson.dumps(item.value).decode()

    @server.resource(
        NAMESPACE_TEMPLATE,
        name="namespace",
        title="A namespace",
        description="A namespace's live keys, bytes stored and writes today.",
        mime_type="application/json",
        security=_KEYS_ARE_NOT_PATHS,
    )
    async def read_namespace(namespace: str) -> str:
        try:
            stats = await access.amemory().stats()
        except BotwireError as exc:
            raise protocol_error(exc) from None
        return orjson.dumps({"namespace": namespace, **stats._asdict()}).decode()


# -- resources/list ------------------------------------------------------------------------


def _cursor(namespace: str, key: str | None) -> str:
    return base64.urlsafe_b64encode(orjson.dumps([namespace, key])).decode()


def _position(cursor: Any) -> tuple[str, str | None] | None:
    """The cursor's ``(namespace, last key)``; ``None`` starts at the beginning."""
    if cursor is None:
        return None
    try:
        namespace, key = orjson.loads(base64.urlsafe_b64decode(str(cursor).encode()))
        if isinstance(namespace, str) and (key is None or isinstance(key, str)):
            return namespace, key
    except (ValueError, TypeError):
        pass
    raise MCPError(INVALID_PARAMS, "invalid cursor: pass the nextCursor of a previous answer")


async def list_page(access: Access, cursor: Any) -> ListResourcesResult:
    """One page of keys as resources: the fixed namespace's, else every reachable one's.

    The cursor is ``(namespace, key)``: go on after ``key`` in ``namespace``, or, with
    no key, after the whole namespace.
    """
    try:
        return await _list_page(access, _position(cursor))
    except BotwireError as exc:
        raise protocol_error(exc) from None


async def _list_page(
    access: Access, position: tuple[str, str | None] | None
) -> ListResourcesResult:
    found: list[Resource] = []

    async def take(namespace: str, after: str | None) -> str | None:
        """Add the keys of ``namespace`` after ``after``; the cursor if the page filled."""
        want = LIST_PAGE - len(found)
        (keys,) = await access.amemory(namespace).batch([ListKeys("", after, want)])
        found.extend(
            Resource(
                uri=key_uri(namespace, k),
                name=k,
                title=f"{namespace}/{k}",
                mime_type="application/json",
            )
            for k in keys
        )
        return _cursor(namespace, keys[-1]) if len(keys) == want else None

    fixed = access.fixed or access.caller().fixed
    if fixed:
        namespace = await access.resolve(fixed, write=False)
        after = position[1] if position is not None and position[0] == namespace else None
        return ListResourcesResult(resources=found, next_cursor=await take(namespace, after))
    after_namespace = None
    if position is not None:
        after_namespace, after_key = position
        if after_key is not None and await access.reaches(after_namespace):
            cursor = await take(after_namespace, after_key)
            if cursor is not None:
                return ListResourcesResult(resources=found, next_cursor=cursor)
    else:
        await access.reaches("-")  # a bad token is refused even where there is nothing to list
    page = await anyio.to_thread.run_sync(
        namespaces_of, access.store, "", after_namespace, NAMESPACES_PAGE
    )
    for info in page:
        if await access.reaches(info.namespace):
            cursor = await take(info.namespace, None)
            if cursor is not None:
                return ListResourcesResult(resources=found, next_cursor=cursor)
    more = len(page) == NAMESPACES_PAGE
    next_cursor = _cursor(page[-1].namespace, None) if more else None
    return ListResourcesResult(resources=found, next_cursor=next_cursor)


# -- subscriptions -------------------------------------------------------------------------


class Watcher:
    """Turns the change feeds of watched namespaces into ``ResourceUpdated`` events on ``bus``.

    :meth:`watching` registers the URIs of one listen stream for as long as it lasts.
    The poll runs in ``task_group`` (the server's lifespan) while anything is watched.
    Every URI is published exactly as the client spelled it, since the SDK matches
    a stream's subscriptions by string equality.
    """

    def __init__(
        self, access: Access, bus: SubscriptionBus, interval: float = POLL_SECONDS
    ) -> None:
        self.access = access
        self.bus = bus
        self.interval = interval
        self.task_group: anyio.abc.TaskGroup | None = None
        # namespace -> key (None: the namespace itself) -> URI as spelled -> listeners
        self._watched: dict[str, dict[str | None, Counter[str]]] = {}
        self._cursors: dict[str, int] = {}
        self._lock = anyio.Lock()
        self._polling = False

    @contextlib.asynccontextmanager
    async def watching(self, targets: Sequence[tuple[str, str | None, str]]) -> AsyncIterator[None]:
        """Watch ``(namespace, key or None, uri)`` for the duration of the block."""
        for namespace, key, uri in targets:  # first: a namespace watched keeps its cursor
            self._watched.setdefault(namespace, {}).setdefault(key, Counter())[uri] += 1
        try:
            async with self._lock:
                for namespace in {t[0] for t in targets} - self._cursors.keys():
                    # from the feed's present end: only what changes after the listen is news
                    head = await self._head(namespace)
                    if namespace in self._watched:
                        self._cursors.setdefault(namespace, head)
            if targets:
                self._start()
            yield
        finally:
            for namespace, key, uri in targets:
                self._forget(namespace, key, uri)

    def _forget(self, namespace: str, key: str | None, uri: str) -> None:
        keys = self._watched.get(namespace, {})
        uris = keys.get(key)
        if uris is None:
            return
        uris[uri] -= 1
        if uris[uri] <= 0:
            del uris[uri]
        if not uris:
            del keys[key]
        if not keys:
            self._watched.pop(namespace, None)
            self._cursors.pop(namespace, None)

    def _start(self) -> None:
        if self._polling:
            return
        if self.task_group is None:
            raise RuntimeError("the watcher runs in the server's lifespan, which has not started")
        self._polling = True
        self.task_group.start_soon(self._poll_while_watched)

    async def _poll_while_watched(self) -> None:
        try:
            while self._watched:
                await anyio.sleep(self.interval)
                for namespace in list(self._watched):
                    try:
                        await self._poll(namespace)
                    except BotwireError as exc:  # the store may be back at the next turn
                        log.warning("change feed of %r: %s", namespace, exc)
                    except Exception:  # a bug here must not take the whole server down
                        log.exception("change feed of %r", namespace)
        finally:
            self._polling = False

    async def _head(self, namespace: str) -> int:
        """The newest version in ``namespace``'s change feed (0 if it is empty)."""
        page = await self.access.amemory(namespace).changes(limit=0)  # the cursor of now
        return int(page.next)

    async def _poll(self, namespace: str) -> None:
        cursor = self._cursors.get(namespace)
        if cursor is None:
            return
        memory = self.access.amemory(namespace)
        updated: dict[str, None] = {}  # ordered set
        for _ in range(FEED_PAGES):
            (page,) = await memory.batch([Changes(cursor, FEED_PAGE)])
            keys = self._watched.get(namespace)
            if keys is None:  # nobody watches it any more
                return
            changed = {change.key for change in page.changes}
            if page.reset:  # deletions may be missing: tell everyone to read again
                changed = {key for key in keys if key is not None}
            for key in changed:
                updated.update(dict.fromkeys(keys.get(key, ())))
            if changed:
                updated.update(dict.fromkeys(keys.get(None, ())))
            cursor = page.next
            if len(page.changes) < FEED_PAGE:
                break
        if namespace in self._cursors:
            self._cursors[namespace] = cursor
        for uri in updated:
            await self.bus.publish(ResourceUpdated(uri))
