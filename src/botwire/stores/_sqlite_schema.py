"""The SQLite schema: tables, indexes and the triggers that keep counters exact.

Triggers do the bookkeeping inside the very statement that writes an item, so
no code path (a sweep, a clear, another process on the same file) can leave a
counter behind:

* the store-wide version sequence (``meta.seq``): every statement that writes
  a version takes ``NEXT_VERSION``, and a trigger records it;
* tombstones: a deleted or swept item leaves its key with a new version, so the
  change feed reports deletions (for 7 days: sweeps drop older ones by version,
  through ``seq_marks``, so no trigger needs a clock);
* with ``accounting`` (a server's database), bytes per namespace in
  ``ns_stats``, and an index on ``(ns, version)`` for the change feed. Off for
  embedded use: each costs one more B-tree page per write.

Created idempotently; ``PRAGMA user_version`` records the schema version.
"""

from __future__ import annotations

import sqlite3

from .._errors import StoreError

SCHEMA_VERSION = 1
NEXT_VERSION = "(SELECT v + 1 FROM meta WHERE k = 'seq')"
_SIZE = "(length(CAST({row}.key AS BLOB)) + length({row}.value))"

ITEMS_TABLE = (
    """CREATE TABLE IF NOT EXISTS items (
        ns TEXT NOT NULL,
        key TEXT NOT NULL,
        value BLOB NOT NULL,
        version INTEGER NOT NULL,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        expires_at REAL,
        ttl REAL,
        PRIMARY KEY (ns, key)
    )""",  # a rowid table: with ~1 KB values it beats WITHOUT ROWID on get and set
    "CREATE INDEX IF NOT EXISTS items_expiry ON items (expires_at) WHERE expires_at IS NOT NULL",
)
_CORE = (
    "CREATE TABLE IF NOT EXISTS meta (k TEXT PRIMARY KEY, v INTEGER NOT NULL) WITHOUT ROWID",
    "INSERT OR IGNORE INTO meta VALUES ('seq', 0)",
    "INSERT OR IGNORE INTO meta VALUES ('pruned', 0)",  # newest version of a dropped tombstone
    """CREATE TRIGGER IF NOT EXISTS items_seq_insert AFTER INSERT ON items
    BEGIN UPDATE meta SET v = NEW.version WHERE k = 'seq'; END""",
    """CREATE TRIGGER IF NOT EXISTS items_seq_update AFTER UPDATE OF version ON items
    BEGIN UPDATE meta SET v = NEW.version WHERE k = 'seq'; END""",
    """CREATE TABLE IF NOT EXISTS tombstones (
        ns TEXT NOT NULL, key TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (ns, key)
    )""",
    "CREATE INDEX IF NOT EXISTS tombstones_feed ON tombstones (ns, version)",
    f"""CREATE TRIGGER IF NOT EXISTS items_tombstone AFTER DELETE ON items BEGIN
        INSERT INTO tombstones VALUES (OLD.ns, OLD.key, {NEXT_VERSION})
        ON CONFLICT (ns, key) DO UPDATE SET version = excluded.version;
        UPDATE meta SET v = v + 1 WHERE k = 'seq';
    END""",
    # A key written again is no longer deleted: the feed holds it once, at its new version.
    """CREATE TRIGGER IF NOT EXISTS items_untombstone AFTER INSERT ON items BEGIN
        DELETE FROM tombstones WHERE ns = NEW.ns AND key = NEW.key;
    END""",
    # Each sweep notes (time, sequence); tombstones older than a mark 7 days old go.
    "CREATE TABLE IF NOT EXISTS seq_marks (at REAL NOT NULL, seq INTEGER NOT NULL)",
    """CREATE TABLE IF NOT EXISTS idempotency (
        ns TEXT NOT NULL, key TEXT NOT NULL, fingerprint TEXT NOT NULL,
        results BLOB, claimed_at REAL NOT NULL, PRIMARY KEY (ns, key)
    )""",
)
# The change feed's index: made with the accounting (a server's file), else by the first
# read of the feed (``SqliteStore``), so embedded writers who never read it never pay for it.
FEED_INDEX = "CREATE INDEX IF NOT EXISTS items_feed ON items (ns, version)"
_ACCOUNTING = (
    """CREATE TABLE IF NOT EXISTS ns_stats (
        ns TEXT PRIMARY KEY, bytes INTEGER NOT NULL DEFAULT 0,
        day INTEGER NOT NULL DEFAULT 0, writes INTEGER NOT NULL DEFAULT 0
    ) WITHOUT ROWID""",
    FEED_INDEX,
    f"""CREATE TRIGGER IF NOT EXISTS items_bytes_insert AFTER INSERT ON items BEGIN
        INSERT INTO ns_stats (ns, bytes) VALUES (NEW.ns, {_SIZE.format(row="NEW")})
        ON CONFLICT (ns) DO UPDATE SET bytes = bytes + excluded.bytes;
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS items_bytes_update AFTER UPDATE OF value ON items BEGIN
        UPDATE ns_stats SET bytes = bytes + {_SIZE.format(row="NEW")} - {_SIZE.format(row="OLD")}
        WHERE ns = NEW.ns;
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS items_bytes_delete AFTER DELETE ON items BEGIN
        UPDATE ns_stats SET bytes = bytes - {_SIZE.format(row="OLD")} WHERE ns = OLD.ns;
    END""",
)
# Replay records (idempotency) are counted per namespace apart from items (``replay``):
# a namespace's records are bounded by its quota, the oldest dropped first.
_RECORD_SIZE = (
    "(length(CAST({row}.key AS BLOB)) + length({row}.fingerprint) + length({row}.results))"
)
_REPLAY_ACCOUNTING = (
    "ALTER TABLE ns_stats ADD COLUMN replay INTEGER NOT NULL DEFAULT 0",
    "CREATE INDEX IF NOT EXISTS idempotency_age ON idempotency (ns, claimed_at)",
    "DELETE FROM idempotency WHERE results IS NULL",  # claims of earlier versions
    f"""UPDATE ns_stats SET replay = (SELECT coalesce(sum({_RECORD_SIZE.format(row="i")}), 0)
        FROM idempotency AS i WHERE i.ns = ns_stats.ns)""",
    f"""CREATE TRIGGER IF NOT EXISTS idempotency_replay_insert AFTER INSERT ON idempotency BEGIN
        INSERT INTO ns_stats (ns, replay) VALUES (NEW.ns, {_RECORD_SIZE.format(row="NEW")})
        ON CONFLICT (ns) DO UPDATE SET replay = replay + excluded.replay;
    END""",
    f"""CREATE TRIGGER IF NOT EXISTS idempotency_replay_delete AFTER DELETE ON idempotency BEGIN
        UPDATE ns_stats SET replay = replay - {_RECORD_SIZE.format(row="OLD")} WHERE ns = OLD.ns;
    END""",
)
# Bytes of items written before accounting was switched on.
_BACKFILL = f"""INSERT INTO ns_stats (ns, bytes)
    SELECT ns, sum({_SIZE.format(row="items")}) FROM items WHERE true GROUP BY ns
    ON CONFLICT (ns) DO UPDATE SET bytes = excluded.bytes"""


def create(conn: sqlite3.Connection, path: str, *, accounting: bool) -> None:
    """Create or complete the schema in one immediate transaction (safe to race)."""
    if conn.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower() != "wal":
        raise StoreError(f"{path}: could not switch to WAL (a network file system?)")
    conn.execute("BEGIN IMMEDIATE")
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    if found > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema {found}; this botwire knows {SCHEMA_VERSION}")
    for statement in ITEMS_TABLE + _CORE:
        conn.execute(statement)
    if accounting and not has_accounting(conn):
        for statement in _ACCOUNTING:
            conn.execute(statement)
        conn.execute(_BACKFILL)
    if has_accounting(conn) and not _has_replay_accounting(conn):
        for statement in _REPLAY_ACCOUNTING:
            conn.execute(statement)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
    conn.execute("COMMIT")


def _has_replay_accounting(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'idempotency_replay_delete'"
    ).fetchone()
    return row is not None


def has_accounting(conn: sqlite3.Connection) -> bool:
    row = conn.execute(
        "SELECT 1 FROM sqlite_master WHERE type = 'trigger' AND name = 'items_bytes_delete'"
    ).fetchone()
    return row is not None
