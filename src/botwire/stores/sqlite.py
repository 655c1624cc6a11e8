"""The embedded store: one SQLite file, safe for many threads and processes on one host.

Promises, each backed by a test in ``tests/stores/``:

* WAL journal; every write batch runs in ``BEGIN IMMEDIATE``, so a writer never
  has to upgrade a read lock (the source of most ``database is locked`` errors).
* ``synchronous=FULL`` by default: a write that returned survives a process
  kill *and* a power loss. ``synchronous=normal`` keeps the first promise only:
  a power cut may roll back the last commits, never corrupt the file.
* Writers wait up to ``timeout`` seconds for one another: a process's threads
  take turns through a lock (a waiting thread wakes the moment it is free);
  across processes SQLite's busy handler, then jittered retries for the cases
  it does not cover; past that :class:`Unavailable`. ``database is locked``
  never reaches the caller. With
  ``writer_lock=True`` (the server, whose workers always contend) writers first
  take turns through ``flock`` on ``<file>-lock``: a waiting writer wakes the
  moment the lock is free, where the busy handler polls with sleeps of up to
  100 ms. It costs ~10 µs a write, so embedded use leaves it off.
* One connection per thread, never carried across ``fork``: a child process
  opens its own.
* Not for network file systems (NFS, SMB): their locks break SQLite's.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

from .._errors import (
    BotwireError,
    DiskFull,
    InvalidURL,
    StoreClosed,
    StoreError,
    Unavailable,
)
from ..ops import (
    Changes,
    Get,
    Idempotency,
    NamespaceInfo,
    Op,
    Put,
    Record,
    is_read_only,
)
from . import _sql, _sqlite_schema
from ._backoff import Backoff
from ._sqlite_schema import ITEMS_TABLE, SCHEMA_VERSION
from .base import GroupItem, Limits, LocalIO
from .watch import Signal, SignalledFeed, notify_group

__all__ = ["ITEMS_TABLE", "SCHEMA_VERSION", "SqliteStore"]

log = logging.getLogger("botwire")

_SWEEP_BATCH = 500
_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]


class _WouldWait(Exception):
    """The writer lock is taken (``batch_group(wait=False)`` then returns ``None``)."""


class SqliteStore(SignalledFeed, LocalIO):
    """Items of every namespace in one SQLite file at ``path``."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        synchronous: str = "full",
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        sweep_interval: float = 60.0,
        limits: Limits | None = None,
        accounting: bool = False,
        writer_lock: bool = False,
    ) -> None:
        self.path = os.fspath(path)
        self._flock = writer_lock and fcntl is not None and os.fspath(path) != ":memory:"
        self.limits = limits if limits and limits.active else None
        self.synchronous = synchronous.upper()
        if self.synchronous not in _SYNCHRONOUS:
            raise InvalidURL(
                f"sqlite synchronous= must be full, normal or extra; not {synchronous!r}"
            )
        self.timeout = float(timeout)
        self.clock = clock
        self._sweep_interval = sweep_interval
        self._last_sweep = 0.0
        self._local = threading.local()
        self._conns: list[tuple[int, sqlite3.Connection]] = []
        self._lockfds: list[tuple[int, int]] = []
        self._conns_lock = threading.Lock()
        self._turn = threading.Lock()  # this process's writers take turns (see _writer)
        self._closed = False
        self._feed_indexed = False  # until the feed is first read (see _index_feed)
        self.signal = Signal(self.heads, lambda: self.sweep(_SWEEP_BATCH))
        _STORES.add(self)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Limits need the per-namespace counters; a file a server made keeps them anyway.
        self.accounting = self._run(self._init_schema, accounting or self.limits is not None)
        self._scope = _sql.Scope(_sql.SQLITE, self.limits, self.accounting)

    # -- connections ---------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        if self._closed:
            raise StoreClosed("the store is closed")
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:  # a new thread, or the first call in a forked child
            conn = sqlite3.connect(
                self.path, timeout=self.timeout, isolation_level=None, check_same_thread=False
            )
            try:
                conn.execute(f"PRAGMA synchronous={self.synchronous}")
            except sqlite3.Error:
                conn.close()
                raise
            self._local.conn = conn
            with self._conns_lock:
                self._conns.append((os.getpid(), conn))
        return conn

    @contextlib.contextmanager
    def _writer(self, *, wait: bool) -> Iterator[None]:
        """Take this store's turn to write: first among this process's threads (a waiting
        thread wakes the moment the turn is free, where SQLite's busy handler would poll
        with sleeps), then, with ``writer_lock``, across processes."""
        if not self._turn.acquire(timeout=self.timeout if wait else 0):
            if not wait:
                raise _WouldWait
            raise Unavailable(f"{self.path}: no turn to write within {self.timeout}s")
        try:
            with self._file_writer(wait=wait):
                yield
        finally:
            self._turn.release()

    @contextlib.contextmanager
    def _file_writer(self, *, wait: bool) -> Iterator[None]:
        """Hold the writer lock (``flock`` on ``<file>-lock``) of this thread's connection."""
        if not self._flock:
            yield
            return
        fd: int | None = getattr(self._local, "lockfd", None)
        if fd is None:
            if self._closed:
                raise StoreClosed("the store is closed")
            fd = self._local.lockfd = os.open(self.path + "-lock", os.O_RDWR | os.O_CREAT, 0o600)
            with self._conns_lock:
                self._lockfds.append((os.getpid(), fd))
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise _WouldWait from None
        try:
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)

    def _forget_connections(self) -> None:
        """In a forked child: never touch the parent's connections, open new ones."""
        self._local = threading.local()
        self._conns_lock = threading.Lock()
        self._turn = threading.Lock()
        self.signal = Signal(self.heads, lambda: self.sweep(_SWEEP_BATCH))  # no pump here yet

    def close(self) -> None:
        self._closed = True
        self.signal.close()
        with self._conns_lock:
            mine = [c for pid, c in self._conns if pid == os.getpid()]
            fds = [fd for pid, fd in self._lockfds if pid == os.getpid()]
            self._conns.clear()
            self._lockfds.clear()
        for conn in mine:  # a forked child must not close its parent's connections
            conn.close()
        for fd in fds:
            os.close(fd)

    def _init_schema(self, conn: sqlite3.Connection, accounting: bool) -> bool:
        _sqlite_schema.create(conn, self.path, accounting=accounting)
        return _sqlite_schema.has_accounting(conn)

    # -- the primitive -------------------------------------------------------------

    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        if len(ops) == 1 and idempotency is None:  # the commonest calls, kept short
            op = ops[0]
            kind = type(op)
            if kind is Get and not op.refresh:  # type: ignore[union-attr]
                try:  # straight to this thread's open connection
                    return [self._get(self._local.conn, namespace, op, self.clock())]  # type: ignore[arg-type]
                except (AttributeError, sqlite3.Error):
                    pass  # no connection yet, closed, or busy: the general path decides
                return [self._run(self._get, namespace, op, self.clock())]
            if kind is Put and op.if_version is None and self.limits is None and not self._flock:  # type: ignore[union-attr]
                # One statement in autocommit needs no explicit transaction: a write
                # statement takes the write lock at its start, like BEGIN IMMEDIATE,
                # and commits at its end.
                with self._writer(wait=True):
                    result = [self._run(self._put, namespace, op, self.clock())]
                self.signal.notify(namespace)
                self._maybe_sweep()
                return result
        if is_read_only(ops):
            if not self._feed_indexed and any(type(op) is Changes for op in ops):
                self._index_feed()
            return self._run(self._read, namespace, ops)  # type: ignore[no-any-return]
        with self._writer(wait=True):
            results: list[Any] = self._run(self._write, namespace, ops, idempotency)
        self.signal.notify(namespace)
        self._maybe_sweep()
        return results

    def batch_group(
        self, group: Sequence[GroupItem], *, wait: bool = True
    ) -> list[list[Any] | BotwireError] | None:
        """Write batches together: each atomic on its own, all in one transaction.

        Each answer is that batch's results, or the error that refused it alone
        (a ``Conflict``, a limit, any failure of its own). One commit, one fsync,
        for the whole group; nothing is visible or acknowledged before it.
        ``wait=False``: ``None`` at once if another botwire writer holds the file.
        """
        try:
            with self._writer(wait=wait):
                answers: list[list[Any] | BotwireError] = self._run(self._write_group, group)
        except _WouldWait:
            return None
        notify_group(self.signal, group, answers)
        self._maybe_sweep()
        return answers

    def _maybe_sweep(self) -> None:
        """After writes, at most once a ``sweep_interval``: reclaim expired rows, 500 at a time."""
        now = self.clock()
        if now - self._last_sweep >= self._sweep_interval:
            self._last_sweep = now
            with self._writer(wait=True):
                removed = self._run(self._sweep, _SWEEP_BATCH)
            if removed == _SWEEP_BATCH:
                self._last_sweep = 0.0  # a backlog: take the next batch on the next write

    def namespaces(
        self, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[NamespaceInfo]:
        """A page of the namespaces holding live keys (see :class:`~.base.Listing`)."""
        found: list[NamespaceInfo] = self._run(self._namespaces, prefix, after, limit)
        return found

    def _namespaces(
        self, conn: sqlite3.Connection, prefix: str, after: str | None, limit: int
    ) -> list[NamespaceInfo]:
        conn.execute("BEGIN")
        plan = _sql.namespaces(_sql.SQLITE, prefix, after, limit, self.clock(), self.accounting)
        found: list[NamespaceInfo] = _sql.drive(conn, plan)
        conn.execute("COMMIT")
        return found

    def heads(self, namespaces: Sequence[str]) -> tuple[dict[str, int], bool]:
        """Each namespace's newest version, and whether one holds an item due for a sweep."""
        if not self._feed_indexed:
            self._index_feed()
        return self._run(self._heads, namespaces)  # type: ignore[no-any-return]

    def _index_feed(self) -> None:
        """Make the change feed's index on first use of the feed (once per file: a server's
        has it; an embedded writer that never reads the feed never maintains it)."""
        try:
            with self._writer(wait=True):
                self._run(lambda conn: conn.execute(_sqlite_schema.FEED_INDEX))
        except BotwireError:  # a read-only file: the feed works, scanning the namespace
            log.debug("could not index the change feed of %s", self.path, exc_info=True)
        self._feed_indexed = True

    def _heads(
        self, conn: sqlite3.Connection, namespaces: Sequence[str]
    ) -> tuple[dict[str, int], bool]:
        conn.execute("BEGIN")
        found: tuple[dict[str, int], bool] = _sql.drive(
            conn, _sql.heads(_sql.SQLITE, namespaces, self.clock())
        )
        conn.execute("COMMIT")
        return found

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired items, and forget old tombstones and idempotency keys."""
        with self._writer(wait=True):
            removed: int = self._run(self._sweep, limit)
        return removed

    def _sweep(self, conn: sqlite3.Connection, limit: int) -> int:
        conn.execute("BEGIN IMMEDIATE")
        removed: int = _sql.drive(conn, _sql.sweep(_sql.SQLITE, self.clock(), limit))
        conn.execute("COMMIT")
        return removed

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(conn, *args)``, retrying while the file is locked; map sqlite errors.

        ``timeout`` bounds the whole wait: SQLite's busy handler and the retries
        after it share one deadline (each retry gets the busy handler's share
        that is left).
        """
        policy = Backoff(self.timeout, base=0.001, cap=0.05)
        shortened: sqlite3.Connection | None = None
        try:
            while True:
                conn = None
                try:
                    conn = self._conn()
                    return fn(conn, *args)
                except sqlite3.OperationalError as exc:
                    _rollback(conn)
                    if not _is_busy(exc):
                        raise _mapped(exc) from exc
                    pause = policy.pause()
                    if pause is None:
                        raise Unavailable(f"{self.path} stayed locked for {self.timeout}s") from exc
                    time.sleep(pause)
                    if conn is not None:  # the busy handler may wait only what is left
                        shortened = conn
                        _busy_timeout(conn, policy.left())
                except sqlite3.Error as exc:
                    _rollback(conn)
                    raise _mapped(exc) from exc
                except BaseException:
                    _rollback(conn)
                    raise
        finally:
            if shortened is not None:
                _busy_timeout(shortened, self.timeout)

    def _read(self, conn: sqlite3.Connection, ns: str, ops: Sequence[Op]) -> list[Any]:
        conn.execute("BEGIN")  # one snapshot for every read of the batch
        results: list[Any] = _sql.drive(conn, _sql.read(self._scope, ns, ops, self.clock()))
        conn.execute("COMMIT")
        return results

    def _write(
        self, conn: sqlite3.Connection, ns: str, ops: Sequence[Op], idem: Idempotency | None
    ) -> list[Any]:
        conn.execute("BEGIN IMMEDIATE")
        results: list[Any] = _sql.drive(conn, _sql.write(self._scope, ns, ops, idem, self.clock()))
        conn.execute("COMMIT")
        return results

    def _write_group(
        self, conn: sqlite3.Connection, group: Sequence[GroupItem]
    ) -> list[list[Any] | BotwireError]:
        """Each batch in its own savepoint, all of them in one transaction: one fsync.

        Whatever one batch raises undoes that batch alone; only a failure that
        ends the transaction itself (the disk is full, the file is gone) fails
        the group, and the caller may then run the batches one by one.
        """
        conn.execute("BEGIN IMMEDIATE")
        plan = _sql.write_group(self._scope, group, self.clock())
        answers: list[list[Any] | BotwireError] = _sql.drive(conn, plan, _batch_failure)
        conn.execute("COMMIT")
        return answers

    # The two commonest calls, straight to their plans (_sql) without a transaction.

    def _get(self, conn: sqlite3.Connection, ns: str, op: Get, now: float) -> Record | None:
        return _sql.drive(conn, _sql.get(_sql.SQLITE, ns, op, now))  # type: ignore[no-any-return]

    def _put(self, conn: sqlite3.Connection, ns: str, op: Put, now: float) -> int:
        return _sql.drive(conn, _sql.put(_sql.SQLITE, ns, op, now, None))  # type: ignore[no-any-return]


_STORES: weakref.WeakSet[SqliteStore] = weakref.WeakSet()


def _after_fork_in_child() -> None:
    for store in list(_STORES):
        store._forget_connections()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def _rollback(conn: sqlite3.Connection | None) -> None:
    if conn is not None and conn.in_transaction:
        with contextlib.suppress(sqlite3.Error):  # already gone: nothing was committed
            conn.execute("ROLLBACK")


_SQLITE_FULL = 13  # the result code for "database or disk is full"


def _batch_failure(conn: sqlite3.Connection, exc: Exception) -> BotwireError | None:
    """A failed statement that left the transaction open fails its batch alone (a group
    goes on); a busy wait, or one after which SQLite rolled everything back, ends it."""
    if not isinstance(exc, sqlite3.Error) or not conn.in_transaction:
        return None
    if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
        return None
    return _mapped(exc)


def _busy_timeout(conn: sqlite3.Connection, seconds: float) -> None:
    with contextlib.suppress(sqlite3.Error):  # a closed connection: the next call says so
        conn.execute(f"PRAGMA busy_timeout = {max(1, int(seconds * 1000))}")


def _mapped(exc: sqlite3.Error) -> BotwireError:
    """The botwire error for a SQLite error that is not a busy wait."""
    if getattr(exc, "sqlite_errorcode", None) == _SQLITE_FULL or "is full" in str(exc):
        return DiskFull(f"sqlite: {exc}; nothing was written (free space, then retry)")
    return StoreError(f"sqlite: {exc}")


def _is_busy(exc: sqlite3.OperationalError) -> bool:
    text = str(exc)
    return "locked" in text or "busy" in text
