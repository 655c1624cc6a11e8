"""``memory.session()``: a unit of work over one namespace.

Entering loads what was asked for (a prefix, a list of keys) in one round trip;
reads and writes are then local; a clean exit writes every changed key in one
atomic batch, each write guarded by the version the session read, so a change
made by anyone else in between raises :class:`~botwire.Conflict` naming the keys
and nothing is written. An exception inside the block writes nothing.

Changes are found by comparing each value's JSON with what was read, so values
mutated in place (``s["history"].append(...)``) are saved too. A written key
keeps the expiry it had unless the session (or ``set``) is given a ``ttl``; a
new key gets ``ttl`` or the memory's ``default_ttl``.

Sessions do not nest into each other: each is its own unit of work, and an
inner session that commits a key the outer one read makes the outer commit
raise ``Conflict``. A session is entered once.

:class:`Session` loads other keys lazily (one round trip each);
:class:`AsyncSession` cannot load inside ``s[key]``, so it raises
``InvalidRequest`` for a key it has not loaded: pass ``keys=``/``prefetch=`` or
``await s.load(key)`` first.
"""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any

from . import _codec
from ._core import NOT_PROVIDED
from ._errors import InvalidRequest, NotFound
from ._validate import check_key, check_prefix, check_ttl
from .ops import TTL, Delete, Get, Op, Put, Record, Scan, TTLArg
from .stores.base import now as store_now

if TYPE_CHECKING:
    from ._core import MemoryCore

_MIN_TTL = 0.001  # a kept expiry that ran out meanwhile: the version guard catches it anyway


class _SessionState:
    """What both sessions share: the local view, and the ops to load and commit. No I/O."""

    def __init__(
        self, memory: MemoryCore, prefetch: str | None, keys: Iterable[str] | None, ttl: Any
    ) -> None:
        self._memory = memory
        self._prefix = None if prefetch is None else check_prefix(prefetch)
        self._wanted = [check_key(k) for k in keys or ()]
        self._ttl = NOT_PROVIDED if ttl is NOT_PROVIDED else check_ttl(ttl)
        self._read: dict[str, Record | None] = {}  # what the server had (None: absent)
        self._values: dict[str, Any] = {}  # the session's live keys and their values
        self._ttls: dict[str, TTL] = {}  # keys set with an explicit ttl
        self._removed: set[str] = set()  # keys the session deleted
        self._stage = "new"  # -> "open" -> "closed"

    # -- life cycle -----------------------------------------------------------------

    def _enter(self) -> list[Op]:
        if self._stage != "new":
            raise InvalidRequest("a session is entered once; open a new one")
        self._stage = "open"
        ops: list[Op] = [] if self._prefix is None else [Scan(self._prefix)]
        return ops + [Get(key, fresh=True) for key in self._wanted]

    def _loaded(self, ops: list[Op], results: list[Any]) -> None:
        for op, result in zip(ops, results, strict=True):
            if isinstance(op, Scan):
                for key, record in result:
                    self._absorb(key, record)
            else:
                self._absorb(op.key, result)  # type: ignore[union-attr]

    def _absorb(self, key: str, record: Record | None) -> None:
        if key in self._read or key in self._values or key in self._removed:
            return  # the session's own view wins over a later load
        self._read[key] = record
        if record is not None:
            self._values[key] = _codec.decode(record.data)

    def _check_open(self) -> None:
        if self._stage != "open":
            raise InvalidRequest("use a session inside its with block")

    def _known(self, key: str) -> bool:
        if key in self._read or key in self._values or key in self._removed:
            return True
        return self._prefix is not None and key.startswith(self._prefix)

    def _commit_ops(self) -> list[Op]:
        """One write per changed key, guarded by the version read (none for blind writes)."""
        self._stage = "closed"
        now = store_now(self._memory.store)
        ops: list[Op] = []
        for key in sorted(self._values.keys() | self._removed):
            record = self._read.get(key)
            guard = (record.version if record else 0) if key in self._read else None
            if key in self._values:
                data = _codec.encode(self._values[key])
                if record is not None and data == record.data and key not in self._ttls:
                    continue
                ops.append(Put(key, data, self._ttl_for(key, record, now), guard))
            elif record is not None or key not in self._read:
                ops.append(Delete(key, guard))
        return ops

    def _ttl_for(self, key: str, record: Record | None, now: float) -> TTL:
        if key in self._ttls:
            return self._ttls[key]
        if self._ttl is not NOT_PROVIDED:
            return self._ttl
        if record is not None and record.expires_at is not None:
            return max(record.expires_at - now, _MIN_TTL)  # keep the expiry it had
        return self._memory._default_ttl

    # -- the local view -------------------------------------------------------------

    def _lookup(self, key: str, default: Any) -> Any:
        return self._values.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.set(key, value)

    def set(self, key: str, value: Any, *, ttl: TTLArg = NOT_PROVIDED) -> None:
        """Set ``key`` in the session (checked now, written at commit)."""
        self._check_open()
        key = check_key(key)
        _codec.encode(value)  # refuse what cannot be stored now, not at commit
        if ttl is not NOT_PROVIDED:
            self._ttls[key] = check_ttl(ttl)
        self._values[key] = value
        self._removed.discard(key)

    def keys(self) -> list[str]:
        """The live keys the session knows (loaded or set), sorted."""
        self._check_open()
        return sorted(self._values)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self._memory.namespace!r} {self._stage}>"


class Session(_SessionState):
    """A dict-like unit of work for :class:`~botwire.Memory`; see ``Memory.session``."""

    def __enter__(self) -> Session:
        ops = self._enter()
        if ops:
            self._loaded(ops, self._memory.store.batch(self._memory.namespace, ops))
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._stage = "closed"
            return
        ops = self._commit_ops()
        if ops:
            self._memory.store.batch(self._memory.namespace, ops)

    def load(self, *keys: str) -> None:
        """Read ``keys`` the session does not know yet, in one round trip."""
        self._check_open()
        ops: list[Op] = [Get(check_key(k), fresh=True) for k in keys if not self._known(k)]
        if ops:
            self._loaded(ops, self._memory.store.batch(self._memory.namespace, ops))

    def get(self, key: str, default: Any = None) -> Any:
        """The session's value of ``key`` (loaded on first use), or ``default``."""
        self.load(key)
        return self._lookup(key, default)

    def __getitem__(self, key: str) -> Any:
        self.load(key)
        if key not in self._values:
            raise NotFound(f"key {key!r} does not exist")
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        self.load(key)  # type: ignore[arg-type]
        return key in self._values

    def delete(self, key: str) -> bool:
        """Delete ``key`` at commit; ``True`` if it is live in the session now."""
        self.load(key)
        self._removed.add(key)
        return self._values.pop(key, _ABSENT) is not _ABSENT

    def __delitem__(self, key: str) -> None:
        if not self.delete(key):
            raise NotFound(f"key {key!r} does not exist")


class AsyncSession(_SessionState):
    """:class:`Session` for :class:`~botwire.AsyncMemory` (``async with``)."""

    async def __aenter__(self) -> AsyncSession:
        ops = self._enter()
        if ops:
            self._loaded(ops, await self._memory.store.abatch(self._memory.namespace, ops))
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc_type is not None:
            self._stage = "closed"
            return
        ops = self._commit_ops()
        if ops:
            await self._memory.store.abatch(self._memory.namespace, ops)

    async def load(self, *keys: str) -> None:
        """Read ``keys`` the session does not know yet, in one round trip."""
        self._check_open()
        ops: list[Op] = [Get(check_key(k), fresh=True) for k in keys if not self._known(k)]
        if ops:
            self._loaded(ops, await self._memory.store.abatch(self._memory.namespace, ops))

    def _require(self, key: str) -> None:
        self._check_open()
        if not self._known(check_key(key)):
            raise InvalidRequest(
                f"key {key!r} is not loaded: pass keys=/prefetch= to session(), "
                "or await session.load(key) first"
            )

    def get(self, key: str, default: Any = None) -> Any:
        """The session's value of ``key``, or ``default`` (``key`` must be loaded)."""
        self._require(key)
        return self._lookup(key, default)

    def __getitem__(self, key: str) -> Any:
        self._require(key)
        if key not in self._values:
            raise NotFound(f"key {key!r} does not exist")
        return self._values[key]

    def __contains__(self, key: object) -> bool:
        self._require(key)  # type: ignore[arg-type]
        return key in self._values

    def delete(self, key: str) -> bool:
        """Delete ``key`` at commit; ``True`` if it is live in the session now.

        A key not loaded is deleted unconditionally (the answer is then ``False``).
        """
        self._check_open()
        key = check_key(key)
        self._removed.add(key)
        return self._values.pop(key, _ABSENT) is not _ABSENT

    def __delitem__(self, key: str) -> None:
        self._require(key)
        if not self.delete(key):
            raise NotFound(f"key {key!r} does not exist")


_ABSENT = object()
