"""The store vocabulary: typed operations and what they return.

A store applies a sequence of operations to one namespace atomically and
returns one result per operation (see :class:`botwire.stores.Store`). Values
travel as JSON bytes; only the ``Memory`` shells encode and decode them, so a
cache or a server can pass bytes through untouched.

=========== ================================================================
operation   result
=========== ================================================================
Get         ``Record`` or ``None`` (missing or expired)
Put         the new version (``int``)
Delete      ``True`` if a live key was removed
Incr        the new number
Append      the new length of the list
Touch       ``True`` if the key exists (its expiry was reset)
ListKeys    sorted ``list[str]`` of live keys
Scan        sorted ``list[(key, Record)]`` of live items
Count       number of live keys with the prefix
Clear       number of live keys removed
Stats       ``NamespaceStats``: live keys, bytes stored, writes today
Changes     ``ChangePage`` of changes with versions above ``since``, oldest first
            (keys with ``prefix``; each with its value when ``values``)
=========== ================================================================

``if_version`` makes a write conditional: ``None`` always applies, ``0`` only
if the key is absent, ``v`` only if the live version is ``v``. If any check in a
batch fails, nothing in the batch is applied and :class:`~botwire.Conflict`
names every failing key.

``ttl`` is seconds from now, ``None`` for no expiry, or ``KEEP`` (``Incr`` and
``Append`` only) to leave a live key's expiry as it is; under ``KEEP`` a key
the operation creates gets ``new_ttl``.
"""

from __future__ import annotations

import enum
from collections.abc import Sequence
from datetime import timedelta
from typing import Any, NamedTuple


class _Keep(enum.Enum):
    KEEP = "keep"


KEEP = _Keep.KEEP
"""TTL marker: keep the key's current expiry (new keys get none)."""


class NotProvided(enum.Enum):
    """The type of :data:`NOT_PROVIDED`."""

    NOT_PROVIDED = "NOT_PROVIDED"

    def __repr__(self) -> str:
        return "NOT_PROVIDED"


NOT_PROVIDED = NotProvided.NOT_PROVIDED
"""The ``ttl`` default of ``Memory`` methods: "use ``default_ttl``", where ``None`` means
"never expires"."""

TTLArg = float | timedelta | None | NotProvided
"""A ``ttl`` argument: seconds (or a ``timedelta``), ``None`` (never expires) or
:data:`NOT_PROVIDED`."""

TTL = float | None
TTLOrKeep = float | None | _Keep


class Record(NamedTuple):
    """A stored item as a store returns it: the value still as JSON bytes."""

    data: bytes
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None


class Get(NamedTuple):
    key: str
    refresh: bool = False  # sliding expiry: reset expires_at from the key's own TTL
    fresh: bool = False  # skip any read cache (stores without one ignore it)


class Put(NamedTuple):
    key: str
    data: bytes
    ttl: TTL = None
    if_version: int | None = None


class Delete(NamedTuple):
    key: str
    if_version: int | None = None


class Incr(NamedTuple):
    key: str
    by: int | float = 1
    ttl: TTLOrKeep = KEEP
    new_ttl: TTL = None  # under KEEP: the TTL of a key this creates


class Append(NamedTuple):
    key: str
    items: bytes  # a JSON array of the items to add
    max_len: int | None = None
    ttl: TTLOrKeep = KEEP
    new_ttl: TTL = None  # under KEEP: the TTL of a key this creates


class Touch(NamedTuple):
    key: str
    ttl: TTL


class ListKeys(NamedTuple):
    prefix: str = ""
    after: str | None = None  # cursor: only keys sorting after this one
    limit: int | None = None


class Scan(NamedTuple):
    """Like ``ListKeys``, with each key's record: a prefix loaded in one round trip."""

    prefix: str = ""
    after: str | None = None
    limit: int | None = None


class Count(NamedTuple):
    prefix: str = ""


class Clear(NamedTuple):
    prefix: str = ""


class Stats(NamedTuple):
    pass


class Changes(NamedTuple):
    since: int = 0  # a version: the cursor of the change feed
    limit: int = 1000  # 0: no changes, only the cursor of "now" (``ChangePage.next``)
    prefix: str = ""
    values: bool = False  # each live change carries its value and expiry


Op = Get | Put | Delete | Incr | Append | Touch | ListKeys | Scan | Count | Clear | Stats | Changes
READ_OPS = (ListKeys, Scan, Count, Stats, Changes)  # Get is a read too unless it refreshes
WRITE_OPS = (Put, Incr, Append, Touch)  # what counts against a daily write limit


class NamespaceStats(NamedTuple):
    keys: int
    bytes: int  # UTF-8 key plus JSON value, summed over live and not yet swept items
    writes_today: int  # writes counted since 00:00 UTC (0 where no limits are kept)


class NamespaceInfo(NamedTuple):
    """A namespace as ``botwire.namespaces`` lists it: its name and :class:`NamespaceStats`."""

    namespace: str
    keys: int
    bytes: int
    writes_today: int


class Change(NamedTuple):
    """One entry of the change feed: the key's newest version, or its deletion.

    The feed holds each key once, at its newest version: a reader that was away
    sees where each key ended up, not every step (as Deno KV's ``watch``). A
    key whose expiry passed shows up as deleted once the store sweeps it.
    ``data`` (the value's JSON; :attr:`value` decodes it) and ``expires_at``
    are filled in when the feed was asked for values.
    """

    key: str
    version: int
    deleted: bool
    data: bytes | None = None
    expires_at: float | None = None

    @property
    def value(self) -> Any:
        """The value at this version (``None`` for a deletion, or without values)."""
        from ._codec import decode

        return None if self.data is None else decode(self.data)


class ChangePage(NamedTuple):
    """A page of the change feed. Ask again with ``since=next`` for more.

    ``next`` passes the changes of the page, or, when the page is not full, every
    change made so far: a reader asking with ``since=next`` misses nothing and
    sees nothing twice. ``reset`` means deletions older than the feed keeps (7
    days) may be missing after ``since``: a reader caching the namespace must
    drop it.
    """

    changes: list[Change]
    next: int
    reset: bool


class Idempotency(NamedTuple):
    """Makes a write batch safe to retry: a repeat with this key replays the first answer.

    ``fingerprint`` identifies the request; a reuse of ``key`` with another
    fingerprint raises ``IdempotencyKeyReused``. The record is written in the
    batch's own transaction, so a repeat that arrives while the first runs waits
    for it and replays it. Kept for 24 hours.
    """

    key: str
    fingerprint: str


def is_read_only(ops: Sequence[Op]) -> bool:
    """True when no operation in ``ops`` can change the store."""
    for op in ops:
        if type(op) is Get:
            if op.refresh:
                return False
        elif type(op) not in READ_OPS:
            return False
    return True


class Item(NamedTuple):
    """A live key with its metadata. Times are Unix timestamps in seconds."""

    key: str
    value: Any
    version: int
    created_at: float
    updated_at: float
    expires_at: float | None
