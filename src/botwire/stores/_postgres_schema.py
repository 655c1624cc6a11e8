"""The PostgreSQL schema, as versioned migrations applied once, whoever starts first.

``migrate`` takes a transaction-scoped advisory lock (one per schema), reads
``botwire_migrations``, applies what is missing in order, records each, and
commits: replicas starting together wait for the first, then find nothing to
do. Migrations use plain ``CREATE`` (no ``IF NOT EXISTS``), so one applied
twice would fail loudly rather than pass silently.

Triggers keep the bookkeeping in the statement that writes an item, so no
path (a sweep, a clear, another replica) leaves a counter behind: bytes per
namespace in ``botwire_ns_stats``, and tombstones (with a new version from
the shared sequence) for the change feed. Keys use the "C" collation: byte
order, which for UTF-8 is code point order, as every botwire store sorts.
"""

from __future__ import annotations

from typing import Any

_SIZE = "(octet_length({row}.key) + octet_length({row}.value))"
_RECORD_SIZE = (
    "(octet_length({row}.key) + octet_length({row}.fingerprint) + octet_length({row}.results))"
)

MIGRATIONS: list[tuple[int, str, list[str]]] = [
    (
        1,
        "items, versions, tombstones, namespace counters, idempotency",
        [
            "CREATE SEQUENCE botwire_version",
            """CREATE TABLE botwire_items (
                ns text NOT NULL,
                key text COLLATE "C" NOT NULL,
                value bytea NOT NULL,
                version bigint NOT NULL,
                created_at double precision NOT NULL,
                updated_at double precision NOT NULL,
                expires_at double precision,
                ttl double precision,
                PRIMARY KEY (ns, key)
            )""",
            "CREATE INDEX botwire_items_expiry ON botwire_items (expires_at) "
            "WHERE expires_at IS NOT NULL",
            "CREATE INDEX botwire_items_feed ON botwire_items (ns, version)",
            """CREATE TABLE botwire_tombstones (
                ns text NOT NULL, key text COLLATE "C" NOT NULL, version bigint NOT NULL,
                PRIMARY KEY (ns, key)
            )""",
            "CREATE INDEX botwire_tombstones_feed ON botwire_tombstones (ns, version)",
            # Each sweep notes (time, sequence); tombstones older than a 7-day-old mark go.
            "CREATE TABLE botwire_seq_marks (at double precision NOT NULL, seq bigint NOT NULL)",
            "CREATE TABLE botwire_meta (k text PRIMARY KEY, v bigint NOT NULL)",
            "INSERT INTO botwire_meta VALUES ('pruned', 0)",
            """CREATE TABLE botwire_ns_stats (
                ns text PRIMARY KEY,
                bytes bigint NOT NULL DEFAULT 0,
                day integer NOT NULL DEFAULT 0,
                writes bigint NOT NULL DEFAULT 0
            )""",
            """CREATE TABLE botwire_idempotency (
                ns text NOT NULL, key text NOT NULL, fingerprint text NOT NULL,
                results bytea NOT NULL, claimed_at double precision NOT NULL,
                PRIMARY KEY (ns, key)
            )""",
            f"""CREATE FUNCTION botwire_items_changed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO botwire_ns_stats (ns, bytes)
                    VALUES (NEW.ns, {_SIZE.format(row="NEW")})
                    ON CONFLICT (ns) DO UPDATE SET bytes = botwire_ns_stats.bytes + excluded.bytes;
                    DELETE FROM botwire_tombstones WHERE ns = NEW.ns AND key = NEW.key;
                    RETURN NEW;
                ELSIF TG_OP = 'UPDATE' THEN
                    UPDATE botwire_ns_stats
                    SET bytes = bytes + {_SIZE.format(row="NEW")} - {_SIZE.format(row="OLD")}
                    WHERE ns = NEW.ns;
                    RETURN NEW;
                ELSE
                    UPDATE botwire_ns_stats SET bytes = bytes - {_SIZE.format(row="OLD")}
                    WHERE ns = OLD.ns;
                    INSERT INTO botwire_tombstones
                    VALUES (OLD.ns, OLD.key, nextval('botwire_version'))
                    ON CONFLICT (ns, key) DO UPDATE SET version = excluded.version;
                    RETURN OLD;
                END IF;
            END $$""",
            "CREATE TRIGGER botwire_items_changed AFTER INSERT OR UPDATE OR DELETE "
            "ON botwire_items FOR EACH ROW EXECUTE FUNCTION botwire_items_changed()",
        ],
    ),
    (
        2,
        "replay records are bounded per namespace (counted apart from items)",
        [
            "ALTER TABLE botwire_ns_stats ADD COLUMN replay bigint NOT NULL DEFAULT 0",
            "CREATE INDEX botwire_idempotency_age ON botwire_idempotency (ns, claimed_at)",
            f"""UPDATE botwire_ns_stats AS s SET replay = r.size
            FROM (SELECT ns, sum({_RECORD_SIZE.format(row="i")}) AS size
                  FROM botwire_idempotency AS i GROUP BY ns) AS r
            WHERE s.ns = r.ns""",
            f"""CREATE FUNCTION botwire_idempotency_changed() RETURNS trigger
            LANGUAGE plpgsql AS $$
            BEGIN
                IF TG_OP = 'INSERT' THEN
                    INSERT INTO botwire_ns_stats (ns, replay)
                    VALUES (NEW.ns, {_RECORD_SIZE.format(row="NEW")})
                    ON CONFLICT (ns) DO UPDATE
                    SET replay = botwire_ns_stats.replay + excluded.replay;
                    RETURN NEW;
                ELSIF TG_OP = 'UPDATE' THEN
                    UPDATE botwire_ns_stats SET replay = replay
                        + {_RECORD_SIZE.format(row="NEW")} - {_RECORD_SIZE.format(row="OLD")}
                    WHERE ns = NEW.ns;
                    RETURN NEW;
                ELSE
                    UPDATE botwire_ns_stats SET replay = replay - {_RECORD_SIZE.format(row="OLD")}
                    WHERE ns = OLD.ns;
                    RETURN OLD;
                END IF;
            END $$""",
            "CREATE TRIGGER botwire_idempotency_changed AFTER INSERT OR UPDATE OR DELETE "
            "ON botwire_idempotency FOR EACH ROW EXECUTE FUNCTION botwire_idempotency_changed()",
        ],
    ),
]

SCHEMA_VERSION = MIGRATIONS[-1][0]


def migrate(conn: Any) -> list[int]:
    """Apply the missing migrations on ``conn`` (psycopg, not autocommit); their versions."""
    with conn.transaction():
        conn.execute(
            "SELECT pg_advisory_xact_lock(hashtext('botwire-migrate:' || current_schema()))"
        )
        conn.execute(
            "CREATE TABLE IF NOT EXISTS botwire_migrations ("
            "version integer PRIMARY KEY, name text NOT NULL, "
            "applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row[0] for row in conn.execute("SELECT version FROM botwire_migrations")}
        newer = max(done, default=0)
        if newer > SCHEMA_VERSION:
            from .._errors import StoreError

            raise StoreError(
                f"the database has schema {newer}; this botwire knows {SCHEMA_VERSION}: upgrade it"
            )
        applied = []
        for version, name, statements in MIGRATIONS:
            if version in done:
                continue
            for statement in statements:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO botwire_migrations (version, name) VALUES (%s, %s)", (version, name)
            )
            applied.append(version)
    return applied
