"""What every route does first: find the store, check the namespace and the caller, read the body.

Reads run on the event loop (SQLite readers never wait on a writer in WAL);
writes run in the thread pool, since one may wait for another's lock.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from botwire import InvalidRequest, UnsupportedMediaType
from botwire._ops import Idempotency, Op
from botwire._validate import check_namespace
from botwire._wire import parse_json
from botwire.stores import Store

from .auth import authorize


def store_of(request: Request) -> Store:
    store: Store = request.app.state.store
    return store


def namespace_for(request: Request, namespace: str, *, write: bool) -> str:
    check_namespace(namespace)
    authorize(
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
    return store_of(request).batch(namespace, ops)  # reads never wait on writers (WAL)


async def write(
    request: Request, namespace: str, ops: list[Op], idempotency_key: str | None = None
) -> list[Any]:
    idempotency = None
    if idempotency_key is not None:
        if not 1 <= len(idempotency_key) <= 255:
            raise InvalidRequest("an Idempotency-Key is 1-255 characters")
        body = await request.body()
        fingerprint = hashlib.sha256(
            b"%s %s\n%s" % (request.method.encode(), request.url.path.encode(), body)
        ).hexdigest()
        idempotency = Idempotency(idempotency_key, fingerprint)
    results: list[Any] = await run_in_threadpool(
        store_of(request).batch, namespace, ops, idempotency=idempotency
    )
    return results
