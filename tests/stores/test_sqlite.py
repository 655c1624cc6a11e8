"""SQLite specifics: pragmas, fork safety, lock timeouts, schema versions."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from botwire import DiskFull, Memory, StoreClosed, StoreError, Unavailable
from botwire.ops import Get
from botwire.stores.sqlite import SCHEMA_VERSION, SqliteStore


def _pragma(store: SqliteStore, name: str) -> object:
    return store._conn().execute(f"PRAGMA {name}").fetchone()[0]


def test_wal_and_synchronous_settings(tmp_path: Path) -> None:
    full = SqliteStore(tmp_path / "a.db")
    normal = SqliteStore(tmp_path / "b.db", synchronous="normal")
    assert _pragma(full, "journal_mode") == "wal"
    assert _pragma(full, "synchronous") == 2  # FULL
    assert _pragma(normal, "synchronous") == 1  # NORMAL
    full.close()
    normal.close()


def test_a_write_is_seen_by_another_process(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/x.db"
    with Memory("ns", url=url) as m:
        m.set("greeting", {"hello": "world"}, ttl=3600)
    code = f"from botwire import Memory; print(Memory('ns', url={url!r}).get('greeting'))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "{'hello': 'world'}"


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_a_forked_child_opens_its_own_connection(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "fork.db")
    mem = Memory("ns", url=store)
    mem.set("before", 1)
    parent_conn = store._conn()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: must not reuse the parent's connection
        ok = store._conn() is not parent_conn and mem.get("before") == 1
        mem.set("child", 2)
        store.close()  # closes only the child's own connections
        os.write(write, b"1" if ok else b"0")
        os._exit(0)
    os.close(write)
    _, status = os.waitpid(pid, 0)
    assert os.read(read, 1) == b"1" and status == 0
    assert mem.get("child") == 2 and store._conn() is parent_conn
    store.close()


def test_each_thread_gets_its_own_connection(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "t.db")
    conns: list[sqlite3.Connection] = []
    threads = [threading.Thread(target=lambda: conns.append(store._conn())) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len({id(c) for c in conns}) == 3
    store.close()
    with pytest.raises(StoreClosed):
        store.batch("ns", [])


def test_a_lock_held_too_long_gives_unavailable_not_database_locked(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "l.db", timeout=0.3)
    mem = Memory("ns", url=store)
    blocker = sqlite3.connect(tmp_path / "l.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")
    try:
        with pytest.raises(Unavailable, match=r"locked for 0\.3s"):
            mem.set("k", 1)
        assert mem.get("k") is None  # readers are not blocked by a writer in WAL
    finally:
        blocker.execute("ROLLBACK")
    mem.set("k", 1)
    assert mem.get("k") == 1
    store.close()


def test_32_writer_threads_take_turns_and_lose_nothing(tmp_path: Path) -> None:
    """A process's writers take turns through the store's lock (not SQLite's polling busy
    handler): every increment, batch and compare-and-set of 32 threads lands once."""
    mem = Memory("ns", url=SqliteStore(tmp_path / "t.db"))
    errors: list[BaseException] = []

    def work(n: int) -> None:
        try:
            for i in range(25):
                mem.incr("counter")
                mem.set_many({f"t{n}:{i}": i, "last": n})
                mem.update("log", lambda log, n=n: [*log, n], default=[])
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(32)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert errors == [] and not any(t.is_alive() for t in threads)
    assert mem.get("counter") == 32 * 25
    assert sorted(mem.get("log")) == sorted(n for n in range(32) for _ in range(25))
    assert mem.count("t") == 32 * 25
    mem.store.close()


def test_threads_waiting_for_their_turn_behind_a_stuck_writer_get_unavailable(
    tmp_path: Path,
) -> None:
    store = SqliteStore(tmp_path / "s.db", timeout=0.3)
    mem = Memory("ns", url=store)
    blocker = sqlite3.connect(tmp_path / "s.db", isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # another process holds the file's write lock
    raised: list[BaseException] = []

    def write(n: int) -> None:
        try:
            mem.set(f"k{n}", n)
        except BaseException as exc:
            raised.append(exc)

    threads = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        assert not any(t.is_alive() for t in threads)  # nobody waits forever for a turn
        assert len(raised) == 4 and all(isinstance(e, Unavailable) for e in raised)
    finally:
        blocker.execute("ROLLBACK")
    mem.set("k", 1)
    assert mem.get("k") == 1
    store.close()


def test_timeout_is_the_whole_wait_for_a_lock_held_by_another_process(tmp_path: Path) -> None:
    """Issue 11 #8: SQLite's busy handler and the retries after it share one deadline."""
    path = tmp_path / "held.db"
    mem = Memory("ns", url=f"sqlite:///{path}", timeout=1.0)
    mem.set("k", 0)  # the schema and this thread's connection exist before the lock is held
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import sqlite3, sys; c = sqlite3.connect(sys.argv[1], isolation_level=None); "
            "c.execute('BEGIN IMMEDIATE'); print('held', flush=True); sys.stdin.read()",
            str(path),
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"held\n"
        start = time.monotonic()
        with pytest.raises(Unavailable, match="locked"):
            mem.set("k", 1)
        waited = time.monotonic() - start
        assert 0.9 <= waited < 1.6, waited  # a bound on the promise, not a benchmark
    finally:
        holder.communicate(b"")
        mem.close()


def test_a_full_disk_raises_disk_full_keeps_the_data_and_recovers(tmp_path: Path) -> None:
    """Issue 11 #11: 'database or disk is full' is DiskFull (503), not a generic store error."""
    store = SqliteStore(tmp_path / "full.db")
    mem = Memory("ns", url=store)
    mem.set("kept", "before")
    pages = _pragma(store, "page_count")
    store._conn().execute(f"PRAGMA max_page_count = {int(pages) + 2}")  # SQLite's own "full"
    with pytest.raises(DiskFull) as raised:
        for i in range(200):
            mem.set(f"k{i}", "x" * 4000)
    assert raised.value.status == 503 and raised.value.code == "disk_full"
    assert mem.get("kept") == "before"
    store._conn().execute("PRAGMA max_page_count = 1073741823")  # space freed
    mem.set("after", 1)
    assert mem.get("after") == 1 and mem.get("kept") == "before"
    store.close()


def test_a_newer_schema_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "new.db"
    SqliteStore(path).close()
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    with pytest.raises(StoreError, match="schema"):
        SqliteStore(path)


def test_a_file_that_is_not_a_database_gives_store_error(tmp_path: Path) -> None:
    path = tmp_path / "junk.db"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError):
        SqliteStore(path)


def test_writes_reclaim_expired_rows_without_a_manual_sweep(tmp_path: Path) -> None:
    from ..conftest import FakeClock

    clock = FakeClock()
    store = SqliteStore(tmp_path / "sweep.db", clock=clock, sweep_interval=60)
    mem = Memory("ns", url=store)
    mem.set_many({f"k{i}": i for i in range(1200)}, ttl=10)

    def rows() -> int:
        return int(store._conn().execute("SELECT count(*) FROM items").fetchone()[0])

    clock.advance(11)
    assert rows() == 1200 and len(mem) == 0  # invisible at once, still on disk
    mem.set("a", 1)  # within the interval of the first sweep: nothing reclaimed yet
    assert rows() == 1201
    clock.advance(61)
    for i in range(3):  # a backlog is taken 500 rows a write
        mem.set(f"b{i}", i)
    assert rows() == 4
    store.close()


def test_writer_lock_lets_a_server_write_without_waiting(tmp_path: Path) -> None:
    from botwire._codec import encode
    from botwire.ops import Put

    holder = SqliteStore(tmp_path / "w.db", writer_lock=True)
    other = SqliteStore(tmp_path / "w.db", writer_lock=True)
    op = [Put("k", encode(1))]
    done = threading.Event()
    with holder._writer(wait=True):
        assert other.batch_group([("ns", op, None)], wait=False) is None  # step aside at once
        assert other.batch("ns", [Get("k")]) == [None]  # reads never wait
        waiter = threading.Thread(target=lambda: (other.batch("ns", op), done.set()))
        waiter.start()
        assert not done.wait(0.2)  # a blocking writer waits its turn...
    waiter.join(timeout=10)
    assert done.is_set()  # ...and goes as soon as the lock is free
    answers = other.batch_group([("ns", op, None), ("ns", [Put("k", encode(2), None, 999)], None)])
    assert isinstance(answers[0], list) and type(answers[1]).__name__ == "Conflict"
    assert Memory("ns", url=other).get("k") == 1  # the failed batch left nothing
    holder.close()
    other.close()


def test_the_change_feed_is_indexed_on_its_first_use(tmp_path: Path) -> None:
    """An embedded writer that never reads the feed does not maintain its index; the
    first reader makes it (a server's file has it from the start)."""
    path = tmp_path / "feed.db"

    def indexed() -> bool:
        with sqlite3.connect(path) as conn:
            found = conn.execute(
                "SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = 'items_feed'"
            ).fetchone()
        return found is not None

    store = SqliteStore(path)
    mem = Memory("ns", url=store)
    mem.set("a", 1)
    assert not indexed()
    assert [c.key for c in mem.changes().changes] == ["a"]
    assert indexed()
    store.close()
    SqliteStore(tmp_path / "server.db", accounting=True).close()
    with sqlite3.connect(tmp_path / "server.db") as conn:
        assert conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'items_feed'").fetchone()
