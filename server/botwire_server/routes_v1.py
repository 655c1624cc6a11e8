"""The ``/v1`` JSON API: every operation of the store primitive over HTTP.

Keys travel in the path, percent-encoded (dots too; ``/`` may stay literal).
Values are plain JSON in ``"value"``. Errors are ``{"error": {"code",
"message", ...}}`` (see ``errors.py``). Non-idempotent writes (incr, append,
batch) take an ``Idempotency-Key`` header: a repeat replays the first answer
for 24 hours. Handlers read their own parameters (``deps.py``) with the
library's checks; ``openapi.spec`` documents them.
"""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import Response

from botwire import InvalidRequest, NotFound
from botwire.ops import (
    Changes,
    Clear,
    Delete,
    Get,
    ListKeys,
    NamespaceInfo,
    Stats,
    is_read_only,
)
from botwire.stores import DAY, utc_day
from botwire.stores import namespaces as list_namespaces
from botwire.stores import now as store_now
from botwire.stores.watch import await_changes
from botwire.wire import (
    MAX_BATCH,
    changes_to_json,
    op_from_json,
    ops_from_json,
    put_from_json,
    record_to_json,
    result_to_json,
)

from .auth import literal_prefix, reaches, token_for
from .deps import (
    body_json,
    key_of,
    namespace_for,
    namespace_of,
    query_bool,
    query_int,
    query_key,
    query_prefix,
    read,
    store_of,
    version_condition,
    write,
)
from .errors import json_response, openapi_errors
from .openapi import spec
from .routing import Routes
from .watch import MAX_WAIT, caller_of, until_answered

routes = Routes("/v1/ns/{namespace}", tags=["v1"])
listing = Routes("/v1", tags=["v1"])
READ_ERRORS = openapi_errors(400, 401, 403, 404)
WRITE_ERRORS = openapi_errors(400, 401, 403, 409, 413, 415, 429, 507)
IDEMPOTENT_ERRORS = openapi_errors(400, 401, 403, 409, 413, 415, 422, 429, 507)
MAX_PAGE = 10_000


# -- one key ---------------------------------------------------------------------------


@routes.get(
    "/keys/{key:key}",
    responses=READ_ERRORS,
    summary="Read one item",
    openapi_extra=spec("namespace", "key", "if-none-match"),
)
async def get_item(request: Request) -> Response:
    ns = await namespace_of(request, write=False)
    key = key_of(request)
    (record,) = await read(request, ns, [Get(key)])
    if record is None:
        raise NotFound(f"key {key!r} does not exist")
    etag = f'"{record.version}"'
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return json_response(record_to_json(key, record), headers={"ETag": etag})


@routes.put(
    "/keys/{key:key}",
    responses=WRITE_ERRORS,
    summary="Write one item",
    openapi_extra=spec("namespace", "key", "if-match", "if-none-match-write", body="PutBody"),
)
async def put_item(request: Request) -> Response:
    ns = await namespace_of(request, write=True)
    key = key_of(request)
    body = await body_json(request)
    if type(body) is not dict or "value" not in body:
        raise InvalidRequest('the body must be an object with a "value"')
    body["if_version"] = version_condition(request, body.get("if_version"))
    (version,) = await write(request, ns, [put_from_json(key, body)])
    return json_response({"key": key, "version": version}, headers={"ETag": f'"{version}"'})


@routes.delete(
    "/keys/{key:key}",
    responses=WRITE_ERRORS,
    summary="Delete one item",
    openapi_extra=spec("namespace", "key", "if-match"),
)
async def delete_item(request: Request) -> Response:
    ns = await namespace_of(request, write=True)
    op = Delete(key_of(request), version_condition(request, write=False))
    (deleted,) = await write(request, ns, [op])
    return json_response({"deleted": deleted})


async def _one_op(request: Request, name: str, idempotent: bool) -> Any:
    """Run the single op ``name`` on the path's key, its fields from the body."""
    ns = await namespace_of(request, write=True)
    key = key_of(request)
    body = await body_json(request)
    if type(body) is not dict:
        raise InvalidRequest("the body must be a JSON object")
    op = op_from_json({**body, "op": name, "key": key})
    idempotency_key = request.headers.get("idempotency-key") if idempotent else None
    (result,) = await write(request, ns, [op], idempotency_key)
    return result


@routes.post(
    "/incr/{key:key}",
    responses=IDEMPOTENT_ERRORS,
    summary="Add to a number",
    openapi_extra=spec("namespace", "key", "idempotency-key", body="IncrBody"),
)
async def incr(request: Request) -> Response:
    return json_response({"value": await _one_op(request, "incr", idempotent=True)})


@routes.post(
    "/append/{key:key}",
    responses=IDEMPOTENT_ERRORS,
    summary="Append to a list",
    openapi_extra=spec("namespace", "key", "idempotency-key", body="AppendBody"),
)
async def append(request: Request) -> Response:
    return json_response({"length": await _one_op(request, "append", idempotent=True)})


@routes.post(
    "/touch/{key:key}",
    responses=WRITE_ERRORS,
    summary="Reset an item's expiry",
    openapi_extra=spec("namespace", "key", body="TouchBody"),
)
async def touch(request: Request) -> Response:
    return json_response({"touched": await _one_op(request, "touch", idempotent=False)})


# -- the namespace ---------------------------------------------------------------------


@routes.get(
    "/keys",
    responses=READ_ERRORS,
    summary="List keys",
    openapi_extra=spec("namespace", "prefix", "after", "limit"),
)
async def list_keys(request: Request) -> Response:
    ns = await namespace_of(request, write=False)
    limit = query_int(request, "limit", 1000, 1, MAX_PAGE)
    op = ListKeys(query_prefix(request), query_key(request, "after"), limit)
    (keys,) = await read(request, ns, [op])
    return json_response({"keys": keys, "next": keys[-1] if len(keys) == limit else None})


@routes.delete(
    "/keys",
    responses=WRITE_ERRORS,
    summary="Delete every key (with a prefix)",
    openapi_extra=spec("namespace", "prefix"),
)
async def clear(request: Request) -> Response:
    ns = await namespace_of(request, write=True)
    (deleted,) = await write(request, ns, [Clear(query_prefix(request))])
    return json_response({"deleted": deleted})


@routes.post(
    "/batch",
    responses=IDEMPOTENT_ERRORS,
    summary="Apply operations atomically",
    openapi_extra=spec("namespace", "idempotency-key", body="BatchBody"),
)
async def batch(request: Request) -> Response:
    ops = ops_from_json(await body_json(request))
    writes = not is_read_only(ops)
    ns = await namespace_for(request, request.path_params["namespace"], write=writes)
    if writes:
        results = await write(request, ns, ops, request.headers.get("idempotency-key"))
    else:
        results = await read(request, ns, ops)
    return json_response(
        {"results": [result_to_json(op, r) for op, r in zip(ops, results, strict=True)]}
    )


@routes.get(
    "/stats",
    responses=READ_ERRORS,
    summary="Keys, bytes, writes today and limits",
    openapi_extra=spec("namespace"),
)
async def stats(request: Request) -> Response:
    ns = await namespace_of(request, write=False)
    (found,) = await read(request, ns, [Stats()])
    limits = request.app.state.settings.limits
    now = store_now(store_of(request))
    return json_response(
        {
            "namespace": ns,
            **found._asdict(),
            "limits": limits._asdict(),
            "window_resets_at": (utc_day(now) + 1) * DAY,
        }
    )


@routes.get(
    "/changes",
    responses=openapi_errors(400, 401, 403, 404, 503),
    summary="The change feed (with wait: long polling)",
    openapi_extra=spec("namespace", "since", "feed-limit", "prefix", "values", "wait"),
)
async def changes(request: Request) -> Response:
    """With ``wait``, held until a change after ``since`` exists (long polling: see
    ``watch.py``); the token is checked again before the answer (through the token
    cache: a revocation reaches it within 5 s)."""
    ns = await namespace_of(request, write=False)
    op = Changes(
        query_int(request, "since", 0, 0, 2**63 - 1),
        query_int(request, "limit", 1000, 0, MAX_PAGE),
        query_prefix(request),
        query_bool(request, "values"),
    )
    wait = query_int(request, "wait", 0, 0, MAX_WAIT)
    if not wait or op.limit == 0:
        (page,) = await read(request, ns, [op])
        return json_response(changes_to_json(page))
    watchers = request.app.state.watchers
    with watchers.slot(await caller_of(request)):
        waiting = await_changes(store_of(request), ns, op, wait)
        page = await until_answered(request, waiting, watchers.stopping)
    if page is None:
        if not watchers.stopping.is_set():  # the client is gone: nobody reads this
            return Response(status_code=204)
        (page,) = await read(request, ns, [op])  # stopping: answer now, without waiting
    await namespace_of(request, write=False)  # a token revoked meanwhile (up to the token
    return json_response(changes_to_json(page))  # cache's 5 s ago) gets no changes


@listing.get(
    "/namespaces",
    responses=READ_ERRORS,
    summary="The namespaces this caller reaches, with their keys, bytes and writes today",
    openapi_extra=spec("prefix", "after", "limit"),
)
async def namespaces(request: Request) -> Response:
    """In token mode only the namespaces the token's patterns reach, and a bad token is 401
    even where there is nothing to list."""
    prefix = query_prefix(request)
    after = query_key(request, "after")
    limit = query_int(request, "limit", 1000, 1, MAX_PAGE)
    token = await token_for(request.app.state.tokens, request.headers.get("authorization"))
    narrow = literal_prefix(token)  # list only where the token can reach, not the whole store
    if narrow.startswith(prefix):
        prefix = narrow
    elif not prefix.startswith(narrow):
        return json_response({"namespaces": [], "next": None})  # disjoint: nothing to list
    store, found = store_of(request), list[NamespaceInfo]()
    while len(found) < limit:
        page = await run_in_threadpool(list_namespaces, store, prefix, after, limit)
        found += [info for info in page if reaches(token, info.namespace)]
        if len(page) < limit:
            break
        after = page[-1].namespace
    found = found[:limit]
    return json_response(
        {
            "namespaces": [info._asdict() for info in found],
            "next": found[-1].namespace if len(found) == limit else None,
        }
    )


@listing.get(
    "/info",
    summary="This server: version, auth mode and the limits every namespace has",
)
async def info(request: Request) -> Response:
    """Nothing secret: what any client learns from its answers (a 429 names its limit)."""
    import botwire

    settings = request.app.state.settings
    return json_response(
        {
            "version": botwire.__version__,
            "auth": settings.auth,
            "limits": {
                **settings.limits._asdict(),
                "max_body_bytes": settings.max_body_bytes,
                "max_batch_ops": MAX_BATCH,
            },
        }
    )
