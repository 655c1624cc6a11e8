"""get/set/delete, items, versions and the mapping protocol on every store."""

from __future__ import annotations

import pytest

from botwire import Conflict, Item, Memory, NotFound
from botwire.stores import Store

from ..conftest import FakeClock

VALUES = [
    {"format": "json", "nested": {"list": [1, 2.5, "x", None, True]}},
    [],
    {},
    "",
    "ünïcødé ✓ 🧠",
    0,
    -(2**63),
    2**64 - 1,
    -0.0,
    1e308,
    True,
    False,
    None,
]


@pytest.mark.parametrize("value", VALUES, ids=repr)
def test_values_round_trip_exactly(mem: Memory, value: object) -> None:
    mem.set("k", value)
    got = mem.get("k", "default")
    assert got == value
    assert type(got) is type(value)


def test_missing_key_gives_default_and_stored_none_gives_none(mem: Memory) -> None:
    assert mem.get("absent") is None
    assert mem.get("absent", {"d": 1}) == {"d": 1}
    mem.set("none", None)
    assert mem.get("none", "default") is None
    assert mem.exists("none") and not mem.exists("absent")


def test_set_returns_increasing_versions_across_keys_and_namespaces(store: Store) -> None:
    a, b = Memory("a", url=store), Memory("b", url=store)
    versions = [a.set("x", 1), b.set("x", 1), a.set("y", 1), a.set("x", 2)]
    assert versions == sorted(versions) and len(set(versions)) == 4
    assert a.get_item("x").version == versions[-1]  # type: ignore[union-attr]


def test_get_item_reports_metadata(mem: Memory, clock: FakeClock) -> None:
    created = clock.now
    v1 = mem.set("k", {"a": 1}, ttl=100)
    clock.advance(5)
    v2 = mem.set("k", {"a": 2}, ttl=100)
    item = mem.get_item("k")
    assert item == Item("k", {"a": 2}, v2, created, created + 5, created + 105)
    assert v2 > v1
    assert mem.get_item("absent") is None


def test_delete(mem: Memory) -> None:
    mem.set("k", 1)
    assert mem.delete("k") is True
    assert mem.delete("k") is False
    assert mem.get("k") is None


def test_namespaces_are_isolated(store: Store) -> None:
    a, b = Memory("user-1", url=store), Memory("user-2", url=store)
    a.set("k", "a")
    assert b.get("k") is None
    assert b.list_keys() == [] and len(b) == 0
    assert b.clear() == 0
    assert a.get("k") == "a"


def test_if_version_compare_and_set(mem: Memory) -> None:
    v1 = mem.set("k", 1, if_version=0)
    with pytest.raises(Conflict) as info:
        mem.set("k", 2, if_version=0)
    assert info.value.keys == ["k"]
    with pytest.raises(Conflict):
        mem.set("k", 2, if_version=v1 + 1000)
    assert mem.get("k") == 1
    v2 = mem.set("k", 2, if_version=v1)
    assert mem.get_item("k").version == v2  # type: ignore[union-attr]


def test_mapping_protocol(mem: Memory) -> None:
    mem["a"] = {"x": 1}
    mem["b"] = None
    assert mem["a"] == {"x": 1}
    assert mem["b"] is None
    assert "a" in mem and "zzz" not in mem
    assert len(mem) == 2
    assert list(mem) == ["a", "b"]
    del mem["a"]
    with pytest.raises(KeyError):
        _ = mem["a"]
    with pytest.raises(NotFound):
        del mem["a"]


def test_large_value(mem: Memory) -> None:
    value = {"blob": "x" * 2_000_000, "list": list(range(10_000))}
    mem.set("big", value)
    assert mem.get("big") == value
