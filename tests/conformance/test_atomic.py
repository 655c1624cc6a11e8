"""Batches, counters, lists and compare-and-set: all or nothing, never a lost update."""

from __future__ import annotations

import threading

import pytest

from botwire import Conflict, Memory, ValueNotSerializable, WrongType
from botwire._codec import encode
from botwire.ops import Delete, Get, Incr, Put
from botwire.stores import Store


def test_set_many_get_many_delete_many(mem: Memory) -> None:
    versions = mem.set_many({"a": 1, "b": [2], "c": None})
    assert sorted(versions) == ["a", "b", "c"]
    assert mem.get_many(["a", "c", "missing"]) == {"a": 1, "c": None}
    assert mem.delete_many(["a", "b", "missing"]) == 2
    assert mem.list_keys() == ["c"]
    assert mem.get_many([]) == {} and mem.set_many({}) == {} and mem.delete_many([]) == 0


def test_set_many_refuses_a_bad_value_and_writes_nothing(mem: Memory) -> None:
    with pytest.raises(ValueNotSerializable):
        mem.set_many({"a": 1, "b": float("nan")})
    assert mem.list_keys() == []


def test_batch_is_all_or_nothing_when_an_op_fails_midway(store: Store) -> None:
    mem = Memory("ns", url=store)
    mem.set("text", "not a number")
    ops = [Put("a", encode(1)), Incr("text", 1), Put("b", encode(2))]
    with pytest.raises(WrongType):
        store.batch("ns", ops)
    assert mem.list_keys() == ["text"]


def test_batch_conflict_names_every_failing_key_and_applies_nothing(store: Store) -> None:
    mem = Memory("ns", url=store)
    v = mem.set("a", 1)
    mem.set("b", 1)
    ops = [
        Put("a", encode(2), None, v),  # matches
        Put("b", encode(2), None, 0),  # b exists
        Delete("c", 99),  # c is absent
        Put("d", encode(2)),
    ]
    with pytest.raises(Conflict) as info:
        store.batch("ns", ops)
    assert info.value.keys == ["b", "c"]
    assert mem.get_many(["a", "b", "d"]) == {"a": 1, "b": 1}


def test_batch_returns_one_result_per_op(store: Store) -> None:
    results = store.batch("ns", [Put("a", encode(1)), Get("a"), Incr("n", 5), Delete("a")])
    assert isinstance(results[0], int)
    assert results[1].data == b"1" and results[1].version == results[0]
    assert results[2:] == [5, True]


def test_incr(mem: Memory) -> None:
    assert mem.incr("n") == 1
    assert mem.incr("n", 10) == 11
    assert mem.incr("n", -20) == -9
    assert mem.incr("f", 0.5) == 0.5 and type(mem.get("f")) is float
    mem.set("s", "text")
    with pytest.raises(WrongType):
        mem.incr("s")
    assert mem.get("s") == "text"
    mem.set("big", 2**64 - 1)
    with pytest.raises(ValueNotSerializable):
        mem.incr("big")
    assert mem.get("big") == 2**64 - 1


def test_append_with_max_len(mem: Memory) -> None:
    assert mem.append("log", {"role": "user"}) == 1
    assert mem.append("log", 2, 3, 4) == 4
    assert mem.append("log", 5, 6, max_len=3) == 3
    assert mem.get("log") == [4, 5, 6]
    mem.set("obj", {"a": 1})
    with pytest.raises(WrongType):
        mem.append("obj", 1)
    with pytest.raises(ValueNotSerializable):
        mem.append("log", float("inf"))
    assert mem.get("log") == [4, 5, 6] and mem.get("obj") == {"a": 1}


def test_update_applies_function(mem: Memory) -> None:
    assert mem.update("prefs", lambda p: {**p, "lang": "en"}, default={}) == {"lang": "en"}
    assert mem.update("prefs", lambda p: {**p, "tz": "UTC"}) == {"lang": "en", "tz": "UTC"}


def test_concurrent_updates_and_incrs_lose_nothing(store: Store) -> None:
    mems = [Memory("ns", url=store) for _ in range(4)]

    def work(m: Memory) -> None:
        for _ in range(50):
            m.update("list", lambda xs: [*xs, 1], default=[])
            m.incr("count")

    threads = [threading.Thread(target=work, args=(m,)) for m in mems]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(mems[0].get("list")) == 200
    assert mems[0].get("count") == 200
