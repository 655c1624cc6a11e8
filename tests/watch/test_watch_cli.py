"""`botwire watch NAMESPACE` in a subprocess: JSON lines for changes another process makes,
on the embedded file ($BOTWIRE_HOME) and against a server (--url)."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from botwire import Memory

from ..server.conftest import LiveServer
from .conftest import Watch, new_ns


@pytest.fixture
def home_ns() -> Iterator[Memory]:
    """A namespace in the embedded file of $BOTWIRE_HOME (made: `watch` creates no store)."""
    with Memory(new_ns("cli"), cache=False) as mem:
        yield mem


def test_from_now_it_prints_each_change_another_process_makes(home_ns: Memory) -> None:
    before = home_ns.changes(limit=0).next
    home_ns.set("old", 1)
    watch = Watch(home_ns.namespace, "--count", "3")
    for i in range(200):  # a tick every 50 ms until it printed 3 lines (it starts "now")
        home_ns.set(f"tick-{i}", {"i": i})
        if len(watch.lines) >= 3 or watch.proc.poll() is not None:
            break
        time.sleep(0.05)
    lines = watch.finish()
    assert len(lines) == 3
    assert all(set(line) == {"key", "version", "deleted", "value", "expires_at"} for line in lines)
    ticks = [int(line["key"].split("-")[1]) for line in lines]
    assert ticks == list(range(ticks[0], ticks[0] + 3))
    assert [line["value"] for line in lines] == [{"i": i} for i in ticks]
    assert all(line["version"] > before + 1 for line in lines)  # never "old"


def test_since_prefix_and_no_values(home_ns: Memory) -> None:
    home_ns.set("p/a", 1, ttl=300)
    home_ns.set("q", 2)
    home_ns.set("p/b", 3)
    home_ns.delete("p/b")
    lines = Watch(home_ns.namespace, "--since", "0", "--prefix", "p/", "--count", "2").finish()
    assert [(line["key"], line["deleted"]) for line in lines] == [("p/a", False), ("p/b", True)]
    assert lines[0]["value"] == 1 and lines[0]["expires_at"] > time.time()
    assert "value" not in lines[1]
    bare = Watch(home_ns.namespace, "--since", "0", "--no-values", "--count", "3").finish()
    assert [line["key"] for line in bare] == ["p/a", "q", "p/b"]
    assert all(set(line) == {"key", "version", "deleted"} for line in bare)
    # a line's version is the cursor: --since it resumes after it
    rest = Watch(home_ns.namespace, "--since", str(bare[1]["version"]), "--count", "1").finish()
    assert rest == [{"key": "p/b", "version": bare[2]["version"], "deleted": True}]


def test_against_a_server(open_server: LiveServer) -> None:
    ns = new_ns("cli-remote")
    with Memory(ns, url=open_server.url, cache=False) as mem:
        cursor = mem.changes(limit=0).next
        mem.set("a", [1, "two"], ttl=60)
        mem.set("b", None)
        mem.delete("a")
        watch = Watch(ns, "--url", open_server.url, "--since", str(cursor), "--count", "3")
        for _ in range(100):  # replayed: b, then a's deletion; then c as it happens
            if len(watch.lines) >= 2 or watch.proc.poll() is not None:
                break
            time.sleep(0.05)
        mem.set("c", {"n": 1})
        lines = watch.finish()
    assert [(line["key"], line["deleted"]) for line in lines] == [
        ("b", False),
        ("a", True),
        ("c", False),
    ]
    assert [line["version"] for line in lines] == sorted({line["version"] for line in lines})
    assert "value" in lines[0] and lines[0]["value"] is None  # JSON null is a value
    assert lines[2]["value"] == {"n": 1} and "value" not in lines[1]


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--count", "0"], "--count"),
        (["--count", "-5"], "--count"),
        (["--since", "-1"], "since"),
        (["--since", str(2**63)], "since"),
        (["--prefix", "a\x01b"], "control character"),
    ],
)
def test_bad_arguments_exit_2_with_one_line(home_ns: Memory, args: list[str], says: str) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "watch", home_ns.namespace, *args],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 2 and done.stdout == ""
    assert len(done.stderr.strip().splitlines()) == 1 and says in done.stderr, done.stderr


def test_a_bad_namespace_or_a_missing_store_is_refused(home_ns: Memory) -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "botwire.cli", "watch", "bad/ns", "--count", "1"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert bad.returncode == 2 and "invalid namespace" in bad.stderr
    missing = subprocess.run(
        [
            sys.executable,
            "-m",
            "botwire.cli",
            "watch",
            "ns",
            "--url",
            "sqlite:////nonexistent/x.db",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert missing.returncode == 1 and len(missing.stderr.strip().splitlines()) == 1
