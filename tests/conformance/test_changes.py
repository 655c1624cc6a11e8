"""The change feed: every write and deletion, in version order, resumable by cursor."""

from __future__ import annotations

from botwire import Memory
from botwire.ops import Change, ChangePage, Changes
from botwire.stores import Store

from ..conftest import FakeClock


def feed(store: Store, since: int = 0, limit: int = 1000) -> ChangePage:
    (page,) = store.batch("ns", [Changes(since, limit)])
    assert isinstance(page, ChangePage)
    return page


def test_feed_lists_writes_and_deletions_in_version_order(store: Store) -> None:
    mem = Memory("ns", url=store)
    va = mem.set("a", 1)
    vb = mem.set("b", 1)
    mem.delete("a")
    vb2 = mem.set("b", 2)
    Memory("elsewhere", url=store).set("z", 1)  # other namespaces stay out
    page = feed(store)
    assert [(c.key, c.deleted) for c in page.changes] == [("a", True), ("b", False)]
    assert page.changes[1].version == vb2 > vb > va
    assert page.changes[0].version > va and page.next == vb2 and not page.reset
    assert feed(store, since=page.next).changes == []


def test_feed_pages_with_its_cursor(store: Store) -> None:
    mem = Memory("ns", url=store)
    for i in range(7):
        mem.set(f"k{i}", i)
    seen: list[Change] = []
    since = 0
    while True:
        page = feed(store, since, limit=3)
        if not page.changes:
            break
        seen += page.changes
        since = page.next
    assert [c.key for c in seen] == [f"k{i}" for i in range(7)]


def test_expired_items_appear_as_deleted_once_swept(store: Store, clock: FakeClock) -> None:
    mem = Memory("ns", url=store)
    mem.set("short", 1, ttl=5)
    cursor = feed(store).next
    clock.advance(6)
    store.sweep()
    assert [(c.key, c.deleted) for c in feed(store, cursor).changes] == [("short", True)]


def test_reset_when_deletions_older_than_the_feed_were_forgotten(
    store: Store, clock: FakeClock
) -> None:
    mem = Memory("ns", url=store)
    mem.set("a", 1)
    cursor = feed(store).next
    mem.delete("a")
    store.sweep()  # sweeps run regularly; each notes where the sequence stands
    clock.advance(8 * 86400)  # tombstones are kept 7 days
    store.sweep()
    page = feed(store, cursor)
    assert page.reset and page.changes == []
    assert not feed(store, page.next).reset  # said once: the cursor moved past the gap


def test_a_key_written_again_after_its_deletion_is_in_the_feed_once(store: Store) -> None:
    mem = Memory("ns", url=store)
    mem.set("k", 1)
    mem.delete("k")
    again = mem.set("k", 2)
    assert [(c.key, c.version, c.deleted) for c in feed(store).changes] == [("k", again, False)]
