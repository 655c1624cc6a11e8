"""Per-namespace limits, enforced in the write's own transaction, and namespace stats."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from botwire import Memory, QuotaExceeded, ValueTooLarge, WriteLimitExceeded
from botwire.ops import NamespaceStats, Stats
from botwire.stores import Store
from botwire.stores.base import Limits

from ..conftest import FakeClock

DAY = 86400


def test_write_limit_counts_writes_per_utc_day(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    clock.now = 1_800_000_000.0  # 2027-01-15 08:00 UTC
    mem = Memory("ns", url=make_store(limits=Limits(writes_per_day=4)))
    mem.set("a", 1)
    mem.incr("n")
    mem.append("l", 1)
    assert mem.touch("missing", 10) is False  # no write happened: not counted
    assert mem.delete("a") is True  # deletes free space: never counted
    mem.set("b", 1)  # the 4th write
    with pytest.raises(WriteLimitExceeded) as info:
        mem.set("c", 1)
    assert info.value.retry_after == pytest.approx(DAY - clock.now % DAY)
    assert mem.get("c") is None and mem.get("b") == 1  # reads are unlimited
    with pytest.raises(WriteLimitExceeded):
        mem.set_many({"x": 1})
    clock.now = (clock.now // DAY + 1) * DAY  # midnight UTC: a new window
    mem.set("c", 1)
    assert mem.store.batch("ns", [Stats()])[0] == NamespaceStats(4, _size(mem), 1)


def _size(mem: Memory) -> int:
    (stats,) = mem.store.batch(mem.namespace, [Stats()])
    return int(stats.bytes)


def test_a_batch_is_one_write_and_over_the_limit_is_refused_whole(
    make_store: Callable[..., Store],
) -> None:
    mem = Memory("ns", url=make_store(limits=Limits(writes_per_day=3)))
    mem.set("a", 1)
    mem.set_many({f"b{i}": i for i in range(50)})  # one atomic request: one write
    mem.set_many({"c": 1, "d": 2})  # the 3rd write
    assert len(mem.list_keys()) == 53
    with pytest.raises(WriteLimitExceeded):
        mem.set_many({"e": 1, "f": 2})
    assert len(mem.list_keys()) == 53 and mem.get("e") is None
    assert mem.store.batch("ns", [Stats()])[0].writes_today == 3
    assert Memory("other", url=mem.store).set("x", 1)  # each namespace has its own budget


def test_storage_quota(make_store: Callable[..., Store], clock: FakeClock) -> None:
    mem = Memory("ns", url=make_store(limits=Limits(max_bytes=100)))
    mem.set("k1", "x" * 40)  # 2 + 42 bytes
    assert _size(mem) == 44
    mem.set("k2", "y" * 40)
    with pytest.raises(QuotaExceeded):
        mem.set("k3", "z" * 40)
    assert mem.list_keys() == ["k1", "k2"] and _size(mem) == 88
    mem.set("k1", "small")  # shrinking is always allowed
    mem.delete("k2")  # deletes free storage
    mem.set("k3", "z" * 40, ttl=5)
    assert _size(mem) == 2 + 7 + 44
    clock.advance(6)
    mem.store.sweep()  # so does expiry, once swept
    assert _size(mem) == 9
    mem.set("k4", "w" * 80)
    other = Memory("other", url=mem.store)
    other.set("k", "v" * 90)  # quotas are per namespace


def test_value_size_limit(make_store: Callable[..., Store]) -> None:
    mem = Memory("ns", url=make_store(limits=Limits(max_value_bytes=20)))
    mem.set("ok", "x" * 18)  # 20 bytes of JSON with the quotes
    with pytest.raises(ValueTooLarge):
        mem.set("big", "x" * 19)
    mem.append("list", "abcdef", "ghijkl")  # ["abcdef","ghijkl"] is 19 bytes
    with pytest.raises(ValueTooLarge):
        mem.append("list", "m")
    assert mem.get("list") == ["abcdef", "ghijkl"] and mem.get("big") is None


def test_stats_without_limits(store: Store) -> None:
    mem = Memory("ns", url=store)
    mem.set_many({"a": 1, "bb": [1, 2]})
    (stats,) = store.batch("ns", [Stats()])
    assert stats.keys == 2 and stats.bytes == (1 + 1) + (2 + 5)
