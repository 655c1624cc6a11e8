"""The client of a botwire server: the same store primitive over HTTP (httpx).

* One keep-alive ``httpx.Client`` per store (built once: it costs ~16 ms), and an
  ``httpx.AsyncClient`` for ``AsyncMemory``, made on first async use.
* A plain read is ``GET /v1/ns/{ns}/keys/{key}``; everything else is one
  ``POST /v1/ns/{ns}/batch``, so a batch stays atomic on the server.
* ``timeout`` bounds the whole call, retries included, down to each socket
  read: a server that drips bytes cannot hold a caller past it.
* Retries: on connection errors, 502, 503, 504 and 429 (honouring
  ``Retry-After``), with capped exponential backoff and full jitter, within
  that budget; then :class:`~botwire.Unavailable`. Reads are idempotent;
  every write batch carries an ``Idempotency-Key`` the client generates, so a
  retry never applies twice or counts twice against a limit. Other 4xx are
  never retried.
* A circuit breaker: once a call spent its budget without a usable answer (no
  connection, or 502/503/504 throughout), later calls fail at once with
  ``Unavailable`` for ``breaker`` seconds (5, or ``timeout`` if that is less:
  a caller never waits longer than one call would; a read cache with ``stale_if_error``
  then serves at once); after that, one attempt per call probes until the
  server answers again.
* Errors come back as the very classes the embedded store raises
  (``error_for_code``); an answer that is not botwire's JSON raises
  :class:`~botwire.BadResponse`. Messages are written for the Python user: a
  401 without a key says to set ``BOTWIRE_API_KEY`` or pass ``api_key=``, and
  ``Unavailable`` says when the URL came from ``$BOTWIRE_URL``.
* A server in open mode answers ``Botwire-Auth: open`` to a request that carries
  a key: the store warns once (:class:`~botwire.ApiKeyIgnoredWarning`) that the
  key is ignored.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
import uuid
from collections.abc import Sequence
from typing import Any
from urllib.parse import urlencode

import httpx

from .. import _codec
from .._errors import (
    ApiKeyIgnoredWarning,
    BadResponse,
    BotwireError,
    InvalidRequest,
    NotFound,
    StoreClosed,
    StoreError,
    Unauthorized,
    Unavailable,
    error_for_code,
)
from ..ops import ChangePage, Changes, Get, Idempotency, NamespaceInfo, Op, Record, is_read_only
from ..wire import (
    changes_from_json,
    check_namespace,
    key_path,
    op_to_json,
    record_from_json,
    result_from_json,
)
from ._backoff import Backoff
from ._deadline import bounded, deadline
from ._per_loop import PerLoop
from .base import UNCHANGED, Store, _Unchanged

RETRY_STATUSES = {429, 502, 503, 504}
BACKOFF_BASE, BACKOFF_CAP = 0.05, 2.0
DEFAULT_BREAKER = 5.0  # seconds a dead server is remembered (at most ``timeout``)
_SECONDS = re.compile(r"[0-9]{1,9}(\.[0-9]{1,6})?")


def retry_after(response: httpx.Response | None) -> float:
    """The seconds a 429 or 503 asks to wait (``Retry-After``), else 0."""
    if response is not None and response.status_code in (429, 503):
        said = response.headers.get("retry-after", "").strip()
        if _SECONDS.fullmatch(said):  # a floor: "0" must not make a retry storm
            return float(said)
    return 0.0


def error_from(response: httpx.Response) -> BotwireError:
    """The exception a server error answer stands for."""
    try:
        error = _codec.decode(response.content)["error"]
        code, message = error.pop("code"), error.pop("message", "")
        if type(code) is not str or type(message) is not str:
            raise TypeError("not an error object")
    except (ValueError, KeyError, TypeError, AttributeError, RecursionError):
        if response.status_code >= 500:
            return Unavailable(f"the server answered {response.status_code}")
        return BadResponse(f"the server answered {response.status_code}: {response.text[:200]!r}")
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
    "headers_too_large": InvalidRequest,
    "request_timeout": InvalidRequest,
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
        breaker: float = DEFAULT_BREAKER,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = float(timeout)
        self.breaker = min(float(breaker), self.timeout)  # never longer than one call waits
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._headers = headers
        if client is None:
            client = bounded(httpx.Client(base_url=self.url, headers=headers, timeout=timeout))
        self._client = client
        given = [c.headers for c in (client, async_client) if c is not None]
        self._sends_key = bool(api_key) or any("authorization" in h for h in given)
        self._warned_open = False  # ApiKeyIgnoredWarning is given once per store
        self._async_clients = PerLoop(self._new_async_client, _aclose)
        self._given_async_client = async_client
        self._closed = False
        self._down_until = 0.0  # the breaker is open until then (time.monotonic())
        self._down_lock = threading.Lock()

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
        client = httpx.AsyncClient(base_url=self.url, headers=self._headers, timeout=self.timeout)
        return bounded(client)

    # -- building requests ---------------------------------------------------------

    def _request(
        self, namespace: str, ops: Sequence[Op], idempotency: Idempotency | None
    ) -> tuple[str, str, bytes | None, dict[str, str]]:
        """(method, path, body, headers) for ``ops``."""
        if self._closed:
            raise StoreClosed("the store is closed")
        op = ops[0]
        if _is_plain_read(ops) and type(op) is Get:
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
                error = error_from(response)
                if isinstance(error, NotFound):
                    return [None]
                raise error
            raise error_from(response)
        try:
            data = _codec.decode(response.content)
            if _is_plain_read(ops):  # a single GET answers with the item itself
                return [record_from_json(data)]
            return [result_from_json(op, r) for op, r in zip(ops, data["results"], strict=True)]
        except BotwireError as exc:  # a value that is not ours to store
            raise BadResponse(f"the server's answer holds what botwire refuses: {exc}") from None
        except (ValueError, KeyError, TypeError, AttributeError, IndexError) as exc:
            raise BadResponse(
                f"the server's answer ({response.status_code}, "
                f"{response.headers.get('content-type', 'no content type')}) is not botwire's: "
                f"{type(exc).__name__}: {str(exc)[:100]}; is the URL a botwire server?"
            ) from None

    # -- the primitive: one decision (_pause), two drivers ----------------------------

    def _budget(self) -> tuple[Backoff, int]:
        """(backoff, attempts) for a call; raises at once while the breaker is open."""
        policy = Backoff(self.timeout, base=BACKOFF_BASE, cap=BACKOFF_CAP)
        if self._down_until:
            now = time.monotonic()
            if now < self._down_until:
                raise Unavailable(
                    f"{self._where()} did not answer within {self.timeout}s; not retried "
                    f"for {self._down_until - now:.1f}s more (the circuit breaker)"
                    + self._from_env()
                )
            return policy, 1  # probing: one attempt
        return policy, 1000

    def _pause(
        self,
        attempt: int,
        attempts: int,
        response: httpx.Response | None,
        failure: Exception,
        policy: Backoff,
        said: list[Exception],
    ) -> float:
        """How long to wait before the next attempt; raises once the budget is spent.

        The error raised is the server's last answer (a 429 says why) unless no
        attempt got one: a last attempt cut short by the deadline says less.
        """
        if response is not None:
            said[:] = [failure]
        pause = policy.pause(retry_after(response))
        if attempt + 1 >= attempts or pause is None:
            error = _final(said[0] if said else failure, self._where())
            if type(error) is Unavailable:  # not reached: say if $BOTWIRE_URL was left set
                error = Unavailable(error.message + self._from_env(), **error.details)
            if type(error) is Unavailable and self.breaker > 0:
                with self._down_lock:
                    self._down_until = time.monotonic() + self.breaker
            raise error from failure
        return pause

    def _answered(self, response: httpx.Response) -> httpx.Response:
        """``response``, after what any answer tells: the server is up, the key is ignored,
        or (401) the key is missing or refused, raised here with what to do about it."""
        if self._down_until:
            with self._down_lock:
                self._down_until = 0.0
        if response.status_code == 401:
            raise self._unauthorized(error_from(response))
        if (
            self._sends_key
            and not self._warned_open
            and response.headers.get("botwire-auth", "").strip().lower() == "open"
        ):
            self._warned_open = True
            _warn(
                f"botwire: the server at {self.url} runs in open mode and ignores the API "
                "key this client sends (every client may read and write every namespace); "
                "start it with --auth token, or stop sending the key (BOTWIRE_API_KEY, "
                "api_key=, --api-key)",
                ApiKeyIgnoredWarning,
            )
        return response

    def _unauthorized(self, error: BotwireError) -> BotwireError:
        """A 401's error, with what a Python user does about it."""
        if type(error) is not Unauthorized:
            return error
        if not self._sends_key:
            if "BOTWIRE_API_KEY" in error.message:  # the server already said it
                return error
            hint = (
                f"{self.url} requires an API key and none was sent: set BOTWIRE_API_KEY "
                "or pass api_key= (a token from `botwire token create`)"
            )
        else:
            env = os.environ.get("BOTWIRE_API_KEY")
            sent = self._client.headers.get("authorization", self._headers.get("authorization"))
            from_env = env and sent == f"Bearer {env}"
            hint = f"{self.url} refused the API key sent ("
            hint += (
                "the one in $BOTWIRE_API_KEY)" if from_env else "given as api_key= or --api-key)"
            )
        return Unauthorized(f"{error.message}: {hint}", **error.details)

    def _where(self) -> str:
        """The URL, for messages."""
        return self.url

    def _from_env(self) -> str:
        """For a message about an unreachable server: whether ``$BOTWIRE_URL`` named it."""
        if os.environ.get("BOTWIRE_URL", "").rstrip("/") == self.url:
            return " (the URL came from $BOTWIRE_URL; unset it to use the embedded store)"
        return ""

    def _send(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        held: float = 0.0,
    ) -> httpx.Response:
        """The server's answer to one request, retried as the module docstring says."""
        policy, attempts = self._budget()
        longer = _held_timeout(self.timeout + held) if held else None  # the server holds it
        said: list[Exception] = []  # the server's last error answer in this call
        for attempt in range(attempts):
            response = None
            try:
                with deadline(_attempt_deadline(policy, self.timeout, held)):
                    response = self._client.request(
                        method, path, content=body, headers=headers, extensions=longer
                    )
            except httpx.TransportError as exc:
                failure: Exception = exc
            except httpx.RequestError as exc:  # e.g. a body that is not the gzip it claims
                raise BadResponse(
                    f"{self._where()} sent an unreadable answer: {exc}{self._from_env()}"
                ) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._answered(response)
                failure = error_from(response)
            time.sleep(self._pause(attempt, attempts, response, failure, policy, said))
        raise Unavailable(f"{self._where()}: too many retries{self._from_env()}")

    async def _asend(
        self,
        method: str,
        path: str,
        body: bytes | None,
        headers: dict[str, str],
        held: float = 0.0,
    ) -> httpx.Response:
        """Async :meth:`_send`."""
        client = await self._async_client()
        policy, attempts = self._budget()
        longer = _held_timeout(self.timeout + held) if held else None  # the server holds it
        said: list[Exception] = []  # the server's last error answer in this call
        for attempt in range(attempts):
            response = None
            try:
                with deadline(_attempt_deadline(policy, self.timeout, held)):
                    response = await client.request(
                        method, path, content=body, headers=headers, extensions=longer
                    )
            except httpx.TransportError as exc:
                failure: Exception = exc
            except httpx.RequestError as exc:  # e.g. a body that is not the gzip it claims
                raise BadResponse(
                    f"{self._where()} sent an unreadable answer: {exc}{self._from_env()}"
                ) from None
            else:
                if response.status_code not in RETRY_STATUSES:
                    return self._answered(response)
                failure = error_from(response)
            await asyncio.sleep(self._pause(attempt, attempts, response, failure, policy, said))
        raise Unavailable(f"{self._where()}: too many retries{self._from_env()}")

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

    def wait_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        """``GET /v1/ns/{ns}/changes?wait=``: the server holds the request (long polling)."""
        held = _held(wait)
        return self._page(
            self._send("GET", self._changes_path(namespace, op, held), None, {}, held)
        )

    async def await_changes(self, namespace: str, op: Changes, wait: float) -> ChangePage:
        held = _held(wait)
        path = self._changes_path(namespace, op, held)
        return self._page(await self._asend("GET", path, None, {}, held))

    def _changes_path(self, namespace: str, op: Changes, held: int) -> str:
        if self._closed:
            raise StoreClosed("the store is closed")
        query = {"since": op.since, "limit": op.limit, "prefix": op.prefix, "wait": held}
        query["values"] = "true" if op.values else "false"
        return f"/v1/ns/{namespace}/changes?{urlencode(query)}"

    def _page(self, response: httpx.Response) -> ChangePage:
        if response.status_code >= 400:
            raise error_from(response)
        try:
            return changes_from_json(_codec.decode(response.content))
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BadResponse(f"{self._where()} sent a change feed botwire cannot read") from exc

    def namespaces(
        self, prefix: str = "", after: str | None = None, limit: int = 1000
    ) -> list[NamespaceInfo]:
        """``GET /v1/namespaces``: those the token reaches (every one in open mode)."""
        query = urlencode({"prefix": prefix, "limit": limit, **({"after": after} if after else {})})
        response = self._send("GET", f"/v1/namespaces?{query}", None, {})
        if response.status_code >= 400:
            raise error_from(response)
        try:
            rows = _codec.decode(response.content)["namespaces"]
            return [
                NamespaceInfo(
                    check_namespace(r["namespace"]),
                    int(r["keys"]),
                    int(r["bytes"]),
                    int(r["writes_today"]),
                )
                for r in rows
            ]
        except (KeyError, TypeError, ValueError, BotwireError) as exc:
            raise BadResponse(f"{self._where()} sent a namespace list botwire cannot read") from exc


def _attempt_deadline(policy: Backoff, timeout: float, held: float) -> float:
    """When one attempt's socket waits must end: the call's deadline, or, for a request the
    server holds, ``held`` seconds more than a plain attempt (retries keep the call's
    budget: an unreachable server fails as soon as for any call)."""
    return time.monotonic() + timeout + held if held else policy.deadline


def _held_timeout(seconds: float) -> dict[str, Any]:
    """A request's own timeouts (httpx reads them from its extensions), for a held request."""
    return {"timeout": httpx.Timeout(seconds).as_dict()}


def _held(wait: float) -> int:
    """The whole seconds a server is asked to hold a watch request (it allows 0 to 60)."""
    return max(0, min(MAX_HELD, int(wait)))


MAX_HELD = 60


def _is_plain_read(ops: Sequence[Op]) -> bool:
    """One ``Get`` without a refresh: sent as ``GET /keys/{key}``, answered with the item."""
    return len(ops) == 1 and type(ops[0]) is Get and not ops[0].refresh


async def _aclose(client: httpx.AsyncClient) -> None:
    await client.aclose()


def _warn(message: str, category: type[Warning]) -> None:
    """``warnings.warn``, pointed at the first caller outside botwire (the user's line)."""
    import warnings

    package = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    level, frame = 2, sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(package + os.sep):
        level, frame = level + 1, frame.f_back  # type: ignore[assignment]
    warnings.warn(message, category, stacklevel=level)


def _final(failure: Exception, where: str) -> BotwireError:
    """What to raise when the retry budget is spent."""
    if isinstance(failure, BotwireError):
        return failure  # e.g. WriteLimitExceeded, whose Retry-After is beyond the budget
    reason = str(failure) or type(failure).__name__
    return Unavailable(f"{where} could not be reached: {reason}")
