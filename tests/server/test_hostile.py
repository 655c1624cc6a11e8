"""Hostile input gets a 4xx with an error body; nothing gives a 5xx or kills a worker."""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator

import httpx
import pytest
from fastapi.testclient import TestClient

from .conftest import LiveServer

JSON = {"content-type": "application/json"}
DEEP = b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
# (method, path, body, headers, expected status)
CASES: list[tuple[str, str, bytes | None, dict[str, str], int]] = [
    ("PUT", "/v1/ns/a/keys/k", b"{not json", JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b"", JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", DEEP, JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1e400}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": NaN}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 123456789012345678901234567890}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": -99999999999999999999}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": "\\ud800"}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": "\xff\xfe"}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b"[1, 2]", JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"no": "value"}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1, "ttl": -1}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1, "ttl": "soon"}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1, "if_version": -3}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1}', {"content-type": "text/plain"}, 415),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1}', {}, 415),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1}', {**JSON, "if-match": "banana"}, 400),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1}', {**JSON, "if-none-match": '"3"'}, 400),
    ("PUT", "/v1/ns/a%20b/keys/k", b'{"value": 1}', JSON, 400),
    ("PUT", "/v1/ns/" + "n" * 200 + "/keys/k", b'{"value": 1}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/" + "k" * 600, b'{"value": 1}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/a%00b", b'{"value": 1}', JSON, 400),
    ("PUT", "/v1/ns/a/keys/a%0Ab", b'{"value": 1}', JSON, 400),
    ("GET", "/v1/ns/a/keys?limit=0", None, {}, 400),
    ("GET", "/v1/ns/a/keys?limit=99999999999999999999999", None, {}, 400),
    ("GET", "/v1/ns/a/keys?limit=abc", None, {}, 400),
    ("GET", "/v1/ns/a/changes?since=-1", None, {}, 400),
    ("GET", "/v1/ns/a/keys?after=%00", None, {}, 400),
    ("POST", "/v1/ns/a/batch", b'{"ops": []}', JSON, 400),
    ("POST", "/v1/ns/a/batch", b'{"ops": [{"op": "explode"}]}', JSON, 400),
    ("POST", "/v1/ns/a/batch", b'{"ops": [{"op": "put", "key": "k"}]}', JSON, 400),
    (
        "POST",
        "/v1/ns/a/batch",
        b'{"ops": [' + b",".join([b'{"op":"get","key":"k"}'] * 1001) + b"]}",
        JSON,
        400,
    ),
    ("POST", "/v1/ns/a/batch", b'{"ops": "all"}', JSON, 400),
    ("POST", "/v1/ns/a/incr/k", b'{"by": "1"}', JSON, 400),
    ("POST", "/v1/ns/a/incr/k", b'{"by": true}', JSON, 400),
    ("POST", "/v1/ns/a/incr/k", b"{}", {**JSON, "idempotency-key": "x" * 300}, 400),
    ("POST", "/v1/ns/a/append/k", b'{"items": []}', JSON, 400),
    ("POST", "/v1/ns/a/append/k", b'{"items": [1], "max_len": 0}', JSON, 400),
    ("POST", "/v1/ns/a/touch/k", b"{}", JSON, 400),
    ("PUT", "/memory/a/k", b'{"value": 5}', JSON, 400),
    ("PUT", "/memory/a/k", b"nope", JSON, 400),
    ("GET", "/memory/a?limit=-5", None, {}, 400),
    ("PATCH", "/v1/ns/a/keys/k", b"{}", JSON, 405),
    ("GET", "/v1/nowhere", None, {}, 404),
]


def _check(response: httpx.Response, status: int) -> None:
    assert response.status_code == status, response.text[:300]
    error = response.json()["error"]
    assert error["code"] and error["message"]
    assert "Traceback" not in response.text


@pytest.mark.parametrize(
    ("method", "path", "body", "headers", "status"),
    CASES,
    ids=[f"{c[0]} {c[1][:40]} {(c[2] or b'')[:20]!r}" for c in CASES],
)
def test_hostile_input_in_process(
    client: TestClient,
    method: str,
    path: str,
    body: bytes | None,
    headers: dict[str, str],
    status: int,
) -> None:
    _check(client.request(method, path, content=body, headers=headers), status)
    assert client.get("/v1/ns/a/keys").json()["keys"] == []  # nothing was stored


def test_body_limit(make_client: Callable[..., TestClient]) -> None:
    client = make_client(max_body_bytes=1000, max_value_bytes=100)
    big = b'{"value": "' + b"x" * 2000 + b'"}'
    _check(client.put("/v1/ns/a/keys/k", content=big, headers=JSON), 413)
    value = b'{"value": "' + b"x" * 200 + b'"}'
    response = client.put("/v1/ns/a/keys/k", content=value, headers=JSON)
    _check(response, 413)
    assert response.json()["error"]["code"] == "value_too_large"

    def stream() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"value": "'
        for _ in range(100):
            yield b"y" * 100
        yield b'"}'

    _check(client.put("/v1/ns/a/keys/k", content=stream(), headers=JSON), 413)


@pytest.fixture
def live(live_server: Callable[..., LiveServer]) -> LiveServer:
    return live_server(workers=1, max_body_bytes=1_000_000)


def test_hostile_input_live_leaves_the_worker_alive(live: LiveServer) -> None:
    with httpx.Client(base_url=live.url, timeout=30) as http:
        for method, path, body, headers, status in CASES:
            _check(http.request(method, path, content=body, headers=headers), status)
        _check(http.put("/v1/ns/a/keys/k", content=b"x" * 2_000_000, headers=JSON), 413)

        def slow() -> Iterator[bytes]:
            yield b'{"value": "'
            for _ in range(300):
                yield b"z" * 4096

        _check(http.put("/v1/ns/a/keys/k", content=slow(), headers=JSON), 413)
        # a body that claims more than it sends, then the connection drops; and garbage
        for raw in (
            b"PUT /v1/ns/a/keys/k HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b"Content-Length: 50\r\n\r\n{",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64,  # TLS hello
            b"GET /" + b"a" * 100_000 + b" HTTP/1.1\r\n\r\n",
        ):
            with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
                sock.sendall(raw)
        assert http.get("/healthz").json() == {"ok": True}
        assert http.put("/v1/ns/a/keys/k", json={"value": 1}).status_code == 200
    assert live.proc is not None and live.proc.poll() is None
    assert "Traceback" not in live.log.read_text()
