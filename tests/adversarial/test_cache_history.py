"""The read cache under attack and under concurrency: credentials, tampering, clocks, races.

Each test names the promise of ``botwire.stores.cached`` (and ``_registry.cache_dir``)
it checks. The last ones run several processes on one host against a real
``botwire serve`` and check the recorded history (Jepsen/Porcupine style):
read-your-writes, monotonic reads, fresh reads linearizable in real time, and
counters that count each acknowledged ``incr`` once, with and without a process
killed midway.
"""

from __future__ import annotations

import bisect
import itertools
import json
import math
import multiprocessing
import os
import stat
import subprocess
import sys
import threading
import time
import types
import warnings
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import diskcache
import pytest

from botwire import Conflict, Item, Memory, StaleReadWarning, Unavailable, _registry
from botwire.ops import Op, Record
from botwire.stores import cached
from botwire.stores.cached import CachedStore, Entry, _clear_mark, _name
from botwire.stores.http import HttpStore

from ..loopback import Server, host
from ..server.conftest import LiveServer
from . import _history_worker as worker

WORKER = Path(worker.__file__)
SPAWN = multiprocessing.get_context("spawn")  # the pytest process runs threads: no fork


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``live(workers=2, auth="token")``: a real ``botwire serve`` on 127.0.0.1, stopped after."""
    servers: list[LiveServer] = []

    def start(**flags: Any) -> LiveServer:
        server = LiveServer(tmp_path / f"live{len(servers)}.db", **flags)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def _token(server: LiveServer, pattern: str) -> str:
    made = subprocess.run(
        [
            sys.executable,
            *("-m", "botwire.cli", "token", "create"),
            "--db",
            str(server.db),
            "--namespaces",
            pattern,
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return made.stdout.strip()


# -- 1. one cache per credentials, across processes ----------------------------------------


def _probe(env: dict[str, str], *args: str) -> tuple[str, list[dict[str, Any]]]:
    done = subprocess.run(
        [sys.executable, str(WORKER), "probe", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    steps = [json.loads(line) for line in done.stdout.splitlines()]
    return done.stdout + done.stderr, steps


def _bytes_under(directory: Path) -> bytes:
    return b"".join(p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file())


@pytest.mark.slow
def test_a_token_never_reads_what_another_token_cached(
    live: Callable[..., LiveServer], tmp_path: Path
) -> None:
    """Promise: the cache directory belongs to one URL and one set of credentials
    (``api_key=`` or ``$BOTWIRE_API_KEY``), so a process holding token B never gets a
    value token A cached on the same host: the server's ``Forbidden`` reaches it."""
    server = live(workers=1, auth="token")
    a, b = _token(server, "secret-*"), _token(server, "other-*")
    root = tmp_path / "shared-cache"
    base = {k: v for k, v in os.environ.items() if k != "BOTWIRE_API_KEY"}
    base |= {"BOTWIRE_URL": server.url, "BOTWIRE_CACHE_DIR": str(root)}

    out, steps = _probe(base | {"BOTWIRE_API_KEY": a}, "secret-ns", "k", "--set", "TOP SECRET")
    assert steps[0]["set"]["value"] >= 1, out
    assert steps[1]["get"] == steps[2]["again"] == {"value": "TOP SECRET"}, out
    a_dir = Path(_registry.cache_dir(server.url, a, root=str(root)))
    assert b"TOP SECRET" in _bytes_under(a_dir)  # really cached, where B might look

    runs = {
        "B from the environment": _probe(base | {"BOTWIRE_API_KEY": b}, "secret-ns", "k"),
        "B as an argument": _probe(base, "secret-ns", "k", "--api-key", b),
        "B as an argument over A in the environment": _probe(
            base | {"BOTWIRE_API_KEY": a}, "secret-ns", "k", "--api-key", b
        ),
        "A then B in one process": _probe(
            base, "secret-ns", "k", "--first-api-key", a, "--api-key", b
        ),
    }
    for how, (out, steps) in runs.items():
        with_b = [step for step in steps if "first" not in step]
        if len(with_b) == len(steps):  # only B in this process: not a trace of it anywhere
            assert "TOP SECRET" not in out, (how, out)
        assert [next(iter(step)) for step in with_b] == ["get", "again"], (how, out)
        for step in with_b:
            assert "TOP SECRET" not in json.dumps(step), (how, out)
            assert next(iter(step.values())).get("error") == "Forbidden", (how, out)
    assert runs["A then B in one process"][1][0] == {"first": {"value": "TOP SECRET"}}

    b_dir = Path(_registry.cache_dir(server.url, b, root=str(root)))
    assert a_dir != b_dir and a_dir.parent == b_dir.parent == root
    for directory in (a_dir, b_dir):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700, directory
    assert b"TOP SECRET" not in _bytes_under(b_dir)


# -- 2. planted entries are misses ---------------------------------------------------------


class Exploit:
    """Unpickling this creates the directory ``marker``: proof that code ran."""

    def __init__(self, marker: Path, padding: int = 0) -> None:
        self.marker, self.padding = marker, padding

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),), {"padding": "x" * self.padding})


FAR_FUTURE = 1e12  # year 33658: finite, so the header itself is well formed


def _payload(kind: str, marker: Path) -> object:
    if kind == "pickle":
        return Exploit(marker)
    if kind == "pickle in a file":
        return Exploit(marker, padding=100_000)  # diskcache writes it to a .val file
    if kind == "text":
        return "not one of ours"
    if kind == "short blob":
        return b"\x00\x01garbage"
    if kind == "NaN header":
        return cached._HEADER.pack(3, math.nan, 0.0, 0.0, 0.0, math.nan) + b'"x"'
    if kind == "bad version":
        return cached._HEADER.pack(-7, 1.0, 2.0, 0.0, 0.0, math.nan) + b'"x"'
    assert kind == "far future"  # well formed, version and times out of reach
    record = Record(b'"PLANTED"', 10**12, 0.0, 0.0, None)
    return Entry(record, FAR_FUTURE, FAR_FUTURE).pack()


REFUSED = ["pickle", "pickle in a file", "text", "short blob", "NaN header", "bad version"]


@pytest.mark.parametrize("kind", [*REFUSED, "far future"])
@pytest.mark.parametrize("target", ["entry", "clear mark"])
def test_a_planted_entry_or_clear_mark_is_a_miss(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture, target: str, kind: str
) -> None:
    """Promise: an entry that is not ours (a pickle, text, a short or garbled blob) is never
    loaded, is a miss (no ``RefusedEntry`` reaches the caller) and is replaced from the
    server; a well-formed entry or Clear mark from the far future is never served either.
    Both under a key's name and under the namespace's Clear mark."""
    marker = tmp_path / "code-ran"
    with Memory("agent", url=server.url, max_stale=60) as mem:
        version = mem.set("k", "from the server")
        store = mem.store
        assert isinstance(store, CachedStore)
        name = _name("agent", "k") if target == "entry" else _clear_mark("agent")
        planted = diskcache.Cache(store.directory)  # diskcache's default Disk pickles
        planted.set(name, _payload(kind, marker))
        planted.close()

        with caplog.at_level("WARNING", logger="botwire"):
            assert mem.get("k") == "from the server"
            assert mem.get("k", fresh=True) == "from the server"  # a fill: reads the mark
            item = mem.get_item("k")
            assert item is not None and item.version == version
            assert mem.get("missing") is None
        assert not marker.exists()
        if kind in REFUSED:
            assert "refused entry" in caplog.text
            blob = store._cache.get(name)
            assert blob is None or Entry.unpack(blob).known  # ours again (or gone)

        # and later reads and writes keep working
        second = mem.set("k", "second")
        assert second > version
        assert mem.get("k") == "second" and mem.get("k", fresh=True) == "second"
        assert mem.incr("n") == 1 and mem.get("n") == 1
        assert mem.clear() == 2
        assert mem.get("k") is None and mem.get_item("n") is None
        mem.set("k", "after the clear")
        assert mem.get("k") == "after the clear"
    assert not marker.exists()


# -- 3. an entry stamped in the future -----------------------------------------------------


def _shifted(seconds: float) -> types.SimpleNamespace:
    """A stand-in for the ``time`` module, its wall clock ``seconds`` off."""
    real = time.time
    return types.SimpleNamespace(
        time=lambda: real() + seconds, monotonic=time.monotonic, sleep=time.sleep
    )


@pytest.mark.parametrize("offset", [3600.0, -3600.0], ids=["ahead", "behind"])
def test_an_entry_stamped_by_a_jumped_clock_is_not_served_past_max_stale(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, offset: float
) -> None:
    """Promise: an entry stamped in the future (the clock went back since) is not fresh, so
    nothing is served past ``max_stale`` of real age whatever the wall clock did: after a
    change (or a deletion) on the server, a read past ``max_stale`` sees it."""
    reader_store, seen = host(server, tmp_path / "cache", max_stale=0.2)
    writer_store, _ = host(server, None)
    reader, writer = Memory("agent", url=reader_store), Memory("agent", url=writer_store)
    writer.set("k", "old")
    writer.set("gone", "old")
    with monkeypatch.context() as m:
        m.setattr(cached, "time", _shifted(offset))
        assert reader.get("k") == "old" and reader.get("gone") == "old"  # fills, stamped off
    entry = reader_store._load("agent", "k")
    assert entry is not None and abs(entry.asked - time.time() - offset) < 60

    writer.set("k", "new")
    writer.delete("gone")
    seen.clear()
    assert reader.get("k") == "new"  # stamped off by an hour: not fresh, asked at once
    assert seen, "a future-stamped entry was served without asking the server"
    time.sleep(0.3)  # past max_stale, in real time
    for _ in range(3):
        assert reader.get("k") == "new"
        assert reader.get("gone") is None
        assert reader.get_item("k").version == writer.get_item("k").version  # type: ignore[union-attr]
    writer.set("k", "newer")
    time.sleep(0.3)
    assert reader.get("k") == "newer"
    reader_store.close()
    writer_store.close()


# -- 4. a fill asked before a failed write never lands after it ---------------------------


class HeldAnswers:
    """Wraps ``store.batch``: after the server answered, the answer waits for ``release``."""

    def __init__(self, store: HttpStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inner = store.batch
        self.answered = threading.Event()
        self.release = threading.Event()
        self.hold = False
        monkeypatch.setattr(store, "batch", self)

    def __call__(self, namespace: str, ops: Sequence[Op], *, idempotency: Any = None) -> Any:
        results = self.inner(namespace, ops, idempotency=idempotency)
        if self.hold:
            self.answered.set()
            if not self.release.wait(30):
                raise TimeoutError("never released")
        return results


class LosesAnswers:
    """Wraps ``store.batch``: the server applies the batch, the answer is lost."""

    def __init__(self, store: HttpStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inner = store.batch
        self.lose = False
        monkeypatch.setattr(store, "batch", self)

    def __call__(self, namespace: str, ops: Sequence[Op], *, idempotency: Any = None) -> Any:
        results = self.inner(namespace, ops, idempotency=idempotency)
        if self.lose:
            raise Unavailable("the answer was lost (test)")
        return results


def _held_read(mem: Memory, gate: HeldAnswers) -> tuple[threading.Thread, list[Item | None]]:
    """``mem.get_item("k", fresh=True)`` in a thread, held once the server answered."""
    box: list[Item | None] = []
    gate.hold = True
    gate.answered.clear()
    gate.release.clear()
    thread = threading.Thread(target=lambda: box.append(mem.get_item("k", fresh=True)))
    thread.start()
    assert gate.answered.wait(30)
    return thread, box


def _land(thread: threading.Thread, gate: HeldAnswers) -> None:
    gate.release.set()
    thread.join(30)
    assert not thread.is_alive()
    gate.hold = False


def _cached_version(store: CachedStore) -> int | None:
    """The version the cache holds for agent/k (``None``: absent or unknown)."""
    entry = store._load("agent", "k")
    if entry is None or not entry.known or entry.record is None:
        return None
    return entry.record.version


@pytest.mark.parametrize("failure", ["conflict", "lost answer"])
def test_a_fill_asked_before_a_failed_write_never_lands_after_it(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, failure: str
) -> None:
    """Promise: entries never go backwards. A failed write (``Conflict``, a lost answer) marks
    the key unknown as of now, so a fill by another process that asked the server before
    it, and lands after it, is dropped; later reads are never older than what was seen."""
    shared = tmp_path / "host"
    x_store, _ = host(server, shared, max_stale=60)
    y_store, _ = host(server, shared, max_stale=60)
    w_store, _ = host(server, None)  # another host
    x, y, w = (Memory("agent", url=s) for s in (x_store, y_store, w_store))
    gate = HeldAnswers(y_store.origin, monkeypatch)
    lossy = LosesAnswers(x_store.origin, monkeypatch)

    v1 = w.set("k", "one")
    assert x.get_item("k").version == v1  # type: ignore[union-attr]  # cached at v1
    thread, box = _held_read(y, gate)  # Y asked and was told v1; its answer is held
    v2 = w.set("k", "two")
    if failure == "conflict":
        with pytest.raises(Conflict):
            x.set("k", "x", if_version=v1)  # X's compare-and-set is rejected...
    else:
        lossy.lose = True
        with pytest.raises(Unavailable):
            x.set("k", "x")  # ... or X's write applied but its answer was lost
        lossy.lose = False
    latest = w.get_item("k")
    assert latest is not None and latest.version >= v2
    _land(thread, gate)  # ... and then Y's answer, asked before, lands
    assert box[0] is not None and box[0].version == v1  # Y's own read was concurrent: fine
    assert _cached_version(x_store) in (None, latest.version), "an older fill landed"
    for mem in (x, y):
        item = mem.get_item("k")
        assert item is not None and item.version == latest.version, "read went backwards"
    v3 = x.set("k", "x again", if_version=latest.version)  # the retry succeeds
    assert _cached_version(x_store) == v3

    # with a known entry in place, an older fill never replaces a newer version either
    thread, box = _held_read(y, gate)  # Y is told v3, held
    v4 = w.set("k", "four")
    assert x.get_item("k", fresh=True).version == v4  # type: ignore[union-attr]
    _land(thread, gate)
    assert box[0] is not None and box[0].version == v3
    assert _cached_version(x_store) == v4
    assert x.get_item("k").version == y.get_item("k").version == v4  # type: ignore[union-attr]
    for store in (x_store, y_store, w_store):
        store.close()


class HeldRequests:
    """Wraps ``store.batch``/``revalidate``: a request waits for ``release`` before it is
    sent (held in transit); with ``down``, the server is unreachable."""

    def __init__(self, store: HttpStore, monkeypatch: pytest.MonkeyPatch) -> None:
        self.inner, self.inner_revalidate = store.batch, store.revalidate
        self.sent = threading.Event()
        self.release = threading.Event()
        self.hold = self.down = False
        monkeypatch.setattr(store, "batch", self)
        monkeypatch.setattr(store, "revalidate", self.revalidate)

    def __call__(self, namespace: str, ops: Sequence[Op], *, idempotency: Any = None) -> Any:
        if self.down:
            raise Unavailable("the server is unreachable (test)")
        if self.hold:
            self.sent.set()
            if not self.release.wait(30):
                raise TimeoutError("never released")
        return self.inner(namespace, ops, idempotency=idempotency)

    def revalidate(self, namespace: str, key: str, version: int) -> Any:
        if self.down:
            raise Unavailable("the server is unreachable (test)")
        return self.inner_revalidate(namespace, key, version)


def test_stale_if_error_never_serves_older_than_what_the_process_saw(
    server: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Promise: a process never serves a version older than one it has seen (monotonic
    reads), ``stale_if_error`` included. Two network delays on one host leave an older
    answer in the shared cache after X read a newer one: X's read is held in transit across
    Z's Conflict, and Y's read, asked after the Conflict, lands after X's."""
    shared = tmp_path / "host"
    x_store, _ = host(server, shared, max_stale=60, stale_if_error=True)
    y_store, _ = host(server, shared, max_stale=60)
    z_store, _ = host(server, shared, max_stale=60)
    w_store, _ = host(server, None)  # another host
    x, y, z, w = (Memory("agent", url=s) for s in (x_store, y_store, z_store, w_store))
    try:
        x_net = HeldRequests(x_store.origin, monkeypatch)
        y_net = HeldAnswers(y_store.origin, monkeypatch)

        v1 = w.set("k", "one")
        x_net.hold = True
        x_box: list[Item | None] = []
        x_thread = threading.Thread(target=lambda: x_box.append(x.get_item("k", fresh=True)))
        x_thread.start()  # X asked; its request is still on its way
        assert x_net.sent.wait(30)
        with pytest.raises(Conflict):
            z.set("k", "z", if_version=0)  # Z's stale create fails: k is unknown as of now
        y_thread, y_box = _held_read(y, y_net)  # Y asks after that, is told v1, answer held
        v2 = w.set("k", "two")
        x_net.hold = False
        x_net.release.set()  # X's request arrives now: v2 (not cached: asked before the Conflict)
        x_thread.join(30)
        _land(y_thread, y_net)  # Y's v1 lands (asked after the Conflict)
        assert x_box[0] is not None and x_box[0].version == v2
        assert y_box[0] is not None and y_box[0].version == v1
        # The cache refuses Y's v1 as well: it was asked before X's v2 was answered.
        assert _cached_version(x_store) in (None, v2)
        # A cache can still fall behind a process (an entry evicted, then an old fill):
        # plant v1, as such a fill would leave it; stale_if_error must not serve it to X.
        now = time.time()
        planted = Entry(Record(b'"one"', v1, now, now, None), now, now)
        y_store._cache.set(_name("agent", "k"), planted.pack(), tag="agent", retry=True)
        assert _cached_version(x_store) == v1

        x_net.down = True
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", StaleReadWarning)
            try:
                item = x.get_item("k")
            except Unavailable:
                item = None  # refusing is fine; going back is not
        assert item is None or item.version >= v2, f"X read v{v2}, then v{item.version}"
    finally:
        for store in (x_store, y_store, z_store, w_store):
            store.close()


# -- 5. processes opening one fresh cache directory at once --------------------------------


@pytest.mark.slow
def test_processes_opening_a_fresh_cache_directory_at_once_never_fail(tmp_path: Path) -> None:
    """Promise: the directory is opened under a file lock, so processes opening one new
    cache directory at the same moment never race diskcache's set-up (no
    ``sqlite3.OperationalError``, no exception at all)."""
    workers, rounds = 3, 100
    barrier = SPAWN.Barrier(workers)
    procs = [
        SPAWN.Process(
            target=worker.open_rounds,
            args=(str(tmp_path / "caches"), i, rounds, barrier, str(tmp_path / f"errors-{i}")),
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(90)
    errors = {i: (tmp_path / f"errors-{i}") for i in range(workers)}
    report = {i: e.read_text() for i, e in errors.items() if e.exists()}
    for p in procs:
        if p.is_alive():
            p.kill()
            p.join(10)
    assert not report, "\n".join(report.values())
    assert [p.exitcode for p in procs] == [0] * workers
    opened = sorted((tmp_path / "caches").iterdir())
    assert len(opened) == rounds
    for directory in opened:
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700
        with cached.open_cache(directory) as cache:
            assert sorted(cache) == [f"worker-{i}" for i in range(workers)]


# -- 6. the history of several processes on one host ---------------------------------------


def _load(path: Path) -> list[dict[str, Any]]:
    """The complete lines of a history file (a SIGKILL may cut the last one)."""
    out = []
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            try:
                out.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return out


class Floor:
    """Per key, the highest number among events that ended before a given moment."""

    def __init__(self, events: list[tuple[str, float, int]]) -> None:
        self._ends: dict[str, list[float]] = defaultdict(list)
        self._max: dict[str, list[int]] = defaultdict(list)
        for key, end, number in sorted(events, key=lambda e: e[1]):
            best = self._max[key]
            self._ends[key].append(end)
            best.append(max(number, best[-1]) if best else number)

    def before(self, key: str, moment: float) -> int:
        at = bisect.bisect_left(self._ends[key], moment)
        return self._max[key][at - 1] if at else 0


def check_history(
    history: list[dict[str, Any]], final: int, killed: int | None, max_stale: float = 1.0
) -> list[str]:
    """Every violation of the promises in ``history`` (the complete operations of all
    processes), given the counter's ``final`` value; ``killed``: a process whose
    in-flight operation is unknown (it may have applied)."""
    problems: list[str] = []
    errors = [r for r in history if r["op"] == "error"]
    problems += [f"process {r['p']} failed:\n{r['tb']}" for r in errors]
    ops = sorted((r for r in history if r["op"] != "error"), key=lambda r: (r["p"], r["i"]))
    writes = [r for r in ops if r["op"] in ("set", "cas") and r["ok"]]
    incrs = [r for r in ops if r["op"] == "incr"]
    reads = [r for r in ops if r["op"] == "get"]

    # (a) read-your-writes and (b) monotonic reads, per process
    by_proc: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for r in ops:
        by_proc[r["p"]].append(r)
    for p, mine in by_proc.items():
        wrote: dict[str, int] = {}
        read: dict[str, int] = {}
        counted = 0
        for r in mine:
            key, v = r["key"], r["v"]
            if r["op"] in ("set", "cas") and r["ok"]:
                wrote[key] = max(wrote.get(key, 0), v)
            elif r["op"] == "incr":
                counted = max(counted, r["val"])
            elif r["op"] == "get":
                if v is None:
                    if wrote.get(key) or read.get(key) or (key == worker.COUNTER and counted):
                        problems.append(f"p{p} #{r['i']}: {key} absent after it was seen")
                    continue
                if v < wrote.get(key, 0):
                    problems.append(f"p{p} #{r['i']}: read {key} v{v} after writing v{wrote[key]}")
                if v < read.get(key, 0):
                    problems.append(f"p{p} #{r['i']}: read {key} v{v} after reading v{read[key]}")
                if key == worker.COUNTER and r["val"] < counted:
                    problems.append(f"p{p} #{r['i']}: read n={r['val']} after incr to {counted}")
                read[key] = max(read.get(key, 0), v)

    # every acknowledged write got its own version; a CAS moved its own expected version on
    versions: dict[tuple[str, int], Any] = {}
    for r in writes:
        if (r["key"], r["v"]) in versions:
            problems.append(f"two writes acknowledged as {r['key']} v{r['v']}")
        versions[(r["key"], r["v"])] = r["val"]
    cas = [(r["key"], r["iv"]) for r in writes if r["op"] == "cas"]
    if len(cas) != len(set(cas)):
        problems.append("two compare-and-sets succeeded from the same version")
    problems += [
        f"p{r['p']} #{r['i']}: CAS from v{r['iv']} gave v{r['v']}"
        for r in writes
        if r["op"] == "cas" and r["v"] <= r["iv"]
    ]

    # each version read is the value a write made (or the killed process's unknown write)
    by_version: dict[int, Any] = {}
    for r in reads:
        key, v, val = r["key"], r["v"], r["val"]
        if v is None:
            continue
        if key == worker.COUNTER:
            if by_version.setdefault(v, val) != val:
                problems.append(f"n v{v} read as {val} and {by_version[v]}")
        elif (key, v) in versions:
            if versions[(key, v)] != val:
                problems.append(f"p{r['p']} #{r['i']}: {key} v{v} read as {val}")
        elif killed is None or val.get("p") != killed:
            problems.append(f"p{r['p']} #{r['i']}: {key} v{v} ({val}) was never written")
    counter = sorted(by_version.items())
    if any(a[1] >= b[1] for a, b in itertools.pairwise(counter)):
        problems.append(f"the counter does not grow with its version: {counter[:20]}")

    # (c) a fresh read is not older than anything completed before it started, and
    # (f) any read (cached too) is not older than a write on this host acknowledged before
    seen = Floor([(r["key"], r["e"], r["v"]) for r in ops if r["v"] is not None])
    acked = Floor([(r["key"], r["e"], r["v"]) for r in writes])
    counts = Floor([(worker.COUNTER, r["e"], r["val"]) for r in incrs])
    for r in reads:
        key, v, start = r["key"], r["v"] or 0, r["s"]
        floor = seen.before(key, start) if r["fresh"] else acked.before(key, start)
        if v < floor:
            kind = "fresh read" if r["fresh"] else "read"
            problems.append(f"p{r['p']} #{r['i']}: {kind} of {key} v{v} after v{floor} completed")
        if key == worker.COUNTER and (r["val"] or 0) < counts.before(key, start):
            problems.append(f"p{r['p']} #{r['i']}: n={r['val']} after an incr to more completed")

    # (d) each acknowledged incr counted once
    results = [r["val"] for r in incrs]
    if len(results) != len(set(results)):
        problems.append("two incr calls returned the same number")
    if killed is None:
        if final != len(results) or sorted(results) != list(range(1, final + 1)):
            problems.append(f"counter {final} after {len(results)} acknowledged incr calls")
    elif not (0 <= final - len(results) <= 1 and all(0 < n <= final for n in results)):
        problems.append(f"counter {final} after {len(results)} acknowledged incr (one unknown)")
    return problems


def _run_history(
    server: LiveServer, tmp_path: Path, *, seconds: float, kill_after: float | None
) -> tuple[list[dict[str, Any]], int | None]:
    """4 processes for ``seconds``; with ``kill_after``, the last is SIGKILLed then and a
    new one starts at once. The complete history, and the killed process's index."""
    n, max_ops = 4, 4000
    barrier = SPAWN.Barrier(n + 1)

    def spawn(i: int, duration: float, go: Any) -> Any:
        out = str(tmp_path / f"history-{i}.jsonl")
        args = (server.url, i, duration, max_ops, 1000 + i, out, go)
        proc = SPAWN.Process(target=worker.history, args=args)
        proc.start()
        return proc

    procs = [spawn(i, seconds, barrier) for i in range(n)]
    killed = None
    try:
        barrier.wait(timeout=60)  # every worker ready: go
        if kill_after is not None:
            time.sleep(kill_after)
            killed = n - 1
            procs[killed].kill()
            procs[killed].join(10)
            assert procs[killed].exitcode == -9
            procs.append(spawn(n, max(seconds - kill_after, 1.0), None))
        for p in procs:
            p.join(seconds + 60)
        assert all(p.exitcode == 0 for i, p in enumerate(procs) if i != killed), [
            p.exitcode for p in procs
        ]
    finally:
        for p in procs:
            if p.is_alive():
                p.kill()
                p.join(10)
    history = [r for i in range(len(procs)) for r in _load(tmp_path / f"history-{i}.jsonl")]
    return history, killed


@pytest.mark.slow
@pytest.mark.parametrize("crash", [False, True], ids=["all-finish", "one-killed"])
def test_a_history_of_processes_sharing_the_cache_is_consistent(
    live: Callable[..., LiveServer], tmp_path: Path, crash: bool
) -> None:
    """Promises, checked on the recorded history of 4 processes sharing one host's cache
    (random set, compare-and-set, incr and reads on 3 keys, against 2 server workers):
    read-your-writes, monotonic reads, fresh reads never older than any operation completed
    before they started, cached reads never older than a write acknowledged on the host,
    and every acknowledged incr counted once. With a process SIGKILLed midway (its
    in-flight operation unknown), the others and a process started after the kill hold."""
    server = live(workers=2, writes_per_day=0)
    history, killed = _run_history(
        server, tmp_path, seconds=4.0 if crash else 5.0, kill_after=1.5 if crash else None
    )
    with Memory(worker.NAMESPACE, url=server.url) as mem:  # this process starts after it all
        final_reads = {key: mem.get_item(key) for key in worker.READ_KEYS}
        fresh_reads = {key: mem.get_item(key, fresh=True) for key in worker.READ_KEYS}
    final = fresh_reads[worker.COUNTER].value  # type: ignore[union-attr]
    problems = check_history(history, final, killed)

    ops = [r for r in history if r["op"] != "error"]
    by_proc = {p: sum(r["p"] == p for r in ops) for p in range(5 if crash else 4)}
    assert all(count >= 5 for count in by_proc.values()), by_proc  # each really ran
    assert {r["op"] for r in ops} == {"set", "cas", "incr", "get"}
    assert any(r["op"] == "cas" and not r["ok"] for r in ops)  # contention really happened
    assert any(r["op"] == "get" and not r["fresh"] for r in ops)
    for key in worker.KEYS:  # a process started after everything reads every acknowledged write
        top = max(r["v"] for r in ops if r["op"] in ("set", "cas") and r["ok"] and r["key"] == key)
        for item in (final_reads[key], fresh_reads[key]):
            assert item is not None and item.version >= top, (key, item, top)
    counted = max(r["val"] for r in ops if r["op"] == "incr")
    assert final_reads[worker.COUNTER].value >= counted  # type: ignore[union-attr]
    assert not problems, f"{len(problems)} violations:\n" + "\n".join(problems[:20])


def test_the_history_checker_catches_violations() -> None:
    """The checker itself: a history with a stale read, a lost incr and a duplicate version
    is reported; the same history without them is clean."""

    def op(p: int, i: int, op: str, key: str, v: int | None, val: Any, **kw: Any) -> Any:
        base = {"p": p, "i": i, "op": op, "key": key, "v": v, "val": val, "iv": None}
        return base | {"ok": True, "fresh": False, "s": float(i), "e": i + 0.5} | kw

    good = [
        op(0, 0, "set", "a", 1, {"p": 0, "i": 0}),
        op(1, 1, "get", "a", 1, {"p": 0, "i": 0}, fresh=True),
        op(0, 2, "incr", "n", None, 1),
        op(1, 3, "get", "n", 1, 1),
        op(1, 4, "cas", "a", 2, {"p": 1, "i": 4}, iv=1),
    ]
    assert check_history(good, final=1, killed=None) == []
    bad = [
        *good,
        op(0, 5, "get", "a", 1, {"p": 0, "i": 0}),  # stale: v2 was acknowledged before
        op(2, 6, "set", "a", 2, {"p": 2, "i": 6}),  # a second v2
        op(1, 7, "incr", "n", None, 1),  # a second 1
    ]
    found = "\n".join(check_history(bad, final=1, killed=None))
    assert "read of a v1 after v2 completed" in found
    assert "two writes acknowledged as a v2" in found
    assert "two incr calls returned the same number" in found
    assert "counter 1 after 2 acknowledged" in found
