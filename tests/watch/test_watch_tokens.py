"""Token isolation on the change feed: a `botwire serve --auth token` subprocess, tokens
minted and revoked with the `botwire token` CLI (another process, as an operator would)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from botwire import Forbidden, Memory, Unauthorized
from botwire_server.auth import TOKEN_CACHE_SECONDS

from ..server.conftest import LiveServer
from .conftest import Follower, clients, held_or_refused, key_is

TOKENS = {
    "alice": ["--namespaces", "alice-*"],
    "bob": ["--namespaces", "bob-*"],
    "reader": ["--namespaces", "alice-*", "--read-only"],
    "victim": ["--namespaces", "alice-*"],
    "greedy": ["--namespaces", "alice-*"],
    "admin": ["--namespaces", "alice-*,bob-*"],
}


def token_cli(db: Path, *args: str) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "botwire.cli", "token", *args, "--db", str(db)]
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


class TokenServer(LiveServer):
    secrets: dict[str, str]

    def headers(self, who: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.secrets[who]}"}

    def get(self, who: str | None, path: str) -> httpx.Response:
        """``path`` with ``who``'s token (``None``: none; else a name, or a raw secret)."""
        headers = {} if who is None else {"authorization": f"Bearer {self.secrets.get(who, who)}"}
        return httpx.get(self.url + path, headers=headers, timeout=70)

    def put(self, ns: str, key: str, value: Any) -> None:
        response = httpx.put(
            f"{self.url}/v1/ns/{ns}/keys/{key}",
            json={"value": value},
            headers=self.headers("admin"),
            timeout=10,
        )
        assert response.status_code == 200, response.text


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    tmp = tmp_path_factory.mktemp("tokens")
    db = tmp / "server.db"
    first = token_cli(db, "create", "--create", "--namespaces", "nobody")  # makes the file
    assert first.communicate(timeout=60) and first.returncode == 0
    made = {name: token_cli(db, "create", *args) for name, args in TOKENS.items()}
    secrets = {}
    for name, proc in made.items():
        out, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
        secrets[name] = out.strip()
    served = TokenServer(db, auth="token", max_watchers=20, writes_per_day=0)
    served.secrets = secrets
    served.start()
    yield served
    served.stop()


def test_without_a_token_or_with_a_bad_one_a_watch_is_refused_at_once(
    server: TokenServer,
) -> None:
    started = time.monotonic()
    assert server.get(None, "/v1/ns/alice-x/changes?wait=30").status_code == 401
    assert server.get("bw_nope_secret", "/v1/ns/alice-x/changes?wait=30").status_code == 401
    assert time.monotonic() - started < 2


def test_another_token_s_namespace_is_forbidden_at_once(server: TokenServer) -> None:
    server.put("bob-x", "secret", "bob's")
    started = time.monotonic()
    response = server.get("alice", "/v1/ns/bob-x/changes?since=0&wait=30")
    assert response.status_code == 403 and "secret" not in response.text
    assert time.monotonic() - started < 2
    # Memory.watch says so at once instead of retrying for ever, from now or from 0
    with Memory("bob-x", url=server.url, api_key=server.secrets["alice"], cache=False) as mem:
        with pytest.raises(Forbidden):
            mem.watch()
        with pytest.raises(Forbidden):
            next(mem.watch(since=0))
    assert time.monotonic() - started < 5


@pytest.mark.parametrize(
    "path",
    [
        "/v1/ns/alice-x/changes?since=0&prefix=../bob-x/",
        "/v1/ns/alice-x/changes?since=0&prefix=%2F..%2Fbob-x%2F",
        "/v1/ns/alice-x/changes?since=0&prefix=bob-x/secret",
        "/v1/ns/alice-x%2F..%2Fbob-x/changes?since=0",
        "/v1/ns/alice-x%2f%2e%2e%2fbob-x/changes?since=0",
        "/v1/ns/alice-x/..%2Fbob-x/changes?since=0",
        "/v1/ns/alice-*/changes?since=0",
        "/v1/ns/bob-x%00/changes?since=0",
    ],
)
def test_a_prefix_or_a_path_cannot_widen_a_token_s_reach(server: TokenServer, path: str) -> None:
    server.put("bob-x", "secret", "bob's")
    server.put("alice-x", "mine", "alice's")
    response = server.get("alice", path + "&wait=1")
    assert "secret" not in response.text and "bob's" not in response.text
    if response.status_code == 200:
        assert {c["key"] for c in response.json()["changes"]} <= {"mine"}
    else:
        assert response.status_code in (400, 403, 404)


def test_a_long_poll_answers_only_with_its_own_namespace(server: TokenServer) -> None:
    got: list[httpx.Response] = []
    cursor = server.get("alice", "/v1/ns/alice-y/changes?limit=0").json()["next"]
    poll = threading.Thread(
        target=lambda: got.append(
            server.get("alice", f"/v1/ns/alice-y/changes?since={cursor}&wait=30")
        )
    )
    poll.start()
    server.put("bob-y", "secret", "bob's")  # another namespace: does not answer the poll
    server.put("alice-y", "mine", "alice's")
    poll.join(10)
    assert got, "the poll was not answered"
    assert [c["key"] for c in got[0].json()["changes"]] == ["mine"]


def test_a_read_only_token_can_watch(server: TokenServer) -> None:
    follower = Follower(
        Memory("alice-ro", url=server.url, api_key=server.secrets["reader"], cache=False),
        key_is("k"),
        values=True,
    )
    server.put("alice-ro", "k", 1)
    (change,) = follower.join(10)
    assert change.value == 1
    refused = httpx.put(
        f"{server.url}/v1/ns/alice-ro/keys/k",
        json={"value": 2},
        headers=server.headers("reader"),
        timeout=10,
    )
    assert refused.status_code == 403


@pytest.mark.slow
def test_a_token_revoked_while_it_waits_gets_none_of_the_later_changes(
    server: TokenServer,
) -> None:
    """Revoked with the CLI (another process) while its long poll waits: once the server's
    token cache (5 s) has passed, a change there answers the poll 401, without the change;
    ``Memory.watch`` with that token stops with ``Unauthorized`` (it does not retry)."""
    ns = "alice-revoked"
    got: list[httpx.Response] = []
    mem = Memory(ns, url=server.url, api_key=server.secrets["victim"], cache=False)
    follower = Follower(mem, key_is("after"))
    cursor = server.get("victim", f"/v1/ns/{ns}/changes?limit=0").json()["next"]
    started = time.monotonic()
    poll = threading.Thread(
        target=lambda: got.append(
            server.get("victim", f"/v1/ns/{ns}/changes?since={cursor}&wait=30")
        )
    )
    poll.start()
    token_id = server.secrets["victim"].split("_")[1]
    revoke = token_cli(Path(server.db), "revoke", token_id)
    _, err = revoke.communicate(timeout=60)
    assert revoke.returncode == 0, err
    time.sleep(max(0.0, started + TOKEN_CACHE_SECONDS + 0.5 - time.monotonic()))
    server.put(ns, "after", "not for the revoked")
    poll.join(10)
    assert got, "the poll was not answered"
    assert got[0].status_code == 401 and "after" not in got[0].text
    follower._done.wait(10)
    assert isinstance(follower.error, Unauthorized), follower.error
    assert all(c.key != "after" for c in follower.changes)
    mem.close()


def test_one_token_holds_at_most_a_tenth_of_the_watchers(server: TokenServer) -> None:
    """--max-watchers 20: a token waits on at most 2 requests; another token from the same
    address still may (the bound is per token, not per address)."""
    watch = "/v1/ns/alice-greedy/changes?wait=30"

    async def scenario() -> None:
        async with clients(server.url, 1) as (client,):
            tasks = []
            try:
                greedy = server.headers("greedy")
                for _ in range(2):
                    held = await held_or_refused(client, watch, greedy)
                    assert held is not None
                    tasks.append(held)
                assert await held_or_refused(client, watch, greedy) is None
                other = await held_or_refused(client, watch, server.headers("alice"))
                assert other is not None
                tasks.append(other)
            finally:
                for task in tasks:
                    task.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run(scenario())
