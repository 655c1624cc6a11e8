"""Adapters run over every kind of store: in-process, embedded SQLite, a server, PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from botwire import Memory

from ..loopback import Server

MemoryFactory = Callable[[str], Memory]


@pytest.fixture(params=["memory", "sqlite", "http", "postgres"])
def memory_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL of each kind; "http" is the real server on a loopback uvicorn."""
    if request.param == "postgres":
        from ..postgres import fresh_schema_url

        yield fresh_schema_url()
    elif request.param == "memory":
        yield f"memory://{tmp_path.name}"
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/adapters.db"
    else:
        (tmp_path / "server").mkdir()
        server = Server(tmp_path / "server")
        yield server.url
        server.stop()


@pytest.fixture
def make_memory(memory_url: str) -> Iterator[MemoryFactory]:
    """``make_memory("ns")``: a Memory on the store under test, closed afterwards."""
    made: list[Memory] = []

    def make(namespace: str) -> Memory:
        made.append(Memory(namespace, url=memory_url))
        return made[-1]

    yield make
    for memory in made:
        memory.close()
