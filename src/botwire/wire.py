"""The JSON form of operations and results: botwire's HTTP API, shared by the server and client.

One op is an object with an ``"op"`` name and the op's fields; a value travels as
plain JSON (``"value"``), never as a string of JSON. Parsing checks everything
the ``Memory`` shells check (names, TTLs, versions, values), so the server
refuses exactly what the library refuses, with the same error classes.

This module is public and stable: with :mod:`botwire.ops` it is what the
server speaks. It also names the checks a server applies to request parameters
(``check_key``, ``parse_uint``...), the value codec (``encode_value``,
``decode_value``: strict JSON, exact or refused) and the error classes by code.
"""

from __future__ import annotations

import json
import re
from typing import Any

from . import _codec
from ._codec import decode as decode_value
from ._codec import encode as encode_value
from ._errors import ERRORS_BY_CODE, InvalidRequest
from ._validate import (
    MAX_TTL,
    check_count,
    check_cursor,
    check_key,
    check_namespace,
    check_number,
    check_prefix,
    check_ttl,
    check_version,
    parse_uint,
)
from .ops import (
    KEEP,
    Append,
    Change,
    ChangePage,
    Changes,
    Clear,
    Count,
    Delete,
    Get,
    Incr,
    ListKeys,
    NamespaceStats,
    Op,
    Put,
    Record,
    Scan,
    Stats,
    Touch,
)

__all__ = [
    "ERRORS_BY_CODE",
    "MAX_BATCH",
    "MAX_TTL",
    "changes_from_json",
    "changes_to_json",
    "check_key",
    "check_namespace",
    "check_prefix",
    "check_version",
    "decode_value",
    "encode_value",
    "key_path",
    "op_from_json",
    "op_to_json",
    "ops_from_json",
    "parse_json",
    "parse_uint",
    "put_from_json",
    "record_from_json",
    "record_to_json",
    "result_from_json",
    "result_to_json",
]

MAX_BATCH = 1000  # ops in one batch request
# orjson turns an integer past 64 bits into a float; 2**63 has 19 digits.
_LONG_NUMBER = re.compile(rb"\d{19,}")


def parse_json(body: bytes) -> Any:
    """Parse a request body strictly: plain JSON values only, so they need no more checks.

    No NaN or infinity, and no integer past 64 bits (orjson would round those to
    floats: bodies with long digit runs go through an exact parser and are refused).
    """
    if body.startswith(b"\xef\xbb\xbf"):  # orjson refuses a BOM: so does the exact parser
        raise InvalidRequest("the body is not valid JSON: it starts with a byte-order mark")
    try:
        if _LONG_NUMBER.search(body) is None:
            return _codec.decode(body)
        exact = json.loads(body, parse_constant=_refuse_constant)
    except ValueError as exc:  # orjson.JSONDecodeError and json.JSONDecodeError both
        raise InvalidRequest(f"the body is not valid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("the body is nested too deeply") from None
    return _codec.check_parsed(exact)


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _object(data: Any, what: str) -> dict[str, Any]:
    if type(data) is not dict:
        raise InvalidRequest(f"{what} must be a JSON object")
    return data


def _ttl_or_keep(obj: dict[str, Any]) -> tuple[Any, Any]:
    """``ttl`` absent means keep the key's expiry; ``new_ttl`` is for keys created then."""
    ttl = check_ttl(obj["ttl"]) if "ttl" in obj else KEEP
    return ttl, check_ttl(obj.get("new_ttl"))


def key_path(key: str) -> str:
    """``key`` as one URL path segment: percent-encoded, dots too (``..`` must not climb)."""
    from urllib.parse import quote

    return quote(key, safe="").replace(".", "%2E")


# -- operations --------------------------------------------------------------------------


def op_from_json(data: Any) -> Op:
    """One operation from its JSON object (as :func:`parse_json` returns it), checked.

    Raises ``InvalidRequest`` or ``InvalidName``.
    """
    obj = _object(data, "an operation")
    name = obj.get("op")
    if name == "get":
        return Get(check_key(obj.get("key")), bool(obj.get("refresh", False)))
    if name == "put":
        if "value" not in obj:
            raise InvalidRequest('a put needs a "value"')
        return put_from_json(check_key(obj.get("key")), obj)
    if name == "delete":
        return Delete(check_key(obj.get("key")), check_version(obj.get("if_version")))
    if name == "incr":
        return Incr(check_key(obj.get("key")), check_number(obj.get("by", 1)), *_ttl_or_keep(obj))
    if name == "append":
        items = obj.get("items")
        if type(items) is not list or not items:
            raise InvalidRequest('an append needs a non-empty list of "items"')
        return Append(
            check_key(obj.get("key")),
            _codec.encode_parsed(items),
            check_count(obj.get("max_len"), "max_len"),
            *_ttl_or_keep(obj),
        )
    if name == "touch":
        if "ttl" not in obj:
            raise InvalidRequest('a touch needs a "ttl" (null: never expires)')
        return Touch(check_key(obj.get("key")), check_ttl(obj["ttl"]))
    if name == "list":
        after = obj.get("after")
        return ListKeys(
            check_prefix(obj.get("prefix", "")),
            None if after is None else check_key(after),
            check_count(obj.get("limit"), "limit"),
        )
    if name == "scan":
        after = obj.get("after")
        return Scan(
            check_prefix(obj.get("prefix", "")),
            None if after is None else check_key(after),
            check_count(obj.get("limit"), "limit"),
        )
    if name == "count":
        return Count(check_prefix(obj.get("prefix", "")))
    if name == "clear":
        return Clear(check_prefix(obj.get("prefix", "")))
    if name == "stats":
        return Stats()
    if name == "changes":
        since = check_cursor(obj.get("since", 0))
        limit = obj.get("limit", 1000)
        values = obj.get("values", False)
        if type(values) is not bool:
            raise InvalidRequest(f"values must be true or false, not {values!r:.40}")
        return Changes(
            since,
            0 if type(limit) is int and limit == 0 else check_count(limit, "limit") or 1000,
            check_prefix(obj.get("prefix", "")),
            values,
        )
    raise InvalidRequest(f"unknown op {name!r}")


def put_from_json(key: str, obj: dict[str, Any]) -> Put:
    """A put of ``obj["value"]`` under ``key``; ``ttl`` absent or null: never expires."""
    return Put(
        key,
        _codec.encode_parsed(obj["value"]),
        check_ttl(obj.get("ttl")),
        check_version(obj.get("if_version")),
    )


def ops_from_json(data: Any) -> list[Op]:
    ops = _object(data, "a batch").get("ops")
    if type(ops) is not list or not ops:
        raise InvalidRequest('a batch needs a non-empty list of "ops"')
    if len(ops) > MAX_BATCH:
        raise InvalidRequest(f"a batch holds at most {MAX_BATCH} ops, not {len(ops)}")
    return [op_from_json(op) for op in ops]


def op_to_json(op: Op) -> dict[str, Any]:
    """The JSON object of ``op`` (what :func:`op_from_json` reads back)."""
    if isinstance(op, Get):
        return {"op": "get", "key": op.key, "refresh": op.refresh}
    if isinstance(op, Put):
        return {
            "op": "put",
            "key": op.key,
            "value": _codec.decode(op.data),
            "ttl": op.ttl,
            "if_version": op.if_version,
        }
    if isinstance(op, Delete):
        return {"op": "delete", "key": op.key, "if_version": op.if_version}
    if isinstance(op, (Incr, Append)):
        out: dict[str, Any] = {"key": op.key, "new_ttl": op.new_ttl}
        if op.ttl is not KEEP:
            out["ttl"] = op.ttl
        if isinstance(op, Incr):
            return {"op": "incr", "by": op.by, **out}
        return {"op": "append", "items": _codec.decode(op.items), "max_len": op.max_len, **out}
    if isinstance(op, Touch):
        return {"op": "touch", "key": op.key, "ttl": op.ttl}
    if isinstance(op, ListKeys):
        return {"op": "list", "prefix": op.prefix, "after": op.after, "limit": op.limit}
    if isinstance(op, Scan):
        return {"op": "scan", "prefix": op.prefix, "after": op.after, "limit": op.limit}
    if isinstance(op, Count):
        return {"op": "count", "prefix": op.prefix}
    if isinstance(op, Clear):
        return {"op": "clear", "prefix": op.prefix}
    if isinstance(op, Stats):
        return {"op": "stats"}
    return {
        "op": "changes",
        "since": op.since,
        "limit": op.limit,
        "prefix": op.prefix,
        "values": op.values,
    }


# -- results -----------------------------------------------------------------------------


def record_to_json(key: str, record: Record) -> dict[str, Any]:
    """An item as the API shows it; the value's JSON bytes are passed through untouched."""
    import orjson

    return {
        "key": key,
        "value": orjson.Fragment(record.data),
        "version": record.version,
        "created_at": record.created_at,
        "updated_at": record.updated_at,
        "expires_at": record.expires_at,
    }


def record_from_json(obj: dict[str, Any]) -> Record:
    """An item from the API's JSON; ``TypeError``/``KeyError`` if it is not one."""
    version, created, updated, expires = (
        obj["version"],
        obj["created_at"],
        obj["updated_at"],
        obj["expires_at"],
    )
    if type(version) is not int or version < 1:
        raise TypeError(f"an item's version must be an int >= 1, not {version!r}")
    for stamp in (created, updated, expires):
        if type(stamp) not in (int, float) and not (stamp is expires and stamp is None):
            raise TypeError(f"an item's timestamp must be a number, not {stamp!r}")
    return Record(_codec.encode(obj["value"]), version, created, updated, expires)


# The type of each op's result as the API sends it, checked on the way in.
_RESULT_TYPES: dict[type, tuple[type, ...]] = {
    Put: (int,),
    Delete: (bool,),
    Incr: (int, float),
    Append: (int,),
    Touch: (bool,),
    ListKeys: (list,),
    Count: (int,),
    Clear: (int,),
}


def result_to_json(op: Op, result: Any) -> Any:
    if isinstance(op, Get):
        return None if result is None else record_to_json(op.key, result)
    if isinstance(op, Scan):
        return [record_to_json(key, record) for key, record in result]
    if isinstance(result, NamespaceStats):
        return result._asdict()
    if isinstance(result, ChangePage):
        return changes_to_json(result)
    return result  # versions, bools, numbers, key lists


def result_from_json(op: Op, data: Any) -> Any:
    """One op's result from the API's JSON; ``TypeError``/``KeyError`` if it is not one."""
    kinds = _RESULT_TYPES.get(type(op))
    if kinds is not None:
        if type(data) not in kinds:
            raise TypeError(f"a {type(op).__name__} result must be {kinds}, not {data!r:.60}")
        if type(data) is list and not all(type(key) is str for key in data):
            raise TypeError("a key list must hold strings")
        return data
    if isinstance(op, Get):
        return None if data is None else record_from_json(data)
    if isinstance(op, Scan):
        return [(item["key"], record_from_json(item)) for item in data]
    if isinstance(op, Stats):
        return NamespaceStats(**data)
    if isinstance(op, Changes):
        return changes_from_json(data)
    return data


def changes_to_json(page: ChangePage) -> dict[str, Any]:
    """A page of the change feed as the API sends it: a live change asked with values
    carries ``value`` (its JSON bytes passed through) and ``expires_at``."""
    import orjson

    changes = []
    for c in page.changes:
        change: dict[str, Any] = {"key": c.key, "version": c.version, "deleted": c.deleted}
        if c.data is not None:
            change["value"] = orjson.Fragment(c.data)
            change["expires_at"] = c.expires_at
        changes.append(change)
    return {"changes": changes, "next": page.next, "reset": page.reset}


def changes_from_json(data: dict[str, Any]) -> ChangePage:
    """A page of the change feed from the API's JSON; ``TypeError``/``KeyError`` if it is not."""
    changes = []
    for c in data["changes"]:
        key, version, deleted, expires = c["key"], c["version"], c["deleted"], c.get("expires_at")
        if type(key) is not str or type(version) is not int or type(deleted) is not bool:
            raise TypeError(f"not a change: {c!r:.80}")
        if expires is not None and type(expires) not in (int, float):
            raise TypeError(f"an expiry must be a number, not {expires!r:.40}")
        stored = _codec.encode(c["value"]) if "value" in c else None
        changes.append(Change(key, version, deleted, stored, expires))
    next_, reset = data["next"], data["reset"]
    if type(next_) is not int or type(reset) is not bool:
        raise TypeError("a change page needs an int next and a bool reset")
    return ChangePage(changes, next_, reset)
