"""Embedded set/get latency: botwire's SQLite store against its peers, in one run.

    python benchmarks/embedded.py [--keys 10000] [--rounds 3] [--sync full normal]

Each system writes ``--keys`` keys of ~1 KB JSON (orjson encode/decode included,
every write changes the stored bytes), then reads them back in random order.
Systems run alternately, round by round, each on its own fresh file; the table
shows the median over rounds of each round's p50/p99, ops/s from the mean, and
ratios against raw ``sqlite3`` with the same schema and pragmas.

Peers: raw sqlite3 (autocommit upsert into botwire's table, the practical
floor), diskcache 5.6 (values stored as orjson bytes, not pickled), LangGraph's
SqliteStore (on a connection with the same pragmas) and sqlitedict (which
forces ``synchronous=OFF``: it never fsyncs, so it is shown at its own setting).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

Setter = Callable[[str, Any], None]
Getter = Callable[[str], Any]
SYSTEMS: dict[str, Callable[[Path, str], tuple[Setter, Getter, Callable[[], None]]]] = {}


def system(name: str) -> Callable[[Any], Any]:
    def register(fn: Any) -> Any:
        SYSTEMS[name] = fn
        return fn

    return register


@system("botwire")
def _botwire(tmp: Path, sync: str) -> tuple[Setter, Getter, Callable[[], None]]:
    from botwire import Memory

    mem = Memory("bench", url=f"sqlite:///{tmp}/botwire.db?synchronous={sync}")
    return mem.set, mem.get, mem.close


@system("raw sqlite3")
def _raw(tmp: Path, sync: str) -> tuple[Setter, Getter, Callable[[], None]]:
    import sqlite3

    from botwire.stores.sqlite import ITEMS_TABLE

    conn = sqlite3.connect(tmp / "raw.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    for statement in ITEMS_TABLE:  # botwire's table and index, without its version sequence
        conn.execute(statement)
    upsert = (
        "INSERT INTO items VALUES ('bench', ?, ?, 0, ?, ?, NULL, NULL) ON CONFLICT (ns, key) "
        "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at"
    )
    select = "SELECT value FROM items WHERE ns = 'bench' AND key = ?"

    def set_(key: str, value: Any) -> None:
        now = time.time()
        conn.execute(upsert, (key, orjson.dumps(value), now, now))

    def get(key: str) -> Any:
        row = conn.execute(select, (key,)).fetchone()
        return None if row is None else orjson.loads(row[0])

    return set_, get, conn.close


@system("diskcache")
def _diskcache(tmp: Path, sync: str) -> tuple[Setter, Getter, Callable[[], None]]:
    import diskcache

    level = {"full": 2, "normal": 1}[sync]
    cache = diskcache.Cache(str(tmp / "diskcache"), sqlite_synchronous=level)

    def set_(key: str, value: Any) -> None:
        cache.set(key, orjson.dumps(value))

    def get(key: str) -> Any:
        raw = cache.get(key)
        return None if raw is None else orjson.loads(raw)

    return set_, get, cache.close


@system("langgraph SqliteStore")
def _langgraph(tmp: Path, sync: str) -> tuple[Setter, Getter, Callable[[], None]]:
    import sqlite3

    from langgraph.store.sqlite import SqliteStore

    conn = sqlite3.connect(tmp / "lg.db", isolation_level=None, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute(f"PRAGMA synchronous={sync}")
    store = SqliteStore(conn)
    store.setup()

    def set_(key: str, value: Any) -> None:
        store.put(("bench",), key, value)

    def get(key: str) -> Any:
        item = store.get(("bench",), key)
        return None if item is None else item.value

    return set_, get, conn.close


@system("sqlitedict (sync OFF)")
def _sqlitedict(tmp: Path, sync: str) -> tuple[Setter, Getter, Callable[[], None]]:
    from sqlitedict import SqliteDict

    db = SqliteDict(
        str(tmp / "sd.db"),
        autocommit=True,
        journal_mode="WAL",
        encode=orjson.dumps,
        decode=orjson.loads,
    )

    def set_(key: str, value: Any) -> None:
        db[key] = value

    return set_, db.get, db.close


def value_for(i: int, round_: int) -> dict[str, Any]:
    """About 1 KB of JSON that differs for every write."""
    return {
        "user": f"user-{i}",
        "round": round_,
        "preferences": {"format": "json", "language": "en", "tone": "brief", "tz": "UTC"},
        "history": [{"role": "user", "content": f"message {j} of {i}"} for j in range(12)],
        "summary": "lorem ipsum dolor sit amet " * 12,
        "score": i * 0.5,
    }


def measure(fn: Callable[[], Any]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def one_round(name: str, sync: str, keys: int, round_: int) -> dict[str, list[float]]:
    tmp = Path(tempfile.mkdtemp(prefix="botwire-bench-"))
    try:
        set_, get, close = SYSTEMS[name](tmp, sync)
        names = [f"key-{i:05d}" for i in range(keys)]
        values = [value_for(i, round_) for i in range(keys)]
        sets = [measure(lambda k=k, v=v: set_(k, v)) for k, v in zip(names, values, strict=True)]
        random.Random(round_).shuffle(names)
        gets = [measure(lambda k=k: get(k)) for k in names]
        assert get(names[0]) is not None
        close()
        return {"set": sets, "get": gets}
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def summarize(samples: list[list[float]]) -> tuple[float, float, float]:
    """Median over rounds of (p50 µs, p99 µs, ops/s)."""
    p50s, p99s, rates = [], [], []
    for s in samples:
        ordered = sorted(s)
        p50s.append(ordered[len(ordered) // 2] * 1e6)
        p99s.append(ordered[int(len(ordered) * 0.99)] * 1e6)
        rates.append(len(s) / sum(s))
    return statistics.median(p50s), statistics.median(p99s), statistics.median(rates)


def import_time_ms(runs: int = 7) -> tuple[float, float]:
    """Median ``import botwire`` cost: wall clock, and ``-X importtime``'s cumulative."""
    code = "import time; t = time.perf_counter(); import botwire; print(time.perf_counter() - t)"
    walls, cumulative = [], []
    for _ in range(runs):
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        walls.append(float(out.stdout) * 1000)
        out = subprocess.run(
            [sys.executable, "-X", "importtime", "-c", "import botwire"],
            capture_output=True,
            text=True,
        )
        last = [ln for ln in out.stderr.splitlines() if ln.rstrip().endswith("| botwire")][-1]
        cumulative.append(int(last.split("|")[1]) / 1000)
    return statistics.median(walls), statistics.median(cumulative)


def memory_creation_us(n: int = 20_000) -> float:
    """Median cost of ``Memory(f"user-{i}")`` on a URL already open in the process."""
    from botwire import Memory

    tmp = Path(tempfile.mkdtemp(prefix="botwire-bench-"))
    url = f"sqlite:///{tmp}/m.db"
    keep = Memory("warm", url=url)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        m = Memory(f"user-{i}", url=url)
        samples.append(time.perf_counter() - start)
        m.close()
    keep.close()
    shutil.rmtree(tmp, ignore_errors=True)
    return statistics.median(samples) * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--keys", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sync", nargs="+", default=["full", "normal"], choices=["full", "normal"])
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    args = parser.parse_args()

    print(
        f"{args.keys} keys of ~{len(orjson.dumps(value_for(0, 0)))} B JSON, "
        f"{args.rounds} rounds, median of per-round p50/p99\n"
    )
    print(
        "| system | synchronous | set p50 µs | set p99 µs | set ops/s | get p50 µs | "
        "get p99 µs | get ops/s | set vs raw | get vs raw |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|")
    for sync in args.sync:
        results: dict[str, dict[str, list[list[float]]]] = {
            n: {"set": [], "get": []} for n in args.systems
        }
        for round_ in range(args.rounds):
            for name in args.systems:  # alternate systems within each round
                got = one_round(name, sync, args.keys, round_)
                results[name]["set"].append(got["set"])
                results[name]["get"].append(got["get"])
        raw = {op: summarize(results["raw sqlite3"][op]) for op in ("set", "get")}
        for name in args.systems:
            s, g = summarize(results[name]["set"]), summarize(results[name]["get"])
            shown = "OFF" if name.startswith("sqlitedict") else sync.upper()
            print(
                f"| {name} | {shown} | {s[0]:.1f} | {s[1]:.1f} | {s[2]:,.0f} | {g[0]:.1f} | "
                f"{g[1]:.1f} | {g[2]:,.0f} | {s[0] / raw['set'][0]:.2f}x | "
                f"{g[0] / raw['get'][0]:.2f}x |"
            )
    wall, cumulative = import_time_ms()
    print(f"\nimport botwire: {wall:.1f} ms wall, {cumulative:.1f} ms by -X importtime (median)")
    print(f"Memory(...) on an open URL: {memory_creation_us():.2f} µs (median)")


if __name__ == "__main__":
    main()
