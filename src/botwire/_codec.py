"""The value codec: strict JSON through orjson, never pickle.

``encode`` accepts exactly the values that come back equal from ``decode``:
dicts with str keys, lists, str, int within 64 bits, finite float, bool and
None. Anything orjson would silently change (NaN and infinities become null,
tuples become lists, UUIDs, enums, datetimes and dataclasses become strings or
objects) is refused with :class:`ValueNotSerializable` instead.
"""

from __future__ import annotations

import math
from typing import Any

from ._errors import ValueNotSerializable

_JSON_SCALARS = (str, int, float, bool, type(None))
_orjson: Any = None  # imported on first use: it alone costs ~20 ms of `import botwire`
_OPTIONS = 0


def _load() -> Any:
    global _orjson, _OPTIONS
    import orjson

    # Hand these types to ``_refuse`` instead of converting them.
    _OPTIONS = orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME
    _orjson = orjson
    return orjson


def _refuse(obj: Any) -> Any:
    raise TypeError(f"{type(obj).__name__} is not a JSON value")


def encode(value: Any) -> bytes:
    """Encode ``value`` as JSON bytes, or raise :class:`ValueNotSerializable`."""
    orjson = _orjson or _load()
    try:
        data: bytes = orjson.dumps(value, default=_refuse, option=_OPTIONS)
    except orjson.JSONEncodeError as exc:
        raise ValueNotSerializable(f"value is not serializable: {_reason(value) or exc}") from None
    # The round trip is the one check that catches every silent conversion at once.
    if type(value) in _JSON_SCALARS and type(value) is not float:
        return data
    if orjson.loads(data) != value:
        raise ValueNotSerializable(
            f"value would change in a JSON round trip: {_reason(value) or 'unsupported type'}"
        )
    return data


def encode_parsed(value: Any) -> bytes:
    """Encode a value that :func:`botwire.wire.parse_json` produced: plain JSON already.

    Only orjson's own refusals remain possible (a lone surrogate in a string).
    """
    orjson = _orjson or _load()
    try:
        data: bytes = orjson.dumps(value)
    except orjson.JSONEncodeError as exc:
        raise ValueNotSerializable(f"value is not serializable: {exc}") from None
    return data


def check_parsed(value: Any) -> Any:
    """Refuse what a permissive JSON parser lets through (big integers, infinities)."""
    reason = _reason(value)
    if reason:
        raise ValueNotSerializable(f"value is not serializable: {reason}")
    return value


def decode(data: bytes | str) -> Any:
    """Decode JSON bytes written by :func:`encode`."""
    return (_orjson or _load()).loads(data)


def _reason(value: Any, path: str = "value", depth: int = 0) -> str | None:
    """Name the first part of ``value`` that is not plain JSON (only on the error path)."""
    if depth > 200:
        return f"{path} is nested too deeply"
    kind = type(value)
    if kind is float:
        return (
            None if math.isfinite(value) else f"{path} is {value!r} (NaN and infinity are not JSON)"
        )
    if kind is int:
        ok = -(2**63) <= value < 2**64
        return None if ok else f"{path} is an integer beyond 64 bits"
    if kind in (str, bool, type(None)):
        return None
    if kind is list:
        for i, item in enumerate(value):
            found = _reason(item, f"{path}[{i}]", depth + 1)
            if found:
                return found
        return None
    if kind is dict:
        for k, item in value.items():
            if type(k) is not str:
                return f"{path} has a non-str key {k!r}"
            found = _reason(item, f"{path}[{k!r}]", depth + 1)
            if found:
                return found
        return None
    return f"{path} is a {kind.__name__}, not a JSON value"
