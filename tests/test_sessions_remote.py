"""Sessions and @remember through the server: round trips counted, two clients racing.

(Their behaviour on every store is in tests/conformance/test_sessions.py.)
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from botwire import Conflict, Memory

from .loopback import Server, host


@pytest.mark.parametrize("cached", [False, True], ids=["uncached", "cached"])
def test_a_session_is_one_round_trip_to_load_and_one_to_commit(
    server: Server, tmp_path: Path, cached: bool
) -> None:
    store, seen = host(server, tmp_path / "cache" if cached else None)
    mem = Memory("user-42", url=store)
    mem.set_many({f"turn:{i}": {"n": i} for i in range(20)} | {"prefs": {"tone": "brief"}})
    seen.clear()
    with mem.session(prefetch="turn:", keys=["prefs", "absent"]) as s:
        assert len(seen) == 1  # the prefix and both keys in one request
        for i in range(20):
            s[f"turn:{i}"]["seen"] = True
        s["prefs"]["tz"] = "UTC"
        s["new"] = 1
        del s["turn:0"]
        assert len(seen) == 1  # reads and writes stay local
    assert len(seen) == 2 and seen[1].request.method == "POST"  # one atomic batch
    assert mem.get("prefs", fresh=True) == {"tone": "brief", "tz": "UTC"}
    assert mem.get("turn:5", fresh=True) == {"n": 5, "seen": True}
    assert mem.get("turn:0", fresh=True) is None
    seen.clear()
    with mem.session(prefetch="turn:"):
        pass
    assert len(seen) == 1  # nothing changed: no commit at all
    store.close()


def test_two_clients_racing_through_the_server(server: Server, tmp_path: Path) -> None:
    a_store, _ = host(server, tmp_path / "a", max_stale=3600)
    b_store, _ = host(server, tmp_path / "b", max_stale=3600)
    a, b = Memory("shared", url=a_store), Memory("shared", url=b_store)
    a.set("plan", ["draft"])
    b.get("plan")  # B's cache now holds the draft: sessions must not trust it
    with pytest.raises(Conflict) as raised, b.session(keys=["plan"]) as s:
        s["plan"].append("b's step")
        a.set("plan", ["draft", "a's step"])
    assert raised.value.keys == ["plan"]
    assert b.get("plan", fresh=True) == ["draft", "a's step"]

    @b.remember("plan", on_conflict="raise")
    def plan_more(plan: list[str]) -> None:
        plan.append("b again")
        a.set("plan", [*plan[:-1], "a again"])  # A wins the race inside B's call

    with pytest.raises(Conflict):
        plan_more()
    assert a.get("plan", fresh=True) == ["draft", "a's step", "a again"]
    a_store.close()
    b_store.close()


WORKER = """
import sys
from botwire import Conflict, Memory

import os, time
while not os.path.exists(sys.argv[-1]):  # start together
    time.sleep(0.001)
mem = Memory("shared", url=sys.argv[1])
done = 0
while done < int(sys.argv[2]):
    try:
        with mem.session(keys=["count", "log"]) as s:
            s["count"] = s.get("count", 0) + 1
            s["log"] = s.get("log", []) + [sys.argv[3]]
    except Conflict:
        continue  # someone else committed first: read again
    done += 1
"""


def test_sessions_in_racing_processes_lose_no_update(tmp_path: Path) -> None:
    url, go = f"sqlite:///{tmp_path}/shared.db", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, "100", f"w{i}", str(go)], stderr=subprocess.PIPE
        )
        for i in range(4)
    ]
    go.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    mem = Memory("shared", url=url)
    log = mem.get("log")
    assert mem.get("count") == 400 and len(log) == 400
    assert {w: log.count(w) for w in set(log)} == {f"w{i}": 100 for i in range(4)}
