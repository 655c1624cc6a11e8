"""A real `botwire serve --workers 2` on loopback: exact limits under concurrency, idempotent
retries, and no acknowledged write lost to SIGKILL.

Every loop here is bounded in count and time and talks only to 127.0.0.1.
"""

from __future__ import annotations

import random
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from .conftest import LiveServer

pytestmark = pytest.mark.slow


def test_write_limit_is_exact_across_two_workers_and_16_clients(
    live_server: Callable[..., LiveServer],
) -> None:
    limit = 200
    server = live_server(workers=2, writes_per_day=limit, max_bytes=0)
    statuses: list[int] = []
    headers: list[httpx.Headers] = []
    lock = threading.Lock()

    def client(n: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i in range(25):  # 16 x 25 = 400 attempts for 200 writes
                r = http.put(f"/v1/ns/shared/keys/c{n}-{i}", json={"value": i})
                with lock:
                    statuses.append(r.status_code)
                    if r.status_code == 429:
                        headers.append(r.headers)

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(client, range(16)))
    assert statuses.count(200) == limit
    assert statuses.count(429) == 400 - limit
    for h in headers:
        assert 0 < int(h["retry-after"]) <= 86400
        assert h["ratelimit-policy"] == f'"writes";q={limit};w=86400'
        assert h["ratelimit"].startswith('"writes";r=0;t=')
    stats = httpx.get(f"{server.url}/v1/ns/shared/stats").json()
    assert stats["keys"] == limit and stats["writes_today"] == limit


def test_storage_quota_is_never_exceeded(live_server: Callable[..., LiveServer]) -> None:
    quota = 20_000
    server = live_server(workers=2, writes_per_day=0, max_bytes=quota)

    def client(n: int) -> int:
        stored = 0
        with httpx.Client(base_url=server.url, timeout=30) as http:
            for i in range(20):
                r = http.put(f"/v1/ns/q/keys/k{n}-{i}", json={"value": "x" * 300})
                assert r.status_code in (200, 507), r.text
                stored += r.status_code == 200
        return stored

    with ThreadPoolExecutor(16) as pool:
        accepted = sum(pool.map(client, range(16)))
    stats = httpx.get(f"{server.url}/v1/ns/q/stats").json()
    item = len("k0-0") + 302
    assert stats["bytes"] <= quota and accepted == stats["keys"]
    assert quota - stats["bytes"] < item + 10  # filled up to the last item that fits


def test_idempotent_retries_apply_once(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(workers=2, writes_per_day=1000)
    with httpx.Client(base_url=server.url, timeout=30) as http:
        key = {"idempotency-key": "req-1"}
        first = http.post("/v1/ns/i/incr/n", json={"by": 5}, headers=key)
        again = http.post("/v1/ns/i/incr/n", json={"by": 5}, headers=key)
        assert first.json() == again.json() == {"value": 5}
        other = http.post("/v1/ns/i/incr/n", json={"by": 6}, headers=key)
        assert (
            other.status_code == 422 and other.json()["error"]["code"] == "idempotency_key_reused"
        )
        assert http.get("/v1/ns/i/stats").json()["writes_today"] == 1

        # concurrent repeats: each gets the first answer, or 409 while it runs; applied once
        def fire(_: int) -> httpx.Response:
            with httpx.Client(base_url=server.url, timeout=30) as c:
                body = {"ops": [{"op": "append", "key": "log", "items": ["x"]}]}
                return c.post("/v1/ns/i/batch", json=body, headers={"idempotency-key": "req-2"})

        with ThreadPoolExecutor(8) as pool:
            answers = list(pool.map(fire, range(8)))
        assert {r.status_code for r in answers} <= {200, 409}
        assert {r.text for r in answers if r.status_code == 200} == {'{"results":[1]}'}
        assert http.get("/v1/ns/i/keys/log").json()["value"] == ["x"]


def test_acknowledged_writes_survive_sigkill_of_the_server(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(workers=2, writes_per_day=0, max_bytes=0)
    acked: dict[str, int] = {}
    lock = threading.Lock()
    rng = random.Random(7)
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        with httpx.Client(base_url=server.url, timeout=5) as http:
            while not stop.is_set() and i < 100_000:
                key = f"w{n}-{i}"
                try:
                    r = http.put(f"/v1/ns/crash/keys/{key}", json={"value": {"n": n, "i": i}})
                except httpx.TransportError:
                    time.sleep(0.02)  # the server is down: try the next key
                else:
                    if r.status_code == 200:
                        with lock:
                            acked[key] = i
                i += 1

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    try:
        for _ in range(20):
            time.sleep(rng.uniform(0.1, 0.4))
            server.kill()
            server.start()
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)
    assert len(acked) > 100
    with httpx.Client(base_url=server.url, timeout=30) as http:
        keys = sorted(acked)
        for start in range(0, len(keys), 500):
            chunk = keys[start : start + 500]
            ops = [{"op": "get", "key": k} for k in chunk]
            results = http.post("/v1/ns/crash/batch", json={"ops": ops}).json()["results"]
            for key, result in zip(chunk, results, strict=True):
                assert result is not None, f"acknowledged {key} is gone"
                assert result["value"] == {"n": int(key[1:].split("-")[0]), "i": acked[key]}
    server.stop()
    with sqlite3.connect(server.db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
