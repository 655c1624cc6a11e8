"""The one I/O boundary: a store applies operations to a namespace atomically."""

from __future__ import annotations

import enum
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from .._errors import BotwireError
from .._ops import Get, Idempotency, Op, Record


class _Unchanged(enum.Enum):
    UNCHANGED = "unchanged"


UNCHANGED = _Unchanged.UNCHANGED
"""What :meth:`Store.revalidate` returns when the key still has the version asked about."""


GroupItem = tuple[str, Sequence[Op], Idempotency | None]
"""One batch of a group commit: its namespace, its ops, and its idempotency key if any."""


class Limits(NamedTuple):
    """Per-namespace limits a store enforces inside the write's own transaction (0 = off)."""

    writes_per_day: int = 0  # Put, Incr, Append and successful Touch ops per UTC day
    max_bytes: int = 0  # UTF-8 key + JSON value, summed over the namespace
    max_value_bytes: int = 0  # one stored value
    max_answer_bytes: int = 0  # the values one batch may return (Get and Scan results)

    @property
    def active(self) -> bool:
        return bool(
            self.writes_per_day or self.max_bytes or self.max_value_bytes or self.max_answer_bytes
        )


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

    #: Whether calls finish in microseconds with no network I/O (SQLite, in-process):
    #: a server may then call :meth:`batch` on its event loop, else it awaits :meth:`abatch`.
    local_io: bool = False

    @abstractmethod
    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        """Apply ``ops`` to ``namespace`` atomically; one result per op.

        With ``idempotency``, a repeat of the same request returns the first
        results without applying anything again (see :class:`Idempotency`).
        """

    async def abatch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        """Async :meth:`batch`; by default the sync one in a worker thread."""
        import asyncio  # ~45 ms to import: only for async users

        return await asyncio.to_thread(self.batch, namespace, ops, idempotency=idempotency)

    def revalidate(self, namespace: str, key: str, version: int) -> Record | _Unchanged | None:
        """``key``'s record, or :data:`UNCHANGED` if its live version is still ``version``.

        A read cache calls it on an entry past its ``max_stale``; a remote store
        answers without sending the value again. By default: a plain ``Get``.
        """
        record: Record | None = self.batch(namespace, (Get(key),))[0]
        return UNCHANGED if record is not None and record.version == version else record

    async def arevalidate(
        self, namespace: str, key: str, version: int
    ) -> Record | _Unchanged | None:
        """Async :meth:`revalidate`."""
        record: Record | None = (await self.abatch(namespace, (Get(key),)))[0]
        return UNCHANGED if record is not None and record.version == version else record

    def batch_group(
        self, group: Sequence[GroupItem], *, wait: bool = True
    ) -> list[list[Any] | BotwireError] | None:
        """Apply several ``(namespace, ops, idempotency)`` batches, each atomic on its own.

        Each answer is that batch's results or the error that refused it. A store
        with real transactions commits the group at once (one fsync for all); the
        default applies them one after another. ``wait=False`` may return ``None``
        where the store would have to wait for another writer.
        """
        answers: list[list[Any] | BotwireError] = []
        for namespace, ops, idempotency in group:
            try:
                answers.append(self.batch(namespace, ops, idempotency=idempotency))
            except BotwireError as exc:
                answers.append(exc)
        return answers

    def sweep(self, limit: int = 1000) -> int:
        """Delete up to ``limit`` expired items now; return how many went."""
        return 0

    def close(self) -> None:  # noqa: B027 - most stores hold nothing to release
        """Release connections and files; later calls raise ``StoreClosed``."""

    async def aclose(self) -> None:
        """:meth:`close` from async code (closes async connections too, where there are)."""
        self.close()
