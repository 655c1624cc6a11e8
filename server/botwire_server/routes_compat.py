"""The reference BotWire endpoints, shape for shape, so ``botwire`` 0.2 clients work unchanged.

    PUT    /memory/{ns}/{key}  {"value": "<string>"} -> {"namespace","key","stored":true,"bytes"}
    GET    /memory/{ns}/{key}  -> {"namespace","key","value","created_at","updated_at"} | 404
    DELETE /memory/{ns}/{key}  -> {"deleted":true,"namespace","key"} | 404
    GET    /memory/{ns}?limit= -> {"namespace","count","keys":[{"key","bytes","updated_at"}]}

Values here are strings, as in the reference: a string is stored as a JSON
string, so ``Memory(ns).get(key)`` reads it back as that string. A value written
through ``/v1`` that is not a string is shown here as its JSON text (which the
0.2 client decodes back when it starts with ``[`` or ``{``). Timestamps are
ISO 8601 in UTC. These writes count against the same limits.
"""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from fastapi import Request
from starlette.responses import Response

from botwire import InvalidRequest, NotFound
from botwire.ops import Delete, Get, ListKeys, Put, Record
from botwire.wire import decode_value as decode
from botwire.wire import encode_value as encode

from .deps import body_json, key_of, namespace_of, query_int, read, write
from .errors import json_response, openapi_errors
from .openapi import spec
from .routing import Routes

routes = Routes("/memory", tags=["compat"])


def _iso(timestamp: float) -> str:
    return datetime.fromtimestamp(timestamp, timezone.utc).isoformat()


def _text(record: Record) -> str:
    value = decode(record.data)
    return value if isinstance(value, str) else record.data.decode()


@routes.put(
    "/{namespace}/{key:key}",
    responses=openapi_errors(400, 401, 403, 413, 415, 429, 507),
    summary="Store a string (reference API)",
    openapi_extra=spec("namespace", "key", body="CompatPutBody"),
)
async def put(request: Request) -> Response:
    ns = await namespace_of(request, write=True)
    key = key_of(request)
    body = await body_json(request)
    if type(body) is not dict or type(body.get("value")) is not str:
        raise InvalidRequest('the body must be {"value": "<string>"}')
    value: str = body["value"]
    await write(request, ns, [Put(key, encode(value))])
    return json_response(
        {"namespace": ns, "key": key, "stored": True, "bytes": len(value.encode("utf-8"))}
    )


@routes.get(
    "/{namespace}/{key:key}",
    responses=openapi_errors(400, 401, 403, 404),
    summary="Read a string (reference API)",
    openapi_extra=spec("namespace", "key"),
)
async def get(request: Request) -> Response:
    ns = await namespace_of(request, write=False)
    key = key_of(request)
    (record,) = await read(request, ns, [Get(key)])
    if record is None:
        raise NotFound(f"key {key!r} does not exist")
    return json_response(
        {
            "namespace": ns,
            "key": key,
            "value": _text(record),
            "created_at": _iso(record.created_at),
            "updated_at": _iso(record.updated_at),
        }
    )


@routes.delete(
    "/{namespace}/{key:key}",
    responses=openapi_errors(400, 401, 403, 404),
    summary="Delete a key (reference API)",
    openapi_extra=spec("namespace", "key"),
)
async def delete(request: Request) -> Response:
    ns = await namespace_of(request, write=True)
    key = key_of(request)
    (deleted,) = await write(request, ns, [Delete(key)])
    if not deleted:
        raise NotFound(f"key {key!r} does not exist")
    return json_response({"deleted": True, "namespace": ns, "key": key})


@routes.get(
    "/{namespace}",
    responses=openapi_errors(400, 401, 403),
    summary="List keys (reference API)",
    openapi_extra=spec("namespace", "compat-limit"),
)
async def list_keys(request: Request) -> Response:
    ns = await namespace_of(request, write=False)
    limit = query_int(request, "limit", 100, 1, 10_000)
    (keys,) = await read(request, ns, [ListKeys(limit=limit)])
    records = await read(request, ns, [Get(k) for k in keys]) if keys else []
    listed: list[dict[str, Any]] = [
        {"key": k, "bytes": len(_text(r).encode("utf-8")), "updated_at": _iso(r.updated_at)}
        for k, r in zip(keys, records, strict=True)
        if r is not None  # expired between the two reads
    ]
    return json_response({"namespace": ns, "count": len(listed), "keys": listed})
