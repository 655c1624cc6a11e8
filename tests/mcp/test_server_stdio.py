"""``botwire mcp`` over stdio, driven by the official SDK's own client in a subprocess.

Each test starts ``python -m botwire mcp --url ...`` as an MCP client would (Claude
Desktop's ``command``/``args``), on a SQLite file (or PostgreSQL, or a botwire
server) that the test process also opens: a write made here is a write made by
another process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

pytest.importorskip("mcp")

from mcp.shared.exceptions import MCPError

from botwire import Memory
from botwire_server import Settings, create_app
from mcp import Client, StdioServerParameters

from ..loopback import loopback
from ..postgres import fresh_schema_url

KV_TOOLS = {"remember", "recall", "forget", "list_memories", "append", "increment"}
EVENT_WAIT = 60  # seconds: a hang guard only; an update normally arrives within a poll


@asynccontextmanager
async def stdio_client(url: str, *args: str) -> AsyncIterator[Client]:
    params = StdioServerParameters(
        command=sys.executable,
        args=["-m", "botwire", "mcp", "--url", url, *args],
        env=dict(os.environ),
    )
    async with Client(params) as client:
        yield client


def run(test: Callable[[], Coroutine[Any, Any, None]]) -> None:
    anyio.run(test)


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'agents.db'}"


def test_tools_are_listed_with_schemas_and_annotations(url: str) -> None:
    async def test() -> None:
        async with stdio_client(url) as client:
            tools = {tool.name: tool for tool in (await client.list_tools()).tools}
        assert tools.keys() >= KV_TOOLS
        for name in KV_TOOLS:
            tool = tools[name]
            assert tool.input_schema["type"] == "object", name
            assert tool.output_schema is not None and tool.output_schema["type"] == "object"
            assert "namespace" in tool.input_schema["properties"], name
            assert tool.description, name
        remember = tools["remember"].input_schema
        assert set(remember["required"]) == {"key", "value"}
        assert {"ttl", "if_version"} <= remember["properties"].keys()
        assert tools["append"].input_schema["properties"]["items"]["type"] == "array"
        assert "max_len" in tools["append"].input_schema["properties"]
        assert "cursor" in tools["list_memories"].input_schema["properties"]
        assert "next_cursor" in tools["list_memories"].output_schema["properties"]
        hints = {
            name: (
                tools[name].annotations.read_only_hint,
                tools[name].annotations.destructive_hint,
                tools[name].annotations.idempotent_hint,
            )
            for name in KV_TOOLS
            if tools[name].annotations is not None
        }
        assert hints == {
            "remember": (False, True, True),
            "recall": (True, False, True),
            "forget": (False, True, True),
            "list_memories": (True, False, True),
            "append": (False, False, False),
            "increment": (False, False, False),
        }

    run(test)


def test_each_tool_works_and_another_process_sees_it(url: str) -> None:
    async def test() -> None:
        async with stdio_client(url) as client:
            done = await client.call_tool("remember", {"key": "user:1/name", "value": {"n": "Ada"}})
            assert not done.is_error and done.structured_content is not None
            assert done.structured_content["namespace"] == "mcp"
            version = done.structured_content["version"]
            again = await client.call_tool(
                "remember",
                {"key": "user:1/name", "value": "Ada L.", "if_version": version, "ttl": 3600},
            )
            assert not again.is_error, again.content
            recalled = (await client.call_tool("recall", {"key": "user:1/name"})).structured_content
            assert recalled is not None and recalled["found"] and recalled["value"] == "Ada L."
            assert recalled["expires_at"] is not None
            missing = (await client.call_tool("recall", {"key": "nobody"})).structured_content
            assert missing is not None and missing["found"] is False and missing["value"] is None
            for item in (1, 2, 3):
                added = await client.call_tool(
                    "append", {"key": "log", "items": [item], "max_len": 2}
                )
            assert added.structured_content == {"namespace": "mcp", "key": "log", "length": 2}
            counted = await client.call_tool("increment", {"key": "visits", "by": 2})
            counted = await client.call_tool("increment", {"key": "visits"})
            assert counted.structured_content is not None
            assert counted.structured_content["value"] == 3
            elsewhere = await client.call_tool(
                "remember", {"key": "k", "value": 1, "namespace": "other-agent"}
            )
            assert elsewhere.structured_content is not None
            assert elsewhere.structured_content["namespace"] == "other-agent"
            listed = await client.call_tool("list_memories", {"limit": 2, "include_values": True})
            page = listed.structured_content
            assert page is not None and page["keys"] == ["log", "user:1/name"]
            assert page["values"] == {"log": [2, 3], "user:1/name": "Ada L."}
            rest = await client.call_tool("list_memories", {"cursor": page["next_cursor"]})
            assert rest.structured_content is not None
            assert rest.structured_content["keys"] == ["visits"]
            assert rest.structured_content["next_cursor"] is None
            gone = await client.call_tool("forget", {"key": "visits"})
            assert gone.structured_content is not None and gone.structured_content["deleted"]
            # the text content is the same result, for clients that only read text
            assert json.loads(gone.content[0].text)["deleted"] is True  # type: ignore[union-attr]
        here = Memory("mcp", url=url)
        assert here.get("user:1/name") == "Ada L." and here.get("log") == [2, 3]
        assert "visits" not in here and Memory("other-agent", url=url).get("k") == 1

    run(test)


def test_botwire_errors_are_tool_errors_with_their_code(url: str) -> None:
    Memory("mcp", url=url).set("name", "Ada")

    async def test() -> None:
        async with stdio_client(url) as client:
            cases = {
                "conflict": ("remember", {"key": "name", "value": "x", "if_version": 0}),
                "wrong_type": ("increment", {"key": "name"}),
                "invalid_name": ("recall", {"key": "k", "namespace": "no spaces"}),
                "invalid_request": ("remember", {"key": "k", "value": 1, "ttl": -5}),
            }
            for code, (tool, arguments) in cases.items():
                result = await client.call_tool(tool, arguments)
                assert result.is_error, (code, result)
                assert result.content[0].text.startswith(f"{code}: "), result  # type: ignore[union-attr]
                assert result.structured_content is not None
                assert result.structured_content["error"]["code"] == code
            conflict = await client.call_tool(
                "remember", {"key": "name", "value": "x", "if_version": 0}
            )
            assert conflict.structured_content is not None
            assert conflict.structured_content["error"]["keys"] == ["name"]
        assert Memory("mcp", url=url).get("name") == "Ada"  # nothing was changed

    run(test)


def test_keys_are_resources_listed_in_pages_and_read_as_json(url: str) -> None:
    ada = Memory("mcp", url=url)
    ada.set_many({f"k{i:03}": i for i in range(150)})
    ada.set("odd key/with ?#% and é", {"deep": [1, None]})
    Memory("team:b", url=url).set("plan", "ship")

    async def test() -> None:
        async with stdio_client(url) as client:
            templates = (await client.list_resource_templates()).resource_templates
            assert {t.uri_template for t in templates} >= {
                "botwire://{namespace}/{+key}",
                "botwire://{namespace}",
            }
            uris: list[str] = []
            cursor = None
            for _ in range(10):
                page = await client.list_resources(cursor=cursor)
                assert len(page.resources) <= 100
                uris += [r.uri for r in page.resources]
                cursor = page.next_cursor
                if cursor is None:
                    break
            assert len(uris) == len(set(uris)) == 152
            assert "botwire://team:b/plan" in uris
            odd = next(u for u in uris if "odd" in u)
            read = await client.read_resource(odd)
            assert json.loads(read.contents[0].text) == {"deep": [1, None]}  # type: ignore[union-attr]
            assert read.contents[0].mime_type == "application/json"
            plain = await client.read_resource("botwire://mcp/k007")
            assert json.loads(plain.contents[0].text) == 7  # type: ignore[union-attr]
            size = await client.read_resource("botwire://team:b")
            assert json.loads(size.contents[0].text)["keys"] == 1  # type: ignore[union-attr]
            with pytest.raises(MCPError, match="not_found"):
                await client.read_resource("botwire://mcp/nothing-here")

    run(test)


def test_a_subscription_hears_a_write_made_by_another_process(url: str) -> None:
    other = Memory("mcp", url=url)
    other.set("status", "idle")

    async def test() -> None:
        async with stdio_client(url) as client:
            watched = "botwire://mcp/status"
            async with client.listen(resource_subscriptions=[watched]) as sub:
                assert sub.honored.resource_subscriptions == [watched]
                other.set("unwatched", 1)  # another process: this test's, not the server's
                other.set("status", "busy")
                with anyio.fail_after(EVENT_WAIT):
                    event = await sub.__anext__()
                assert event.uri == watched  # type: ignore[union-attr]
            # a namespace's URI hears a change to any of its keys, a deletion too
            async with client.listen(resource_subscriptions=["botwire://mcp"]) as sub:
                other.delete("unwatched")
                with anyio.fail_after(EVENT_WAIT):
                    event = await sub.__anext__()
                assert event.uri == "botwire://mcp"  # type: ignore[union-attr]
            read = await client.read_resource(watched)
            assert json.loads(read.contents[0].text) == "busy"  # type: ignore[union-attr]

    run(test)


def test_a_fixed_namespace_refuses_every_other(url: str) -> None:
    Memory("secret", url=url).set("k", "hidden")

    async def test() -> None:
        async with stdio_client(url, "--namespace", "agent-7") as client:
            done = await client.call_tool("remember", {"key": "k", "value": 1})
            assert done.structured_content is not None
            assert done.structured_content["namespace"] == "agent-7"
            for tool, arguments in [
                ("recall", {"key": "k", "namespace": "secret"}),
                ("list_memories", {"namespace": "secret"}),
                ("forget", {"key": "k", "namespace": "secret"}),
            ]:
                refused = await client.call_tool(tool, arguments)
                assert refused.is_error and refused.structured_content is not None
                assert refused.structured_content["error"]["code"] == "forbidden"
            with pytest.raises(MCPError, match="forbidden"):
                await client.read_resource("botwire://secret/k")
            with pytest.raises(MCPError, match="forbidden"):
                async with client.listen(resource_subscriptions=["botwire://secret/k"]):
                    pass
            listed = await client.list_resources()
            assert [r.uri for r in listed.resources] == ["botwire://agent-7/k"]
        assert Memory("secret", url=url).get("k") == "hidden"

    run(test)


def test_import_graph_loads_a_reference_memory_file_first(url: str, tmp_path: Path) -> None:
    pytest.importorskip("botwire.mcp.graph")
    lines = [
        {"type": "entity", "name": "Ada", "entityType": "person", "observations": ["codes"]},
        {"type": "entity", "name": "Babbage", "entityType": "person", "observations": []},
        {"type": "relation", "from": "Ada", "to": "Babbage", "relationType": "knows"},
    ]
    memory_file = tmp_path / "memory.jsonl"
    memory_file.write_text("\n".join(json.dumps(line) for line in lines) + "\n")

    async def test() -> None:
        async with stdio_client(
            url, "--namespace", "graph", "--import-graph", str(memory_file)
        ) as client:
            found = await client.call_tool("open_nodes", {"names": ["Ada"]})
            assert not found.is_error, found.content
            assert found.structured_content is not None
            assert [e["name"] for e in found.structured_content["entities"]] == ["Ada"]
            assert found.structured_content["relations"][0]["to"] == "Babbage"

    run(test)


def test_postgresql_store(tmp_path: Path) -> None:
    url = fresh_schema_url()
    other = Memory("mcp", url=url)

    async def test() -> None:
        async with stdio_client(url) as client:
            done = await client.call_tool("remember", {"key": "k", "value": [1, 2]})
            assert not done.is_error, done.content
            added = await client.call_tool("append", {"key": "k", "items": [3], "max_len": 2})
            assert added.structured_content is not None
            assert added.structured_content["length"] == 2
            conflict = await client.call_tool("remember", {"key": "k", "value": 0, "if_version": 0})
            assert conflict.structured_content is not None
            assert conflict.structured_content["error"]["code"] == "conflict"
            async with client.listen(resource_subscriptions=["botwire://mcp/k"]) as sub:
                other.set("k", "from elsewhere")
                with anyio.fail_after(EVENT_WAIT):
                    event = await sub.__anext__()
                assert event.uri == "botwire://mcp/k"  # type: ignore[union-attr]
            recalled = await client.call_tool("recall", {"key": "k"})
            assert recalled.structured_content is not None
            assert recalled.structured_content["value"] == "from elsewhere"
        assert other.get("k") == "from elsewhere"
        other.close()

    run(test)


def test_a_botwire_server_store_with_its_token(tmp_path: Path) -> None:
    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    alice = app.state.tokens.create(["alice-*"])[0]
    writer = Memory("alice-1", url=url, api_key=alice, cache=False)

    async def test() -> None:
        async with stdio_client(url, "--api-key", alice) as client:
            done = await client.call_tool(
                "remember", {"key": "k", "value": "v", "namespace": "alice-1"}
            )
            assert not done.is_error, done.content
            refused = await client.call_tool("recall", {"key": "k", "namespace": "bob-1"})
            assert refused.is_error and refused.structured_content is not None
            assert refused.structured_content["error"]["code"] == "forbidden"  # the server's
            async with client.listen(resource_subscriptions=["botwire://alice-1/k"]) as sub:
                await anyio.to_thread.run_sync(writer.set, "k", "w")
                with anyio.fail_after(EVENT_WAIT):
                    event = await sub.__anext__()
                assert event.uri == "botwire://alice-1/k"  # type: ignore[union-attr]
        assert writer.get("k") == "w"

    try:
        run(test)
    finally:
        writer.close()
        shutdown()


def test_without_the_sdk_the_command_names_the_extra() -> None:
    hide_the_sdk = (
        "import sys; sys.modules['mcp'] = None; from botwire.cli import main; "
        "sys.exit(main(['mcp']))"
    )
    result = subprocess.run(
        [sys.executable, "-c", hide_the_sdk], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2, result.stderr
    assert "pip install 'botwire[mcp]'" in result.stderr and "Traceback" not in result.stderr
