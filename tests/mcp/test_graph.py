"""The knowledge-graph tools (botwire.mcp.graph), through a real MCPServer and the SDK's client.

The expected answers are those of the reference server,
``@modelcontextprotocol/server-memory`` 2026.8.31, ``dist/index.js``: the ``registerTool``
calls (names, titles, descriptions, schemas, annotations; results as
``{content: [{type: "text", text: JSON.stringify(result, null, 2)}], structuredContent}``)
and ``KnowledgeGraphManager`` (semantics). They were written down from what that version
answered to the same calls over stdio.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from mcp.server.mcpserver import MCPServer

from botwire import Forbidden, InvalidRequest, Memory
from botwire.mcp.graph import Graph, import_graph
from botwire.mcp.graph_tools import register
from mcp import Client

from ..loopback import Server

Scenario = Callable[[Client], Awaitable[None]]


def drive(memory: Callable[[], Memory], scenario: Scenario, **options: Any) -> None:
    """Run ``scenario`` with an SDK client connected in-process to a server with the tools."""
    server = MCPServer("graph-test")
    register(server, memory, **options)

    async def main() -> None:
        async with Client(server) as client:
            await scenario(client)

    anyio.run(main)


async def call(client: Client, tool: str, arguments: dict[str, Any]) -> dict[str, Any]:
    """The tool's answer as it travels: content, structuredContent, isError."""
    result = await client.call_tool(tool, arguments)
    answer = result.model_dump(mode="json", by_alias=True, exclude_none=True)
    return {k: answer[k] for k in ("content", "structuredContent", "isError") if k in answer}


def text(answer: dict[str, Any]) -> str:
    (block,) = answer["content"]
    return str(block["text"])


def url_of(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh store of ``kind``: in-process, embedded, a live server, PostgreSQL."""
    if kind == "memory":
        return f"memory://graph-{uuid.uuid4().hex}"
    if kind == "sqlite":
        return f"sqlite:///{tmp_path / 'graph.db'}"
    if kind == "http":
        served: Server = request.getfixturevalue("server")
        return served.url
    from ..postgres import fresh_schema_url

    return fresh_schema_url()


@pytest.fixture(params=["memory", "sqlite", "http", "postgres"])
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    return url_of(request.param, request, tmp_path)


@pytest.fixture(params=["sqlite", "http", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A store that several processes reach."""
    return url_of(request.param, request, tmp_path)


@pytest.fixture
def memory(tmp_path: Path) -> Memory:
    return Memory("graph", url=f"sqlite:///{tmp_path / 'graph.db'}")


# -- the listing -------------------------------------------------------------------------

# dist/index.js, EntitySchema and RelationSchema as zod renders them (z.object: input
# schemas leave additionalProperties open, output schemas close it).
ENTITY_IN = {
    "type": "object",
    "properties": {
        "name": {"type": "string", "description": "The name of the entity"},
        "entityType": {"type": "string", "description": "The type of the entity"},
        "observations": {
            "type": "array",
            "items": {"type": "string"},
            "description": "An array of observation contents associated with the entity",
        },
    },
    "required": ["name", "entityType", "observations"],
}
RELATION_IN = {
    "type": "object",
    "properties": {
        "from": {
            "type": "string",
            "description": "The name of the entity where the relation starts",
        },
        "to": {"type": "string", "description": "The name of the entity where the relation ends"},
        "relationType": {"type": "string", "description": "The type of the relation"},
    },
    "required": ["from", "to", "relationType"],
}
ENTITY_OUT = {**ENTITY_IN, "additionalProperties": False}
RELATION_OUT = {**RELATION_IN, "additionalProperties": False}
DRAFT7 = "http://json-schema.org/draft-07/schema#"
GRAPH_OUT = {
    "$schema": DRAFT7,
    "type": "object",
    "properties": {
        "entities": {"type": "array", "items": ENTITY_OUT},
        "relations": {"type": "array", "items": RELATION_OUT},
    },
    "required": ["entities", "relations"],
    "additionalProperties": False,
}
DONE_OUT = {
    "$schema": DRAFT7,
    "type": "object",
    "properties": {"success": {"type": "boolean"}, "message": {"type": "string"}},
    "required": ["success", "message"],
    "additionalProperties": False,
}
WRITE = {"readOnlyHint": False, "destructiveHint": False, "openWorldHint": False}
DELETE = {
    "readOnlyHint": False,
    "destructiveHint": True,
    "idempotentHint": True,
    "openWorldHint": False,
}
READ = {
    "readOnlyHint": True,
    "destructiveHint": False,
    "idempotentHint": True,
    "openWorldHint": False,
}

# name: title, description, input properties, required inputs, output schema, annotations
REFERENCE_TOOLS: dict[
    str, tuple[str, str, dict[str, Any], list[str], dict[str, Any], dict[str, Any]]
] = {
    "create_entities": (
        "Create Entities",
        "Create multiple new entities in the knowledge graph",
        {"entities": {"type": "array", "items": ENTITY_IN}},
        ["entities"],
        {
            "$schema": DRAFT7,
            "type": "object",
            "properties": {"entities": {"type": "array", "items": ENTITY_OUT}},
            "required": ["entities"],
            "additionalProperties": False,
        },
        WRITE,
    ),
    "create_relations": (
        "Create Relations",
        "Create multiple new relations between entities in the knowledge graph. "
        "Relations should be in active voice",
        {"relations": {"type": "array", "items": RELATION_IN}},
        ["relations"],
        {
            "$schema": DRAFT7,
            "type": "object",
            "properties": {"relations": {"type": "array", "items": RELATION_OUT}},
            "required": ["relations"],
            "additionalProperties": False,
        },
        WRITE,
    ),
    "add_observations": (
        "Add Observations",
        "Add new observations to existing entities in the knowledge graph",
        {
            "observations": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "entityName": {
                            "type": "string",
                            "description": "The name of the entity to add the observations to",
                        },
                        "contents": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "An array of observation contents to add",
                        },
                    },
                    "required": ["entityName", "contents"],
                },
            }
        },
        ["observations"],
        {
            "$schema": DRAFT7,
            "type": "object",
            "properties": {
                "results": {
                    "type": "array",
                    "items": {
                        "type": "object",
                        "properties": {
                            "entityName": {"type": "string"},
                            "addedObservations": {"type": "array", "items": {"type": "string"}},
                        },
                        "required": ["entityName", "addedObservations"],
                        "additionalProperties": False,
                    },
                }
            },
            "required": ["results"],
            "additionalProperties": False,
        },
        WRITE,
    ),
    "delete_entities": (
        "Delete Entities",
        "Delete multiple entities and their associated relations from the knowledge graph",
        {
            "entityNames": {
                "type": "array",
                "items": {"type": "string"},
                "description": "An array of entity names to delete",
            }
        },
        ["entityNames"],
        DONE_OUT,
        DELETE,
    ),
    "delete_observations": (
        "Delete Observations",
        "Delete specific observations from entities in the knowledge graph",
        {
            "deletions": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "entityName": {
                            "type": "string",
                            "description": "The name of the entity containing the observations",
                        },
                        "observations": {
                            "type": "array",
                            "items": {"type": "string"},
                            "description": "An array of observations to delete",
                        },
                    },
                    "required": ["entityName", "observations"],
                },
            }
        },
        ["deletions"],
        DONE_OUT,
        DELETE,
    ),
    "delete_relations": (
        "Delete Relations",
        "Delete multiple relations from the knowledge graph",
        {
            "relations": {
                "type": "array",
                "items": RELATION_IN,
                "description": "An array of relations to delete",
            }
        },
        ["relations"],
        DONE_OUT,
        DELETE,
    ),
    "read_graph": ("Read Graph", "Read the entire knowledge graph", {}, [], GRAPH_OUT, READ),
    "search_nodes": (
        "Search Nodes",
        "Search for nodes in the knowledge graph based on a query",
        {
            "query": {
                "type": "string",
                "description": "The search query to match against entity names, types, "
                "and observation content",
            }
        },
        ["query"],
        GRAPH_OUT,
        READ,
    ),
    "open_nodes": (
        "Open Nodes",
        "Open specific nodes in the knowledge graph by their names",
        {
            "names": {
                "type": "array",
                "items": {"type": "string"},
                "description": "An array of entity names to retrieve",
            }
        },
        ["names"],
        GRAPH_OUT,
        READ,
    ),
}


def test_the_tools_are_listed_as_the_reference_lists_them(memory: Memory) -> None:
    async def scenario(client: Client) -> None:
        listed = {
            tool.name: tool.model_dump(mode="json", by_alias=True, exclude_none=True)
            for tool in (await client.list_tools()).tools
        }
        assert list(listed) == list(REFERENCE_TOOLS)
        for name, (title, description, inputs, required, output, hints) in REFERENCE_TOOLS.items():
            tool = listed[name]
            assert tool["title"] == title
            assert tool["description"].startswith(description)
            schema = tool["inputSchema"]
            assert schema["type"] == "object"
            assert schema.get("required", []) == required
            # pydantic adds a "title" to each argument; nothing else differs
            properties = {
                arg: {k: v for k, v in spec.items() if k != "title"}
                for arg, spec in schema["properties"].items()
            }
            if (
                name == "read_graph"
            ):  # the reference takes no arguments; both additions are optional
                assert set(properties) == {"cursor", "limit"}
                assert tool["outputSchema"]["properties"]["nextCursor"] == {
                    "type": "string",
                    "description": "Present when the graph continues: pass it as cursor "
                    "to read the next page",
                }
                output = {
                    **output,
                    "properties": {
                        **output["properties"],
                        "nextCursor": tool["outputSchema"]["properties"]["nextCursor"],
                    },
                }
            else:
                assert properties == inputs
            assert tool["outputSchema"] == output
            # the reference marks its creating tools idempotentHint: false; they are idempotent
            assert tool["annotations"] == {"idempotentHint": True, **hints}

    drive(lambda: memory, scenario)


# -- the reference's answers, call by call ---------------------------------------------

ALICE = {"name": "Alice", "entityType": "person", "observations": ["likes tea"]}
BOB = {"name": "Bob", "entityType": "person", "observations": []}
CAROL = {"name": "Carol", "entityType": "Engineer", "observations": ['café ☕ "quoted"\n']}
KNOWS = {"from": "Alice", "to": "Bob", "relationType": "knows"}
WORKS = {"from": "Bob", "to": "Carol", "relationType": "works_with"}
DANGLING = {"from": "Dave", "to": "Erin", "relationType": "knows"}
ALICE_2 = {"name": "Alice", "entityType": "person", "observations": ["likes tea", "plays chess"]}

# (tool, arguments, text content, structuredContent or None for an error)
REFERENCE_SESSION: list[tuple[str, dict[str, Any], str, Any]] = [
    (
        "create_entities",
        {"entities": [ALICE, BOB]},
        '[\n  {\n    "name": "Alice",\n    "entityType": "person",\n    "observations": [\n'
        '      "likes tea"\n    ]\n  },\n  {\n    "name": "Bob",\n    "entityType": "person",\n'
        '    "observations": []\n  }\n]',
        {"entities": [ALICE, BOB]},
    ),
    (  # an existing name is skipped, whatever its type
        "create_entities",
        {"entities": [{"name": "Alice", "entityType": "robot", "observations": ["x"]}, CAROL]},
        '[\n  {\n    "name": "Carol",\n    "entityType": "Engineer",\n    "observations": [\n'
        '      "café ☕ \\"quoted\\"\\n"\n    ]\n  }\n]',
        {"entities": [CAROL]},
    ),
    (  # relations may name entities that do not exist
        "create_relations",
        {"relations": [KNOWS, WORKS, DANGLING]},
        '[\n  {\n    "from": "Alice",\n    "to": "Bob",\n    "relationType": "knows"\n  },\n'
        '  {\n    "from": "Bob",\n    "to": "Carol",\n    "relationType": "works_with"\n  },\n'
        '  {\n    "from": "Dave",\n    "to": "Erin",\n    "relationType": "knows"\n  }\n]',
        {"relations": [KNOWS, WORKS, DANGLING]},
    ),
    ("create_relations", {"relations": [KNOWS]}, "[]", {"relations": []}),
    (
        "add_observations",
        {
            "observations": [
                {"entityName": "Alice", "contents": ["likes tea", "plays chess"]},
                {"entityName": "Bob", "contents": []},
            ]
        },
        '[\n  {\n    "entityName": "Alice",\n    "addedObservations": [\n      "plays chess"\n'
        '    ]\n  },\n  {\n    "entityName": "Bob",\n    "addedObservations": []\n  }\n]',
        {
            "results": [
                {"entityName": "Alice", "addedObservations": ["plays chess"]},
                {"entityName": "Bob", "addedObservations": []},
            ]
        },
    ),
    (  # an error, and Bob does not get the observation (read_graph below)
        "add_observations",
        {
            "observations": [
                {"entityName": "Bob", "contents": ["should not be saved"]},
                {"entityName": "Nobody", "contents": ["x"]},
            ]
        },
        "Entity with name Nobody not found",
        None,
    ),
    (
        "search_nodes",
        {"query": "CHESS"},
        '{\n  "entities": [\n    {\n      "name": "Alice",\n      "entityType": "person",\n'
        '      "observations": [\n        "likes tea",\n        "plays chess"\n      ]\n    }\n'
        '  ],\n  "relations": [\n    {\n      "from": "Alice",\n      "to": "Bob",\n'
        '      "relationType": "knows"\n    }\n  ]\n}',
        {"entities": [ALICE_2], "relations": [KNOWS]},
    ),
    (
        "search_nodes",
        {"query": "engineer"},
        '{\n  "entities": [\n    {\n      "name": "Carol",\n      "entityType": "Engineer",\n'
        '      "observations": [\n        "café ☕ \\"quoted\\"\\n"\n      ]\n    }\n  ],\n'
        '  "relations": [\n    {\n      "from": "Bob",\n      "to": "Carol",\n'
        '      "relationType": "works_with"\n    }\n  ]\n}',
        {"entities": [CAROL], "relations": [WORKS]},
    ),
    (
        "search_nodes",
        {"query": "zzz"},
        '{\n  "entities": [],\n  "relations": []\n}',
        {"entities": [], "relations": []},
    ),
    (  # relations with either end among the nodes; unknown names are skipped
        "open_nodes",
        {"names": ["Bob", "Nobody"]},
        '{\n  "entities": [\n    {\n      "name": "Bob",\n      "entityType": "person",\n'
        '      "observations": []\n    }\n  ],\n  "relations": [\n    {\n      "from": "Alice",\n'
        '      "to": "Bob",\n      "relationType": "knows"\n    },\n    {\n      "from": "Bob",\n'
        '      "to": "Carol",\n      "relationType": "works_with"\n    }\n  ]\n}',
        {"entities": [BOB], "relations": [KNOWS, WORKS]},
    ),
    (
        "read_graph",
        {},
        '{\n  "entities": [\n    {\n      "name": "Alice",\n      "entityType": "person",\n'
        '      "observations": [\n        "likes tea",\n        "plays chess"\n      ]\n    },\n'
        '    {\n      "name": "Bob",\n      "entityType": "person",\n      "observations": []\n'
        '    },\n    {\n      "name": "Carol",\n      "entityType": "Engineer",\n'
        '      "observations": [\n        "café ☕ \\"quoted\\"\\n"\n      ]\n    }\n  ],\n'
        '  "relations": [\n    {\n      "from": "Alice",\n      "to": "Bob",\n'
        '      "relationType": "knows"\n    },\n    {\n      "from": "Bob",\n      "to": "Carol",\n'
        '      "relationType": "works_with"\n    },\n    {\n      "from": "Dave",\n'
        '      "to": "Erin",\n      "relationType": "knows"\n    }\n  ]\n}',
        {"entities": [ALICE_2, BOB, CAROL], "relations": [KNOWS, WORKS, DANGLING]},
    ),
    (
        "delete_observations",
        {
            "deletions": [
                {"entityName": "Alice", "observations": ["likes tea", "never there"]},
                {"entityName": "Nobody", "observations": ["x"]},
            ]
        },
        "Observations deleted successfully",
        {"success": True, "message": "Observations deleted successfully"},
    ),
    (
        "delete_relations",
        {"relations": [KNOWS, {"from": "X", "to": "Y", "relationType": "none"}]},
        "Relations deleted successfully",
        {"success": True, "message": "Relations deleted successfully"},
    ),
    (  # Carol's relation goes with her
        "delete_entities",
        {"entityNames": ["Carol", "Nobody"]},
        "Entities deleted successfully",
        {"success": True, "message": "Entities deleted successfully"},
    ),
    (
        "read_graph",
        {},
        '{\n  "entities": [\n    {\n      "name": "Alice",\n      "entityType": "person",\n'
        '      "observations": [\n        "plays chess"\n      ]\n    },\n    {\n'
        '      "name": "Bob",\n      "entityType": "person",\n      "observations": []\n    }\n'
        '  ],\n  "relations": [\n    {\n      "from": "Dave",\n      "to": "Erin",\n'
        '      "relationType": "knows"\n    }\n  ]\n}',
        {
            "entities": [{**ALICE, "observations": ["plays chess"]}, BOB],
            "relations": [DANGLING],
        },
    ),
    ("create_entities", {"entities": []}, "[]", {"entities": []}),
]


def test_each_call_answers_as_the_reference_does(store_url: str) -> None:
    memory = Memory("graph", url=store_url)

    async def scenario(client: Client) -> None:
        for tool, arguments, expected_text, structured in REFERENCE_SESSION:
            answer = await call(client, tool, arguments)
            assert text(answer) == expected_text, (tool, arguments)
            assert answer["isError"] is (structured is None), (tool, arguments)
            assert answer.get("structuredContent") == structured, (tool, arguments)

    drive(lambda: memory, scenario)


def test_where_it_differs_from_the_reference_on_purpose(memory: Memory) -> None:
    async def scenario(client: Client) -> None:
        # one name twice in a call: the first is kept (the reference stores both)
        answer = await call(
            client,
            "create_entities",
            {
                "entities": [
                    {"name": "Dup", "entityType": "t", "observations": []},
                    {"name": "Dup", "entityType": "u", "observations": []},
                ]
            },
        )
        assert answer["structuredContent"] == {
            "entities": [{"name": "Dup", "entityType": "t", "observations": []}]
        }
        # an observation given twice in a call is added once (the reference adds both)
        answer = await call(
            client,
            "add_observations",
            {"observations": [{"entityName": "Dup", "contents": ["a", "a"]}]},
        )
        assert answer["structuredContent"] == {
            "results": [{"entityName": "Dup", "addedObservations": ["a"]}]
        }
        # key order, not creation order
        await call(
            client,
            "create_entities",
            {"entities": [{"name": "Abe", "entityType": "t", "observations": []}]},
        )
        graph = (await call(client, "read_graph", {}))["structuredContent"]
        assert [e["name"] for e in graph["entities"]] == ["Abe", "Dup"]

    drive(lambda: memory, scenario)


# -- errors, names, namespaces -----------------------------------------------------------


def test_botwire_errors_are_tool_errors_with_their_code(memory: Memory) -> None:
    def forbidden() -> Memory:
        raise Forbidden("this token does not reach namespace 'graph'")

    async def refused(client: Client) -> None:
        answer = await call(client, "read_graph", {})
        assert answer["isError"] is True
        assert text(answer) == "forbidden: this token does not reach namespace 'graph'"
        assert answer["structuredContent"] == {
            "error": {"code": "forbidden", "message": "this token does not reach namespace 'graph'"}
        }

    drive(forbidden, refused)

    async def too_many(client: Client) -> None:
        many = [{"name": f"e{i}", "entityType": "t", "observations": []} for i in range(1001)]
        answer = await call(client, "create_entities", {"entities": many})
        assert answer["isError"] is True
        assert text(answer).startswith("invalid_request: this call would write 1001 keys")
        assert (await call(client, "read_graph", {}))["structuredContent"]["entities"] == []
        answer = await call(client, "read_graph", {"cursor": "bm90LWEta2V5"})  # "not-a-key"
        assert answer["isError"] is True
        assert text(answer).startswith("invalid_request: cursor 'bm90LWEta2V5' is not a nextCursor")
        answer = await call(client, "read_graph", {"limit": 0})
        assert answer["isError"] is True

    drive(lambda: memory, too_many)


def test_any_name_is_an_entity_name(memory: Memory) -> None:
    names = ["line\nbreak", "line%0Abreak", "100%", "", "é" * 400, "x" * 600, "a%|b"]

    async def scenario(client: Client) -> None:
        entities = [{"name": n, "entityType": "t", "observations": [n]} for n in names]
        answer = await call(client, "create_entities", {"entities": entities})
        assert len(answer["structuredContent"]["entities"]) == len(names)  # no two collide
        relations = [
            {"from": a, "to": b, "relationType": "%|"} for a, b in itertools.pairwise(names)
        ]
        answer = await call(client, "create_relations", {"relations": relations})
        assert len(answer["structuredContent"]["relations"]) == len(relations)
        opened = (await call(client, "open_nodes", {"names": names}))["structuredContent"]
        assert sorted(e["name"] for e in opened["entities"]) == sorted(names)
        assert all(e["observations"] == [e["name"]] for e in opened["entities"])
        await call(client, "delete_entities", {"entityNames": ["line\nbreak", "x" * 600]})
        graph = (await call(client, "read_graph", {}))["structuredContent"]
        assert len(graph["entities"]) == len(names) - 2
        assert {(r["from"], r["to"]) for r in graph["relations"]} == {
            ("line%0Abreak", "100%"),
            ("100%", ""),
            ("", "é" * 400),
        }

    drive(lambda: memory, scenario)


def test_memory_is_asked_on_every_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'graph.db'}"
    current = {"namespace": "project-a"}

    async def scenario(client: Client) -> None:
        await call(client, "create_entities", {"entities": [ALICE]})
        current["namespace"] = "project-b"
        assert (await call(client, "read_graph", {}))["structuredContent"]["entities"] == []
        current["namespace"] = "project-a"
        assert (await call(client, "read_graph", {}))["structuredContent"]["entities"] == [ALICE]

    drive(lambda: Memory(current["namespace"], url=url), scenario)


# -- read_graph in pages -----------------------------------------------------------------


def test_read_graph_pages_through_the_whole_graph(memory: Memory) -> None:
    entities = [
        {"name": f"n{i:02}", "entityType": "t", "observations": [f"o{i}"]} for i in range(30)
    ]
    relations = [
        {"from": f"n{i:02}", "to": f"n{i + 1:02}", "relationType": "next"} for i in range(12)
    ]
    Graph(memory).create_entities(entities)
    Graph(memory).create_relations(relations)

    async def read_all(client: Client, arguments: dict[str, Any]) -> list[dict[str, Any]]:
        pages, cursor = [], None
        while True:
            answer = await call(
                client, "read_graph", {**arguments, **({"cursor": cursor} if cursor else {})}
            )
            page = answer["structuredContent"]
            assert json.loads(text(answer)) == page
            pages.append(page)
            cursor = page.get("nextCursor")
            if cursor is None:
                return pages

    async def scenario(client: Client) -> None:
        pages = await read_all(client, {"limit": 7})
        assert [len(p["entities"]) + len(p["relations"]) for p in pages] == [7] * 6
        assert [e for p in pages for e in p["entities"]] == entities
        assert [r for p in pages for r in p["relations"]] == relations
        whole = await call(client, "read_graph", {"limit": 1000})
        assert whole["structuredContent"] == {"entities": entities, "relations": relations}

    drive(lambda: memory, scenario)

    async def capped(client: Client) -> None:
        pages = await read_all(client, {})  # the reference's call, on a graph over the cap
        assert len(pages) > 1
        assert all(
            len(json.dumps(p["entities"] + p["relations"], ensure_ascii=False)) <= 600
            for p in pages
        )
        assert [e for p in pages for e in p["entities"]] == entities
        assert [r for p in pages for r in p["relations"]] == relations

    drive(lambda: memory, capped, max_chars=600)


# -- import ------------------------------------------------------------------------------

# A memory.jsonl as the reference's saveGraph writes it (one JSON object a line, no final
# newline), with two lines for one entity, as its create_entities can leave; a blank line
# and a line of another type, which its loadGraph skips.
MEMORY_JSONL = (
    '{"type":"entity","name":"Alice","entityType":"person","observations":["plays chess"]}\n'
    '{"type":"entity","name":"Bob","entityType":"person","observations":[]}\n'
    '{"type":"entity","name":"Dup","entityType":"t","observations":["a","b"]}\n'
    "\n"
    '{"type":"entity","name":"Dup","entityType":"u","observations":["b","c"]}\n'
    '{"type":"note","text":"skipped"}\n'
    '{"type":"relation","from":"Alice","to":"Bob","relationType":"knows"}\n'
    '{"type":"relation","from":"Dave","to":"Erin","relationType":"knows \\u2028 well"}'
)


def test_import_of_a_memory_jsonl(memory: Memory, tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text(MEMORY_JSONL.replace("\\u2028", "\u2028"), encoding="utf-8")
    Graph(memory).create_entities([{"name": "Alice", "entityType": "robot", "observations": ["x"]}])
    assert import_graph(memory, path) == (3, 2)  # Alice gains an observation; Bob, Dup created
    assert import_graph(memory, path) == (0, 0)

    async def scenario(client: Client) -> None:
        graph = (await call(client, "read_graph", {}))["structuredContent"]
        assert graph == {
            "entities": [
                {"name": "Alice", "entityType": "robot", "observations": ["x", "plays chess"]},
                BOB,
                {"name": "Dup", "entityType": "t", "observations": ["a", "b", "c"]},
            ],
            "relations": [
                KNOWS,
                {"from": "Dave", "to": "Erin", "relationType": "knows \u2028 well"},
            ],
        }

    drive(lambda: memory, scenario)


def test_a_malformed_memory_jsonl_imports_nothing(memory: Memory, tmp_path: Path) -> None:
    path = tmp_path / "memory.jsonl"
    path.write_text('{"type":"entity","name":"A","entityType":"t","observations":[]}\n{oops\n')
    with pytest.raises(InvalidRequest, match="line 2 is not JSON"):
        import_graph(memory, path)
    path.write_text('{"type":"relation","from":"A","to":3,"relationType":"r"}\n')
    with pytest.raises(InvalidRequest, match="line 1: a relation needs"):
        import_graph(memory, path)
    assert memory.list_keys() == []


def test_deleting_an_entity_deletes_its_relations_however_many(
    memory: Memory, tmp_path: Path
) -> None:
    path = tmp_path / "memory.jsonl"
    lines = ['{"type":"entity","name":"hub","entityType":"t","observations":[]}']
    lines += [
        f'{{"type":"relation","from":"hub","to":"s{i}","relationType":"r"}}' for i in range(700)
    ]
    lines += [
        f'{{"type":"relation","from":"s{i}","to":"hub","relationType":"r"}}' for i in range(700)
    ]
    lines.append('{"type":"relation","from":"s1","to":"s2","relationType":"r"}')
    path.write_text("\n".join(lines))
    assert import_graph(memory, path) == (1, 1401)

    async def scenario(client: Client) -> None:
        await call(client, "delete_entities", {"entityNames": ["hub"]})
        graph = (await call(client, "read_graph", {}))["structuredContent"]
        assert graph == {
            "entities": [],
            "relations": [{"from": "s1", "to": "s2", "relationType": "r"}],
        }

    drive(lambda: memory, scenario)


# -- two processes, one entity -------------------------------------------------------------

WORKER = """
import sys
import anyio
from mcp import Client
from mcp.server.mcpserver import MCPServer
from botwire import Memory
from botwire.mcp.graph_tools import register

url, worker, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
server = MCPServer("graph-worker")
memory = Memory("graph", url=url)
register(server, lambda: memory)


async def main():
    async with Client(server) as client:
        print("ready", flush=True)
        sys.stdin.readline()  # both start together
        for i in range(count):
            result = await client.call_tool(
                "add_observations",
                {"observations": [{"entityName": "shared", "contents": [f"{worker}-{i}"]}]},
            )
            assert not result.is_error, result


anyio.run(main)
"""


@pytest.mark.slow
def test_two_processes_adding_observations_lose_none(shared_url: str) -> None:
    memory = Memory("graph", url=shared_url)
    Graph(memory).create_entities([{"name": "shared", "entityType": "t", "observations": []}])
    count = 40
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, shared_url, name, str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for name in ("a", "b")
    ]
    try:
        for worker in workers:
            assert worker.stdout is not None and worker.stdout.readline() == "ready\n"
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.flush()
        assert [worker.wait(timeout=120) for worker in workers] == [0, 0]
    finally:
        for worker in workers:
            if worker.poll() is None:
                worker.kill()
            worker.communicate()
    (entity,) = Graph(memory).open_nodes(["shared"])["entities"]
    expected = {f"{name}-{i}" for name in ("a", "b") for i in range(count)}
    assert len(entity["observations"]) == len(expected)
    assert set(entity["observations"]) == expected
