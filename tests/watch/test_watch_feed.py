"""What a watcher sees, on every store: expiries and deletes as deletions, values on request,
only its prefix, and each key once in a replay."""

from __future__ import annotations

import time
from collections.abc import Callable

from botwire import Memory
from botwire.ops import Change

from .conftest import Follower, key_is, new_ns


def deleted(key: str) -> Callable[[list[Change]], bool]:
    return lambda changes: any(c.key == key and c.deleted for c in changes)


def test_expiry_delete_and_clear_show_as_deletions(
    store_url: str, memories: Callable[..., Memory]
) -> None:
    ns = new_ns("gone")
    mem = memories(ns, store_url, cache=False)
    follower = Follower(mem, key_is("~done"), values=True)
    mem.set("temp", {"short": "lived"}, ttl=1)
    expires = time.time() + 1
    mem.set("gone", "x")
    mem.delete("gone")
    mem.set_many({"p/a": 1, "p/b": 2, "q": 3})
    assert mem.clear("p/") == 2

    follower.wait_for(deleted("temp"), timeout=10)
    swept_after = time.time() - expires
    mem.set("~done", True)
    changes = follower.join(10)

    assert swept_after < 3.0, f"the expiry reached the watcher {swept_after:.1f}s late"
    temp = [c for c in changes if c.key == "temp"]
    assert temp[0].value == {"short": "lived"} and not temp[0].deleted
    assert temp[0].expires_at is not None and abs(temp[0].expires_at - expires) < 1
    assert temp[-1].deleted and temp[-1].data is None and temp[-1].expires_at is None
    last = {c.key: c for c in changes}
    assert last["gone"].deleted and last["p/a"].deleted and last["p/b"].deleted
    assert not last["q"].deleted and last["q"].value == 3 and last["q"].expires_at is None
    versions = [c.version for c in changes]
    assert versions == sorted(set(versions))


def test_values_are_left_out_unless_asked(store_url: str, memories: Callable[..., Memory]) -> None:
    ns = new_ns("vals")
    mem = memories(ns, store_url, cache=False)
    plain = Follower(mem, key_is("b"))
    full = Follower(mem, key_is("b"), values=True)
    mem.set("a", {"nested": [1, 2.5, "é", None]}, ttl=300)
    mem.set("b", "text")
    assert all(c.data is None and c.expires_at is None for c in plain.join(10))
    a, b = full.join(10)
    assert a.value == {"nested": [1, 2.5, "é", None]} and a.expires_at is not None
    assert b.value == "text" and b.expires_at is None


def test_a_prefix_narrows_the_feed_and_its_cursor_still_moves(
    store_url: str, memories: Callable[..., Memory]
) -> None:
    ns = new_ns("pfx")
    mem = memories(ns, store_url, cache=False)
    follower = Follower(mem, key_is("p/done"), prefix="p/")
    for i in range(30):
        mem.set(f"other-{i}", i)
        mem.set(f"p/{i}", i)
    mem.set("p/done", True)
    keys = [c.key for c in follower.join(10)]
    assert keys == [*(f"p/{i}" for i in range(30)), "p/done"]
    page = mem.changes(0, "p/", limit=0)
    assert page.changes == [] and page.next == mem.get_item("p/done").version
    assert mem.changes(page.next, "p/").changes == []


def test_paging_the_feed_misses_nothing_and_repeats_nothing(
    store_url: str, memories: Callable[..., Memory]
) -> None:
    """``changes`` in pages of 7 while keys are rewritten between pages: each page's cursor
    leads to the rest, every key ends at its newest version."""
    ns = new_ns("page")
    mem = memories(ns, store_url, cache=False)
    for i in range(40):
        mem.set(f"k{i}", i)
    seen: list[Change] = []
    cursor = 0
    for step in range(100):
        page = mem.changes(cursor, limit=7)
        seen += page.changes
        if step < 5:  # rewrite keys the reader already passed, and one it has not
            mem.set(f"k{step}", -step)
            mem.delete(f"k{39 - step}")
        if not page.changes:
            break
        cursor = page.next
    versions = [c.version for c in seen]
    assert versions == sorted(set(versions))
    last = {c.key: c for c in seen}
    live = {item.key: item.version for item in mem.scan()}
    assert {k: c.version for k, c in last.items() if not c.deleted} == live
    assert {k for k, c in last.items() if c.deleted} == {f"k{39 - s}" for s in range(5)}


def test_a_replay_holds_each_key_once_at_its_newest_version(
    store_url: str, memories: Callable[..., Memory]
) -> None:
    """``Change``'s contract: "The feed holds each key once, at its newest version".
    A key deleted and then set again must not replay as both its deletion and its value
    (found on SQLite, whose schema kept the tombstone when the key came back)."""
    ns = new_ns("once")
    mem = memories(ns, store_url, cache=False)
    mem.set("a", 1)
    mem.delete("a")
    mem.set("a", 2)
    mem.set("b", 1)
    page = mem.changes(0)
    assert [(c.key, c.deleted) for c in page.changes] == [("a", False), ("b", False)]
