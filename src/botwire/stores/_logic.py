"""Semantics shared by the stores that compute values themselves (sqlite, memory).

Each function is pure: it takes what the store read and returns what it should
write, so the rules for versions, counters, lists and prefixes live in one place.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .. import _codec
from .._errors import Conflict, WrongType
from .._ops import TTL, Delete, Op, Put, TTLOrKeep, _Keep

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


def conflicts(ops: Sequence[Op], live_version: Callable[[str], int]) -> list[str]:
    """Keys whose ``if_version`` does not match; ``live_version`` gives 0 when absent."""
    return [
        op.key
        for op in ops
        if isinstance(op, (Put, Delete))
        and op.if_version is not None
        and live_version(op.key) != op.if_version
    ]


def check_conflicts(ops: Sequence[Op], live_version: Callable[[str], int]) -> None:
    failed = conflicts(ops, live_version)
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
