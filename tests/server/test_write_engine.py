"""The write engine (issue 12): idempotency inside the write, group commit for every write,
each batch of a group alone, replay records bounded per namespace."""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import Memory, StoreError
from botwire._codec import encode
from botwire.ops import Idempotency, Incr, Put, Scan
from botwire.stores import _logic
from botwire.stores.base import Limits
from botwire.stores.sqlite import SqliteStore

from .conftest import LiveServer


def test_a_poisoned_batch_fails_alone_in_its_group(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Any exception inside one batch (not only a BotwireError) fails that batch alone."""
    store = SqliteStore(tmp_path / "g.db", limits=Limits(writes_per_day=100))
    real = _logic.incremented

    def poisoned(current: bytes | None, by: int | float) -> tuple[int | float, bytes]:
        if by == 13:
            raise RuntimeError("a bug in one batch")
        return real(current, by)

    monkeypatch.setattr(_logic, "incremented", poisoned)
    answers = store.batch_group(
        [
            ("a", [Incr("n", 1)], None),
            ("b", [Put("k", encode(1)), Incr("n", 13)], Idempotency("req", "f")),
            ("c", [Incr("n", 2)], Idempotency("other", "f")),
        ]
    )
    assert answers is not None
    assert answers[0] == [1] and answers[2] == [2]
    assert isinstance(answers[1], StoreError)
    assert Memory("b", url=store).get("k") is None  # the poisoned batch left nothing
    again = store.batch_group([("b", [Put("k", encode(1)), Incr("n", 1)], Idempotency("req", "f"))])
    assert again is not None and isinstance(again[0], list)  # its key was not kept: it applies
    store.close()


def test_a_keyed_write_is_one_transaction_with_its_record(tmp_path: Path) -> None:
    """The record is written in the write's transaction: a retry replays it, exactly once."""
    path = tmp_path / "k.db"
    store = SqliteStore(path, limits=Limits(writes_per_day=100))
    key = Idempotency("req", "f")
    first = store.batch("ns", [Incr("n", 5)], idempotency=key)
    assert store.batch("ns", [Incr("n", 5)], idempotency=key) == first == [5]
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT count(*) FROM idempotency WHERE results IS NULL").fetchone() == (
            0,
        )  # no claim without its answer, ever
    store.close()


def test_replay_records_keep_no_reads_and_stay_within_the_quota(tmp_path: Path) -> None:
    """A keyed batch whose 100 scans brought 1.5 MB keeps only its writes' results (a few
    hundred bytes; a repeat runs the reads again), and a namespace's records never outgrow
    its quota (the oldest go first); item bytes are not changed."""
    path = tmp_path / "q.db"
    store = SqliteStore(path, limits=Limits(max_bytes=20_000, max_answer_bytes=10_000_000))
    mem = Memory("ns", url=store)
    for i in range(50):
        mem.set(f"item{i:02}", "x" * 300)
    size_before = path.stat().st_size + Path(f"{path}-wal").stat().st_size
    for i in range(150):
        ops = [Put("k", encode(i)), *[Scan("item")] * 100]
        results = store.batch("ns", ops, idempotency=Idempotency(f"req-{i}", "f"))
        assert len(results[1]) == 50
    with sqlite3.connect(path) as raw:
        (records,) = raw.execute("SELECT sum(length(results)) FROM idempotency").fetchone()
        (replay, stored) = raw.execute("SELECT replay, bytes FROM ns_stats").fetchone()
    assert replay <= 20_000 and records < 20_000
    assert stored < 20_000  # the items alone
    grown = path.stat().st_size + Path(f"{path}-wal").stat().st_size - size_before
    assert grown < 10_000_000, grown  # WAL churn; reads kept for replay: 225 MB
    replay_again = store.batch(
        "ns",
        [Put("k", encode(149)), *[Scan("item")] * 100],
        idempotency=Idempotency("req-149", "f"),
    )
    assert replay_again[0] == results[0] and len(replay_again[1]) == 50  # reads run again
    store.close()


@pytest.mark.slow
def test_sigkill_mid_keyed_writes_never_wedges_a_retry(
    live_server: Callable[..., LiveServer],
) -> None:
    """kill -9 during keyed writes: retries apply once, none gets idempotency_key_in_use."""
    server = live_server(workers=2, writes_per_day=0)
    errors: list[BaseException] = []
    results: list[Any] = []
    stop = time.monotonic() + 60

    def client(n: int) -> None:
        with Memory(f"ns{n % 2}", url=server.url, timeout=20, cache=False) as mem:
            for _ in range(40):
                if time.monotonic() > stop:
                    return
                try:
                    results.append((n % 2, mem.incr("counter")))
                except BaseException as exc:
                    errors.append(exc)

    threads = [threading.Thread(target=client, args=(n,)) for n in range(6)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    assert server.proc is not None
    os.killpg(server.proc.pid, signal.SIGKILL)
    server.proc.wait(timeout=10)
    server.start()
    for t in threads:
        t.join(timeout=90)
    assert not errors, errors[:3]
    for ns in (0, 1):
        mine = sorted(v for n, v in results if n == ns)
        assert mine == list(range(1, len(mine) + 1))  # each acknowledged incr counted once
        final = httpx.get(f"{server.url}/v1/ns/ns{ns}/keys/counter").json()["value"]
        assert final == len(mine)


@pytest.mark.slow
def test_a_heavy_read_never_holds_a_light_one(live_server: Callable[..., LiveServer]) -> None:
    """A batch of 1,000 counts over 30,000 keys runs off the event loop: a GET of another
    namespace sent while it runs is answered before it (one worker)."""
    server = live_server(workers=1, writes_per_day=0, max_bytes=0)
    with httpx.Client(base_url=server.url, timeout=60) as http:
        for start in range(0, 30_000, 1000):
            ops = [{"op": "put", "key": f"k{i:05}", "value": i} for i in range(start, start + 1000)]
            assert http.post("/v1/ns/big/batch", json={"ops": ops}).status_code == 200
        assert http.put("/v1/ns/small/keys/k", json={"value": 1}).status_code == 200
    finished: dict[str, float] = {}

    def heavy() -> None:
        with httpx.Client(base_url=server.url, timeout=120) as http:
            ops = [{"op": "count", "prefix": "k"}] * 1000
            answer = http.post("/v1/ns/big/batch", json={"ops": ops})
            assert answer.status_code == 200 and answer.json()["results"][0] == 30_000
        finished["heavy"] = time.monotonic()

    thread = threading.Thread(target=heavy)
    thread.start()
    time.sleep(0.3)  # the heavy batch is on the server by now
    with httpx.Client(base_url=server.url, timeout=60) as http:
        assert http.get("/v1/ns/small/keys/k").status_code == 200
    finished["light"] = time.monotonic()
    thread.join(timeout=120)
    assert finished["light"] < finished["heavy"], finished
