"""Idempotency keys: a repeated write batch replays its first answer and applies once."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from botwire import Conflict, IdempotencyKeyReused, Memory
from botwire._codec import encode
from botwire.ops import Get, Idempotency, Incr, Put, Stats
from botwire.stores import Store
from botwire.stores.base import Limits

from ..conftest import FakeClock


def test_a_repeat_replays_the_first_results_and_applies_once(
    make_store: Callable[..., Store],
) -> None:
    store = make_store(limits=Limits(writes_per_day=10))
    key = Idempotency("req-1", "fingerprint-a")
    ops = [Incr("n", 5), Put("k", encode("v")), Get("k")]
    first = store.batch("ns", ops, idempotency=key)
    again = store.batch("ns", ops, idempotency=key)
    assert again == first
    assert first[0] == 5 and first[2].data == b'"v"'
    assert Memory("ns", url=store).get("n") == 5  # applied once
    (stats,) = store.batch("ns", [Stats()])
    assert stats.writes_today == 1  # and charged once (a batch is one write)


def test_reusing_a_key_for_another_request_is_refused(store: Store) -> None:
    store.batch("ns", [Incr("n")], idempotency=Idempotency("req", "a"))
    with pytest.raises(IdempotencyKeyReused):
        store.batch("ns", [Incr("n", 2)], idempotency=Idempotency("req", "b"))
    assert Memory("ns", url=store).get("n") == 1


def test_a_failed_batch_frees_its_key(store: Store) -> None:
    key = Idempotency("req", "a")
    with pytest.raises(Conflict):
        store.batch("ns", [Put("k", encode(1), None, 99)], idempotency=key)
    assert store.batch("ns", [Put("k", encode(1), None, 0)], idempotency=key)[0] > 0


def test_keys_are_per_namespace_and_forgotten_after_a_day(store: Store, clock: FakeClock) -> None:
    key = Idempotency("req", "a")
    store.batch("a", [Incr("n")], idempotency=key)
    store.batch("b", [Incr("n")], idempotency=key)
    clock.advance(86401)
    store.sweep()
    store.batch("a", [Incr("n")], idempotency=key)
    assert Memory("a", url=store).get("n") == 2 and Memory("b", url=store).get("n") == 1
