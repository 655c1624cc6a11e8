"""Adversarial input: every request gets a valid answer or a 4xx in the JSON error shape.

The promise under test: every input gets a 4xx with ``{"error": {"code": str,
"message": str}}``, or a valid answer; never a 5xx; the worker still answers;
numbers, names and keys are exact or refused, never changed.

Requests go to an in-process app as uvicorn hands them over (the raw path and
query string exactly as sent, the path percent-decoded once), so dot segments,
``%25`` and invalid escapes reach the app untouched; the same requests also run
on a PostgreSQL-backed app and over a real ``botwire serve --workers 2``.
Responses are read with ``json.loads`` (never orjson) so big integers are not
rounded on the way back.
"""

from __future__ import annotations

import json
import math
import re
import socket
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, unquote_to_bytes

import anyio
import httpx
import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st
from starlette.types import Message

from botwire.wire import key_path, op_from_json, result_from_json
from botwire_server import Settings, create_app

from ..postgres import fresh_schema_url
from ..server.conftest import LiveServer

# psycopg_pool's threads draw from `random` (reconnection jitter) while Hypothesis generates
# the next example; Hypothesis takes that for a strategy using `random`. None of ours does.
pytestmark = pytest.mark.filterwarnings(
    "ignore:Do not use the `random` module inside strategies"
    ":hypothesis.errors.HypothesisDeprecationWarning"
)

INT64_MAX = 2**63 - 1
JSON_TYPE = (b"content-type", b"application/json")
MAX_BODY = Settings().max_body_bytes


# -- an in-process app, driven with uvicorn-shaped requests ---------------------------


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: bytes
    raised: BaseException | None = None

    def json(self) -> Any:
        return json.loads(self.body)  # exact: big integers stay integers

    def code(self) -> str | None:
        try:
            error = self.json()["error"]
        except (ValueError, KeyError, TypeError):
            return None
        return error.get("code") if type(error) is dict else None

    def __repr__(self) -> str:
        return f"<{self.status} {self.body[:300]!r} raised={self.raised!r}>"


Headers = Sequence[tuple[bytes, bytes]]


class InProcess:
    """The app in this process; requests arrive as uvicorn passes them (raw path and query)."""

    def __init__(self, settings: Settings) -> None:
        self.client = TestClient(create_app(settings), raise_server_exceptions=False)
        self.client.__enter__()

    def close(self) -> None:
        self.client.__exit__(None, None, None)

    def request(
        self,
        method: str,
        target: str | bytes,
        body: bytes | list[bytes] = b"",
        headers: Headers = (),
    ) -> Answer:
        portal = self.client.portal
        assert portal is not None
        raw = target.encode("ascii") if isinstance(target, str) else target
        answer: Answer = portal.call(self._send, method, raw, body, list(headers))
        return answer

    async def _send(
        self,
        method: str,
        target: bytes,
        body: bytes | list[bytes],
        headers: list[tuple[bytes, bytes]],
    ) -> Answer:
        raw_path, _, query = target.partition(b"?")
        path = raw_path.decode("ascii")
        if "%" in path:  # exactly what uvicorn's httptools protocol does
            path = unquote(path)
        chunks = [body] if isinstance(body, bytes) else body
        head = [(name.lower(), value) for name, value in headers]
        declared = any(name == b"content-length" for name, _ in head)
        if not declared and isinstance(body, bytes) and (body or method in ("PUT", "POST")):
            head.append((b"content-length", str(len(body)).encode()))
        scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": "1.1",
            "method": method,
            "scheme": "http",
            "server": ("127.0.0.1", 8787),
            "client": ("127.0.0.1", 50000),
            "root_path": "",
            "path": path,
            "raw_path": raw_path,
            "query_string": query,
            "headers": [(b"host", b"127.0.0.1:8787"), *head],
            "state": {},
        }
        pending = list(chunks)
        done = anyio.Event()
        status: int | None = None
        answer_headers: dict[str, str] = {}
        out: list[bytes] = []

        async def receive() -> Message:
            if pending:
                chunk = pending.pop(0)
                return {"type": "http.request", "body": chunk, "more_body": bool(pending)}
            await done.wait()
            return {"type": "http.disconnect"}

        async def send(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                for name, value in message.get("headers", []):
                    answer_headers[name.decode("latin-1")] = value.decode("latin-1")
            elif message["type"] == "http.response.body":
                out.append(message.get("body", b""))
                if not message.get("more_body", False):
                    done.set()

        raised: BaseException | None = None
        with anyio.fail_after(60):
            try:
                await self.client.app(scope, receive, send)
            except Exception as exc:  # the app let it escape: a 500 whatever was sent
                raised = exc
        return Answer(
            500 if raised or status is None else status, answer_headers, b"".join(out), raised
        )


def assert_promise(answer: Answer, what: object = "") -> None:
    """No 5xx; a 4xx carries the JSON error shape; a 2xx carries JSON."""
    assert answer.raised is None, f"{what}: the app raised {answer.raised!r}"
    assert answer.status < 500, f"{what}: {answer!r}"
    if answer.status >= 400:
        assert answer.headers.get("content-type", "").startswith("application/json"), (
            f"{what}: {answer!r} {answer.headers}"
        )
        body = answer.json()
        assert type(body) is dict and type(body.get("error")) is dict, f"{what}: {answer!r}"
        error = body["error"]
        assert type(error.get("code")) is str and error["code"], f"{what}: {answer!r}"
        assert type(error.get("message")) is str and error["message"], f"{what}: {answer!r}"
        assert b"Traceback" not in answer.body
    elif 200 <= answer.status < 300 and answer.body:
        answer.json()  # valid JSON


def assert_refused(answer: Answer, what: object = "", code: str | None = None) -> None:
    assert_promise(answer, what)
    assert answer.status == 400, f"{what}: expected 400, got {answer!r}"
    if code is not None:
        assert answer.code() == code, f"{what}: expected {code}, got {answer!r}"


def canon(value: Any) -> str:
    """A text that tells apart 1 and 1.0, -0.0 and 0.0, and keeps big integers exact."""
    return json.dumps(value, sort_keys=True)


# -- the apps -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sqlite_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[InProcess]:
    app = InProcess(Settings(db=str(tmp_path_factory.mktemp("adv") / "server.db")))
    yield app
    app.close()


@pytest.fixture(scope="module")
def postgres_app() -> Iterator[InProcess]:
    app = InProcess(Settings(db=fresh_schema_url()))  # skips without PostgreSQL
    yield app
    app.close()


@pytest.fixture(params=["sqlite", "postgres"])
def app(request: pytest.FixtureRequest) -> InProcess:
    found: InProcess = request.getfixturevalue(f"{request.param}_app")
    return found


@pytest.fixture
def ns() -> str:
    """A namespace no other test touches (the apps are shared by the module)."""
    return f"t-{uuid.uuid4().hex[:12]}"


def put_raw(app: InProcess, ns: str, key: str, raw_value: bytes) -> Answer:
    body = b'{"value": ' + raw_value + b"}"
    return app.request("PUT", f"/v1/ns/{ns}/keys/{key_path(key)}", body, [JSON_TYPE])


def read_value(app: InProcess, ns: str, key: str) -> Any:
    """The stored value, parsed exactly; ``KeyError`` if the key is absent."""
    got = app.request("GET", f"/v1/ns/{ns}/keys/{key_path(key)}")
    assert_promise(got, f"GET {key!r}")
    if got.status == 404:
        raise KeyError(key)
    assert got.status == 200, got
    return got.json()["value"]


def list_keys(app: InProcess, ns: str) -> list[str]:
    got = app.request("GET", f"/v1/ns/{ns}/keys")
    assert got.status == 200, got
    keys: list[str] = got.json()["keys"]
    return keys


# -- 1. hypothesis: hostile requests over every route ---------------------------------

ROUTES: list[tuple[str, tuple[str, ...], str]] = [
    ("/v1/ns/{ns}/keys/{key}", ("GET", "PUT", "DELETE"), "item"),
    ("/v1/ns/{ns}/keys", ("GET", "DELETE"), "keys"),
    ("/v1/ns/{ns}/batch", ("POST",), "batch"),
    ("/v1/ns/{ns}/incr/{key}", ("POST",), "incr"),
    ("/v1/ns/{ns}/append/{key}", ("POST",), "append"),
    ("/v1/ns/{ns}/touch/{key}", ("POST",), "touch"),
    ("/v1/ns/{ns}/stats", ("GET",), "stats"),
    ("/v1/ns/{ns}/changes", ("GET",), "changes"),
    ("/memory/{ns}/{key}", ("GET", "PUT", "DELETE"), "compat_item"),
    ("/memory/{ns}", ("GET",), "compat_list"),
]
HTTP_METHODS = ["GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"]
ALL_METHODS = [*HTTP_METHODS, "BREW"]  # uvicorn's parser knows no BREW: in-process only
OP_NAMES = [
    "get",
    "put",
    "delete",
    "incr",
    "append",
    "touch",
    "list",
    "scan",
    "count",
    "clear",
    "stats",
    "changes",
]

BIG = "k" * 100_000
# Path segments as they travel: ASCII, escapes left as they are (valid or not).
HOSTILE_SEGMENTS = [
    "%FF",
    "%FE",
    "%C0%AF",
    "%ED%A0%80",
    "%F4%90%80%80",
    "%E2%82",
    "%80",
    "%EF%BF%BD",
    "%00",
    "%0A",
    "%0D%0A",
    "%7F",
    "%C2%85",
    "%25",
    "%25FF",
    "%2F",
    "%2E%2E",
    "..",
    ".",
    "%",
    "%zz",
    "%4",
    "%C2%B2",
    "%D9%A1%D9%A2",
    "%EF%BC%91",
    "a%2F..%2Fb",
    "a/../b",
    "./a",
    "a/",
    "/",
    "",
    "k" * 600,
    "%E2%80%AE",
    "%F0%9F%98%80",
    "%EF%BB%BF",
    "!tokens",
    "%21health",
    "9223372036854775808",
    "18446744073709551616",
    "-0",
    "1e400",
    "%20",
    "+",
    "a+b",
    ";",
    "a;b=c",
    "@",
    ":",
    "a",
    "x",
]
NUMBER_TEXTS = [
    "²",
    "١٢",
    "\uff11",
    "9" * 5000,
    "-1",
    "0",
    "1",
    "10000",
    "10001",
    "2**63",
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "00000000000000000001",
    "+1",
    " 1",
    "1 ",
    "1.0",
    "1e3",
    "0x10",
    "",
]
QUERY_VALUES = [quote(text, safe="") for text in NUMBER_TEXTS] + [
    "%FF",
    "%C0%AF",
    "%ED%A0%80",
    "%EF%BF%BD",
    "%00",
    "%zz",
    "%",
    "+1",
    "a+b",
    "k" * 600,
]
INT_BOUNDARIES = [
    0,
    1,
    -1,
    2**31 - 1,
    2**31,
    2**32,
    2**53 + 1,
    INT64_MAX,
    2**63,
    -(2**63),
    -(2**63) - 1,
    2**64 - 1,
    2**64,
    -(2**64),
    -9999999999999999999,
    99999999999999999999,
]


@dataclass(frozen=True)
class Raw:
    """JSON text put into a body as it is (numbers past any float, invalid strings)."""

    text: bytes


RAW_NUMBERS = [
    Raw(text)
    for text in (
        b"1e308",
        b"1e400",
        b"-1e400",
        b"-0.0",
        b"-0",
        b"0.1e-400",
        b"5e-324",
        b"1E+2",
        b"1" * 5000,
        b"-" + b"9" * 5000,
        b"1" * 30,
        b"1.0000000000000000000001",
        b"9223372036854775807.0",
        b"18446744073709551616e0",
        b"NaN",
        b"Infinity",
        b"-Infinity",
        b"01",
        b"1.",
        b".5",
        b"+1",
        b"0x10",
    )
]
RAW_STRINGS = [
    Raw(text)
    for text in (
        b'"\\ud800"',
        b'"\\udfff\\ud800"',
        b'"\xff"',
        b'"\xed\xa0\x80"',
        b'"\xc0\xaf"',
        b'"a\\u0000b"',
        b'"\\u0000"',
        b'"\xef\xbf\xbd"',
        b'"' + b"x" * 100_000 + b'"',
        b'"\\u00b2"',
    )
]

numbers = st.one_of(
    st.sampled_from(INT_BOUNDARIES),
    st.integers(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(RAW_NUMBERS),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    numbers,
    st.text(max_size=20),
    st.sampled_from(RAW_STRINGS),
)
trees = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
key_texts = st.one_of(
    st.text(max_size=16),
    st.sampled_from(["k", "a", "..", "²", "\ufffd", "a/b", "k" * 513, "", "\x00", "\u2028"]),
    st.sampled_from(RAW_STRINGS),
    numbers,
)
ttls = st.one_of(
    st.none(),
    numbers,
    st.sampled_from([0, -1, 1e-300, 5e-324, 31_536_000_000, 31_536_000_000.001, 1e308, "60"]),
)
counts = st.one_of(st.none(), numbers, st.sampled_from([0, 1, INT64_MAX, 2**63, 2**64 - 1]))

any_ops = st.fixed_dictionaries(
    {"op": st.one_of(st.sampled_from(OP_NAMES), st.sampled_from(OP_NAMES), trees)},
    optional={
        "key": key_texts,
        "value": trees,
        "by": numbers,
        "items": st.one_of(st.lists(trees, max_size=4), trees),
        "max_len": counts,
        "ttl": ttls,
        "new_ttl": ttls,
        "if_version": counts,
        "refresh": trees,
        "prefix": key_texts,
        "after": key_texts,
        "limit": counts,
        "since": counts,
    },
)
simple_keys = st.one_of(
    st.sampled_from(["k", "c", "l", "²", "\ufffd", "a/b", "..", "%FF"]),
    st.text(min_size=1, max_size=8),
)
# Per op: the fields it needs, then the fields it may take (hostile values in both).
OP_FIELDS: dict[str, tuple[dict[str, Any], dict[str, Any]]] = {
    "get": ({"key": simple_keys}, {"refresh": trees}),
    "put": ({"key": simple_keys, "value": trees}, {"ttl": ttls, "if_version": counts}),
    "delete": ({"key": simple_keys}, {"if_version": counts}),
    "incr": ({"key": simple_keys}, {"by": numbers, "ttl": ttls, "new_ttl": ttls}),
    "append": (
        {"key": simple_keys, "items": st.lists(trees, min_size=1, max_size=3)},
        {"max_len": counts, "ttl": ttls, "new_ttl": ttls},
    ),
    "touch": ({"key": simple_keys, "ttl": ttls}, {}),
    "list": ({}, {"prefix": simple_keys, "after": simple_keys, "limit": counts}),
    "scan": ({}, {"prefix": simple_keys, "after": simple_keys, "limit": counts}),
    "count": ({}, {"prefix": simple_keys}),
    "clear": ({}, {"prefix": simple_keys}),
    "stats": ({}, {}),
    "changes": ({}, {"since": counts, "limit": counts}),
}
well_formed_ops = st.sampled_from(OP_NAMES).flatmap(
    lambda name: st.fixed_dictionaries(
        {"op": st.just(name), **OP_FIELDS[name][0]}, optional=OP_FIELDS[name][1]
    )
)
ops = st.one_of(well_formed_ops, well_formed_ops, any_ops)


def body_shapes(kind: str, method: str) -> st.SearchStrategy[Any]:
    """A JSON value shaped for the route, its fields hostile."""
    if kind == "item" and method == "PUT":
        return st.fixed_dictionaries(
            {"value": trees}, optional={"ttl": ttls, "if_version": counts, "junk": trees}
        )
    if kind == "incr":
        return st.fixed_dictionaries(
            {}, optional={"by": numbers, "ttl": ttls, "new_ttl": ttls, "op": trees, "key": trees}
        )
    if kind == "append":
        return st.fixed_dictionaries(
            {"items": st.one_of(st.lists(trees, min_size=1, max_size=4), trees)},
            optional={"max_len": counts, "ttl": ttls, "new_ttl": ttls},
        )
    if kind == "touch":
        return st.fixed_dictionaries({}, optional={"ttl": ttls})
    if kind == "batch":
        return st.fixed_dictionaries(
            {"ops": st.one_of(st.lists(ops, max_size=6), st.lists(ops, max_size=1), trees)}
        )
    if kind == "compat_item" and method == "PUT":
        return st.fixed_dictionaries({"value": st.one_of(st.text(), trees)})
    return trees


def dump(value: Any, ascii_only: bool) -> bytes:
    """JSON bytes of ``value``, with :class:`Raw` parts written verbatim."""
    if isinstance(value, Raw):
        return value.text
    if type(value) is dict:
        items = (
            json.dumps(k, ensure_ascii=ascii_only).encode() + b":" + dump(v, ascii_only)
            for k, v in value.items()
        )
        return b"{" + b",".join(items) + b"}"
    if type(value) is list:
        return b"[" + b",".join(dump(v, ascii_only) for v in value) + b"]"
    return json.dumps(value, ensure_ascii=ascii_only).encode()


GARBAGE_BODIES = [
    b"",
    b"null",
    b"{",
    b"[" * 5000 + b"]" * 5000,
    b'{"value": ' + b"[" * 300 + b"1" * 19 + b"]" * 300 + b"}",
    b'{"value": ' + b"1" * 5000 + b"}",
    b"\xef\xbb\xbf" + b'{"value": 1}',
    b"\xef\xbb\xbf" + b'{"value": 1234567890123456789}',
    '{"value": 1}'.encode("utf-16"),
    b'{"value": 1, "value": 99999999999999999999}',
    b'{"ops": [{"op": "put", "key": "k", "value": 1}], "ops": 7}',
]

# What a header value may hold on the wire: latin-1 without control characters.
header_chars = st.characters(codec="latin-1", exclude_categories=["Cc"])
wire_text = st.text(alphabet=header_chars, max_size=40).map(lambda s: s.encode("latin-1"))
if_match_values = st.one_of(
    st.sampled_from([f'"{text}"'.encode() for text in NUMBER_TEXTS]),
    st.sampled_from([b"*", b'W/"1"', b'"1", "2"', b'"', b'""', b"banana", b'"-0"', b"W/"]),
    wire_text,
)
content_types = st.one_of(
    st.just(b"application/json"),
    st.just(b"application/json"),
    st.just(b"application/json"),
    st.sampled_from(
        [
            b"application/json; charset=utf-8",
            b"APPLICATION/JSON",
            b"application/problem+json",
            b"application/jsonx",
            b"text/plain",
            b"",
            b";",
            b"application/json; charset=utf-16",
            b"+json",
        ]
    ),
    wire_text,
)
content_lengths = st.sampled_from(
    [b"-1", b"+5", b"\xd9\xa3", b"9" * 30, b"9223372036854775808", b"abc", b" 5 ", b"5, 5", b""]
)


def segment(max_random: int = 12) -> st.SearchStrategy[str]:
    """A hostile path segment: escapes valid or not, dot segments, long, unicode."""
    piece = st.one_of(
        st.sampled_from(HOSTILE_SEGMENTS),
        st.binary(min_size=1, max_size=6).map(lambda b: "".join(f"%{x:02X}" for x in b)),
        st.text(min_size=1, max_size=max_random).map(lambda s: quote(s, safe="")),
        st.text(min_size=1, max_size=max_random).map(lambda s: quote(s, safe="/;:@+$,")),
    )
    return st.lists(piece, min_size=1, max_size=3).map("".join)


namespaces = st.one_of(
    st.sampled_from(["a", "x", "ns-1", "a.b", "user:1@host", "n" * 128, "n" * 129]),
    st.sampled_from(["a", "x"]),
    st.from_regex(r"[A-Za-z0-9._\-:@]{1,10}", fullmatch=True),
    segment(),
)
keys = st.one_of(
    st.sampled_from(["k", "c", "l", "a%2Fb", "%C2%B2", "%EF%BF%BD"]),
    st.text(min_size=1, max_size=12).map(lambda s: quote(s, safe="")),
    segment(),
    segment(),
)
query_pairs = st.tuples(
    st.one_of(
        st.sampled_from(["limit", "since", "prefix", "after"]),
        st.sampled_from(["limit", "since", "prefix", "after"]),
        st.text(max_size=6).map(lambda s: quote(s, safe="")),
    ),
    st.one_of(st.sampled_from(QUERY_VALUES), segment(8), st.none()),
)
queries = st.lists(query_pairs, max_size=4).map(
    lambda pairs: (
        ""
        if not pairs
        else "?" + "&".join(name if value is None else f"{name}={value}" for name, value in pairs)
    )
)


@dataclass
class Req:
    method: str
    target: str
    kind: str
    headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    body: bytes | list[bytes] = b""

    @property
    def body_bytes(self) -> bytes:
        return self.body if isinstance(self.body, bytes) else b"".join(self.body)


def one_in(draw: st.DrawFn, n: int) -> bool:
    """True about once in ``n`` draws, and False in the simplest example (``st.integers``
    leans on its low end; ``sampled_from`` does not, but it shrinks to its first element)."""
    return draw(st.sampled_from(range(n))) == n - 1


@st.composite
def requests(draw: st.DrawFn, live: bool = False) -> Req:
    template, methods, kind = draw(st.sampled_from(ROUTES))
    method = draw(
        st.one_of(
            st.sampled_from(methods),
            st.sampled_from(methods),
            st.sampled_from(HTTP_METHODS if live else ALL_METHODS),
        )
    )
    key = BIG if not live and one_in(draw, 20) else draw(keys)
    target = template.format(ns=draw(namespaces), key=key) + draw(queries)
    headers: list[tuple[bytes, bytes]] = []
    writes = method in ("PUT", "POST")
    if writes or draw(st.booleans()):
        headers.append((b"content-type", draw(content_types)))
    for name, values in (
        (b"if-match", if_match_values),
        (b"if-none-match", if_match_values),
        (b"idempotency-key", st.one_of(wire_text, st.sampled_from([b"k", b"x" * 255, b"x" * 256]))),
        (b"authorization", st.one_of(wire_text, st.just(b"Bearer bw_" + b"a" * 600 + b"_x"))),
        (b"accept", wire_text),
    ):
        if one_in(draw, 5):
            headers.append((name, draw(values)))
    shape = draw(st.sampled_from(range(10)))
    if shape == 9:
        body = draw(st.one_of(st.sampled_from(GARBAGE_BODIES), st.binary(max_size=64)))
    elif shape == 8:
        body = dump(draw(trees), draw(st.booleans()))
    elif shape <= 5 or writes:
        body = dump(draw(body_shapes(kind, method)), draw(st.booleans()))
    else:
        body = b""
    if not live and one_in(draw, 12):
        headers.append((b"content-length", draw(content_lengths)))
    chunked: bytes | list[bytes] = body
    if not live and len(body) > 2 and one_in(draw, 6):
        cut = draw(st.integers(1, len(body) - 1))
        chunked = [body[:cut], body[cut:]]  # no Content-Length: streamed
    return Req(method, target, kind, headers, chunked)


def _utf8(raw: bytes) -> bool:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def check_request(app: InProcess, req: Req) -> None:
    """Send ``req``; check the promise and, where the answer says it stored, exactness."""
    answer = app.request(req.method, req.target, req.body, req.headers)
    assert_promise(answer, req)
    raw_path, _, query = req.target.partition("?")
    declared = [v for k, v in req.headers if k == b"content-length"]
    honest_length = not declared or declared == [str(len(req.body_bytes)).encode()]
    if honest_length and len(req.body_bytes) <= MAX_BODY:
        if not _utf8(unquote_to_bytes(raw_path)):
            assert_refused(answer, req, "invalid_name")
            return
        if not _utf8(unquote_to_bytes(query.replace("+", " "))):
            assert_refused(answer, req)
            return
    if answer.status == 200 and req.method == "PUT":
        check_stored(app, req, answer)


def check_stored(app: InProcess, req: Req, answer: Answer) -> None:
    """A 200 PUT stored the key named in the path, and the value sent, exactly."""
    path = unquote(req.target.partition("?")[0])
    try:
        sent = json.loads(req.body_bytes)
    except (ValueError, RecursionError):
        return  # Python's parser does not take it: no reference to compare with
    if req.kind == "item":
        matched = re.fullmatch(r"/v1/ns/([^/]+)/keys/([\s\S]+)", path)
        assert matched, path
        ns, key = matched.groups()
        assert answer.json()["key"] == key, (req, answer)
        if sent.get("ttl") is None:
            assert canon(read_value(app, ns, key)) == canon(sent["value"]), req
    elif req.kind == "compat_item":
        matched = re.fullmatch(r"/memory/([^/]+)/([\s\S]+)", path)
        assert matched, path
        ns, key = matched.groups()
        assert answer.json()["key"] == key, (req, answer)
        got = app.request("GET", f"/memory/{ns}/{key_path(key)}")
        assert got.status == 200, got
        assert got.json()["value"] == sent["value"], req


FUZZ = settings(
    deadline=None,
    database=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.large_base_example,
    ],
)


@settings(FUZZ, max_examples=400)
@given(req=requests())
def test_hostile_requests_sqlite(sqlite_app: InProcess, req: Req) -> None:
    """Promise: any request (route, method, path, query, headers, body) gets a valid answer or
    a 4xx in the JSON error shape, never a 5xx; what a 200 PUT stored reads back exactly."""
    check_request(sqlite_app, req)


@settings(FUZZ, max_examples=120)
@given(req=requests())
def test_hostile_requests_postgres(postgres_app: InProcess, req: Req) -> None:
    """Promise: as on SQLite, on PostgreSQL too (its integers stop at bigint): no 5xx, the
    JSON error shape, exact values."""
    check_request(postgres_app, req)


@settings(FUZZ, max_examples=120)
@given(
    body=st.fixed_dictionaries({"ops": st.lists(ops, min_size=1, max_size=5)}), ascii=st.booleans()
)
def test_hostile_batches(app: InProcess, body: dict[str, Any], ascii: bool) -> None:
    """Promise: a batch of any ops with hostile fields is answered (a result per op) or
    refused with a 4xx in the JSON error shape; never a 5xx."""
    answer = app.request("POST", "/v1/ns/batchfuzz/batch", dump(body, ascii), [JSON_TYPE])
    assert_promise(answer, body)
    if answer.status == 200:  # a result per op, each of the type the client checks for
        sent = json.loads(dump(body, ascii))["ops"]
        results = answer.json()["results"]
        assert len(results) == len(sent)
        for op, result in zip(sent, results, strict=True):
            result_from_json(op_from_json(op), result)


@pytest.fixture(scope="module")
def token_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[InProcess, str]]:
    """An app in token mode, and a token for namespaces ``a`` and ``x*``."""
    db = tmp_path_factory.mktemp("adv-token") / "server.db"
    app = InProcess(Settings(db=str(db), auth="token"))
    secret, _ = app.client.app.state.tokens.create(["a", "x*"])  # type: ignore[attr-defined]
    yield app, secret
    app.close()


@settings(FUZZ, max_examples=80)
@given(
    req=requests(),
    auth=st.one_of(
        st.sampled_from(["good", "good-lower", "good-spaces", "good-cut", "good-twice"]),
        wire_text,
        st.text(alphabet=header_chars).map(lambda s: "Bearer bw_" + s + "_x"),
    ),
)
def test_hostile_authorization(
    token_app: tuple[InProcess, str], req: Req, auth: str | bytes
) -> None:
    """Promise: in token mode, any Authorization header on any hostile request gets a valid
    answer, or a 4xx (401, 403 among them) in the JSON error shape; never a 5xx."""
    app, secret = token_app
    if auth == "good":
        auth = f"Bearer {secret}"
    elif auth == "good-lower":
        auth = f"bearer {secret}"
    elif auth == "good-spaces":
        auth = f"Bearer   {secret}  "
    elif auth == "good-cut":
        auth = f"Bearer {secret[:-1]}"
    elif auth == "good-twice":
        auth = f"Bearer {secret} {secret}"
    value = auth.encode("latin-1") if isinstance(auth, str) else auth
    headers = [h for h in req.headers if h[0] != b"authorization"] + [(b"authorization", value)]
    answer = app.request(req.method, req.target, req.body, headers)
    assert_promise(answer, (req, value[:80]))


def test_app_still_answers_after_the_fuzz(app: InProcess, ns: str) -> None:
    """Promise: after hostile input the worker still answers, reads and writes."""
    assert app.request("GET", "/healthz").json() == {"ok": True}
    assert put_raw(app, ns, "k", b"9223372036854775807").status == 200
    assert read_value(app, ns, "k") == INT64_MAX


# -- 2. numbers at every boundary of 64 bits, in every position -----------------------

VALUES = [
    -9223372036854775809,
    -9223372036854775808,
    9223372036854775807,
    9223372036854775808,
    18446744073709551615,
    18446744073709551616,
    -9999999999999999999,
    99999999999999999999,
    9007199254740993,  # 2**53 + 1: a float would round it
    -1,
    0,
]
VALUE_POSITIONS: dict[str, Callable[[int], Any]] = {
    "top": lambda n: n,
    "list": lambda n: [n, [n]],
    "object": lambda n: {"n": n, "deep": {"n": n}},
}


@pytest.mark.parametrize("position", [*VALUE_POSITIONS, "batch_put", "append_items"])
@pytest.mark.parametrize("n", VALUES)
def test_integer_values_are_exact_or_refused(
    app: InProcess, ns: str, n: int, position: str
) -> None:
    """Promise: an integer value at any 64-bit boundary, anywhere in a value, is stored and
    read back as exactly that integer, or refused with 400 value_not_serializable."""
    if position == "batch_put":
        expected: Any = n
        body = b'{"ops": [{"op": "put", "key": "k", "value": %d}]}' % n
        answer = app.request("POST", f"/v1/ns/{ns}/batch", body, [JSON_TYPE])
    elif position == "append_items":
        expected = [n, n]
        body = b'{"items": [%d, %d]}' % (n, n)
        answer = app.request("POST", f"/v1/ns/{ns}/append/k", body, [JSON_TYPE])
    else:
        expected = VALUE_POSITIONS[position](n)
        answer = put_raw(app, ns, "k", json.dumps(expected).encode())
    assert_promise(answer, n)
    if answer.status != 200:
        assert_refused(answer, n, "value_not_serializable")
        assert list_keys(app, ns) == []  # nothing stored
        return
    assert canon(read_value(app, ns, "k")) == canon(expected)
    raw = app.request("GET", f"/v1/ns/{ns}/keys/k").body
    assert str(n).encode() in raw  # the very digits, not a float's


@pytest.mark.parametrize("n", VALUES)
def test_incr_by_boundaries(app: InProcess, ns: str, n: int) -> None:
    """Promise: incr ``by`` at a 64-bit boundary gives the exact sum or a 400, and a refusal
    changes nothing."""
    answer = app.request("POST", f"/v1/ns/{ns}/incr/c", b'{"by": %d}' % n, [JSON_TYPE])
    assert_promise(answer, n)
    if answer.status != 200:
        assert_refused(answer, n)
        assert list_keys(app, ns) == []
        return
    assert type(answer.json()["value"]) is int and answer.json()["value"] == n
    assert read_value(app, ns, "c") == n


OVERFLOWS: list[tuple[str, str]] = [
    ("9223372036854775807", "1"),
    ("18446744073709551615", "1"),
    ("18446744073709551614", "1"),
    ("18446744073709551615", "-1"),
    ("18446744073709551615", "9223372036854775807"),
    ("9223372036854775807", "9223372036854775807"),
    ("-9223372036854775808", "-1"),
    ("-9223372036854775808", "-9223372036854775808"),
    ("-9223372036854775807", "-1"),
    ("9007199254740992", "1"),
    ("18446744073709551615", "0.5"),
    ("1e308", "1e308"),
    ("-1e308", "-1e308"),
    ("1.7976931348623157e308", "9223372036854775807"),
]


@pytest.mark.parametrize(("start", "by"), OVERFLOWS)
def test_incr_overflow_is_exact_or_refused(app: InProcess, ns: str, start: str, by: str) -> None:
    """Promise: an incr whose sum leaves 64 bits (or goes infinite) gets a 4xx and leaves the
    counter as it was; any sum it does store is exact."""
    assert put_raw(app, ns, "c", start.encode()).status == 200
    before, step = json.loads(start), json.loads(by)
    exact = before + step
    answer = app.request("POST", f"/v1/ns/{ns}/incr/c", b'{"by": %s}' % by.encode(), [JSON_TYPE])
    assert_promise(answer, (start, by))
    fits = -(2**63) <= exact < 2**64 if type(exact) is int else math.isfinite(exact)
    if answer.status == 200:
        assert canon(answer.json()["value"]) == canon(exact)
        assert canon(read_value(app, ns, "c")) == canon(exact)
    else:
        assert 400 <= answer.status < 500
        assert canon(read_value(app, ns, "c")) == canon(before)  # unchanged
    if not fits:
        assert answer.status != 200, f"{start} + {by} was stored as {answer!r}"


# (field, op, the range it takes, other fields); None: a number is never right there.
MAX_TTL_INT = 1000 * 365 * 86400
BATCH_FIELDS: list[tuple[str, str, tuple[int, int] | None, dict[str, Any]]] = [
    ("limit", "list", (1, INT64_MAX), {}),
    ("limit", "scan", (1, INT64_MAX), {}),
    ("since", "changes", (0, INT64_MAX), {}),
    ("limit", "changes", (0, INT64_MAX), {}),  # 0: no changes, the cursor of now
    ("max_len", "append", (1, INT64_MAX), {"key": "l", "items": [1]}),
    ("if_version", "put", (0, INT64_MAX), {"key": "k", "value": 1}),
    ("if_version", "delete", (0, INT64_MAX), {"key": "k"}),
    ("by", "incr", (-(2**63), INT64_MAX), {"key": "c"}),
    ("ttl", "put", (1, MAX_TTL_INT), {"key": "k", "value": 1}),
    ("ttl", "touch", (1, MAX_TTL_INT), {"key": "k"}),
    ("new_ttl", "incr", (1, MAX_TTL_INT), {"key": "c"}),
    ("key", "get", None, {}),
    ("prefix", "list", None, {}),
    ("after", "scan", None, {}),
    ("op", "get", None, {"key": "k"}),
]
BATCH_NUMBERS = [INT64_MAX, 2**63, 2**64 - 1, 2**64, -(2**63), -(2**63) - 1, -1, 0, 1]


@pytest.mark.parametrize("n", BATCH_NUMBERS)
@pytest.mark.parametrize(
    ("name", "op", "allowed", "extra"),
    BATCH_FIELDS,
    ids=[f"{f[1]}.{f[0]}" for f in BATCH_FIELDS],
)
def test_batch_numbers(
    app: InProcess,
    ns: str,
    name: str,
    op: str,
    allowed: tuple[int, int] | None,
    extra: dict[str, Any],
    n: int,
) -> None:
    """Promise: a number at a 64-bit boundary in any field of a batch op is taken as exactly
    that number when in the field's range (answered, never 5xx), and refused with 400 when not."""
    body = json.dumps({"ops": [{**extra, "op": op, name: n}]}).encode()
    answer = app.request("POST", f"/v1/ns/{ns}/batch", body, [JSON_TYPE])
    assert_promise(answer, body)
    if allowed is None or not allowed[0] <= n <= allowed[1]:
        assert_refused(answer, body)
        return
    assert answer.status in (200, 409), answer  # 409: an if_version that does not match
    if answer.status == 200 and op == "changes" and name == "since":
        assert answer.json()["results"][0]["next"] == n  # the cursor, exactly
    if answer.status == 200 and op == "incr" and name == "by":
        assert answer.json()["results"] == [n]


QUERY_NUMBERS = [
    "9223372036854775807",
    "9223372036854775808",
    "18446744073709551615",
    "18446744073709551616",
    "-1",
    "0",
    "1",
    "10000",
    "10001",
    "%C2%B2",
    "%D9%A1%D9%A2",
    "%EF%BC%91",
    "9" * 5000,
    "1" + "0" * 4999,
    "0000000000000000001",
    "00000000000000000001",
    "2**63",
    "+1",
    "%2B1",
    "%201",
    "1.0",
    "1e3",
    "0x10",
    "",
]
QUERY_PARAMS = [
    ("/v1/ns/{ns}/keys", "limit", 1, 10_000),
    ("/v1/ns/{ns}/changes", "since", 0, INT64_MAX),
    ("/v1/ns/{ns}/changes", "limit", 0, 10_000),  # 0: no changes, the cursor of now
    ("/memory/{ns}", "limit", 1, 10_000),
]


@pytest.mark.parametrize("raw", QUERY_NUMBERS, ids=lambda r: r[:24])
@pytest.mark.parametrize(
    ("route", "param", "low", "high"), QUERY_PARAMS, ids=[f"{q[0]}?{q[1]}" for q in QUERY_PARAMS]
)
def test_query_numbers(
    app: InProcess, ns: str, route: str, param: str, low: int, high: int, raw: str
) -> None:
    """Promise: a query number is ASCII digits within its range, or 400; never a 5xx, never a
    number read from '²', '١٢' or 5,000 digits."""
    answer = app.request("GET", route.format(ns=ns) + f"?{param}={raw}")
    assert_promise(answer, raw)
    text = unquote(raw.replace("+", " "))
    digits = re.fullmatch(r"[0-9]+", text) is not None
    value = int(text) if digits and len(text.lstrip("0")) <= 20 else None
    if value is None or not low <= value <= high:
        assert_refused(answer, raw)
    elif len(text) <= 19:
        assert answer.status == 200, answer
        if param == "since":
            assert answer.json()["next"] == value
    # else: a zero-padded number past 19 digits may be refused


IF_MATCH = [
    *(f'"{n}"' for n in BATCH_NUMBERS),
    f'"{2**64}"',
    '"²"',
    '"١٢"',
    '"\uff11"',
    '"' + "9" * 5000 + '"',
    '"' + "0" * 5000 + '"',
    'W/"9223372036854775807"',
    'W/"9223372036854775808"',
    '"+1"',
    '" 1"',
    '"1.0"',
    "9223372036854775807",
]


@pytest.mark.parametrize("method", ["PUT", "DELETE"])
@pytest.mark.parametrize("tag", IF_MATCH, ids=lambda t: t[:24])
def test_if_match_numbers(app: InProcess, ns: str, method: str, tag: str) -> None:
    """Promise: If-Match carries a version from 0 to 2**63-1 in ASCII digits (answered: a
    write or 409), anything else is 400; a refused write leaves the item as it was."""
    assert put_raw(app, ns, "k", b'"before"').status == 200
    headers = [(b"if-match", tag.encode())]
    body = b""
    if method == "PUT":
        headers.append(JSON_TYPE)
        body = b'{"value": "after"}'
    answer = app.request(method, f"/v1/ns/{ns}/keys/k", body, headers)
    assert_promise(answer, tag)
    matched = re.fullmatch(r'(?:W/)?"([0-9]{1,19})"', tag)
    if matched and int(matched.group(1)) <= INT64_MAX:
        assert answer.status in (200, 409), answer
    else:
        assert_refused(answer, tag)
    if answer.status != 200:
        assert read_value(app, ns, "k") == "before"


@pytest.mark.parametrize("tag", IF_MATCH, ids=lambda t: t[:24])
def test_if_none_match_on_a_read(app: InProcess, ns: str, tag: str) -> None:
    """Promise: any If-None-Match on a GET is answered 200 or 304, never an error."""
    assert put_raw(app, ns, "k", b"1").status == 200
    answer = app.request("GET", f"/v1/ns/{ns}/keys/k", headers=[(b"if-none-match", tag.encode())])
    assert_promise(answer, tag)
    assert answer.status in (200, 304), answer


@pytest.mark.parametrize(
    "declared",
    [
        b"9223372036854775807",
        b"9223372036854775808",
        b"18446744073709551616",
        b"-1",
        b"9" * 5000,
        b"\xc2\xb2",
        b"\xd9\xa1",
        b"1e3",
        b"",
    ],
    ids=lambda d: d[:24].decode("latin-1"),
)
def test_content_length_numbers(app: InProcess, ns: str, declared: bytes) -> None:
    """Promise: a Content-Length that is not a plain number within the body limit is refused
    with a 4xx in the JSON error shape, and nothing is written."""
    headers = [JSON_TYPE, (b"content-length", declared)]
    answer = app.request("PUT", f"/v1/ns/{ns}/keys/k", b'{"value": 1}', headers)
    assert_promise(answer, declared)
    assert 400 <= answer.status < 500, answer
    assert list_keys(app, ns) == []


NUMBER_NAMES = [
    "9223372036854775808",
    "18446744073709551616",
    "-9223372036854775809",
    "-0",
    "1e400",
    "²",
    "١٢",
    "0x10",
    "00",
    "0",
    "NaN",
    "..",
    "%FF",
    "\ufffd",
]


def test_number_like_keys_stay_names(app: InProcess, ns: str) -> None:
    """Promise: keys that look like numbers (or escapes, or '..') are names, kept exactly."""
    for i, key in enumerate(NUMBER_NAMES):
        answer = put_raw(app, ns, key, b"%d" % i)
        assert answer.status == 200, (key, answer)
        assert answer.json()["key"] == key
    assert sorted(list_keys(app, ns)) == sorted(NUMBER_NAMES)
    for i, key in enumerate(NUMBER_NAMES):
        assert read_value(app, ns, key) == i


# -- 3. keys that are not UTF-8 -------------------------------------------------------

NOT_UTF8 = ["%FF", "%FE", "%ED%A0%80", "%C0%AF", "%80", "%E2%82", "%F4%90%80%80", "a%FFb"]


@pytest.mark.parametrize("escape", NOT_UTF8)
def test_keys_that_are_not_utf8_are_refused(app: InProcess, ns: str, escape: str) -> None:
    """Promise: a key whose escapes are not UTF-8 is refused (400 invalid_name) on every key
    route; nothing is stored, and U+FFFD (%EF%BF%BD) is a different, valid key."""
    write = [JSON_TYPE]
    requests_: list[tuple[str, str, bytes]] = [
        ("GET", f"/v1/ns/{ns}/keys/{escape}", b""),
        ("PUT", f"/v1/ns/{ns}/keys/{escape}", b'{"value": 1}'),
        ("DELETE", f"/v1/ns/{ns}/keys/{escape}", b""),
        ("POST", f"/v1/ns/{ns}/incr/{escape}", b'{"by": 1}'),
        ("POST", f"/v1/ns/{ns}/append/{escape}", b'{"items": [1]}'),
        ("POST", f"/v1/ns/{ns}/touch/{escape}", b'{"ttl": 60}'),
        ("GET", f"/memory/{ns}/{escape}", b""),
        ("PUT", f"/memory/{ns}/{escape}", b'{"value": "v"}'),
        ("DELETE", f"/memory/{ns}/{escape}", b""),
        ("PUT", f"/v1/ns/{ns}{escape}/keys/k", b'{"value": 1}'),
    ]
    for method, target, body in requests_:
        answer = app.request(method, target, body, write if body else [])
        assert_refused(answer, (method, target), "invalid_name")
    assert list_keys(app, ns) == []

    # U+FFFD is a key of its own, and the invalid escape does not alias it
    assert app.request("PUT", f"/v1/ns/{ns}/keys/%EF%BF%BD", b'{"value": 2}', write).status == 200
    assert list_keys(app, ns) == ["\ufffd"]
    assert_refused(app.request("GET", f"/v1/ns/{ns}/keys/{escape}"), escape, "invalid_name")
    assert_refused(app.request("DELETE", f"/v1/ns/{ns}/keys/{escape}"), escape, "invalid_name")
    assert read_value(app, ns, "\ufffd") == 2

    # the same escapes in the query string
    for query in (f"prefix={escape}", f"after={escape}", f"prefix=a&after={escape}&limit=5"):
        assert_refused(app.request("GET", f"/v1/ns/{ns}/keys?{query}"), query)
    assert_refused(app.request("DELETE", f"/v1/ns/{ns}/keys?prefix={escape}"), escape)
    assert_refused(app.request("GET", f"/memory/{ns}?limit=1&x={escape}"), escape)
    assert list_keys(app, ns) == ["\ufffd"]  # the refused clear deleted nothing
    got = app.request("GET", f"/v1/ns/{ns}/keys?prefix=%EF%BF%BD")
    assert got.status == 200 and got.json()["keys"] == ["\ufffd"]


@pytest.mark.parametrize(
    "raw_key",
    [b'"\xff"', b'"\xed\xa0\x80"', b'"\\ud800"', b'"a\\udfffb"', b'"\xc0\xaf"'],
    ids=["ff", "cesu-surrogate", "escaped-surrogate", "escaped-low-surrogate", "overlong"],
)
def test_batch_keys_that_are_not_utf8_are_refused(app: InProcess, ns: str, raw_key: bytes) -> None:
    """Promise: a key in a JSON body that is not valid UTF-8 (raw bytes or a lone surrogate
    escape) is refused with 400 on every op, and nothing is stored."""
    for op in ("put", "get", "delete", "incr", "append", "touch"):
        body = b'{"ops": [{"op": "%s", "key": %s, "value": 1, "items": [1], "ttl": 5}]}' % (
            op.encode(),
            raw_key,
        )
        assert_refused(app.request("POST", f"/v1/ns/{ns}/batch", body, [JSON_TYPE]), body)
    for name in (b"prefix", b"after"):
        body = b'{"ops": [{"op": "list", "%s": %s}]}' % (name, raw_key)
        assert_refused(app.request("POST", f"/v1/ns/{ns}/batch", body, [JSON_TYPE]), body)
    assert list_keys(app, ns) == []


# -- bugs this suite found (fixed; kept as regression tests) -----------------------------


@pytest.mark.parametrize("app", ["sqlite", "postgres"], indirect=True)
def test_idempotency_key_with_nul(app: InProcess, ns: str) -> None:
    """Promise: any Idempotency-Key an ASGI server passes on is answered or refused with a
    4xx, never a 5xx (uvicorn's parser stops NUL, but the app must not rely on it)."""
    for route, body in (
        (f"/v1/ns/{ns}/incr/c", b'{"by": 1}'),
        (f"/v1/ns/{ns}/batch", b'{"ops": [{"op": "incr", "key": "c"}]}'),
    ):
        answer = app.request("POST", route, body, [JSON_TYPE, (b"idempotency-key", b"a\x00b")])
        assert_promise(answer, route)


# -- 4. a real server with two workers ------------------------------------------------


def _children(pid: int) -> set[int]:
    """The pids whose parent is ``pid`` (Linux /proc)."""
    found: set[int] = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[-1].split()
        if len(fields) > 1 and int(fields[1]) == pid:
            found.add(int(entry.name))
    return found


@pytest.fixture
def live(tmp_path: Path) -> Iterator[LiveServer]:
    server = LiveServer(tmp_path / "live.db", workers=2)
    server.start()
    try:
        yield server
    finally:
        server.stop()


LIVE_SAMPLE: list[tuple[str, str, bytes, list[tuple[bytes, bytes]]]] = [
    ("PUT", "/v1/ns/a/keys/%FF", b'{"value": 1}', [JSON_TYPE]),
    ("GET", "/v1/ns/a/keys/%C0%AF", b"", []),
    ("DELETE", "/v1/ns/a/keys/%ED%A0%80", b"", []),
    ("GET", "/v1/ns/a/keys?prefix=%FE", b"", []),
    ("GET", "/v1/ns/a/keys?limit=%C2%B2", b"", []),
    ("GET", "/v1/ns/a/changes?since=" + "9" * 5000, b"", []),
    ("GET", "/v1/ns/a/changes?since=18446744073709551615", b"", []),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 18446744073709551616}', [JSON_TYPE]),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": ' + b"1" * 5000 + b"}", [JSON_TYPE]),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1e400}', [JSON_TYPE]),
    ("POST", "/v1/ns/a/incr/c", b'{"by": 9223372036854775808}', [JSON_TYPE]),
    ("PUT", "/v1/ns/a/keys/k", b'{"value": 1}', [JSON_TYPE, (b"if-match", b'"\xc2\xb2"')]),
    (
        "PUT",
        "/v1/ns/a/keys/k",
        b'{"value": 1}',
        [JSON_TYPE, (b"if-match", b'"' + b"9" * 5000 + b'"')],
    ),
    (
        "POST",
        "/v1/ns/a/batch",
        b'{"ops": [{"op": "scan", "limit": 18446744073709551615}]}',
        [JSON_TYPE],
    ),
    (
        "POST",
        "/v1/ns/a/batch",
        b'{"ops": [{"op": "changes", "since": 9223372036854775808}]}',
        [JSON_TYPE],
    ),
    ("GET", "/v1/ns/a/keys/" + "k" * 60_000, b"", []),
]


@pytest.mark.slow
def test_live_server_survives_hostile_requests(live: LiveServer) -> None:
    """Promise: over a real `botwire serve --workers 2`, hostile requests get a valid answer
    or a 4xx in the JSON error shape, and both workers stay alive and answer."""
    assert live.proc is not None
    workers = _children(live.proc.pid)
    with httpx.Client(base_url=live.url, timeout=30) as http:

        def send(method: str, target: str, body: bytes, headers: Headers) -> None:
            clean = [(name, value.strip(b" \t")) for name, value in headers]
            try:
                response = http.request(method, target, content=body, headers=clean)
            except (httpx.LocalProtocolError, httpx.InvalidURL):
                reject()  # httpx will not send it; nothing reached the server
            answer = Answer(response.status_code, dict(response.headers), response.content)
            if method == "HEAD":  # no body comes back
                assert answer.status < 500, (method, target[:200], answer)
                return
            if answer.status == 431:  # the request head is over the server's bound
                assert answer.json()["error"]["code"]
                return
            assert_promise(answer, (method, target[:200]))

        for method, target, body, headers in LIVE_SAMPLE:
            send(method, target, body, headers)

        @settings(FUZZ, max_examples=60)
        @given(req=requests(live=True))
        def fuzz(req: Req) -> None:
            send(req.method, req.target, req.body_bytes, req.headers)

        fuzz()
    for _ in range(8):  # fresh connections, so the kernel spreads them over the workers
        response = httpx.get(live.url + "/healthz", timeout=10, headers={"connection": "close"})
        assert response.status_code == 200 and response.json() == {"ok": True}
    assert live.proc.poll() is None
    assert _children(live.proc.pid) >= workers, "a worker died (and was replaced)"
    assert "Traceback" not in live.log.read_text()


RAW_REFUSED = [
    b"BREW /v1/ns/a/keys/k HTTP/1.1\r\nHost: x\r\n\r\n",
    b"GET /v1/ns/a/keys/k HTTP/1.1\r\nHost: x\r\nIdempotency-Key: a\x01b\r\n\r\n",
    b"GET /v1/ns/a/keys/\xff HTTP/1.1\r\nHost: x\r\n\r\n",
]


@pytest.mark.slow
def test_live_parser_refusals_use_the_json_error_shape(tmp_path: Path) -> None:
    """Promise: every input gets a 4xx in the JSON error shape, also one the HTTP parser
    refuses (an unknown method, a control character in a header, a raw non-ASCII URL)."""
    server = LiveServer(tmp_path / "parser.db", workers=1)
    server.start()
    try:
        for raw in RAW_REFUSED:
            with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
                sock.sendall(raw)
                reply = b""
                while chunk := sock.recv(65536):
                    reply += chunk
            head, _, body = reply.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 4"), reply
            assert b"content-type: application/json" in head.lower(), (raw, reply)
            assert json.loads(body)["error"]["code"]
    finally:
        server.stop()
