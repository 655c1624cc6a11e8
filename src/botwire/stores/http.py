"""The client of a botwire server: the same store primitive over HTTP (httpx).

* One keep-alive ``httpx.Client`` per store (built once: it costs ~16 ms), and an
  ``httpx.AsyncClient`` for ``AsyncMemory``, made on first async use.
* A plain read is ``GET /v1/ns/{ns}/keys/{key}``; everything else is one
  ``POST /v1/ns/{ns}/batch``, so a batch stays atomic on the server.
* Retries: on connection errors, 502, 503, 504 and 429 (honouring
  ``Retry-After``), with capped exponential backoff and full jitter, within a
  total time budget (``timeout``); then :class:`~botwire.Unavailable`. Reads
  are idempotent; every write batch carries an ``Idempotency-Key`` the client
  generates, so a retry never applies twice or counts twice against a limit.
  Other 4xx are never retried.
* Errors come back as the very classes the embedded store raises
  (``error_for_code``).
"""

from __future__ import annotations

import asyncio
import random
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx

from .. import _codec
from .._errors import (
    BotwireError,
    InvalidRequest,
    StoreClosed,
    StoreError,
    Unavailable,
    error_for_code,
)
from .._ops import Get, Idempotency, Op, Record, is_read_only
from .._wire import key_path, op_to_json, record_from_json, result_from_json
from ._per_loop import PerLoop
from .base import UNCHANGED, Store, _Unchanged

RETRY_STATUSES = {429, 502, 503, 504}
BACKOFF_BASE, BACKOFF_CAP = 0.05, 2.0


def backoff(attempt: int, response: httpx.Response | None) -> float:
    """Seconds to wait before attempt ``attempt + 1``: Retry-After, else full jitter."""
    if response is not None and response.status_code == 429:
        retry_after = response.headers.get("retry-after", "")
        if retry_after.replace(".", "", 1).isdigit():
            return float(retry_after)
    return random.uniform(0, min(BACKOFF_CAP, BACKOFF_BASE * 2**attempt))


def error_from(response: httpx.Response) -> BotwireError:
    """The exception a server error answer stands for."""
    try:
        error = response.json()["error"]
        code, message = error.pop("code"), error.pop("message", "")
    except (ValueError, KeyError, TypeError, AttributeError):
        if response.status_code >= 500:
            return Unavailable(f"the server answered {response.status_code}")
        return BotwireError(f"the server answered {response.status_code}: {response.text[:200]}")
    if code in _SERVER_ONLY:  # answers of the HTTP layer itself, not of the store
        return _SERVER_ONLY[code](message or code)
    return error_for_code(code, message, **error)


# Codes the server's HTTP layer sends that are not classes of the error tree.
_SERVER_ONLY: dict[str, type[BotwireError]] = {
    "method_not_allowed": InvalidRequest,
    "not_acceptable": InvalidRequest,
    "http_error": InvalidRequest,
    "client_disconnected": InvalidRequest,
    "internal": StoreError,
}


class HttpStore(Store):
    """Items on a botwire server at ``url`` (``http://host:8787``)."""

    def __init__(
        self,
        url: str,
        *,
        api_key: str | None = None,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        async_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers = headers
        self._client = client or httpx.Client(base_url=self.url, headers=headers, timeout=timeout)
        self._async_clients = PerLoop(self._new_async_client, _aclose)
        self._given_async_client = async_client
        self._closed = False

    def close(self) -> None:
        self._closed = True
        self._client.close()

    async def aclose(self) -> None:
        self.close()
        await self._async_clients.close_current()  # those of other loops close with them

    async def _async_client(self) -> httpx.AsyncClient:
        if self._given_async_client is not None:
            return self._given_async_client
        return await self._async_clients.get()

    async def _new_async_client(self) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=self.timeout)

    # -- building requests ---------------------------------------------------------

    def _request(
        self, namespace: str, ops: Sequence[Op], idempotency: Idempotency | None
    ) -> tuple[str, str, bytes | None, dict[str, str]]:
        """(method, path, body, headers) for ``ops``."""
        if self._closed:
            raise StoreClosed("the store is closed")
        op = ops[0]
        if len(ops) == 1 and type(op) is Get and not op.refresh:
            return "GET", f"/v1/ns/{namespace}/keys/{key_path(op.key)}", None, {}
        body = _codec.encode({"ops": [op_to_json(o) for o in ops]})
        headers = {"content-type": "application/json"}
        if not is_read_only(ops):  # every write batch is safe to retry
            headers["idempotency-key"] = idempotency.key if idempotency else uuid.uuid4().hex
        return "POST", f"/v1/ns/{namespace}/batch", body, headers

    @staticmethod
    def _results(ops: Sequence[Op], response: httpx.Response) -> list[Any]:
        if response.status_code >= 400:
            if response.status_code == 404 and len(ops) == 1 and type(ops[0]) is Get:
                return [None]
            raise error_from(response)
        data = response.json()
        if "results" not in data:  # a single GET answers with the item itself
            return [record_from_json(data)]
        return [result_from_json(op, r) for op, r in zip(ops, data["results"], strict=True)]

    # -- the primitive: one decision (_pause), two drivers ----------------------------

    def _pause(
        self, attempt: int, response: httpx.Response | None, failure: Exception, deadline: float
    ) -> float:
        """How long to wait before the next attempt; raises once the budget is spent."""
        pause = backoff(attempt, response)
        if time.monotonic() + pause > deadline:
            raise _final(failure, self.url) from failure
        return pause

    def _send(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        """The server's answer to one request, retried as the module docstring says."""
        deadline = time.monotonic() + self.timeout
        for attempt in range(1000):
            response = None
            try:
                response = self._client.request(method, path, content=body, headers=headers)
            except httpx.TransportError as exc:
                failure: Exception = exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure = error_from(response)
            time.sleep(self._pause(attempt, response, failure, deadline))
        raise Unavailable(f"{self.url}: too many retries")

    async def _asend(
        self, method: str, path: str, body: bytes | None, headers: dict[str, str]
    ) -> httpx.Response:
        """Async :meth:`_send`."""
        client = await self._async_client()
        deadline = time.monotonic() + self.timeout
        for attempt in range(1000):
            response = None
            try:
                response = await client.request(method, path, content=body, headers=headers)
            except httpx.TransportError as exc:
                failure: Exception = exc
            else:
                if response.status_code not in RETRY_STATUSES:
                    return response
                failure = error_from(response)
            await asyncio.sleep(self._pause(attempt, response, failure, deadline))
        raise Unavailable(f"{self.url}: too many retries")

    def batch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        if not ops:
            return []
        return self._results(ops, self._send(*self._request(namespace, ops, idempotency)))

    async def abatch(
        self, namespace: str, ops: Sequence[Op], *, idempotency: Idempotency | None = None
    ) -> list[Any]:
        if not ops:
            return []
        return self._results(ops, await self._asend(*self._request(namespace, ops, idempotency)))

    def revalidate(self, namespace: str, key: str, version: int) -> Record | _Unchanged | None:
        """A conditional GET: 304 (no body) while ``key`` still has ``version``."""
        method, path, _, _ = self._request(namespace, (Get(key),), None)
        response = self._send(method, path, None, {"if-none-match": f'"{version}"'})
        return UNCHANGED if response.status_code == 304 else self._results((Get(key),), response)[0]

    async def arevalidate(
        self, namespace: str, key: str, version: int
    ) -> Record | _Unchanged | None:
        method, path, _, _ = self._request(namespace, (Get(key),), None)
        response = await self._asend(method, path, None, {"if-none-match": f'"{version}"'})
        return UNCHANGED if response.status_code == 304 else self._results((Get(key),), response)[0]


async def _aclose(client: httpx.AsyncClient) -> None:
    await client.aclose()


def _final(failure: Exception, url: str) -> BotwireError:
    """What to raise when the retry budget is spent."""
    if isinstance(failure, BotwireError):
        return failure  # e.g. WriteLimitExceeded, whose Retry-After is beyond the budget
    return Unavailable(f"{url} could not be reached: {failure}")
