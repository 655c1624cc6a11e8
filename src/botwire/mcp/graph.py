"""The knowledge-graph tools: a drop-in for the reference MCP memory server.

:mod:`.graph_tools` registers the nine tools of ``@modelcontextprotocol/server-memory``
(``create_entities``, ``create_relations``, ``add_observations``, ``delete_entities``,
``delete_observations``, ``delete_relations``, ``read_graph``, ``search_nodes``,
``open_nodes``) with its names, titles, descriptions, input and output schemas and
result shapes, as its ``dist/index.js`` (version 2026.8.31) defines them: the text
content is the result as JSON indented by two spaces (``JSON.stringify(x, null, 2)``),
the structured content the same object; a delete answers ``{"success": true,
"message": ...}``; ``add_observations`` on a missing entity is a tool error reading
``Entity with name <name> not found`` and changes nothing.

Storage: the one namespace of the ``Memory`` that ``memory()`` returns, one key per
entity (``kg:e:<name>``, value ``{"name", "entityType", "observations"}``) and one per
relation (``kg:r:<from>%|<to>%|<relationType>``, value ``{"from", "to",
"relationType"}``). ``%`` and control characters in names are written ``%XX``; a key
that would pass 512 bytes ends in ``%#<sha256>`` instead. Values carry the names, so
keys are never decoded. A call reads the keys it changes and writes them in
one atomic batch guarded by the versions read (``if_version``, ``0`` for new keys), and
starts again on :class:`~botwire.Conflict`: concurrent calls, from any number of
clients and processes, never lose a write, and each call is all or nothing.

Differences from the reference, on purpose:

- Results list entities by key (by name) and relations by (from, to, relationType),
  not in creation order, so that pages are stable.
- ``read_graph`` answers in pages: at most ``limit`` items (entities first, then
  relations) and ``max_chars`` (20,000) characters of compact JSON, with ``nextCursor``
  when more remain; called with no arguments, as the reference is, on a small graph
  it returns the whole graph.
- Within one call, ``create_entities`` keeps the first of several entities with one
  name and ``add_observations`` adds an observation given twice once (the reference
  stores both copies).
- The three creating tools are marked ``idempotentHint`` (repeating a call changes
  nothing); the reference marks them ``false``.
- A call writes at most 1000 keys (botwire's batch limit), else it is refused with
  ``invalid_request``; deletes of more keys go in batches of 1000.
- Store errors are tool errors reading ``<code>: <message>`` (``conflict: ...``), with
  ``{"error": {"code", "message", ...}}`` as structured content, as the key-value tools.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeVar

from typing_extensions import TypedDict

from .. import Conflict, InvalidRequest, Memory, NotFound
from ..ops import Delete, Get, Op, Put, Record
from ..paging import scan_all
from ..wire import MAX_BATCH, decode_value, encode_value

__all__ = [
    "DEFAULT_MAX_CHARS",
    "ENTITY_PREFIX",
    "RELATION_PREFIX",
    "Entity",
    "EntityNotFound",
    "Graph",
    "Relation",
    "entity_key",
    "import_graph",
    "relation_key",
]

ENTITY_PREFIX = "kg:e:"
RELATION_PREFIX = "kg:r:"
DEFAULT_MAX_CHARS = 20_000
"""The size of a ``read_graph`` page: its items, as compact JSON, in characters."""

_GRAPH_PREFIX = "kg:"
_SEP = "%|"  # never produced by _escape, whose "%" is always followed by two hex digits
_HASHED = "%#"
_MAX_KEY_BYTES = 512
_ESCAPED = re.compile(r"[%\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_ATTEMPTS = 100  # as Memory.update
_PAGE = 500
_READ_CHUNK = 200
_MAX_LIMIT = 1000

R = TypeVar("R")


class Entity(TypedDict):
    name: str
    entityType: str
    observations: list[str]


Relation = TypedDict("Relation", {"from": str, "to": str, "relationType": str})


class ObservationAdd(TypedDict):
    entityName: str
    contents: list[str]


class ObservationDelete(TypedDict):
    entityName: str
    observations: list[str]


class EntityNotFound(NotFound):
    """``add_observations`` named an entity that does not exist (the reference's message)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"Entity with name {name} not found", entity=name)


# -- keys -----------------------------------------------------------------------------


def _escape(text: str) -> str:
    def byte_escape(match: re.Match[str]) -> str:
        return "".join(f"%{b:02X}" for b in match.group().encode("utf-8", "surrogatepass"))

    return _ESCAPED.sub(byte_escape, text)


def _key(prefix: str, body: str, identity: str) -> str:
    key = prefix + body
    if len(key.encode("utf-8")) <= _MAX_KEY_BYTES:
        return key
    digest = hashlib.sha256(identity.encode("utf-8", "surrogatepass")).hexdigest()
    return prefix + _HASHED + digest


def entity_key(name: str) -> str:
    """The key of the entity called ``name``."""
    return _key(ENTITY_PREFIX, _escape(name), name)


def relation_key(relation: Relation) -> str:
    """The key of a relation: one per (from, to, relationType)."""
    parts = (relation["from"], relation["to"], relation["relationType"])
    body = _SEP.join(_escape(part) for part in parts)
    return _key(RELATION_PREFIX, body, json.dumps(parts))


# -- values ---------------------------------------------------------------------------


def _entity(name: str, entity_type: str, observations: Sequence[str]) -> Entity:
    return {"name": name, "entityType": entity_type, "observations": list(observations)}


def _relation(source: str, target: str, relation_type: str) -> Relation:
    return {"from": source, "to": target, "relationType": relation_type}


def _strings(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(item, str) for item in value)


def _as_entity(record: Record | None) -> Entity | None:
    """The entity a record holds; ``None`` for none, or for a value that is not one."""
    if record is None:
        return None
    value = decode_value(record.data)
    if (
        isinstance(value, dict)
        and isinstance(value.get("name"), str)
        and isinstance(value.get("entityType"), str)
        and _strings(value.get("observations"))
    ):
        return _entity(value["name"], value["entityType"], value["observations"])
    return None


def _as_relation(record: Record) -> Relation | None:
    value = decode_value(record.data)
    if isinstance(value, dict) and all(
        isinstance(value.get(field), str) for field in ("from", "to", "relationType")
    ):
        return _relation(value["from"], value["to"], value["relationType"])
    return None


def _fresh(items: Sequence[str], known: Sequence[str]) -> list[str]:
    """The items not in ``known``, each once, in order."""
    seen = set(known)
    fresh = []
    for item in items:
        if item not in seen:
            seen.add(item)
            fresh.append(item)
    return fresh


def _version(record: Record | None) -> int:
    return 0 if record is None else record.version


def _size(item: Any) -> int:
    """The characters ``item`` adds to a JSON list: itself and a separator."""
    return len(json.dumps(item, ensure_ascii=False)) + 2


def _cursor(key: str) -> str:
    return base64.urlsafe_b64encode(key.encode("utf-8")).decode("ascii").rstrip("=")


def _after(cursor: str) -> str:
    try:
        key = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        key = ""
    if not key.startswith(_GRAPH_PREFIX):
        raise InvalidRequest(f"cursor {cursor[:40]!r} is not a nextCursor read_graph returned")
    return key


# -- the graph ------------------------------------------------------------------------


class Graph:
    """The knowledge graph stored in one botwire namespace (see the module docstring).

    Each method is one atomic step against the store (a delete of more than 1000 keys:
    one per 1000), safe against concurrent callers in any process; store failures
    raise :class:`~botwire.BotwireError`.
    """

    def __init__(self, memory: Memory, *, max_chars: int = DEFAULT_MAX_CHARS) -> None:
        self.memory = memory
        self.max_chars = max_chars

    # -- store access -------------------------------------------------------------------

    def _get(self, keys: Sequence[str]) -> dict[str, Record | None]:
        found: dict[str, Record | None] = {}
        for start in range(0, len(keys), _READ_CHUNK):
            chunk = keys[start : start + _READ_CHUNK]
            ops = [Get(key, fresh=True) for key in chunk]  # CAS reads skip any read cache
            found.update(zip(chunk, self.memory.batch(ops), strict=True))
        return found

    def _scan(self, prefix: str, after: str | None = None) -> Iterator[tuple[str, Record]]:
        """Every live item under ``prefix`` after ``after``, paged (smaller while too large)."""
        return scan_all(self.memory.batch, prefix, after=after, page=_PAGE)

    def _entities(self) -> Iterator[tuple[str, Entity]]:
        for key, record in self._scan(ENTITY_PREFIX):
            if (entity := _as_entity(record)) is not None:
                yield key, entity

    def _relations(self) -> Iterator[Relation]:
        for _, record in self._scan(RELATION_PREFIX):
            if (relation := _as_relation(record)) is not None:
                yield relation

    def _transact(
        self,
        keys: Sequence[str],
        decide: Callable[[dict[str, Record | None]], tuple[list[Op], R]],
    ) -> R:
        """Read ``keys``, write what ``decide`` makes of them atomically; again on a race."""
        for _ in range(_ATTEMPTS):
            ops, result = decide(self._get(keys))
            if len(ops) > MAX_BATCH:
                raise InvalidRequest(
                    f"this call would write {len(ops)} keys; a call writes at most "
                    f"{MAX_BATCH}: split it"
                )
            try:
                if ops:
                    self.memory.batch(ops)
            except Conflict:
                continue
            return result
        raise Conflict(f"the graph kept changing: gave up after {_ATTEMPTS} attempts")

    def _delete(self, keys: Sequence[str]) -> None:
        for start in range(0, len(keys), MAX_BATCH):
            self.memory.batch([Delete(key) for key in keys[start : start + MAX_BATCH]])

    # -- the nine operations --------------------------------------------------------------

    def create_entities(self, entities: Sequence[Entity]) -> list[Entity]:
        """Create the entities whose names are new; return those created."""
        wanted: dict[str, Entity] = {}
        for e in entities:
            wanted.setdefault(
                entity_key(e["name"]), _entity(e["name"], e["entityType"], e["observations"])
            )

        def decide(found: dict[str, Record | None]) -> tuple[list[Op], list[Entity]]:
            new = [(k, e) for k, e in wanted.items() if _as_entity(found[k]) is None]
            ops: list[Op] = [Put(k, encode_value(e), if_version=_version(found[k])) for k, e in new]
            return ops, [e for _, e in new]

        return self._transact(list(wanted), decide)

    def create_relations(self, relations: Sequence[Relation]) -> list[Relation]:
        """Create the relations that do not exist yet; return those created."""
        wanted: dict[str, Relation] = {}
        for r in relations:
            wanted.setdefault(relation_key(r), _relation(r["from"], r["to"], r["relationType"]))

        def decide(found: dict[str, Record | None]) -> tuple[list[Op], list[Relation]]:
            new = [(k, r) for k, r in wanted.items() if found[k] is None]
            return [Put(k, encode_value(r), if_version=0) for k, r in new], [r for _, r in new]

        return self._transact(list(wanted), decide)

    def add_observations(self, additions: Sequence[ObservationAdd]) -> list[dict[str, Any]]:
        """Append the new observations to each entity; :class:`EntityNotFound` if one is missing."""
        keys = list(dict.fromkeys(entity_key(a["entityName"]) for a in additions))

        def decide(found: dict[str, Record | None]) -> tuple[list[Op], list[dict[str, Any]]]:
            current = {key: _as_entity(found[key]) for key in keys}
            changed: set[str] = set()
            results = []
            for addition in additions:
                key = entity_key(addition["entityName"])
                entity = current[key]
                if entity is None:
                    raise EntityNotFound(addition["entityName"])
                added = _fresh(addition["contents"], entity["observations"])
                if added:
                    entity["observations"].extend(added)
                    changed.add(key)
                results.append({"entityName": addition["entityName"], "addedObservations": added})
            ops: list[Op] = [
                Put(key, encode_value(current[key]), if_version=_version(found[key]))
                for key in keys
                if key in changed
            ]
            return ops, results

        return self._transact(keys, decide)

    def delete_entities(self, names: Sequence[str]) -> None:
        """Delete the entities and every relation from or to them; missing names are skipped."""
        doomed = set(names)
        entity_keys = list(dict.fromkeys(entity_key(name) for name in names))
        relation_keys = [
            relation_key(r) for r in self._relations() if r["from"] in doomed or r["to"] in doomed
        ]
        # The entities go last: if a large delete stops half-way, repeating it finishes it.
        self._delete(relation_keys + entity_keys)

    def delete_observations(self, deletions: Sequence[ObservationDelete]) -> None:
        """Remove the observations from each entity; missing entities are skipped."""
        keys = list(dict.fromkeys(entity_key(d["entityName"]) for d in deletions))

        def decide(found: dict[str, Record | None]) -> tuple[list[Op], None]:
            current = {key: _as_entity(found[key]) for key in keys}
            changed: set[str] = set()
            for deletion in deletions:
                key = entity_key(deletion["entityName"])
                entity = current[key]
                if entity is None:
                    continue
                drop = set(deletion["observations"])
                kept = [o for o in entity["observations"] if o not in drop]
                if len(kept) != len(entity["observations"]):
                    entity["observations"] = kept
                    changed.add(key)
            ops: list[Op] = [
                Put(key, encode_value(current[key]), if_version=_version(found[key]))
                for key in keys
                if key in changed
            ]
            return ops, None

        self._transact(keys, decide)

    def delete_relations(self, relations: Sequence[Relation]) -> None:
        """Delete the relations; those that do not exist are skipped."""
        self._delete(list(dict.fromkeys(relation_key(r) for r in relations)))

    def read_graph(self, cursor: str | None = None, limit: int | None = None) -> dict[str, Any]:
        """One page of the graph: entities, then relations, in key order.

        A page holds at most ``limit`` items, whose list as compact JSON is at most
        ``max_chars`` characters (the indented text content is longer), and always at
        least one item; ``nextCursor`` is set when more remain.
        """
        if limit is not None and not 1 <= limit <= _MAX_LIMIT:
            raise InvalidRequest(f"limit must be 1 to {_MAX_LIMIT}, not {limit}")
        after = None if cursor is None else _after(cursor)
        entities: list[Entity] = []
        relations: list[Relation] = []
        used = count = 0
        last: str | None = None
        for key, record in self._scan(_GRAPH_PREFIX, after):
            entity = _as_entity(record) if key.startswith(ENTITY_PREFIX) else None
            relation = _as_relation(record) if key.startswith(RELATION_PREFIX) else None
            item = entity or relation
            if item is None:
                continue
            size = _size(item)
            if last is not None and (
                (limit is not None and count >= limit) or used + size > self.max_chars
            ):
                return {"entities": entities, "relations": relations, "nextCursor": _cursor(last)}
            if entity is not None:
                entities.append(entity)
            elif relation is not None:
                relations.append(relation)
            used += size
            count += 1
            last = key
        return {"entities": entities, "relations": relations}

    def search_nodes(self, query: str) -> dict[str, Any]:
        """Entities whose name, type or an observation contains ``query`` (any case),
        and the relations from or to them."""
        q = query.lower()
        entities = [
            e
            for _, e in self._entities()
            if q in e["name"].lower()
            or q in e["entityType"].lower()
            or any(q in o.lower() for o in e["observations"])
        ]
        return {"entities": entities, "relations": self._touching(e["name"] for e in entities)}

    def open_nodes(self, names: Sequence[str]) -> dict[str, Any]:
        """The named entities that exist, and the relations from or to them."""
        keys = sorted(set(entity_key(name) for name in names))
        found = self._get(keys)
        entities = [e for key in keys if (e := _as_entity(found[key])) is not None]
        return {"entities": entities, "relations": self._touching(e["name"] for e in entities)}

    def _touching(self, names: Iterator[str] | Sequence[str]) -> list[Relation]:
        wanted = set(names)
        if not wanted:
            return []
        return [r for r in self._relations() if r["from"] in wanted or r["to"] in wanted]

    def merge_entities(self, entities: Sequence[Entity]) -> int:
        """Create the new entities and add the missing observations to existing ones.

        How many entities were created or changed. Used by :func:`import_graph`.
        """
        wanted: dict[str, Entity] = {}
        for e in entities:
            wanted.setdefault(
                entity_key(e["name"]), _entity(e["name"], e["entityType"], e["observations"])
            )

        def decide(found: dict[str, Record | None]) -> tuple[list[Op], int]:
            ops: list[Op] = []
            for key, entity in wanted.items():
                existing = _as_entity(found[key])
                if existing is not None:
                    new = _fresh(entity["observations"], existing["observations"])
                    if not new:
                        continue
                    entity = existing
                    entity["observations"].extend(new)
                ops.append(Put(key, encode_value(entity), if_version=_version(found[key])))
            return ops, len(ops)

        return self._transact(list(wanted), decide)


# -- import ---------------------------------------------------------------------------


def _parse_jsonl(text: str, where: str) -> tuple[list[Entity], list[Relation]]:
    """The entities (one per name, observations merged) and relations of a memory.jsonl."""
    entities: dict[str, Entity] = {}
    relations: list[Relation] = []
    for number, line in enumerate(text.split("\n"), 1):  # as the reference: JSON may hold U+2028
        if not line.strip():
            continue
        try:
            item = json.loads(line)
        except ValueError as exc:
            raise InvalidRequest(f"{where} line {number} is not JSON: {exc}") from None
        kind = item.get("type") if isinstance(item, dict) else None
        if kind == "entity":
            name, entity_type = item.get("name"), item.get("entityType")
            observations = item.get("observations", [])
            if not (isinstance(name, str) and isinstance(entity_type, str)):
                raise InvalidRequest(f"{where} line {number}: an entity needs a name and type")
            if not _strings(observations):
                raise InvalidRequest(f"{where} line {number}: observations must be strings")
            if name in entities:
                known = entities[name]["observations"]
                known.extend(o for o in observations if o not in known)
            else:
                entities[name] = _entity(name, entity_type, observations)
        elif kind == "relation":
            parts = (item.get("from"), item.get("to"), item.get("relationType"))
            start, target, relation_type = parts
            if not (
                isinstance(start, str)
                and isinstance(target, str)
                and isinstance(relation_type, str)
            ):
                raise InvalidRequest(f"{where} line {number}: a relation needs from, to and type")
            relations.append(_relation(start, target, relation_type))
        # other lines are skipped, as the reference skips them
    return list(entities.values()), relations


def import_graph(memory: Memory, path: str | os.PathLike[str]) -> tuple[int, int]:
    """Import the reference server's ``memory.jsonl`` into ``memory``'s namespace.

    Returns (entities created or given new observations, relations created). An
    entity that exists keeps its type and gains the observations it lacks; several
    lines for one entity are merged. Idempotent: importing the same file again
    returns ``(0, 0)``. Each batch of up to 1000 keys is atomic; an interrupted import
    is finished by running it again. :class:`~botwire.InvalidRequest` names a
    malformed line (nothing is written then).
    """
    with open(path, encoding="utf-8") as file:
        entities, relations = _parse_jsonl(file.read(), os.fspath(path))
    graph = Graph(memory)
    changed = created = 0
    for start in range(0, len(entities), MAX_BATCH):
        changed += graph.merge_entities(entities[start : start + MAX_BATCH])
    for start in range(0, len(relations), MAX_BATCH):
        created += len(graph.create_relations(relations[start : start + MAX_BATCH]))
    return changed, created
