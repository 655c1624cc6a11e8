"""Several `botwire serve` replicas on one PostgreSQL database, on loopback ports.

Skipped with a visible reason without $BOTWIRE_TEST_POSTGRES_URL (.ci/run sets it).
Every loop is bounded in count and time and talks only to 127.0.0.1.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from ..postgres import base_url, fresh_schema_url
from .conftest import LiveServer

pytestmark = pytest.mark.slow


class Replicas:
    def __init__(self, tmp: Path) -> None:
        self.tmp, self.url, self.started = tmp, fresh_schema_url(), []

    def make(self, name: str, **flags: object) -> LiveServer:
        db = f"{self.url}&application_name=botwire-{name}"
        server = LiveServer(db, log=self.tmp / f"{name}.log", workers=1, **flags)
        self.started.append(server)
        return server

    def start(self, name: str, **flags: object) -> LiveServer:
        server = self.make(name, **flags)
        server.start()
        return server


@pytest.fixture
def replicas(tmp_path: Path) -> Iterator[Replicas]:
    made = Replicas(tmp_path)
    yield made
    for server in made.started:
        server.stop()


def test_a_write_through_one_replica_is_read_through_the_other(replicas: Replicas) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    r = httpx.put(f"{a.url}/v1/ns/shared/keys/prefs", json={"value": {"tone": "brief"}})
    assert r.status_code == 200
    assert httpx.get(f"{b.url}/v1/ns/shared/keys/prefs").json()["value"] == {"tone": "brief"}
    version = r.json()["version"]
    stale = {"if-match": f'"{version + 1000}"'}
    r = httpx.put(f"{b.url}/v1/ns/shared/keys/prefs", json={"value": 2}, headers=stale)
    assert r.status_code == 409  # versions are the same on both replicas
    r = httpx.put(
        f"{b.url}/v1/ns/shared/keys/prefs", json={"value": 2}, headers={"if-match": f'"{version}"'}
    )
    assert r.status_code == 200 and r.json()["version"] > version  # one shared sequence
    feed = httpx.get(f"{a.url}/v1/ns/shared/changes").json()
    assert [c["key"] for c in feed["changes"]] == ["prefs"]


def test_limits_are_exact_with_16_clients_split_across_two_replicas(replicas: Replicas) -> None:
    limit = 200
    servers = [replicas.start(n, writes_per_day=limit, max_bytes=0) for n in ("a", "b")]
    statuses: list[int] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=servers[n % 2].url, timeout=30) as http:
            for i in range(25):  # 16 x 25 = 400 attempts for 200 writes
                r = http.put(f"/v1/ns/shared/keys/c{n}-{i}", json={"value": i})
                with lock:
                    statuses.append(r.status_code)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    assert statuses.count(200) == limit and statuses.count(429) == 400 - limit
    stats = httpx.get(f"{servers[1].url}/v1/ns/shared/stats").json()
    assert stats["keys"] == limit and stats["writes_today"] == limit


def test_killing_a_replica_and_its_connections_loses_nothing_and_counts_once(
    replicas: Replicas,
) -> None:
    a, b = replicas.start("a"), replicas.start("b")
    acknowledged: list[str] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + 60

    def client(n: int) -> int:
        """Put unique keys and count increments, each with its own Idempotency-Key; a
        request that gets no answer is retried with the same key until one replica answers."""
        done = 0
        for i in range(40):
            key = f"k{n}-{i}"
            ops = {"ops": [{"op": "put", "key": key, "value": i}, {"op": "incr", "key": "count"}]}
            idem = uuid.uuid4().hex
            for attempt in range(200):
                server = (a, b)[(n + attempt) % 2]
                try:
                    r = httpx.post(
                        f"{server.url}/v1/ns/shared/batch",
                        json=ops,
                        headers={"idempotency-key": idem},
                        timeout=10,
                    )
                except httpx.TransportError:
                    continue
                if r.status_code == 200:
                    with lock:
                        acknowledged.append(key)
                    done += 1
                    break
                assert r.status_code in (409, 500, 502, 503), r.text  # 409: still running
                time.sleep(0.01)
            assert time.monotonic() < stop_at
        return done

    def kill_a() -> None:
        time.sleep(0.5)  # mid-load
        a.kill()
        import psycopg

        with psycopg.connect(base_url(), autocommit=True) as conn:
            conn.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'botwire-a'"
            )

    with ThreadPoolExecutor(9) as pool:
        killer = pool.submit(kill_a)
        totals = list(pool.map(client, range(8)))
        killer.result()
    assert sum(totals) == 8 * 40 == len(acknowledged)
    with httpx.Client(base_url=b.url, timeout=30) as http:
        for key in acknowledged:  # every acknowledged write is there
            assert http.get(f"/v1/ns/shared/keys/{key}").status_code == 200
        assert http.get("/v1/ns/shared/keys/count").json()["value"] == 8 * 40  # counted once
        assert http.get("/v1/ns/shared/stats").json()["keys"] == 8 * 40 + 1


def test_four_replicas_starting_together_migrate_once(replicas: Replicas) -> None:
    servers = [replicas.make(f"r{i}") for i in range(4)]
    for server in servers:
        server.launch()
    for server in servers:
        server.wait_ready(60)  # a second migration would have crashed one (plain CREATE)
    import psycopg

    from botwire.stores._postgres_schema import MIGRATIONS

    with psycopg.connect(replicas.url) as conn:
        rows = conn.execute("SELECT version FROM botwire_migrations ORDER BY version").fetchall()
    assert [r[0] for r in rows] == [m[0] for m in MIGRATIONS]
    for server in servers:
        assert "Traceback" not in server.log.read_text()


def test_botwire_migrate_applies_once_then_reports_nothing_to_do() -> None:
    import subprocess
    import sys

    url = fresh_schema_url()
    command = [sys.executable, "-m", "botwire.cli", "migrate", "--db", url]
    first = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    again = subprocess.run(command, capture_output=True, text=True, timeout=60, check=True)
    assert "migrations applied: 1" in first.stdout
    assert "migrations applied: none needed" in again.stdout
    refused = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "migrate", "--db", "some.db"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert refused.returncode == 2 and "PostgreSQL" in refused.stderr
