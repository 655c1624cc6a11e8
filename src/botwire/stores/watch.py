"""Waiting for the change feed: what ``Memory.watch`` and the server's long poll stand on.

:func:`wait_changes` answers a ``Changes`` read at once when it has changes,
else waits up to ``wait`` seconds for one. Each store decides how it waits
(:class:`Watching`): the HTTP store asks its server to hold the request (long
polling); the embedded and PostgreSQL stores keep a :class:`Signal`.

A :class:`Signal` wakes the waiters on a namespace the moment its store commits
a write there in this process; no thread polls for that. What another process
or replica writes, SQLite and PostgreSQL tell nobody, so while anyone waits one
pump thread per store asks for the newest version of every namespace waited on,
in one query each ``interval`` (0.2 s), and wakes those that moved. The same
query says when a waited-on namespace holds an expired item: the pump then
sweeps, so an expiry reaches watchers as a deletion within an interval.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

from ..ops import ChangePage, Changes
from .base import GroupItem, Store

if TYPE_CHECKING:
    import asyncio  # ~45 ms to import: only async callers pay it (below, where used)

log = logging.getLogger("botwire")

INTERVAL = 0.2  # seconds between two looks for other processes' writes, while someone waits

Heads = Callable[[Sequence[str]], tuple[dict[str, int], bool]]


@runtime_checkable
class Watching(Protocol):
    """A store that can wait for its change feed (every store botwire ships)."""

    def wait_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        """``op``'s page, waiting up to ``wait`` seconds while it would be empty."""

    async def await_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        """Async :meth:`wait_changes`."""


def wait_changes(store: Store, namespace: str, op: Changes, wait: float) -> ChangePage:
    """``op``'s page from ``store``; while it would be empty, wait up to ``wait`` seconds."""
    if isinstance(store, Watching):
        return store.wait_changes(namespace, op, wait)
    return _poll(store, namespace, op, wait)


async def await_changes(store: Store, namespace: str, op: Changes, wait: float) -> ChangePage:
    """Async :func:`wait_changes`."""
    import asyncio

    if isinstance(store, Watching):
        return await store.await_changes(namespace, op, wait)
    return await asyncio.to_thread(_poll, store, namespace, op, wait)


def _poll(store: Store, namespace: str, op: Changes, wait: float) -> ChangePage:
    """For a store without a way to wait (a third-party one): ask every ``INTERVAL``."""
    until = time.monotonic() + wait
    while True:
        page: ChangePage = store.batch(namespace, (op,))[0]
        left = until - time.monotonic()
        if page.changes or left <= 0 or op.limit == 0:
            return page
        time.sleep(min(INTERVAL, left))


class Signal:
    """Wakes waiters on a namespace: at once after this process's writes (:meth:`notify`),
    within ``interval`` after anyone else's (the pump, see the module docstring).

    ``heads`` answers ``({namespace: newest version}, whether one holds an expired
    item)``; ``sweep`` reclaims expired items (their tombstones wake the watchers).
    """

    def __init__(
        self, heads: Heads, sweep: Callable[[], Any] | None = None, interval: float = INTERVAL
    ) -> None:
        self._heads = heads
        self._sweep = sweep
        self.interval = interval
        self._cond = threading.Condition()
        self._waiting: dict[str, int] = {}  # namespace -> waiters
        self._generation: dict[str, int] = {}  # namespace -> wakes so far
        self._futures: dict[str, set[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]]] = {}
        self._seen: dict[str, int] = {}  # the pump's last look at each namespace's head
        self._pump: threading.Thread | None = None
        self._stop = threading.Event()  # set by close: the pump ends its pause at once
        self._closed = False

    # -- the writers' side -------------------------------------------------------------

    def notify(self, namespace: str) -> None:
        """``namespace`` changed: wake its waiters (nothing to do, and no lock, when none)."""
        if namespace in self._waiting:
            with self._cond:
                self._wake(namespace)

    def close(self) -> None:
        """Wake every waiter (they see the store closed) and stop the pump, waiting for its
        look under way: the store may close its connections only after that."""
        with self._cond:
            self._closed = True
            for namespace in list(self._waiting):
                self._wake(namespace)
            pump = self._pump
        self._stop.set()
        if pump is not None and pump is not threading.current_thread():
            pump.join()

    def _wake(self, namespace: str) -> None:  # holding the lock
        self._generation[namespace] = self._generation.get(namespace, 0) + 1
        self._cond.notify_all()
        for loop, future in self._futures.pop(namespace, ()):
            with contextlib.suppress(RuntimeError):  # that loop is closed: nobody waits there
                loop.call_soon_threadsafe(_resolve, future)

    # -- the waiters' side -------------------------------------------------------------

    @contextlib.contextmanager
    def watching(self, namespace: str) -> Iterator[Callable[[], int]]:
        """Be counted as a waiter on ``namespace`` (so writes there wake); yields a function
        answering how many wakes it has had: read it before the feed, then wait for a change."""
        with self._cond:
            self._waiting[namespace] = self._waiting.get(namespace, 0) + 1
            if self._pump is None and not self._closed:
                self._pump = threading.Thread(target=self._run, name="botwire-watch", daemon=True)
                self._pump.start()
                _PUMPING.add(self)
        try:
            yield lambda: self._generation.get(namespace, 0)
        finally:
            with self._cond:
                self._waiting[namespace] -= 1
                if not self._waiting[namespace]:
                    del self._waiting[namespace]
                    self._generation.pop(namespace, None)
                    self._futures.pop(namespace, None)

    def wait(self, namespace: str, seen: int, timeout: float) -> None:
        """Until ``namespace`` has had a wake after ``seen``, or ``timeout`` seconds."""
        with self._cond:
            self._cond.wait_for(
                lambda: self._closed or self._generation.get(namespace, 0) != seen, timeout
            )

    async def await_(self, namespace: str, seen: int, timeout: float) -> None:
        """Async :meth:`wait`: a future on this loop, resolved by the waking thread."""
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._cond:
            if self._closed or self._generation.get(namespace, 0) != seen:
                return
            self._futures.setdefault(namespace, set()).add((loop, future))
        try:
            await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            pass
        finally:
            with self._cond:
                self._futures.get(namespace, set()).discard((loop, future))

    # -- the pump ----------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                names = list(self._waiting)
                if not names or self._closed or self._stop.is_set():
                    self._pump = None
                    self._seen.clear()
                    return
            try:
                heads, due = self._heads(names)
            except Exception:  # the store is busy or away: look again next time
                log.debug("watch: could not read the namespaces' heads", exc_info=True)
                heads, due = {}, False
            with self._cond:
                for namespace, head in heads.items():
                    if self._seen.get(namespace) != head:  # the first look wakes too: a
                        self._wake(namespace)  # write may have come before it
                    self._seen[namespace] = head
                for namespace in set(self._seen) - set(self._waiting):
                    del self._seen[namespace]
            if due and self._sweep is not None and not self._closed:
                try:
                    self._sweep()  # its tombstones are seen on the next look
                    continue
                except Exception:
                    log.debug("watch: the sweep failed", exc_info=True)
            self._stop.wait(self.interval)


_PUMPING: weakref.WeakSet[Signal] = weakref.WeakSet()


@atexit.register
def _stop_pumps() -> None:
    """At exit, end each pump's look under way before the interpreter goes (a daemon thread
    inside SQLite while the process tears down is how a process dies of SIGSEGV)."""
    for signal in list(_PUMPING):
        signal._stop.set()
        pump = signal._pump
        if pump is not None:
            pump.join(timeout=2.0)


def notify_group(signal: Signal, group: Sequence[GroupItem], answers: Sequence[Any]) -> None:
    """After a group commit: wake the watchers of each namespace whose batch was applied."""
    for (namespace, _, _), answer in zip(group, answers, strict=True):
        if not isinstance(answer, BaseException):
            signal.notify(namespace)


def _landed(flights: dict[Any, Any], key: Any, flight: asyncio.Task[list[Any]]) -> None:
    """A shared read is over: later waiters read anew (and its error, if everyone left, is
    not reported as never retrieved)."""
    if flights.get(key) is flight:
        del flights[key]
    if not flight.cancelled():
        flight.exception()


def _resolve(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


class SignalledFeed(Store):
    """A store that is :class:`Watching` through its :class:`Signal` (``self.signal``), which
    its writes notify."""

    signal: Signal

    def wait_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        until = time.monotonic() + wait
        with self.signal.watching(namespace) as generation:
            while True:
                seen = generation()
                page: ChangePage = self.batch(namespace, (op,))[0]
                left = until - time.monotonic()
                if page.changes or left <= 0 or op.limit == 0:
                    return page
                self.signal.wait(namespace, seen, left)

    async def await_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        until = time.monotonic() + wait
        with self.signal.watching(namespace) as generation:
            while True:
                seen = generation()
                page = await self._read_shared(namespace, op, seen)
                left = until - time.monotonic()
                if page.changes or left <= 0 or op.limit == 0:
                    return page
                await self.signal.await_(namespace, seen, left)

    async def _read_shared(self, namespace: str, op: Changes, seen: int) -> ChangePage:
        """``op``'s page, read once for every waiter asking the same page after the same
        wake (a write wakes all of a namespace's watchers, mostly at one cursor): a read
        started before a waiter's wake is never shared with it, as it could miss that
        write. The read is a task of its own, so a waiter that goes away cancels only
        its own wait."""
        import asyncio

        loop = asyncio.get_running_loop()
        flights: dict[Any, asyncio.Task[list[Any]]] = self.__dict__.setdefault("_flights", {})
        key = (id(loop), namespace, op, seen)
        flight = flights.get(key)
        if flight is None:
            flight = flights[key] = loop.create_task(self.abatch(namespace, (op,)))
            flight.add_done_callback(lambda done: _landed(flights, key, done))
        page: ChangePage = (await asyncio.shield(flight))[0]
        return page
