"""``/mcp`` in ``botwire serve``: Streamable HTTP on a live server, through the SDK's own client.

The app is the real server app (token mode unless a test says otherwise) on the
session's loopback uvicorn (``tests/loopback.py``). A token for ``alice-*`` must
not reach ``bob-*`` through any tool, resource, listing or subscription.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import anyio
import httpx
import pytest

pytest.importorskip("mcp")

import httpx2
from mcp.client.streamable_http import streamable_http_client
from mcp.client.subscriptions import SubscriptionLost
from mcp.shared.exceptions import MCPError

from botwire import Memory
from botwire_server import Settings, create_app
from mcp import Client

from ..loopback import loopback

EVENT_WAIT = 60  # seconds: a hang guard only


@dataclass
class Served:
    url: str
    app: Any
    alice: str  # reaches alice-*
    reader: str  # reaches alice-*, read-only
    bob: str  # reaches bob-*


@pytest.fixture(params=["sqlite", "postgres"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    """A server in token mode on a SQLite file, or on PostgreSQL (a fresh schema)."""
    if request.param == "postgres":
        from ..postgres import fresh_schema_url

        db = fresh_schema_url()
    else:
        db = str(tmp_path / "server.db")
    app = create_app(Settings(db=db, auth="token", writes_per_day=0))
    url, shutdown = loopback().serve(app)
    tokens = app.state.tokens
    try:
        yield Served(
            url,
            app,
            tokens.create(["alice-*"])[0],
            tokens.create(["alice-*"], read_only=True)[0],
            tokens.create(["bob-*"])[0],
        )
    finally:
        shutdown()


@asynccontextmanager
async def mcp_client(
    url: str, token: str | None, namespace: str | None = None, mode: str = "auto"
) -> AsyncIterator[Client]:
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    endpoint = f"{url}/mcp" + (f"?namespace={quote(namespace)}" if namespace else "")
    async with (
        # the SDK's own timeouts: a response stream (a subscription) may stay quiet a while
        httpx2.AsyncClient(headers=headers, timeout=httpx2.Timeout(30, read=300)) as http,
        Client(streamable_http_client(endpoint, http_client=http), mode=mode) as client,
    ):
        yield client


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    anyio.run(test)


def memory(served: Served, namespace: str, token: str) -> Memory:
    return Memory(namespace, url=served.url, api_key=token, cache=False)


def code_of(result: Any) -> str:
    assert result.is_error, result
    assert result.structured_content is not None, result
    return str(result.structured_content["error"]["code"])


def test_the_tools_work_over_http_on_the_servers_own_store(served: Served) -> None:
    async def test() -> None:
        async with mcp_client(served.url, served.alice) as client:
            tools = {tool.name for tool in (await client.list_tools()).tools}
            assert {"remember", "recall", "forget", "list_memories", "append", "increment"} <= tools
            calls: list[tuple[str, dict[str, Any]]] = [
                ("remember", {"key": "plan", "value": {"step": 1}}),
                ("append", {"key": "log", "items": ["a", "b", "c"], "max_len": 2}),
                ("increment", {"key": "n", "by": 5}),
                ("remember", {"key": "tmp", "value": True, "ttl": 60}),
                ("forget", {"key": "tmp"}),
            ]
            for tool, arguments in calls:
                result = await client.call_tool(tool, {**arguments, "namespace": "alice-1"})
                assert not result.is_error, (tool, result.content)
            recalled = await client.call_tool("recall", {"key": "plan", "namespace": "alice-1"})
            assert recalled.structured_content is not None
            assert recalled.structured_content["value"] == {"step": 1}
            listed = await client.call_tool("list_memories", {"namespace": "alice-1"})
            assert listed.structured_content is not None
            assert listed.structured_content["keys"] == ["log", "n", "plan"]
            read = await client.read_resource("botwire://alice-1/log")
            assert json.loads(read.contents[0].text) == ["b", "c"]  # type: ignore[union-attr]
            conflict = await client.call_tool(
                "remember", {"key": "plan", "value": 2, "if_version": 0, "namespace": "alice-1"}
            )
            assert code_of(conflict) == "conflict"
        # the same items through /v1: one store, no copy
        assert memory(served, "alice-1", served.alice).get("log") == ["b", "c"]

    run(test)


def test_a_token_never_reaches_another_namespace(served: Served) -> None:
    bobs = memory(served, "bob-1", served.bob)
    bobs.set("secret", "bob's")
    bobs.set("list", [1])

    async def test() -> None:
        async with mcp_client(served.url, served.alice) as client:
            attempts: list[tuple[str, dict[str, Any]]] = [
                ("recall", {"key": "secret"}),
                ("list_memories", {}),
                ("list_memories", {"include_values": True}),
                ("remember", {"key": "secret", "value": "alice's"}),
                ("forget", {"key": "secret"}),
                ("append", {"key": "list", "items": [2]}),
                ("increment", {"key": "n"}),
            ]
            for tool, arguments in attempts:
                result = await client.call_tool(tool, {**arguments, "namespace": "bob-1"})
                assert code_of(result) == "forbidden", tool
                assert "bob's" not in str(result.content)
            for uri in ("botwire://bob-1/secret", "botwire://bob-1", "botwire://bob-1/missing"):
                with pytest.raises(MCPError, match="forbidden"):
                    await client.read_resource(uri)
            with pytest.raises(MCPError, match="forbidden"):
                async with client.listen(resource_subscriptions=["botwire://bob-1/secret"]):
                    pass
            await client.call_tool("remember", {"key": "mine", "value": 1, "namespace": "alice-1"})
            listed = await client.list_resources()
            assert [r.uri for r in listed.resources] == ["botwire://alice-1/mine"]
        # fixing the session to bob's namespace does not help either
        async with mcp_client(served.url, served.alice, namespace="bob-1") as client:
            result = await client.call_tool("recall", {"key": "secret"})
            assert code_of(result) == "forbidden"
            for tool in ("read_graph", "create_entities"):
                arguments = {} if tool == "read_graph" else {"entities": []}
                if tool in {t.name for t in (await client.list_tools()).tools}:
                    graph = await client.call_tool(tool, arguments)
                    assert code_of(graph) == "forbidden", tool
            with pytest.raises(MCPError, match="forbidden"):
                await client.list_resources()
        assert bobs.get("secret") == "bob's" and bobs.get("list") == [1]
        assert "n" not in bobs

    run(test)


def test_a_namespace_fixed_by_the_url_and_a_read_only_token(served: Served) -> None:
    async def test() -> None:
        async with mcp_client(served.url, served.alice, namespace="alice-notes") as client:
            done = await client.call_tool("remember", {"key": "k", "value": "v"})
            assert done.structured_content is not None
            assert done.structured_content["namespace"] == "alice-notes"
            elsewhere = await client.call_tool("recall", {"key": "k", "namespace": "alice-other"})
            assert code_of(elsewhere) == "forbidden"  # within the token, but not this URL's
        async with mcp_client(served.url, served.reader, namespace="alice-notes") as client:
            recalled = await client.call_tool("recall", {"key": "k"})
            assert recalled.structured_content is not None
            assert recalled.structured_content["value"] == "v"
            for tool, arguments in [
                ("remember", {"key": "k", "value": "w"}),
                ("forget", {"key": "k"}),
                ("increment", {"key": "n"}),
            ]:
                refused = await client.call_tool(tool, arguments)
                assert code_of(refused) == "forbidden", tool
                assert "read-only" in refused.content[0].text  # type: ignore[union-attr]
        assert memory(served, "alice-notes", served.alice).get("k") == "v"

    run(test)


def test_without_a_valid_token_mcp_answers_401(served: Served) -> None:
    initialize = {"jsonrpc": "2.0", "id": 1, "method": "ping"}
    for headers in ({}, {"Authorization": "Bearer bw_nope_nope"}):
        answer = httpx.post(f"{served.url}/mcp", json=initialize, headers=headers)
        assert answer.status_code == 401
        assert answer.json()["error"]["code"] == "unauthorized"

    async def test() -> None:
        with pytest.raises(Exception):  # noqa: B017 - the SDK's own error for a refused connection
            async with mcp_client(served.url, None) as client:
                await client.list_tools()

    run(test)


def test_server_limits_are_botwire_error_codes(tmp_path: Path) -> None:
    app = create_app(Settings(db=str(tmp_path / "server.db"), writes_per_day=2))
    url, shutdown = loopback().serve(app)

    async def test() -> None:
        async with mcp_client(url, None) as client:  # open mode: any namespace
            for _ in range(2):
                done = await client.call_tool("increment", {"key": "n", "namespace": "x"})
                assert not done.is_error, done.content
            over = await client.call_tool("increment", {"key": "n", "namespace": "x"})
            assert code_of(over) == "write_limit_exceeded"
            assert over.content[0].text.startswith("write_limit_exceeded: ")  # type: ignore[union-attr]

    try:
        run(test)
    finally:
        shutdown()


def test_a_subscription_hears_a_write_made_through_v1(served: Served) -> None:
    writer = memory(served, "alice-1", served.alice)
    writer.set("status", "idle")

    async def test() -> None:
        async with mcp_client(served.url, served.alice) as client:
            watched = "botwire://alice-1/status"
            async with client.listen(resource_subscriptions=[watched]) as sub:
                await anyio.to_thread.run_sync(writer.set, "status", "busy")
                with anyio.fail_after(EVENT_WAIT):
                    event = await sub.__anext__()
                assert event.uri == watched  # type: ignore[union-attr]
            read = await client.read_resource(watched)
            assert json.loads(read.contents[0].text) == "busy"  # type: ignore[union-attr]

    run(test)


def test_no_mcp_leaves_the_route_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    for app in (
        create_app(Settings(db=str(tmp_path / "a.db")), mcp=False),
        _with_env(monkeypatch, lambda: create_app(Settings(db=str(tmp_path / "b.db")))),
    ):
        url, shutdown = loopback().serve(app)
        try:
            assert httpx.post(f"{url}/mcp", json={}).status_code == 404
        finally:
            shutdown()


def _with_env(monkeypatch: pytest.MonkeyPatch, make: Callable[[], Any]) -> Any:
    monkeypatch.setenv("BOTWIRE_SERVER_MCP", "off")
    try:
        return make()
    finally:
        monkeypatch.delenv("BOTWIRE_SERVER_MCP")


def test_a_revoked_token_ends_its_open_subscription(served: Served) -> None:
    memory(served, "alice-1", served.alice).set("k", 1)

    async def test() -> None:
        watched = ["botwire://alice-1/k"]
        async with (
            mcp_client(served.url, served.alice) as client,
            client.listen(resource_subscriptions=watched) as sub,
        ):
            assert served.app.state.tokens.revoke(served.alice.split("_")[1])
            with anyio.fail_after(EVENT_WAIT), pytest.raises(SubscriptionLost) as lost:
                async for _ in sub:
                    pass
            assert "unknown or revoked token" in str(lost.value.__cause__)

    run(test)


def test_open_mode_on_loopback_refuses_a_foreign_host_header(tmp_path: Path) -> None:
    """DNS rebinding: a web page must not reach an open server's memory through /mcp.
    In token mode (the page has no token) a reverse proxy's Host is fine."""
    initialize = {
        "jsonrpc": "2.0",
        "id": 1,
        "method": "initialize",
        "params": {
            "protocolVersion": "2025-11-25",
            "capabilities": {},
            "clientInfo": {"name": "test", "version": "1"},
        },
    }
    accept = {"Accept": "application/json, text/event-stream"}
    for auth in ("open", "token"):
        app = create_app(Settings(db=str(tmp_path / f"{auth}.db"), auth=auth))
        url, shutdown = loopback().serve(app)
        try:
            if auth == "token":
                accept["Authorization"] = f"Bearer {app.state.tokens.create(['*'])[0]}"
            for host, refused in ((None, False), ("memory.example.com", auth == "open")):
                headers = {**accept, **({"Host": host} if host else {})}
                answer = httpx.post(f"{url}/mcp", json=initialize, headers=headers)
                assert (answer.status_code >= 400) == refused, (auth, host, answer.text)
        finally:
            shutdown()


def test_a_client_on_the_2025_protocol_is_checked_the_same(served: Served) -> None:
    """The initialize handshake and a session (Claude Desktop and Code today): each
    request is still checked with its own token."""
    memory(served, "bob-1", served.bob).set("secret", "bob's")

    async def test() -> None:
        async with mcp_client(served.url, served.alice, mode="legacy") as client:
            assert client.protocol_version == "2025-11-25"
            done = await client.call_tool(
                "remember", {"key": "k", "value": 1, "namespace": "alice-1"}
            )
            assert not done.is_error, done.content
            read = await client.read_resource("botwire://alice-1/k")
            assert json.loads(read.contents[0].text) == 1  # type: ignore[union-attr]
            refused = await client.call_tool("recall", {"key": "secret", "namespace": "bob-1"})
            assert code_of(refused) == "forbidden"
            with pytest.raises(MCPError, match="forbidden"):
                await client.read_resource("botwire://bob-1/secret")

    run(test)
