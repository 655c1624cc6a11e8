"""The in-process store: a dict under one lock, for tests and examples.

Same semantics as the SQLite store, limits, change feed and idempotency
included (the conformance suite checks it), gone when the process ends.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .._errors import StoreClosed
from ..ops import (
    Append,
    Change,
    ChangePage,
    Changes,
    Clear,
    Count,
    Delete,
    Get,
    Idempotency,
    Incr,
    ListKeys,
    NamespaceInfo,
    NamespaceStats,
    Op,
    Put,
    Record,
    Scan,
    Stats,
    Touch,
    is_read_only,
)
from . import _logic
from .base import Limits, LocalIO
from .watch import Signal, SignalledFeed


@dataclass(slots=True)
class _Row:
    data: bytes
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
    ttl: float | None

    def record(self) -> Record:
        return Record(self.data, self.version, self.created_at, self.updated_at, self.expires_at)


@dataclass(slots=True)
class _Space:
    rows: dict[str, _Row] = field(default_factory=dict)
    tombstones: dict[str, tuple[int, float]] = field(default_factory=dict)  # version, when
    day: int = 0
    writes: int = 0
    claims: dict[str, tuple[str, bytes, float]] = field(default_factory=dict)  # replay records

    def size(self) -> int:
        return sum(_logic.item_size(k, r.data) for k, r in self.rows.items())

    def replay_size(self) -> int:
        return sum(len(k) + len(f) + len(r) for k, (f, r, _) in self.claims.items())


class MemoryStore(SignalledFeed, LocalIO):
    """Items of every namespace in a dict of dicts; nothing touches the disk."""

    def __init__(
        self, *, clock: Callable[[], float] = time.time, limits: Limits | None = None
    ) -> None:
        self.clock = clock
        self.limits = limits if limits and limits.active else None
        self._spaces: dict[str, _Space] | None = {}
        self._lock = threading.Lock()
        self._seq = 0
        self._pruned = 0
        self.signal = Signal(self.heads, self.sweep)

    def close(self) -> None:
        with self._lock:
            self._spaces = None
        self.signal.close()

    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        with self._lock:
            if self._spaces is None:
                raise StoreClosed("the store is closed")
            space = self._spaces.setdefault(namespace, _Space())
            now = self.clock()
            if is_read_only(ops):
                budget = _logic.AnswerBudget(self.limits)
                return [budget.take(self._apply(space, op, now)) for op in ops]
            if idempotency is not None:
                replay = self._replay(space, ops, idempotency, now)
                if replay is not None:
                    return replay
            results = self._write(space, ops, now, idempotency)
        self.signal.notify(namespace)
        return results

    async def abatch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        return self.batch(namespace, ops, idempotency=idempotency)  # no I/O: no thread

    def namespaces(
        self, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[NamespaceInfo]:
        """A page of the namespaces holding live keys (see :class:`~.base.Listing`)."""
        with self._lock:
            now, found = self.clock(), []
            for name in sorted(self._spaces or {}):
                if name.startswith("!") or not name.startswith(prefix):
                    continue
                if after is not None and name <= after:
                    continue
                space = (self._spaces or {})[name]
                keys = len(self._keys(space, "", now))
                if keys:
                    writes = space.writes if space.day == _logic.utc_day(now) else 0
                    found.append(NamespaceInfo(name, keys, space.size(), writes))
                if len(found) == limit:
                    break
            return found

    def sweep(self, limit: int = 1000) -> int:
        with self._lock:
            now, removed = self.clock(), 0
            for space in (self._spaces or {}).values():
                for key in [k for k, r in space.rows.items() if not _alive(r, now)]:
                    if removed == limit:
                        break
                    self._remove(space, key, now)
                    removed += 1
                for key, (version, when) in list(space.tombstones.items()):
                    if when <= now - _logic.TOMBSTONE_TTL:
                        self._pruned = max(self._pruned, version)
                        del space.tombstones[key]
                space.claims = {
                    k: c for k, c in space.claims.items() if c[2] > now - _logic.IDEMPOTENCY_TTL
                }
            return removed

    # -- transactions ----------------------------------------------------------------

    def _write(
        self, space: _Space, ops: Sequence[Op], now: float, idem: Idempotency | None
    ) -> list[Any]:
        _logic.check_conflicts(ops, lambda key: self._live_version(space, key, now))
        saved = (dict(space.rows), dict(space.tombstones), space.day, space.writes)
        claims = dict(space.claims)
        bytes_before = space.size() if self.limits else 0
        try:  # undo log: everything is restored if an op or a limit fails
            budget = _logic.AnswerBudget(self.limits)
            results = [budget.take(self._apply(space, op, now)) for op in ops]
            if idem is not None:  # bounded per namespace, oldest out first, as on the SQL stores
                record = _logic.replay_record(ops, results)
                space.claims.pop(idem.key, None)
                space.claims[idem.key] = (idem.fingerprint, record, now)
                cap = _logic.replay_cap(self.limits)
                while space.replay_size() > cap and len(space.claims) > 1:
                    del space.claims[next(iter(space.claims))]
            if self.limits is not None:
                day = _logic.utc_day(now)
                space.writes = (space.writes if space.day == day else 0) + _logic.writes_in(
                    ops, results
                )
                space.day = day
                _logic.check_limits(
                    self.limits,
                    writes_today=space.writes,
                    bytes_before=bytes_before,
                    bytes_after=space.size(),
                    now=now,
                )
            return results
        except BaseException:
            space.rows, space.tombstones, space.day, space.writes = saved
            space.claims = claims
            raise

    def _replay(
        self, space: _Space, ops: Sequence[Op], idem: Idempotency, now: float
    ) -> list[Any] | None:
        """A repeat's answer: the writes' results as recorded, the reads run again."""
        record = space.claims.get(idem.key)
        if record is None or record[2] <= now - _logic.IDEMPOTENCY_TTL:
            return None
        _logic.check_replay(idem.fingerprint, record[0], idem.key)
        results, reads = _logic.replayed(ops, record[1])
        budget = _logic.AnswerBudget(self.limits)
        for i in reads:
            results[i] = budget.take(self._apply(space, ops[i], now))
        return results

    # -- rows ------------------------------------------------------------------------

    def _next_version(self) -> int:
        self._seq += 1
        return self._seq

    def _live(self, space: _Space, key: str, now: float) -> _Row | None:
        row = space.rows.get(key)
        return row if row is not None and _alive(row, now) else None

    def _live_version(self, space: _Space, key: str, now: float) -> int:
        row = self._live(space, key, now)
        return 0 if row is None else row.version

    def _set(
        self,
        space: _Space,
        key: str,
        data: bytes,
        ttl: float | None,
        expires: float | None,
        now: float,
    ) -> int:
        _logic.check_value_size(self.limits, key, data)
        old = self._live(space, key, now)
        version = self._next_version()
        created = now if old is None else old.created_at
        space.rows[key] = _Row(data, version, created, now, expires, ttl)
        space.tombstones.pop(key, None)  # written again: no longer deleted
        return version

    def _remove(self, space: _Space, key: str, now: float) -> _Row | None:
        row = space.rows.pop(key, None)
        if row is not None:
            space.tombstones[key] = (self._next_version(), now)
        return row

    def _apply(self, space: _Space, op: Op, now: float) -> Any:
        if isinstance(op, Get):
            row = self._live(space, op.key, now)
            if row is None:
                return None
            if op.refresh and row.ttl is not None:
                row.expires_at = now + row.ttl
            return row.record()
        if isinstance(op, Put):
            expires = None if op.ttl is None else now + op.ttl
            return self._set(space, op.key, op.data, op.ttl, expires, now)
        if isinstance(op, Delete):
            gone = self._remove(space, op.key, now)
            return gone is not None and _alive(gone, now)
        if isinstance(op, (Incr, Append)):
            old = self._live(space, op.key, now)
            current = None if old is None else old.data
            result: Any
            if isinstance(op, Incr):
                result, data = _logic.incremented(current, op.by)
            else:
                result, data = _logic.appended(current, op.items, op.max_len)
            old_ttl, old_expires = (None, None) if old is None else (old.ttl, old.expires_at)
            ttl, expires = _logic.resolve_ttl(
                op.ttl, op.new_ttl, old is not None, old_ttl, old_expires, now
            )
            self._set(space, op.key, data, ttl, expires, now)
            return result
        if isinstance(op, Touch):
            row = self._live(space, op.key, now)
            if row is None:
                return False
            row.ttl = op.ttl
            row.expires_at = None if op.ttl is None else now + op.ttl
            row.version = self._next_version()
            return True
        if isinstance(op, Count):
            return len(self._keys(space, op.prefix, now))
        if isinstance(op, Clear):
            live = len(self._keys(space, op.prefix, now))
            for key in self._keys(space, op.prefix, None):
                self._remove(space, key, now)
            return live
        if isinstance(op, ListKeys):
            keys = self._keys(space, op.prefix, now)
            if op.after is not None:
                keys = keys[bisect_right(keys, op.after) :]
            return keys[: op.limit]
        if isinstance(op, Scan):
            keys = self._keys(space, op.prefix, now)
            if op.after is not None:
                keys = keys[bisect_right(keys, op.after) :]
            return [(key, space.rows[key].record()) for key in keys[: op.limit]]
        if isinstance(op, Stats):
            writes = space.writes if space.day == _logic.utc_day(now) else 0
            return NamespaceStats(len(self._keys(space, "", now)), space.size(), writes)
        if isinstance(op, Changes):
            return self._changes(space, op)
        raise TypeError(f"unknown operation {op!r}")

    def _changes(self, space: _Space, op: Changes) -> ChangePage:
        def data(r: _Row) -> tuple[bytes | None, float | None]:
            return (r.data, r.expires_at) if op.values else (None, None)

        changes = [Change(k, r.version, False, *data(r)) for k, r in space.rows.items()]
        changes += [Change(k, v, True) for k, (v, _) in space.tombstones.items()]
        newest = max((c.version for c in changes), default=0)
        newer = (c for c in changes if c.version > op.since and c.key.startswith(op.prefix))
        page = sorted(newer, key=lambda c: c.version)[: op.limit]
        return _logic.feed_page(op, page, newest, self._pruned)

    def heads(self, namespaces: Sequence[str]) -> tuple[dict[str, int], bool]:
        """Each namespace's newest version, and whether one holds an item due for a sweep."""
        with self._lock:
            now, found, due = self.clock(), {}, False
            for name in namespaces:
                space = (self._spaces or {}).get(name)
                if space is None:
                    found[name] = 0
                    continue
                found[name] = max(
                    max((r.version for r in space.rows.values()), default=0),
                    max((v for v, _ in space.tombstones.values()), default=0),
                )
                due = due or any(not _alive(r, now) for r in space.rows.values())
            return found, due

    @staticmethod
    def _keys(space: _Space, prefix: str, now: float | None) -> list[str]:
        keys = sorted(k for k, r in space.rows.items() if now is None or _alive(r, now))
        if prefix:
            upper = _logic.prefix_upper(prefix)
            stop = None if upper is None else bisect_left(keys, upper)
            keys = keys[bisect_left(keys, prefix) : stop]
        return keys


def _alive(row: _Row, now: float) -> bool:
    return row.expires_at is None or row.expires_at > now
