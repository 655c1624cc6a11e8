"""Long polling on the change feed: ``GET /v1/ns/{ns}/changes?wait=S`` holds the request
until a change after ``since`` exists or ``S`` seconds pass.

A waiting request holds no thread and no connection to the database: it awaits
its store's signal (``botwire.stores.watch``), which one pump per store serves
for every waiter. What bounds them is :class:`Watchers`: at most
``max_watchers`` waiting at once per worker (and never more than half of
``max_connections``, so watchers cannot take the connections other requests
need), and a caller (a token, or an address in open mode) at most a tenth of
those, so a hostile client with a valid token cannot take every slot. Past
either bound the answer is 503 ``too_many_watchers`` with ``Retry-After``; a
client disconnecting frees its slot at once. When the server is told to stop
(SIGTERM, SIGINT), every held request is answered at once, so a graceful stop
does not wait for them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from types import FrameType
from typing import Any, TypeVar

from fastapi import Request

from botwire import TooManyWatchers

from .auth import token_for

MAX_WAIT = 60  # seconds a request may ask to be held
T = TypeVar("T")


class Watchers:
    """The waiting watch requests of one worker, counted in total and per caller."""

    def __init__(self, limit: int, max_connections: int = 0) -> None:
        self.limit = min(limit, max_connections // 2) if max_connections else limit
        self.per_caller = max(1, self.limit // 10)
        self.waiting = 0
        self._by_caller: Counter[str] = Counter()
        self.stopping = asyncio.Event()  # set when the server is told to stop

    def stop(self) -> None:
        """Answer every held request now (the server is stopping)."""
        self.stopping.set()

    @contextlib.contextmanager
    def slot(self, caller: str) -> Iterator[None]:
        if self.waiting >= self.limit:
            raise TooManyWatchers(
                f"the server holds its maximum of {self.limit} waiting watch requests "
                "(--max-watchers); ask again",
                retry_after=1.0,
            )
        if self._by_caller[caller] >= self.per_caller:
            raise TooManyWatchers(
                f"this caller already holds {self.per_caller} waiting watch requests, "
                f"a tenth of the server's {self.limit}; ask again",
                retry_after=1.0,
            )
        self.waiting += 1
        self._by_caller[caller] += 1
        try:
            yield
        finally:
            self.waiting -= 1
            self._by_caller[caller] -= 1
            if not self._by_caller[caller]:
                del self._by_caller[caller]


async def caller_of(request: Request) -> str:
    """Whom a watch request counts against: its token, else (open mode) its address."""
    token = await token_for(request.app.state.tokens, request.headers.get("authorization"))
    if token is not None:
        return f"token:{token.id}"
    return f"address:{request.client.host if request.client else '?'}"


async def until_answered(request: Request, work: Awaitable[T], stopping: asyncio.Event) -> T | None:
    """``work``'s result; ``None`` as soon as the client goes away (its slot freed) or the
    server is stopping."""
    task = asyncio.ensure_future(work)
    others = [asyncio.ensure_future(_disconnected(request)), asyncio.ensure_future(stopping.wait())]
    try:
        done, _ = await asyncio.wait({task, *others}, return_when=asyncio.FIRST_COMPLETED)
        return task.result() if task in done else None
    finally:
        for pending in (task, *others):
            pending.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task


async def _disconnected(request: Request) -> None:
    while (await request.receive())["type"] != "http.disconnect":
        pass


def answer_on_exit(watchers: Watchers) -> Callable[[], None]:
    """Chain ``watchers.stop`` before the server's own SIGTERM and SIGINT handlers (set with
    ``signal.signal``, as uvicorn does); the undo. Only the main thread may set handlers:
    in any other (an app served by a test's thread) this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    chained: dict[int, Any] = {}
    for sig in (signal.SIGTERM, signal.SIGINT):
        handler = signal.getsignal(sig)
        if not callable(handler):
            continue

        def on_exit(signum: int, frame: FrameType | None, handler: Any = handler) -> None:
            loop.call_soon_threadsafe(watchers.stop)
            handler(signum, frame)

        signal.signal(sig, on_exit)
        chained[sig] = (on_exit, handler)

    def undo() -> None:
        for sig, (ours, theirs) in chained.items():
            if signal.getsignal(sig) is ours:
                signal.signal(sig, theirs)

    return undo
