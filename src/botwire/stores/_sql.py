"""Operations written once for both SQL stores, as I/O-free plans over a small dialect.

A plan is a generator that yields ``(sql, args)`` and receives the rows (or the
row count of a statement without rows); its return value is the op's result.
The SQLite and PostgreSQL stores drive the same plans with their own
connections (``drive`` here for SQLite's sync one; ``postgres.py`` has a sync
and an async driver). The dialect names what differs: the placeholder, the
table names and how a key's and a value's bytes are counted.

Written here: the key-range operations (``ListKeys``, ``Scan``, ``Count``,
``Clear``) and the change feed (``Changes``). The single-key writes still live
in each store (their version sequences differ: a trigger-kept counter in
SQLite, a sequence in PostgreSQL).
"""

from __future__ import annotations

from collections.abc import Generator
from typing import Any, NamedTuple

from ..ops import Change, ChangePage, Changes, Clear, Count, ListKeys, Record, Scan
from . import _logic

Plan = Generator[tuple[str, Any], Any, Any]


class Dialect(NamedTuple):
    placeholder: str  # "?" or "%s"
    items: str  # table names
    tombstones: str
    meta: str
    size: str  # the bytes of an item's key and value, as SQL


SQLITE = Dialect("?", "items", "tombstones", "meta", "length(CAST(key AS BLOB)) + length(value)")
POSTGRES = Dialect(
    "%s",
    "botwire_items",
    "botwire_tombstones",
    "botwire_meta",
    "octet_length(key) + octet_length(value)",
)

RECORD = "value, version, created_at, updated_at, expires_at"


def record(row: tuple[Any, ...] | list[Any]) -> Record:
    return Record(bytes(row[0]), int(row[1]), row[2], row[3], row[4])


def live(d: Dialect) -> str:
    return f"(expires_at IS NULL OR expires_at > {d.placeholder})"


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
