"""Expiry: absolute, set anew by every write, invisible at once, reclaimed later."""

from __future__ import annotations

import pytest

from botwire import Memory, NotFound
from botwire.stores import Store

from ..conftest import FakeClock


def test_expired_key_is_invisible_to_every_read_at_once(mem: Memory, clock: FakeClock) -> None:
    mem.set("short", "v", ttl=10)
    mem.set("long", "v", ttl=1000)
    clock.advance(9.999)
    assert mem.get("short") == "v"
    clock.advance(0.001)
    assert mem.get("short", "gone") == "gone"
    assert mem.get_item("short") is None
    assert not mem.exists("short") and "short" not in mem
    assert mem.get_many(["short", "long"]) == {"long": "v"}
    assert mem.list_keys() == ["long"] and list(mem) == ["long"]
    assert len(mem) == 1
    with pytest.raises(NotFound):
        mem.ttl("short")
    with pytest.raises(KeyError):
        _ = mem["short"]
    assert mem.delete("short") is False
    assert mem.touch("short", 100) is False
    assert mem.clear() == 1


def test_ttl_reports_remaining_seconds(mem: Memory, clock: FakeClock) -> None:
    mem.set("k", 1, ttl=60)
    mem.set("forever", 1)
    clock.advance(15)
    assert mem.ttl("k") == pytest.approx(45)
    assert mem.ttl("forever") is None


def test_each_write_sets_expiry_anew(mem: Memory, clock: FakeClock) -> None:
    mem.set("k", 1, ttl=10)
    clock.advance(8)
    mem.set("k", 2)  # no ttl and no default_ttl: never expires
    clock.advance(1000)
    assert mem.get("k") == 2
    mem.set("k", 3, ttl=5)
    clock.advance(6)
    assert mem.get("k") is None


def test_default_ttl_and_explicit_none(store: Store, clock: FakeClock) -> None:
    mem = Memory("ns", url=store, default_ttl=30)
    mem.set("defaulted", 1)
    mem.set("forever", 1, ttl=None)
    mem.set_many({"m1": 1, "m2": 2})
    clock.advance(31)
    assert mem.list_keys() == ["forever"]


def test_touch_renews_and_persists(mem: Memory, clock: FakeClock) -> None:
    mem.set("k", 1, ttl=10)
    version = mem.get_item("k").version  # type: ignore[union-attr]
    clock.advance(9)
    assert mem.touch("k", 10) is True
    assert mem.get_item("k").version > version  # type: ignore[union-attr]
    clock.advance(9)
    assert mem.get("k") == 1
    assert mem.touch("k", None) is True
    clock.advance(10_000)
    assert mem.get("k") == 1 and mem.ttl("k") is None


def test_refresh_on_read_gives_sliding_expiry(store: Store, clock: FakeClock) -> None:
    sliding = Memory("ns", url=store, refresh_on_read=True)
    plain = Memory("ns", url=store)
    sliding.set("session", "s", ttl=100)
    for _ in range(5):
        clock.advance(60)
        assert sliding.get("session") == "s"  # each read restarts the 100 s
    assert plain.ttl("session") == pytest.approx(100)
    clock.advance(60)
    assert plain.get("session") == "s"  # a plain read does not refresh
    clock.advance(60)
    assert sliding.get("session") is None


def test_incr_and_append_keep_expiry_unless_given(store: Store, clock: FakeClock) -> None:
    mem = Memory("ns", url=store, default_ttl=50)
    assert mem.incr("hits") == 1  # created: gets default_ttl
    assert mem.ttl("hits") == pytest.approx(50)
    clock.advance(20)
    mem.incr("hits")
    assert mem.ttl("hits") == pytest.approx(30)  # kept
    mem.incr("hits", ttl=100)
    assert mem.ttl("hits") == pytest.approx(100)  # given
    mem.append("log", "a", ttl=None)
    clock.advance(1000)
    mem.append("log", "b")
    assert mem.get("log") == ["a", "b"] and mem.ttl("log") is None


def test_expired_key_counts_as_absent_for_writes(mem: Memory, clock: FakeClock) -> None:
    mem.set("k", "old", ttl=10)
    mem.incr("n", ttl=10)
    mem.append("l", 1, ttl=10)
    clock.advance(11)
    mem.set("k", "new", if_version=0)  # absent again, so the CAS passes
    assert mem.get_item("k").created_at == clock.now  # type: ignore[union-attr]
    assert mem.incr("n") == 1
    assert mem.append("l", 2) == 1


def test_sweep_reclaims_expired_items(store: Store, mem: Memory, clock: FakeClock) -> None:
    for i in range(20):
        mem.set(f"k{i}", i, ttl=10)
    mem.set("keep", 1)
    clock.advance(11)
    assert store.sweep(limit=5) == 5
    assert store.sweep() == 15
    assert store.sweep() == 0
    assert mem.list_keys() == ["keep"]
