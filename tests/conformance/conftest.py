"""The conformance suite runs every test here against every store.

Later stores (http, cached http, postgres) join by adding a case to ``STORES``;
the tests themselves must not change.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from botwire import AsyncMemory, Memory
from botwire.stores import Store
from botwire.stores.memory import MemoryStore
from botwire.stores.sqlite import SqliteStore

from ..conftest import FakeClock

StoreFactory = Callable[[Path, FakeClock], Store]

STORES: dict[str, StoreFactory] = {
    "sqlite": lambda tmp, clock: SqliteStore(tmp / "conf.db", clock=clock),
    "sqlite-normal": lambda tmp, clock: SqliteStore(
        tmp / "conf.db", clock=clock, synchronous="normal"
    ),
    "memory": lambda tmp, clock: MemoryStore(clock=clock),
}


@pytest.fixture(params=sorted(STORES))
def store(request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock) -> Iterator[Store]:
    made = STORES[request.param](tmp_path, clock)
    yield made
    made.close()


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory("conformance", url=store)


@pytest.fixture
def amem(store: Store) -> AsyncMemory:
    return AsyncMemory("conformance", url=store)
