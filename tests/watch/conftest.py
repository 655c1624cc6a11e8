"""Watch tests on real parts: SQLite files, PostgreSQL schemas, `botwire serve` subprocesses,
writer processes. Every wait is bounded; a watcher runs in a daemon thread with a deadline.

``store_url`` gives one store of each kind: an embedded SQLite file, a PostgreSQL schema
(skipped without $BOTWIRE_TEST_POSTGRES_URL) and a `botwire serve` in open mode (one per
module: tests work in namespaces of their own).
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import Memory
from botwire.ops import Change

from ..postgres import fresh_schema_url
from ..server.conftest import LiveServer

STORES = ["sqlite", "postgresql", "server"]


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """One `botwire serve` in open mode on a SQLite file, shared by a module's tests."""
    tmp = tmp_path_factory.mktemp("served")
    server = LiveServer(tmp / "server.db", log=tmp / "server.log", writes_per_day=0)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``serve(db=None, **flags)``: a `botwire serve` of the test's own, stopped at its end."""
    started: list[LiveServer] = []

    def start(db: str | Path | None = None, **flags: Any) -> LiveServer:
        n = len(started)
        server = LiveServer(
            db or tmp_path / f"s{n}.db", log=tmp_path / f"s{n}.log", writes_per_day=0, **flags
        )
        server.start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store of each kind, as a URL any process can open."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'embedded.db'}"
    if request.param == "postgresql":
        return fresh_schema_url()
    server: LiveServer = request.getfixturevalue("open_server")
    return server.url


@pytest.fixture
def memories() -> Iterator[Callable[..., Memory]]:
    """``memories(ns, url)``: a Memory closed at the end of the test."""
    made: list[Memory] = []

    def make(ns: str, url: str, **options: Any) -> Memory:
        made.append(Memory(ns, url=url, **options))
        return made[-1]

    yield make
    for mem in made:
        mem.close()


# A writer process: `python -c WRITER URL NS SEED COUNT KEYS` writes COUNT times over KEYS
# keys (k0-k3 hot), a quarter of them deletes, and prints the keys it set as one JSON line.
WRITER = r"""
import json, random, sys
from botwire import Memory
url, ns = sys.argv[1], sys.argv[2]
seed, count, keys = (int(arg) for arg in sys.argv[3:6])
rng = random.Random(seed)
mem = Memory(ns, url=url, cache=False)
touched = set()
for i in range(count):
    key = f"k{rng.randrange(4) if rng.random() < 0.4 else rng.randrange(keys)}"
    if rng.random() < 0.25:
        mem.delete(key)
    else:
        mem.set(key, {"writer": seed, "i": i})
        touched.add(key)
mem.close()
print(json.dumps(sorted(touched)))
"""


def run_writers(url: str, ns: str, writers: int, count: int, keys: int) -> set[str]:
    """``writers`` processes writing at once; the keys they set (each exits 0 within 60 s)."""
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, url, ns, str(seed), str(count), str(keys)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(writers)
    ]
    touched: set[str] = set()
    for proc in procs:
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        touched.update(json.loads(out))
    return touched


class Follower:
    """``mem.watch(...)`` in a daemon thread, collecting changes until one satisfies
    ``until`` (or the test gives up: :meth:`join` fails after its timeout)."""

    def __init__(
        self,
        mem: Memory,
        until: Callable[[Change], bool],
        *,
        prefix: str = "",
        since: int | None = None,
        values: bool = False,
    ) -> None:
        self.changes: list[Change] = []
        self.error: BaseException | None = None
        self._until = until
        self._done = threading.Event()
        # watch() settles "now" (since=None) before it returns: writes after this are seen
        self._changes = mem.watch(prefix, since, values=values)
        threading.Thread(target=self._run, daemon=True).start()

    def _run(self) -> None:
        try:
            for change in self._changes:
                self.changes.append(change)
                if self._until(change):
                    break
        except BaseException as exc:  # reported by join(), never as a thread's crash
            self.error = exc
        finally:
            self._done.set()

    def join(self, timeout: float) -> list[Change]:
        finished = self._done.wait(timeout)
        assert self.error is None, repr(self.error)
        assert finished, f"the watcher did not finish in {timeout}s; it saw {self.changes[-5:]}"
        return self.changes

    def wait_for(self, found: Callable[[list[Change]], bool], timeout: float) -> list[Change]:
        """The changes so far, once ``found(changes)`` holds (polled; fails after ``timeout``)."""
        import time

        deadline = time.monotonic() + timeout
        while not found(list(self.changes)):
            assert self.error is None, repr(self.error)
            assert time.monotonic() < deadline, f"not seen in {timeout}s: {self.changes[-5:]}"
            time.sleep(0.02)
        return list(self.changes)


def key_is(key: str) -> Callable[[Change], bool]:
    return lambda change: change.key == key


def check_feed(changes: list[Change], live: dict[str, Any], touched: set[str]) -> None:
    """What a watcher yielded is an ordered feed that ends where the store is: versions
    strictly increase (so no change twice), and each key's last change is its state now
    (``live``: key -> Item of the store's live keys; ``touched``: keys ever set)."""
    versions = [c.version for c in changes]
    assert versions == sorted(set(versions)), "versions not strictly increasing"
    last = {c.key: c for c in changes}
    for key in touched | set(live):
        assert key in last, f"{key} never yielded"
        if key in live:
            assert not last[key].deleted, (key, last[key], live[key])
            assert last[key].version == live[key].version, (key, last[key], live[key])
            if last[key].data is not None:
                assert last[key].value == live[key].value
        else:
            assert last[key].deleted, (key, last[key])


def live_items(mem: Memory, prefix: str = "") -> dict[str, Any]:
    return {item.key: item for item in mem.scan(prefix)}


def new_ns(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


class Watch:
    """`botwire watch ...` running in a subprocess; its stdout lines parsed as they come."""

    def __init__(self, *args: str) -> None:
        command = [sys.executable, "-m", "botwire.cli", "watch", *args]
        self.proc = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        self.lines: list[dict[str, Any]] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(json.loads(line))

    def finish(self, timeout: float = 10) -> list[dict[str, Any]]:
        """The lines, once the command exited 0 by itself (``--count``) within ``timeout``."""
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.stop()
            raise AssertionError(f"still watching after {timeout}s; printed {self.lines}") from None
        err = self.stop()
        assert self.proc.returncode == 0, err
        return self.lines

    def until(self, key: str, timeout: float = 10) -> list[dict[str, Any]]:
        """The lines up to the first for ``key``; the command is stopped then."""
        deadline = time.monotonic() + timeout
        try:
            while not any(line["key"] == key for line in self.lines):
                assert self.proc.poll() is None, f"it exited: {self.stop()}"
                assert time.monotonic() < deadline, f"no {key!r} in {timeout}s: {self.lines}"
                time.sleep(0.02)
        finally:
            self.stop()
        return self.lines[: [line["key"] for line in self.lines].index(key) + 1]

    def stop(self) -> str:
        """Kill it if it still runs; what it wrote to stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
        self._reader.join(10)
        assert self.proc.stdout is not None and self.proc.stderr is not None
        if self.proc.stderr.closed:  # stopped already
            return ""
        err = self.proc.stderr.read()
        self.proc.stdout.close()
        self.proc.stderr.close()
        return err


# -- raw long polls (httpx): a refusal (503 too_many_watchers) comes at once, so a request
# still unanswered after HELD seconds is one the server holds

HELD = 1.0  # seconds a request must stay unanswered to count as held


@asynccontextmanager
async def clients(url: str, count: int) -> AsyncIterator[list[httpx.AsyncClient]]:
    """``count`` clients, each from a loopback address of its own (127.0.0.2, .3, ...)."""
    async with AsyncExitStack() as stack:
        made = []
        for i in range(count):
            transport = httpx.AsyncHTTPTransport(local_address=f"127.0.0.{i + 2}")
            client = httpx.AsyncClient(
                base_url=url,
                transport=transport,
                timeout=40,
                limits=httpx.Limits(max_connections=200, max_keepalive_connections=0),
            )
            made.append(await stack.enter_async_context(client))
        yield made


async def hold(
    by_address: list[httpx.AsyncClient], path: str, each: int
) -> list[asyncio.Task[httpx.Response]]:
    """``each`` long polls on ``path`` from every client; each still waiting after ``HELD``."""
    tasks = [asyncio.ensure_future(c.get(path)) for c in by_address for _ in range(each)]
    done, _ = await asyncio.wait(tasks, timeout=HELD)
    assert not done, [t.result().text for t in done]
    return tasks


async def held_or_refused(
    client: httpx.AsyncClient, path: str, headers: dict[str, str] | None = None
) -> asyncio.Task[httpx.Response] | None:
    """One long poll: its task while the server holds it, ``None`` if refused at once."""
    task = asyncio.ensure_future(client.get(path, headers=headers))
    done, _ = await asyncio.wait({task}, timeout=HELD)
    if not done:
        return task
    response = task.result()
    assert response.status_code == 503, response.text
    assert response.json()["error"]["code"] == "too_many_watchers"
    assert int(response.headers["retry-after"]) >= 1
    return None


async def quick(client: httpx.AsyncClient, method: str, path: str, **kw: object) -> float:
    started = time.monotonic()
    response = await client.request(method, path, **kw)  # type: ignore[arg-type]
    took = time.monotonic() - started
    assert response.status_code == 200, response.text
    assert took < 1.0, f"{method} {path} took {took:.2f}s beside the idle watchers"
    return took
