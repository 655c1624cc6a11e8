"""Operations written once for both SQL stores, as I/O-free plans over a small dialect.

A plan is a generator that yields ``(sql, args)`` and receives the rows (or the
row count of a statement without rows); its return value is the op's result.
The SQLite and PostgreSQL stores drive the same plans with their own
connections (``drive`` here for SQLite's sync one; ``postgres.py`` has a sync
and an async driver). The dialect names what differs: the placeholder, the
table names and how a key's and a value's bytes are counted.

Written here, once: every operation (``Get``, ``Put``, ``Delete``, ``Incr``,
``Append``, ``Touch``, ``ListKeys``, ``Scan``, ``Count``, ``Clear``,
``Stats``, ``Changes``); the body of a read and of a write batch (replay,
compare-and-set, the answer budget, the replay record and its bound, the
write limits and the quota); and the sweep (expired items, old tombstones,
old replay records). What stays in each store: its connections,
transactions and locks, and the drivers.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Generator, Sequence
from typing import Any, NamedTuple

from .._errors import BotwireError, StoreError
from ..ops import (
    Append,
    Change,
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
)
from . import _logic
from .base import GroupItem, Limits

log = logging.getLogger("botwire")

Plan = Generator[tuple[str, Any], Any, Any]


class Dialect(NamedTuple):
    placeholder: str  # "?" or "%s"
    items: str  # table names
    tombstones: str
    meta: str
    ns_stats: str
    idempotency: str
    seq_marks: str
    size: str  # the bytes of an item's key and value, as SQL
    next_version: str  # the store-wide sequence's next value, as SQL
    last_version: str  # a query for its last value
    greatest: str  # the two-argument maximum function
    # A write's first statement where writers to a namespace must queue (it returns the
    # namespace's bytes); None where the whole database has one writer at a time.
    lock_namespace: str | None
    # From one batch's savepoint to the next one's, in as few round trips as it can.
    next_savepoint: tuple[str, ...]


SQLITE = Dialect(
    "?",
    "items",
    "tombstones",
    "meta",
    "ns_stats",
    "idempotency",
    "seq_marks",
    "length(CAST(key AS BLOB)) + length(value)",
    "(SELECT v + 1 FROM meta WHERE k = 'seq')",  # triggers keep meta.seq (_sqlite_schema)
    "SELECT v FROM meta WHERE k = 'seq'",
    "max",
    None,  # BEGIN IMMEDIATE: one writer for the whole file
    ("RELEASE SAVEPOINT one", "SAVEPOINT one"),
)
POSTGRES = Dialect(
    "%s",
    "botwire_items",
    "botwire_tombstones",
    "botwire_meta",
    "botwire_ns_stats",
    "botwire_idempotency",
    "botwire_seq_marks",
    "octet_length(key) + octet_length(value)",
    "nextval('botwire_version')",
    "SELECT last_value FROM botwire_version",
    "greatest",
    "INSERT INTO botwire_ns_stats (ns) VALUES (%s) ON CONFLICT (ns) "
    "DO UPDATE SET ns = excluded.ns RETURNING bytes",  # the row lock is held until commit
    ("RELEASE SAVEPOINT one; SAVEPOINT one",),
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
    """A page of the feed and, in the same statement (one snapshot), the namespace's newest
    version: where a reader stands once the page holds every change up to now."""
    p = d.placeholder
    where, args = key_range(d, ns, op.prefix, None, None)
    data = "value AS data, expires_at" if op.values else "NULL AS data, NULL AS expires_at"
    newest = f"coalesce((SELECT max(version) FROM {{}} WHERE ns = {p}), 0)"
    rows = yield (
        f"SELECT * FROM (SELECT key, version, 0 AS deleted, {data} FROM {d.items} "
        f"WHERE {where} AND version > {p} "
        f"UNION ALL SELECT key, version, 1, NULL, NULL FROM {d.tombstones} "
        f"WHERE {where} AND version > {p} ORDER BY 2 LIMIT {p}) AS feed "
        f"UNION ALL SELECT NULL, {d.greatest}({newest.format(d.items)}, "
        f"{newest.format(d.tombstones)}), 2, NULL, NULL",
        (*args, op.since, *args, op.since, op.limit, ns, ns),
    )
    found, head = [], 0
    for key, version, deleted, value, expires_at in rows:
        if deleted == 2:
            head = int(version)
        else:
            stored = None if value is None else bytes(value)
            found.append(Change(key, int(version), bool(deleted), stored, expires_at))
    found.sort(key=lambda c: c.version)
    ((pruned,),) = yield (f"SELECT v FROM {d.meta} WHERE k = 'pruned'", ())
    return _logic.feed_page(op, found, head, int(pruned))


def heads(d: Dialect, namespaces: Sequence[str], now: float) -> Plan:
    """``({namespace: newest version}, whether one of them holds an item due for a sweep)``:
    what a watcher of those namespaces polls, one index lookup per namespace."""
    p = d.placeholder
    found: dict[str, int] = {}
    due = False
    for start in range(0, len(namespaces), 500):
        chunk = list(namespaces[start : start + 500])
        names = ", ".join([f"({p})"] * len(chunk))
        rows = yield (
            f"WITH n(ns) AS (VALUES {names}) SELECT n.ns, "
            f"coalesce((SELECT max(version) FROM {d.items} AS i WHERE i.ns = n.ns), 0), "
            f"coalesce((SELECT max(version) FROM {d.tombstones} AS t WHERE t.ns = n.ns), 0) "
            "FROM n",
            chunk,
        )
        found.update((ns, max(int(a), int(b))) for ns, a, b in rows)
        if not due:
            marks = ", ".join([p] * len(chunk))
            due = bool(
                (
                    yield (
                        f"SELECT 1 FROM {d.items} WHERE expires_at <= {p} "
                        f"AND ns IN ({marks}) LIMIT 1",
                        (now, *chunk),
                    )
                )
            )
    return found, due


def stats(d: Dialect, ns: str, now: float, accounting: bool) -> Plan:
    """Live keys, and bytes and today's writes from the counters where they are kept."""
    keys = yield from count(d, ns, Count(), now)
    p = d.placeholder
    if not accounting:
        rows = yield (f"SELECT coalesce(sum({d.size}), 0) FROM {d.items} WHERE ns = {p}", (ns,))
        return NamespaceStats(keys, int(rows[0][0]), 0)
    rows = yield (f"SELECT bytes, day, writes FROM {d.ns_stats} WHERE ns = {p}", (ns,))
    if not rows:
        return NamespaceStats(keys, 0, 0)
    size, day, writes = rows[0]
    return NamespaceStats(keys, int(size), int(writes) if day == _logic.utc_day(now) else 0)


def namespaces(
    d: Dialect, prefix: str, after: str | None, limit: int, now: float, accounting: bool
) -> Plan:
    """A page of the namespaces that hold live keys, in order, with their stats (never
    botwire's own, whose names start with ``!``)."""
    p = d.placeholder
    where, args = f"substr(ns, 1, {p}) = {p} AND substr(ns, 1, 1) <> '!'", [len(prefix), prefix]
    if after is not None:
        where += f" AND ns > {p}"
        args.append(after)
    rows = yield (
        f"SELECT ns, sum(CASE WHEN expires_at IS NULL OR expires_at > {p} THEN 1 ELSE 0 END), "
        f"coalesce(sum({d.size}), 0) FROM {d.items} WHERE {where} GROUP BY ns "
        f"HAVING sum(CASE WHEN expires_at IS NULL OR expires_at > {p} THEN 1 ELSE 0 END) > 0 "
        f"ORDER BY ns LIMIT {p}",
        (now, *args, now, limit),
    )
    found = [NamespaceInfo(str(ns), int(keys), int(size), 0) for ns, keys, size in rows]
    if not accounting or not found:
        return found
    names = [info.namespace for info in found]
    counted = yield (
        f"SELECT ns, bytes, day, writes FROM {d.ns_stats} "
        f"WHERE ns IN ({', '.join([p] * len(names))})",
        tuple(names),
    )
    today = _logic.utc_day(now)
    kept = {ns: (int(size), int(n) if day == today else 0) for ns, size, day, n in counted}
    return [
        info._replace(bytes=kept[info.namespace][0], writes_today=kept[info.namespace][1])
        if info.namespace in kept
        else info
        for info in found
    ]


# -- batches: every op, a read, a write ----------------------------------------------------------


class Scope(NamedTuple):
    """What the plans of one store need to know besides the dialect."""

    dialect: Dialect
    limits: Limits | None  # None: no limit is on
    accounting: bool  # whether the per-namespace counters (ns_stats) are kept


def apply(s: Scope, ns: str, op: Op, now: float, budget: _logic.AnswerBudget) -> Plan:
    """One op's plan; what it returns is counted against ``budget`` by the caller."""
    d, kind = s.dialect, type(op)
    if kind is Get:
        return (yield from get(d, ns, op, now))  # type: ignore[arg-type]
    if kind is Put:
        return (yield from put(d, ns, op, now, s.limits))  # type: ignore[arg-type]
    if kind is Delete:
        return (yield from delete(d, ns, op, now))  # type: ignore[arg-type]
    if kind is Incr or kind is Append:
        return (yield from read_modify_write(d, ns, op, now, s.limits))  # type: ignore[arg-type]
    if kind is Touch:
        return (yield from touch(d, ns, op, now))  # type: ignore[arg-type]
    if kind is ListKeys:
        return (yield from list_keys(d, ns, op, now))  # type: ignore[arg-type]
    if kind is Scan:  # counted row by row: a scan is refused before it is whole
        return (yield from scan(d, ns, op, now, budget))  # type: ignore[arg-type]
    if kind is Count:
        return (yield from count(d, ns, op, now))  # type: ignore[arg-type]
    if kind is Clear:
        return (yield from clear(d, ns, op, now))  # type: ignore[arg-type]
    if kind is Stats:
        return (yield from stats(d, ns, now, s.accounting))
    if kind is Changes:
        return (yield from changes(d, ns, op))  # type: ignore[arg-type]
    raise TypeError(f"not an operation: {op!r}")


def read(s: Scope, ns: str, ops: Sequence[Op], now: float) -> Plan:
    """A read-only batch (the caller holds one snapshot around it)."""
    budget = _logic.AnswerBudget(s.limits)
    results = []
    for op in ops:
        results.append(budget.take((yield from apply(s, ns, op, now, budget))))
    return results


class Txn:
    """What one write transaction knows across its batches (a lone batch has its own).

    ``held``: the namespaces it has locked, with their bytes now. ``records``:
    idempotency rows read ahead, ``(ns, key) -> (fingerprint, results,
    claimed_at)`` or ``None`` for absent (``None`` as a whole: not read ahead).
    ``recorded``: the replay records it wrote, per namespace, bounded at its end.
    """

    __slots__ = ("held", "recorded", "records")

    def __init__(self) -> None:
        self.held: dict[str, int] = {}
        self.records: dict[tuple[str, str], tuple[str, bytes, float] | None] | None = None
        self.recorded: dict[str, list[str]] = {}


def write(
    s: Scope,
    ns: str,
    ops: Sequence[Op],
    idem: Idempotency | None,
    now: float,
    txn: Txn | None = None,
) -> Plan:
    """The body of a write transaction: replay, checks, ops, the replay record, limits.

    The idempotency record is written in this same transaction: after a crash
    the key is either absent (a retry applies the batch once) or present with
    its answer (a retry replays it). Writers to the namespace queue (the
    dialect's lock, or the file's write lock), so a duplicate waits for the
    first and then replays it. A lone batch (no ``txn``) bounds its namespace's
    replay records itself; a group does once at its end (:func:`write_group`).
    """
    lone = txn is None
    t = Txn() if txn is None else txn
    d, p = s.dialect, s.dialect.placeholder
    bytes_before = 0
    if ns in t.held:
        bytes_before = t.held[ns]
    elif d.lock_namespace is not None:
        ((bytes_before,),) = yield (d.lock_namespace, (ns,))
    elif s.limits is not None:
        rows = yield (f"SELECT bytes FROM {d.ns_stats} WHERE ns = {p}", (ns,))
        bytes_before = rows[0][0] if rows else 0
    budget = _logic.AnswerBudget(s.limits)
    found = None
    if idem is not None:
        if t.records is not None:
            found = t.records.get((ns, idem.key))
        else:
            rows = yield (
                f"SELECT fingerprint, results, claimed_at FROM {d.idempotency} "
                f"WHERE ns = {p} AND key = {p}",
                (ns, idem.key),
            )
            found = (rows[0][0], bytes(rows[0][1]), rows[0][2]) if rows else None
        if found is not None and found[2] > now - _logic.IDEMPOTENCY_TTL:
            # a repeat: the writes' answers as recorded, the reads run again
            _logic.check_replay(idem.fingerprint, found[0], idem.key)
            replay, reads = _logic.replayed(ops, found[1])
            for i in reads:
                replay[i] = budget.take((yield from apply(s, ns, ops[i], now, budget)))
            return replay
    guarded = _logic.guarded_keys(ops)
    if guarded:
        versions = yield from live_versions(d, ns, guarded, now)
        _logic.check_conflicts(ops, lambda key: versions.get(key, 0))
    results = []
    for op in ops:
        results.append(budget.take((yield from apply(s, ns, op, now, budget))))
    record_ = b""
    if idem is not None:  # in this transaction: the write and its record commit together
        if found is not None:  # an expired record of the same key
            yield (f"DELETE FROM {d.idempotency} WHERE ns = {p} AND key = {p}", (ns, idem.key))
        record_ = _logic.replay_record(ops, results)
        yield (
            f"INSERT INTO {d.idempotency} VALUES ({p}, {p}, {p}, {p}, {p})",
            (ns, idem.key, idem.fingerprint, record_, now),
        )
    if s.accounting:  # in the same transaction as the writes: no race lets one more through
        day = _logic.utc_day(now)
        ((writes_today, bytes_after),) = yield (
            f"INSERT INTO {d.ns_stats} (ns, day, writes) VALUES ({p}, {p}, {p}) "
            f"ON CONFLICT (ns) DO UPDATE SET writes = CASE WHEN {d.ns_stats}.day = excluded.day "
            f"THEN {d.ns_stats}.writes + excluded.writes ELSE excluded.writes END, "
            "day = excluded.day RETURNING writes, bytes",
            (ns, day, _logic.writes_in(ops, results)),
        )
        if s.limits is not None:
            _logic.check_limits(
                s.limits,
                writes_today=writes_today,
                bytes_before=bytes_before,
                bytes_after=bytes_after,
                now=now,
            )
        if ns in t.held or d.lock_namespace is not None:
            t.held[ns] = bytes_after
    if idem is not None:  # only now, when nothing in this batch can fail any more
        t.recorded.setdefault(ns, []).append(idem.key)
        if t.records is not None:  # a later batch of the group with this key replays it
            t.records[(ns, idem.key)] = (idem.fingerprint, record_, now)
        if lone:
            yield from bound_replays(s, t)
    return results


def read_ahead(s: Scope, group: Sequence[GroupItem]) -> Plan:
    """The idempotency rows of a group's keyed batches, in one query."""
    d, p = s.dialect, s.dialect.placeholder
    wanted = list(dict.fromkeys((ns, idem.key) for ns, _, idem in group if idem is not None))
    found: dict[tuple[str, str], tuple[str, bytes, float] | None] = dict.fromkeys(wanted)
    for start in range(0, len(wanted), 200):
        chunk = wanted[start : start + 200]
        rows = yield (  # ORed pairs: both engines use the primary key (a row-value IN scans)
            f"SELECT ns, key, fingerprint, results, claimed_at FROM {d.idempotency} "
            f"WHERE {' OR '.join([f'(ns = {p} AND key = {p})'] * len(chunk))}",
            [part for pair in chunk for part in pair],
        )
        for ns, key, fingerprint, results, claimed_at in rows:
            found[(ns, key)] = (fingerprint, bytes(results), claimed_at)
    return found


def bound_replays(s: Scope, t: Txn) -> Plan:
    """Past a namespace's replay bound, drop its oldest records (never this transaction's)."""
    if not s.accounting:
        return
    d, p = s.dialect, s.dialect.placeholder
    cap = _logic.replay_cap(s.limits)
    for ns, keys in t.recorded.items():
        keep = ", ".join([p] * len(keys))
        for _ in range(_logic.MAX_EVICTION_ROUNDS):
            ((held,),) = yield (f"SELECT replay FROM {d.ns_stats} WHERE ns = {p}", (ns,))
            if held <= cap:
                break
            yield (
                f"DELETE FROM {d.idempotency} WHERE (ns, key) IN (SELECT ns, key "
                f"FROM {d.idempotency} WHERE ns = {p} AND key NOT IN ({keep}) "
                "ORDER BY claimed_at LIMIT 64)",
                (ns, *keys),
            )


def write_group(s: Scope, group: Sequence[GroupItem], now: float) -> Plan:
    """Several write batches in one transaction, each atomic and failing on its own.

    Each batch runs in a savepoint: whatever it raises (a ``Conflict``, a
    limit, a statement the driver classifies as the batch's own failure)
    undoes that batch alone and becomes its answer. The namespaces are locked
    first, in order, so groups, lone writes and the sweep never deadlock; the
    keyed batches' idempotency rows are read in one query, and the replay
    records bounded once per namespace at the end.
    """
    d = s.dialect
    t = Txn()
    if d.lock_namespace is not None:
        for ns in sorted({ns for ns, _, _ in group}):
            ((t.held[ns],),) = yield (d.lock_namespace, (ns,))
    t.records = yield from read_ahead(s, group)
    answers: list[list[Any] | BotwireError] = []
    yield ("SAVEPOINT one", ())
    for i, (ns, ops, idem) in enumerate(group):
        if i:
            for statement in d.next_savepoint:
                yield (statement, ())
        try:
            answers.append((yield from write(s, ns, ops, idem, now, t)))
        except Exception as exc:
            yield ("ROLLBACK TO SAVEPOINT one", ())
            answers.append(batch_error(exc))
    yield from bound_replays(s, t)
    return answers  # the commit releases the last savepoint


def batch_error(exc: Exception) -> BotwireError:
    """What one batch of a group answers when it raised ``exc`` (the others go on)."""
    if isinstance(exc, BotwireError):
        return exc
    log.exception("a write batch failed (it alone was rolled back)")
    return StoreError(f"the batch failed: {type(exc).__name__}")


# -- the sweep ----------------------------------------------------------------------------------


def sweep(d: Dialect, now: float, limit: int) -> Plan:
    """Delete up to ``limit`` expired items; forget old tombstones and old replay records.

    Each namespace is locked like a write before its rows go (namespaces in
    order, so a sweep and the writers never deadlock); how many items went.
    """
    p = d.placeholder
    rows = yield (
        f"SELECT DISTINCT ns FROM (SELECT ns FROM {d.items} "
        f"WHERE expires_at <= {p} LIMIT {p}) AS due ORDER BY ns",
        (now, limit),
    )
    removed = 0
    for (ns,) in rows:
        if removed >= limit:
            break
        if d.lock_namespace is not None:
            yield (d.lock_namespace, (ns,))
        removed += yield (
            f"DELETE FROM {d.items} WHERE (ns, key) IN (SELECT ns, key FROM {d.items} "
            f"WHERE ns = {p} AND expires_at <= {p} LIMIT {p})",
            (ns, now, limit - removed),
        )
    yield from _prune(d, now)
    return removed


def _prune(d: Dialect, now: float) -> Plan:
    """Tombstones older than ``TOMBSTONE_TTL`` go (each sweep marks the sequence with the time:
    those at or below the newest mark that old), and replay records past their TTL."""
    p = d.placeholder
    yield (f"INSERT INTO {d.seq_marks} SELECT {p}, ({d.last_version})", (now,))
    rows = yield (
        f"SELECT at, seq FROM {d.seq_marks} WHERE at <= {p} ORDER BY seq DESC LIMIT 1",
        (now - _logic.TOMBSTONE_TTL,),
    )
    if rows:
        at, cutoff = rows[0]
        yield (f"DELETE FROM {d.tombstones} WHERE version <= {p}", (cutoff,))
        yield (f"UPDATE {d.meta} SET v = {d.greatest}(v, {p}) WHERE k = 'pruned'", (cutoff,))
        yield (f"DELETE FROM {d.seq_marks} WHERE at < {p}", (at,))
    yield (
        f"DELETE FROM {d.idempotency} WHERE claimed_at <= {p}",
        (now - _logic.IDEMPOTENCY_TTL,),
    )


# What a driver makes of a statement's exception: a BotwireError the plan may catch (the
# statement failed, its transaction goes on), or None to end the plan with the exception.
Classify = Callable[[Any, Exception], BotwireError | None]


def fatal(conn: Any, exc: Exception) -> BotwireError | None:
    """Every failed statement ends the plan (the default)."""
    return None


def drive(conn: Any, plan: Plan, classify: Classify = fatal) -> Any:
    """Run ``plan`` on a DB-API connection: each statement, and its rows (or row count) back.

    A statement that fails raises into the plan what ``classify`` makes of it,
    or ends the plan with the original exception.
    """
    try:
        step = plan.send(None)
        while True:
            try:
                cursor = conn.execute(*step)
            except Exception as exc:
                local = classify(conn, exc)
                if local is None:
                    plan.close()
                    raise
                step = throw(plan, local, exc)
                continue
            step = plan.send(cursor.fetchall() if cursor.description else cursor.rowcount)
    except StopIteration as done:
        return done.value


def throw(plan: Plan, error: BotwireError, cause: Exception) -> tuple[str, Any]:
    """Raise ``error`` (caused by ``cause``) inside ``plan``; its next statement."""
    error.__cause__ = cause
    return plan.throw(error)
