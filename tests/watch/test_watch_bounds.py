"""Many idle watchers: bounded per worker and per caller, never starving normal requests.

Raw long polls (httpx, ``wait=30``) against `botwire serve` subprocesses. In open mode
a caller is its address: each client binds its own loopback address (127.0.0.N).
A refusal (503 ``too_many_watchers``) comes at once, so a request still unanswered
after a second is one the server holds.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..server.conftest import LiveServer
from .conftest import HELD, clients, held_or_refused, hold, quick

pytestmark = pytest.mark.slow


def test_idle_watchers_are_bounded_and_normal_requests_still_answer(
    serve: Callable[..., LiveServer],
) -> None:
    server = serve(max_watchers=20)  # a tenth: 2 per caller

    async def scenario() -> None:
        async with clients(server.url, 13) as by_address:
            tasks: list[asyncio.Task[httpx.Response]] = []
            try:
                await run(by_address, tasks)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def run(
        by_address: list[httpx.AsyncClient], tasks: list[asyncio.Task[httpx.Response]]
    ) -> None:
        watch = "/v1/ns/idle/changes?wait=30"
        tasks += await hold(by_address[:10], watch, 2)
        # the 21st, from an address that holds none: the server's bound, at once
        assert await held_or_refused(by_address[10], watch) is None
        # normal requests beside 20 idle watchers
        plain = by_address[12]
        took = [
            await quick(plain, method, path, **kw)
            for i in range(10)
            for method, path, kw in (
                ("PUT", f"/v1/ns/busy/keys/k{i}", {"json": {"value": i}}),
                ("GET", f"/v1/ns/busy/keys/k{i}", {}),
                ("GET", "/healthz", {}),
            )
        ]
        assert max(took) < 1.0
        # a write where they wait answers all 20 with it
        await quick(plain, "PUT", "/v1/ns/idle/keys/wake", json={"value": 1})
        answers = await asyncio.wait_for(asyncio.gather(*tasks), 10)
        assert {tuple(c["key"] for c in a.json()["changes"]) for a in answers} == {("wake",)}
        cursor = answers[0].json()["next"]

        # again: 20 held; then 4 leave (two addresses hang up) and free their slots
        tasks.clear()
        watch = f"/v1/ns/idle/changes?since={cursor}&wait=30"
        tasks += await hold(by_address[:10], watch, 2)
        for task in tasks[:4]:
            task.cancel()
        newcomer = by_address[10]
        first = None
        deadline = time.monotonic() + 10
        while first is None and time.monotonic() < deadline:  # once the server saw them go
            first = await held_or_refused(newcomer, watch)
        assert first is not None, "the slots of disconnected watchers were not freed"
        tasks.append(first)
        second = await held_or_refused(newcomer, watch)
        assert second is not None  # 18 held of 20: room for one more
        tasks.append(second)
        # a caller holds at most a tenth: the newcomer's third is refused ...
        assert await held_or_refused(newcomer, watch) is None
        # ... while the server still had room (another address is held)
        other = await held_or_refused(by_address[11], watch)
        assert other is not None
        tasks.append(other)

    asyncio.run(scenario())


def threads_of(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Threads:"):
            return int(line.split()[1])
    raise AssertionError("no thread count")


def test_two_hundred_idle_watchers_hold_no_thread_each(serve: Callable[..., LiveServer]) -> None:
    """Default --max-watchers (500, 50 per caller): 200 idle watchers on 200 namespaces from
    five addresses, the worker's threads stay a handful, and its event loop answers at once."""
    server = serve()
    assert server.proc is not None
    pid = server.proc.pid  # one worker: uvicorn runs in this process

    async def scenario() -> tuple[int, int, float]:
        async with clients(server.url, 6) as by_address:
            await by_address[5].get("/v1/ns/warm/changes?wait=1")  # the worker's threads start
            before = threads_of(pid)
            tasks: list[asyncio.Task[httpx.Response]] = []
            try:
                for n, client in enumerate(by_address[:5]):
                    tasks += [
                        asyncio.ensure_future(client.get(f"/v1/ns/idle-{n}-{i}/changes?wait=30"))
                        for i in range(40)
                    ]
                done, _ = await asyncio.wait(tasks, timeout=3)
                assert not done, [t.result().text for t in done][:3]
                during = threads_of(pid)
                slowest = max(
                    [await quick(by_address[5], "GET", "/healthz") for _ in range(10)]
                    + [
                        await quick(
                            by_address[5], "PUT", f"/v1/ns/idle-0-{i}/keys/k", json={"value": i}
                        )
                        for i in range(5)
                    ]
                )
                woken = await asyncio.wait_for(asyncio.gather(*tasks[:5]), 10)
                assert all(r.json()["changes"][0]["key"] == "k" for r in woken)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)
            return before, during, slowest

    before, during, slowest = asyncio.run(scenario())
    assert during <= before + 40, f"{before} threads before, {during} with 200 idle watchers"
    assert slowest < 1.0


def test_idle_watchers_cannot_take_every_connection(serve: Callable[..., LiveServer]) -> None:
    """Watchers alone cannot take every connection a worker accepts: the watcher bound is at
    most half of --max-connections, and a refused watch closes its connection. Scaled down
    (30 and 30: ten addresses trying 3 each); before, --max-watchers equalled
    --max-connections (1000 each) and normal requests got 503 "too many open connections"."""
    server = serve(max_connections=30, max_watchers=30)

    async def scenario() -> None:
        async with clients(server.url, 11) as by_address:
            tasks: list[asyncio.Task[httpx.Response]] = []
            try:
                for client in by_address[:10]:
                    tasks += [
                        asyncio.ensure_future(client.get("/v1/ns/idle/changes?wait=30"))
                        for _ in range(3)
                    ]
                await asyncio.wait(tasks, timeout=HELD)  # held, or refused: either is fine
                await quick(by_address[10], "GET", "/healthz")
                await quick(by_address[10], "PUT", "/v1/ns/busy/keys/k", json={"value": 1})
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())


def test_one_write_wakes_many_watchers_of_a_namespace_for_a_few_feed_reads(
    tmp_path: Path,
) -> None:
    """Fifty watchers of one namespace at one cursor (as on a server after a write): the
    write wakes them all, and they share the reads of the feed instead of one each."""
    from botwire.ops import Changes, Put
    from botwire.stores.sqlite import SqliteStore

    class Counting(SqliteStore):
        feed_reads = 0

        async def abatch(self, namespace: str, ops: Any, **kw: Any) -> list[Any]:
            if any(type(op) is Changes for op in ops):
                Counting.feed_reads += 1
            return await super().abatch(namespace, ops, **kw)

    store = Counting(tmp_path / "shared.db")

    async def scenario() -> list[Any]:
        op = Changes(0, 100)
        watchers = [asyncio.ensure_future(store.await_changes("hot", op, 10)) for _ in range(50)]
        await asyncio.sleep(0.3)  # every watcher has read the (empty) feed and waits
        store.batch("hot", [Put("k", b"1")])
        return list(await asyncio.wait_for(asyncio.gather(*watchers), 10))

    try:
        pages = asyncio.run(scenario())
    finally:
        store.close()
    assert all([c.key for c in page.changes] == ["k"] for page in pages)
    assert Counting.feed_reads <= 6, f"{Counting.feed_reads} reads for 50 watchers of one write"
