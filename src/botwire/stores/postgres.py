"""The PostgreSQL store: many server replicas (or trusted back-ends) on one database.

* psycopg 3 with a connection pool (``pool_size`` connections), and one async
  pool per event loop for ``AsyncMemory``. Every operation is written once, as
  a plan (a generator yielding SQL and receiving rows); a sync and an async
  driver run it.
* Every write batch first locks its namespace's counter row (one upsert that
  also returns the counters). Writes to one namespace are therefore applied one
  after another across all replicas, so compare-and-set, the daily write limit
  and the storage quota are checked against exactly the state they change, and
  a namespace's versions commit in order (its change feed never skips one).
  Writes to different namespaces run in parallel.
* Versions come from one database sequence shared by every replica. Triggers
  keep bytes per namespace and tombstones in the statement that writes an item.
* ``Idempotency``: the request's results are stored in the write's own
  transaction; a repeat waits for the first (the namespace lock), then replays.
* Reads see one snapshot (``REPEATABLE READ``). Deadlocks and serialization
  failures are retried; a lost connection is retried for reads and for writes
  carrying an idempotency key, else reported as ``Unavailable`` (the outcome is
  unknown). Everything within ``timeout`` seconds.
* The sweep locks each namespace before deleting its expired rows, like a
  write, so every replica may sweep at once.
* The schema is created and migrated on open (``migrate=False`` to leave it to
  ``botwire migrate``); see :mod:`botwire.stores._postgres_schema`.
"""

from __future__ import annotations

import functools
import random
import time
from collections.abc import Callable, Generator, Sequence
from typing import Any, ClassVar

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import AsyncConnectionPool, ConnectionPool, PoolTimeout

from .._errors import (
    BotwireError,
    DiskFull,
    StoreClosed,
    StoreError,
    Unavailable,
)
from ..ops import (
    Append,
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
    Scan,
    Stats,
    Touch,
    is_read_only,
)
from . import _logic, _sql
from ._per_loop import PerLoop
from ._postgres_schema import SCHEMA_VERSION, migrate
from .base import Limits, Store

# A plan yields (sql, params) and receives the rows (or the row count) back.
Plan = Generator[tuple[str, Sequence[Any]], Any, Any]

_LOCK_NAMESPACE = (
    "INSERT INTO botwire_ns_stats (ns) VALUES (%s) ON CONFLICT (ns) "
    "DO UPDATE SET ns = excluded.ns RETURNING bytes, day, writes"
)
_COUNT_WRITES = (
    "UPDATE botwire_ns_stats SET writes = CASE WHEN day = %s THEN writes + %s ELSE %s END, "
    "day = %s WHERE ns = %s RETURNING writes, bytes"
)
_RETRY_ALWAYS = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


class PostgresStore(Store):
    """Items of every namespace in one PostgreSQL database at ``url``."""

    def __init__(
        self,
        url: str,
        *,
        pool_size: int = 10,
        timeout: float = 10.0,
        clock: Callable[[], float] = time.time,
        limits: Limits | None = None,
        migrate_schema: bool = True,
        sweep_interval: float = 60.0,
    ) -> None:
        self.url = url
        self.timeout = float(timeout)
        self.clock = clock
        self.limits = limits if limits and limits.active else None
        self._sweep_interval = sweep_interval
        self._last_sweep = 0.0
        self._pool_size = pool_size
        self._closed = False
        try:
            self._pool = ConnectionPool(
                url,
                min_size=1,
                max_size=pool_size,
                timeout=timeout,
                open=True,
                name="botwire",
                kwargs={"autocommit": True},  # transactions are explicit: one read is one trip
            )
            self._pool.wait(timeout)
        except (psycopg.Error, PoolTimeout) as exc:
            raise Unavailable(f"PostgreSQL at {_safe(url)} could not be reached: {exc}") from exc
        if migrate_schema:
            with self._pool.connection() as conn:
                migrate(conn)
        self._async_pools: PerLoop[AsyncConnectionPool] = PerLoop(self._new_async_pool, _aclose)

    async def _new_async_pool(self) -> AsyncConnectionPool:
        pool = AsyncConnectionPool(
            self.url,
            min_size=1,
            max_size=self._pool_size,
            timeout=self.timeout,
            open=False,
            kwargs={"autocommit": True},
        )
        await pool.open()
        return pool

    def close(self) -> None:
        self._closed = True
        self._pool.close()

    async def aclose(self) -> None:
        self.close()
        await self._async_pools.close_current()

    # -- drivers: one plan, two ways to run it --------------------------------------------

    def _run(
        self,
        make_plan: Callable[[], Plan],
        *,
        retry_lost: bool,
        read_only: bool,
        single: bool = False,
    ) -> Any:
        """Run a plan in one transaction (``single``: one statement, no transaction needed)."""
        deadline = time.monotonic() + self.timeout
        for attempt in range(1000):
            if self._closed:
                raise StoreClosed("the store is closed")
            try:
                with self._pool.connection(timeout=self.timeout) as conn:
                    if single:
                        return _sql.drive(conn, make_plan())
                    with conn.transaction():
                        if read_only:
                            conn.execute(_SNAPSHOT)
                        return _sql.drive(conn, make_plan())
            except BotwireError:
                raise
            except Exception as exc:
                time.sleep(self._retry(exc, attempt, deadline, retry_lost))
        raise Unavailable("PostgreSQL: too many retries")

    async def _arun(
        self,
        make_plan: Callable[[], Plan],
        *,
        retry_lost: bool,
        read_only: bool,
        single: bool = False,
    ) -> Any:
        """Async :meth:`_run`."""
        import asyncio

        pool = await self._async_pools.get()
        deadline = time.monotonic() + self.timeout
        for attempt in range(1000):
            if self._closed:
                raise StoreClosed("the store is closed")
            try:
                async with pool.connection(timeout=self.timeout) as conn:
                    if single:
                        return await _adrive(conn, make_plan())
                    async with conn.transaction():
                        if read_only:
                            await conn.execute(_SNAPSHOT)
                        return await _adrive(conn, make_plan())
            except BotwireError:
                raise
            except Exception as exc:
                await asyncio.sleep(self._retry(exc, attempt, deadline, retry_lost))
        raise Unavailable("PostgreSQL: too many retries")

    def _retry(self, exc: Exception, attempt: int, deadline: float, retry_lost: bool) -> float:
        """How long to wait before trying again; raises when that is not safe or too late."""
        if isinstance(exc, _RETRY_ALWAYS):
            pass  # rolled back for certain: always safe to run again
        elif isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
            if not retry_lost:
                raise Unavailable(
                    f"PostgreSQL: the connection failed during a write, whose outcome is "
                    f"unknown ({exc}); retry with an idempotency key"
                ) from exc
        elif isinstance(exc, pg_errors.DiskFull):
            raise DiskFull(f"PostgreSQL: {exc}; nothing was written (free space, then retry)")
        elif isinstance(exc, psycopg.Error):
            raise StoreError(f"PostgreSQL: {exc}") from exc
        else:
            raise exc
        pause = random.uniform(0, min(0.5, 0.005 * 2**attempt))
        if time.monotonic() + pause > deadline:
            raise Unavailable(f"PostgreSQL: gave up after {self.timeout}s ({exc})") from exc
        return pause

    # -- the primitive --------------------------------------------------------------------

    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        if not ops:
            return []
        if is_read_only(ops):
            return self._run(  # type: ignore[no-any-return]
                lambda: self._read(namespace, ops),
                retry_lost=True,
                read_only=True,
                single=_one_statement(ops),
            )
        now = self.clock()
        results = self._run(
            lambda: self._write(namespace, ops, idempotency, now),
            retry_lost=idempotency is not None,
            read_only=False,
        )
        self._maybe_sweep()
        return results  # type: ignore[no-any-return]

    async def abatch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        if not ops:
            return []
        if is_read_only(ops):
            return await self._arun(  # type: ignore[no-any-return]
                lambda: self._read(namespace, ops),
                retry_lost=True,
                read_only=True,
                single=_one_statement(ops),
            )
        now = self.clock()
        return await self._arun(  # type: ignore[no-any-return]
            lambda: self._write(namespace, ops, idempotency, now),
            retry_lost=idempotency is not None,
            read_only=False,
        )

    # -- plans: batches -------------------------------------------------------------------

    def _read(self, ns: str, ops: Sequence[Op]) -> Plan:
        now = self.clock()
        budget = _logic.AnswerBudget(self.limits)
        results = []
        for op in ops:
            results.append(budget.take((yield from self._apply(ns, op, now, budget))))
        return results

    def _apply(self, ns: str, op: Op, now: float, budget: _logic.AnswerBudget) -> Plan:
        if type(op) is Scan:  # counted row by row: a scan is refused before it is whole
            return (yield from self._scan(ns, op, now, budget))
        return (yield from self._handlers[type(op)](self, ns, op, now))

    def _write(self, ns: str, ops: Sequence[Op], idem: Idempotency | None, now: float) -> Plan:
        ((bytes_before, _, _),) = yield (_LOCK_NAMESPACE, (ns,))  # held until commit
        if idem is not None:
            rows = yield (
                "SELECT fingerprint, results FROM botwire_idempotency "
                "WHERE ns = %s AND key = %s AND claimed_at > %s",
                (ns, idem.key, now - _logic.IDEMPOTENCY_TTL),
            )
            if rows:  # a repeat: the writes' answers as recorded, the reads run again
                _logic.check_replay(idem.fingerprint, rows[0][0], idem.key)
                replay, reads = _logic.replayed(ops, bytes(rows[0][1]))
                budget = _logic.AnswerBudget(self.limits)
                for i in reads:
                    replay[i] = budget.take((yield from self._apply(ns, ops[i], now, budget)))
                return replay
        guarded = _logic.guarded_keys(ops)
        if guarded:
            live = yield from _sql.live_versions(_sql.POSTGRES, ns, guarded, now)
            _logic.check_conflicts(ops, lambda key: live.get(key, 0))
        budget = _logic.AnswerBudget(self.limits)
        results = []
        for op in ops:
            results.append(budget.take((yield from self._apply(ns, op, now, budget))))
        if idem is not None:  # in this transaction; bounded per namespace, oldest out first
            yield (
                "INSERT INTO botwire_idempotency VALUES (%s, %s, %s, %s, %s) "
                "ON CONFLICT (ns, key) DO UPDATE SET fingerprint = excluded.fingerprint, "
                "results = excluded.results, claimed_at = excluded.claimed_at",
                (ns, idem.key, idem.fingerprint, _logic.replay_record(ops, results), now),
            )
            cap = _logic.replay_cap(self.limits)
            for _ in range(_logic.MAX_EVICTION_ROUNDS):
                ((held,),) = yield ("SELECT replay FROM botwire_ns_stats WHERE ns = %s", (ns,))
                if held <= cap:
                    break
                yield (
                    "DELETE FROM botwire_idempotency WHERE (ns, key) IN (SELECT ns, key "
                    "FROM botwire_idempotency WHERE ns = %s AND key <> %s "
                    "ORDER BY claimed_at LIMIT 64)",
                    (ns, idem.key),
                )
        writes = _logic.writes_in(ops, results)
        day = _logic.utc_day(now)
        ((writes_today, bytes_after),) = yield (_COUNT_WRITES, (day, writes, writes, day, ns))
        if self.limits is not None:
            _logic.check_limits(
                self.limits,
                writes_today=writes_today,
                bytes_before=bytes_before,
                bytes_after=bytes_after,
                now=now,
            )
        return results

    # -- plans: one operation each ----------------------------------------------------------

    # Every op is written once, for both SQL stores, as a plan (_sql).

    def _get(self, ns: str, op: Get, now: float) -> Plan:
        return (yield from _sql.get(_sql.POSTGRES, ns, op, now))

    def _put(self, ns: str, op: Put, now: float) -> Plan:
        return (yield from _sql.put(_sql.POSTGRES, ns, op, now, self.limits))

    def _delete(self, ns: str, op: Delete, now: float) -> Plan:
        return (yield from _sql.delete(_sql.POSTGRES, ns, op, now))

    def _read_modify_write(self, ns: str, op: Incr | Append, now: float) -> Plan:
        return (yield from _sql.read_modify_write(_sql.POSTGRES, ns, op, now, self.limits))

    def _touch(self, ns: str, op: Touch, now: float) -> Plan:
        return (yield from _sql.touch(_sql.POSTGRES, ns, op, now))

    # The key-range ops and the change feed are written once, for both SQL stores (_sql).

    def _list(self, ns: str, op: ListKeys, now: float) -> Plan:
        return (yield from _sql.list_keys(_sql.POSTGRES, ns, op, now))

    def _scan(
        self, ns: str, op: Scan, now: float, budget: _logic.AnswerBudget | None = None
    ) -> Plan:
        budget = budget or _logic.AnswerBudget(None)
        return (yield from _sql.scan(_sql.POSTGRES, ns, op, now, budget))

    def _count(self, ns: str, op: Count | Clear, now: float) -> Plan:
        return (yield from _sql.count(_sql.POSTGRES, ns, op, now))

    def _clear(self, ns: str, op: Clear, now: float) -> Plan:
        return (yield from _sql.clear(_sql.POSTGRES, ns, op, now))

    def _stats(self, ns: str, op: Stats, now: float) -> Plan:
        keys = yield from self._count(ns, Count(), now)
        rows = yield ("SELECT bytes, day, writes FROM botwire_ns_stats WHERE ns = %s", (ns,))
        if not rows:
            return NamespaceStats(keys, 0, 0)
        size, day, writes = rows[0]
        return NamespaceStats(keys, int(size), int(writes) if day == _logic.utc_day(now) else 0)

    def _changes(self, ns: str, op: Changes, now: float) -> Plan:
        return (yield from _sql.changes(_sql.POSTGRES, ns, op))

    _handlers: ClassVar[dict[type, Callable[..., Plan]]] = {
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

    # -- sweeping ---------------------------------------------------------------------------

    def _maybe_sweep(self) -> None:
        now = self.clock()
        if now - self._last_sweep >= self._sweep_interval:
            self._last_sweep = now
            self.sweep(500)

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired items (each namespace under its lock), prune the feed."""
        now = self.clock()

        def expired() -> Plan:
            rows = yield (
                "SELECT DISTINCT ns FROM (SELECT ns FROM botwire_items "
                "WHERE expires_at <= %s LIMIT %s) AS due",
                (now, limit),
            )
            return [row[0] for row in rows]

        def sweep_namespace(ns: str, most: int) -> Plan:
            yield (_LOCK_NAMESPACE, (ns,))  # the order every writer takes: no deadlock
            return (
                yield (
                    "DELETE FROM botwire_items WHERE ctid IN (SELECT ctid FROM botwire_items "
                    "WHERE ns = %s AND expires_at <= %s LIMIT %s)",
                    (ns, now, most),
                )
            )

        def prune() -> Plan:
            yield (
                "INSERT INTO botwire_seq_marks SELECT %s, last_value FROM botwire_version",
                (now,),
            )
            rows = yield (
                "SELECT at, seq FROM botwire_seq_marks WHERE at <= %s ORDER BY seq DESC LIMIT 1",
                (now - _logic.TOMBSTONE_TTL,),
            )
            if rows:
                at, cutoff = rows[0]
                yield ("DELETE FROM botwire_tombstones WHERE version <= %s", (cutoff,))
                yield (
                    "UPDATE botwire_meta SET v = greatest(v, %s) WHERE k = 'pruned'",
                    (cutoff,),
                )
                yield ("DELETE FROM botwire_seq_marks WHERE at < %s", (at,))
            yield (
                "DELETE FROM botwire_idempotency WHERE claimed_at <= %s",
                (now - _logic.IDEMPOTENCY_TTL,),
            )

        removed = 0
        for ns in self._run(expired, retry_lost=True, read_only=True):
            most = limit - removed
            if most <= 0:
                break
            removed += self._run(
                functools.partial(sweep_namespace, ns, most), retry_lost=True, read_only=False
            )
        self._run(prune, retry_lost=True, read_only=False)
        return removed


__all__ = ["SCHEMA_VERSION", "PostgresStore", "migrate"]

_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def _one_statement(ops: Sequence[Op]) -> bool:
    """A read that is one SQL statement sees one snapshot without a transaction."""
    return len(ops) == 1 and type(ops[0]) in (Get, ListKeys, Scan, Count)


async def _adrive(conn: Any, plan: Plan) -> Any:
    """Async :func:`_drive`."""
    try:
        step = plan.send(None)
        while True:
            cursor = await conn.execute(*step)
            step = plan.send(await cursor.fetchall() if cursor.description else cursor.rowcount)
    except StopIteration as done:
        return done.value


def _safe(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url


async def _aclose(pool: AsyncConnectionPool) -> None:
    await pool.close()
