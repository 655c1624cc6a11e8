"""The server's change feed: a remote watcher riding out a restart, resuming from a raw
cursor, replicas on PostgreSQL, and what a hostile client may send to the route."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from typing import Any

import httpx
import pytest

from botwire import Memory, Unavailable

from ..postgres import fresh_schema_url
from ..server.conftest import LiveServer
from .conftest import Follower, check_feed, key_is, live_items, new_ns


def feed(server: LiveServer, ns: str, query: str = "") -> dict[str, Any]:
    response = httpx.get(f"{server.url}/v1/ns/{ns}/changes?{query}", timeout=70)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def put(server: LiveServer, ns: str, key: str, value: Any) -> int:
    response = httpx.put(f"{server.url}/v1/ns/{ns}/keys/{key}", json={"value": value}, timeout=10)
    assert response.status_code == 200, response.text
    return int(response.json()["version"])


@pytest.mark.slow
def test_a_remote_watcher_rides_out_a_server_restart(
    serve: Callable[..., LiveServer], memories: Callable[..., Memory]
) -> None:
    server = serve()
    ns = new_ns("restart")
    mem = memories(ns, server.url, cache=False)
    follower = Follower(mem, key_is("after-2"), values=True)
    put(server, ns, "before", 1)
    follower.wait_for(lambda seen: [c.key for c in seen] == ["before"], timeout=10)
    cursor = feed(server, ns, "limit=0")["next"]  # a raw reader's cursor, before the crash

    server.kill()  # SIGKILL while the watcher's long poll is held
    with Memory(ns, url=f"sqlite:///{server.db}", cache=False) as embedded:  # the same file
        embedded.set("during", 2)
        embedded.delete("before")
    server.start()  # the same port and file
    put(server, ns, "after-1", 3)
    put(server, ns, "after-2", 4)
    changes = follower.join(30)

    assert [(c.key, c.deleted) for c in changes] == [
        ("before", False),
        ("during", False),
        ("before", True),
        ("after-1", False),
        ("after-2", False),
    ]
    check_feed(changes, live_items(mem), {"before", "during", "after-1", "after-2"})
    # the raw resume: the cursor from before the restart gives exactly the later changes
    later = feed(server, ns, f"since={cursor}")
    assert [(c["key"], c["version"]) for c in later["changes"]] == [
        (c.key, c.version) for c in changes[1:]
    ]
    assert feed(server, ns, f"since={later['next']}&wait=1")["changes"] == []


@pytest.mark.slow
def test_a_graceful_stop_answers_waiting_watchers_at_once(serve: Callable[..., LiveServer]) -> None:
    """SIGTERM with a watch request held: the held request is answered at once (uvicorn
    used to wait for it until its graceful timeout, 10 s, then cancel it unanswered)."""
    server = serve()
    answers: list[Any] = []

    def wait() -> None:
        try:
            answers.append(httpx.get(f"{server.url}/v1/ns/held/changes?wait=60", timeout=70))
        except httpx.HTTPError as exc:
            answers.append(exc)

    waiter = threading.Thread(target=wait, daemon=True)
    waiter.start()
    time.sleep(1.0)  # the poll is held by now (a refusal would answer at once)
    assert server.proc is not None
    started = time.monotonic()
    os.killpg(server.proc.pid, signal.SIGTERM)
    with contextlib.suppress(subprocess.TimeoutExpired):
        server.proc.wait(timeout=5)
    took = time.monotonic() - started
    stopped = server.proc.poll() is not None
    server.kill()  # not another 5 s of waiting in the teardown
    assert stopped, f"still running {took:.1f}s after SIGTERM, with one watcher waiting"
    waiter.join(5)
    assert isinstance(answers[0], httpx.Response) and answers[0].status_code == 200, answers


@pytest.mark.slow
def test_replicas_on_postgresql_wake_each_other_s_watchers(
    serve: Callable[..., LiveServer], memories: Callable[..., Memory]
) -> None:
    url = fresh_schema_url()
    a, b = serve(url), serve(url)
    ns = new_ns("replica")
    follower = Follower(memories(ns, a.url, cache=False), key_is("done"), values=True)
    started = time.monotonic()
    versions = [put(b, ns, f"k{i}", i) for i in range(5)] + [put(a, ns, "done", True)]
    changes = follower.join(10)
    assert [c.key for c in changes][-1] == "done" and time.monotonic() - started < 5
    assert {c.key: c.version for c in changes} == {
        **{f"k{i}": v for i, v in enumerate(versions[:5])},
        "done": versions[5],
    }
    # a raw long poll on one replica answers a write on the other within a second or so
    cursor = feed(a, ns, "limit=0")["next"]
    got: list[dict[str, Any]] = []
    poll = threading.Thread(target=lambda: got.append(feed(a, ns, f"since={cursor}&wait=30")))
    poll.start()
    time.sleep(0.3)  # waiting by now, to time the wake (if not, it answers at once anyway)
    written = time.monotonic()
    put(b, ns, "late", 1)
    poll.join(10)
    assert got and [c["key"] for c in got[0]["changes"]] == ["late"]
    assert time.monotonic() - written < 2.0


# -- what a hostile client sends ---------------------------------------------------------


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("wait=61", "invalid_request"),
        ("wait=-1", "invalid_request"),
        ("wait=1.5", "invalid_request"),
        ("wait=", "invalid_request"),
        ("wait=9999999999999999999999", "invalid_request"),
        ("values=maybe", "invalid_request"),
        ("values=TRUE", "invalid_request"),
        ("values=1", "invalid_request"),
        ("since=-1", "invalid_request"),
        (f"since={2**63}", "invalid_request"),
        ("since=1e3", "invalid_request"),
        ("limit=10001", "invalid_request"),
        ("limit=-1", "invalid_request"),
        ("prefix=%00", "invalid_name"),
        ("prefix=a%0Ab", "invalid_name"),
        ("prefix=%1B%5B2J", "invalid_name"),
        ("prefix=" + "x" * 5000, "invalid_name"),
    ],
)
def test_bad_queries_are_refused_at_once_even_with_wait(
    open_server: LiveServer, query: str, code: str
) -> None:
    if not query.startswith("wait="):
        query += "&wait=30"  # refused before anything waits
    started = time.monotonic()
    response = httpx.get(f"{open_server.url}/v1/ns/hostile/changes?{query}", timeout=10)
    assert response.status_code == 400, response.text
    assert response.json()["error"]["code"] == code
    assert time.monotonic() - started < 2


def test_edge_cursors_answer_sensibly(open_server: LiveServer) -> None:
    ns = new_ns("edge")
    version = put(open_server, ns, "k", 1)
    started = time.monotonic()
    # limit=0 with a wait: the cursor of now, at once
    assert feed(open_server, ns, "limit=0&wait=30") == {
        "changes": [],
        "next": version,
        "reset": False,
    }
    # the largest cursor: nothing after it, and the cursor never goes back
    top = 2**63 - 1
    assert feed(open_server, ns, f"since={top}") == {"changes": [], "next": top, "reset": False}
    # a change there answers a long poll at once, whatever the wait
    assert feed(open_server, ns, "since=0&wait=60")["changes"][0]["key"] == "k"
    assert time.monotonic() - started < 2
    # a namespace that does not exist yet is an empty feed, and invalid names are refused
    assert feed(open_server, new_ns("none"), "wait=0") == {"changes": [], "next": 0, "reset": False}
    bad = httpx.get(f"{open_server.url}/v1/ns/a%2F..%2Fb/changes?wait=30", timeout=10)
    assert bad.status_code in (400, 404) and time.monotonic() - started < 3


def test_a_waiting_watch_gives_up_after_its_wait(open_server: LiveServer) -> None:
    started = time.monotonic()
    answer = feed(open_server, new_ns("quiet"), "since=0&wait=1")
    took = time.monotonic() - started
    assert answer == {"changes": [], "next": 0, "reset": False}
    assert 0.9 <= took < 3


def test_watch_with_values_survives_values_past_the_answer_budget(
    serve: Callable[..., LiveServer], memories: Callable[..., Memory]
) -> None:
    """``Memory.watch(values=True)`` asks the server for pages of 100 changes with values;
    when those values pass ``--max-answer-bytes`` (by default 16 values of the default
    1 MiB maximum) the server refuses the page (400 ``answer_too_large``): the watcher
    asks again for half as many (it died of ``AnswerTooLarge`` before, asking for the
    same page for ever). Scaled down here: values of 4 KB, answers of at most 20 KB."""
    server = serve(max_answer_bytes=20_000, max_value_bytes=5_000)
    ns = new_ns("big")
    mem = memories(ns, server.url, cache=False)
    for i in range(10):
        mem.set(f"k{i}", "x" * 4_000)  # each allowed; ten do not fit one answer
    follower = Follower(mem, key_is("k9"), since=0, values=True)
    changes = follower.join(15)  # fails today: the watcher raised AnswerTooLarge
    assert [c.key for c in changes] == [f"k{i}" for i in range(10)]


def test_a_watcher_whose_server_never_answered_raises() -> None:
    """A wrong URL is not a restart: the first ask fails loudly instead of retrying for ever
    (with ``since`` given, no ask for the cursor of now comes first)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]  # closed again: nothing listens there
    mem = Memory("nobody", url=f"http://127.0.0.1:{port}", cache=False, timeout=1)
    started = time.monotonic()
    with pytest.raises(Unavailable):
        next(mem.watch(since=0))
    assert time.monotonic() - started < 10
