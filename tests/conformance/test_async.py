"""AsyncMemory mirrors Memory with await, on the same stores."""

from __future__ import annotations

import asyncio

import pytest

from botwire import AsyncMemory, Conflict, InvalidName, NotFound

from ..conftest import FakeClock


def test_async_api_mirrors_sync(amem: AsyncMemory, clock: FakeClock) -> None:
    async def scenario() -> None:
        v = await amem.set("k", {"a": 1}, ttl=60)
        assert await amem.get("k") == {"a": 1}
        assert (await amem.get_item("k")).version == v  # type: ignore[union-attr]
        assert await amem.exists("k") and not await amem.exists("nope")
        with pytest.raises(Conflict):
            await amem.set("k", 2, if_version=0)
        assert sorted(await amem.set_many({"b": 1, "c": 2})) == ["b", "c"]
        assert await amem.get_many(["b", "c", "x"]) == {"b": 1, "c": 2}
        assert await amem.incr("n", 3) == 3
        assert await amem.append("l", 1, 2, max_len=1) == 1
        assert await amem.update("n", lambda n: n * 2) == 6
        assert await amem.list_keys() == ["b", "c", "k", "l", "n"]
        assert [k async for k in amem.iter_keys(page_size=2)] == ["b", "c", "k", "l", "n"]
        assert [k async for k in amem] == ["b", "c", "k", "l", "n"]
        clock.advance(30)
        assert await amem.ttl("k") == pytest.approx(30)
        assert await amem.touch("k", None)
        with pytest.raises(NotFound):
            await amem.ttl("nope")
        assert await amem.delete("b") and await amem.delete_many(["c", "x"]) == 1
        with pytest.raises(InvalidName):
            await amem.get("")
        assert await amem.clear() == 3
        async with amem:
            pass

    asyncio.run(scenario())


def test_concurrent_async_increments(amem: AsyncMemory) -> None:
    async def scenario() -> None:
        await asyncio.gather(*(amem.incr("n") for _ in range(100)))
        assert await amem.get("n") == 100

    asyncio.run(scenario())
