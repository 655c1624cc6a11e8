"""Hostile clients against a real ``botwire serve``: the server's bounds hold.

Each test starts ``botwire serve`` in a subprocess on 127.0.0.1 and attacks it
through its public surface only (raw sockets, httpx, the Python client):

* header bombs stay within ``--max-header-bytes`` (431, or a closed connection)
  and do not grow the worker's memory;
* idle and slow-drip sockets are cut after ``--read-timeout``;
* connections stay within what the open-file limit allows;
* one batch cannot make an answer larger than ``--max-answer-bytes``;
* a full disk answers 503 ``disk_full`` and recovers once space is freed;
* spawned workers (``--workers 2``) run the same bounded protocol.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import json
import os
import re
import select
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

import botwire
from tests.server.conftest import LiveServer

pytestmark = pytest.mark.slow  # every test here runs `botwire serve` in other processes

HOST = "127.0.0.1"
KB = 1024
MB = 1024 * 1024
HEADER_LIMIT = 65_536


# -- reading raw answers -------------------------------------------------------------


@dataclass
class Answer:
    """What a raw socket got back: an HTTP answer (or none), and whether it then closed."""

    status: int | None = None
    headers: dict[str, str] = field(default_factory=dict)
    body: bytes = b""
    closed: bool = False  # EOF or reset seen
    elapsed: float = 0.0  # seconds from the start the caller gave
    raw: bytes = b""

    def error_code(self) -> str:
        """The ``error.code`` of a JSON error answer (asserting its shape)."""
        assert self.headers.get("content-type") == "application/json", self
        return _error_code(json.loads(self.body))


def _error_code(body: Any) -> str:
    assert isinstance(body, dict) and set(body) == {"error"}, body
    error = body["error"]
    assert isinstance(error, dict), body
    assert isinstance(error.get("code"), str) and error["code"], body
    assert isinstance(error.get("message"), str) and error["message"], body
    return str(error["code"])


def _json_error(response: httpx.Response) -> str:
    """The ``error.code`` of an httpx answer (asserting the JSON error shape)."""
    assert response.headers.get("content-type") == "application/json", response.headers
    return _error_code(response.json())


def _parse(data: bytes) -> Answer | None:
    """One whole HTTP answer at the start of ``data``; ``None`` while it is incomplete."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = data[:end].decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    body = data[end + 4 :]
    if len(body) < length:
        return None
    return Answer(status, headers, body[:length], raw=data)


def _read_answer(sock: socket.socket, timeout: float, start: float | None = None) -> Answer:
    """Read one answer (and, after ``connection: close``, the close) within ``timeout``.

    A reset counts as a close; an answer that is not whole by then leaves ``status`` None.
    """
    start = time.monotonic() if start is None else start
    deadline = time.monotonic() + timeout
    data = b""
    closed = False
    answer: Answer | None = None
    while not closed:
        answer = answer or _parse(data)
        if answer is not None and answer.headers.get("connection") != "close":
            break  # a keep-alive answer: the connection stays open
        left = deadline - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(256 * KB)
        except (ConnectionResetError, BrokenPipeError):
            closed = True
            break
        except TimeoutError:
            break
        if not chunk:
            closed = True
        data += chunk
    answer = answer or _parse(data) or Answer(raw=data)
    answer.closed = closed
    answer.elapsed = time.monotonic() - start
    return answer


def _connect(port: int) -> socket.socket:
    return socket.create_connection((HOST, port), timeout=10)


def _ask(port: int, request: bytes, timeout: float = 10.0) -> Answer:
    with _connect(port) as sock:
        sock.sendall(request)
        return _read_answer(sock, timeout)


def _get(path: str, extra: bytes = b"") -> bytes:
    return b"GET " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n" + extra + b"\r\n"


# -- the server's processes ----------------------------------------------------------


def _tree(root: int) -> list[int]:
    """``root`` and its descendants (uvicorn's parent, spawned workers, helpers)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    found: list[int] = []
    todo = [root]
    while todo and len(found) < 100:
        pid = todo.pop()
        found.append(pid)
        todo.extend(children.get(pid, []))
    return found


def _status_kb(pid: int, name: str) -> int:
    """A ``kB`` field of ``/proc/<pid>/status`` (0 once the process is gone)."""
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    for line in text.splitlines():
        if line.startswith(name + ":"):
            return int(line.split()[1])
    return 0


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state not in ("Z", "X")


def _workers(server: LiveServer) -> list[int]:
    """The pids that serve requests: the server itself, or uvicorn's spawned workers."""
    assert server.proc is not None
    spawned = []
    for pid in _tree(server.proc.pid):
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        if b"spawn_main" in cmdline:
            spawned.append(pid)
    return spawned or [server.proc.pid]


class MemoryWatch:
    """How much a process tree's resident memory grew: peak after minus resident before."""

    def __init__(self, root: int) -> None:
        self.pids = _tree(root)
        self.before = {pid: _status_kb(pid, "VmRSS") for pid in self.pids}
        for pid in self.pids:  # restart the peak (VmHWM) count from now, where allowed
            with contextlib.suppress(OSError):
                Path(f"/proc/{pid}/clear_refs").write_text("5")

    def growth_mb(self) -> float:
        grown = sum(
            max(0, _status_kb(pid, "VmHWM") - before) for pid, before in self.before.items()
        )
        return grown / 1024


def _owner(sock: socket.socket, server_port: int, pids: list[int]) -> int | None:
    """The pid among ``pids`` holding the server's end of ``sock``'s connection, if any yet."""
    client_port = sock.getsockname()[1]
    inode = None
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local, remote = fields[1], fields[2]
        if (
            int(local.rsplit(":", 1)[1], 16) == server_port
            and int(remote.rsplit(":", 1)[1], 16) == client_port
        ):
            inode = fields[9]
            break
    if inode is None or inode == "0":
        return None
    target = f"socket:[{inode}]"
    for pid in pids:
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return pid
            except OSError:
                continue
    return None


def _connect_to(server: LiveServer, worker: int, workers: list[int]) -> tuple[socket.socket, float]:
    """A fresh connection that ``worker`` accepted, and when it was made (bounded tries)."""
    for _ in range(60):
        start = time.monotonic()
        sock = _connect(server.port)
        owner = None
        while owner is None and time.monotonic() - start < 0.5:
            owner = _owner(sock, server.port, workers)
            if owner is None:
                time.sleep(0.01)
        if owner == worker:
            return sock, start
        sock.close()
    pytest.fail(f"60 connections and none reached worker {worker}")


# -- servers -------------------------------------------------------------------------


# Runs `python <rest>` with RLIMIT_NOFILE (soft and hard) set to argv[1].
_WITH_NOFILE = (
    "import os, resource, sys; n = int(sys.argv[1]); "
    "resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
    "os.execv(sys.executable, [sys.executable, *sys.argv[2:]])"
)


class LowFileLimitServer(LiveServer):
    """``LiveServer`` whose process starts with an open-file limit of ``nofile``."""

    def __init__(self, db: Path | str, nofile: int, **flags: Any) -> None:
        super().__init__(db, **flags)
        self.nofile = nofile

    def launch(self) -> None:
        args = [sys.executable, "-c", _WITH_NOFILE, str(self.nofile)]
        args += ["-m", "botwire.cli", "serve", "--port", str(self.port), "--db", str(self.db)]
        for name, value in self.flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_SERVER_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,
            )


@pytest.fixture
def serve(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    """``serve(**flags)`` (or ``serve(cls=..., ...)``): a started server, stopped at the end."""
    servers: list[LiveServer] = []

    def start(cls: type[LiveServer] = LiveServer, **flags: Any) -> LiveServer:
        server = cls(tmp_path / f"limits{len(servers)}.db", **flags)
        servers.append(server)
        server.start()
        return server

    yield start
    for server in servers:
        server.stop()


def _healthy(server: LiveServer, tries: int = 1) -> None:
    """``/healthz`` answers 200 on ``tries`` fresh connections."""
    for _ in range(tries):
        assert httpx.get(server.url + "/healthz", timeout=10).status_code == 200


# -- 1. header bombs -----------------------------------------------------------------


def _bomb(port: int, shape: str, sock: socket.socket | None = None) -> Answer:
    """Send a 16 MB request head in 64 KB chunks: ``many`` 1 KB headers, ``one`` header,
    or a ``url`` of 16 MB.

    The head is complete at the end, so a server that took it all would answer.
    """
    own = sock is None
    sock = sock or _connect(port)
    sock.settimeout(10)  # a server that neither reads nor closes fails the send
    start = time.monotonic()
    if shape == "many":
        block = (b"X-Pad: " + b"a" * 1017 + b"\r\n") * 64  # 64 KB
        chunks = [_get("/healthz")[:-2], *[block] * (16 * MB // len(block)), b"\r\n"]
    elif shape == "one":
        block = b"a" * (64 * KB)
        chunks = [_get("/healthz")[:-2] + b"X-Pad: ", *[block] * 256, b"\r\n\r\n"]
    else:
        block = b"a" * (64 * KB)
        chunks = [b"GET /healthz?q=", *[block] * 256, _get("")[4:]]
    try:
        for chunk in chunks:
            assert time.monotonic() - start < 30, "the bomb took 30 s to send"
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break  # the server closed: the expected end
        return _read_answer(sock, 10, start)
    finally:
        if own:
            sock.close()


def _assert_bomb_refused(answer: Answer) -> None:
    """A 431 with the JSON error shape, or the connection closed without an answer."""
    if answer.status is None:
        assert answer.closed and answer.raw == b"", answer
    else:
        assert answer.status == 431, answer
        assert answer.error_code() == "headers_too_large"


def _assert_small_head_limits(server: LiveServer) -> None:
    """One 70 KB header, or 70 KB of small headers: 431 JSON; 60 KB of headers: fine."""
    big = httpx.get(server.url + "/healthz", headers={"x-big": "a" * 70_000}, timeout=10)
    assert big.status_code == 431
    assert _json_error(big) == "headers_too_large"
    many = {f"x-pad-{i}": "b" * 690 for i in range(100)}
    answer = httpx.get(server.url + "/healthz", headers=many, timeout=10)
    assert answer.status_code == 431
    assert _json_error(answer) == "headers_too_large"
    fits = httpx.get(server.url + "/healthz", headers={"x-big": "a" * 60_000}, timeout=10)
    assert fits.status_code == 200


def test_header_bomb_is_refused_in_bounded_memory(serve: Callable[..., LiveServer]) -> None:
    """Promise: with --max-header-bytes, a 16 MB request head gets 431 (or a close), the
    worker's memory grows by far less than the head, and the worker keeps answering."""
    server = serve(max_header_bytes=HEADER_LIMIT)
    assert server.proc is not None
    watch = MemoryWatch(server.proc.pid)
    for shape in ("many", "one", "url"):
        _assert_bomb_refused(_bomb(server.port, shape))
        _healthy(server)
    growth = watch.growth_mb()
    assert growth < 50, f"three 16 MB header bombs grew the server by {growth:.0f} MB"
    _assert_small_head_limits(server)
    assert server.proc.poll() is None
    _healthy(server, 3)


def test_chunked_trailers_count_against_the_header_limit(
    serve: Callable[..., LiveServer],
) -> None:
    """Promise: --max-header-bytes bounds header fields (and the memory they hold), those
    a chunked body's trailer sends after the body too: 431 (or a close), never a 200."""
    server = serve(max_header_bytes=HEADER_LIMIT)
    assert server.proc is not None
    watch = MemoryWatch(server.proc.pid)
    body = b'{"ops": [{"op": "get", "key": "k"}]}'
    head = (
        b"POST /v1/ns/a/batch HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunks = [head + b"%x\r\n%s\r\n0\r\nX-Trailer: " % (len(body), body)]
    chunks += [b"a" * (64 * KB)] * 256 + [b"\r\n\r\n"]
    with _connect(server.port) as sock:
        start = time.monotonic()
        for chunk in chunks:
            assert time.monotonic() - start < 30, "the trailer took 30 s to send"
            try:
                sock.sendall(chunk)
            except (BrokenPipeError, ConnectionResetError):
                break
        answer = _read_answer(sock, 10, start)
    _healthy(server)
    growth = watch.growth_mb()
    assert growth < 50, f"a 16 MB trailer grew the server by {growth:.0f} MB"
    _assert_bomb_refused(answer)


# -- 2. slow and idle clients --------------------------------------------------------


def _idle(sock: socket.socket, start: float, timeout: float = 5.0) -> Answer:
    """Send nothing; what the server does about it."""
    with sock:
        return _read_answer(sock, timeout, start)


def _drip(sock: socket.socket, start: float, interval: float = 0.2, timeout: float = 5.0) -> Answer:
    """A request head sent one byte every ``interval`` s (30 s for all of it)."""
    head = _get("/healthz", b"X-Slow: " + b"s" * 100 + b"\r\n")
    with sock:
        for byte in head:
            if time.monotonic() - start > timeout:
                break
            try:
                sock.sendall(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            readable, _, _ = select.select([sock], [], [], interval)
            if readable:
                break  # an answer, or the close
        return _read_answer(sock, max(0.5, timeout - (time.monotonic() - start)), start)


def _bodiless(sock: socket.socket, start: float, sent: bytes = b"", timeout: float = 5.0) -> Answer:
    """A PUT whose head is whole but whose 100-byte body never (fully) arrives."""
    head = (
        b"PUT /v1/ns/a/keys/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
    )
    with sock:
        sock.sendall(head + sent)
        return _read_answer(sock, timeout, start)


def _assert_cut(answer: Answer, within: float, allow_408: bool = True) -> None:
    """Closed within ``within`` s, with a 408 JSON answer or none."""
    assert answer.closed, f"still open after {answer.elapsed:.1f} s: {answer}"
    assert answer.elapsed < within, answer
    if answer.status is not None or answer.raw:
        assert allow_408 and answer.status == 408, answer
        assert answer.error_code() == "request_timeout"


def test_slow_and_idle_clients_are_cut(serve: Callable[..., LiveServer]) -> None:
    """Promise: with --read-timeout 1, an idle socket, a one-byte-per-0.2 s head and a body
    that never arrives are closed (408 JSON, or a close) within ~3 s, while a normal
    client keeps getting 200s, and keep-alive pauses between requests are not cut."""
    server = serve(read_timeout=1)
    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        jobs: dict[str, concurrent.futures.Future[Answer]] = {}
        attacks: list[tuple[str, Callable[[socket.socket, float], Answer]]] = [
            ("idle", _idle),
            ("drip", _drip),
            ("bodiless", _bodiless),
            ("half body", lambda s, t: _bodiless(s, t, b'{"value": "')),
        ]
        for name, attack in attacks:
            start = time.monotonic()
            jobs[name] = pool.submit(attack, _connect(server.port), start)
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(100):  # a normal client meanwhile
                assert client.get("/healthz").status_code == 200
                if all(job.done() for job in jobs.values()):
                    break
                time.sleep(0.05)
        answers = {name: job.result(timeout=10) for name, job in jobs.items()}
    idle = answers["idle"]
    assert idle.elapsed > 0.5, f"an idle socket was cut before the read timeout: {idle}"
    for name, answer in answers.items():
        _assert_cut(answer, 3.0, allow_408=name in ("idle", "drip"))
    # Between requests the keep-alive timeout (5 s) applies, not the read timeout.
    with _connect(server.port) as sock:
        for _ in range(2):
            sock.sendall(_get("/healthz"))
            answer = _read_answer(sock, 5)
            assert answer.status == 200 and not answer.closed, answer
            time.sleep(1.5)
        sock.sendall(_get("/healthz"))
        assert _read_answer(sock, 5).status == 200
    assert server.proc is not None and server.proc.poll() is None


# -- 3. connections within the open-file limit ---------------------------------------


def test_connections_fit_a_low_open_file_limit(serve: Callable[..., LiveServer]) -> None:
    """Promise: under RLIMIT_NOFILE 256, serve lowers max_connections (1000) to fit and says
    so; 400 idle sockets get no more than that, later ones a 503 JSON with Retry-After; the
    server stays up, its sweeper never runs out of files, and answers 200 once they go."""
    server = serve(LowFileLimitServer, nofile=256, sweep_interval=0.3, read_timeout=60)
    assert server.proc is not None
    log = server.log.read_text()
    lowered = re.search(r"max_connections lowered from 1000 to (\d+)", log)
    assert lowered, log
    fitted = int(lowered.group(1))
    assert 0 < fitted < 256
    sockets: list[socket.socket] = []
    try:
        for _ in range(400):
            sockets.append(_connect(server.port))
        refused: dict[socket.socket, Answer] = {}
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and len(sockets) - len(refused) > fitted:
            waiting = [s for s in sockets if s not in refused]
            readable, _, _ = select.select(waiting, [], [], 0.5)
            for sock in readable:
                refused[sock] = _read_answer(sock, 2)
        held = len(sockets) - len(refused)
        assert held <= fitted, f"{held} connections held (or not accepted); limit {fitted}"
        for answer in refused.values():
            assert answer.status == 503 and answer.closed, answer
            assert answer.error_code() == "unavailable"
            assert int(answer.headers["retry-after"]) >= 1
        with httpx.Client(base_url=server.url, timeout=5) as client:
            normal = client.get("/healthz")
            assert normal.status_code in (200, 503), normal
            if normal.status_code == 503:
                assert _json_error(normal) == "unavailable"
                assert normal.headers.get("retry-after")
        assert server.proc.poll() is None
        time.sleep(0.6)  # two sweeps while the sockets are held
    finally:
        for sock in sockets:
            sock.close()
    deadline = time.monotonic() + 5
    status = 0
    while time.monotonic() < deadline:
        status = httpx.get(server.url + "/healthz", timeout=5).status_code
        if status == 200:
            break
        time.sleep(0.1)
    assert status == 200
    put = httpx.put(server.url + "/v1/ns/a/keys/k", json={"value": 1}, timeout=5)
    assert put.status_code == 200, put.text
    time.sleep(0.4)  # one more sweep
    assert server.proc.poll() is None
    log = server.log.read_text()
    assert "Too many open files" not in log, log
    assert "sweep failed" not in log, log


# -- 4. answers within max_answer_bytes ----------------------------------------------


def test_batch_answers_are_capped(serve: Callable[..., LiveServer]) -> None:
    """Promise: a batch whose gets or scan would answer over --max-answer-bytes is refused
    with 400 answer_too_large, quickly and without building the answer; smaller ones pass;
    the Python client raises botwire.AnswerTooLarge."""
    server = serve(max_answer_bytes=3_000_000, max_value_bytes=2_000_000, max_body_bytes=4_000_000)
    assert server.proc is not None
    big = "x" * 1_000_000
    with httpx.Client(base_url=server.url, timeout=30) as client:
        assert client.put("/v1/ns/a/keys/big", json={"value": big}).status_code == 200
        watch = MemoryWatch(server.proc.pid)
        start = time.monotonic()
        ops = [{"op": "get", "key": "big"}] * 150
        refused = client.post("/v1/ns/a/batch", json={"ops": ops})
        elapsed = time.monotonic() - start
        assert refused.status_code == 400, refused.text[:200]
        assert _json_error(refused) == "answer_too_large"
        assert elapsed < 5, f"refusing took {elapsed:.1f} s"
        growth = watch.growth_mb()
        assert growth < 100, f"a refused 150 MB answer grew the server by {growth:.0f} MB"
        two = client.post("/v1/ns/a/batch", json={"ops": ops[:2]})
        assert two.status_code == 200
        assert [r["value"] for r in two.json()["results"]] == [big, big]
        for i in range(10):
            value = str(i) * 1_000_000
            assert client.put(f"/v1/ns/a/keys/s{i}", json={"value": value}).status_code == 200
        scan = client.post(
            "/v1/ns/a/batch", json={"ops": [{"op": "scan", "prefix": "s", "limit": 10}]}
        )
        assert scan.status_code == 400, scan.text[:200]
        assert _json_error(scan) == "answer_too_large"
        fits = client.post(
            "/v1/ns/a/batch", json={"ops": [{"op": "scan", "prefix": "s", "limit": 2}]}
        )
        assert fits.status_code == 200
        assert [item["key"] for item in fits.json()["results"][0]] == ["s0", "s1"]
    with botwire.Memory("a", url=server.url, cache=False) as mem:
        with pytest.raises(botwire.AnswerTooLarge):
            mem.get_many([f"s{i}" for i in range(10)])
        assert mem.get_many(["s0", "s1"]) == {"s0": "0" * 1_000_000, "s1": "1" * 1_000_000}
    assert server.proc.poll() is None


# -- 5. a full disk ------------------------------------------------------------------


def test_full_disk_answers_disk_full_and_recovers(tmp_path: Path) -> None:
    """Promise: when the database's disk is full a write answers 503 disk_full with
    Retry-After (botwire.DiskFull in the client), nothing acknowledged is lost, and writes
    succeed again once space is freed."""
    if os.geteuid() != 0 or shutil.which("mount") is None:
        pytest.skip("mounting a small tmpfs needs root and mount(8)")
    disk = tmp_path / "disk"
    disk.mkdir()
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=3m", "tmpfs", str(disk)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a 3 MB tmpfs: {mounted.stderr.strip()}")
    server = LiveServer(
        disk / "server.db",
        log=tmp_path / "disk-server.log",  # not on the full disk
        max_value_bytes=0,
        max_bytes=0,
        writes_per_day=0,
    )
    try:
        filler = disk / "filler"
        filler.write_bytes(os.urandom(MB))
        server.start()
        acked: dict[str, str] = {}
        full: httpx.Response | None = None
        with httpx.Client(base_url=server.url, timeout=30) as client:
            for i in range(100):
                value = f"{i}:" + os.urandom(50_000).hex()
                answer = client.put(f"/v1/ns/d/keys/k{i}", json={"value": value})
                if answer.status_code == 503:
                    full = answer
                    break
                assert answer.status_code == 200, answer.text[:300]
                acked[f"k{i}"] = value
            assert full is not None, "100 writes of 100 KB fit on a 3 MB disk"
            assert _json_error(full) == "disk_full", full.text
            assert int(full.headers["retry-after"]) >= 1
            assert acked, "the first write already failed"
            with (
                botwire.Memory("d", url=server.url, cache=False, timeout=2) as mem,
                pytest.raises(botwire.DiskFull),
            ):
                mem.set("client", "c" * 100_000)
            for key, value in acked.items():
                got = client.get(f"/v1/ns/d/keys/{key}")
                assert got.status_code == 200 and got.json()["value"] == value, key
            filler.unlink()
            again = client.put("/v1/ns/d/keys/again", json={"value": "a" * 100_000})
            assert again.status_code == 200, again.text[:300]
            with botwire.Memory("d", url=server.url, cache=False, timeout=5) as mem:
                mem.set("client", "c" * 100_000)
                assert mem.get("client") == "c" * 100_000
            for key, value in acked.items():
                assert client.get(f"/v1/ns/d/keys/{key}").json()["value"] == value, key
            assert client.get("/healthz").status_code == 200
        assert server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
        unmounted = subprocess.run(["umount", str(disk)], capture_output=True, timeout=30)
        if unmounted.returncode != 0:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True, timeout=30)


# -- 6. the same bounds in spawned workers -------------------------------------------


def test_spawned_workers_are_bounded_too(serve: Callable[..., LiveServer]) -> None:
    """Promise: with --workers 2 each spawned worker runs the bounded protocol: header
    bombs get 431 (or a close) without growing memory, idle and dripping sockets are cut
    (408 JSON) after --read-timeout, and every worker keeps answering."""
    server = serve(workers=2, max_header_bytes=HEADER_LIMIT, read_timeout=2)
    assert server.proc is not None
    workers = _workers(server)
    assert len(workers) == 2, workers
    watch = MemoryWatch(server.proc.pid)
    for worker in workers:
        sock, _ = _connect_to(server, worker, workers)
        with sock:
            sock.sendall(_get("/healthz", b"X-Big: " + b"a" * 70_000 + b"\r\n"))
            answer = _read_answer(sock, 5)
        assert answer.status == 431, (worker, answer)
        assert answer.error_code() == "headers_too_large"
        for shape in ("many", "one"):
            sock, _ = _connect_to(server, worker, workers)
            with sock:
                _assert_bomb_refused(_bomb(server.port, shape, sock))
    growth = watch.growth_mb()
    assert growth < 50, f"four 16 MB header bombs grew the server by {growth:.0f} MB"
    slow = []
    for worker in workers:
        slow.append(("idle", _connect_to(server, worker, workers)))
        slow.append(("drip", _connect_to(server, worker, workers)))
    with concurrent.futures.ThreadPoolExecutor(len(slow)) as pool:
        jobs = [
            pool.submit(_idle if kind == "idle" else _drip, sock, start)
            for kind, (sock, start) in slow
        ]
        answers = [job.result(timeout=15) for job in jobs]
    for answer in answers:
        _assert_cut(answer, 4.0)
        assert answer.status == 408, answer  # each worker answered the timeout itself
    assert all(_alive(pid) for pid in workers)
    assert sorted(_workers(server)) == sorted(workers)
    _healthy(server, 6)


# -- 7. answers nobody reads ---------------------------------------------------------


def _rss_mb(pids: list[int]) -> float:
    """The resident memory of ``pids`` now, in MB."""
    return sum(_status_kb(pid, "VmRSS") for pid in pids) / 1024


def _small_window(port: int, rcvbuf: int = 4 * KB) -> socket.socket:
    """A connection whose receive buffer is ``rcvbuf``: of an answer it does not read, all
    but the server kernel's send buffer stays in the worker's write buffer."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(10)
        sock.connect((HOST, port))
    except BaseException:
        sock.close()
        raise
    return sock


def _post(path: str, body: bytes) -> bytes:
    return (
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body) + body
    )


def _read_to_close(sock: socket.socket, most: int, timeout: float) -> tuple[bytes, bool]:
    """Read until EOF or reset (``True``), or ``most`` bytes or ``timeout`` s (``False``)."""
    deadline = time.monotonic() + timeout
    data = b""
    while len(data) < most:
        left = deadline - time.monotonic()
        if left <= 0:
            return data, False
        sock.settimeout(left)
        try:
            chunk = sock.recv(64 * KB)
        except (ConnectionResetError, BrokenPipeError):
            return data, True
        except TimeoutError:
            return data, False
        if not chunk:
            return data, True
        data += chunk
    return data, False


def _read_slowly(sock: socket.socket, rate: float, timeout: float) -> Answer:
    """Read one keep-alive answer at about ``rate`` bytes a second (whole, or what came)."""
    start = time.monotonic()
    data = bytearray()
    need: int | None = None  # head plus Content-Length, once the head is in
    while need is None or len(data) < need:
        left = start + timeout - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(64 * KB)
        except (ConnectionResetError, BrokenPipeError, TimeoutError):
            break
        if not chunk:
            break
        data += chunk
        if need is None and (end := data.find(b"\r\n\r\n")) >= 0:
            length = re.search(rb"(?im)^content-length:\s*(\d+)", bytes(data[:end]))
            need = end + 4 + (int(length.group(1)) if length else 0)
        ahead = len(data) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(min(ahead, 1.0))
    answer = _parse(bytes(data)) or Answer(raw=bytes(data))
    answer.elapsed = time.monotonic() - start
    return answer


@pytest.mark.slow
def test_answers_nobody_reads_do_not_hold_memory(serve: Callable[..., LiveServer]) -> None:
    """Promise: with --read-timeout 1, an answer its client does not read is dropped with
    its connection once a read timeout passes without progress: 20 clients that ask for
    10 MB each and never read are cut within a few seconds, the worker's memory comes back
    to near where it was, and it keeps answering; a slow reader that keeps reading
    (~2 MB/s) is not cut and gets its whole answer."""
    server = serve(
        read_timeout=1,
        max_answer_bytes=20_000_000,
        max_value_bytes=2_000_000,
        max_body_bytes=4_000_000,
        writes_per_day=0,
        max_bytes=0,
    )
    assert server.proc is not None
    values = {f"s{i}": str(i) * 1_000_000 for i in range(10)}
    ops = {"ops": [{"op": "scan", "prefix": "s", "limit": 10}]}
    scan = _post("/v1/ns/a/batch", json.dumps(ops).encode())
    with httpx.Client(base_url=server.url, timeout=30) as client:
        for key, value in values.items():
            assert client.put(f"/v1/ns/a/keys/{key}", json={"value": value}).status_code == 200
        for _ in range(2):  # warm up: the same answer, read at once
            warm = client.post("/v1/ns/a/batch", json=ops)
            assert warm.status_code == 200, warm.text[:200]
            assert len(warm.content) > 10_000_000
    size = len(warm.content)
    # What the kernels may hold of an answer after the worker dropped it: the server's
    # send buffer (its most) and the client's small receive buffer.
    most = int(Path("/proc/sys/net/ipv4/tcp_wmem").read_text().split()[2]) + 256 * KB
    if most > size * 0.6:
        pytest.skip(f"this kernel buffers {most} bytes of a {size}-byte answer by itself")
    workers = _workers(server)
    baseline = _rss_mb(workers)
    watch = MemoryWatch(server.proc.pid)
    unread: list[socket.socket] = []
    slow_sock: socket.socket | None = None
    try:
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow_sock = _small_window(server.port)
            slow_sock.sendall(scan)
            slow = pool.submit(_read_slowly, slow_sock, 2 * MB, 30)
            start = time.monotonic()
            for _ in range(20):
                unread.append(_small_window(server.port))
                unread[-1].sendall(scan)
            # Whether the worker still holds a connection, seen without reading from it (a
            # read is progress, which rightly keeps the connection). Dropped means: three
            # looks in a row found no worker holding it (/proc/net/tcp, read while other
            # connections come and go, can miss a line).
            misses = dict.fromkeys(unread, 0)
            while time.monotonic() - start < 6:
                for sock in unread:
                    owned = _owner(sock, server.port, workers) is not None
                    misses[sock] = 0 if owned else misses[sock] + 1
                if min(misses.values()) >= 3:
                    break
                time.sleep(0.2)
            held = [sock for sock, missed in misses.items() if missed < 3]
            assert not held, f"{len(held)} of 20 unread answers still held after 6 s"
            peak = watch.growth_mb()
            assert peak > 50, f"20 unread 10 MB answers held only {peak:.0f} MB: no test"
            # The client now gets what the kernels had buffered, then EOF (or a reset):
            # the rest of the answer is gone.
            for sock in unread:
                data, closed = _read_to_close(sock, size, 10)
                assert closed, f"no EOF or reset after {len(data)} bytes"
                assert data.startswith(b"HTTP/1.1 200"), data[:200]
                assert len(data) < most, f"{len(data)} bytes of an unread answer"
            answer = slow.result(timeout=40)
        assert answer.status == 200, (answer.elapsed, len(answer.raw), answer.raw[:200])
        assert answer.body.endswith(b"]}"), answer.body[-200:]
        items = json.loads(answer.body)["results"][0]
        assert {item["key"]: item["value"] for item in items} == values
        assert answer.elapsed > 3, f"the slow reader read 10 MB in {answer.elapsed:.1f} s"
    finally:
        for sock in unread:
            sock.close()
        if slow_sock is not None:
            slow_sock.close()
    # Freed memory goes back to the system as the allocator allows (glibc keeps some
    # arenas): what stays must be well under what the unread answers held at their peak.
    bound = min(100.0, max(60.0, peak / 2))
    growth = _rss_mb(workers) - baseline
    deadline = time.monotonic() + 5
    while growth >= bound and time.monotonic() < deadline:
        time.sleep(0.2)
        growth = _rss_mb(workers) - baseline
    assert growth < bound, (
        f"unread answers left the worker {growth:.0f} MB larger (peak {peak:.0f})"
    )
    assert all(_alive(pid) for pid in workers)
    _healthy(server, 3)
