"""A conversation stored one entry per key: no size limit but the namespace's quota.

Every chat adapter keeps its histories with :class:`History` (a public module:
build your own adapter on it). Under a
conversation's base key ``<kind><name>`` (``/`` and ``%`` in the name escaped):

    <base>/head          {"first": F, "next": N}: the live entries are F <= i < N
                         (and "moved": M while a long round-1 list moves over)
    <base>/m/<i:012d>    entry i, in order
    <base>/id/<digest>   i, for entries that carry an id (de-duplication), optional

An append reads the head, then writes its entries and the new head in one
atomic batch, the head guarded by its version: appends from many processes
apply whole and in order, a race is retried. Trimming moves ``first`` in that
same batch; the dropped entries are deleted after it, and readers never show an
entry before ``first``. With a TTL every write restarts the whole
conversation's clock (its kept entries are touched). A round-1 history (one
list under ``legacy``) is read before the entries, and moved into entries by
the next append, in that append's own batch.

Only botwire's public API: ``Memory.batch`` / ``AsyncMemory.batch`` with the
ops of :mod:`botwire.ops`, values through :mod:`botwire.wire`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Generator, Sequence
from typing import Any

from .. import AnswerTooLarge, AsyncMemory, Conflict, Memory
from ..ops import Clear, Delete, Get, Op, Put, Record, Scan, Touch
from ..stores import after_lost_race
from ..wire import MAX_BATCH, decode_value, encode_value

Plan = Generator[list[Op], list[Any], Any]

PAGE = 200  # entries per scan (halved while an answer is too large)
CHUNK = 300  # entries per atomic append: with an id key each, and their reads, in one batch
CHUNK_BYTES = 1_000_000  # and their JSON per append (a request body is at most 2 MiB)
ATTEMPTS = 1000  # appends retried on a race before giving up


def escape(name: str) -> str:
    """``name`` without ``/`` (one conversation's keys never fall under another's prefix)."""
    return name.replace("%", "%25").replace("/", "%2F")


class History:
    """One conversation: ``read``, ``append``, ``count``, ``clear`` (and ``a``-twins).

    ``max_entries`` keeps the newest; ``trim(entries) -> n`` (optional) says how
    many of the oldest to drop given every entry after an append (an adapter
    trims whole exchanges with it); ``id_of(entry)`` (optional) names entries
    to skip when one with the same id is stored already, and ``stamp(entry, i)``
    (optional) gives an entry without an id its id from its position ``i``
    (on a copy: the caller's entry is never changed; recomputed on a retry).
    """

    def __init__(
        self,
        kind: str,
        name: str,
        *,
        legacy: str | None = None,
        max_entries: int | None = None,
        trim: Callable[[list[Any]], int] | None = None,
        ttl: float | None = None,
        id_of: Callable[[Any], str | None] | None = None,
        stamp: Callable[[Any, int], Any] | None = None,
    ) -> None:
        self.base = f"{kind}{escape(name)}"
        self.head = f"{self.base}/head"
        self.prefix = f"{self.base}/m/"
        self.legacy = legacy
        self.max_entries = max_entries
        self.trim = trim
        self.ttl = ttl
        self.id_of = id_of
        self.stamp = stamp

    # -- sync and async: one plan each, two drivers -------------------------------------

    def read(self, memory: Memory, last: int | None = None) -> list[Any]:
        """Every live entry, oldest first (the ``last`` ones only: read from the tail)."""
        return run_plan(memory, self._read(last))  # type: ignore[no-any-return]

    async def aread(self, memory: AsyncMemory, last: int | None = None) -> list[Any]:
        return await arun_plan(memory, self._read(last))  # type: ignore[no-any-return]

    def append(self, memory: Memory, entries: Sequence[Any]) -> int:
        """Add ``entries`` at the end, atomically and in order; how many were new."""
        return run_plan(memory, self._append(list(entries)))  # type: ignore[no-any-return]

    async def aappend(self, memory: AsyncMemory, entries: Sequence[Any]) -> int:
        return await arun_plan(memory, self._append(list(entries)))  # type: ignore[no-any-return]

    def count(self, memory: Memory) -> int:
        return run_plan(memory, self._count())  # type: ignore[no-any-return]

    async def acount(self, memory: AsyncMemory) -> int:
        return await arun_plan(memory, self._count())  # type: ignore[no-any-return]

    def clear(self, memory: Memory) -> None:
        run_plan(memory, self._clear())

    async def aclear(self, memory: AsyncMemory) -> None:
        await arun_plan(memory, self._clear())

    # -- plans ------------------------------------------------------------------------------

    def _entry(self, i: int) -> str:
        return f"{self.prefix}{i:012d}"

    def _id_key(self, entry_id: str) -> str:
        return f"{self.base}/id/{hashlib.sha256(entry_id.encode()).hexdigest()[:32]}"

    def _start(self, extra: list[Op]) -> Plan:
        """The head, the round-1 list not moved yet (``extra`` ops in the same batch).

        Only a list under the legacy key is a round-1 history (another
        conversation's head may have that key: it is left alone). A long one
        moves over several appends; the head's ``moved`` counts its items
        already in entries.
        """
        ops: list[Op] = [Get(self.head)]
        if self.legacy is not None:
            ops.append(Get(self.legacy))
        results = yield ops + extra
        head: Record | None = results[0]
        span = {"first": 0, "next": 0} if head is None else decode_value(head.data)
        old: Record | None = results[1] if self.legacy is not None else None
        legacy: list[Any] = []
        if old is not None:
            value = decode_value(old.data)
            if isinstance(value, list):
                legacy = value[int(span.get("moved", 0)) :]
            else:
                old = None
        return head, span, old, legacy, results[len(ops) :]

    def _entries(self, first: int, next_: int) -> Plan:
        """Entries ``first <= i < next_``, paged (smaller pages while one is too large)."""
        found: list[Any] = []
        after = self._entry(first - 1) if first > 0 else None
        page = PAGE
        while True:
            try:
                (rows,) = yield [Scan(self.prefix, after=after, limit=page)]
            except AnswerTooLarge:
                if page == 1:
                    raise
                page = max(1, page // 2)
                continue
            for key, record in rows:
                if first <= int(key[len(self.prefix) :]) < next_:
                    found.append(decode_value(record.data))
            if len(rows) < page or (rows and int(rows[-1][0][len(self.prefix) :]) >= next_ - 1):
                return found
            after = rows[-1][0]

    def _read(self, last: int | None = None) -> Plan:
        head, span, _, legacy, _ = yield from self._start([])
        if head is None:
            return legacy if last is None else legacy[-last:] if last else []
        first, next_ = int(span["first"]), int(span["next"])
        if last is not None:
            if last <= next_ - first:
                return (yield from self._entries(next_ - last, next_)) if last else []
            legacy = legacy[-(last - (next_ - first)) :]
        return legacy + (yield from self._entries(first, next_))

    def _count(self) -> Plan:
        _, span, _, legacy, _ = yield from self._start([])
        return len(legacy) + int(span["next"]) - int(span["first"])

    def _clear(self) -> Plan:
        ops: list[Op] = [Delete(self.head), Clear(self.base + "/")]
        if self.legacy is not None:
            (old,) = yield [Get(self.legacy)]
            if old is not None and isinstance(decode_value(old.data), list):
                ops.append(Delete(self.legacy, if_version=old.version))
        yield ops

    def _append(self, entries: list[Any]) -> Plan:
        """In chunks (each atomic, in order) that fit one batch with their bookkeeping."""
        added = 0
        for chunk in _chunks(entries):
            while True:  # (a long round-1 list first moves over, a chunk a time)
                done = yield from self._append_chunk(chunk)
                if done is not None:
                    added += done
                    break
        return added

    def _append_chunk(self, entries: list[Any]) -> Plan:
        """Append ``entries``: how many were new; ``None`` if it moved a chunk of a long
        round-1 list instead (then call again)."""
        ids = [self.id_of(e) for e in entries] if self.id_of else [None] * len(entries)
        asked = list(dict.fromkeys(i for i in ids if i is not None))
        for _ in range(ATTEMPTS):
            head, span, old, legacy, seen = yield from self._start(
                [Get(self._id_key(i)) for i in asked]
            )
            first, next_ = int(span["first"]), int(span["next"])
            moved = int(span.get("moved", 0))
            known = {i for i, record in zip(asked, seen, strict=True) if record is not None}
            if self.id_of is not None:
                known |= {i for i in map(self.id_of, legacy) if i is not None}
            moving = legacy[:CHUNK]  # the round-1 list first, a chunk at a time
            rest = legacy[CHUNK:]
            new: list[Any] = []
            if not rest:  # the new entries follow the last of the round-1 list
                at = next_ + len(moving)  # where the next new entry goes
                for entry, entry_id in zip(entries, ids, strict=True):
                    if entry_id is None and self.stamp is not None:
                        entry = self.stamp(entry, at)  # new by construction: no de-dup
                        stamped = self.id_of(entry) if self.id_of else None
                        if stamped is not None:
                            known.add(stamped)
                    elif entry_id is not None:
                        if entry_id in known:
                            continue
                        known.add(entry_id)
                    new.append(entry)
                    at += 1
            moving = moving + new
            if not moving:
                return 0
            current: list[Any] = []
            drop = 0
            total = next_ - first + len(moving)
            over = self.max_entries is not None and total > self.max_entries
            refresh_ids = self.ttl is not None and self.id_of is not None
            if over or self.trim is not None or refresh_ids:
                current = yield from self._entries(first, next_)
                drop = self._dropped(current + moving)
            end = next_ + len(moving)
            cut = first + drop  # the new first
            ops: list[Op] = []
            span = {"first": cut, "next": end}
            if rest:
                span["moved"] = moved + len(legacy) - len(rest)
            elif old is not None:
                ops.append(Delete(self.legacy, if_version=old.version))  # type: ignore[arg-type]
            for k, entry in enumerate(moving):
                if next_ + k >= cut:  # (an entry dropped at once is never stored)
                    ops.append(Put(self._entry(next_ + k), encode_value(entry), ttl=self.ttl))
                    entry_id = self.id_of(entry) if self.id_of else None
                    if entry_id is not None:
                        at_key = encode_value(next_ + k)
                        ops.append(Put(self._id_key(entry_id), at_key, ttl=self.ttl))
            version = 0 if head is None else head.version
            ops.append(Put(self.head, encode_value(span), ttl=self.ttl, if_version=version))
            try:
                yield ops
            except Conflict:
                continue  # another writer moved the head (or the legacy list): again
            yield from self._after(first, next_, cut, current)
            return None if rest else len(new)
        raise Conflict(f"{self.base}: {ATTEMPTS} appends raced; try again")

    def _dropped(self, everything: list[Any]) -> int:
        drop = max(0, len(everything) - self.max_entries) if self.max_entries is not None else 0
        if self.trim is not None:
            drop = max(drop, self.trim(everything))
        return min(drop, len(everything))

    def _after(self, first: int, next_: int, cut: int, current: list[Any]) -> Plan:
        """Delete what the head no longer covers; with a TTL, restart the kept entries' clock."""
        ops: list[Op] = []
        for i in range(first, next_):
            entry_id = self.id_of(current[i - first]) if self.id_of and current else None
            if i < cut:
                ops.append(Delete(self._entry(i)))
                if entry_id is not None:
                    ops.append(Delete(self._id_key(entry_id)))
            elif self.ttl is not None:
                ops.append(Touch(self._entry(i), self.ttl))
                if entry_id is not None:
                    ops.append(Touch(self._id_key(entry_id), self.ttl))
        for start in range(0, len(ops), MAX_BATCH):
            yield ops[start : start + MAX_BATCH]


def _chunks(entries: list[Any]) -> list[list[Any]]:
    """``entries`` in order, at most ``CHUNK`` and about ``CHUNK_BYTES`` of JSON a chunk."""
    chunks: list[list[Any]] = [[]]
    size = 0
    for entry in entries:
        grows = len(encode_value(entry))
        if chunks[-1] and (len(chunks[-1]) >= CHUNK or size + grows > CHUNK_BYTES):
            chunks.append([])
            size = 0
        chunks[-1].append(entry)
        size += grows
    return chunks if chunks[0] else []


def run_plan(memory: Memory, plan: Plan) -> Any:
    """Drive ``plan`` with ``memory.batch``; a ``Conflict`` or a too-large answer is raised
    inside the plan, which may retry (after a pause, on a race)."""
    import time

    policy = after_lost_race()
    try:
        ops = next(plan)
        while True:
            try:
                results = memory.batch(ops)
            except (Conflict, AnswerTooLarge) as exc:
                if isinstance(exc, Conflict):
                    time.sleep(policy.pause() or 0.0)
                ops = plan.throw(exc)
                continue
            ops = plan.send(results)
    except StopIteration as done:
        return done.value


async def arun_plan(memory: AsyncMemory, plan: Plan) -> Any:
    """Async :func:`run_plan`."""
    import asyncio

    policy = after_lost_race()
    try:
        ops = next(plan)
        while True:
            try:
                results = await memory.batch(ops)
            except (Conflict, AnswerTooLarge) as exc:
                if isinstance(exc, Conflict):
                    await asyncio.sleep(policy.pause() or 0.0)
                ops = plan.throw(exc)
                continue
            ops = plan.send(results)
    except StopIteration as done:
        return done.value
