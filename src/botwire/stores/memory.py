"""The in-process store: a dict under one lock, for tests and examples.

Same semantics as the SQLite store (the conformance suite checks it), gone when
the process ends.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .._errors import StoreClosed
from .._ops import (
    Append,
    Clear,
    Count,
    Delete,
    Get,
    Incr,
    ListKeys,
    Op,
    Put,
    Record,
    Touch,
    is_read_only,
)
from . import _logic
from .base import Store


@dataclass(slots=True)
class _Row:
    data: bytes
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
    ttl: float | None


class MemoryStore(Store):
    """Items of every namespace in a dict of dicts; nothing touches the disk."""

    def __init__(self, *, clock: Callable[[], float] = time.time) -> None:
        self.clock = clock
        self._spaces: dict[str, dict[str, _Row]] | None = {}
        self._lock = threading.Lock()
        self._seq = 0

    def close(self) -> None:
        with self._lock:
            self._spaces = None

    def batch(self, namespace: str, ops: Sequence[Op]) -> list[Any]:
        with self._lock:
            if self._spaces is None:
                raise StoreClosed("the store is closed")
            rows = self._spaces.setdefault(namespace, {})
            now = self.clock()
            if is_read_only(ops):
                return [self._apply(rows, op, now) for op in ops]
            _logic.check_conflicts(ops, lambda key: self._live_version(rows, key, now))
            saved = dict(rows)  # undo log: restored if an op fails half way
            try:
                return [self._apply(rows, op, now) for op in ops]
            except BaseException:
                rows.clear()
                rows.update(saved)
                raise

    async def abatch(self, namespace: str, ops: Sequence[Op]) -> list[Any]:
        return self.batch(namespace, ops)  # no I/O: a thread would only add cost

    def sweep(self, limit: int = 1000) -> int:
        with self._lock:
            now, removed = self.clock(), 0
            for rows in (self._spaces or {}).values():
                for key in [k for k, r in rows.items() if not _alive(r, now)][: limit - removed]:
                    del rows[key]
                    removed += 1
            return removed

    def _next_version(self) -> int:
        self._seq += 1
        return self._seq

    def _live(self, rows: dict[str, _Row], key: str, now: float) -> _Row | None:
        row = rows.get(key)
        return row if row is not None and _alive(row, now) else None

    def _live_version(self, rows: dict[str, _Row], key: str, now: float) -> int:
        row = self._live(rows, key, now)
        return 0 if row is None else row.version

    def _write(
        self,
        rows: dict[str, _Row],
        key: str,
        data: bytes,
        ttl: float | None,
        expires: float | None,
        now: float,
    ) -> int:
        old = self._live(rows, key, now)
        version = self._next_version()
        created = now if old is None else old.created_at
        rows[key] = _Row(data, version, created, now, expires, ttl)
        return version

    def _apply(self, rows: dict[str, _Row], op: Op, now: float) -> Any:
        if isinstance(op, Get):
            row = self._live(rows, op.key, now)
            if row is None:
                return None
            if op.refresh and row.ttl is not None:
                row.expires_at = now + row.ttl
            return Record(row.data, row.version, row.created_at, row.updated_at, row.expires_at)
        if isinstance(op, Put):
            expires = None if op.ttl is None else now + op.ttl
            return self._write(rows, op.key, op.data, op.ttl, expires, now)
        if isinstance(op, Delete):
            gone = rows.pop(op.key, None)
            self._next_version()
            return gone is not None and _alive(gone, now)
        if isinstance(op, (Incr, Append)):
            old = self._live(rows, op.key, now)
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
            self._write(rows, op.key, data, ttl, expires, now)
            return result
        if isinstance(op, Touch):
            row = self._live(rows, op.key, now)
            if row is None:
                return False
            row.ttl = op.ttl
            row.expires_at = None if op.ttl is None else now + op.ttl
            row.version = self._next_version()
            return True
        if isinstance(op, Count):
            return len(self._keys(rows, op.prefix, now))
        if isinstance(op, Clear):
            live = len(self._keys(rows, op.prefix, now))
            for key in self._keys(rows, op.prefix, None):
                del rows[key]
            return live
        if isinstance(op, ListKeys):
            keys = self._keys(rows, op.prefix, now)
            if op.after is not None:
                keys = keys[bisect_right(keys, op.after) :]
            return keys[: op.limit]
        raise TypeError(f"unknown operation {op!r}")

    @staticmethod
    def _keys(rows: dict[str, _Row], prefix: str, now: float | None) -> list[str]:
        keys = sorted(k for k, r in rows.items() if now is None or _alive(r, now))
        if prefix:
            upper = _logic.prefix_upper(prefix)
            keys = keys[
                bisect_left(keys, prefix) : None if upper is None else bisect_left(keys, upper)
            ]
        return keys


def _alive(row: _Row, now: float) -> bool:
    return row.expires_at is None or row.expires_at > now
