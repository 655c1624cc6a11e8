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
from ..loopback import loopback, server_app

StoreFactory = Callable[[Path, FakeClock, Limits | None], Store]


def _http(tmp: Path, clock: FakeClock, limits: Limits | None) -> Store:
    """The HTTP store against the real server app, in process (sync and async)."""
    import httpx
    from fastapi.testclient import TestClient

    from botwire.stores.http import HttpStore

    app = server_app(tmp, limits)
    client = TestClient(app).__enter__()  # runs the lifespan: the server's store opens
    server_store = app.state.store
    server_store.clock = clock

    class ServedStore(HttpStore):
        def sweep(self, limit: int = 1000) -> int:  # the server sweeps on its own timer
            return int(server_store.sweep(limit))

        def close(self) -> None:
            super().close()
            client.__exit__(None, None, None)

    async_client = httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://testserver"
    )
    store = ServedStore("http://testserver", client=client, async_client=async_client)
    store.clock = clock
    return store


def _http_cached(tmp: Path, clock: FakeClock, limits: Limits | None) -> Store:
    """The same, behind the diskcache read cache."""
    from botwire.stores.cached import CachedStore

    return CachedStore(_http(tmp, clock, limits), tmp / "cache")


def _live(tmp: Path, clock: FakeClock, limits: Limits | None) -> Store:
    """The HTTP store over a real socket to uvicorn on loopback, serving the real app."""
    from botwire.stores.http import HttpStore

    app = server_app(tmp, limits)
    url, shutdown = loopback().serve(app)
    server_store = app.state.store
    server_store.clock = clock

    class LiveStore(HttpStore):
        def sweep(self, limit: int = 1000) -> int:
            return int(server_store.sweep(limit))

        def close(self) -> None:
            super().close()
            shutdown()

    store = LiveStore(url)
    store.clock = clock
    return store


def _live_cached(tmp: Path, clock: FakeClock, limits: Limits | None) -> Store:
    from botwire.stores.cached import CachedStore

    return CachedStore(_live(tmp, clock, limits), tmp / "cache")


def _postgres(tmp: Path, clock: FakeClock, limits: Limits | None) -> Store:
    """PostgreSQL at $BOTWIRE_TEST_POSTGRES_URL, in a schema of its own."""
    from botwire.stores.postgres import PostgresStore

    from ..postgres import fresh_schema_url

    return PostgresStore(fresh_schema_url(), clock=clock, limits=limits, pool_size=4)


STORES: dict[str, StoreFactory] = {
    "postgres": _postgres,
    "http": _http,
    "http-cached": _http_cached,
    "live": _live,
    "live-cached": _live_cached,
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
