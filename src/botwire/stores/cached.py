"""A read cache in front of a remote store (diskcache), shared by the processes of a host.

* Entries are bytes: a fixed header (version, when the server was asked, the
  item's timestamps) and the value's JSON. The cache's :class:`SafeDisk` stores
  and returns nothing else, so a pickle planted in the cache directory is
  refused, never loaded (diskcache pickles by default: CVE-2025-69872).
* Reads: an entry younger than ``max_stale`` seconds is served as it is; an
  older one is revalidated with its version (``If-None-Match``, answered 304
  without a body when it still holds). Expired items are never served; misses
  are cached too. ``Get.fresh`` skips the cache (and refreshes it).
* Writes go to the origin with a ``Get`` of every key they touch appended to
  the same atomic batch, so the cache learns each key's new state from the
  server's own answer: a process always reads its own writes, and the other
  processes of the host read them from the cache at once.
* Two processes may fill one key at the same time. Each entry keeps the time
  span in which the server was asked; of two records the higher version wins,
  and where a deletion (version unknown) races another answer whose span
  overlaps it, the key is dropped, so the next read asks the server.
* Entries never go backwards: a failed write (a ``Conflict``, a timeout) does
  not delete a key's entry but marks it *unknown as of now*; only an answer
  asked after that replaces it. A process also remembers the highest version
  it has seen of each key and never serves an older one (monotonic reads).
* An entry stamped in the future (the clock went back) is not fresh: nothing
  is served past ``max_stale`` of real age, whatever the wall clock did.
* An entry that is not ours (a planted pickle, a short or garbled blob) is a
  miss: it is logged, dropped and replaced from the server.
* ``stale_if_error``: when the origin is unreachable, a cached (unexpired)
  entry is served however old, with a :class:`~botwire.StaleReadWarning`.
* Compare-and-set, sessions and every other write are checked by the origin;
  a ``Conflict`` marks the keys it names unknown, so a retry reads fresh values.
* The directory belongs to one server URL and one set of credentials (see
  ``_registry.cache_dir``), is created 0700, and is opened under a file lock,
  so processes that open it at once do not race diskcache's set-up.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sqlite3
import stat
import struct
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import diskcache

from .._errors import (
    AnswerTooLarge,
    BotwireError,
    Conflict,
    StaleReadWarning,
    StoreError,
    Unavailable,
)
from ..ops import (
    Append,
    ChangePage,
    Changes,
    Clear,
    Delete,
    Get,
    Idempotency,
    Incr,
    NamespaceInfo,
    Op,
    Put,
    Record,
    Scan,
    Touch,
    is_read_only,
)
from ..wire import MAX_BATCH
from ._backoff import Backoff
from .base import (
    UNCHANGED,
    Clocked,
    Store,
    Sweeping,
    aclose,
    arevalidate,
    namespaces,
    revalidate,
)
from .watch import await_changes, wait_changes

log = logging.getLogger("botwire")

DEFAULT_MAX_STALE = 1.0
_HEADER = struct.Struct(
    "<qddddd"
)  # version (0: absent, -1: unknown), asked, answered, created, updated, expires
_UNKNOWN = -1
_SEEN_MAX = 65_536  # versions a process remembers for monotonic reads
_ABSENT_KEEP = 3600.0  # how long diskcache keeps an "absent" entry around (it orders fills)


class RefusedEntry(ValueError):
    """A cache entry that is not one of ours (a pickle, a text file...): never loaded."""


class SafeDisk(diskcache.Disk):  # type: ignore[misc]
    """A diskcache Disk for ``str`` keys and ``bytes`` values only: it never (un)pickles."""

    def put(self, key: Any) -> tuple[Any, bool]:
        if type(key) is not str:
            raise TypeError("the botwire cache takes str keys only")
        return key, True

    def get(self, key: Any, raw: bool) -> Any:
        if not raw:
            raise RefusedEntry("a pickled key in the cache")
        return key

    def store(self, value: Any, read: bool, key: Any = diskcache.core.UNKNOWN) -> Any:
        if type(value) is not bytes:
            raise TypeError("the botwire cache stores bytes only")
        return super().store(value, read, key)

    def fetch(self, mode: int, filename: str | None, value: Any, read: bool) -> Any:
        if mode not in (diskcache.core.MODE_RAW, diskcache.core.MODE_BINARY):
            raise RefusedEntry(f"a cache entry of mode {mode} (only raw bytes are ours)")
        data = super().fetch(mode, filename, value, read)
        if type(data) is not bytes:
            raise RefusedEntry("a cache entry that is not bytes")
        return data


class Entry(NamedTuple):
    """What the cache knows of one key: its record (``None``: absent) and when it was asked.

    ``known=False`` marks a key whose state became unknown at ``asked`` (a write
    failed or could not be read back): never served, and replaced only by an
    answer asked after ``answered``.
    """

    record: Record | None
    asked: float  # the server's answer reflects its state at a moment in [asked, answered]
    answered: float
    known: bool = True

    def pack(self) -> bytes:
        r = self.record
        if r is None:
            version = 0 if self.known else _UNKNOWN
            return _HEADER.pack(version, self.asked, self.answered, 0.0, 0.0, math.nan)
        expires = math.nan if r.expires_at is None else r.expires_at
        header = _HEADER.pack(
            r.version, self.asked, self.answered, r.created_at, r.updated_at, expires
        )
        return header + r.data

    @classmethod
    def unpack(cls, blob: bytes) -> Entry:
        if len(blob) < _HEADER.size:
            raise RefusedEntry("a cache entry too short to be ours")
        version, asked, answered, created, updated, expires = _HEADER.unpack_from(blob)
        if not all(map(math.isfinite, (asked, answered))) or version < _UNKNOWN:
            raise RefusedEntry("a cache entry with a garbled header")
        if version <= 0:
            return cls(None, asked, answered, version == 0)
        expires_at = None if math.isnan(expires) else expires
        return cls(
            Record(blob[_HEADER.size :], version, created, updated, expires_at), asked, answered
        )


def newer(old: Entry | None, new: Entry) -> Entry | None:
    """Which of two answers about one key to keep; ``None``: neither is known to be newer."""
    if old is None:
        return new
    if not new.known:  # an invalidation beats whatever was asked before it
        return old if old.asked > new.answered else new
    if not old.known:
        if new.asked > old.answered:
            return new
        # Refused, but the server had reached ``new`` by ``new.answered``: an answer
        # asked before then may be older still (a fill racing a write-through).
        return old._replace(answered=max(old.answered, new.answered))
    if old.record is not None and new.record is not None:  # versions order them
        if new.record.version != old.record.version:
            return new if new.record.version > old.record.version else old
        return new if new.asked > old.asked else old
    if old.record is None and new.record is None:
        return new if new.asked > old.asked else old
    if new.asked > old.answered:  # a deletion has no version: order by time, if it can be
        return new
    if old.asked > new.answered:
        return old
    return None


def open_cache(directory: str | Path, timeout: float = 10.0) -> diskcache.Cache:
    """The diskcache at ``directory``, created 0700 (refused if another user owns it).

    Processes opening one new directory at once take turns (a file lock), since
    diskcache's set-up statements run without SQLite's busy timeout.
    """
    path = Path(directory)
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.stat()
    if info.st_uid != os.getuid():
        raise StoreError(f"the cache directory {path} belongs to another user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        path.chmod(0o700)
    policy = Backoff(timeout, base=0.005, cap=0.05)
    while True:
        try:
            with _opening(path):
                return diskcache.Cache(
                    str(path),
                    disk=SafeDisk,
                    eviction_policy="least-recently-stored",  # reads stay read-only
                    statistics=False,
                    tag_index=True,  # a namespace's entries are dropped at once by Clear
                    timeout=timeout,
                )
        except sqlite3.OperationalError as exc:
            pause = policy.pause() if "locked" in str(exc) else None
            if pause is None:
                raise StoreError(f"the read cache in {path} could not be opened: {exc}") from exc
            time.sleep(pause)
        except sqlite3.Error as exc:
            raise StoreError(f"the read cache in {path} could not be opened: {exc}") from exc


@contextlib.contextmanager
def _opening(path: Path) -> Iterator[None]:
    """Hold ``path/open.lock`` exclusively (where ``flock`` exists)."""
    try:
        import fcntl
    except ImportError:  # Windows: the retry loop alone
        yield
        return
    fd = os.open(path / "open.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # releases the lock


class CachedStore(Store):
    """``origin`` (a remote store) with a read cache in ``directory``."""

    def __init__(
        self,
        origin: Store,
        directory: str | Path,
        *,
        max_stale: float = DEFAULT_MAX_STALE,
        stale_if_error: bool = False,
    ) -> None:
        self.origin = origin
        self.max_stale = float(max_stale)
        self.stale_if_error = bool(stale_if_error)
        self.directory = str(directory)
        self._cache = open_cache(directory)
        self._seen: dict[str, int] = {}  # the highest version this process saw, per key

    @property
    def clock(self) -> Callable[[], float]:  # expiry follows the origin's (tests move it)
        return self.origin.clock if isinstance(self.origin, Clocked) else time.time

    @clock.setter
    def clock(self, value: Callable[[], float]) -> None:
        self.origin.clock = value  # type: ignore[attr-defined]

    def sweep(self, limit: int = 1000) -> int:
        return self.origin.sweep(limit) if isinstance(self.origin, Sweeping) else 0

    def namespaces(
        self, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[NamespaceInfo]:
        return namespaces(self.origin, prefix, after, limit)  # the origin's, never cached

    def wait_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        return wait_changes(self.origin, namespace, op, wait)  # the feed is never cached

    async def await_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        return await await_changes(self.origin, namespace, op, wait)

    def close(self) -> None:
        self.origin.close()
        self._cache.close()

    async def aclose(self) -> None:
        await aclose(self.origin)
        self._cache.close()

    # -- the primitive: a decision before and after each origin call -----------------

    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        gets = _plain_reads(ops)
        if gets is not None:
            served = self._serve(namespace, gets)
            if served is not None:
                return served
            stale = self._stale(namespace, gets)
            asked = time.time()
            try:
                if stale is not None:
                    key, version = stale
                    answer = revalidate(self.origin, namespace, key, version.version)
                    return [self._revalidated(namespace, key, version, answer, asked)]
                records = self.origin.batch(namespace, _unfresh(gets))
            except Unavailable as exc:
                return self._last_resort(namespace, gets, exc)
            return self._filled(namespace, gets, records, asked)
        if is_read_only(ops):
            asked = time.time()
            return self._scanned(namespace, ops, self.origin.batch(namespace, ops), asked)
        sent, keys = _with_reads(ops)
        asked = time.time()
        try:
            try:
                results = self.origin.batch(namespace, sent, idempotency=idempotency)
            except AnswerTooLarge:
                if len(sent) == len(ops):
                    raise
                # The values read back did not fit one answer, and nothing was applied:
                # send the writes alone (their keys then leave the cache).
                results = self.origin.batch(namespace, list(ops), idempotency=idempotency)
        except BotwireError as exc:
            self._failed(namespace, ops, exc)
            raise
        return self._written(namespace, ops, keys, results, asked)

    async def abatch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        gets = _plain_reads(ops)
        if gets is not None:
            served = self._serve(namespace, gets)
            if served is not None:
                return served
            stale = self._stale(namespace, gets)
            asked = time.time()
            try:
                if stale is not None:
                    key, version = stale
                    answer = await arevalidate(self.origin, namespace, key, version.version)
                    return [self._revalidated(namespace, key, version, answer, asked)]
                records = await self.origin.abatch(namespace, _unfresh(gets))
            except Unavailable as exc:
                return self._last_resort(namespace, gets, exc)
            return self._filled(namespace, gets, records, asked)
        if is_read_only(ops):
            asked = time.time()
            return self._scanned(namespace, ops, await self.origin.abatch(namespace, ops), asked)
        sent, keys = _with_reads(ops)
        asked = time.time()
        try:
            try:
                results = await self.origin.abatch(namespace, sent, idempotency=idempotency)
            except AnswerTooLarge:
                if len(sent) == len(ops):
                    raise
                # The values read back did not fit one answer, and nothing was applied:
                # send the writes alone (their keys then leave the cache).
                results = await self.origin.abatch(namespace, list(ops), idempotency=idempotency)
        except BotwireError as exc:
            self._failed(namespace, ops, exc)
            raise
        return self._written(namespace, ops, keys, results, asked)

    # -- reads ----------------------------------------------------------------------

    def _entry(self, name: str) -> Entry | None:
        """The entry stored under ``name``; one that is not ours is dropped and is a miss."""
        try:
            blob = self._cache.get(name, retry=True)
            return None if blob is None else Entry.unpack(blob)
        except RefusedEntry as exc:
            log.warning(
                "botwire cache: refused entry %r in %s (%s); dropped", name, self.directory, exc
            )
            self._cache.delete(name, retry=True)
            return None

    def _load(self, namespace: str, key: str) -> Entry | None:
        return self._entry(_name(namespace, key))

    def _saw(self, namespace: str, key: str, record: Record | None) -> None:
        """Note that this process was given ``record``: it is never served anything older."""
        if record is None:
            return
        name = _name(namespace, key)
        if record.version > self._seen.get(name, 0):
            if len(self._seen) >= _SEEN_MAX:
                del self._seen[next(iter(self._seen))]  # the oldest noted
            self._seen[name] = record.version

    def _servable(self, namespace: str, key: str, entry: Entry | None, now: float) -> bool:
        """Whether ``entry`` may be served without asking the server."""
        if entry is None or not entry.known or _expired(entry, self.clock()):
            return False
        if not 0.0 <= now - entry.asked <= self.max_stale:  # old, or from the future
            return False
        record = entry.record
        return record is None or record.version >= self._seen.get(_name(namespace, key), 0)

    def _serve(self, namespace: str, gets: Sequence[Get]) -> list[Any] | None:
        """The records of ``gets`` from the cache if every one is fresh, else ``None``."""
        now = time.time()
        out = []
        for op in gets:
            if op.fresh:
                return None
            entry = self._load(namespace, op.key)
            if entry is None or not self._servable(namespace, op.key, entry, now):
                return None
            out.append(entry.record)
        return out

    def _stale(self, namespace: str, gets: Sequence[Get]) -> tuple[str, Record] | None:
        """For one non-fresh Get, its key and the cached record to revalidate, if any."""
        if len(gets) != 1 or gets[0].fresh:
            return None
        entry = self._load(namespace, gets[0].key)
        if entry is None or entry.record is None or not entry.known:
            return None
        if _expired(entry, self.clock()):
            return None
        return gets[0].key, entry.record

    def _revalidated(
        self, namespace: str, key: str, cached: Record, answer: Any, asked: float
    ) -> Record | None:
        record: Record | None = cached if answer is UNCHANGED else answer
        self._merge(namespace, key, Entry(record, asked, time.time()))
        self._saw(namespace, key, record)
        return record

    def _filled(
        self, namespace: str, gets: Sequence[Get], records: list[Any], asked: float
    ) -> list[Any]:
        answered = time.time()
        for op, record in zip(gets, records, strict=True):
            self._merge(namespace, op.key, Entry(record, asked, answered))
            self._saw(namespace, op.key, record)
        return records

    def _scanned(
        self, namespace: str, ops: Sequence[Op], results: list[Any], asked: float
    ) -> list[Any]:
        """Other reads pass through; the items a ``Scan`` brought go into the cache."""
        answered = time.time()
        for op, result in zip(ops, results, strict=True):
            if type(op) is Scan:
                for key, record in result:
                    self._merge(namespace, key, Entry(record, asked, answered))
                    self._saw(namespace, key, record)
        return results

    def _last_resort(self, namespace: str, gets: Sequence[Get], exc: Unavailable) -> list[Any]:
        """With ``stale_if_error``: the cached records, however old, else ``exc``."""
        if not self.stale_if_error:
            raise exc
        clock_now = self.clock()
        entries = [self._load(namespace, op.key) for op in gets]
        for op, e in zip(gets, entries, strict=True):
            if e is None or not e.known or _expired(e, clock_now):
                raise exc
            seen = self._seen.get(_name(namespace, op.key), 0)
            if e.record is not None and e.record.version < seen:  # older than what we gave
                raise exc
        age = time.time() - min(e.asked for e in entries if e is not None)
        warnings.warn(
            f"botwire: the server is unreachable ({exc}); serving cached values {age:.1f} s old",
            StaleReadWarning,
            stacklevel=4,
        )
        return [e.record for e in entries if e is not None]

    # -- writes ---------------------------------------------------------------------

    def _written(
        self, namespace: str, ops: Sequence[Op], keys: list[str], results: list[Any], asked: float
    ) -> list[Any]:
        """Put what the server answered into the cache; the results of ``ops`` alone."""
        answered = time.time()
        if any(type(op) is Clear for op in ops):
            self._cleared(namespace, asked, answered)
        reads = results[len(ops) :]
        if keys and not reads:  # the batch had no room for the reads: their state is unknown
            self._invalidate(namespace, keys)
        for key, record in zip(keys, reads, strict=False):
            self._merge(namespace, key, Entry(record, asked, answered))
            self._saw(namespace, key, record)
        return results[: len(ops)]

    def _failed(self, namespace: str, ops: Sequence[Op], exc: BotwireError) -> None:
        """After a failed write: what it may have changed is unknown (all of it if unsure)."""
        if isinstance(exc, Conflict):  # nothing applied; these keys are newer elsewhere
            self._invalidate(namespace, exc.keys)
            return
        self._invalidate(namespace, _touched(ops))
        if any(type(op) is Clear for op in ops):
            self._cleared(namespace, time.time(), time.time())

    # -- the cache itself -----------------------------------------------------------

    def _merge(self, namespace: str, key: str, new: Entry) -> None:
        """Keep ``new`` unless the cache holds a newer answer (or the order is unknown)."""
        name = _name(namespace, key)
        with self._cache.transact(retry=True):
            cleared = self._entry(_clear_mark(namespace))
            if cleared is not None and new.known and new.asked <= cleared.answered:
                return  # asked before a Clear was answered: may predate it
            old = self._entry(name)
            keep = newer(old, new)
            if keep is None:  # order unknown: unknown from now on, so no older fill lands
                now = time.time()
                keep = Entry(None, now, now, known=False)
            if keep is not old:
                self._cache.set(
                    name, keep.pack(), expire=self._keep_for(keep), tag=namespace, retry=True
                )

    def _keep_for(self, entry: Entry) -> float | None:
        """How long diskcache may keep ``entry`` (it is never served past expiry anyway)."""
        if entry.record is None:
            return _ABSENT_KEEP
        if entry.record.expires_at is None:
            return None
        return max(entry.record.expires_at - float(self.clock()), 0.001)

    def _invalidate(self, namespace: str, keys: Sequence[str]) -> None:
        """Mark ``keys`` unknown as of now: no answer asked before this may fill them."""
        now = time.time()
        for key in keys:
            self._merge(namespace, key, Entry(None, now, now, known=False))

    def _cleared(self, namespace: str, asked: float, answered: float) -> None:
        """After a Clear: forget the namespace, and any fill asked before ``answered``."""
        mark = _HEADER.pack(0, asked, answered, 0.0, 0.0, math.nan)
        self._cache.set(_clear_mark(namespace), mark, expire=_ABSENT_KEEP, retry=True)
        self._cache.evict(namespace, retry=True)


def _name(namespace: str, key: str) -> str:
    return f"{namespace}\x00{key}"  # namespaces hold no NUL, so this cannot collide


def _clear_mark(namespace: str) -> str:
    return f"\x00clear\x00{namespace}"


def _expired(entry: Entry, now: float) -> bool:
    record = entry.record
    return record is not None and record.expires_at is not None and record.expires_at <= now


def _plain_reads(ops: Sequence[Op]) -> Sequence[Get] | None:
    """``ops`` if each is a ``Get`` the cache may answer (not a sliding-expiry refresh)."""
    if all(type(op) is Get and not op.refresh for op in ops):
        return ops  # type: ignore[return-value]
    return None


def _unfresh(gets: Sequence[Get]) -> list[Op]:
    """What the origin is sent: ``fresh`` means nothing past the cache."""
    return [op._replace(fresh=False) if op.fresh else op for op in gets]


def _touched(ops: Sequence[Op]) -> list[str]:
    """The keys ``ops`` may change, each once, in order."""
    keys: dict[str, None] = {}
    for op in ops:
        if isinstance(op, (Put, Delete, Incr, Append, Touch)) or (type(op) is Get and op.refresh):
            keys[op.key] = None
    return list(keys)


def _with_reads(ops: Sequence[Op]) -> tuple[list[Op], list[str]]:
    """``ops`` with a ``Get`` of every key they change appended (if the batch has room)."""
    keys = _touched(ops)
    if len(ops) + len(keys) > MAX_BATCH:
        return list(ops), keys
    return [*ops, *(Get(key) for key in keys)], keys
