"""Group commit: the writes of one worker that arrive together share one transaction.

Under load, many requests wait for the same fsync. Each request's batch still
runs atomically on its own (a savepoint inside the group's transaction) and
fails on its own, whatever it raises; every answer is sent only after the
group's commit, so an acknowledged write is as durable as a lone one. Keyed
writes (``Idempotency-Key``) join too: their replay record is written in their
own savepoint. Every store with :class:`~botwire.stores.GroupCommit` (SQLite
and PostgreSQL) gets its writes this way. On SQLite a cheap write that arrives
alone runs at once on the event loop; otherwise a group runs in a thread, so
the loop goes on receiving the next group while this one waits for its
commit. If the group's transaction itself fails on SQLite (a full disk), each
batch is tried alone, so one batch never fails another; PostgreSQL retries
the group where that is safe and otherwise answers every batch with the
failure, as it would a lone one.
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.concurrency import run_in_threadpool

from botwire.ops import Idempotency, Op
from botwire.stores import LocalIO, Store
from botwire.stores.base import GroupItem, batch_group

from .deps import quick

MAX_GROUP = 256


class WriteQueue:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._pending: list[tuple[GroupItem, asyncio.Future[list[Any]]]] = []
        self._flusher: asyncio.Task[None] | None = None

    async def submit(
        self, namespace: str, ops: list[Op], idempotency: Idempotency | None = None
    ) -> list[Any]:
        """Apply ``ops`` to ``namespace`` atomically, in the next group commit."""
        future: asyncio.Future[list[Any]] = asyncio.get_running_loop().create_future()
        self._pending.append(((namespace, ops, idempotency), future))
        if self._flusher is None:
            self._flusher = asyncio.create_task(self._flush())
        return await future

    async def _flush(self) -> None:
        try:
            await asyncio.sleep(0)  # let the requests already read this turn join the group
            while self._pending:
                group, self._pending = self._pending[:MAX_GROUP], self._pending[MAX_GROUP:]
                await self._commit(group)
        finally:
            self._flusher = None

    async def _commit(self, group: list[tuple[GroupItem, asyncio.Future[list[Any]]]]) -> None:
        batches = [batch for batch, _ in group]
        local = isinstance(self.store, LocalIO)
        try:
            answers = None
            if len(batches) == 1 and local and quick(batches[0][1]):  # alone, cheap, local:
                answers = batch_group(self.store, batches, wait=False)  # on the loop, unless
                # another writer holds the file
            if answers is None:
                answers = await run_in_threadpool(batch_group, self.store, batches)
            assert answers is not None
        except BaseException as exc:  # the group's transaction failed (disk full, closed...)
            if len(group) > 1:
                for one in group:  # then each batch alone: one never fails another
                    await self._commit([one])
                return
            _, future = group[0]
            if not future.done():
                future.set_exception(exc)
            return
        for (_, future), answer in zip(group, answers, strict=True):
            if future.done():  # the request was cancelled (client gone)
                continue
            if isinstance(answer, BaseException):
                future.set_exception(answer)
            else:
                future.set_result(answer)
