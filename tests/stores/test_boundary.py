"""The small ``Store`` boundary (issue 12): ``batch``, ``abatch``, ``close``; everything some
stores have besides is an optional capability the callers check for."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from botwire.ops import Idempotency, Op
from botwire.stores import (
    AsyncClosing,
    Clocked,
    GroupCommit,
    LocalIO,
    Revalidating,
    Store,
    Sweeping,
    aclose,
    now,
)
from botwire.stores.http import HttpStore
from botwire.stores.memory import MemoryStore
from botwire.stores.sqlite import SqliteStore


class Minimal(Store):
    """A store with only the one method a store must have."""

    closed = False

    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        return [None for _ in ops]

    def close(self) -> None:
        self.closed = True


def test_the_boundary_is_batch_abatch_and_close() -> None:
    public = {name for name in vars(Store) if not name.startswith("_")}
    assert public == {"batch", "abatch", "close"}


def test_a_minimal_store_has_no_capability_and_the_helpers_fall_back() -> None:
    store = Minimal()
    for capability in (LocalIO, Clocked, AsyncClosing, Sweeping, GroupCommit, Revalidating):
        assert not isinstance(store, capability)
    before = time.time()
    assert before <= now(store) <= time.time()  # the system's clock
    asyncio.run(aclose(store))  # no aclose of its own: close
    assert store.closed


def test_each_store_declares_what_it_has(tmp_path: Path) -> None:
    sqlite = SqliteStore(tmp_path / "b.db", clock=lambda: 1234.0)
    memory = MemoryStore()
    http = HttpStore("http://127.0.0.1:9")
    try:
        assert isinstance(sqlite, LocalIO) and isinstance(memory, LocalIO)
        assert not isinstance(http, LocalIO)  # network I/O: a server awaits it
        assert isinstance(sqlite, GroupCommit) and isinstance(sqlite, Sweeping)
        assert isinstance(http, Revalidating) and isinstance(http, AsyncClosing)
        assert now(sqlite) == 1234.0  # a store's own clock decides expiry
    finally:
        sqlite.close()
        memory.close()
        http.close()
