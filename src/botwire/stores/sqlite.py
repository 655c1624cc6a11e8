"""The embedded store: one SQLite file, safe for many threads and processes on one host.

Promises, each backed by a test in ``tests/stores/``:

* WAL journal; every write batch runs in ``BEGIN IMMEDIATE``, so a writer never
  has to upgrade a read lock (the source of most ``database is locked`` errors).
* ``synchronous=FULL`` by default: a write that returned survives a process
  kill *and* a power loss. ``synchronous=normal`` keeps the first promise only:
  a power cut may roll back the last commits, never corrupt the file.
* Writers wait up to ``timeout`` seconds for one another: SQLite's busy
  handler, then jittered retries for the cases it does not cover; past that
  :class:`Unavailable`. ``database is locked`` never reaches the caller. With
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
import random
import sqlite3
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, ClassVar

from .._errors import (
    BotwireError,
    DiskFull,
    InvalidURL,
    StoreClosed,
    StoreError,
    Unavailable,
)
from ..ops import (
    Append,
    ChangePage,
    Changes,
    Clear,
    Count,
    Delete,
    Get,
    Idempotency,
    Incr,
    ListKeys,
    NamespaceStats,
    Op,
    Put,
    Record,
    Scan,
    Stats,
    Touch,
    is_read_only,
)
from . import _logic, _sql, _sqlite_schema
from ._sqlite_schema import ITEMS_TABLE, SCHEMA_VERSION
from .base import GroupItem, Limits, Store

__all__ = ["ITEMS_TABLE", "SCHEMA_VERSION", "SqliteStore"]

log = logging.getLogger("botwire")

# The columns of a Record, in its order; the TTL only where a write needs it.
# A key that expired but was not swept yet counts as new: created_at starts again.
_COUNT_WRITES = (
    "INSERT INTO ns_stats (ns, day, writes) VALUES (?, ?, ?) ON CONFLICT (ns) DO UPDATE SET "
    "writes = CASE WHEN day = excluded.day THEN writes + excluded.writes ELSE excluded.writes END, "
    "day = excluded.day RETURNING writes, bytes"
)
_SWEEP_BATCH = 500
_SYNCHRONOUS = ("FULL", "NORMAL", "EXTRA")

try:
    import fcntl
except ImportError:  # Windows: SQLite's busy handler alone
    fcntl = None  # type: ignore[assignment]


class _WouldWait(Exception):
    """The writer lock is taken (``batch_group(wait=False)`` then returns ``None``)."""


class SqliteStore(Store):
    """Items of every namespace in one SQLite file at ``path``."""

    local_io = True

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
        self._closed = False
        _STORES.add(self)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        # Limits need the per-namespace counters; a file a server made keeps them anyway.
        self.accounting = self._run(self._init_schema, accounting or self.limits is not None)

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

    def close(self) -> None:
        self._closed = True
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
                result = [self._run(self._put, namespace, op, self.clock())]
                self._maybe_sweep()
                return result
        if is_read_only(ops):
            return self._run(self._read, namespace, ops)  # type: ignore[no-any-return]
        if not self._flock:
            return self._write_batch(namespace, ops, idempotency)
        with self._writer(wait=True):
            return self._write_batch(namespace, ops, idempotency)

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
        self._maybe_sweep()
        return answers

    def _write_batch(
        self, namespace: str, ops: Sequence[Op], idempotency: Idempotency | None
    ) -> list[Any]:
        """A write batch (holding the writer lock, where there is one)."""
        results: list[Any] = self._run(self._write, namespace, ops, idempotency)
        self._maybe_sweep()
        return results

    def _maybe_sweep(self) -> None:
        """After writes, at most once a ``sweep_interval``: reclaim expired rows, 500 at a time."""
        now = self.clock()
        if now - self._last_sweep >= self._sweep_interval:
            self._last_sweep = now
            if self._run(self._sweep, _SWEEP_BATCH) == _SWEEP_BATCH:
                self._last_sweep = 0.0  # a backlog: take the next batch on the next write

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired items, and forget old tombstones and idempotency keys."""
        with self._writer(wait=True):
            removed: int = self._run(self._sweep, limit)
        return removed

    def _sweep(self, conn: sqlite3.Connection, limit: int) -> int:
        now = self.clock()
        conn.execute("BEGIN IMMEDIATE")
        removed = conn.execute(
            "DELETE FROM items WHERE rowid IN "
            "(SELECT rowid FROM items WHERE expires_at <= ? LIMIT ?)",
            (now, limit),
        ).rowcount
        self._prune_tombstones(conn, now)
        conn.execute(
            "DELETE FROM idempotency WHERE claimed_at <= ?", (now - _logic.IDEMPOTENCY_TTL,)
        )
        conn.execute("COMMIT")
        return int(removed)

    def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Call ``fn(conn, *args)``, retrying while the file is locked; map sqlite errors.

        ``timeout`` bounds the whole wait: SQLite's busy handler and the retries
        after it share one deadline (each retry gets the busy handler's share
        that is left).
        """
        deadline = time.monotonic() + self.timeout
        delay = 0.001
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
                    left = deadline - time.monotonic()
                    if left <= 0:
                        raise Unavailable(f"{self.path} stayed locked for {self.timeout}s") from exc
                    time.sleep(min(random.uniform(0, delay), left))
                    delay = min(delay * 2, 0.05)
                    if conn is not None:  # the busy handler may wait only what is left
                        shortened = conn
                        _busy_timeout(conn, deadline - time.monotonic())
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
        now = self.clock()
        conn.execute("BEGIN")  # one snapshot for every read of the batch
        budget = _logic.AnswerBudget(self.limits)
        results = [budget.take(self._apply(conn, ns, op, now, budget)) for op in ops]
        conn.execute("COMMIT")
        return results

    def _write(
        self, conn: sqlite3.Connection, ns: str, ops: Sequence[Op], idem: Idempotency | None
    ) -> list[Any]:
        conn.execute("BEGIN IMMEDIATE")
        results = self._apply_batch(conn, ns, ops, idem, self.clock())
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
        now = self.clock()
        conn.execute("BEGIN IMMEDIATE")
        answers: list[list[Any] | BotwireError] = []
        for ns, ops, idem in group:
            conn.execute("SAVEPOINT one")
            try:
                answers.append(self._apply_batch(conn, ns, ops, idem, now))
            except Exception as exc:
                if not conn.in_transaction:
                    raise  # SQLite rolled the whole transaction back
                conn.execute("ROLLBACK TO one")
                answers.append(_batch_error(exc))
            conn.execute("RELEASE one")
        conn.execute("COMMIT")
        return answers

    def _apply_batch(
        self,
        conn: sqlite3.Connection,
        ns: str,
        ops: Sequence[Op],
        idem: Idempotency | None,
        now: float,
    ) -> list[Any]:
        """The body of a write transaction: replay, checks, ops, the replay record, limits.

        The idempotency record is written in this same transaction: after a crash
        the key is either absent (a retry applies the batch once) or present with
        its answer (a retry replays it). Writers hold the file's write lock, so a
        duplicate waits for the first and then replays it.
        """
        budget = _logic.AnswerBudget(self.limits)
        if idem is not None:
            row = conn.execute(
                "SELECT fingerprint, results FROM idempotency "
                "WHERE ns = ? AND key = ? AND claimed_at > ?",
                (ns, idem.key, now - _logic.IDEMPOTENCY_TTL),
            ).fetchone()
            if row is not None:
                _logic.check_replay(idem.fingerprint, row[0], idem.key)
                results, reads = _logic.replayed(ops, row[1])
                for i in reads:
                    results[i] = budget.take(self._apply(conn, ns, ops[i], now, budget))
                return results
        guarded = _logic.guarded_keys(ops)
        if guarded:
            versions = _sql.drive(conn, _sql.live_versions(_sql.SQLITE, ns, guarded, now))
            _logic.check_conflicts(ops, lambda key: versions.get(key, 0))
        limits = self.limits
        if limits is not None:
            row = conn.execute("SELECT bytes FROM ns_stats WHERE ns = ?", (ns,)).fetchone()
            bytes_before = 0 if row is None else row[0]
        results = [budget.take(self._apply(conn, ns, op, now, budget)) for op in ops]
        if idem is not None:
            self._record(conn, ns, idem, _logic.replay_record(ops, results), now)
        if limits is not None:
            # In the same transaction as the writes: no race lets one more through.
            writes = _logic.writes_in(ops, results)
            writes_today, bytes_after = conn.execute(
                _COUNT_WRITES, (ns, _logic.utc_day(now), writes)
            ).fetchall()[0]
            _logic.check_limits(
                limits,
                writes_today=writes_today,
                bytes_before=bytes_before,
                bytes_after=bytes_after,
                now=now,
            )
        return results

    def _record(
        self, conn: sqlite3.Connection, ns: str, idem: Idempotency, record: bytes, now: float
    ) -> None:
        """Keep a batch's replay record; past the namespace's bound, drop its oldest."""
        conn.execute("DELETE FROM idempotency WHERE ns = ? AND key = ?", (ns, idem.key))  # expired
        conn.execute(
            "INSERT INTO idempotency VALUES (?, ?, ?, ?, ?)",
            (ns, idem.key, idem.fingerprint, record, now),
        )
        if not self.accounting:
            return
        cap = _logic.replay_cap(self.limits)
        for _ in range(_logic.MAX_EVICTION_ROUNDS):
            (held,) = conn.execute("SELECT replay FROM ns_stats WHERE ns = ?", (ns,)).fetchone()
            if held <= cap:
                return
            conn.execute(
                "DELETE FROM idempotency WHERE rowid IN (SELECT rowid FROM idempotency "
                "WHERE ns = ? AND key != ? ORDER BY claimed_at LIMIT 64)",
                (ns, idem.key),
            )

    @staticmethod
    def _prune_tombstones(conn: sqlite3.Connection, now: float) -> None:
        conn.execute("INSERT INTO seq_marks SELECT ?, v FROM meta WHERE k = 'seq'", (now,))
        old = now - _logic.TOMBSTONE_TTL
        row = conn.execute(
            "SELECT at, seq FROM seq_marks WHERE at <= ? ORDER BY seq DESC LIMIT 1", (old,)
        ).fetchone()
        if row is not None:
            at, cutoff = row
            conn.execute("DELETE FROM tombstones WHERE version <= ?", (cutoff,))
            conn.execute("UPDATE meta SET v = max(v, ?) WHERE k = 'pruned'", (cutoff,))
            conn.execute("DELETE FROM seq_marks WHERE at < ?", (at,))

    # -- one operation each: (conn, namespace, op, now) -> result --------------------

    def _apply(
        self,
        conn: sqlite3.Connection,
        ns: str,
        op: Op,
        now: float,
        budget: _logic.AnswerBudget,
    ) -> Any:
        if type(op) is Scan:  # counted row by row: a scan is refused before it is whole
            return self._scan(conn, ns, op, now, budget)
        return self._handlers[type(op)](self, conn, ns, op, now)

    # Every op is written once, for both SQL stores, as a plan (_sql); these drive them.

    def _get(self, conn: sqlite3.Connection, ns: str, op: Get, now: float) -> Record | None:
        return _sql.drive(conn, _sql.get(_sql.SQLITE, ns, op, now))  # type: ignore[no-any-return]

    def _put(self, conn: sqlite3.Connection, ns: str, op: Put, now: float) -> int:
        plan = _sql.put(_sql.SQLITE, ns, op, now, self.limits)
        return _sql.drive(conn, plan)  # type: ignore[no-any-return]

    def _delete(self, conn: sqlite3.Connection, ns: str, op: Delete, now: float) -> bool:
        return _sql.drive(conn, _sql.delete(_sql.SQLITE, ns, op, now))  # type: ignore[no-any-return]

    def _touch(self, conn: sqlite3.Connection, ns: str, op: Touch, now: float) -> bool:
        return _sql.drive(conn, _sql.touch(_sql.SQLITE, ns, op, now))  # type: ignore[no-any-return]

    def _read_modify_write(
        self, conn: sqlite3.Connection, ns: str, op: Incr | Append, now: float
    ) -> Any:
        plan = _sql.read_modify_write(_sql.SQLITE, ns, op, now, self.limits)
        return _sql.drive(conn, plan)

    # The key-range ops and the change feed are written once, for both SQL stores (_sql).

    def _list(self, conn: sqlite3.Connection, ns: str, op: ListKeys, now: float) -> list[str]:
        return _sql.drive(conn, _sql.list_keys(_sql.SQLITE, ns, op, now))  # type: ignore[no-any-return]

    def _scan(
        self,
        conn: sqlite3.Connection,
        ns: str,
        op: Scan,
        now: float,
        budget: _logic.AnswerBudget | None = None,
    ) -> list[tuple[str, Record]]:
        budget = budget or _logic.AnswerBudget(None)
        return _sql.drive(conn, _sql.scan(_sql.SQLITE, ns, op, now, budget))  # type: ignore[no-any-return]

    def _count(self, conn: sqlite3.Connection, ns: str, op: Count | Clear, now: float) -> int:
        return _sql.drive(conn, _sql.count(_sql.SQLITE, ns, op, now))  # type: ignore[no-any-return]

    def _clear(self, conn: sqlite3.Connection, ns: str, op: Clear, now: float) -> int:
        return _sql.drive(conn, _sql.clear(_sql.SQLITE, ns, op, now))  # type: ignore[no-any-return]

    def _stats(self, conn: sqlite3.Connection, ns: str, op: Stats, now: float) -> NamespaceStats:
        keys = self._count(conn, ns, Count(), now)
        if self.accounting:
            row = conn.execute(
                "SELECT bytes, day, writes FROM ns_stats WHERE ns = ?", (ns,)
            ).fetchone()
            if row is None:
                return NamespaceStats(keys, 0, 0)
            return NamespaceStats(keys, row[0], row[2] if row[1] == _logic.utc_day(now) else 0)
        (size,) = conn.execute(
            "SELECT coalesce(sum(length(CAST(key AS BLOB)) + length(value)), 0) FROM items "
            "WHERE ns = ?",
            (ns,),
        ).fetchone()
        return NamespaceStats(keys, size, 0)

    def _changes(self, conn: sqlite3.Connection, ns: str, op: Changes, now: float) -> ChangePage:
        return _sql.drive(conn, _sql.changes(_sql.SQLITE, ns, op))  # type: ignore[no-any-return]

    _handlers: ClassVar[dict[type, Callable[..., Any]]] = {
        Get: _get,
        Put: _put,
        Delete: _delete,
        Incr: _read_modify_write,
        Append: _read_modify_write,
        Touch: _touch,
        ListKeys: _list,
        Scan: _scan,
        Count: _count,
        Clear: _clear,
        Stats: _stats,
        Changes: _changes,
    }


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


def _batch_error(exc: Exception) -> BotwireError:
    """What one batch of a group answers when it raised ``exc`` (the others go on)."""
    if isinstance(exc, BotwireError):
        return exc
    if isinstance(exc, sqlite3.Error):
        return _mapped(exc)
    log.exception("a write batch failed (it alone was rolled back)")
    return StoreError(f"the batch failed: {type(exc).__name__}")


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
