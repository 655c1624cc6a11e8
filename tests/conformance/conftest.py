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
from botwire.stores.base import Limits
from botwire.stores.memory import MemoryStore
from botwire.stores.sqlite import SqliteStore

from ..conftest import FakeClock

StoreFactory = Callable[[Path, FakeClock, Limits | None], Store]

STORES: dict[str, StoreFactory] = {
    "sqlite": lambda tmp, clock, limits: SqliteStore(tmp / "conf.db", clock=clock, limits=limits),
    "sqlite-normal": lambda tmp, clock, limits: SqliteStore(
        tmp / "conf.db", clock=clock, synchronous="normal", limits=limits
    ),
    "memory": lambda tmp, clock, limits: MemoryStore(clock=clock, limits=limits),
}


@pytest.fixture(params=sorted(STORES))
def store_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def make_store(store_kind: str, tmp_path: Path, clock: FakeClock) -> Iterator[Callable[..., Store]]:
    """``make_store(limits=Limits(...))``: a fresh store of the kind under test."""
    made: list[Store] = []

    def make(limits: Limits | None = None) -> Store:
        made.append(STORES[store_kind](tmp_path / str(len(made)), clock, limits))
        return made[-1]

    yield make
    for one in made:
        one.close()


@pytest.fixture
def store(make_store: Callable[..., Store]) -> Store:
    return make_store()


@pytest.fixture
def mem(store: Store) -> Memory:
    return Memory("conformance", url=store)


@pytest.fixture
def amem(store: Store) -> AsyncMemory:
    return AsyncMemory("conformance", url=store)
