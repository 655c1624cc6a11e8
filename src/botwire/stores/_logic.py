"""Semantics shared by the stores that compute values themselves (sqlite, memory).

Each function is pure: it takes what the store read and returns what it should
write, so the rules for versions, counters, lists and prefixes live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import _codec
from .._errors import (
    AnswerTooLarge,
    Conflict,
    IdempotencyKeyReused,
    QuotaExceeded,
    ValueTooLarge,
    WriteLimitExceeded,
    WrongType,
)
from ..ops import (
    READ_OPS,
    TTL,
    WRITE_OPS,
    Change,
    ChangePage,
    Changes,
    Delete,
    Get,
    NamespaceStats,
    Op,
    Put,
    Record,
    Touch,
    TTLOrKeep,
    _Keep,
)
from .base import DAY, Limits, utc_day

__all__ = ["DAY", "utc_day"]  # (re-exported for the stores; defined with Limits)

IDEMPOTENCY_TTL = DAY  # how long a finished request's answer is kept for replays
TOMBSTONE_TTL = 7 * DAY  # how long the change feed remembers a deletion

_MAX_CHAR = 0x10FFFF


def prefix_upper(prefix: str) -> str | None:
    """The smallest string above every string that starts with ``prefix``.

    ``None`` when there is none (an empty prefix, or only U+10FFFF characters).
    Lone surrogates are skipped: they cannot be stored as UTF-8.
    """
    stripped = prefix.rstrip(chr(_MAX_CHAR))
    if not stripped:
        return None
    code = ord(stripped[-1]) + 1
    if 0xD800 <= code <= 0xDFFF:
        code = 0xE000
    return stripped[:-1] + chr(code)


def guarded_keys(ops: Sequence[Op]) -> list[str]:
    """The keys of the writes in ``ops`` that carry a version check."""
    return [o.key for o in ops if isinstance(o, (Put, Delete)) and o.if_version is not None]


def check_conflicts(ops: Sequence[Op], live_version: Callable[[str], int]) -> None:
    """Raise ``Conflict`` naming every key whose ``if_version`` does not match.

    ``live_version`` gives a key's live version, 0 when it is absent.
    """
    failed = [
        op.key
        for op in ops
        if isinstance(op, (Put, Delete))
        and op.if_version is not None
        and live_version(op.key) != op.if_version
    ]
    if failed:
        raise Conflict(keys=failed)


def resolve_ttl(
    ttl: TTLOrKeep,
    new_ttl: TTL,
    live: bool,
    old_ttl: float | None,
    old_expires: float | None,
    now: float,
) -> tuple[float | None, float | None]:
    """``(ttl, expires_at)`` for a write: ``KEEP`` keeps a live key's expiry."""
    if isinstance(ttl, _Keep):
        if live:
            return old_ttl, old_expires
        ttl = new_ttl
    return ttl, (None if ttl is None else now + ttl)


def incremented(current: bytes | None, by: int | float) -> tuple[int | float, bytes]:
    """The counter after ``+ by`` (missing counts as 0) and its encoding."""
    value = 0 if current is None else _codec.decode(current)
    if type(value) not in (int, float):
        raise WrongType(f"cannot incr a {_json_type(value)}; the value must be a number")
    result = value + by
    return result, _codec.encode(result)


def appended(current: bytes | None, items: bytes, max_len: int | None) -> tuple[int, bytes]:
    """The list after appending ``items`` (a JSON array), trimmed to the newest ``max_len``."""
    value = [] if current is None else _codec.decode(current)
    if type(value) is not list:
        raise WrongType(f"cannot append to a {_json_type(value)}; the value must be a list")
    value.extend(_codec.decode(items))
    if max_len is not None and len(value) > max_len:
        del value[: len(value) - max_len]
    return len(value), _codec.encode(value)


def _json_type(value: Any) -> str:
    names = {dict: "object", str: "string", bool: "boolean", type(None): "null", list: "list"}
    return names.get(type(value), "number")


# -- limits ---------------------------------------------------------------------------


def item_size(key: str, data: bytes) -> int:
    """What an item costs against a storage quota: its UTF-8 key plus its JSON value."""
    return len(key.encode("utf-8")) + len(data)


def check_value_size(limits: Limits | None, key: str, data: bytes) -> None:
    if limits and limits.max_value_bytes and len(data) > limits.max_value_bytes:
        raise ValueTooLarge(
            f"the value of {key!r} is {len(data)} bytes; the limit is {limits.max_value_bytes}",
            limit=limits.max_value_bytes,
        )


def writes_in(ops: Sequence[Op], results: Sequence[Any]) -> int:
    """What a batch counts against ``writes_per_day``: one if it wrote anything, else none.

    A batch is one atomic request, as one ``PUT`` is (the IETF RateLimit headers
    count requests); its ops are bounded by ``wire.MAX_BATCH`` (1,000) and its bytes by the
    quota. Deletes never count, nor touches of a missing key.
    """
    return int(
        any(
            isinstance(op, WRITE_OPS) and (result is True or not isinstance(op, Touch))
            for op, result in zip(ops, results, strict=True)
        )
    )


def check_limits(
    limits: Limits, *, writes_today: int, bytes_before: int, bytes_after: int, now: float
) -> None:
    """Raise if a batch, applied in its transaction, broke a limit: the caller rolls back."""
    if limits.writes_per_day and writes_today > limits.writes_per_day:
        reset = (utc_day(now) + 1) * DAY
        raise WriteLimitExceeded(
            f"this namespace used its {limits.writes_per_day} writes for today (UTC)",
            retry_after=reset - now,
            limit=limits.writes_per_day,
            reset_at=reset,
        )
    if limits.max_bytes and bytes_after > limits.max_bytes and bytes_after > bytes_before:
        raise QuotaExceeded(
            f"this namespace would hold {bytes_after} bytes; the quota is {limits.max_bytes}",
            limit=limits.max_bytes,
        )


class AnswerBudget:
    """The bytes of keys and values one batch may still return (``Limits.max_answer_bytes``).

    A store takes each op's result as it is made, and a scan checks its rows as
    they come, so a batch that asks for too much is refused before its answer is
    whole in memory (at most the limit plus one value).
    """

    __slots__ = ("left", "limit")

    def __init__(self, limits: Limits | None) -> None:
        self.limit = limits.max_answer_bytes if limits is not None else 0
        self.left = self.limit

    def check(self, pending: int) -> None:
        """Raise :class:`AnswerTooLarge` if ``pending`` more bytes would not fit."""
        if self.limit and pending > self.left:
            raise AnswerTooLarge(
                f"the answer would carry over {self.limit} bytes of keys and values "
                "(the server's max_answer_bytes): ask for fewer keys, or page with a "
                "smaller limit",
                limit=self.limit,
            )

    def take(self, result: Any) -> Any:
        """Count one op's result against the budget; return it."""
        if self.limit:
            size = answer_size(result)
            self.check(size)
            self.left -= size
        return result


def feed_page(op: Changes, page: list[Change], newest: int, pruned: int) -> ChangePage:
    """A page of the change feed, from the changes found after ``op.since``, the namespace's
    newest version and the newest version of a tombstone the store forgot.

    The reader asks next after the page's last change while the page is full, else
    from where the feed stands (every change up to now was read; past what was
    forgotten, so a ``reset`` is said once). A cursor is never moved back: one
    ahead of the feed (say, from a database since restored from an older copy) is
    kept, and the reader sees the changes past it.
    """
    if op.limit and len(page) == op.limit:
        return ChangePage(page, page[-1].version, op.since < pruned)
    return ChangePage(page, max(op.since, newest, pruned), op.since < pruned)


def answer_size(result: Any) -> int:
    """Roughly what a result adds to an answer: its keys and values."""
    if isinstance(result, Record):
        return len(result.data)
    if isinstance(result, ChangePage):
        return sum(len(c.key) + len(c.data or b"") + 32 for c in result.changes)
    if isinstance(result, list) and result:
        if type(result[0]) is str:  # ListKeys
            return sum(len(key) for key in result)
        if type(result[0]) is tuple:  # Scan
            return sum(scan_row_size(key, record.data) for key, record in result)
    return 0


def scan_row_size(key: str, data: bytes) -> int:
    """What one scanned item adds to an answer."""
    return len(key) + len(data)


# -- replaying results (idempotency) ------------------------------------------------------


def is_read(op: Op) -> bool:
    """An op a replay runs again (a read) rather than answers from the record (a write)."""
    return type(op) is Get or type(op) in READ_OPS


MAX_FULL_RECORD = 1_048_576  # a replay record keeps its reads' answers up to this size


def replay_record(ops: Sequence[Op], results: Sequence[Any]) -> bytes:
    """What a repeat of this batch answers: its first answer, exactly, where it is small.

    A batch whose reads brought more than ``MAX_FULL_RECORD`` bytes keeps only
    its writes' results (small JSON scalars); a repeat runs those reads again.
    Either way the record is charged to its namespace (see :func:`replay_cap`).
    """
    full = encode_results(results)
    if len(full) <= MAX_FULL_RECORD:
        return b"F" + full
    kept = [None if is_read(op) else result for op, result in zip(ops, results, strict=True)]
    return b"W" + _codec.encode(kept)


def replayed(ops: Sequence[Op], record: bytes) -> tuple[list[Any], list[int]]:
    """A recorded answer, and the positions of the reads a repeat must run again."""
    if record[:1] == b"F":
        return decode_results(record[1:]), []
    results: list[Any] = _codec.decode(record[1:])
    return results, [i for i, op in enumerate(ops) if is_read(op)]


def encode_results(results: Sequence[Any]) -> bytes:
    """Results of a batch as JSON, so a repeated request can get the very same answer."""
    out: list[Any] = []
    for result in results:
        if isinstance(result, Record):
            out.append({"record": [result.data.decode(), *result[1:]]})
        elif isinstance(result, NamespaceStats):
            out.append({"stats": list(result)})
        elif isinstance(result, ChangePage):
            changes = [
                [c.key, c.version, c.deleted, _text(c.data), c.expires_at] for c in result.changes
            ]
            out.append({"changes": [changes, result.next, result.reset]})
        elif isinstance(result, list) and result and isinstance(result[0], tuple):  # a Scan
            out.append({"scan": [[key, r.data.decode(), *r[1:]] for key, r in result]})
        else:
            out.append(result)
    return _codec.encode(out)


def decode_results(data: bytes) -> list[Any]:
    results: list[Any] = []
    for result in _codec.decode(data):
        if isinstance(result, dict) and "record" in result:
            first, *rest = result["record"]
            results.append(Record(first.encode(), *rest))
        elif isinstance(result, dict) and "stats" in result:
            results.append(NamespaceStats(*result["stats"]))
        elif isinstance(result, dict) and "changes" in result:
            changes, next_, reset = result["changes"]
            changes = [Change(k, v, gone, _bytes(data), at) for k, v, gone, data, at in changes]
            results.append(ChangePage(changes, next_, reset))
        elif isinstance(result, dict) and "scan" in result:
            results.append(
                [(key, Record(data.encode(), *rest)) for key, data, *rest in result["scan"]]
            )
        else:
            results.append(result)
    return results


DEFAULT_REPLAY_CAP = 16_777_216  # replay bytes per namespace where no quota is set
MAX_EVICTION_ROUNDS = 100


def replay_cap(limits: Limits | None) -> int:
    """How many bytes of replay records a namespace keeps: its quota, else 16 MiB.

    Past it the oldest records go first (a retry comes within seconds; a record
    is a few bytes per op), so what a namespace makes the server keep for
    replays never exceeds its quota.
    """
    return limits.max_bytes if limits is not None and limits.max_bytes else DEFAULT_REPLAY_CAP


def check_replay(idem_fingerprint: str, found_fingerprint: str, key: str) -> None:
    if found_fingerprint != idem_fingerprint:
        raise IdempotencyKeyReused(f"idempotency key {key!r} was used for another request")


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode()


def _bytes(text: str | None) -> bytes | None:
    return None if text is None else text.encode()
