"""The PostgreSQL store: many server replicas (or trusted back-ends) on one database.

* psycopg 3 with a connection pool (``pool_size`` connections). Every
  operation is written once, as a plan (``_sql``: a generator yielding SQL and
  receiving rows), driven on a pooled connection. ``AsyncMemory`` (and the
  server's reads) run it in a worker thread: no async pool is bound to an event
  loop, so none can hang a loop's shutdown (an async pool per loop did, when
  ``asyncio.run`` cancelled it while it connected).
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
* ``batch_group`` (the server's group commit): the batches that arrived
  together lock their namespaces in order, run each in a savepoint, and share
  one commit. Writers to one namespace then queue for one commit per group,
  not one each.
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

import time
from collections.abc import Callable, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg_pool import ConnectionPool, PoolTimeout

from .._errors import (
    BotwireError,
    DiskFull,
    StoreClosed,
    StoreError,
    Unavailable,
)
from ..ops import (
    Count,
    Get,
    Idempotency,
    ListKeys,
    NamespaceInfo,
    Op,
    Scan,
    is_read_only,
)
from . import _sql
from ._backoff import Backoff
from ._postgres_schema import SCHEMA_VERSION, migrate
from .base import GroupItem, Limits
from .watch import Signal, SignalledFeed, notify_group

_RETRY_ALWAYS = (pg_errors.DeadlockDetected, pg_errors.SerializationFailure)


class PostgresStore(SignalledFeed):
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
        self._scope = _sql.Scope(_sql.POSTGRES, self.limits, True)  # the schema keeps counters
        self._sweep_interval = sweep_interval
        self._last_sweep = 0.0
        self._pool_size = pool_size
        self._closed = False
        self.signal = Signal(self.heads, lambda: self.sweep(500))
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

    def close(self) -> None:
        self._closed = True
        self.signal.close()
        self._pool.close()

    # -- the driver: one plan, in one transaction, retried where that is safe --------------

    def _run(
        self,
        make_plan: Callable[[], _sql.Plan],
        *,
        retry_lost: bool,
        read_only: bool,
        single: bool = False,
        classify: _sql.Classify = _sql.fatal,
    ) -> Any:
        """Run a plan in one transaction (``single``: one statement, no transaction needed)."""
        policy = Backoff(self.timeout, base=0.005, cap=0.5)
        while True:
            if self._closed:
                raise StoreClosed("the store is closed")
            try:
                with self._pool.connection(timeout=self.timeout) as conn:
                    if single:
                        return _sql.drive(conn, make_plan())
                    with conn.transaction():
                        if read_only:
                            conn.execute(_SNAPSHOT)
                        return _sql.drive(conn, make_plan(), classify)
            except BotwireError:
                raise
            except Exception as exc:
                time.sleep(self._retry(exc, policy, retry_lost))

    def _retry(self, exc: Exception, policy: Backoff, retry_lost: bool) -> float:
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
        pause = policy.pause()
        if pause is None:
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
                lambda: _sql.read(self._scope, namespace, ops, self.clock()),
                retry_lost=True,
                read_only=True,
                single=_one_statement(ops),
            )
        now = self.clock()
        results = self._run(
            lambda: _sql.write(self._scope, namespace, ops, idempotency, now),
            retry_lost=idempotency is not None,
            read_only=False,
        )
        self.signal.notify(namespace)
        self._maybe_sweep()
        return results  # type: ignore[no-any-return]

    def batch_group(
        self, group: Sequence[GroupItem], *, wait: bool = True
    ) -> list[list[Any] | BotwireError]:
        """Write batches together: each atomic on its own, all in one transaction.

        Each answer is that batch's results, or the error that refused it alone.
        The group's namespaces are locked in order, then one commit for all: a
        namespace's writers share a commit instead of queueing for one each.
        A failure of the transaction itself is every batch's answer (it is
        retried first where that is safe, as for a lone batch).
        """
        if not group:
            return []
        now = self.clock()
        try:
            answers: list[list[Any] | BotwireError] = self._run(
                lambda: _sql.write_group(self._scope, group, now),
                retry_lost=all(idem is not None for _, _, idem in group),
                read_only=False,
                classify=_batch_failure,
            )
        except BotwireError as exc:
            return [exc] * len(group)
        notify_group(self.signal, group, answers)
        self._maybe_sweep()
        return answers

    # -- every op, the read and write bodies and the sweep are plans in _sql --------------

    def _maybe_sweep(self) -> None:
        now = self.clock()
        if now - self._last_sweep >= self._sweep_interval:
            self._last_sweep = now
            self.sweep(500)

    def namespaces(
        self, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[NamespaceInfo]:
        """A page of the namespaces holding live keys (see :class:`~.base.Listing`)."""
        now = self.clock()
        found: list[NamespaceInfo] = self._run(
            lambda: _sql.namespaces(_sql.POSTGRES, prefix, after, limit, now, True),
            retry_lost=True,
            read_only=True,
        )
        return found

    def heads(self, namespaces: Sequence[str]) -> tuple[dict[str, int], bool]:
        """Each namespace's newest version, and whether one holds an item due for a sweep."""
        now = self.clock()
        found: tuple[dict[str, int], bool] = self._run(
            lambda: _sql.heads(_sql.POSTGRES, namespaces, now), retry_lost=True, read_only=True
        )
        return found

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired items (each namespace under its lock), prune the feed."""
        now = self.clock()
        removed: int = self._run(
            lambda: _sql.sweep(_sql.POSTGRES, now, limit), retry_lost=True, read_only=False
        )
        return removed


__all__ = ["SCHEMA_VERSION", "PostgresStore", "migrate"]

_SNAPSHOT = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"


def _one_statement(ops: Sequence[Op]) -> bool:
    """A read that is one SQL statement sees one snapshot without a transaction."""
    return len(ops) == 1 and type(ops[0]) in (Get, ListKeys, Scan, Count)


def _batch_failure(conn: Any, exc: Exception) -> BotwireError | None:
    """A statement refused for its data (out of range, too long...) fails its batch alone;
    a lost connection, a deadlock, a full disk end the group's transaction."""
    if isinstance(exc, psycopg.Error) and not isinstance(exc, psycopg.OperationalError):
        return StoreError(f"PostgreSQL: {exc}")
    return None


def _safe(url: str) -> str:
    """``url`` without its password, for messages."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return urlunsplit(parts._replace(netloc=netloc))
    return url
