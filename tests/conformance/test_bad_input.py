"""Bad input: a typed error before any I/O, nothing stored, nothing crashed."""

from __future__ import annotations

import dataclasses
import datetime
import enum
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from botwire import InvalidName, InvalidRequest, Memory, ValueNotSerializable
from botwire.stores import Store

BAD_KEYS: list[Any] = [
    "",
    "x" * 513,
    "é" * 257,
    "a\x00b",
    "tab\there",
    "new\nline",
    "del\x7f",
    "c1\x85",
    "\ud800",
    42,
    None,
    b"bytes",
    ("tuple",),
]
OK_KEYS = ["x" * 512, "é" * 256, "spaces are fine", "emoji 🧠", "slash/and?query#frag", ".."]


@dataclasses.dataclass
class Point:
    x: int


class Color(enum.Enum):
    RED = "red"


def _deep(depth: int) -> list[Any]:
    value: list[Any] = []
    for _ in range(depth):
        value = [value]
    return value


BAD_VALUES: list[Any] = [
    float("nan"),
    float("inf"),
    -float("inf"),
    {"a": [1, float("nan")]},
    2**64,
    -(2**63) - 1,
    10**100,
    object(),
    {1: "int key"},
    {("t",): 1},
    (1, 2),
    {"a": (1,)},
    {1, 2},
    b"bytes",
    datetime.datetime(2026, 1, 1),
    datetime.date(2026, 1, 1),
    uuid.uuid4(),
    Color.RED,
    Point(1),
    "lone \ud800 surrogate",
    _deep(100_000),
]

KEY_CALLS: dict[str, Callable[[Memory, Any], Any]] = {
    "get": lambda m, k: m.get(k),
    "get_item": lambda m, k: m.get_item(k),
    "exists": lambda m, k: m.exists(k),
    "set": lambda m, k: m.set(k, 1),
    "delete": lambda m, k: m.delete(k),
    "get_many": lambda m, k: m.get_many(["ok", k]),
    "set_many": lambda m, k: m.set_many({"ok": 1, k: 1}),
    "delete_many": lambda m, k: m.delete_many(["ok", k]),
    "incr": lambda m, k: m.incr(k),
    "append": lambda m, k: m.append(k, 1),
    "update": lambda m, k: m.update(k, lambda v: 1),
    "touch": lambda m, k: m.touch(k, 10),
    "ttl": lambda m, k: m.ttl(k),
    "list_keys": lambda m, k: m.list_keys(k),
    "getitem": lambda m, k: m[k],
    "setitem": lambda m, k: m.__setitem__(k, 1),
    "delitem": lambda m, k: m.__delitem__(k),
    "contains": lambda m, k: k in m,
}


@pytest.mark.parametrize(
    ("call", "key"),
    # an empty prefix is valid: it lists everything
    [(c, k) for c in sorted(KEY_CALLS) for k in BAD_KEYS if (c, k) != ("list_keys", "")],
    ids=repr,
)
def test_invalid_keys_raise_on_every_operation(mem: Memory, call: str, key: Any) -> None:
    with pytest.raises(InvalidName):
        KEY_CALLS[call](mem, key)
    assert mem.list_keys() == []


@pytest.mark.parametrize("key", OK_KEYS)
def test_edge_keys_are_accepted(mem: Memory, key: str) -> None:
    mem.set(key, key)
    assert mem.get(key) == key and mem.list_keys() == [key]


@pytest.mark.parametrize(
    "namespace", ["", "x" * 129, "has space", "slash/", "ü", "a\nb", None, 7, "..%2F"]
)
def test_invalid_namespaces(store: Store, namespace: Any) -> None:
    with pytest.raises(InvalidName):
        Memory(namespace, url=store)


@pytest.mark.parametrize("value", BAD_VALUES, ids=lambda v: type(v).__name__)
def test_unserializable_values_store_nothing(mem: Memory, value: Any) -> None:
    for write in (
        lambda: mem.set("k", value),
        lambda: mem.set_many({"ok": 1, "k": value}),
        lambda: mem.append("k", value),
        lambda: mem.update("k", lambda _: value),
    ):
        with pytest.raises(ValueNotSerializable) as info:
            write()
        assert str(info.value)  # a readable reason
    assert mem.list_keys() == []


@pytest.mark.parametrize(
    "call",
    [
        lambda m: m.set("k", 1, ttl=0),
        lambda m: m.set("k", 1, ttl=-5),
        lambda m: m.set("k", 1, ttl=float("nan")),
        lambda m: m.set("k", 1, ttl=float("inf")),
        lambda m: m.set("k", 1, ttl="10"),
        lambda m: m.set("k", 1, ttl=True),
        lambda m: m.set("k", 1, if_version=-1),
        lambda m: m.set("k", 1, if_version="1"),
        lambda m: m.incr("k", float("nan")),
        lambda m: m.incr("k", "1"),
        lambda m: m.incr("k", True),
        lambda m: m.incr("k", 2**64),
        lambda m: m.append("k", 1, max_len=0),
        lambda m: m.list_keys(limit=0),
        lambda m: m.touch("k", 0),
        lambda m: list(m.iter_keys(page_size=0)),
    ],
)
def test_bad_arguments_raise_invalid_request(mem: Memory, call: Callable[[Memory], Any]) -> None:
    with pytest.raises(InvalidRequest):
        call(mem)
    assert mem.list_keys() == []


def test_bad_default_ttl(store: Store) -> None:
    with pytest.raises(InvalidRequest):
        Memory("ns", url=store, default_ttl=-1)
