"""The ``/v1`` JSON API: every operation of the store primitive over HTTP.

Keys travel in the path, percent-encoded (``/`` may stay literal). Values are
plain JSON in ``"value"``. Errors are ``{"error": {"code", "message", ...}}``
(see ``errors.py``). Non-idempotent writes (incr, append, batch) take an
``Idempotency-Key`` header: a repeat replays the first answer for 24 hours.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from botwire import InvalidRequest, NotFound
from botwire._ops import Changes, Clear, Delete, Get, ListKeys, Stats, is_read_only
from botwire._validate import check_key, check_namespace, check_prefix, check_version
from botwire._wire import (
    changes_to_json,
    op_from_json,
    ops_from_json,
    put_from_json,
    record_to_json,
    result_to_json,
)
from botwire.stores._logic import DAY, utc_day

from . import openapi
from .deps import body_json, namespace_for, read, store_of, write
from .errors import json_response, openapi_errors
from .openapi import (
    After,
    IdempotencyKey,
    IfMatch,
    IfNoneMatchRead,
    IfNoneMatchWrite,
    Key,
    Namespace,
    Prefix,
)

router = APIRouter(prefix="/v1/ns/{namespace}", tags=["v1"])
READ_ERRORS = openapi_errors(400, 401, 403, 404)
WRITE_ERRORS = openapi_errors(400, 401, 403, 409, 413, 415, 429, 507)
IDEMPOTENT_ERRORS = openapi_errors(400, 401, 403, 409, 413, 415, 422, 429, 507)
MAX_PAGE = 10_000


# -- one key ---------------------------------------------------------------------------


@router.get("/keys/{key:path}", responses=READ_ERRORS, summary="Read one item")
async def get_item(
    request: Request,
    namespace: Namespace,
    key: Key,
    if_none_match: IfNoneMatchRead = None,
) -> Response:
    ns = namespace_for(request, namespace, write=False)
    (record,) = await read(request, ns, [Get(check_key(key))])
    if record is None:
        raise NotFound(f"key {key!r} does not exist")
    etag = f'"{record.version}"'
    if if_none_match == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return json_response(record_to_json(key, record), headers={"ETag": etag})


@router.put(
    "/keys/{key:path}",
    responses=WRITE_ERRORS,
    summary="Write one item",
    openapi_extra=openapi.body("PutBody"),
)
async def put_item(
    request: Request,
    namespace: Namespace,
    key: Key,
    if_match: IfMatch = None,
    if_none_match: IfNoneMatchWrite = None,
) -> Response:
    ns = namespace_for(request, namespace, write=True)
    body = await body_json(request)
    if type(body) is not dict or "value" not in body:
        raise InvalidRequest('the body must be an object with a "value"')
    body = {**body, "if_version": _condition(if_match, if_none_match, body.get("if_version"))}
    (version,) = await write(request, ns, [put_from_json(check_key(key), body)])
    return json_response({"key": key, "version": version}, headers={"ETag": f'"{version}"'})


@router.delete("/keys/{key:path}", responses=WRITE_ERRORS, summary="Delete one item")
async def delete_item(
    request: Request,
    namespace: Namespace,
    key: Key,
    if_match: IfMatch = None,
) -> Response:
    ns = namespace_for(request, namespace, write=True)
    op = Delete(check_key(key), _condition(if_match, None, None))
    (deleted,) = await write(request, ns, [op])
    return json_response({"deleted": deleted})


def _condition(if_match: str | None, if_none_match: str | None, in_body: Any) -> int | None:
    if if_none_match is not None:
        if if_none_match.strip() != "*":
            raise InvalidRequest("If-None-Match on a write must be *")
        return 0
    if if_match is not None:
        tag = if_match.strip().removeprefix("W/").strip('"')
        if not tag.isdigit():
            raise InvalidRequest('If-Match must be a version in quotes, as "17"')
        return int(tag)
    return check_version(in_body)


@router.post(
    "/incr/{key:path}",
    responses=IDEMPOTENT_ERRORS,
    summary="Add to a number",
    openapi_extra=openapi.body("IncrBody"),
)
async def incr(
    request: Request,
    namespace: Namespace,
    key: Key,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    ns = namespace_for(request, namespace, write=True)
    op = op_from_json({**_object(await body_json(request)), "op": "incr", "key": key})
    (value,) = await write(request, ns, [op], idempotency_key)
    return json_response({"value": value})


@router.post(
    "/append/{key:path}",
    responses=IDEMPOTENT_ERRORS,
    summary="Append to a list",
    openapi_extra=openapi.body("AppendBody"),
)
async def append(
    request: Request,
    namespace: Namespace,
    key: Key,
    idempotency_key: IdempotencyKey = None,
) -> Response:
    ns = namespace_for(request, namespace, write=True)
    op = op_from_json({**_object(await body_json(request)), "op": "append", "key": key})
    (length,) = await write(request, ns, [op], idempotency_key)
    return json_response({"length": length})


@router.post(
    "/touch/{key:path}",
    responses=WRITE_ERRORS,
    summary="Reset an item's expiry",
    openapi_extra=openapi.body("TouchBody"),
)
async def touch(request: Request, namespace: Namespace, key: Key) -> Response:
    ns = namespace_for(request, namespace, write=True)
    op = op_from_json({**_object(await body_json(request)), "op": "touch", "key": key})
    (touched,) = await write(request, ns, [op])
    return json_response({"touched": touched})


def _object(body: Any) -> dict[str, Any]:
    if type(body) is not dict:
        raise InvalidRequest("the body must be a JSON object")
    return {k: v for k, v in body.items() if k not in ("op", "key")}


# -- the namespace ---------------------------------------------------------------------


@router.get("/keys", responses=READ_ERRORS, summary="List keys")
async def list_keys(
    request: Request,
    namespace: Namespace,
    prefix: Prefix = "",
    after: After = None,
    limit: int = Query(1000, ge=1, le=MAX_PAGE),
) -> Response:
    ns = namespace_for(request, namespace, write=False)
    op = ListKeys(check_prefix(prefix), None if after is None else check_key(after), limit)
    (keys,) = await read(request, ns, [op])
    return json_response({"keys": keys, "next": keys[-1] if len(keys) == limit else None})


@router.delete("/keys", responses=WRITE_ERRORS, summary="Delete every key (with a prefix)")
async def clear(request: Request, namespace: Namespace, prefix: Prefix = "") -> Response:
    ns = namespace_for(request, namespace, write=True)
    (deleted,) = await write(request, ns, [Clear(check_prefix(prefix))])
    return json_response({"deleted": deleted})


@router.post(
    "/batch",
    responses=IDEMPOTENT_ERRORS,
    summary="Apply operations atomically",
    openapi_extra=openapi.body("BatchBody"),
)
async def batch(
    request: Request, namespace: Namespace, idempotency_key: IdempotencyKey = None
) -> Response:
    check_namespace(namespace)
    ops = ops_from_json(await body_json(request))
    writes = not is_read_only(ops)
    ns = namespace_for(request, namespace, write=writes)
    if writes:
        results = await write(request, ns, ops, idempotency_key)
    else:
        results = await read(request, ns, ops)
    return json_response(
        {"results": [result_to_json(op, r) for op, r in zip(ops, results, strict=True)]}
    )


@router.get("/stats", responses=READ_ERRORS, summary="Keys, bytes, writes today and limits")
async def stats(request: Request, namespace: Namespace) -> Response:
    ns = namespace_for(request, namespace, write=False)
    (found,) = await read(request, ns, [Stats()])
    limits = request.app.state.settings.limits
    now = store_of(request).clock()
    return json_response(
        {
            "namespace": ns,
            **found._asdict(),
            "limits": limits._asdict(),
            "window_resets_at": (utc_day(now) + 1) * DAY,
        }
    )


@router.get("/changes", responses=READ_ERRORS, summary="The change feed")
async def changes(
    request: Request,
    namespace: Namespace,
    since: int = Query(0, ge=0, le=2**63 - 1, description="a version: the last one seen"),
    limit: int = Query(1000, ge=1, le=MAX_PAGE),
) -> Response:
    ns = namespace_for(request, namespace, write=False)
    (page,) = await read(request, ns, [Changes(since, limit)])
    return json_response(changes_to_json(page))
