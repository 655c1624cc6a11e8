"""The read cache in front of the HTTP store, against the real app on a loopback uvicorn.

The conformance suite already runs over the cached store; these tests cover
what only a cache has: sharing, staleness, revalidation, safety of the files.
"""

from __future__ import annotations

import logging
import os
import random
import stat
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import diskcache
import httpx
import pytest

from botwire import Conflict, Memory, _registry
from botwire.ops import Record, Stats
from botwire.stores.base import Limits
from botwire.stores.cached import CachedStore, Entry, newer
from botwire.stores.http import HttpStore

from ..loopback import Server, host

# -- safety of the cache directory -------------------------------------------------------


class Exploit:
    """Unpickling this creates the directory ``marker``: proof that code ran."""

    def __init__(self, marker: Path, padding: int = 0) -> None:
        self.marker, self.padding = marker, padding

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (str(self.marker),), {"padding": "x" * self.padding})


def test_a_planted_pickle_is_refused_not_executed(
    server: Server, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with Memory("agent", url=server.url) as mem:
        mem.set("small", "from the server")
        mem.set("large", "from the server")
        directory = _registry.cache_dir(server.url, None)
        assert isinstance(mem.store, CachedStore) and mem.store.directory == directory
        planted = diskcache.Cache(directory)  # diskcache's default Disk pickles
        in_db, in_file = tmp_path / "ran-in-db", tmp_path / "ran-from-file"
        planted.set("agent\x00small", Exploit(in_db))
        planted.set("agent\x00large", Exploit(in_file, padding=100_000))  # a .val file
        planted.close()
        with caplog.at_level(logging.WARNING, logger="botwire"):
            assert mem.get("small") == "from the server"
            assert mem.get("large") == "from the server"
    assert not in_db.exists() and not in_file.exists()
    assert caplog.text.count("refused entry") == 2


def test_the_cache_directory_is_private(server: Server, tmp_path: Path) -> None:
    loose = tmp_path / "loose"
    loose.mkdir(mode=0o755)
    loose.chmod(0o755)
    store, _ = host(server, loose)
    assert stat.S_IMODE(loose.stat().st_mode) == 0o700
    store.close()
    made = tmp_path / "made" / "here"
    store, _ = host(server, made)
    assert stat.S_IMODE(made.stat().st_mode) == 0o700
    store.close()


# -- sharing, staleness, revalidation ---------------------------------------------------


def test_processes_on_one_host_share_the_cache(server: Server, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    code = (
        "import sys; from botwire import Memory\n"
        "Memory('agent', url=sys.argv[1], max_stale=60).set('prefs', {'from': 'child'})"
    )
    env = {**os.environ, "BOTWIRE_CACHE_DIR": str(cache)}
    subprocess.run([sys.executable, "-c", code, server.url], env=env, check=True, timeout=60)
    store, seen = host(server, Path(_registry.cache_dir(server.url, None, root=str(cache))))
    store.max_stale = 60
    assert Memory("agent", url=store).get("prefs") == {"from": "child"}
    assert seen == []  # the child's write-through answered: no request at all
    store.close()


def test_two_hosts_see_each_others_writes_within_max_stale(server: Server, tmp_path: Path) -> None:
    a_store, _ = host(server, tmp_path / "a", max_stale=0.5)
    b_store, b_seen = host(server, tmp_path / "b", max_stale=0.5)
    a, b = Memory("agent", url=a_store), Memory("agent", url=b_store)
    a.set("k", 1)
    assert b.get("k") == 1
    a.set("k", 2)
    assert b.get("k") == 1  # B's cache may lag A ...
    assert b.get("k", fresh=True) == 2  # ... unless asked for fresh
    a.set("k", 3)
    time.sleep(0.6)
    assert b.get("k") == 3  # ... and never by more than max_stale
    b_seen.clear()
    time.sleep(0.6)
    assert b.get("k") == 3
    assert [r.status_code for r in b_seen] == [304]  # revalidated, the value not sent again
    a.delete("k")
    time.sleep(0.6)
    assert b.get("k") is None
    a_store.close()
    b_store.close()


def test_a_stale_cache_never_loses_an_update(server: Server, tmp_path: Path) -> None:
    a_store, _ = host(server, tmp_path / "a", max_stale=3600)
    b_store, _ = host(server, tmp_path / "b", max_stale=3600)
    a, b = Memory("agent", url=a_store), Memory("agent", url=b_store)
    for _ in range(20):  # each host's cache is always one write behind
        a.update("n", lambda n: n + 1, 0)
        b.update("n", lambda n: n + 1, 0)
    assert a.get("n", fresh=True) == 40
    version = b.get_item("n").version  # type: ignore[union-attr]
    a.set("n", 0)
    with pytest.raises(Conflict):
        b.set("n", 1, if_version=version)  # compare-and-set is checked by the server
    assert b.get("n") == 0  # and the conflict dropped B's stale entry
    a_store.close()
    b_store.close()


# -- exactly once under lost responses --------------------------------------------------


class LosingTransport(httpx.HTTPTransport):
    """Loses 30% of responses after the server has answered (and so committed)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        self.rng = random.Random(seed)
        self.lost = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        response.read()
        if self.rng.random() < 0.3:
            self.lost += 1
            raise httpx.ReadError("response lost", request=request)
        return response


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_lost_responses_apply_every_write_exactly_once(tmp_path: Path, cached: bool) -> None:
    server = Server(tmp_path, Limits(writes_per_day=10_000))  # so writes are counted
    transport = LosingTransport(seed=7)
    client = httpx.Client(base_url=server.url, transport=transport)
    store: Any = HttpStore(server.url, client=client, timeout=30)
    if cached:
        store = CachedStore(store, tmp_path / "cache")
    mem = Memory("agent", url=store)
    for i in range(100):
        mem.incr("counter")
        mem.append("log", i)
        if i % 10 == 0:
            mem.set_many({f"page:{i}": i, "last": i})
    assert transport.lost > 50  # the faults really happened
    assert mem.get("counter", fresh=True) == 100
    assert mem.get("log", fresh=True) == list(range(100))
    stats = store.batch("agent", [Stats()])[0]
    assert stats.writes_today == 100 + 100 + 10  # each write (a batch) counted once
    store.close()
    server.stop()


# -- the ordering of racing answers -----------------------------------------------------


def _record(version: int) -> Record:
    return Record(b"1", version, 0.0, 0.0, None)


@pytest.mark.parametrize(
    ("old", "new", "kept"),
    [
        (None, Entry(None, 1, 2), "new"),
        (Entry(_record(5), 1, 2), Entry(_record(6), 0, 1), "new"),  # versions beat clocks
        (Entry(_record(6), 0, 1), Entry(_record(5), 1, 2), "old"),
        (Entry(_record(5), 0, 1), Entry(_record(5), 2, 3), "new"),  # same version: newer check
        (Entry(_record(5), 0, 1), Entry(None, 2, 3), "new"),  # deleted after it was read
        (Entry(None, 2, 3), Entry(_record(5), 0, 1), "old"),  # a read from before a delete
        (Entry(None, 1, 3), Entry(_record(5), 2, 4), "neither"),  # overlapping: unknown order
        (Entry(_record(5), 2, 4), Entry(None, 1, 3), "neither"),
    ],
)
def test_racing_answers_keep_the_newer_or_neither(old: Entry | None, new: Entry, kept: str) -> None:
    expected = {"new": new, "old": old, "neither": None}[kept]
    assert newer(old, new) is expected


def test_writes_whose_values_do_not_fit_one_answer_still_apply(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cache reads back what a write changed, in the same batch; when those values are
    over the server's max_answer_bytes, the writes go alone (they failed before)."""
    from botwire_server import Settings, create_app

    from ..loopback import loopback

    app = create_app(Settings(db=str(tmp_path / "s.db"), max_answer_bytes=50_000))
    url, shutdown = loopback().serve(app)
    monkeypatch.setenv("BOTWIRE_CACHE_DIR", str(tmp_path / "cache"))
    try:
        with Memory("ns", url=url) as memory:
            assert isinstance(memory.store, CachedStore)
            memory.set("big", ["x" * 1000] * 30)  # 30 KB: read back with the write
            assert memory.append("big", "y", "z") == 32  # 32 KB more would not fit alone...
            memory.set_many({f"k{n}": "v" * 3000 for n in range(30)})  # ...nor 90 KB
            assert memory.get("big")[-1] == "z" and memory.get("k29") == "v" * 3000
            assert memory.count() == 31
    finally:
        shutdown()
