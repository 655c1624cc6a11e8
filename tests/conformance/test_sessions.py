"""Sessions and @remember behave the same on every store."""

from __future__ import annotations

import asyncio

import pytest

from botwire import AsyncMemory, Conflict, InvalidRequest, Memory, NotFound, ValueNotSerializable

from ..conftest import FakeClock


def test_a_session_loads_a_prefix_and_commits_its_changes(mem: Memory) -> None:
    mem.set_many({"u:history": ["hi"], "u:count": 1, "u:gone": True, "other": 0})
    with mem.session(prefetch="u:") as s:
        assert s.keys() == ["u:count", "u:gone", "u:history"]
        s["u:history"].append("again")  # mutated in place: saved
        s["u:count"] = s.get("u:count", 0) + 1
        del s["u:gone"]
        s["u:new"] = {"a": 1}
        assert "u:gone" not in s and "u:absent" not in s and s.get("u:absent", 7) == 7
        assert s.get("other") == 0  # outside the prefix: loaded on first use
    assert mem.get_many(["u:history", "u:count", "u:gone", "u:new"]) == {
        "u:history": ["hi", "again"],
        "u:count": 2,
        "u:new": {"a": 1},
    }


def test_an_exception_writes_nothing(mem: Memory) -> None:
    mem.set("k", 1)
    with pytest.raises(RuntimeError), mem.session(keys=["k"]) as s:
        s["k"] = 2
        s["new"] = 3
        raise RuntimeError("boom")
    assert mem.get("k") == 1 and not mem.exists("new")


def test_a_concurrent_change_raises_conflict_and_writes_nothing(mem: Memory) -> None:
    mem.set_many({"a": 1, "b": 1})
    with pytest.raises(Conflict) as raised, mem.session(keys=["a", "b"]) as s:
        s["a"] = 2
        s["b"] = 2
        s["c"] = 2
        mem.set("b", 100)  # someone else, between the session's read and its commit
    assert raised.value.keys == ["b"]
    assert mem.get_many(["a", "b", "c"]) == {"a": 1, "b": 100}


def test_a_key_created_meanwhile_is_a_conflict_too(mem: Memory) -> None:
    with pytest.raises(Conflict), mem.session(keys=["lock"]) as s:
        assert "lock" not in s
        s["lock"] = "me"
        mem.set("lock", "them")
    assert mem.get("lock") == "them"


def test_an_unchanged_session_writes_nothing(mem: Memory) -> None:
    mem.set("k", {"a": [1, 2]})
    version = mem.get_item("k").version  # type: ignore[union-attr]
    with mem.session(prefetch="") as s:
        s["k"] = {"a": [1, 2]}  # the same value again
        _ = s.get("k")
    assert mem.get_item("k").version == version  # type: ignore[union-attr]


def test_written_keys_keep_their_expiry_unless_given_a_ttl(mem: Memory, clock: FakeClock) -> None:
    mem.set("kept", [1], ttl=100)
    mem.set("given", [1], ttl=100)
    clock.advance(40)
    with mem.session(keys=["kept", "given"], ttl=None) as s:
        s["kept"].append(2)
        s.set("given", [2], ttl=500)
    assert mem.ttl("given") == pytest.approx(500)
    with mem.session(keys=["kept"]) as s:
        s["kept"].append(3)
    assert mem.ttl("kept") is None  # the session's ttl=None above removed it
    mem.set("k2", [], ttl=100)
    clock.advance(40)
    with mem.session(keys=["k2"]) as s:
        s["k2"].append(1)
    assert mem.ttl("k2") == pytest.approx(60)  # no ttl given: the expiry it had


def test_blind_writes_and_deletes(mem: Memory) -> None:
    mem.set("x", 1)
    with mem.session() as s:
        s["y"] = 2  # written without reading: unconditional
        assert s.delete("x") and not s.delete("never")
        with pytest.raises(NotFound):
            del s["never"]
        with pytest.raises(NotFound):
            _ = s["x"]
    assert mem.get_many(["x", "y", "never"]) == {"y": 2}


def test_sessions_refuse_misuse(mem: Memory) -> None:
    session = mem.session()
    with session as s, pytest.raises(ValueNotSerializable):
        s["bad"] = {1, 2}
    with pytest.raises(InvalidRequest), session:
        pass  # entered once
    with pytest.raises(InvalidRequest):
        session.get("k")  # used after its block
    with pytest.raises(InvalidRequest):
        mem.session(prefetch=5)  # type: ignore[arg-type]


def test_nested_sessions_are_separate_units_of_work(mem: Memory) -> None:
    mem.set("n", 0)
    with pytest.raises(Conflict), mem.session(keys=["n"]) as outer:
        outer["n"] += 1
        with mem.session(keys=["n"]) as inner:
            inner["n"] += 10
        assert mem.get("n") == 10  # the inner one committed at its own exit
    assert mem.get("n") == 10  # the outer one read n before the inner commit


def test_async_sessions(amem: AsyncMemory) -> None:
    async def run() -> None:
        await amem.set_many({"p:a": 1, "p:b": [1]})
        async with amem.session(prefetch="p:") as s:
            s["p:a"] += 1
            s["p:b"].append(2)
            with pytest.raises(InvalidRequest, match="not loaded"):
                s.get("elsewhere")
            await s.load("elsewhere")
            assert s.get("elsewhere", "none") == "none"
        assert await amem.get_many(["p:a", "p:b"]) == {"p:a": 2, "p:b": [1, 2]}
        with pytest.raises(Conflict):
            async with amem.session(keys=["p:a"]) as s:
                s["p:a"] = 0
                await amem.set("p:a", 5)
        assert await amem.get("p:a") == 5

    asyncio.run(run())


def test_remember_saves_state_and_results(mem: Memory) -> None:
    @mem.remember("history:{user_id}", into="history", default=list)
    def chat(user_id: str, query: str, history: list[str]) -> int:
        history.append(query)
        return len(history)

    @mem.remember("visits:{user_id}", into="visits", default=0, save="result")
    def visit(user_id: str, visits: int) -> int:
        return visits + 1

    assert [chat("u1", "hi"), chat("u1", "again"), chat("u2", "yo")] == [1, 2, 1]
    assert mem.get("history:u1") == ["hi", "again"]
    assert [visit("u1"), visit("u1")] == [1, 2] and mem.get("visits:u1") == 2


def test_remember_on_async_functions(amem: AsyncMemory) -> None:
    @amem.remember("n:{who}", into="n", default=0, save="result")
    async def bump(who: str, n: int) -> int:
        await asyncio.sleep(0)
        return n + 1

    async def run() -> None:
        assert [await bump("a"), await bump("a"), await bump("b")] == [1, 2, 1]
        assert await amem.get("n:a") == 2
        assert await bump.clear("a") is True
        assert await amem.get("n:a") is None

    asyncio.run(run())
