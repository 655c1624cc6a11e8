"""Remote memory latency: botwire's HTTP store cached and uncached, against Redis and bare clients.

    python benchmarks/remote.py [--keys 1000] [--rounds 3]

One sequential client on loopback, ~1 KB JSON values, encode/decode included,
p50 and p99 per call (medians over rounds; the systems alternate within each
round). The servers run as one uvicorn worker each on a fresh SQLite file
(synchronous=FULL):

* botwire, through ``Memory(url=...)``: cached (hits: the cache holds every key
  and ``max_stale`` is long), cached with ``max_stale=0`` (every read is a
  conditional GET answered 304), and uncached (``cache=False``);
* the floor for an uncached read: a bare ``httpx.Client`` GET to the minimal
  FastAPI + sqlite3 app (``peers/minimal_app.py``), and the stdlib-client floor,
  ``http.client`` on one keep-alive connection to the same app;
* redis-py against the local Redis (127.0.0.1:6379), values as JSON strings.

Goals: cached get p50 under 30 us and at least 3x faster than a Redis GET;
uncached get within 1.2x of the bare httpx GET.

Then writes under concurrency, the path users run: ``--processes`` client
processes each calling ``Memory.set`` (cached, as by default: each set is one
keyed batch with its write-through get) for ``--seconds`` against botwire with
2 workers, beside the same processes calling redis-py ``SET``: sets/s summed,
p50/p99 per call.
"""

from __future__ import annotations

import argparse
import http.client
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.server import free_port, running, systems
from botwire import Memory

TEXT = "lorem ipsum dolor sit amet, " * 35  # ~1 KB
Op = Callable[[int], object]


def value(n: int) -> dict[str, object]:
    return {"n": n, "text": TEXT}  # every write changes the stored bytes


def measure(op: Op, calls: int, keys: int) -> tuple[float, float]:
    """p50 and p99 in microseconds of ``op(i)`` over ``calls`` calls (after a warm-up)."""
    for i in range(min(calls, 50)):
        op(i % keys)
    samples = []
    for i in range(calls):
        start = time.perf_counter()
        op(i % keys)
        samples.append(time.perf_counter() - start)
    samples.sort()
    return samples[len(samples) // 2] * 1e6, samples[len(samples) * 99 // 100] * 1e6


def botwire_cases(url: str, keys: int, cache_dir: str) -> dict[str, Op]:
    import os

    os.environ["BOTWIRE_CACHE_DIR"] = cache_dir
    cached = Memory("bench", url=url, max_stale=3600)
    revalidated = Memory("bench", url=url, max_stale=0)
    uncached = Memory("bench", url=url, cache=False)
    counter = iter(range(10**9))
    for i in range(keys):
        cached.set(f"k{i}", value(i))  # written through: every key is in the cache
    return {
        "botwire get, cached (hit)": lambda i: cached.get(f"k{i}"),
        "botwire get, cached, max_stale=0 (304)": lambda i: revalidated.get(f"k{i}"),
        "botwire get, uncached": lambda i: uncached.get(f"k{i}"),
        "botwire set, cached (write-through)": lambda i: cached.set(f"k{i}", value(next(counter))),
        "botwire set, uncached": lambda i: uncached.set(f"k{i}", value(next(counter))),
    }


def floor_cases(url: str, keys: int) -> dict[str, Op]:
    client = httpx.Client(base_url=url)
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port))
    headers = {"content-type": "application/json"}
    counter = iter(range(10**9))
    for i in range(keys):
        client.put(f"/kv/k{i}", content=orjson.dumps(value(i)), headers=headers)

    def stdlib(method: str, path: str, body: bytes | None = None) -> bytes:
        try:
            conn.request(method, path, body=body, headers=headers)
            return conn.getresponse().read()
        except (http.client.RemoteDisconnected, ConnectionError):  # idle keep-alive timed out
            conn.close()
            conn.request(method, path, body=body, headers=headers)
            return conn.getresponse().read()

    return {
        "httpx GET, minimal FastAPI app": lambda i: orjson.loads(client.get(f"/kv/k{i}").content),
        "http.client GET, minimal FastAPI app": lambda i: orjson.loads(stdlib("GET", f"/kv/k{i}")),
        "httpx PUT, minimal FastAPI app": lambda i: client.put(
            f"/kv/k{i}", content=orjson.dumps(value(next(counter))), headers=headers
        ),
        "http.client PUT, minimal FastAPI app": lambda i: stdlib(
            "PUT", f"/kv/k{i}", orjson.dumps(value(next(counter)))
        ),
    }


def redis_cases(keys: int) -> dict[str, Op]:
    import redis

    r = redis.Redis(host="127.0.0.1", port=6379)
    r.ping()
    counter = iter(range(10**9))
    for i in range(keys):
        r.set(f"botwire-bench:k{i}", orjson.dumps(value(i)))
    return {
        "redis-py GET": lambda i: orjson.loads(r.get(f"botwire-bench:k{i}")),  # type: ignore[arg-type]
        "redis-py SET": lambda i: r.set(f"botwire-bench:k{i}", orjson.dumps(value(next(counter)))),
    }


def _set_for(target: str, n: int, seconds: float, cache_dir: str) -> list[float]:
    """One client process: ``set`` calls for ``seconds`` (50,000 at most); their latencies."""
    import os

    os.environ["BOTWIRE_CACHE_DIR"] = cache_dir
    if target == "redis":
        import redis

        r = redis.Redis(host="127.0.0.1", port=6379)
        call: Op = lambda i: r.set(f"botwire-bench:p{n}:k{i % 100}", orjson.dumps(value(i)))  # noqa: E731
    else:
        mem = Memory(f"bench-{n}", url=target)
        call = lambda i: mem.set(f"k{i % 100}", value(i))  # noqa: E731
    samples: list[float] = []
    end = time.monotonic() + seconds
    for i in range(50_000):
        if time.monotonic() > end:
            break
        start = time.perf_counter()
        call(i)
        samples.append(time.perf_counter() - start)
    return samples


def concurrent_sets(
    target: str, processes: int, seconds: float, cache_dir: str
) -> tuple[float, ...]:
    """(sets/s, p50 ms, p99 ms) of ``processes`` processes calling set at once."""
    import multiprocessing

    with multiprocessing.get_context("spawn").Pool(processes) as pool:
        runs = pool.starmap(_set_for, [(target, n, seconds, cache_dir) for n in range(processes)])
    samples = sorted(x for run in runs for x in run)
    total = sum(len(run) for run in runs)
    p50, p99 = samples[len(samples) // 2], samples[len(samples) * 99 // 100]
    return total / seconds, p50 * 1000, p99 * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=1000, help="keys filled, and calls timed")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--processes", type=int, default=4, help="concurrent client processes")
    parser.add_argument("--seconds", type=float, default=5.0, help="of concurrent sets")
    args = parser.parse_args()

    results: dict[str, list[tuple[float, float]]] = {}
    with tempfile.TemporaryDirectory(prefix="botwire-remote-bench-") as tmp:
        botwire_port, minimal_port = free_port(), free_port()
        botwire = systems(botwire_port, Path(tmp) / "botwire.db", 1)[0]
        minimal = systems(minimal_port, Path(tmp) / "minimal.db", 1)[1]
        with (
            running(botwire, Path(tmp) / "botwire.db", botwire_port) as botwire_url,
            running(minimal, Path(tmp) / "minimal.db", minimal_port) as minimal_url,
        ):
            cases = {
                **botwire_cases(botwire_url, args.keys, str(Path(tmp) / "cache")),
                **floor_cases(minimal_url, args.keys),
                **redis_cases(args.keys),
            }
            for _ in range(args.rounds):
                for name, op in cases.items():
                    results.setdefault(name, []).append(measure(op, args.keys, args.keys))

    med = {
        name: (statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs))
        for name, runs in results.items()
    }
    redis_get = med["redis-py GET"][0]
    httpx_get = med["httpx GET, minimal FastAPI app"][0]
    print(
        f"one sequential client on loopback, ~1 KB JSON values, {args.keys} calls per case, "
        f"median of {args.rounds} round(s)\n"
    )
    print("| call | p50 us | p99 us | p50 vs redis-py GET | p50 vs httpx GET |")
    print("|---|---|---|---|---|")
    for name, (p50, p99) in med.items():
        print(
            f"| {name} | {p50:.1f} | {p99:.1f} | {p50 / redis_get:.2f}x | {p50 / httpx_get:.2f}x |"
        )
    with tempfile.TemporaryDirectory(prefix="botwire-remote-bench-") as tmp:
        port = free_port()
        two_workers = systems(port, Path(tmp) / "botwire.db", 2)[0]
        with running(two_workers, Path(tmp) / "botwire.db", port) as url:
            concurrent = {
                "botwire Memory.set (2 workers)": concurrent_sets(
                    url, args.processes, args.seconds, str(Path(tmp) / "cache")
                ),
                "redis-py SET": concurrent_sets("redis", args.processes, args.seconds, tmp),
            }
    print(f"\n{args.processes} client processes at once, {args.seconds:.0f} s each\n")
    print("| call | sets/s | p50 ms | p99 ms |")
    print("|---|---|---|---|")
    for name, (rate, p50, p99) in concurrent.items():
        print(f"| {name} | {rate:,.0f} | {p50:.2f} | {p99:.2f} |")
    cached = med["botwire get, cached (hit)"][0]
    uncached = med["botwire get, uncached"][0]
    print(
        f"\ngoals: cached get p50 {cached:.1f} us (< 30 us: {'met' if cached < 30 else 'MISSED'}); "
        f"redis-py GET / cached get {redis_get / cached:.1f}x "
        f"(>= 3x: {'met' if redis_get >= 3 * cached else 'MISSED'}); "
        f"uncached get / httpx GET {uncached / httpx_get:.2f}x "
        f"(<= 1.2x: {'met' if uncached <= 1.2 * httpx_get else 'MISSED'})"
    )


if __name__ == "__main__":
    main()
