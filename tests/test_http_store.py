"""The HTTP store on its own: error mapping, retries within a budget, idempotency keys."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

import botwire
from botwire import Conflict, InvalidRequest, Memory, StoreError, Unavailable, WriteLimitExceeded
from botwire._codec import encode
from botwire._errors import ERRORS_BY_CODE, BotwireError
from botwire.ops import Get, Incr, Put
from botwire.stores.cached import CachedStore
from botwire.stores.http import HttpStore, error_from


def _server_codes() -> set[str]:
    """Every error code the server can send: the error tree, and its HTTP layer's own."""
    source = (Path(botwire.__file__).parents[2] / "server/botwire_server/errors.py").read_text()
    tree = set(ERRORS_BY_CODE) - {BotwireError.code}  # the base is never raised as such
    return (
        tree
        | set(re.findall(r'"code": "([a-z_]+)"', source))
        | set(re.findall(r'\d{3}: "([a-z_]+)"', source))
    )


@pytest.mark.parametrize("code", sorted(_server_codes()))
def test_every_server_error_code_maps_to_a_specific_class(code: str) -> None:
    response = httpx.Response(400, json={"error": {"code": code, "message": "m"}})
    error = error_from(response)
    assert type(error) is not BotwireError, f"{code} has no mapping"


def store_with(
    handler: Callable[[httpx.Request], httpx.Response], timeout: float = 2.0
) -> HttpStore:
    client = httpx.Client(base_url="http://server", transport=httpx.MockTransport(handler))
    return HttpStore("http://server", client=client, timeout=timeout)


def test_connection_errors_and_503_are_retried_with_one_idempotency_key() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            raise httpx.ConnectError("refused")
        if len(seen) == 2:
            return httpx.Response(503, json={"error": {"code": "unavailable", "message": "busy"}})
        return httpx.Response(200, json={"results": [7]})

    assert store_with(handler).batch("ns", [Incr("n", 7)]) == [7]
    keys = {r.headers["idempotency-key"] for r in seen}
    assert len(seen) == 3 and len(keys) == 1  # the same key: a retry never applies twice


def test_429_waits_for_retry_after_within_the_budget() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        if len(calls) == 1:
            body = {"error": {"code": "write_limit_exceeded", "message": "m", "retry_after": 0.05}}
            return httpx.Response(429, json=body, headers={"retry-after": "0.05"})
        return httpx.Response(200, json={"results": [1]})

    assert store_with(handler).batch("ns", [Put("k", encode(1))]) == [1]


def test_a_retry_after_beyond_the_budget_raises_at_once() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = {"error": {"code": "write_limit_exceeded", "message": "m", "retry_after": 3600}}
        return httpx.Response(429, json=body, headers={"retry-after": "3600"})

    with pytest.raises(WriteLimitExceeded) as info:
        store_with(handler).batch("ns", [Put("k", encode(1))])
    assert info.value.retry_after == 3600


def test_other_4xx_are_not_retried() -> None:
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(1)
        return httpx.Response(
            409, json={"error": {"code": "conflict", "message": "m", "keys": ["k"]}}
        )

    with pytest.raises(Conflict) as info:
        store_with(handler).batch("ns", [Put("k", encode(1), None, 3)])
    assert info.value.keys == ["k"] and len(calls) == 1


def test_a_server_that_stays_down_gives_unavailable_within_the_budget() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    import time

    start = time.monotonic()
    with pytest.raises(Unavailable):
        store_with(handler, timeout=0.5).batch("ns", [Get("k")])
    assert time.monotonic() - start < 1.5


def test_non_json_errors_still_map() -> None:
    assert isinstance(error_from(httpx.Response(502, text="bad gateway")), Unavailable)
    assert isinstance(error_from(httpx.Response(418, text="teapot")), BotwireError)
    assert isinstance(
        error_from(httpx.Response(500, json={"error": {"code": "internal"}})), StoreError
    )
    assert isinstance(
        error_from(httpx.Response(405, json={"error": {"code": "method_not_allowed"}})),
        InvalidRequest,
    )


def test_memory_over_http_url_and_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOTWIRE_API_KEY", "bw_abc_secret")
    with Memory("ns", url="http://127.0.0.1:9", cache=False) as mem:
        assert isinstance(mem.store, HttpStore)
        assert mem.store._client.headers["authorization"] == "Bearer bw_abc_secret"
    with Memory("ns", url="http://127.0.0.1:9") as cached:  # the read cache is on by default
        assert isinstance(cached.store, CachedStore) and isinstance(cached.store.origin, HttpStore)
        assert cached.store.origin._client.headers["authorization"] == "Bearer bw_abc_secret"
