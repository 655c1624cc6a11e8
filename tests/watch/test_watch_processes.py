"""Ordering and no gaps: writer processes race on one namespace while a watcher follows.

The feed holds each key at its newest version, so "no gaps" means: versions
yielded strictly increase (nothing twice), and every key's last change is where
the store ended up. On SQLite the writers share a file; on PostgreSQL each
writer is a replica with its own store; on a server they are remote clients.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from botwire import AsyncMemory, Memory
from botwire.ops import Change, Item

from .conftest import Follower, Watch, check_feed, key_is, live_items, new_ns, run_writers

pytestmark = pytest.mark.slow


def test_writers_in_four_processes_are_followed_without_gap_or_repeat(
    store_url: str, memories: Callable[..., Memory]
) -> None:
    ns = new_ns("race")
    mem = memories(ns, store_url, cache=False)
    follower = Follower(mem, key_is("~done"), values=True)
    touched = run_writers(store_url, ns, writers=4, count=50, keys=40)
    mem.set("~done", True)  # after every writer exited: the newest version of all
    changes = follower.join(10)

    live = live_items(mem)
    check_feed(changes, live, touched | {"~done"})
    assert len(touched) > 20  # the writers did race over many keys

    # since=0 after the writes replays the same final states, in order
    replay = Follower(mem, key_is("~done"), since=0, values=True).join(10)
    check_feed(replay, live, touched | {"~done"})
    # and the page API agrees with the watcher: a page of everything, then nothing more
    page = mem.changes(0, limit=1000)
    assert [c.version for c in page.changes] == [c.version for c in replay]
    assert not mem.changes(page.next).changes


def test_two_watchers_in_other_processes_see_the_same_feed(
    store_url: str, memories: Callable[..., Memory]
) -> None:
    """Watchers started at the same cursor in two processes (the CLI) end in the same state
    for every key: the feed does not depend on who reads it, nor when."""
    ns = new_ns("twin")
    mem = memories(ns, store_url, cache=False)
    since = str(mem.changes(limit=0).next)
    watches = [Watch(ns, "--url", store_url, "--since", since) for _ in range(2)]
    try:
        touched = run_writers(store_url, ns, writers=2, count=30, keys=10)
        mem.set("~done", True)
        first, second = (watch.until("~done") for watch in watches)
    finally:
        for watch in watches:
            watch.stop()
    assert [line["version"] for line in first] == sorted({line["version"] for line in first})
    last = {c["key"]: c for c in first}
    assert last == {c["key"]: c for c in second}
    live = live_items(mem)
    assert {k: c["version"] for k, c in last.items() if not c["deleted"]} == {
        key: item.version for key, item in live.items()
    }
    assert {c["key"] for c in first} == touched | {"~done"}


def test_async_watch_follows_writer_processes(store_url: str) -> None:
    """``async for`` on ``AsyncMemory.watch``: the same guarantees."""
    ns = new_ns("async")

    async def follow() -> tuple[list[Change], dict[str, Item], set[str]]:
        async with AsyncMemory(ns, url=store_url, cache=False) as amem:
            changes = amem.watch(since=(await amem.changes(limit=0)).next, values=True)
            seen = [asyncio.ensure_future(anext(changes))]  # waiting while the writers run
            touched = await asyncio.wait_for(
                asyncio.to_thread(run_writers, store_url, ns, writers=2, count=40, keys=15), 60
            )
            await amem.set("~done", True)
            change = await asyncio.wait_for(seen.pop(), 10)
            found = [change]
            while change.key != "~done":
                change = await asyncio.wait_for(anext(changes), 10)
                found.append(change)
            await changes.aclose()  # type: ignore[attr-defined]
            live = {item.key: item for item in await amem.scan()}
        return found, live, touched | {"~done"}

    found, live, touched = asyncio.run(follow())
    check_feed(found, live, touched)


def test_async_watch_from_now_skips_what_came_before(store_url: str) -> None:
    """``since=None`` on ``AsyncMemory``: from the loop's first step. What was written
    before is not replayed; what is written while the first step waits is."""
    ns = new_ns("anow")

    async def follow() -> list[Change]:
        async with AsyncMemory(ns, url=store_url, cache=False) as amem:
            await amem.set("old", 1)
            changes = amem.watch()
            first = asyncio.ensure_future(anext(changes))
            for i in range(200):  # ticks until the watcher yields one (bounded: 200 x 50 ms)
                await amem.set(f"tick-{i}", i)
                done, _ = await asyncio.wait({first}, timeout=0.05)
                if done:
                    break
            found = [await asyncio.wait_for(first, 10)]
            await amem.set("~done", True)
            while found[-1].key != "~done":
                found.append(await asyncio.wait_for(anext(changes), 10))
            await changes.aclose()  # type: ignore[attr-defined]
        return found

    found = asyncio.run(follow())
    keys = [c.key for c in found]
    assert "old" not in keys and keys[0].startswith("tick-") and keys[-1] == "~done"
    ticks = [int(k.split("-")[1]) for k in keys[:-1]]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))  # none skipped after the first


def test_thirty_two_writer_threads_are_followed_without_gap_or_repeat(
    tmp_path: Path, memories: Callable[..., Memory]
) -> None:
    """32 threads of one process on one embedded store (each woken at once, no pump)."""
    url = f"sqlite:///{tmp_path / 'threads.db'}"
    ns = new_ns("threads")
    mem = memories(ns, url, cache=False)
    follower = Follower(mem, key_is("~done"), values=True)
    touched: set[str] = set()

    def write(n: int) -> None:
        mine = memories(ns, url, cache=False)
        for i in range(25):
            key = f"k{(n * 7 + i) % 20}"
            touched.add(key)
            if i % 5 == 4:
                mine.delete(key)
            else:
                mine.set(key, [n, i])

    threads = [threading.Thread(target=write, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    mem.set("~done", True)
    changes = follower.join(10)
    check_feed(changes, live_items(mem), touched | {"~done"})
