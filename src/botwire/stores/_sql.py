"""Operations written once for both SQL stores, as I/O-free plans over a small dialect.

A plan is a generator that yields ``(sql, args)`` and receives the rows (or the
row count of a statement without rows); its return value is the op's result.
The SQLite and PostgreSQL stores drive the same plans with their own
connections (``drive`` here for SQLite's sync one; ``postgres.py`` has a sync
and an async driver). The dialect names what differs: the placeholder, the
table names and how a key's and a value's bytes are counted.

Written here, once: every operation (``Get``, ``Put``, ``Delete``, ``Incr``,
``Append``, ``Touch``, ``ListKeys``, ``Scan``, ``Count``, ``Clear``,
``Changes``) and the live-version check behind compare-and-set. What stays
in each store: transactions, locks, limits accounting and ``Stats`` (whose
counters each schema keeps its own way), and the drivers.
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

from ..ops import (
    Append,
    Change,
    ChangePage,
    Changes,
    Clear,
    Count,
    Delete,
    Get,
    Incr,
    ListKeys,
    Put,
    Record,
    Scan,
    Touch,
)
from . import _logic
from .base import Limits

Plan = Generator[tuple[str, Any], Any, Any]


class Dialect(NamedTuple):
    placeholder: str  # "?" or "%s"
    items: str  # table names
    tombstones: str
    meta: str
    size: str  # the bytes of an item's key and value, as SQL
    next_version: str  # the store-wide sequence's next value, as SQL


SQLITE = Dialect(
    "?",
    "items",
    "tombstones",
    "meta",
    "length(CAST(key AS BLOB)) + length(value)",
    "(SELECT v + 1 FROM meta WHERE k = 'seq')",  # triggers keep meta.seq (_sqlite_schema)
)
POSTGRES = Dialect(
    "%s",
    "botwire_items",
    "botwire_tombstones",
    "botwire_meta",
    "octet_length(key) + octet_length(value)",
    "nextval('botwire_version')",
)

RECORD = "value, version, created_at, updated_at, expires_at"


def record(row: tuple[Any, ...] | list[Any]) -> Record:
    return Record(bytes(row[0]), int(row[1]), row[2], row[3], row[4])


def live(d: Dialect) -> str:
    return f"(expires_at IS NULL OR expires_at > {d.placeholder})"


def _alive(expires_at: float | None, now: float) -> bool:
    return expires_at is None or expires_at > now


def _upsert(d: Dialect) -> str:
    """Insert or replace an item; a key that expired unswept counts as new (created again)."""
    p = d.placeholder
    return (
        f"INSERT INTO {d.items} VALUES ({p}, {p}, {p}, {d.next_version}, {p}, {p}, {p}, {p}) "
        "ON CONFLICT (ns, key) DO UPDATE SET value = excluded.value, version = excluded.version, "
        "updated_at = excluded.updated_at, expires_at = excluded.expires_at, ttl = excluded.ttl, "
        f"created_at = CASE WHEN {d.items}.expires_at <= excluded.updated_at "
        f"THEN excluded.created_at ELSE {d.items}.created_at END RETURNING version"
    )


# -- one key ---------------------------------------------------------------------------------


def get(d: Dialect, ns: str, op: Get, now: float) -> Plan:
    p = d.placeholder
    rows = yield (f"SELECT {RECORD} FROM {d.items} WHERE ns = {p} AND key = {p}", (ns, op.key))
    if not rows or not _alive(rows[0][4], now):
        return None
    found = record(rows[0])
    if op.refresh:  # sliding expiry: restart the clock from the key's own TTL
        refreshed = yield (
            f"UPDATE {d.items} SET expires_at = {p} + ttl "
            f"WHERE ns = {p} AND key = {p} AND ttl IS NOT NULL RETURNING expires_at",
            (now, ns, op.key),
        )
        if refreshed:
            return found._replace(expires_at=refreshed[0][0])
    return found


def put(d: Dialect, ns: str, op: Put, now: float, limits: Limits | None) -> Plan:
    _logic.check_value_size(limits, op.key, op.data)
    expires = None if op.ttl is None else now + op.ttl
    rows = yield (_upsert(d), (ns, op.key, op.data, now, now, expires, op.ttl))
    return int(rows[0][0])


def delete(d: Dialect, ns: str, op: Delete, now: float) -> Plan:
    p = d.placeholder
    rows = yield (
        f"DELETE FROM {d.items} WHERE ns = {p} AND key = {p} RETURNING expires_at",
        (ns, op.key),
    )
    return bool(rows) and _alive(rows[0][0], now)


def read_modify_write(
    d: Dialect, ns: str, op: Incr | Append, now: float, limits: Limits | None
) -> Plan:
    """``Incr`` and ``Append``: read, compute (``_logic``), write back, in the transaction."""
    p = d.placeholder
    rows = yield (
        f"SELECT value, expires_at, ttl FROM {d.items} WHERE ns = {p} AND key = {p}",
        (ns, op.key),
    )
    live_now = bool(rows) and _alive(rows[0][1], now)
    current = bytes(rows[0][0]) if live_now else None
    result: Any
    if isinstance(op, Incr):
        result, data = _logic.incremented(current, op.by)
    else:
        result, data = _logic.appended(current, op.items, op.max_len)
    _logic.check_value_size(limits, op.key, data)
    old_ttl, old_expires = (rows[0][2], rows[0][1]) if live_now else (None, None)
    ttl, expires = _logic.resolve_ttl(op.ttl, op.new_ttl, live_now, old_ttl, old_expires, now)
    yield (_upsert(d), (ns, op.key, data, now, now, expires, ttl))
    return result


def touch(d: Dialect, ns: str, op: Touch, now: float) -> Plan:
    p = d.placeholder
    expires = None if op.ttl is None else now + op.ttl
    changed = yield (
        f"UPDATE {d.items} SET expires_at = {p}, ttl = {p}, version = {d.next_version} "
        f"WHERE ns = {p} AND key = {p} AND {live(d)}",
        (expires, op.ttl, ns, op.key, now),
    )
    return changed > 0


def live_versions(d: Dialect, ns: str, keys: list[str], now: float) -> Plan:
    """``{key: version}`` of the live ones among ``keys`` (for compare-and-set), one query."""
    p = d.placeholder
    unique = list(dict.fromkeys(keys))
    rows = yield (
        f"SELECT key, version FROM {d.items} WHERE ns = {p} "
        f"AND key IN ({', '.join([p] * len(unique))}) AND {live(d)}",
        [ns, *unique, now],
    )
    return {key: int(version) for key, version in rows}


# -- key ranges --------------------------------------------------------------------------------


def key_range(
    d: Dialect, ns: str, prefix: str, after: str | None, now: float | None
) -> tuple[str, list[Any]]:
    """A WHERE clause for the keys of ``ns`` with ``prefix``, after ``after``, live at ``now``."""
    p = d.placeholder
    sql, args = [f"ns = {p}"], [ns]
    if prefix:
        sql.append(f"key >= {p}")
        args.append(prefix)
        upper = _logic.prefix_upper(prefix)
        if upper is not None:
            sql.append(f"key < {p}")
            args.append(upper)
    if after is not None:
        sql.append(f"key > {p}")
        args.append(after)
    if now is not None:
        sql.append(live(d))
        args.append(now)  # type: ignore[arg-type]
    return " AND ".join(sql), args


def _limit(op: ListKeys | Scan) -> str:
    return "" if op.limit is None else f" LIMIT {int(op.limit)}"


def list_keys(d: Dialect, ns: str, op: ListKeys, now: float) -> Plan:
    where, args = key_range(d, ns, op.prefix, op.after, now)
    rows = yield (f"SELECT key FROM {d.items} WHERE {where} ORDER BY key{_limit(op)}", args)
    return [row[0] for row in rows]


def scan(d: Dialect, ns: str, op: Scan, now: float, budget: _logic.AnswerBudget) -> Plan:
    """A page of items; with an answer budget, no row past the first over it is read."""
    where, args = key_range(d, ns, op.prefix, op.after, now)
    if not budget.limit:
        sql = f"SELECT key, {RECORD} FROM {d.items} WHERE {where} ORDER BY key{_limit(op)}"
        rows = yield (sql, args)
    else:
        rows = yield (
            f"SELECT key, {RECORD} FROM (SELECT key, {RECORD}, sum({d.size}) OVER "
            f"(ORDER BY key ROWS UNBOUNDED PRECEDING) AS run FROM {d.items} "
            f"WHERE {where} ORDER BY key{_limit(op)}) AS page "
            f"WHERE run - ({d.size}) <= {d.placeholder} ORDER BY key",
            [*args, max(budget.left, 0)],
        )
    return [(row[0], record(row[1:])) for row in rows]  # the caller counts them


def count(d: Dialect, ns: str, op: Count | Clear, now: float) -> Plan:
    where, args = key_range(d, ns, op.prefix, None, now)
    rows = yield (f"SELECT count(*) FROM {d.items} WHERE {where}", args)
    return int(rows[0][0])


def clear(d: Dialect, ns: str, op: Clear, now: float) -> Plan:
    """Delete the keys with the prefix (expired ones too: dead weight); how many were live."""
    alive = yield from count(d, ns, op, now)
    where, args = key_range(d, ns, op.prefix, None, None)
    yield (f"DELETE FROM {d.items} WHERE {where}", args)
    return alive


def changes(d: Dialect, ns: str, op: Changes) -> Plan:
    p = d.placeholder
    rows = yield (
        f"SELECT key, version, 0 FROM {d.items} WHERE ns = {p} AND version > {p} "
        f"UNION ALL SELECT key, version, 1 FROM {d.tombstones} "
        f"WHERE ns = {p} AND version > {p} ORDER BY 2 LIMIT {p}",
        (ns, op.since, ns, op.since, op.limit),
    )
    found = [Change(key, int(version), bool(deleted)) for key, version, deleted in rows]
    ((pruned,),) = yield (f"SELECT v FROM {d.meta} WHERE k = 'pruned'", ())
    return ChangePage(found, found[-1].version if found else op.since, op.since < pruned)


def drive(conn: Any, plan: Plan) -> Any:
    """Run ``plan`` on a DB-API connection: each statement, and its rows (or row count) back."""
    try:
        step = plan.send(None)
        while True:
            cursor = conn.execute(*step)
            step = plan.send(cursor.fetchall() if cursor.description else cursor.rowcount)
    except StopIteration as done:
        return done.value
