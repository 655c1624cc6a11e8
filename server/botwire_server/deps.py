"""What every route does first: find the store, check the namespace and the caller, read the body.

Reads run on the event loop (SQLite readers never wait on a writer in WAL);
writes, keyed or not, go through the worker's group commit (``writes.py``).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from botwire import InvalidRequest, UnsupportedMediaType
from botwire.ops import Append, Delete, Get, Idempotency, Incr, Op, Put, Touch
from botwire.stores import GroupCommit, LocalIO, Store
from botwire.wire import (
    check_key,
    check_namespace,
    check_prefix,
    check_version,
    parse_json,
    parse_uint,
)

from .auth import authorize

_KEY_OPS = (Get, Put, Delete, Incr, Append, Touch)
_PRINTABLE = re.compile(r"[\x20-\x7e]+")


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


async def namespace_for(request: Request, namespace: str, *, write: bool) -> str:
    check_namespace(namespace)
    await authorize(
        request.app.state.tokens, request.headers.get("authorization"), namespace, write=write
    )
    return namespace


async def body_json(request: Request) -> Any:
    """The request body as JSON; 415 unless it is declared JSON."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind != "application/json" and not kind.endswith("+json"):
        raise UnsupportedMediaType(f"send Content-Type: application/json, not {kind!r}")
    return parse_json(await request.body())


async def read(request: Request, namespace: str, ops: list[Op]) -> list[Any]:
    store = store_of(request)
    if not isinstance(store, LocalIO):
        return await store.abatch(namespace, ops)
    if quick(ops):  # SQLite: a few key reads take microseconds and never wait on writers
        return store.batch(namespace, ops)
    results: list[Any] = await run_in_threadpool(store.batch, namespace, ops)  # off the loop
    return results


QUICK_OPS = 16


def quick(ops: Sequence[Op]) -> bool:
    """A batch cheap enough for the event loop: a few single-key ops (no scans or counts)."""
    return len(ops) <= QUICK_OPS and all(type(op) in _KEY_OPS for op in ops)


async def write(
    request: Request, namespace: str, ops: list[Op], idempotency_key: str | None = None
) -> list[Any]:
    idempotency = None
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 255 or not _PRINTABLE.fullmatch(idempotency_key):
            raise InvalidRequest("an Idempotency-Key is 1-255 printable ASCII characters")
        body = await request.body()
        fingerprint = hashlib.sha256(
            b"%s %s\n%s" % (request.method.encode(), request.url.path.encode(), body)
        ).hexdigest()
        idempotency = Idempotency(idempotency_key, fingerprint)
    store = store_of(request)
    if not isinstance(store, GroupCommit):
        return await store.abatch(namespace, ops, idempotency=idempotency)
    # Every write, keyed or not, joins the group commit (see writes.py).
    results: list[Any] = await request.app.state.writes.submit(namespace, ops, idempotency)
    return results


# -- parameters, read by hand (documented in openapi.PARAMS) ---------------------------


async def namespace_of(request: Request, *, write: bool) -> str:
    """The path's namespace, checked, and the caller allowed to read (or ``write``) it."""
    return await namespace_for(request, request.path_params["namespace"], write=write)


def key_of(request: Request) -> str:
    key: str = request.path_params["key"]
    return check_key(key)


def query_int(request: Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query_params.get(name)
    return default if raw is None else parse_uint(raw, name, low, high)


def query_bool(request: Request, name: str) -> bool:
    """``true`` or ``false`` (absent: false); anything else is refused, not guessed."""
    raw = request.query_params.get(name, "false")
    if raw not in ("true", "false"):
        raise InvalidRequest(f"{name} must be true or false, not {raw[:40]!r}")
    return raw == "true"


def query_prefix(request: Request) -> str:
    return check_prefix(request.query_params.get("prefix", ""))


def query_key(request: Request, name: str) -> str | None:
    raw = request.query_params.get(name)
    return None if raw is None else check_key(raw)


def version_condition(request: Request, in_body: Any = None, *, write: bool = True) -> int | None:
    """``if_version`` from ``If-None-Match: *``, ``If-Match: "<v>"`` or the body."""
    if_none_match = request.headers.get("if-none-match")
    if write and if_none_match is not None:
        if if_none_match.strip() != "*":
            raise InvalidRequest("If-None-Match on a write must be *")
        return 0
    if_match = request.headers.get("if-match")
    if if_match is not None:
        tag = if_match.strip().removeprefix("W/")
        if len(tag) < 3 or tag[0] != '"' or tag[-1] != '"':
            raise InvalidRequest('If-Match must be a version in quotes, as "17"')
        return parse_uint(tag[1:-1], "the If-Match version")
    return check_version(in_body)
