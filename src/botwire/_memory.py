"""``Memory`` and ``AsyncMemory``: thin shells that move operations to a store and back.

All checks and decisions live in :mod:`botwire._core`; each method here is one
round trip (``update`` a few, driven by a plan).
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from datetime import timedelta
from types import TracebackType
from typing import Any

from . import _codec
from ._core import NOT_PROVIDED, WATCH_PAGE, WATCH_WAIT, MemoryCore, Plan
from ._errors import BotwireError, Conflict, NotFound
from ._session import AsyncSession, Session
from ._validate import check_key
from .ops import Change, ChangePage, Changes, Get, Item, NamespaceStats, Op, TTLArg
from .stores._backoff import after_lost_race
from .stores.base import aclose
from .stores.watch import await_changes, wait_changes

_PAGE = 1000


class Memory(MemoryCore):
    """Persistent key-value memory for one namespace.

    ``Memory("my-agent")`` stores in an embedded SQLite file (``$BOTWIRE_HOME``
    or the user data directory); ``url=`` or ``$BOTWIRE_URL`` picks another
    store (``sqlite:///path.db``, ``memory://``). Values are JSON; keys are
    strings of 1-512 UTF-8 bytes. Every method checks its arguments before any
    I/O and raises a :class:`~botwire.BotwireError` subclass on bad input.

    ``ttl`` (seconds) defaults to ``default_ttl``; pass ``ttl=None`` for a key
    that never expires. With ``refresh_on_read=True`` each read of a key with a
    TTL restarts its clock (sliding expiry). ``timeout`` bounds how long a call
    waits for a locked file (or a server) before :class:`~botwire.Unavailable`.
    ``url`` may also be a :class:`~botwire.stores.Store` instance, which
    ``close()`` leaves open.

    Remote stores (``http://``, ``https://``) send ``api_key`` (or
    ``$BOTWIRE_API_KEY``) as a bearer token and keep a read cache on disk
    (``cache=False`` turns it off): a value is served from it for up to
    ``max_stale`` seconds, then revalidated; ``stale_if_error=True`` serves
    cached values, with a :class:`~botwire.StaleReadWarning`, while the server
    is unreachable. The embedded stores ignore these four.

    All ``Memory`` objects on one URL in a process share one store, so creating
    one per user costs microseconds.
    """

    __slots__ = ()

    def _one(self, op: Op) -> Any:
        return self._store.batch(self._namespace, (op,))[0]

    def _run(self, plan: Plan) -> Any:
        policy = after_lost_race()
        try:
            ops = next(plan)
            while True:
                try:
                    results = self._store.batch(self._namespace, ops)
                except BotwireError as exc:
                    if isinstance(exc, Conflict):  # a lost race: let the winners finish
                        time.sleep(policy.pause() or 0.0)
                    ops = plan.throw(exc)
                else:
                    ops = plan.send(results)
        except StopIteration as done:
            return done.value

    # -- reads ----------------------------------------------------------------------

    def get(self, key: str, default: Any = None, *, fresh: bool = False) -> Any:
        """The value of ``key``, or ``default`` if it is missing or expired.

        A stored ``None`` is returned as ``None``, not as ``default``. On a remote
        store ``fresh=True`` asks the server even if the read cache holds the key.
        """
        # The hottest call: the steps of _one/_get_op/_value inlined.
        op = Get(check_key(key), self._refresh, fresh)
        record = self._store.batch(self._namespace, (op,))[0]
        return default if record is None else _codec.decode(record.data)

    def get_item(self, key: str, *, fresh: bool = False) -> Item | None:
        """The value with its version and timestamps, or ``None``."""
        return self._item(key, self._one(self._get_op(key, fresh)))

    def exists(self, key: str) -> bool:
        """Whether ``key`` is live (present and not expired)."""
        return self._one(self._get_op(key)) is not None

    def get_many(self, keys: Iterable[str], *, fresh: bool = False) -> dict[str, Any]:
        """The live keys among ``keys`` with their values, read in one snapshot.

        From a read cache, each value is at most ``max_stale`` seconds old.
        """
        ops = self._get_many_ops(keys, fresh)
        return self._found(ops, self._store.batch(self._namespace, ops)) if ops else {}

    def ttl(self, key: str) -> float | None:
        """Seconds until ``key`` expires, ``None`` if it never does; ``NotFound`` if missing."""
        return self._remaining(key, self._one(self._get_op(key)))

    def list_keys(self, prefix: str = "", *, limit: int | None = None) -> list[str]:
        """Live keys starting with ``prefix``, sorted by code point, at most ``limit``."""
        return self._one(self._list_op(prefix, None, limit))  # type: ignore[no-any-return]

    def iter_keys(self, prefix: str = "", *, page_size: int = _PAGE) -> Iterator[str]:
        """Like :meth:`list_keys`, fetched lazily ``page_size`` keys at a time.

        Each page is a fresh read: keys written after iteration starts may or may
        not appear, but no live key that stays is skipped or repeated.
        """
        after = None
        while True:
            page = self._one(self._list_op(prefix, after, page_size))
            yield from page
            if len(page) < page_size:
                return
            after = page[-1]

    # -- writes ---------------------------------------------------------------------

    def set(
        self, key: str, value: Any, *, ttl: TTLArg = NOT_PROVIDED, if_version: int | None = None
    ) -> int:
        """Store ``value`` under ``key``; return its new version.

        ``if_version=v`` writes only if the live version is ``v`` (``0``: only if
        absent), else raises :class:`~botwire.Conflict`.
        """
        return self._one(self._put_op(key, value, ttl, if_version))  # type: ignore[no-any-return]

    def set_many(self, mapping: Mapping[str, Any], *, ttl: TTLArg = NOT_PROVIDED) -> dict[str, int]:
        """Store every pair atomically (all or none); return the new versions."""
        ops = self._set_many_ops(mapping, ttl)
        return self._versions(ops, self._store.batch(self._namespace, ops)) if ops else {}

    def delete(self, key: str) -> bool:
        """Remove ``key``; ``True`` if it was live."""
        return self._one(self._delete_many_ops((key,))[0])  # type: ignore[no-any-return]

    def delete_many(self, keys: Iterable[str]) -> int:
        """Remove ``keys`` atomically; return how many were live."""
        ops = self._delete_many_ops(keys)
        return sum(self._store.batch(self._namespace, ops)) if ops else 0

    def incr(self, key: str, by: int | float = 1, *, ttl: TTLArg = NOT_PROVIDED) -> int | float:
        """Add ``by`` atomically (a missing key starts at 0); return the new number.

        A live key keeps its expiry unless ``ttl`` is given; a new key gets
        ``ttl`` or ``default_ttl``. :class:`~botwire.WrongType` if not a number.
        """
        return self._one(self._incr_op(key, by, ttl))  # type: ignore[no-any-return]

    def append(
        self, key: str, *items: Any, max_len: int | None = None, ttl: TTLArg = NOT_PROVIDED
    ) -> int:
        """Append ``items`` to the list at ``key`` atomically; return its new length.

        ``max_len`` keeps only the newest items. Expiry as in :meth:`incr`.
        """
        return self._one(self._append_op(key, items, max_len, ttl))  # type: ignore[no-any-return]

    def update(
        self, key: str, fn: Callable[[Any], Any], default: Any = None, *, ttl: TTLArg = NOT_PROVIDED
    ) -> Any:
        """Set ``key`` to ``fn(current or default)`` without losing a concurrent write.

        Compare-and-set: if another writer changed the key in between, ``fn`` is
        called again on the fresh value (up to 100 times, then ``Conflict``).
        ``fn`` must not mutate its argument in place in a way it relies on.
        """
        return self._run(self._update_plan(key, fn, default, ttl))

    def touch(self, key: str, ttl: float | timedelta | None) -> bool:
        """Restart ``key``'s expiry at ``ttl`` seconds from now (``None``: never)."""
        return self._one(self._touch_op(key, ttl))  # type: ignore[no-any-return]

    def clear(self, prefix: str = "") -> int:
        """Remove every key of the namespace (that starts with ``prefix``); how many were live."""
        return self._one(self._clear_op(prefix))  # type: ignore[no-any-return]

    # -- the namespace and the op vocabulary ----------------------------------------

    def scan(self, prefix: str = "", *, limit: int | None = None) -> list[Item]:
        """The live items whose keys start with ``prefix``, sorted, in one round trip."""
        return self._items(self._one(self._scan_op(prefix, limit)))

    def count(self, prefix: str = "") -> int:
        """How many live keys start with ``prefix``."""
        return self._one(self._count_op(prefix))  # type: ignore[no-any-return]

    def stats(self) -> NamespaceStats:
        """Live keys, bytes stored (key + JSON value) and writes today of this namespace."""
        return self._stats(self._one(self._stats_op()))

    # -- following changes -----------------------------------------------------------

    def changes(
        self, since: int = 0, prefix: str = "", *, limit: int = 1000, values: bool = False
    ) -> ChangePage:
        """A page of the namespace's changes after the cursor ``since``, oldest first.

        Each :class:`~botwire.ops.Change` is a key at its newest version, or its
        deletion (an expired key shows as deleted once swept); with
        ``values=True`` a live one carries its value. Ask again with
        ``since=page.next`` for the next page: nothing is skipped or repeated.
        ``since=0`` starts at the oldest change kept (deletions are kept 7 days;
        ``page.reset`` says some may be gone); ``limit=0`` returns no changes and
        the cursor of now.
        """
        return self._one(self._changes_op(since, prefix, limit, values))  # type: ignore[no-any-return]

    def watch(
        self, prefix: str = "", since: int | None = None, *, values: bool = False
    ) -> Iterator[Change]:
        """Each change to keys starting with ``prefix``, as it happens, for ever.

        ``since=None`` follows changes made after this call; ``since=0`` first
        replays the oldest change the store keeps onwards; a change's
        ``version`` is the cursor to resume from. Embedded stores wake at once
        for this process's writes and within 0.2 s for other processes'; a
        server holds each request until a change comes (long polling). Once the
        store has answered, a watcher rides out a restart or a dropped
        connection, resuming from its cursor; a store that never answered (a
        wrong URL) raises :class:`~botwire.Unavailable`. Pages too large for a
        server's answer limit are asked again smaller. Stop by breaking out of
        the loop (or ``close()`` on the iterator).
        """
        op = self._changes_op(0 if since is None else since, prefix, WATCH_PAGE, values)
        if since is None:
            op = op._replace(since=self.changes(0, prefix, limit=0).next)
        return self._follow(op, answered=since is None)

    def _follow(self, op: Changes, answered: bool) -> Iterator[Change]:
        follower = self._follower(op, answered)
        while True:
            try:
                page = wait_changes(self._store, self._namespace, follower.op, WATCH_WAIT)
            except BotwireError as exc:
                time.sleep(follower.pause_after(exc))
                continue
            yield from follower.took(page)

    def batch(self, ops: Iterable[Op]) -> list[Any]:
        """Apply the operations of :mod:`botwire.ops` atomically; one result per op.

        All or nothing: if a ``Put``/``Delete`` version check fails, nothing is
        applied and :class:`~botwire.Conflict` names every failing key. Ops are
        checked as the server checks a request (``InvalidName``, ``InvalidRequest``)
        before any I/O. Values travel as JSON bytes (``botwire.wire.encode_value``);
        results are the store's own (``Record`` for a ``Get``...): see
        :mod:`botwire.ops`.
        """
        checked = self._checked(ops)
        return self._store.batch(self._namespace, checked) if checked else []

    # -- mapping protocol -----------------------------------------------------------

    def __getitem__(self, key: str) -> Any:
        record = self._one(self._get_op(key))
        if record is None:
            raise NotFound(f"key {key!r} does not exist")
        return self._value(record, None)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise NotFound(f"key {key!r} does not exist")

    def __contains__(self, key: object) -> bool:
        return self.exists(key)  # type: ignore[arg-type]

    def __len__(self) -> int:
        return self._one(self._count_op())  # type: ignore[no-any-return]

    def __iter__(self) -> Iterator[str]:
        return self.iter_keys()

    def session(
        self,
        *,
        prefetch: str | None = None,
        keys: Iterable[str] | None = None,
        ttl: TTLArg = NOT_PROVIDED,
    ) -> Session:
        """A unit of work: ``with memory.session(prefetch="user-42:") as s: ...``.

        Entering loads the keys starting with ``prefetch`` and those in ``keys``
        in one round trip; other keys load on first use. Reads and writes are
        local; a clean exit writes every changed key in one atomic batch guarded
        by the versions read (``Conflict``, naming the keys, if anyone changed
        them; then nothing is written); an exception writes nothing. Written
        keys get ``ttl`` if given, else keep their expiry (new keys:
        ``default_ttl``). See :mod:`botwire._session` for nesting.
        """
        return Session(self, prefetch, keys, ttl)

    # -- life cycle -----------------------------------------------------------------

    def close(self) -> None:
        """Stop using the store; the last ``Memory`` on a URL closes it. Idempotent."""
        store = self._release()
        if store is not None:
            store.close()

    def __enter__(self) -> Memory:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncMemory(MemoryCore):
    """:class:`Memory` with ``await``: the same methods, checks and guarantees."""

    __slots__ = ()

    async def _one(self, op: Op) -> Any:
        return (await self._store.abatch(self._namespace, (op,)))[0]

    async def _run(self, plan: Plan) -> Any:
        policy = after_lost_race()
        try:
            ops = next(plan)
            while True:
                try:
                    results = await self._store.abatch(self._namespace, ops)
                except BotwireError as exc:
                    if isinstance(exc, Conflict):  # a lost race: let the winners finish
                        await _asleep(policy.pause() or 0.0)
                    ops = plan.throw(exc)
                else:
                    ops = plan.send(results)
        except StopIteration as done:
            return done.value

    async def get(self, key: str, default: Any = None, *, fresh: bool = False) -> Any:
        """See :meth:`Memory.get`."""
        return self._value(await self._one(self._get_op(key, fresh)), default)

    async def get_item(self, key: str, *, fresh: bool = False) -> Item | None:
        """See :meth:`Memory.get_item`."""
        return self._item(key, await self._one(self._get_op(key, fresh)))

    async def exists(self, key: str) -> bool:
        """See :meth:`Memory.exists`."""
        return await self._one(self._get_op(key)) is not None

    async def get_many(self, keys: Iterable[str], *, fresh: bool = False) -> dict[str, Any]:
        """See :meth:`Memory.get_many`."""
        ops = self._get_many_ops(keys, fresh)
        return self._found(ops, await self._store.abatch(self._namespace, ops)) if ops else {}

    async def ttl(self, key: str) -> float | None:
        """See :meth:`Memory.ttl`."""
        return self._remaining(key, await self._one(self._get_op(key)))

    async def list_keys(self, prefix: str = "", *, limit: int | None = None) -> list[str]:
        """See :meth:`Memory.list_keys`."""
        return await self._one(self._list_op(prefix, None, limit))  # type: ignore[no-any-return]

    async def iter_keys(self, prefix: str = "", *, page_size: int = _PAGE) -> AsyncIterator[str]:
        """See :meth:`Memory.iter_keys`."""
        after = None
        while True:
            page = await self._one(self._list_op(prefix, after, page_size))
            for key in page:
                yield key
            if len(page) < page_size:
                return
            after = page[-1]

    async def set(
        self, key: str, value: Any, *, ttl: TTLArg = NOT_PROVIDED, if_version: int | None = None
    ) -> int:
        """See :meth:`Memory.set`."""
        return await self._one(self._put_op(key, value, ttl, if_version))  # type: ignore[no-any-return]

    async def set_many(
        self, mapping: Mapping[str, Any], *, ttl: TTLArg = NOT_PROVIDED
    ) -> dict[str, int]:
        """See :meth:`Memory.set_many`."""
        ops = self._set_many_ops(mapping, ttl)
        return self._versions(ops, await self._store.abatch(self._namespace, ops)) if ops else {}

    async def delete(self, key: str) -> bool:
        """See :meth:`Memory.delete`."""
        return await self._one(self._delete_many_ops((key,))[0])  # type: ignore[no-any-return]

    async def delete_many(self, keys: Iterable[str]) -> int:
        """See :meth:`Memory.delete_many`."""
        ops = self._delete_many_ops(keys)
        return sum(await self._store.abatch(self._namespace, ops)) if ops else 0

    async def incr(
        self, key: str, by: int | float = 1, *, ttl: TTLArg = NOT_PROVIDED
    ) -> int | float:
        """See :meth:`Memory.incr`."""
        return await self._one(self._incr_op(key, by, ttl))  # type: ignore[no-any-return]

    async def append(
        self, key: str, *items: Any, max_len: int | None = None, ttl: TTLArg = NOT_PROVIDED
    ) -> int:
        """See :meth:`Memory.append`."""
        return await self._one(self._append_op(key, items, max_len, ttl))  # type: ignore[no-any-return]

    async def update(
        self, key: str, fn: Callable[[Any], Any], default: Any = None, *, ttl: TTLArg = NOT_PROVIDED
    ) -> Any:
        """See :meth:`Memory.update`."""
        return await self._run(self._update_plan(key, fn, default, ttl))

    async def touch(self, key: str, ttl: float | timedelta | None) -> bool:
        """See :meth:`Memory.touch`."""
        return await self._one(self._touch_op(key, ttl))  # type: ignore[no-any-return]

    async def clear(self, prefix: str = "") -> int:
        """See :meth:`Memory.clear`."""
        return await self._one(self._clear_op(prefix))  # type: ignore[no-any-return]

    async def scan(self, prefix: str = "", *, limit: int | None = None) -> list[Item]:
        """See :meth:`Memory.scan`."""
        return self._items(await self._one(self._scan_op(prefix, limit)))

    async def count(self, prefix: str = "") -> int:
        """See :meth:`Memory.count`."""
        return await self._one(self._count_op(prefix))  # type: ignore[no-any-return]

    async def stats(self) -> NamespaceStats:
        """See :meth:`Memory.stats`."""
        return self._stats(await self._one(self._stats_op()))

    async def changes(
        self, since: int = 0, prefix: str = "", *, limit: int = 1000, values: bool = False
    ) -> ChangePage:
        """See :meth:`Memory.changes`."""
        return await self._one(self._changes_op(since, prefix, limit, values))  # type: ignore[no-any-return]

    def watch(
        self, prefix: str = "", since: int | None = None, *, values: bool = False
    ) -> AsyncIterator[Change]:
        """See :meth:`Memory.watch` (``async for``). With ``since=None`` it follows the
        changes made after the loop's first step (an async call cannot ask the store
        before it is awaited)."""
        op = self._changes_op(0 if since is None else since, prefix, WATCH_PAGE, values)
        return self._follow(op, since is None)

    async def _follow(self, op: Changes, from_now: bool) -> AsyncIterator[Change]:
        if from_now:
            op = op._replace(since=(await self.changes(0, op.prefix, limit=0)).next)
        follower = self._follower(op, answered=from_now)
        while True:
            try:
                page = await await_changes(self._store, self._namespace, follower.op, WATCH_WAIT)
            except BotwireError as exc:
                await _asleep(follower.pause_after(exc))
                continue
            for change in follower.took(page):
                yield change

    async def batch(self, ops: Iterable[Op]) -> list[Any]:
        """See :meth:`Memory.batch`."""
        checked = self._checked(ops)
        return await self._store.abatch(self._namespace, checked) if checked else []

    def __aiter__(self) -> AsyncIterator[str]:
        return self.iter_keys()

    def session(
        self,
        *,
        prefetch: str | None = None,
        keys: Iterable[str] | None = None,
        ttl: TTLArg = NOT_PROVIDED,
    ) -> AsyncSession:
        """See :meth:`Memory.session` (``async with``; a key must be loaded before it is read)."""
        return AsyncSession(self, prefetch, keys, ttl)

    async def close(self) -> None:
        """See :meth:`Memory.close`."""
        store = self._release()
        if store is not None:
            await aclose(store)

    async def __aenter__(self) -> AsyncMemory:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()


async def _asleep(seconds: float) -> None:
    import asyncio  # ~45 ms to import: only for async users

    await asyncio.sleep(seconds)
