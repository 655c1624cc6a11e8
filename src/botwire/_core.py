"""What ``Memory`` and ``AsyncMemory`` share: argument checks, op building, result reading.

The shells in ``_memory.py`` only move operations to the store and back; every
decision lives here, once, with no I/O.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Iterable, Mapping
from datetime import timedelta
from typing import Any

from . import _codec, _registry
from ._errors import (
    AnswerTooLarge,
    BotwireError,
    Conflict,
    InvalidRequest,
    NotFound,
    StoreClosed,
    Unavailable,
    ValueNotSerializable,
)
from ._validate import (
    check_count,
    check_cursor,
    check_key,
    check_max_stale,
    check_namespace,
    check_number,
    check_prefix,
    check_ttl,
    check_version,
)
from .ops import (
    KEEP,
    NOT_PROVIDED,
    TTL,
    Append,
    Change,
    ChangePage,
    Changes,
    Clear,
    Count,
    Delete,
    Get,
    Incr,
    Item,
    ListKeys,
    NamespaceStats,
    NotProvided,
    Op,
    Put,
    Record,
    Scan,
    Stats,
    Touch,
    TTLArg,
    TTLOrKeep,
)
from .stores.base import Store
from .stores.base import now as store_now

__all__ = ["NOT_PROVIDED", "MemoryCore", "NotProvided", "Plan"]

_OP_TYPES = frozenset(
    (Get, Put, Delete, Incr, Append, Touch, ListKeys, Scan, Count, Clear, Stats, Changes)
)


UPDATE_ATTEMPTS = 100
WATCH_PAGE = 100  # changes a watcher asks for at once
WATCH_WAIT = 25.0  # seconds one ask may wait for a change (a server holds the request)


class Follower:
    """What a watcher does between two asks (``Memory.watch`` and ``AsyncMemory.watch``).

    ``op`` is the next ask. Past each page the cursor moves to ``page.next``. A
    page too large for the server's answer limit (values of ~1 MiB each) is asked
    again at half the size, growing back once answered. ``Unavailable`` after the
    store has answered once (a restart, a dropped connection) means ask again
    after a pause (0.5 s doubling to 5 s); before that (a wrong URL), it is raised.
    """

    def __init__(self, op: Changes, answered: bool) -> None:
        self.op = op
        self.answered = answered
        self.failures = 0

    def took(self, page: ChangePage) -> list[Change]:
        """The changes of ``page``, and the next ask."""
        self.answered, self.failures = True, 0
        limit = min(WATCH_PAGE, self.op.limit * 2)
        self.op = self.op._replace(since=page.next, limit=limit)
        return page.changes

    def pause_after(self, error: BotwireError) -> float:
        """Seconds to wait before asking again after ``error``; raises it where that is
        not worth it."""
        if isinstance(error, AnswerTooLarge) and self.op.limit > 1:
            self.op = self.op._replace(limit=self.op.limit // 2)
            return 0.0
        if isinstance(error, Unavailable) and self.answered:
            self.failures += 1
            return min(5.0, 0.5 * 2.0 ** min(self.failures - 1, 4))
        raise error


# A plan is a generator that yields op lists and receives their results: the one
# place multi-step logic (``update``) lives, driven by a sync or an async loop.
Plan = Generator[list[Op], list[Any], Any]


class _ClosedStore(Store):
    def batch(self, namespace: str, ops: Any, *, idempotency: Any = None) -> list[Any]:
        raise StoreClosed("this Memory is closed")


_CLOSED = _ClosedStore()


class MemoryCore:
    """State and pure logic of a memory handle bound to one namespace."""

    __slots__ = ("_default_ttl", "_namespace", "_refresh", "_store", "_url")

    def __init__(
        self,
        namespace: str,
        *,
        url: str | Store | None = None,
        api_key: str | None = None,
        default_ttl: float | timedelta | None = None,
        cache: bool = True,
        max_stale: float = 1.0,
        stale_if_error: bool = False,
        timeout: float = 10.0,
        refresh_on_read: bool = False,
    ) -> None:
        self._namespace = check_namespace(namespace)
        self._default_ttl = check_ttl(default_ttl)
        self._refresh = bool(refresh_on_read)
        if isinstance(url, Store):
            self._store, self._url = url, None  # the caller owns it: close() leaves it open
        else:
            settings = _registry.CacheSettings(
                bool(cache), check_max_stale(max_stale), stale_if_error
            )
            self._store = _registry.acquire(url, api_key=api_key, timeout=timeout, cache=settings)
            self._url = _registry.resolve_url(url)

    @property
    def namespace(self) -> str:
        return self._namespace

    @property
    def store(self) -> Store:
        return self._store

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._namespace!r}, url={self._url!r})"

    def _release(self) -> Store | None:
        """Stop using the store; the store to close if this was its last user."""
        store, self._store = self._store, _CLOSED
        if self._url is not None and store is not _CLOSED and _registry.release(store):
            return store
        return None

    # -- building operations --------------------------------------------------------

    def _ttl(self, ttl: Any) -> TTL:
        return self._default_ttl if ttl is NOT_PROVIDED else check_ttl(ttl)

    def _keep_ttl(self, ttl: Any) -> tuple[TTLOrKeep, TTL]:
        """``(ttl, new_ttl)`` for incr/append: by default a live key keeps its expiry."""
        if ttl is NOT_PROVIDED:
            return KEEP, self._default_ttl
        return check_ttl(ttl), None

    def _get_op(self, key: str, fresh: bool = False) -> Get:
        return Get(check_key(key), self._refresh, fresh)

    def _put_op(self, key: str, value: Any, ttl: Any, if_version: Any = None) -> Put:
        return Put(check_key(key), _codec.encode(value), self._ttl(ttl), check_version(if_version))

    def _get_many_ops(self, keys: Iterable[str], fresh: bool = False) -> list[Op]:
        return [self._get_op(key, fresh) for key in keys]

    def _set_many_ops(self, mapping: Mapping[str, Any], ttl: Any) -> list[Op]:
        ttl = self._ttl(ttl)
        return [Put(check_key(k), _codec.encode(v), ttl) for k, v in mapping.items()]

    def _delete_many_ops(self, keys: Iterable[str]) -> list[Op]:
        return [Delete(check_key(key)) for key in keys]

    def _incr_op(self, key: str, by: Any, ttl: Any) -> Incr:
        return Incr(check_key(key), check_number(by), *self._keep_ttl(ttl))

    def _append_op(self, key: str, items: tuple[Any, ...], max_len: Any, ttl: Any) -> Append:
        return Append(
            check_key(key),
            _codec.encode(list(items)),
            check_count(max_len, "max_len"),
            *self._keep_ttl(ttl),
        )

    def _touch_op(self, key: str, ttl: Any) -> Touch:
        return Touch(check_key(key), check_ttl(ttl))

    @staticmethod
    def _list_op(prefix: str, after: str | None, limit: Any) -> ListKeys:
        return ListKeys(check_prefix(prefix), after, check_count(limit, "limit"))

    # -- reading results ------------------------------------------------------------

    @staticmethod
    def _value(record: Record | None, default: Any) -> Any:
        return default if record is None else _codec.decode(record.data)

    @staticmethod
    def _item(key: str, record: Record | None) -> Item | None:
        if record is None:
            return None
        return Item(key, _codec.decode(record.data), *record[1:])

    def _remaining(self, key: str, record: Record | None) -> float | None:
        if record is None:
            raise NotFound(f"key {key!r} does not exist")
        if record.expires_at is None:
            return None
        return max(0.0, record.expires_at - store_now(self._store))

    @staticmethod
    def _found(ops: list[Op], records: list[Any]) -> dict[str, Any]:
        return {
            op.key: _codec.decode(r.data)  # type: ignore[union-attr]
            for op, r in zip(ops, records, strict=True)
            if r is not None
        }

    @staticmethod
    def _versions(ops: list[Op], versions: list[Any]) -> dict[str, int]:
        return {op.key: v for op, v in zip(ops, versions, strict=True)}  # type: ignore[union-attr]

    # -- multi-step plans -----------------------------------------------------------

    def _update_plan(self, key: str, fn: Callable[[Any], Any], default: Any, ttl: Any) -> Plan:
        get = Get(check_key(key))
        ttl = self._ttl(ttl)
        for _ in range(UPDATE_ATTEMPTS):
            (record,) = yield [get]
            value = fn(default if record is None else _codec.decode(record.data))
            put = Put(key, _codec.encode(value), ttl, 0 if record is None else record.version)
            try:
                yield [put]
            except Conflict:
                continue  # someone wrote between our read and write: read again
            return value
        raise Conflict(f"update of {key!r} lost {UPDATE_ATTEMPTS} races in a row", keys=[key])

    # -- ergonomics -----------------------------------------------------------------

    def remember(
        self,
        key: str,
        *,
        into: str | None = None,
        default: Any = None,
        ttl: TTLArg = NOT_PROVIDED,
        save: str = "state",
        on_conflict: str = "raise",
    ) -> Callable[[Any], Any]:
        """Decorator: load ``key`` into parameter ``into`` before each call, save it after.

        ``key`` is a template filled from the call's arguments (``"history:{user_id}"``,
        ``"{user.id}"``); ``into`` defaults to ``key`` when that is a plain name.
        A missing key gives ``default`` (called if callable: ``default=list``).
        After a normal return the state (``save="state"``, mutated in place) or
        the return value (``save="result"``) is written if it changed, guarded by
        the version loaded: a concurrent change raises ``Conflict``, or re-runs
        the call (``on_conflict="retry"``), or is overwritten (``"overwrite"``).
        If the function raises, nothing is written. Works on sync and async
        functions, methods, classmethods and staticmethods; the wrapper adds
        ``.key_for(...)``, ``.clear(...)`` and ``.memory``.
        """
        from ._remember import remember

        return remember(
            lambda: self,
            key,
            into=into,
            default=default,
            ttl=ttl,
            save=save,
            on_conflict=on_conflict,
        )

    @staticmethod
    def _clear_op(prefix: str = "") -> Clear:
        return Clear(check_prefix(prefix))

    @staticmethod
    def _count_op(prefix: str = "") -> Count:
        return Count(check_prefix(prefix))

    @staticmethod
    def _scan_op(prefix: str, limit: int | None) -> Scan:
        return Scan(check_prefix(prefix), None, check_count(limit, "limit"))

    @staticmethod
    def _stats_op() -> Stats:
        return Stats()

    @staticmethod
    def _changes_op(since: Any, prefix: str, limit: Any, values: Any) -> Changes:
        if limit != 0 or type(limit) is not int:
            check_count(limit, "limit")
        if type(values) is not bool:
            raise InvalidRequest(f"values must be True or False, not {values!r:.40}")
        return Changes(check_cursor(since), limit, check_prefix(prefix), values)

    @staticmethod
    def _follower(op: Changes, answered: bool) -> Follower:
        return Follower(op, answered)

    @staticmethod
    def _checked(ops: Iterable[Op]) -> list[Op]:
        """``ops`` if each is a valid operation (the checks the wire applies), else raise."""
        from .wire import MAX_BATCH, op_from_json, op_to_json

        checked = list(ops)
        if len(checked) > MAX_BATCH:
            raise InvalidRequest(f"a batch holds at most {MAX_BATCH} ops, not {len(checked)}")
        for op in checked:
            if type(op) not in _OP_TYPES:
                raise InvalidRequest(f"{op!r} is not an operation of botwire.ops")
            try:  # names, numbers, TTLs, values: exactly as for a request
                op_from_json(op_to_json(op))
            except BotwireError:
                raise
            except (ValueError, TypeError, AttributeError) as exc:  # bytes that are not JSON
                raise ValueNotSerializable(f"{op!r:.80}: {exc}") from None
        return checked

    @classmethod
    def _items(cls, found: list[tuple[str, Record]]) -> list[Item]:
        return [item for key, record in found if (item := cls._item(key, record)) is not None]

    @staticmethod
    def _stats(found: NamespaceStats) -> NamespaceStats:
        return found
