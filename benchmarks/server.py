"""HTTP server throughput and latency: botwire against its peers, in one run, on loopback.

    python benchmarks/server.py [--seconds 10] [--connections 32] [--workers 2] [--postgres URL]

Each system runs under uvicorn with ``--workers`` processes on a fresh SQLite
file, is filled with 1,000 keys of ~1 KB, then measured:

* sequential latency: one httpx keep-alive client, p50/p99 of 1,000 GETs and PUTs;
* throughput under load: wrk (Debian's ``wrk``) with ``--connections`` connections
  for ``--seconds`` each on GET and PUT; every PUT writes a different body.

Rows: botwire's keyless ``PUT``, and **the client's own write path** as
``HttpStore`` sends it for ``Memory.set`` (``POST .../batch`` with the put, a
write-through ``get`` of the key and a fresh ``Idempotency-Key``); peers:
``peers/minimal_app.py`` (FastAPI + sqlite3 with the same pragmas),
``peers/reference_app.py`` (a replica of the reference BotWire endpoints) and
``peers/bare_app.py`` (a bare ASGI app answering a fixed body: the HTTP
stack's own limit). botwire runs with its limits off (``--writes-per-day 0
--max-bytes 0``) and ``synchronous=full``, like the peers. wrk shares the two
cores with the servers: its figures are fair only as ratios within one run.

With PostgreSQL (``--postgres``, default $BOTWIRE_TEST_POSTGRES_URL; each run in
a fresh schema) botwire also runs on it as 1 replica of ``--workers`` workers,
and as 2 replicas (separate processes on separate ports, the same workers in
all) measured by one wrk per replica at once, half the connections each, their
rates added; and on the client write path (1 replica). PostgreSQL's own
``synchronous_commit`` is left as configured.

With granian installed (the dev extra), the bare app and botwire's app also run
under granian, the same workers: the HTTP server is chosen by these rows.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
TEXT = "lorem ipsum dolor sit amet, " * 35  # ~1 KB


@dataclass
class System:
    name: str
    command: list[str]
    get_path: str  # with {i}
    put_path: str
    put_body: str  # every %d becomes the request's number n (Lua and Python alike)
    replicas: list[list[str]] | None = None  # more processes (their own ports) beside command
    put_method: str = "PUT"
    keyed: bool = False  # each write carries a fresh Idempotency-Key, as the client sends


def botwire_command(port: int, db: str, workers: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "botwire.cli",
        "serve",
        "--port",
        str(port),
        "--db",
        db,
        "--workers",
        str(workers),
        "--writes-per-day",
        "0",
        "--max-bytes",
        "0",
    ]


def postgres_systems(url: str, ports: list[int], workers: int) -> list[System]:
    """botwire on PostgreSQL: one replica, and two sharing the workers (fresh schemas)."""
    import uuid
    from urllib.parse import quote

    import psycopg

    def fresh() -> str:
        schema = f"bwbench_{uuid.uuid4().hex[:10]}"
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        return f"{url}{'&' if '?' in url else '?'}options={quote('-csearch_path=' + schema)}"

    per_replica = max(1, workers // 2)
    one, keyed, two = fresh(), fresh(), fresh()
    paths = ("/v1/ns/bench/keys/k{i}", "/v1/ns/bench/keys/k{i}")
    body = '{"value": {"n": %d, "text": "' + TEXT + '"}}'
    return [
        System(
            "botwire, PostgreSQL, 1 replica", botwire_command(ports[0], one, workers), *paths, body
        ),
        System(
            "botwire, PostgreSQL, client write path",
            botwire_command(ports[0], keyed, workers),
            "/v1/ns/bench/keys/k{i}",
            "/v1/ns/bench/batch",
            CLIENT_BODY,
            put_method="POST",
            keyed=True,
        ),
        System(
            "botwire, PostgreSQL, 2 replicas",
            botwire_command(ports[0], two, per_replica),
            *paths,
            body,
            replicas=[botwire_command(ports[1], two, per_replica)],
        ),
    ]


BOTWIRE_BODY = '{"value": {"n": %d, "text": "' + TEXT + '"}}'
CLIENT_BODY = (
    '{"ops": [{"op": "put", "key": "c%d", "value": {"n": %d, "text": "'
    + TEXT
    + '"}}, {"op": "get", "key": "c%d"}]}'
)


def systems(port: int, db: Path, workers: int) -> list[System]:
    uvicorn = [
        sys.executable,
        "-m",
        "uvicorn",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--log-level",
        "warning",
    ]
    return [
        System(
            "botwire",
            botwire_command(port, str(db), workers),
            "/v1/ns/bench/keys/k{i}",
            "/v1/ns/bench/keys/k{i}",
            BOTWIRE_BODY,
        ),
        System(
            "botwire, client write path",
            botwire_command(port, str(db), workers),
            "/v1/ns/bench/keys/k{i}",
            "/v1/ns/bench/batch",
            CLIENT_BODY,
            put_method="POST",
            keyed=True,
        ),
        System(
            "bare ASGI app (the stack's limit)",
            [*uvicorn, "benchmarks.peers.bare_app:app"],
            "/k{i}",
            "/k{i}",
            '{"n": %d}',
        ),
        System(
            "minimal FastAPI + sqlite3",
            [*uvicorn, "benchmarks.peers.minimal_app:app"],
            "/kv/k{i}",
            "/kv/k{i}",
            '{"n": %d, "text": "' + TEXT + '"}',
        ),
        System(
            "reference BotWire replica",
            [*uvicorn, "benchmarks.peers.reference_app:app"],
            "/memory/bench/k{i}",
            "/memory/bench/k{i}",
            '{"value": "%d ' + TEXT + '"}',
        ),
        *granian_systems(port, db, workers),
    ]


def granian_systems(port: int, db: Path, workers: int) -> list[System]:
    """The bare app and botwire's own app under granian (a Rust HTTP server), to choose the
    server by measurement; left out where granian is not installed."""
    if importlib.util.find_spec("granian") is None:
        return []
    granian = [sys.executable, "-m", "granian", "--interface", "asgi", "--port", str(port)]
    granian += ["--workers", str(workers), "--log-level", "warning"]
    settings = [f"BOTWIRE_SERVER_DB={db}", "BOTWIRE_SERVER_WRITES_PER_DAY=0"]
    settings += ["BOTWIRE_SERVER_MAX_BYTES=0"]
    return [
        System(
            "bare ASGI app, granian",
            [*granian, "benchmarks.peers.bare_app:app"],
            "/k{i}",
            "/k{i}",
            '{"n": %d}',
        ),
        System(
            "botwire app, granian",
            ["env", *settings, *granian, "--factory", "botwire_server.app:create_app"],
            "/v1/ns/bench/keys/k{i}",
            "/v1/ns/bench/keys/k{i}",
            BOTWIRE_BODY,
        ),
    ]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(system: System, db: Path, port: int) -> Iterator[str]:
    """The system's URL while it runs (its first process's, with replicas)."""
    with running_all(system, db, [port]) as urls:
        yield urls[0]


@contextmanager
def running_all(system: System, db: Path, ports: list[int]) -> Iterator[list[str]]:
    """Every process of the system (``command``, then its replicas): their URLs."""
    env = {**os.environ, "BENCH_DB": str(db), "BENCH_SYNCHRONOUS": "full"}
    commands = [system.command, *(system.replicas or [])]
    procs = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for command in commands
    ]
    urls = [f"http://127.0.0.1:{p}" for p in ports[: len(commands)]]
    try:
        for url in urls:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                try:
                    httpx.get(url + "/", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            else:
                raise TimeoutError(f"{system.name} did not start")
        yield urls
    finally:
        for proc in procs:
            os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.wait(timeout=30)


def fill_and_time(url: str, system: System, keys: int = 1000) -> tuple[float, float, float, float]:
    """Fill ``keys`` keys, then p50/p99 (ms) of sequential GETs and PUTs on one connection."""
    import uuid

    headers = {"content-type": "application/json"}
    fill = System(system.name, system.command, system.get_path, system.get_path, BOTWIRE_BODY)
    filler = system if system.put_method == "PUT" else fill  # the keys GETs read
    with httpx.Client(base_url=url, timeout=30) as http:
        for i in range(keys):
            body = filler.put_body.replace("%d", str(i))
            http.put(filler.put_path.format(i=i), content=body, headers=headers).raise_for_status()
        gets, puts = [], []
        for n in range(keys):
            start = time.perf_counter()
            http.get(system.get_path.format(i=n % keys)).raise_for_status()
            gets.append(time.perf_counter() - start)
            body = system.put_body.replace("%d", str(keys + n))
            if system.keyed:
                headers["idempotency-key"] = uuid.uuid4().hex
            start = time.perf_counter()
            http.request(
                system.put_method,
                system.put_path.format(i=n % keys),
                content=body,
                headers=headers,
            ).raise_for_status()
            puts.append(time.perf_counter() - start)
    return _pct(gets, 50), _pct(gets, 99), _pct(puts, 50), _pct(puts, 99)


def _pct(samples: list[float], p: int) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, len(ordered) * p // 100)] * 1000


def wrk(
    url: str, system: System, method: str, seconds: int, connections: int, keys: int
) -> tuple[float, float, int]:
    """(requests/s, p99 ms, non-2xx answers) from wrk."""
    path = (system.get_path if method == "GET" else system.put_path).replace("{i}", "%d")
    body = system.put_body.replace('"', '\\"')
    key = '["Idempotency-Key"] = id .. "-" .. n, ' if system.keyed else ""
    script = (
        "local threads = 0\n"
        "function setup(thread) threads = threads + 1; thread:set('id', threads) end\n"
        "id = 0\n"
        "local n = 0\n"
        "request = function()\n"
        "  n = n + 1\n"
        f'  local path = string.format("{path}", n % {keys})\n'
        + (
            '  return wrk.format("GET", path)\n'
            if method == "GET"
            else f'  local body = string.gsub("{body}", "%%d", tostring(id * 1000000000 + n))\n'
            f'  return wrk.format("{system.put_method}", path, '
            f'{{["Content-Type"] = "application/json", {key}}}, body)\n'
        )
        + "end\n"
    )
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write(script)
    try:
        out = subprocess.run(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", f.name, url],
            capture_output=True,
            text=True,
            timeout=seconds + 60,
            check=True,
        ).stdout
    finally:
        os.unlink(f.name)
    rate = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p99 = re.search(r"99%\s+([\d.]+)(us|ms|s)", out)
    assert p99 is not None, out
    scale = {"us": 0.001, "ms": 1.0, "s": 1000.0}[p99.group(2)]
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    return rate, float(p99.group(1)) * scale, int(bad.group(1)) if bad else 0


def wrk_all(
    urls: list[str], system: System, method: str, seconds: int, connections: int, keys: int
) -> tuple[float, float, int]:
    """wrk against every replica at once (the connections split): summed rate, worst p99."""
    from concurrent.futures import ThreadPoolExecutor

    share = max(2, connections // len(urls))
    with ThreadPoolExecutor(len(urls)) as pool:
        runs = list(pool.map(lambda url: wrk(url, system, method, seconds, share, keys), urls))
    return sum(r[0] for r in runs), max(r[1] for r in runs), sum(r[2] for r in runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--keys", type=int, default=1000, help="keys filled, and sequential calls")
    parser.add_argument(
        "--postgres",
        default=os.environ.get("BOTWIRE_TEST_POSTGRES_URL", ""),
        help="a PostgreSQL URL for the PostgreSQL rows ('' to leave them out)",
    )
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        sys.exit("needs wrk: apt-get install wrk")

    rows: dict[str, list[tuple[float, ...]]] = {}
    for _ in range(args.rounds):
        with tempfile.TemporaryDirectory(prefix="botwire-server-bench-") as tmp:
            ports = [free_port(), free_port()]
            everything = systems(ports[0], Path(tmp) / "botwire.db", args.workers)
            if args.postgres:
                everything += postgres_systems(args.postgres, ports, args.workers)
            for system in everything:
                db = Path(tmp) / f"{system.name.split()[0]}.db"
                with running_all(system, db, ports) as urls:
                    latency = fill_and_time(urls[0], system, args.keys)
                    get = wrk_all(urls, system, "GET", args.seconds, args.connections, args.keys)
                    put = wrk_all(urls, system, "PUT", args.seconds, args.connections, args.keys)
                rows.setdefault(system.name, []).append((*latency, *get, *put))

    med = {
        name: [statistics.median(col) for col in zip(*runs, strict=True)]
        for name, runs in rows.items()
    }
    minimal, reference = med["minimal FastAPI + sqlite3"], med["reference BotWire replica"]
    bare, keyless = med["bare ASGI app (the stack's limit)"], med["botwire"]
    client = med["botwire, client write path"]
    print(
        f"{args.workers} workers, {args.connections} connections, {args.seconds} s per wrk run, "
        f"~1 KB values, SQLite synchronous=FULL, median of {args.rounds} round(s)\n"
    )
    print(
        "| server | seq GET p50 / p99 ms | seq PUT p50 / p99 ms | GET req/s | PUT req/s | "
        "GET p99 ms | PUT p99 ms | GET vs minimal | PUT vs minimal | GET vs reference | "
        "PUT vs reference | non-2xx |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for name, m in med.items():
        print(
            f"| {name} | {m[0]:.2f} / {m[1]:.2f} | {m[2]:.2f} / {m[3]:.2f} | {m[4]:,.0f} | "
            f"{m[7]:,.0f} | {m[5]:.1f} | {m[8]:.1f} | {m[4] / minimal[4]:.2f}x | "
            f"{m[7] / minimal[7]:.2f}x | {m[4] / reference[4]:.2f}x | "
            f"{m[7] / reference[7]:.2f}x | {int(m[6] + m[9])} |"
        )
    ratios = [
        ("client write path / keyless PUT", client[7] / keyless[7], ">= 0.9", 0.9),
        ("client write path / reference PUT", client[7] / reference[7], ">= 3", 3.0),
        ("botwire GET / bare ASGI GET", keyless[4] / bare[4], ">= 0.5", 0.5),
    ]
    print()
    for label, ratio, goal, floor in ratios:
        print(f"goal: {label} {ratio:.2f}x ({goal}: {'met' if ratio >= floor else 'MISSED'})")
    p99 = client[8]
    print(f"goal: client write path p99 {p99:.1f} ms (< 20 ms: {'met' if p99 < 20 else 'MISSED'})")
    if "botwire app, granian" in med:
        on_granian, granian_bare = med["botwire app, granian"], med["bare ASGI app, granian"]
        print(
            f"server choice: botwire GET on granian / on botwire serve (uvicorn) "
            f"{on_granian[4] / keyless[4]:.2f}x, PUT {on_granian[7] / keyless[7]:.2f}x; "
            f"botwire / bare app on granian: GET {on_granian[4] / granian_bare[4]:.2f}x"
        )


if __name__ == "__main__":
    main()
