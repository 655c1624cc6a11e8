"""The HTTP client against a server that misbehaves on purpose.

Promise under test: whatever a server (or whatever answers at ``url``) does, a
``Memory``/``AsyncMemory`` call fails with a typed :class:`botwire.BotwireError`
subclass (``Unavailable`` when the server cannot be reached or keeps failing,
``BadResponse`` when what answered is not botwire), and within its ``timeout``
plus some slack: a server that drips bytes, hangs or resets cannot hold the
caller. Then the circuit breaker, ``stale_if_error`` and the messages.

The fake server is a plain socket on 127.0.0.1 in daemon threads; each test
picks what it does per connection (a *behaviour*), and the fixture stops it.
"""

from __future__ import annotations

import asyncio
import contextlib
import selectors
import socket
import struct
import threading
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from functools import partial
from http import HTTPStatus
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from botwire import (
    AsyncMemory,
    BadResponse,
    BotwireError,
    Memory,
    StaleReadWarning,
    Unavailable,
    WriteLimitExceeded,
)
from botwire.ops import Get, Record
from botwire.stores import _deadline
from botwire.stores.http import DEFAULT_BREAKER, HttpStore

from ..loopback import Server

TIMEOUT = 2.0
SLACK = 1.5  # a correctness bound, not a benchmark: the machine is shared
FAST = 0.2  # a call the breaker refuses takes less than this
DRIP_EVERY = 0.3
STUCK = TIMEOUT + SLACK + 5  # how long call_all waits before reporting calls as stuck
STUCK_ = "<still running: stuck>"
RECORD = b'{"value": 1, "version": 1, "created_at": 1, "updated_at": 1, "expires_at": null}'


# -- the fake server --------------------------------------------------------------------


@dataclass
class Request:
    method: str
    path: str
    body: bytes


class Peer:
    """One accepted connection, as a behaviour sees it."""

    def __init__(self, sock: socket.socket, server: FakeServer) -> None:
        self.sock = sock
        self.server = server
        self.stop = server.stopping
        self._buffer = b""
        sock.settimeout(0.1)

    def _recv(self) -> bytes | None:
        """Some bytes; ``None`` once the client closed or the server stops (bounded: 30 s)."""
        give_up = time.monotonic() + 30
        while not self.stop.is_set() and time.monotonic() < give_up:
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            return data or None
        return None

    def request(self) -> Request | None:
        """The next request on the connection, or ``None`` (closed, stopping, oversized)."""
        while b"\r\n\r\n" not in self._buffer:
            if len(self._buffer) > 1 << 20 or (data := self._recv()) is None:
                return None
            self._buffer += data
        head, _, rest = self._buffer.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        method, path, _ = lines[0].split(" ", 2)
        length = 0
        for line in lines[1:]:
            name, _, value = line.partition(":")
            if name.strip().lower() == "content-length":
                length = int(value)
        while len(rest) < length:
            if (data := self._recv()) is None:
                return None
            rest += data
        self._buffer = rest[length:]
        self.server.count()
        return Request(method, path, rest[:length])

    def send(self, data: bytes) -> None:
        self.sock.settimeout(5)
        self.sock.sendall(data)

    def drip(self, data: bytes, every: float = DRIP_EVERY) -> None:
        """``data`` one byte at a time, ``every`` seconds apart, until the client gives up."""
        for i in range(len(data)):
            self.send(data[i : i + 1])
            if self.stop.wait(every):
                return

    def reset(self) -> None:
        """Close with an RST instead of a FIN (SO_LINGER 0)."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def pump(self, upstream: socket.socket) -> None:
        """Copy bytes both ways between the client and ``upstream`` until one side closes."""
        self.sock.settimeout(5)
        upstream.settimeout(5)
        with selectors.DefaultSelector() as selector:
            selector.register(self.sock, selectors.EVENT_READ, upstream)
            selector.register(upstream, selectors.EVENT_READ, self.sock)
            while not self.stop.is_set():
                for key, _ in selector.select(0.1):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)


Behaviour = Callable[[Peer], None]


class FakeServer:
    """A listening socket on 127.0.0.1 that runs ``behaviour`` for each connection."""

    def __init__(self, behaviour: Behaviour, port: int = 0) -> None:
        self.behaviour = behaviour
        self.stopping = threading.Event()
        self.requests = 0
        self._lock = threading.Lock()
        self._peers: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._listener = socket.create_server(("127.0.0.1", port))
        self.port: int = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._accepter = threading.Thread(target=self._accept, daemon=True)
        self._accepter.start()

    def count(self) -> None:
        with self._lock:
            self.requests += 1

    def _accept(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self.stopping.is_set():
                if not selector.select(0.05):
                    continue
                try:
                    sock, _ = self._listener.accept()
                except OSError:
                    continue
                thread = threading.Thread(target=self._serve, args=(sock,), daemon=True)
                with self._lock:
                    self._peers.add(sock)
                    self._threads.append(thread)
                thread.start()

    def _serve(self, sock: socket.socket) -> None:
        try:
            self.behaviour(Peer(sock, self))
        except OSError:  # the client went away mid-answer: expected here
            pass
        finally:
            with self._lock:
                self._peers.discard(sock)
            sock.close()

    def close(self) -> None:
        """Stop accepting, cut every connection, wait for the threads (idempotent).

        Afterwards the port refuses connections: the server is down.
        """
        self.stopping.set()
        self._accepter.join(5)
        self._listener.close()
        with self._lock:
            peers, threads = list(self._peers), list(self._threads)
        for sock in peers:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
        for thread in threads:
            thread.join(5)
        assert not any(t.is_alive() for t in [self._accepter, *threads]), "a thread hangs"


@pytest.fixture
def fake() -> Iterator[Callable[..., FakeServer]]:
    """``fake(behaviour, port=0)`` starts a fake server; all of them stop at the end."""
    started: list[FakeServer] = []

    def start(behaviour: Behaviour, port: int = 0) -> FakeServer:
        server = FakeServer(behaviour, port)
        started.append(server)
        return server

    yield start
    for server in started:
        server.close()


def dead_port() -> int:
    """A port on 127.0.0.1 where nothing listens (bound, then released)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- behaviours --------------------------------------------------------------------------


def http_response(
    status: int,
    body: bytes = b"",
    *,
    content_type: str | None = "application/json",
    headers: Mapping[str, str] | None = None,
) -> bytes:
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Whatever"
    lines = [f"HTTP/1.1 {status} {reason}"]
    if content_type is not None:
        lines.append(f"Content-Type: {content_type}")
    lines.append(f"Content-Length: {len(body)}")
    lines.extend(f"{name}: {value}" for name, value in (headers or {}).items())
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def answer(status: int, body: bytes = b"", **options: Any) -> Behaviour:
    """Every request on the connection gets the same answer (keep-alive)."""
    response = http_response(status, body, **options)

    def behave(peer: Peer) -> None:
        while peer.request() is not None:
            peer.send(response)

    return behave


def drip(part: str) -> Behaviour:
    """A valid 200, sent at once up to ``part``, then one byte every 0.3 s."""
    response = http_response(200, b'{"results": [1]}' + b" " * 200)
    split = {
        "everything": 0,
        "headers": response.index(b"\r\n") + 2,  # the status line at once
        "body": response.index(b"\r\n\r\n") + 4,  # the whole head at once
    }[part]

    def behave(peer: Peer) -> None:
        if peer.request() is not None:
            peer.send(response[:split])
            peer.drip(response[split:])

    return behave


def hang(peer: Peer) -> None:
    """Read the request, never answer."""
    if peer.request() is not None:
        peer.stop.wait(60)


def close_at_once(peer: Peer) -> None:
    """Accept, then close without reading anything."""


def reset_after_request(peer: Peer) -> None:
    """Read the request, then an RST."""
    peer.request()
    peer.reset()


def not_http(peer: Peer) -> None:
    """Something else listens on the port (an SSH banner)."""
    if peer.request() is not None:
        peer.send(b"SSH-2.0-OpenSSH_9.6\r\n")


def forward(port: int) -> Behaviour:
    """A TCP proxy to 127.0.0.1:``port``."""

    def behave(peer: Peer) -> None:
        with socket.create_connection(("127.0.0.1", port), timeout=5) as upstream:
            peer.pump(upstream)

    return behave


# -- the client under test ---------------------------------------------------------------

SYNC_CALLS: dict[str, Callable[[Memory], object]] = {
    "get": lambda m: m.get("k"),
    "set": lambda m: m.set("k", {"v": 1}),
    "incr": lambda m: m.incr("n"),
    "get_many": lambda m: m.get_many(["a", "b"]),
    "list_keys": lambda m: m.list_keys("p"),
}
ASYNC_CALLS: dict[str, Callable[[AsyncMemory], Awaitable[object]]] = {
    "get": lambda m: m.get("k"),
    "set": lambda m: m.set("k", {"v": 1}),
    "incr": lambda m: m.incr("n"),
    "get_many": lambda m: m.get_many(["a", "b"]),
    "list_keys": lambda m: m.list_keys("p"),
}


@dataclass
class Outcome:
    call: str
    error: Exception | None
    result: object
    seconds: float

    def __str__(self) -> str:
        what = f"raised {self.error!r:.300}" if self.error else f"returned {self.result!r}"
        return f"{self.call} {what} after {self.seconds:.2f} s"


@dataclass
class Target:
    """Where a group of calls goes: a label for messages, a server URL, a namespace."""

    label: str
    url: str
    namespace: str = "ns"


def _timed(call: str, run: Callable[[], object]) -> Outcome:
    start = time.monotonic()
    try:
        result = run()
    except Exception as exc:
        return Outcome(call, exc, None, time.monotonic() - start)
    return Outcome(call, None, result, time.monotonic() - start)


async def _atimed(call: str, run: Callable[[], Awaitable[object]]) -> Outcome:
    start = time.monotonic()
    try:
        result = await run()
    except Exception as exc:
        return Outcome(call, exc, None, time.monotonic() - start)
    return Outcome(call, None, result, time.monotonic() - start)


def call_all(targets: list[Target], calls: set[str] | None = None, **options: Any) -> list[Outcome]:
    """Each call of ``calls`` on each target through ``Memory`` and ``AsyncMemory``, all at once.

    ``Memory("ns", url=..., timeout=2, cache=False)`` unless ``options`` say
    otherwise. The sync calls of one URL share its store (the registry's), the
    async ones a store of their own (URL + ``/async``, a path the fake server
    ignores): all start together, so each passes the breaker check and meets the
    fault itself. Clients are built before the clock starts: what is timed is
    the call.
    """
    options = {"timeout": TIMEOUT, "cache": False, **options}
    names = sorted(calls or SYNC_CALLS)
    memories = [Memory(t.namespace, url=t.url, **options) for t in targets]
    ready = threading.Event()

    async def async_all() -> list[Outcome]:
        async with contextlib.AsyncExitStack() as stack:
            amemories = []
            for target in targets:
                amemory = AsyncMemory(target.namespace, url=f"{target.url}/async", **options)
                stack.push_async_callback(amemory.close)
                amemories.append(amemory)
                store: Any = amemory.store
                http_store: HttpStore = getattr(store, "origin", store)
                await http_store._async_client()  # built now, not in the timed call
            ready.set()
            return list(
                await asyncio.gather(
                    *(
                        _atimed(f"{t.label}: AsyncMemory.{n}", partial(ASYNC_CALLS[n], m))
                        for t, m in zip(targets, amemories, strict=True)
                        for n in names
                    )
                )
            )

    pool = ThreadPoolExecutor(max_workers=len(targets) * len(names) + 1)
    try:
        asynced = pool.submit(asyncio.run, async_all())
        ready.wait(30)
        synced = {
            pool.submit(_timed, f"{t.label}: Memory.{n}", partial(SYNC_CALLS[n], m)): (t, n)
            for t, m in zip(targets, memories, strict=True)
            for n in names
        }
        # Bounded: a call the deadline failed to stop shows up as an outcome, not a hang.
        futures: list[Future[Any]] = [asynced, *synced]
        done, _ = wait(futures, timeout=STUCK)
        outcomes = [
            f.result() if f in done else Outcome(f"{t.label}: Memory.{n}", None, STUCK_, STUCK)
            for f, (t, n) in synced.items()
        ]
        if asynced in done:
            return outcomes + asynced.result()
        return [*outcomes, Outcome("AsyncMemory calls", None, STUCK_, STUCK)]
    finally:
        pool.shutdown(wait=False)  # a stuck call ends when its fake server stops
        for memory in memories:
            memory.close()


def call_one_server(
    behaviours: Mapping[str, Behaviour],
    fake: Callable[..., FakeServer],
    calls: set[str] | None = None,
    **options: Any,
) -> list[Outcome]:
    """:func:`call_all` with one fake server per behaviour (so one store, one breaker each)."""
    targets = [Target(label, fake(behaviour).url) for label, behaviour in behaviours.items()]
    return call_all(targets, calls, **options)


def assert_all_fail(
    outcomes: list[Outcome], expected: type[BotwireError], within: float = TIMEOUT + SLACK
) -> None:
    """Each call raised ``expected`` (a BotwireError subclass) in under ``within`` seconds."""
    assert outcomes
    wrong = [
        str(o)
        for o in outcomes
        if not isinstance(o.error, expected)
        or not isinstance(o.error, BotwireError)
        or o.seconds >= within
    ]
    assert not wrong, f"expected {expected.__name__} within {within} s:\n" + "\n".join(wrong)


# -- faults that must end as Unavailable within the deadline ----------------------------

SILENT: dict[str, Behaviour] = {
    "drip everything": drip("everything"),
    "drip the headers": drip("headers"),
    "drip the body": drip("body"),
    "hang": hang,
}
BROKEN: dict[str, Behaviour] = {
    "close at once": close_at_once,
    "RST after the request": reset_after_request,
    "not HTTP": not_http,
}
FAILING: dict[str, Behaviour] = {
    "503 forever": answer(503, b"Service Unavailable", content_type="text/plain"),
    "503 forever, botwire's JSON": answer(
        503, b'{"error": {"code": "unavailable", "message": "draining"}}'
    ),
    **{
        f"503, Retry-After {value[:12]!r}": answer(
            503, b"", content_type=None, headers={"Retry-After": value}
        )
        for value in ["²", "-1", "1e9", "9" * 5000, "999999999", "Wed, 21 Oct 2015 07:28:00 GMT"]
    },
}


def test_a_server_that_drips_or_hangs_gives_unavailable_within_the_timeout(
    fake: Callable[..., FakeServer],
) -> None:
    """Drip (from the status line, after it, after the head) and hang: ``Unavailable`` within
    timeout + slack. Drip is what the socket deadline is for: each byte comes well within
    httpx's per-read timeout, so only a whole-call deadline stops it (~15 s otherwise)."""
    assert_all_fail(call_one_server(SILENT, fake), Unavailable)


def test_a_server_that_resets_or_is_not_http_gives_unavailable_within_the_timeout(
    fake: Callable[..., FakeServer],
) -> None:
    """Accept-and-close, an RST after the request, an SSH banner: retried within the budget,
    then ``Unavailable``."""
    assert_all_fail(call_one_server(BROKEN, fake), Unavailable)


def test_503_forever_gives_unavailable_within_the_timeout_whatever_its_retry_after(
    fake: Callable[..., FakeServer],
) -> None:
    """503 on every request, with or without botwire's JSON, with a ``Retry-After`` that is
    not a small number of seconds (``²``, ``-1``, ``1e9``, 5000 digits, a date, one past
    the budget): ``Unavailable`` within the timeout, never a ``ValueError``, never a sleep
    past the deadline."""
    assert_all_fail(call_one_server(FAILING, fake), Unavailable)


def test_retry_after_zero_is_retried_within_the_timeout(fake: Callable[..., FakeServer]) -> None:
    """``Retry-After: 0`` on every 503 (no pause at all between attempts): the budget still
    ends the call with ``Unavailable`` (the attempt cap bounds the requests)."""
    server = fake(answer(503, b"", content_type=None, headers={"Retry-After": "0"}))
    assert_all_fail(call_all([Target("Retry-After 0", server.url)], {"get"}), Unavailable)
    assert server.requests <= 2 * 1000  # at most 1000 attempts per call


def test_a_hostile_retry_after_on_429_neither_crashes_nor_outlasts_the_timeout(
    fake: Callable[..., FakeServer],
) -> None:
    """A 429 with a hostile ``Retry-After``: botwire's own body gives ``WriteLimitExceeded``,
    a proxy's HTML page ``BadResponse``; either within the timeout."""
    values = ["²", "1e9", "9" * 5000]
    limited = b'{"error": {"code": "write_limit_exceeded", "message": "m", "retry_after": 1}}'
    ours = {
        f"429, Retry-After {v[:12]!r}": answer(429, limited, headers={"Retry-After": v})
        for v in values
    }
    page = b"<html><body>Too Many Requests</body></html>"
    theirs = {
        f"429 HTML, Retry-After {v[:12]!r}": answer(
            429, page, content_type="text/html", headers={"Retry-After": v}
        )
        for v in values
    }
    outcomes = call_one_server({**ours, **theirs}, fake, {"get", "set"})
    html = [o for o in outcomes if o.call.startswith("429 HTML")]
    assert_all_fail([o for o in outcomes if o not in html], WriteLimitExceeded)
    assert_all_fail(html, BadResponse)


# -- answers that are not botwire's: BadResponse, at once --------------------------------


def route(answers: Mapping[str, bytes]) -> Behaviour:
    """Answer each request with ``answers[namespace]`` (the ``/v1/ns/{ns}/`` of its path)."""

    def behave(peer: Peer) -> None:
        while (request := peer.request()) is not None:
            namespace = request.path.partition("/v1/ns/")[2].partition("/")[0]
            peer.send(answers[namespace])

    return behave


def call_routed(
    cases: Mapping[str, bytes], fake: Callable[..., FakeServer], **options: Any
) -> list[Outcome]:
    """Every call of every case on one fake server (one store): case ``i`` is namespace
    ``case-i``. For answers that do not open the breaker (it is per store)."""
    namespaces = {f"case-{i}": label for i, label in enumerate(cases)}
    server = fake(route({ns: cases[label] for ns, label in namespaces.items()}))
    return call_all([Target(label, server.url, ns) for ns, label in namespaces.items()], **options)


HTML = b"<!doctype html><html><head><title>Welcome to nginx!</title></head><body></body></html>"
GARBAGE_BODIES: dict[str, bytes] = {
    "not json": b"not json",
    "empty": b"",
    "{}": b"{}",
    "results not a list": b'{"results": 5}',
    "a list": b"[1]",
    "a string": b'"x"',
    "null": b"null",
    "a version that is a string": (
        b'{"value": 1, "version": "x", "created_at": 1, "updated_at": 1, "expires_at": null}'
    ),
    "too many results": b'{"results": [1, 2, 3]}',
    "results of the wrong type": b'{"results": [{"k": "v"}, "x"]}',
    "an HTML page": HTML,
    "invalid UTF-8": b'{"results": ["\xff\xfe"]}',
    "nested past the parser": b"[" * 100_000 + b"]" * 100_000,
}


@pytest.mark.parametrize("content_type", ["application/json", None], ids=["json", "no-type"])
def test_a_200_that_is_not_botwire_gives_bad_response(
    content_type: str | None, fake: Callable[..., FakeServer]
) -> None:
    """A 200 whose body is not botwire's answer (not JSON, ``{}``, ``{"results": 5}``, ``[1]``,
    ``"x"``, an item with a string version, HTML...): ``BadResponse``, never
    ``JSONDecodeError``, ``KeyError`` or ``TypeError``, and not retried (at once)."""
    cases = {
        f"200 {label}": http_response(200, body, content_type=content_type)
        for label, body in GARBAGE_BODIES.items()
    }
    assert_all_fail(call_routed(cases, fake), BadResponse, within=SLACK)


def test_garbage_through_the_read_cache_is_bad_response_too(
    fake: Callable[..., FakeServer],
) -> None:
    """With the read cache on (the default), a garbage answer is still ``BadResponse``."""
    cases = {"200 results not a list": http_response(200, b'{"results": 5}')}
    assert_all_fail(call_routed(cases, fake, cache=True), BadResponse, within=SLACK)


def test_a_4xx_that_is_not_botwire_is_bad_response_not_a_missing_key(
    fake: Callable[..., FakeServer],
) -> None:
    """A 404 (or another 4xx, or a 3xx) that is not botwire's JSON is a wrong URL, not a
    missing key: ``get`` raises ``BadResponse`` instead of returning the default."""
    cases = {
        "404 HTML": http_response(404, HTML, content_type="text/html"),
        "404 FastAPI's own": http_response(404, b'{"detail": "Not Found"}'),
        "404 error as a string": http_response(404, b'{"error": "not_found"}'),
        "404 code not a string": http_response(404, b'{"error": {"code": 404}}'),
        "404 empty": http_response(404, content_type=None),
        "302 to a login page": http_response(
            302, HTML, content_type="text/html", headers={"Location": "/login"}
        ),
        "418": http_response(418, b"I'm a teapot", content_type="text/plain"),
    }
    assert_all_fail(call_routed(cases, fake), BadResponse, within=SLACK)


def test_botwire_s_own_404_is_a_missing_key(fake: Callable[..., FakeServer]) -> None:
    """The counterpart: botwire's ``not_found`` answer to a GET is a missing key (``None``)."""
    body = b'{"error": {"code": "not_found", "message": "no such key"}}'
    outcomes = call_routed({"404 botwire": http_response(404, body)}, fake, calls={"get"})
    assert [(o.error, o.result) for o in outcomes] == [(None, None)] * 2, outcomes


# -- bugs the adversarial suite found (fixed; kept as regression tests) ------------------


def test_a_batch_answered_with_a_lone_item_is_bad_response(
    fake: Callable[..., FakeServer],
) -> None:
    """An item (a valid answer to a GET) sent back to a POST batch is not botwire's answer
    to that batch: ``BadResponse``, not a ``Record`` where an int or a key list belongs."""
    outcomes = call_routed(
        {"200 lone item": http_response(200, RECORD)},
        fake,
        calls={"set", "incr", "get_many", "list_keys"},
    )
    assert_all_fail(outcomes, BadResponse, within=SLACK)


def test_an_error_object_with_a_malformed_detail_is_still_typed(
    fake: Callable[..., FakeServer],
) -> None:
    """A botwire-looking error whose ``retry_after`` is not a number: a ``BotwireError``."""
    body = b'{"error": {"code": "%s", "message": "m", "retry_after": "soon"}}'
    cases = {
        f"{status} {code}": http_response(status, body % code.encode())
        for status, code in [(429, "write_limit_exceeded"), (503, "disk_full"), (409, "disk_full")]
    }
    outcomes = call_routed(cases, fake, calls={"get", "set"})
    assert_all_fail(outcomes, BotwireError)  # 429 and 503 are retried within the timeout


def test_a_deeply_nested_error_body_is_bad_response(fake: Callable[..., FakeServer]) -> None:
    """An error answer nested 100 000 deep: ``BadResponse``, not ``RecursionError``."""
    nested = b"[" * 100_000 + b"]" * 100_000
    cases = {f"{status} nested": http_response(status, nested) for status in (400, 404)}
    assert_all_fail(call_routed(cases, fake, calls={"get", "set"}), BadResponse, within=SLACK)


def test_a_body_that_does_not_match_its_content_encoding_is_typed(
    fake: Callable[..., FakeServer],
) -> None:
    """``Content-Encoding: gzip`` on a body that is not gzip (a broken proxy): a
    ``BotwireError``, not ``httpx.DecodingError``."""
    cases = {
        "200 fake gzip": http_response(
            200, b"not gzip at all", headers={"Content-Encoding": "gzip"}
        )
    }
    assert_all_fail(call_routed(cases, fake, calls={"get", "set"}), BotwireError, within=SLACK)


# -- the circuit breaker -----------------------------------------------------------------


def test_the_breaker_fails_fast_after_a_call_spent_its_budget() -> None:
    """Nothing listens: the first call raises ``Unavailable`` within its timeout, the next
    calls within the breaker window (``DEFAULT_BREAKER``) at once, naming the breaker."""
    assert DEFAULT_BREAKER >= 1
    url = f"http://127.0.0.1:{dead_port()}"
    with Memory("ns", url=url, timeout=1, cache=False) as memory:
        start = time.monotonic()
        with pytest.raises(Unavailable):
            memory.get("k")
        assert time.monotonic() - start < 1 + SLACK
        for call in (lambda: memory.get("k"), lambda: memory.set("k", 1), memory.list_keys):
            start = time.monotonic()
            with pytest.raises(Unavailable, match="circuit breaker"):
                call()
            assert time.monotonic() - start < FAST


def test_the_breaker_fails_fast_for_async_calls_too() -> None:
    """``AsyncMemory`` shares the breaker logic: after one spent budget, at once."""

    async def scenario() -> None:
        url = f"http://127.0.0.1:{dead_port()}"
        async with AsyncMemory("ns", url=url, timeout=1, cache=False) as memory:
            start = time.monotonic()
            with pytest.raises(Unavailable):
                await memory.get("k")
            assert time.monotonic() - start < 1 + SLACK
            start = time.monotonic()
            with pytest.raises(Unavailable, match="circuit breaker"):
                await memory.incr("n")
            assert time.monotonic() - start < FAST

    asyncio.run(scenario())


def test_the_breaker_lets_a_probe_through_once_its_window_passed(
    fake: Callable[..., FakeServer],
) -> None:
    """A server that comes back on the same port: refused at once inside the window (no
    request reaches it), answered once the window passed, and the breaker closes."""
    port = dead_port()
    store = HttpStore(f"http://127.0.0.1:{port}", timeout=1, breaker=0.5)
    try:
        with pytest.raises(Unavailable):
            store.batch("ns", [Get("k")])
        opened = time.monotonic()  # the window ends about 0.5 s from here
        server = fake(answer(200, RECORD), port=port)
        start = time.monotonic()
        with pytest.raises(Unavailable, match="circuit breaker"):
            store.batch("ns", [Get("k")])
        assert time.monotonic() - start < FAST
        assert server.requests == 0
        time.sleep(max(0.0, opened + 0.5 - time.monotonic()) + 0.05)  # waits for a clock
        expected = Record(b"1", 1, 1, 1, None)
        assert store.batch("ns", [Get("k")]) == [expected]
        assert store.batch("ns", [Get("k")]) == [expected]  # closed: no probe mode left
        assert server.requests == 2
    finally:
        store.close()


# -- stale_if_error ----------------------------------------------------------------------


def test_stale_if_error_serves_the_cached_value_when_the_server_goes_away(
    server: Server, fake: Callable[..., FakeServer]
) -> None:
    """``stale_if_error=True``: once the server is unreachable a cached key is served with a
    ``StaleReadWarning``, the first time within the timeout, then at once (the breaker);
    a key never cached is ``Unavailable``."""
    upstream = urlsplit(server.url)
    assert upstream.port is not None
    proxy = fake(forward(upstream.port))
    url = f"{proxy.url}{upstream.path}"
    with Memory("ns", url=url, timeout=1, max_stale=0, stale_if_error=True) as memory:
        memory.set("k", {"v": 1})
        assert memory.get("k") == {"v": 1}  # max_stale=0: revalidated with the server
        proxy.close()  # the port now refuses connections
        start = time.monotonic()
        with pytest.warns(StaleReadWarning, match="unreachable"):
            assert memory.get("k") == {"v": 1}
        assert time.monotonic() - start < 1 + SLACK
        start = time.monotonic()
        with pytest.warns(StaleReadWarning):
            assert memory.get("k") == {"v": 1}
        assert time.monotonic() - start < FAST
        with pytest.raises(Unavailable):
            memory.get("never-cached")


# -- messages and wiring -----------------------------------------------------------------


def test_unavailable_names_botwire_url_when_the_url_came_from_the_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The ``Unavailable`` message says ``$BOTWIRE_URL`` when that is where the URL came
    from (first failure and breaker alike), and does not when it was passed as ``url=``."""
    from_env = f"http://127.0.0.1:{dead_port()}"
    monkeypatch.setenv("BOTWIRE_URL", from_env)
    with Memory("ns", timeout=0.5) as memory:
        with pytest.raises(Unavailable) as first:
            memory.get("k")
        with pytest.raises(Unavailable) as again:
            memory.get("k")
    assert "BOTWIRE_URL" in str(first.value) and from_env in str(first.value)
    assert "BOTWIRE_URL" in str(again.value)
    passed = f"http://127.0.0.1:{dead_port()}"
    with Memory("ns", url=passed, timeout=0.5) as memory, pytest.raises(Unavailable) as explicit:
        memory.get("k")
    assert "BOTWIRE_URL" not in str(explicit.value) and passed in str(explicit.value)


def test_the_sync_deadline_wraps_httpx_s_network_backend() -> None:
    """``bounded`` reached httpx's pool: fails if a new httpx moves ``_network_backend``
    (then drip would hold a sync caller for as long as the server likes)."""
    store = HttpStore("http://127.0.0.1:9")
    try:
        transport = store._client._transport
        assert isinstance(transport, httpx.HTTPTransport)
        backend = transport._pool._network_backend
        assert isinstance(backend, _deadline._Backend)
    finally:
        store.close()
