"""One async resource (the HTTP store's ``httpx.AsyncClient``) per event loop.

An async connection belongs to the loop that opened it, and ``AsyncMemory``
may be used from several loops in one process (``asyncio.run`` twice, a thread
with its own loop). ``PerLoop`` makes the resource on first use in a loop and
closes it when that loop shuts down: an async generator parked in the loop is
finalised by ``loop.shutdown_asyncgens()``, which ``asyncio.run`` calls, so the
resource's connections close cleanly instead of leaking with the dead loop.
"""

from __future__ import annotations

import asyncio
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, Generic, TypeVar

R = TypeVar("R")


class PerLoop(Generic[R]):
    def __init__(
        self, make: Callable[[], Awaitable[R]], close: Callable[[R], Awaitable[Any]]
    ) -> None:
        self._make, self._close = make, close
        self._made: weakref.WeakKeyDictionary[Any, R] = weakref.WeakKeyDictionary()
        self._closers: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()

    async def get(self) -> R:
        """This loop's resource, made on first use."""
        loop = asyncio.get_running_loop()
        resource = self._made.get(loop)
        if resource is None:
            resource = self._made[loop] = await self._make()
            closer = self._close_at_shutdown(loop, resource)
            self._closers[loop] = (closer, loop.create_task(_first_step(closer)))
        return resource

    async def close_current(self) -> None:
        """Close this loop's resource now (the others close with their loops)."""
        resource = self._made.pop(asyncio.get_running_loop(), None)
        if resource is not None:
            await self._close(resource)

    async def _close_at_shutdown(self, loop: Any, resource: R) -> AsyncIterator[None]:
        try:
            yield
        finally:
            if self._made.get(loop) is resource:
                del self._made[loop]
                await self._close(resource)


async def _first_step(generator: AsyncIterator[None]) -> None:
    await generator.__anext__()
