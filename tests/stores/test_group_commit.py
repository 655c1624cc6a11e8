"""Group commit on both SQL stores (one plan, ``_sql.write_group``): each batch alone inside
one transaction, whatever it raises, and groups that never deadlock one another."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from botwire import Conflict, StoreError, ValueTooLarge
from botwire._codec import decode, encode
from botwire.ops import Get, Idempotency, Incr, ListKeys, Put
from botwire.stores import GroupCommit, _logic
from botwire.stores.base import Limits, Store
from botwire.stores.sqlite import SqliteStore

from ..postgres import fresh_schema_url


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Store]:
    limits = Limits(max_value_bytes=1000, writes_per_day=10_000)
    if request.param == "sqlite":
        made: Store = SqliteStore(tmp_path / "g.db", limits=limits, writer_lock=True)
    else:
        from botwire.stores.postgres import PostgresStore

        made = PostgresStore(fresh_schema_url(), limits=limits, pool_size=8)
    yield made
    made.close()


def _group(store: Store, group: list[tuple[str, list, Idempotency | None]]) -> list:
    assert isinstance(store, GroupCommit)
    answers = store.batch_group(group)
    assert answers is not None
    return answers


def test_each_batch_fails_alone_and_the_others_commit(store: Store) -> None:
    answers = _group(
        store,
        [
            ("a", [Put("k", encode(1))], None),
            ("b", [Put("big", b"1" * 2000)], None),  # over the value limit
            ("a", [Put("k", encode(2), if_version=999)], None),  # a stale version
            ("c", [Put("x", encode(1)), ListKeys(limit=2**70)], None),  # the database refuses
            ("c", [Incr("n", 1)], Idempotency("req", "fp")),
        ],
    )
    assert answers[0] == [answers[0][0]] and answers[4] == [1]
    assert isinstance(answers[1], ValueTooLarge)
    assert isinstance(answers[2], Conflict)
    assert isinstance(answers[3], StoreError)
    assert decode(store.batch("a", [Get("k")])[0].data) == 1
    assert store.batch("b", [Get("big")]) == [None]
    assert store.batch("c", [Get("x")]) == [None]  # its batch left nothing


def test_an_exception_that_is_not_botwires_fails_its_batch_alone(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _logic.incremented

    def poisoned(current: bytes | None, by: int | float) -> tuple[int | float, bytes]:
        if by == 13:
            raise RuntimeError("a bug in one batch")
        return real(current, by)

    monkeypatch.setattr(_logic, "incremented", poisoned)
    answers = _group(
        store,
        [
            ("a", [Incr("n", 1)], None),
            ("b", [Put("k", encode(1)), Incr("n", 13)], Idempotency("req", "f")),
            ("a", [Incr("n", 2)], Idempotency("other", "f")),
        ],
    )
    assert answers[0] == [1] and answers[2] == [3]
    assert isinstance(answers[1], StoreError)
    assert store.batch("b", [Get("k")]) == [None]
    again = _group(store, [("b", [Put("k", encode(1)), Incr("n", 1)], Idempotency("req", "f"))])
    assert isinstance(again[0], list)  # the failed batch kept no record: the retry applies


def test_a_keyed_batch_replays_in_a_later_group(store: Store) -> None:
    first = _group(store, [("a", [Incr("n", 5)], Idempotency("k1", "fp"))])
    again = _group(
        store, [("b", [Incr("m", 1)], None), ("a", [Incr("n", 5)], Idempotency("k1", "fp"))]
    )
    assert first == [[5]] and again == [[1], [5]]
    assert decode(store.batch("a", [Get("n")])[0].data) == 5


def test_groups_in_opposite_namespace_orders_never_deadlock(store: Store) -> None:
    """Four threads commit groups over the same namespaces in different orders; every
    increment lands once (a deadlock would surface as an error answer or a hang)."""
    names = ["n0", "n1", "n2", "n3"]
    errors: list[object] = []

    def work(turn: int) -> None:
        order = names if turn % 2 else names[::-1]
        for _ in range(25):
            for answer in _group(store, [(ns, [Incr("c", 1)], None) for ns in order]):
                if not isinstance(answer, list):
                    errors.append(answer)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not any(t.is_alive() for t in threads)
    assert errors == []
    for ns in names:
        assert decode(store.batch(ns, [Get("c")])[0].data) == 100


def test_one_key_twice_in_one_group_applies_once(store: Store) -> None:
    """The group reads its idempotency rows ahead; a repeat inside the group still replays."""
    answers = _group(
        store,
        [
            ("a", [Incr("n", 5)], Idempotency("dup", "fp")),
            ("a", [Incr("n", 5)], Idempotency("dup", "fp")),
            ("a", [Incr("n", 1)], Idempotency("dup", "other")),  # the key, another request
        ],
    )
    assert answers[0] == [5] and answers[1] == [5]
    assert type(answers[2]).__name__ == "IdempotencyKeyReused"
    assert decode(store.batch("a", [Get("n")])[0].data) == 5


def test_a_failed_keyed_batch_in_a_group_leaves_its_key_free(store: Store) -> None:
    answers = _group(
        store,
        [
            ("a", [Put("k", encode(1), if_version=7)], Idempotency("once", "fp")),
            ("a", [Put("k", encode(1), if_version=0)], Idempotency("once", "fp")),
        ],
    )
    assert isinstance(answers[0], Conflict) and isinstance(answers[1], list)
