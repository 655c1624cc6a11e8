"""A Hypothesis state machine drives each store against a plain dict model.

The model is a dict of key -> (value, version, expires_at) under a fake clock.
Rules: put (plain and compare-and-set), get, delete, incr, append, touch, list,
clock jumps, sweeps and reopening the store from its file.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path
from typing import Any

import hypothesis.strategies as st
import pytest
from hypothesis import settings
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

from botwire import Conflict, Memory, WrongType
from botwire.stores import Store
from botwire.stores.memory import MemoryStore
from botwire.stores.sqlite import SqliteStore

from .conftest import FakeClock

KEYS = st.sampled_from(["a", "b", "ab", "b:1", "b:2", "é", "z"])
PREFIXES = st.sampled_from(["", "a", "b", "b:", "é", "q"])
TTLS = st.sampled_from([None, 0.5, 5.0, 30.0])
VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-1000, 1000) | st.text(max_size=5),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3)
    ),
    max_leaves=6,
)


class StoreMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = FakeClock()
        self.dir = Path(tempfile.mkdtemp(prefix="botwire-sm-"))
        self.store = self.open_store()
        self.mem = Memory("sm", url=self.store)
        self.model: dict[str, tuple[Any, int, float | None]] = {}
        self.last_version = 0

    def open_store(self) -> Store:
        raise NotImplementedError

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    # -- the model ------------------------------------------------------------------

    def live(self, key: str) -> tuple[Any, int, float | None] | None:
        entry = self.model.get(key)
        if entry is None or (entry[2] is not None and entry[2] <= self.clock.now):
            return None
        return entry

    def expires(self, ttl: float | None) -> float | None:
        return None if ttl is None else self.clock.now + ttl

    # -- rules ----------------------------------------------------------------------

    @rule(key=KEYS, value=VALUES, ttl=TTLS)
    def put(self, key: str, value: Any, ttl: float | None) -> None:
        version = self.mem.set(key, value, ttl=ttl)
        assert version > self.last_version  # one store-wide increasing sequence
        self.last_version = version
        self.model[key] = (value, version, self.expires(ttl))

    @rule(key=KEYS, value=VALUES, stale=st.booleans())
    def compare_and_set(self, key: str, value: Any, stale: bool) -> None:
        entry = self.live(key)
        expected = 0 if entry is None else entry[1]
        if stale:
            with pytest.raises(Conflict):
                self.mem.set(key, value, if_version=expected + 1_000_000, ttl=None)
            return
        version = self.mem.set(key, value, if_version=expected, ttl=None)
        self.model[key] = (value, version, None)

    @rule(key=KEYS)
    def get(self, key: str) -> None:
        entry = self.live(key)
        item = self.mem.get_item(key)
        if entry is None:
            assert item is None
        else:
            assert item is not None
            assert (item.value, item.version, item.expires_at) == entry

    @rule(key=KEYS)
    def delete(self, key: str) -> None:
        assert self.mem.delete(key) == (self.live(key) is not None)
        self.model.pop(key, None)

    @rule(key=KEYS, by=st.integers(-50, 50))
    def incr(self, key: str, by: int) -> None:
        entry = self.live(key)
        current = 0 if entry is None else entry[0]
        if type(current) is not int:
            with pytest.raises(WrongType):
                self.mem.incr(key, by)
            return
        assert self.mem.incr(key, by) == current + by
        version = self.mem.get_item(key).version  # type: ignore[union-attr]
        self.model[key] = (current + by, version, None if entry is None else entry[2])

    @rule(
        key=KEYS,
        items=st.lists(VALUES, min_size=1, max_size=3),
        max_len=st.none() | st.integers(1, 4),
    )
    def append(self, key: str, items: list[Any], max_len: int | None) -> None:
        entry = self.live(key)
        current = [] if entry is None else entry[0]
        if type(current) is not list:
            with pytest.raises(WrongType):
                self.mem.append(key, *items, max_len=max_len)
            return
        new = current + items
        if max_len is not None:
            new = new[-max_len:]
        assert self.mem.append(key, *items, max_len=max_len) == len(new)
        version = self.mem.get_item(key).version  # type: ignore[union-attr]
        self.model[key] = (new, version, None if entry is None else entry[2])

    @rule(key=KEYS, ttl=TTLS)
    def touch(self, key: str, ttl: float | None) -> None:
        entry = self.live(key)
        assert self.mem.touch(key, ttl) == (entry is not None)
        if entry is not None:
            version = self.mem.get_item(key).version  # type: ignore[union-attr]
            self.model[key] = (entry[0], version, self.expires(ttl))

    @rule(prefix=PREFIXES)
    def list_keys(self, prefix: str) -> None:
        expected = sorted(k for k in self.model if k.startswith(prefix) and self.live(k))
        assert self.mem.list_keys(prefix) == expected

    @rule(seconds=st.sampled_from([0.1, 0.5, 1.0, 5.0, 31.0]))
    def advance_clock(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule()
    def sweep(self) -> None:
        self.store.sweep()

    @rule()
    def reopen(self) -> None:
        self.store = self.reopen_store()
        self.mem = Memory("sm", url=self.store)

    def reopen_store(self) -> Store:
        return self.store

    @invariant()
    def length_matches(self) -> None:
        assert len(self.mem) == sum(1 for k in self.model if self.live(k))


class SqliteMachine(StoreMachine):
    def open_store(self) -> Store:
        return SqliteStore(self.dir / "sm.db", clock=self.clock, synchronous="normal")

    def reopen_store(self) -> Store:
        self.store.close()
        return self.open_store()


class MemoryMachine(StoreMachine):
    def open_store(self) -> Store:
        return MemoryStore(clock=self.clock)


TestSqliteMachine = SqliteMachine.TestCase
TestSqliteMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
TestMemoryMachine = MemoryMachine.TestCase
TestMemoryMachine.settings = settings(max_examples=60, stateful_step_count=40, deadline=None)
