"""Argument checks, run before any I/O on every operation.

A namespace is 1-128 characters of ``A-Z a-z 0-9 . _ - : @``.
A key is 1-512 bytes of UTF-8 with no control characters (C0, DEL or C1).
TTLs are positive, finite seconds (or a ``datetime.timedelta``); versions and
limits are plain ints.
"""

from __future__ import annotations

import math
import re
from datetime import timedelta
from typing import Any

from ._errors import InvalidName, InvalidRequest

MAX_KEY_BYTES = 512
MAX_NAMESPACE_CHARS = 128
MAX_INT64 = 2**63 - 1  # versions, cursors and limits are signed 64-bit in every store

_DIGITS = re.compile(r"[0-9]{1,19}")  # ASCII only: str.isdigit() also takes "²"

_NAMESPACE = re.compile(r"[A-Za-z0-9._\-:@]{1,128}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def check_namespace(namespace: object) -> str:
    """Return ``namespace`` if it is valid, else raise :class:`InvalidName`."""
    if type(namespace) is str and _NAMESPACE.fullmatch(namespace):
        if namespace not in (".", ".."):
            return namespace
        raise InvalidName(
            f"invalid namespace {namespace!r}: '.' and '..' are refused, as a URL path "
            "(a server's, a browser's) cannot carry them"
        )
    raise InvalidName(
        f"invalid namespace {namespace!r}: use 1-{MAX_NAMESPACE_CHARS} characters "
        "of A-Z a-z 0-9 . _ - : @"
    )


def check_key(key: object) -> str:
    """Return ``key`` if it is valid, else raise :class:`InvalidName`."""
    if type(key) is not str:
        raise InvalidName(f"a key must be a str, not {type(key).__name__}")
    if not key:
        raise InvalidName("a key must not be empty")
    if not key.isascii():
        try:
            size = len(key.encode("utf-8"))
        except UnicodeEncodeError:
            raise InvalidName(f"key {key[:40]!r} is not valid UTF-8 (lone surrogate)") from None
    else:
        size = len(key)
    if size > MAX_KEY_BYTES:
        raise InvalidName(f"key {key[:40]!r}... is {size} bytes; the limit is {MAX_KEY_BYTES}")
    if _CONTROL.search(key):
        raise InvalidName(f"key {key[:40]!r} contains a control character")
    return key


def check_prefix(prefix: object) -> str:
    """A key prefix may be empty; otherwise it follows the key rules."""
    if prefix == "":
        return ""
    return check_key(prefix)


# A year of seconds times 1000: far enough for any agent, small enough to stay a finite timestamp.
MAX_TTL = 1000 * 365 * 86400.0


def check_ttl(ttl: Any) -> float | None:
    """``None`` (never expires), or a positive, finite number of seconds as a float.

    A ``datetime.timedelta`` is taken as its ``total_seconds()``.
    """
    if ttl is None:
        return None
    if isinstance(ttl, timedelta):
        seconds = ttl.total_seconds()
        if 0 < seconds <= MAX_TTL:
            return seconds
    elif type(ttl) in (int, float) and 0 < ttl <= MAX_TTL:
        return float(ttl)
    raise InvalidRequest(
        f"ttl must be None, a timedelta or seconds in (0, {MAX_TTL:.0f}], not {_short(ttl)}"
    )


def check_max_stale(seconds: Any) -> float:
    """How long a read cache may serve an entry: a finite number of seconds >= 0."""
    if type(seconds) not in (int, float) or not (0 <= seconds <= MAX_TTL):
        raise InvalidRequest(f"max_stale must be seconds in [0, {MAX_TTL:.0f}], not {seconds!r}")
    return float(seconds)


def check_version(version: Any) -> int | None:
    """``None`` (unconditional), ``0`` (only if absent) or a positive 64-bit version."""
    if version is None:
        return None
    if type(version) is not int or not 0 <= version <= MAX_INT64:
        raise InvalidRequest(
            f"if_version must be None or an int from 0 to {MAX_INT64}, not {_short(version)}"
        )
    return version


def check_count(value: Any, what: str) -> int | None:
    """``None`` or an int from 1 to 2**63-1 (limits, page sizes, max_len)."""
    if value is None:
        return None
    if type(value) is not int or not 1 <= value <= MAX_INT64:
        raise InvalidRequest(
            f"{what} must be None or an int from 1 to {MAX_INT64}, not {_short(value)}"
        )
    return value


def check_cursor(since: Any) -> int:
    """A change-feed cursor: an int from 0 to 2**63-1."""
    if type(since) is not int or not 0 <= since <= MAX_INT64:
        raise InvalidRequest(f"since must be an int from 0 to {MAX_INT64}, not {_short(since)}")
    return since


def parse_uint(raw: str, what: str, low: int = 0, high: int = MAX_INT64) -> int:
    """A whole number written in ASCII digits (a query parameter, a header), within bounds."""
    if not _DIGITS.fullmatch(raw) or not low <= int(raw) <= high:
        raise InvalidRequest(f"{what} must be a whole number from {low} to {high}")
    return int(raw)


def _short(value: Any) -> str:
    """``repr(value)``, cut short: a 5,000-digit number must not fill an error message."""
    text = repr(value) if type(value) is not int or abs(value) < 10**40 else "a huge integer"
    return text if len(text) <= 60 else text[:57] + "..."


def check_number(by: Any) -> int | float:
    """An increment: a finite int or float (not bool) within 64 bits."""
    if type(by) is int and -(2**63) <= by < 2**63:
        return by
    if type(by) is float and math.isfinite(by):
        return by
    raise InvalidRequest(f"by must be a finite int or float within 64 bits, not {_short(by)}")
