"""`Memory(url="http://...")` against a live `botwire serve` on loopback."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
from collections.abc import Callable

import pytest

from botwire import (
    AsyncMemory,
    Forbidden,
    Memory,
    StaleReadWarning,
    Unauthorized,
    Unavailable,
)

from .conftest import LiveServer


def _token(server: LiveServer, *patterns: str) -> str:
    made = subprocess.run(
        [
            sys.executable,
            "-m",
            "botwire.cli",
            "token",
            "create",
            "--db",
            str(server.db),
            *[a for p in patterns for a in ("--namespaces", p)],
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return made.stdout.strip()


def test_remote_memory_with_a_token(live_server: Callable[..., LiveServer]) -> None:
    server = live_server(workers=2, auth="token")
    secret = _token(server, "user-*")
    with Memory("user-1", url=server.url, api_key=secret) as mem:
        mem.set("prefs", {"tone": "brief"}, ttl=60)
        assert mem.get("prefs") == {"tone": "brief"}
        assert mem.incr("visits") == 1 and mem.append("log", "a", "b") == 2
        assert mem.list_keys() == ["log", "prefs", "visits"]
        assert 0 < mem.ttl("prefs") <= 60  # type: ignore[operator]
    with pytest.raises(Forbidden), Memory("team-a", url=server.url, api_key=secret) as other:
        other.get("k")
    with pytest.raises(Unauthorized), Memory("user-1", url=server.url, api_key="bw_x_y") as bad:
        bad.get("k")

    async def async_use() -> None:
        async with AsyncMemory("user-2", url=server.url, api_key=secret) as amem:
            await asyncio.gather(*(amem.incr("n") for _ in range(20)))
            assert await amem.get("n") == 20

    asyncio.run(async_use())


def test_the_client_recovers_from_a_restart_and_reports_a_dead_server(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(workers=1)
    mem = Memory("agent", url=server.url, timeout=3)
    mem.set("k", 1)
    server.kill()
    server.start()
    assert mem.get("k", fresh=True) == 1  # a new connection, transparently
    assert mem.set("k", 2) > 0
    server.kill()
    assert mem.get("k") == 2  # within max_stale the cache answers without the server
    start = time.monotonic()
    with pytest.raises(Unavailable):
        mem.get("k", fresh=True)
    assert time.monotonic() - start < 6
    mem.close()


def test_a_dead_server_gives_stale_reads_only_when_asked(
    live_server: Callable[..., LiveServer],
) -> None:
    server = live_server(workers=1)
    strict = Memory("agent", url=server.url, timeout=1, max_stale=0)
    lenient = Memory("agent", url=server.url, timeout=1, max_stale=0, stale_if_error=True)
    strict.set("prefs", {"tone": "brief"})
    strict.set("gone", 1, ttl=1)
    server.kill()
    with pytest.raises(Unavailable):
        strict.get("prefs")  # max_stale=0: every read asks the server
    with pytest.warns(StaleReadWarning, match="unreachable"):
        assert lenient.get("prefs") == {"tone": "brief"}  # the same cache, read stale
    time.sleep(1.1)
    with pytest.raises(Unavailable):
        lenient.get("gone")  # expired: never served, even stale
    server.start()
    time.sleep(1.0)  # the circuit breaker remembers a dead server for `timeout` seconds
    assert strict.get("prefs") == lenient.get("prefs") == {"tone": "brief"}
    strict.close()
    lenient.close()
