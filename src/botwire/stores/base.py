"""The one I/O boundary: a store applies operations to a namespace atomically."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any

from .._ops import Op


class Store(ABC):
    """Base of every backend.

    Subclasses implement :meth:`batch`; everything else in botwire (``Memory``,
    sessions, the server, the CLI) builds operations from :mod:`botwire._ops`
    and calls it. A store only adds its own :meth:`abatch` where it has real
    async I/O; the default runs :meth:`batch` in a worker thread.

    Promises every store keeps (checked by ``tests/conformance``):

    * the operations of one call are applied all or nothing, and no other
      caller sees a state between them;
    * versions come from one store-wide sequence that only increases;
    * an expired key is invisible to every operation from its expiry on.
    """

    #: The store's notion of "now" (Unix seconds); tests replace it.
    clock: Callable[[], float] = staticmethod(time.time)

    @abstractmethod
    def batch(self, namespace: str, ops: Sequence[Op]) -> list[Any]:
        """Apply ``ops`` to ``namespace`` atomically; one result per op."""

    async def abatch(self, namespace: str, ops: Sequence[Op]) -> list[Any]:
        """Async :meth:`batch`; by default the sync one in a worker thread."""
        import asyncio  # ~45 ms to import: only for async users

        return await asyncio.to_thread(self.batch, namespace, ops)

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired items now; return how many went."""
        return 0

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections and files; later calls raise ``StoreClosed``."""
