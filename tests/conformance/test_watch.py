"""The feed's prefix, values and cursor of now; ``watch`` and ``async for`` on every store.

Watchers run in a daemon thread (or a task) feeding a queue, so a missing change
fails the test at its deadline instead of hanging it.
"""

from __future__ import annotations

import asyncio
import queue
import threading
from collections.abc import Callable, Iterator

import pytest

from botwire import AsyncMemory, InvalidRequest, Memory
from botwire.ops import Change, Changes
from botwire.stores import Store

from ..conftest import FakeClock

DEADLINE = 10.0  # seconds a test waits for a change it expects


def collect(
    changes: Iterator[Change], n: int | None = None, until: Callable[[Change], bool] | None = None
) -> list[Change]:
    """Changes of ``changes``, read in a thread: the first ``n``, or up to the first one
    ``until`` accepts; fails past the deadline."""
    found: queue.Queue[Change | BaseException | None] = queue.Queue()

    def run() -> None:
        try:
            for i, change in enumerate(changes, 1):
                found.put(change)
                if i == n or (until is not None and until(change)):
                    break
            found.put(None)
        except BaseException as exc:  # surfaced in the test's own thread
            found.put(exc)

    threading.Thread(target=run, daemon=True).start()
    got = []
    while (item := found.get(timeout=DEADLINE)) is not None:
        if isinstance(item, BaseException):
            raise item
        got.append(item)
    return got


def test_feed_filters_by_prefix_and_its_cursor_passes_other_keys(mem: Memory) -> None:
    v1 = mem.set("a/1", 1)
    mem.set("b/1", 1)
    v3 = mem.set("a/2", 2)
    page = mem.changes(prefix="a/")
    assert [(c.key, c.version) for c in page.changes] == [("a/1", v1), ("a/2", v3)]
    v4 = mem.set("b/2", 2)
    later = mem.changes(page.next, "a/")
    assert later.changes == [] and later.next == v4  # not asked again for b/2
    assert mem.changes(later.next).changes == []


def test_a_full_page_ends_its_cursor_at_its_last_change(mem: Memory) -> None:
    versions = [mem.set(f"k{i}", i) for i in range(5)]
    page = mem.changes(limit=2)
    assert [c.version for c in page.changes] == versions[:2] and page.next == versions[1]


def test_feed_carries_values_and_expiry_when_asked(mem: Memory, clock: FakeClock) -> None:
    mem.set("fact", {"likes": ["tea"]}, ttl=100)
    mem.set("gone", 1)
    mem.delete("gone")
    plain, full = mem.changes(), mem.changes(values=True)
    assert [c.data for c in plain.changes] == [None, None]
    fact, gone = full.changes
    assert fact.value == {"likes": ["tea"]} and fact.expires_at == pytest.approx(clock() + 100)
    assert gone.deleted and gone.data is None and gone.value is None


def test_limit_zero_answers_the_cursor_of_now(mem: Memory) -> None:
    empty = mem.changes(limit=0)
    assert empty.changes == [] and empty.next == 0
    mem.set("a", 1)
    last = mem.set("b", 2)
    page = mem.changes(limit=0)
    assert page.changes == [] and page.next == last
    assert mem.changes(page.next).changes == []


def test_feed_arguments_are_checked_before_any_io(mem: Memory, store: Store) -> None:
    for bad in (
        {"since": -1},
        {"since": 2**63},
        {"since": "3"},
        {"limit": -1},
        {"limit": 1.5},
        {"values": "yes"},
        {"prefix": "x\x00"},
    ):
        with pytest.raises(InvalidRequest):
            mem.changes(**bad)  # type: ignore[arg-type]
        if "limit" not in bad:
            with pytest.raises(InvalidRequest):
                mem.watch(**bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        Memory("conformance", url=store).batch([Changes(0, 1000, "", "yes")])  # type: ignore[arg-type]


def test_watch_follows_the_writes_made_after_it(mem: Memory) -> None:
    mem.set("before", 0)
    changes = mem.watch(values=True)  # from now: "before" is not replayed
    writer = threading.Timer(0.2, lambda: (mem.set("x", 1), mem.set("y", 2), mem.delete("x")))
    writer.start()
    got = collect(changes, until=lambda c: c.key == "x" and c.deleted)
    writer.join()
    # Each key at its newest version: x's first one only if the watcher read it in time.
    assert [(c.key, c.deleted, c.value) for c in got] in (
        [("x", False, 1), ("y", False, 2), ("x", True, None)],
        [("y", False, 2), ("x", True, None)],
    )
    versions = [c.version for c in got]
    assert versions == sorted(set(versions))


def test_watch_from_zero_replays_the_feed_then_follows(mem: Memory) -> None:
    mem.set("a", 1)
    mem.set("other/b", 2)
    changes = mem.watch("a", since=0)
    threading.Timer(0.2, lambda: mem.set("a2", 3)).start()
    assert [c.key for c in collect(changes, 2)] == ["a", "a2"]


def test_watch_sees_an_expiry_as_a_deletion(mem: Memory, clock: FakeClock) -> None:
    mem.set("short", 1, ttl=5)
    changes = mem.watch()
    clock.advance(6)  # the watcher's store sweeps what expired while someone watches
    (change,) = collect(changes, 1)
    assert (change.key, change.deleted) == ("short", True)


def test_async_watch_follows_writes(amem: AsyncMemory) -> None:
    async def main() -> list[tuple[str, object]]:
        seen: list[tuple[str, object]] = []

        async def follow() -> None:
            async for change in amem.watch("k", values=True):
                seen.append((change.key, change.value))
                if len(seen) == 2:
                    return

        task = asyncio.create_task(follow())
        await asyncio.sleep(0.3)  # the watcher has taken its cursor of now
        await amem.set("k1", 1)
        await amem.set("other", 0)
        await amem.set("k2", 2)
        await asyncio.wait_for(task, DEADLINE)
        return seen

    assert asyncio.run(main()) == [("k1", 1), ("k2", 2)]
