"""The nine knowledge-graph tools on an ``MCPServer``: names, titles, descriptions, input
and output schemas and result shapes of ``@modelcontextprotocol/server-memory`` 2026.8.31
(see :mod:`.graph` for the storage and the differences on purpose)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import anyio.to_thread
from mcp.server.mcpserver import MCPServer
from mcp.types import CallToolResult, TextContent, ToolAnnotations
from pydantic import BaseModel, Field, GetJsonSchemaHandler, WithJsonSchema
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema
from typing_extensions import TypedDict

from .. import BotwireError, Memory
from .graph import (
    _MAX_LIMIT,
    DEFAULT_MAX_CHARS,
    Entity,
    EntityNotFound,
    Graph,
    ObservationAdd,
    ObservationDelete,
    Relation,
)

__all__ = ["register"]


# -- MCP: schemas and the nine tools ---------------------------------------------------

_DRAFT7 = "http://json-schema.org/draft-07/schema#"


def _string(description: str | None = None) -> dict[str, Any]:
    return (
        {"type": "string"}
        if description is None
        else {"type": "string", "description": description}
    )


def _strings_schema(description: str | None = None) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "array", "items": {"type": "string"}}
    return schema if description is None else {**schema, "description": description}


def _object(properties: dict[str, Any], *, closed: bool) -> dict[str, Any]:
    # zod's object schemas: additionalProperties false only on outputs
    schema = {"type": "object", "properties": properties, "required": list(properties)}
    return {**schema, "additionalProperties": False} if closed else schema


def _entity_schema(closed: bool) -> dict[str, Any]:
    return _object(
        {
            "name": _string("The name of the entity"),
            "entityType": _string("The type of the entity"),
            "observations": _strings_schema(
                "An array of observation contents associated with the entity"
            ),
        },
        closed=closed,
    )


def _relation_schema(closed: bool) -> dict[str, Any]:
    return _object(
        {
            "from": _string("The name of the entity where the relation starts"),
            "to": _string("The name of the entity where the relation ends"),
            "relationType": _string("The type of the relation"),
        },
        closed=closed,
    )


def _array(items: dict[str, Any], description: str | None = None) -> dict[str, Any]:
    schema = {"type": "array", "items": items}
    return schema if description is None else {**schema, "description": description}


def _output_schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "$schema": _DRAFT7,
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


class _Output(BaseModel):
    """Validates a structured result; publishes the reference's own output schema."""

    SCHEMA: ClassVar[dict[str, Any]]

    @classmethod
    def __get_pydantic_json_schema__(
        cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler
    ) -> JsonSchemaValue:
        return copy.deepcopy(cls.SCHEMA)


class _Entities(_Output):
    SCHEMA = _output_schema({"entities": _array(_entity_schema(True))}, ["entities"])
    entities: list[Entity]


class _Relations(_Output):
    SCHEMA = _output_schema({"relations": _array(_relation_schema(True))}, ["relations"])
    relations: list[Relation]


class _Added(TypedDict):
    entityName: str
    addedObservations: list[str]


_ADDED = _object({"entityName": _string(), "addedObservations": _strings_schema()}, closed=True)


class _Results(_Output):
    SCHEMA = _output_schema({"results": _array(_ADDED)}, ["results"])
    results: list[_Added]


class _Done(_Output):
    SCHEMA = _output_schema(
        {"success": {"type": "boolean"}, "message": _string()}, ["success", "message"]
    )
    success: bool
    message: str


_GRAPH_PROPERTIES = {
    "entities": _array(_entity_schema(True)),
    "relations": _array(_relation_schema(True)),
}


class _Graph(_Output):
    SCHEMA = _output_schema(_GRAPH_PROPERTIES, ["entities", "relations"])
    entities: list[Entity]
    relations: list[Relation]


class _Page(_Graph):
    SCHEMA = _output_schema(
        {
            **_GRAPH_PROPERTIES,
            "nextCursor": _string(
                "Present when the graph continues: pass it as cursor to read the next page"
            ),
        },
        ["entities", "relations"],
    )
    nextCursor: str | None = None


def _schema(schema: dict[str, Any]) -> WithJsonSchema:
    return WithJsonSchema(schema)


_ENTITIES_IN = _schema(_array(_entity_schema(False)))
_RELATIONS_IN = _schema(_array(_relation_schema(False)))
_RELATIONS_DELETE_IN = _schema(_array(_relation_schema(False), "An array of relations to delete"))
_ADDITIONS_IN = _schema(
    _array(
        _object(
            {
                "entityName": _string("The name of the entity to add the observations to"),
                "contents": _strings_schema("An array of observation contents to add"),
            },
            closed=False,
        )
    )
)
_DELETIONS_IN = _schema(
    _array(
        _object(
            {
                "entityName": _string("The name of the entity containing the observations"),
                "observations": _strings_schema("An array of observations to delete"),
            },
            closed=False,
        )
    )
)
_NAMES_DELETE_IN = _schema(_strings_schema("An array of entity names to delete"))
_NAMES_OPEN_IN = _schema(_strings_schema("An array of entity names to retrieve"))
_QUERY_IN = _schema(
    _string("The search query to match against entity names, types, and observation content")
)
_CURSOR_IN = _schema(
    _string("Where to continue: the nextCursor of the previous page (omit for the first page)")
)
_LIMIT_IN = _schema(
    {
        "type": "integer",
        "minimum": 1,
        "maximum": _MAX_LIMIT,
        "description": "At most this many items (entities, then relations) in the page",
    }
)


def _hints(*, read_only: bool = False, destructive: bool = False) -> ToolAnnotations:
    return ToolAnnotations(
        read_only_hint=read_only,
        destructive_hint=destructive,
        idempotent_hint=True,
        open_world_hint=False,
    )


_WRITE, _DELETE, _READ = _hints(), _hints(destructive=True), _hints(read_only=True)
_TOOLS: dict[str, tuple[str, str, ToolAnnotations]] = {  # name: title, description, hints
    "create_entities": (
        "Create Entities",
        "Create multiple new entities in the knowledge graph",
        _WRITE,
    ),
    "create_relations": (
        "Create Relations",
        "Create multiple new relations between entities in the knowledge graph. "
        "Relations should be in active voice",
        _WRITE,
    ),
    "add_observations": (
        "Add Observations",
        "Add new observations to existing entities in the knowledge graph",
        _WRITE,
    ),
    "delete_entities": (
        "Delete Entities",
        "Delete multiple entities and their associated relations from the knowledge graph",
        _DELETE,
    ),
    "delete_observations": (
        "Delete Observations",
        "Delete specific observations from entities in the knowledge graph",
        _DELETE,
    ),
    "delete_relations": (
        "Delete Relations",
        "Delete multiple relations from the knowledge graph",
        _DELETE,
    ),
    "read_graph": (
        "Read Graph",
        "Read the entire knowledge graph. A large graph comes in pages: when the answer "
        "has nextCursor, call again with cursor set to it for the rest",
        _READ,
    ),
    "search_nodes": (
        "Search Nodes",
        "Search for nodes in the knowledge graph based on a query",
        _READ,
    ),
    "open_nodes": (
        "Open Nodes",
        "Open specific nodes in the knowledge graph by their names",
        _READ,
    ),
}


def _text(text: str, **fields: Any) -> CallToolResult:
    return CallToolResult(content=[TextContent(type="text", text=text)], **fields)


def register(
    server: MCPServer[Any],
    memory: Callable[[], Memory],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
) -> None:
    """Add the nine knowledge-graph tools to ``server``.

    ``memory()`` is called once per tool call, on the event loop (so it may read the
    request's context, e.g. its token), and returns the ``Memory`` whose namespace
    holds the graph; the work then runs on a worker thread. ``max_chars`` bounds a
    ``read_graph`` page. Errors are tool errors (``isError``): the reference's text
    for a missing entity; for a botwire error, the text ``<code>: <message>`` and the
    structured content ``{"error": {"code", "message", ...}}``, as the key-value tools.
    """

    async def call(
        work: Callable[[Graph], Any], *, key: str | None = None, done: str | None = None
    ) -> CallToolResult:
        try:
            value = await anyio.to_thread.run_sync(work, Graph(memory(), max_chars=max_chars))
        except EntityNotFound as exc:
            return _text(str(exc), is_error=True)
        except BotwireError as exc:  # as the key-value tools answer one
            error = {"error": exc.to_dict()}
            return _text(f"{exc.code}: {exc.message}", structured_content=error, is_error=True)
        if done is not None:
            return _text(done, structured_content={"success": True, "message": done})
        # the text is JSON.stringify(value, null, 2): the same JSON, indented by two spaces
        text = json.dumps(value, indent=2, ensure_ascii=False)
        return _text(text, structured_content=value if key is None else {key: value})

    async def create_entities(
        entities: Annotated[list[Entity], _ENTITIES_IN],
    ) -> Annotated[CallToolResult, _Entities]:
        return await call(lambda g: g.create_entities(entities), key="entities")

    async def create_relations(
        relations: Annotated[list[Relation], _RELATIONS_IN],
    ) -> Annotated[CallToolResult, _Relations]:
        return await call(lambda g: g.create_relations(relations), key="relations")

    async def add_observations(
        observations: Annotated[list[ObservationAdd], _ADDITIONS_IN],
    ) -> Annotated[CallToolResult, _Results]:
        return await call(lambda g: g.add_observations(observations), key="results")

    async def delete_entities(
        entityNames: Annotated[list[str], _NAMES_DELETE_IN],
    ) -> Annotated[CallToolResult, _Done]:
        done = "Entities deleted successfully"
        return await call(lambda g: g.delete_entities(entityNames), done=done)

    async def delete_observations(
        deletions: Annotated[list[ObservationDelete], _DELETIONS_IN],
    ) -> Annotated[CallToolResult, _Done]:
        done = "Observations deleted successfully"
        return await call(lambda g: g.delete_observations(deletions), done=done)

    async def delete_relations(
        relations: Annotated[list[Relation], _RELATIONS_DELETE_IN],
    ) -> Annotated[CallToolResult, _Done]:
        done = "Relations deleted successfully"
        return await call(lambda g: g.delete_relations(relations), done=done)

    async def read_graph(
        cursor: Annotated[str | None, _CURSOR_IN] = None,
        limit: Annotated[int | None, Field(ge=1, le=_MAX_LIMIT), _LIMIT_IN] = None,
    ) -> Annotated[CallToolResult, _Page]:
        return await call(lambda g: g.read_graph(cursor, limit))

    async def search_nodes(query: Annotated[str, _QUERY_IN]) -> Annotated[CallToolResult, _Graph]:
        return await call(lambda g: g.search_nodes(query))

    async def open_nodes(
        names: Annotated[list[str], _NAMES_OPEN_IN],
    ) -> Annotated[CallToolResult, _Graph]:
        return await call(lambda g: g.open_nodes(names))

    tools = (
        create_entities,
        create_relations,
        add_observations,
        delete_entities,
        delete_observations,
        delete_relations,
        read_graph,
        search_nodes,
        open_nodes,
    )
    for fn in tools:
        title, description, hints = _TOOLS[fn.__name__]
        server.add_tool(
            fn, name=fn.__name__, title=title, description=description, annotations=hints
        )
