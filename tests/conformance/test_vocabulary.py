"""The public op vocabulary: Memory.batch, scan, count, stats and clear(prefix) on every store."""

from __future__ import annotations

import asyncio

import pytest

from botwire import AsyncMemory, Conflict, InvalidName, InvalidRequest, Item, Memory
from botwire.ops import Count, Delete, Get, Incr, Put, Record, Scan
from botwire.stores import Store
from botwire.wire import encode_value


def test_batch_applies_public_ops_atomically(mem: Memory) -> None:
    version, n, record, found = mem.batch(
        [Put("a", encode_value({"x": 1})), Incr("n", 2), Get("a"), Count("")]
    )
    assert n == 2 and found == 2
    assert isinstance(record, Record) and record.version == version and record.data == b'{"x":1}'
    with pytest.raises(Conflict) as conflict:
        mem.batch([Put("b", encode_value(1)), Delete("a", if_version=version + 100)])
    assert conflict.value.keys == ["a"]
    assert mem.get("b") is None  # all or nothing
    assert mem.batch([]) == []


def test_batch_checks_ops_before_any_io(mem: Memory) -> None:
    for bad in (
        [Get("")],
        [Put("k\x00", encode_value(1))],
        [Put("k", b"not json")],
        [Incr("n", 2**64)],
        [Scan("", None, 0)],
        ["get k"],
    ):
        with pytest.raises((InvalidName, InvalidRequest)):
            mem.batch(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        mem.batch([Get("k")] * 1001)


def test_scan_count_stats_and_clear_with_a_prefix(mem: Memory) -> None:
    mem.set_many({"user:1": {"n": 1}, "user:2": {"n": 2}, "team:1": "t"})
    items = mem.scan("user:")
    assert [i.key for i in items] == ["user:1", "user:2"]
    assert all(isinstance(i, Item) for i in items) and items[1].value == {"n": 2}
    assert [i.key for i in mem.scan(limit=1)] == ["team:1"]
    assert mem.count("user:") == 2 and mem.count() == 3
    stats = mem.stats()
    assert stats.keys == 3 and stats.bytes > 0
    assert mem.clear("user:") == 2
    assert mem.list_keys() == ["team:1"]
    with pytest.raises(InvalidName):
        mem.clear("bad\x00prefix")


def test_the_async_twins(store: Store) -> None:
    async def run() -> None:
        amem = AsyncMemory("ns", url=store)
        (version,) = await amem.batch([Put("k", encode_value([1]))])
        assert version > 0
        assert [i.value for i in await amem.scan()] == [[1]]
        assert await amem.count() == 1 and (await amem.stats()).keys == 1
        assert await amem.clear() == 1 and await amem.count() == 0
        await amem.close()

    asyncio.run(run())
