"""Listing: sorted by code point, prefix-filtered, paged by cursor."""

from __future__ import annotations

import pytest

from botwire import Memory
from botwire.ops import Get, ListKeys, Scan

from ..conftest import FakeClock

KEYS = [
    "a",
    "a:1",
    "a:2",
    "a;",
    "b",
    "user-42:x",
    "user-42:y",
    "user-420",
    "ä",
    "中",
    "\U0010ffff",
    "\U0010ffffz",
]


@pytest.fixture
def filled(mem: Memory) -> Memory:
    mem.set_many({k: i for i, k in enumerate(KEYS)})
    return mem


def test_list_keys_is_sorted_by_code_point(filled: Memory) -> None:
    assert filled.list_keys() == sorted(KEYS)
    assert filled.list_keys(limit=3) == sorted(KEYS)[:3]


@pytest.mark.parametrize("prefix", ["a", "a:", "user-42:", "user-42", "ä", "\U0010ffff", "zz"])
def test_prefix(filled: Memory, prefix: str) -> None:
    assert filled.list_keys(prefix) == sorted(k for k in KEYS if k.startswith(prefix))


def test_iter_keys_pages_lazily(filled: Memory) -> None:
    it = filled.iter_keys(page_size=2)
    assert next(it) == sorted(KEYS)[0]
    assert [sorted(KEYS)[0], *it] == sorted(KEYS)
    # "0" sorts before ":" (U+0030 < U+003A)
    assert list(filled.iter_keys("user-42", page_size=1)) == ["user-420", "user-42:x", "user-42:y"]


def test_cursor_resumes_after_a_key(filled: Memory) -> None:
    (page,) = filled.store.batch("conformance", [ListKeys("user-42", after="user-42:x")])
    assert page == ["user-42:y"]


def test_clear_and_len(filled: Memory) -> None:
    assert len(filled) == len(KEYS)
    assert filled.clear() == len(KEYS)
    assert len(filled) == 0 and filled.list_keys() == []


@pytest.mark.parametrize("prefix", ["", "a", "user-42:", "\U0010ffff", "zz"])
def test_scan_returns_the_listed_items_with_their_records(filled: Memory, prefix: str) -> None:
    store, ns = filled.store, filled.namespace
    (items,) = store.batch(ns, [Scan(prefix)])
    assert [key for key, _ in items] == filled.list_keys(prefix)
    for key, record in items:
        assert record == store.batch(ns, [Get(key)])[0]
    (page,) = store.batch(ns, [Scan(prefix, after="a", limit=2)])
    assert [key for key, _ in page] == [k for k in filled.list_keys(prefix) if k > "a"][:2]


def test_scan_skips_expired_items(mem: Memory, clock: FakeClock) -> None:
    mem.set("s:short", 1, ttl=5)
    mem.set("s:long", 2, ttl=50)
    clock.advance(10)
    (items,) = mem.store.batch(mem.namespace, [Scan("s:")])
    assert [key for key, _ in items] == ["s:long"]


def test_scan_in_a_write_batch_sees_the_batch_and_replays(mem: Memory) -> None:
    from botwire.ops import Idempotency, Put

    ops = [Put("w:1", b"1"), Scan("w:"), Put("w:2", b"2"), Scan("w:")]
    once = mem.store.batch(mem.namespace, ops, idempotency=Idempotency("scan-1", "f"))
    assert [k for k, _ in once[1]] == ["w:1"] and [k for k, _ in once[3]] == ["w:1", "w:2"]
    again = mem.store.batch(mem.namespace, ops, idempotency=Idempotency("scan-1", "f"))
    assert again == once
