"""The one I/O boundary: a store applies operations to a namespace atomically."""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

from .._errors import BotwireError, StoreError
from ..ops import Get, Idempotency, NamespaceInfo, Op, Record


class _Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


UNCHANGED = _Unchanged.UNCHANGED
"""What :meth:`Store.revalidate` returns when the key still has the version asked about."""


DAY = 86400.0  # write limits count per UTC day


def utc_day(now: float) -> int:
    """The UTC day number of Unix time ``now`` (a write limit's window)."""
    return int(now // DAY)


GroupItem = tuple[str, Sequence[Op], Idempotency | None]
"""One batch of a group commit: its namespace, its ops, and its idempotency key if any."""


class Limits(NamedTuple):
    """Per-namespace limits a store enforces inside the write's own transaction (0 = off)."""

    writes_per_day: int = 0  # batches with a Put, Incr, Append or successful Touch, per UTC day
    max_bytes: int = 0  # UTF-8 key + JSON value, summed over the namespace
    max_value_bytes: int = 0  # one stored value
    max_answer_bytes: int = 0  # the values one batch may return (Get and Scan results)

    @property
    def active(self) -> bool:
        return bool(
            self.writes_per_day or self.max_bytes or self.max_value_bytes or self.max_answer_bytes
        )


class Store(ABC):
    """Base of every backend.

    Subclasses implement :meth:`batch`; everything else in botwire (``Memory``,
    sessions, the server, the CLI) builds operations from :mod:`botwire.ops`
    and calls it. A store only adds its own :meth:`abatch` where it has real
    async I/O; the default runs :meth:`batch` in a worker thread.

    The boundary is :meth:`batch`, :meth:`abatch` and :meth:`close`. What only
    some stores have are separate protocols that the server, ``Memory`` and
    the read cache check for: :class:`LocalIO`, :class:`Clocked`,
    :class:`AsyncClosing`, :class:`Sweeping`, :class:`GroupCommit`,
    :class:`Revalidating` (with the helpers :func:`now`, :func:`aclose`,
    :func:`batch_group`, :func:`revalidate`).

    Promises every store keeps (checked by ``tests/conformance``):

    * the operations of one call are applied all or nothing, and no other
      caller sees a state between them;
    * versions come from one store-wide sequence that only increases;
    * an expired key is invisible to every operation from its expiry on.
    """

    @abstractmethod
    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        """Apply ``ops`` to ``namespace`` atomically; one result per op.

        With ``idempotency``, a repeat of the same request returns the first
        results without applying anything again (see :class:`Idempotency`).
        """

    async def abatch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        """Async :meth:`batch`; by default the sync one in a worker thread."""
        import asyncio  # ~45 ms to import: only for async users

        return await asyncio.to_thread(self.batch, namespace, ops, idempotency=idempotency)

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections and files; later calls raise ``StoreClosed``."""


# -- optional capabilities: a store has them or not; the server and the cache check ------


class LocalIO:
    """A store whose calls finish in microseconds with no network I/O (SQLite, in-process).

    A server may call :meth:`Store.batch` of such a store on its event loop;
    any other store it awaits through :meth:`Store.abatch`.
    """


@runtime_checkable
class Clocked(Protocol):
    """A store with its own notion of "now" (Unix seconds), which tests replace.

    Expiry is decided by the store's clock; code that reports a remaining TTL
    asks :func:`now`, which falls back to :func:`time.time`.
    """

    clock: Callable[[], float]


def now(store: Store) -> float:
    """``store``'s "now": its clock where it has one, else the system's."""
    return store.clock() if isinstance(store, Clocked) else time.time()


@runtime_checkable
class AsyncClosing(Protocol):
    """A store holding async connections too (per event loop), released by ``aclose``."""

    async def aclose(self) -> None:
        """:meth:`Store.close` from async code, closing this loop's connections as well."""


async def aclose(store: Store) -> None:
    """Close ``store`` from async code."""
    if isinstance(store, AsyncClosing):
        await store.aclose()
    else:
        store.close()


@runtime_checkable
class Revalidating(Protocol):
    """A store that can answer "is ``key`` still at ``version``?" without sending the value.

    The HTTP store does (``If-None-Match``, 304); a read cache asks it when an
    entry is past ``max_stale``. Other stores are asked with a plain ``Get``.
    """

    def revalidate(self, namespace: str, key: str, version: int) -> Record | _Unchanged | None:
        """``key``'s record, or :data:`UNCHANGED` if its live version is still ``version``."""

    async def arevalidate(
        self, namespace: str, key: str, version: int
    ) -> Record | _Unchanged | None:
        """Async :meth:`revalidate`."""


@runtime_checkable
class Sweeping(Protocol):
    """A store that keeps expired items until swept (the server runs ``sweep`` regularly).

    Expired items are invisible at once on every store; a sweep reclaims their
    space, and forgets old tombstones and idempotency records.
    """

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired items now; return how many went."""


@runtime_checkable
class GroupCommit(Protocol):
    """A store that commits several batches in one transaction, each atomic on its own."""

    def batch_group(
        self, group: Sequence[GroupItem], *, wait: bool = True
    ) -> list[list[Any] | BotwireError] | None:
        """One answer per ``(namespace, ops, idempotency)``: its results, or the error that
        refused it alone. One commit for all. ``wait=False``: ``None`` at once where
        the store would wait for another writer."""


def revalidate(store: Store, namespace: str, key: str, version: int) -> Record | _Unchanged | None:
    """Ask ``store`` whether ``key`` is still at ``version``: cheaply where it can."""
    if isinstance(store, Revalidating):
        return store.revalidate(namespace, key, version)
    record: Record | None = store.batch(namespace, (Get(key),))[0]
    return UNCHANGED if record is not None and record.version == version else record


async def arevalidate(
    store: Store, namespace: str, key: str, version: int
) -> Record | _Unchanged | None:
    """Async :func:`revalidate`."""
    if isinstance(store, Revalidating):
        return await store.arevalidate(namespace, key, version)
    record: Record | None = (await store.abatch(namespace, (Get(key),)))[0]
    return UNCHANGED if record is not None and record.version == version else record


def batch_group(
    store: Store, group: Sequence[GroupItem], *, wait: bool = True
) -> list[list[Any] | BotwireError] | None:
    """Apply ``group`` through ``store``'s group commit, or batch by batch where it has none."""
    if isinstance(store, GroupCommit):
        return store.batch_group(group, wait=wait)
    answers: list[list[Any] | BotwireError] = []
    for namespace, ops, idempotency in group:
        try:
            answers.append(store.batch(namespace, ops, idempotency=idempotency))
        except BotwireError as exc:
            answers.append(exc)
    return answers


@runtime_checkable
class Listing(Protocol):
    """A store that lists its namespaces (every store botwire ships does)."""

    def namespaces(
        self, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[NamespaceInfo]:
        """The namespaces holding live keys, in order: those starting ``prefix``, after
        ``after``, at most ``limit``, each with its keys, bytes and writes today. Never
        botwire's own (a server's tokens), whose names start with ``!``."""


def namespaces(
    store: Store, prefix: str = "", after: str | None = None, limit: int = 1000
) -> list[NamespaceInfo]:
    """A page of ``store``'s namespaces (:class:`Listing`)."""
    if not isinstance(store, Listing):
        raise StoreError(f"{type(store).__name__} cannot list its namespaces")
    return store.namespaces(prefix, after, limit)
