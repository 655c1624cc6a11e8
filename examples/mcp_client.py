"""botwire as an MCP server, driven by the official MCP SDK's client: offline, in one file.

    pip install 'botwire[mcp]'
    python examples/mcp_client.py

It starts ``botwire mcp --namespace mcp-example`` over stdio, exactly as Claude
Desktop, Claude Code or Cursor would with ``"command": "botwire", "args": ["mcp",
...]``, then calls the key-value tools and reads a key as a resource. The memory
lands in the embedded SQLite file ($BOTWIRE_HOME), so a second run, or any other
process, sees what the first one stored.
"""

from __future__ import annotations

import json
import os
import sys

import anyio

try:
    from mcp import Client, StdioServerParameters
except ImportError:
    sys.exit("this example needs the MCP SDK: pip install 'botwire[mcp]'")

SERVER = StdioServerParameters(
    command=sys.executable,  # the `botwire` command of this environment: python -m botwire
    args=["-m", "botwire", "mcp", "--namespace", "mcp-example"],
    env=dict(os.environ),  # BOTWIRE_HOME, BOTWIRE_URL... as the server should see them
)


def show(label: str, result: object) -> None:
    print(f"{label}: {json.dumps(result, sort_keys=True)}")


async def main() -> None:
    async with Client(SERVER) as client:
        tools = [tool.name for tool in (await client.list_tools()).tools]
        print(f"{len(tools)} tools: {', '.join(tools)}")

        done = await client.call_tool(
            "remember", {"key": "user-42:prefs", "value": {"format": "json", "tz": "UTC"}}
        )
        show("remember", done.structured_content)

        visits = await client.call_tool("increment", {"key": "user-42:visits"})
        show("increment", visits.structured_content)

        turns = await client.call_tool(
            "append", {"key": "user-42:history", "items": ["hello"], "max_len": 3}
        )
        show("append", turns.structured_content)

        recalled = await client.call_tool("recall", {"key": "user-42:prefs"})
        assert recalled.structured_content is not None
        show("recall", recalled.structured_content["value"])

        # compare-and-set: write only if nobody changed the key since the version we saw;
        # a write with an outdated version is a tool error naming botwire's code
        assert done.structured_content is not None
        seen = done.structured_content["version"]
        prefs = {"format": "json", "tz": "Europe/Paris"}
        changed = await client.call_tool(
            "remember", {"key": "user-42:prefs", "value": prefs, "if_version": seen}
        )
        assert not changed.is_error
        stale = await client.call_tool(
            "remember", {"key": "user-42:prefs", "value": {}, "if_version": seen}
        )
        assert stale.is_error and stale.structured_content is not None
        print(f"stale write refused: {stale.structured_content['error']['code']}")

        listed = await client.call_tool("list_memories", {"prefix": "user-42:"})
        assert listed.structured_content is not None
        show("list_memories", listed.structured_content["keys"])

        read = await client.read_resource("botwire://mcp-example/user-42:visits")
        print(f"resource botwire://mcp-example/user-42:visits = {read.contents[0].text}")  # type: ignore[union-attr]


if __name__ == "__main__":
    anyio.run(main)
