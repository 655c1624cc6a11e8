"""Issue 15, the library's part: what a new user meets in the first hour.

Errors that say what to do in Python terms (no key for a token server, a key an
open server ignores, a ``$BOTWIRE_URL`` left exported), ``ttl=`` as a
``datetime.timedelta`` wherever a TTL is taken, and a bare path given as a URL.
Each is checked through the public API, against a real server where one is involved.
"""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import warnings
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

import botwire
from botwire import (
    ApiKeyIgnoredWarning,
    AsyncMemory,
    InvalidRequest,
    InvalidURL,
    Memory,
    Unauthorized,
    Unavailable,
)
from botwire.stores.http import HttpStore
from botwire.stores.memory import MemoryStore

from .conftest import FakeClock
from .loopback import Server, loopback

# -- a server in token mode ---------------------------------------------------------------


class TokenServer:
    def __init__(self, directory: Path) -> None:
        from botwire_server import Settings, create_app

        self.app = create_app(Settings(db=str(directory / "tokens.db"), auth="token"))
        self.url, self.stop = loopback().serve(self.app)

    def token(self, *patterns: str) -> str:
        secret: str = self.app.state.tokens.create(list(patterns))[0]
        return secret


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[TokenServer]:
    served = TokenServer(tmp_path)
    yield served
    served.stop()


def botwire_cli(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwire.cli", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**os.environ, **env},
        timeout=60,
    )


# -- item 5: no key, an ignored key ---------------------------------------------------------


@pytest.mark.parametrize("cache", [False, True])
def test_no_key_against_a_token_server_says_to_set_one(
    token_server: TokenServer, cache: bool
) -> None:
    with Memory("team-a", url=token_server.url, cache=cache) as mem:
        with pytest.raises(Unauthorized) as caught:
            mem.get("k")
        with pytest.raises(Unauthorized) as written:
            mem.set("k", 1)
    for error in (caught.value, written.value):
        assert "BOTWIRE_API_KEY" in str(error) and "api_key=" in str(error), str(error)


def test_no_key_says_to_set_one_whatever_the_server_says() -> None:
    """A server of an older version answers in HTTP terms: the client adds the Python ones."""

    def older_server(request: httpx.Request) -> httpx.Response:
        error = {"code": "unauthorized", "message": "send Authorization: Bearer <token>"}
        return httpx.Response(401, json={"error": error})

    client = httpx.Client(
        base_url="http://old.example", transport=httpx.MockTransport(older_server)
    )
    store = HttpStore("http://old.example", client=client)
    with Memory("ns", url=store) as mem, pytest.raises(Unauthorized) as caught:
        mem.get("k")
    message = str(caught.value)
    assert message.startswith("send Authorization: Bearer <token>")
    assert "set BOTWIRE_API_KEY or pass api_key=" in message, message
    client.close()


def test_no_key_async_says_the_same(token_server: TokenServer) -> None:
    async def main() -> str:
        async with AsyncMemory("team-a", url=token_server.url) as mem:
            with pytest.raises(Unauthorized) as caught:
                await mem.incr("n")
        return str(caught.value)

    message = asyncio.run(main())
    assert "BOTWIRE_API_KEY" in message and "api_key=" in message


def test_with_the_key_from_the_environment_it_works_and_a_bad_one_says_where_it_came_from(
    token_server: TokenServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTWIRE_API_KEY", token_server.token("team-*"))
    with Memory("team-a", url=token_server.url) as mem:
        mem.set("k", 1)
        assert mem.get("k") == 1
    monkeypatch.setenv("BOTWIRE_API_KEY", "bw_0123456789abcdef_wrong")
    with Memory("team-a", url=token_server.url) as mem, pytest.raises(Unauthorized) as caught:
        mem.get("k")
    assert "$BOTWIRE_API_KEY" in str(caught.value)


def test_the_command_line_says_it_too_without_a_traceback(
    token_server: TokenServer, tmp_path: Path
) -> None:
    done = botwire_cli("get", "team-a", "k", "--url", token_server.url, cwd=tmp_path)
    assert done.returncode != 0
    assert "BOTWIRE_API_KEY" in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_key_an_open_server_ignores_warns_once_per_store(server: Server) -> None:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with Memory("ns", url=server.url, api_key="bw_0123456789abcdef_key") as mem:
            mem.set("k", 1)  # the warning points at this line: the caller's, not botwire's
            line = sys._getframe().f_lineno - 1
            mem.set("k", 2)
            assert mem.get("k", fresh=True) == 2
            with Memory("other", url=server.url, api_key="bw_0123456789abcdef_key") as same:
                same.set("k", 3)  # the same store (same URL and key): no second warning
    ignored = [w for w in seen if issubclass(w.category, ApiKeyIgnoredWarning)]
    assert len(ignored) == 1, [str(w.message) for w in seen]
    assert issubclass(ApiKeyIgnoredWarning, UserWarning)
    assert "open mode" in str(ignored[0].message) and "--auth token" in str(ignored[0].message)
    assert (ignored[0].filename, ignored[0].lineno) == (__file__, line)

    other_key = "bw_fedcba9876543210_key"  # another key, another store: told again
    with pytest.warns(ApiKeyIgnoredWarning), Memory("ns", url=server.url, api_key=other_key) as m:
        m.get("k")


def test_the_key_from_the_environment_is_warned_about_too_async(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BOTWIRE_API_KEY", "bw_0123456789abcdef_env")

    async def main() -> None:
        async with AsyncMemory("ns", url=server.url) as mem:
            await mem.set("k", 1)
            await mem.set("k", 2)

    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        asyncio.run(main())
    assert [w.category for w in seen] == [ApiKeyIgnoredWarning]


def test_no_warning_without_a_key_or_in_token_mode(
    server: Server, token_server: TokenServer
) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # any warning fails the test
        with Memory("ns", url=server.url) as mem:
            mem.set("k", 1)
            assert mem.get("k", fresh=True) == 1
        with Memory("team-a", url=token_server.url, api_key=token_server.token("team-a")) as mem:
            mem.set("k", 1)
            assert mem.get("k", fresh=True) == 1


# -- item 5: a $BOTWIRE_URL left exported -------------------------------------------------------


def _closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}"


@pytest.mark.parametrize("cache", [False, True])
def test_unavailable_says_the_url_came_from_botwire_url(
    monkeypatch: pytest.MonkeyPatch, cache: bool
) -> None:
    monkeypatch.setenv("BOTWIRE_URL", _closed_port_url())
    hint = "(the URL came from $BOTWIRE_URL; unset it to use the embedded store)"
    with Memory("ns", timeout=0.3, cache=cache) as mem:
        with pytest.raises(Unavailable) as first:
            mem.get("k")
        with pytest.raises(Unavailable) as again:  # the circuit breaker's answer says it too
            mem.set("k", 1)
    assert str(first.value).endswith(hint), str(first.value)
    assert str(again.value).endswith(hint), str(again.value)


def test_unavailable_with_an_explicit_url_does_not_mention_botwire_url() -> None:
    mem = Memory("ns", url=_closed_port_url(), timeout=0.3, cache=False)
    with mem, pytest.raises(Unavailable) as caught:
        mem.get("k")
    assert "BOTWIRE_URL" not in str(caught.value) and "could not be reached" in str(caught.value)


# -- item 7: ttl as a timedelta -------------------------------------------------------------------


@pytest.fixture
def clocked(clock: FakeClock) -> Iterator[Memory]:
    with Memory("ns", url=MemoryStore(clock=clock), default_ttl=timedelta(days=7)) as mem:
        yield mem


def test_timedelta_ttls_on_every_write(clocked: Memory, clock: FakeClock) -> None:
    mem = clocked
    minutes = timedelta(minutes=5)
    mem.set("default", 1)
    assert mem.ttl("default") == 7 * 86400
    mem.set("set", 1, ttl=minutes)
    mem.set_many({"a": 1, "b": 2}, ttl=minutes)
    mem.incr("counter", ttl=minutes)
    mem.append("list", "x", ttl=minutes)
    mem.update("updated", lambda v: (v or 0) + 1, ttl=minutes)
    mem.set("touched", 1, ttl=None)
    assert mem.touch("touched", timedelta(hours=1, milliseconds=500))
    for key in ("set", "a", "b", "counter", "list", "updated"):
        assert mem.ttl(key) == 300, key
    assert mem.ttl("touched") == 3600.5
    clock.advance(301)
    assert mem.get_many(["set", "a", "b", "counter", "list", "updated"]) == {}
    assert mem.get("default") == 1 and mem.get("touched") == 1


def test_timedelta_ttls_in_sessions_and_remember(clocked: Memory) -> None:
    mem = clocked
    with mem.session(ttl=timedelta(hours=2)) as s:
        s["whole"] = 1
        s.set("own", 2, ttl=timedelta(seconds=90))
    assert mem.ttl("whole") == 7200 and mem.ttl("own") == 90

    @mem.remember("visits:{user}", into="visits", default=0, save="result", ttl=timedelta(1))
    def visit(user: str, visits: int) -> int:
        return visits + 1

    @botwire.remember(
        "steps", namespace="ns", url="memory://td", default=0, save="result", ttl=timedelta(60)
    )
    def step(steps: int) -> int:
        return steps + 1

    assert visit("u") == 1
    assert mem.ttl("visits:u") == 86400
    assert step() == 1
    with Memory("ns", url="memory://td") as other:
        assert 59 * 86400 < (other.ttl("steps") or 0) <= 60 * 86400


def test_timedelta_ttl_async_and_over_a_server(server: Server) -> None:
    async def main() -> float | None:
        async with AsyncMemory("ns", url=server.url, default_ttl=timedelta(hours=1)) as mem:
            await mem.set("k", 1, ttl=timedelta(minutes=10))
            await mem.set("d", 1)
            assert 3590 < (await mem.ttl("d") or 0) <= 3600
            return await mem.ttl("k")

    assert 590 < (asyncio.run(main()) or 0) <= 600


@pytest.mark.parametrize(
    "ttl", [timedelta(0), timedelta(seconds=-1), timedelta(days=400_000), "60", True]
)
def test_bad_timedeltas_are_refused_before_any_write(clocked: Memory, ttl: object) -> None:
    with pytest.raises(InvalidRequest, match="ttl must be None, a timedelta or seconds"):
        clocked.set("k", 1, ttl=ttl)  # type: ignore[arg-type]
    with pytest.raises(InvalidRequest):
        Memory("ns", url="memory://", default_ttl=ttl)  # type: ignore[arg-type]
    assert "k" not in clocked


# -- item 7: a bare path given as a URL ----------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "meant"),
    [
        ("agent.db", "sqlite:///agent.db"),
        ("./agent.db", "sqlite:///./agent.db"),
        ("data/agent.db", "sqlite:///data/agent.db"),
        ("/srv/a.db", "sqlite:////srv/a.db"),
        ("sqlite:agent.db", "sqlite:///agent.db"),
        ("localhost:8787", "http://localhost:8787"),
        ("memory", "memory://"),
    ],
)
def test_a_bare_path_gets_did_you_mean(
    given: str, meant: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    before = sorted(os.listdir(tmp_path))
    with pytest.raises(InvalidURL) as caught:
        Memory("ns", url=given)
    assert f"did you mean {meant!r}?" in str(caught.value), str(caught.value)
    assert sorted(os.listdir(tmp_path)) == before  # nothing created
    if meant.startswith("sqlite:///") and not meant.startswith("sqlite:////"):
        (tmp_path / "data").mkdir(exist_ok=True)
        with Memory("ns", url=meant) as mem:  # and the suggestion works as written
            mem.set("k", 1)
        assert (tmp_path / meant.removeprefix("sqlite:///")).exists()


def test_a_home_relative_path_is_expanded_in_the_suggestion() -> None:
    with pytest.raises(InvalidURL) as caught:
        Memory("ns", url="~/agent.db")
    assert f"did you mean 'sqlite:///{Path.home()}/agent.db'?" in str(caught.value)


def test_a_bare_path_in_botwire_url_says_where_it_came_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BOTWIRE_URL", "agent.db")
    with pytest.raises(InvalidURL) as caught:
        Memory("ns")
    message = str(caught.value)
    assert "did you mean 'sqlite:///agent.db'?" in message and "$BOTWIRE_URL" in message
    assert not (tmp_path / "agent.db").exists()


def test_a_bare_path_on_the_command_line(tmp_path: Path) -> None:
    done = botwire_cli("--url", "agent.db", "set", "agent", "k", "1", cwd=tmp_path)
    assert done.returncode != 0
    assert "sqlite:///agent.db" in done.stderr and "Traceback" not in done.stderr, done.stderr
    assert not (tmp_path / "agent.db").exists()


# -- item 8: the licence the package declares is the one it ships -----------------------------


def test_the_license_file_is_the_mit_licence_the_package_declares() -> None:
    root = Path(__file__).resolve().parent.parent
    text = (root / "LICENSE").read_text(encoding="utf-8")
    assert text.startswith("MIT License\n") and "botwire contributors" in text
    assert "Permission is hereby granted, free of charge" in text
    assert '\nlicense = "MIT"\n' in (root / "pyproject.toml").read_text(encoding="utf-8")
