"""CrewAI (1.x): a storage backend for the unified ``crewai.memory.Memory``, and memory tools.

    pip install 'botwire[crewai]'

    from botwire.integrations.crewai import register
    register()                                    # once, at startup
    memory = Memory(storage="botwire")            # or "botwire:<namespace>"
    crew = Crew(agents=[...], tasks=[...], memory=memory)

* :class:`BotwireStorageBackend` implements CrewAI's ``StorageBackend``
  protocol (every method, sync and async). A record is one key
  (``rec:<id>``): ``MemoryRecord.model_dump`` plus its embedding, which
  ``model_dump`` leaves out. Search is cosine similarity over the records in
  scope, filtered by scope prefix, categories (any of) and metadata (all
  equal), as CrewAI's LanceDB backend filters. It reads every record of the
  namespace per query: fine for an agent's memories (thousands), not a vector
  database for millions.
* :func:`register` routes ``Memory(storage="botwire")`` here through
  ``set_memory_storage_factory``; other specs go to CrewAI's own backends.
* :func:`memory_tools` returns ``remember``/``recall``/``forget``/``list_memories``
  tools (``@tool``) over a plain key-value namespace.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable
from datetime import datetime
from typing import Any

try:
    from crewai.memory.storage.factory import set_memory_storage_factory
    from crewai.memory.types import MemoryRecord, ScopeInfo
    from crewai.tools import BaseTool, tool
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError("botwire's CrewAI adapter needs: pip install 'botwire[crewai]'") from exc

from .. import Memory

SPEC = "botwire"


class BotwireStorageBackend:
    """CrewAI's memory ``StorageBackend`` on botwire."""

    def __init__(self, namespace: str = "crewai-memory", *, url: str | None = None) -> None:
        self.memory = Memory(namespace, url=url)

    # -- reading and writing records ------------------------------------------------------

    def _records(self) -> list[MemoryRecord]:
        return [MemoryRecord.model_validate(item.value) for item in self.memory.scan("rec:")]

    def _in_scope(self, scope_prefix: str | None) -> list[MemoryRecord]:
        records = self._records()
        if scope_prefix is None or not scope_prefix.strip("/"):
            return records
        prefix = "/" + scope_prefix.strip("/")  # as CrewAI's backends: a string prefix
        return [r for r in records if r.scope.startswith(prefix)]

    def save(self, records: list[MemoryRecord]) -> None:
        if records:
            self.memory.set_many({f"rec:{r.id}": _dump(r) for r in records})

    def update(self, record: MemoryRecord) -> None:
        self.memory.set(f"rec:{record.id}", _dump(record))

    def get_record(self, record_id: str) -> MemoryRecord | None:
        data = self.memory.get(f"rec:{record_id}")
        return None if data is None else MemoryRecord.model_validate(data)

    def list_records(
        self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[MemoryRecord]:
        records = sorted(self._in_scope(scope_prefix), key=lambda r: r.created_at, reverse=True)
        return records[offset : offset + limit]

    # -- search and delete ----------------------------------------------------------------

    def search(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        scored = []
        for record in _filtered(self._in_scope(scope_prefix), categories, metadata_filter):
            if record.embedding:
                score = _cosine(query_embedding, record.embedding)
                if score >= min_score:
                    scored.append((record, score))
        scored.sort(key=lambda pair: pair[1], reverse=True)
        return scored[:limit]

    def delete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        doomed = _filtered(self._in_scope(scope_prefix), categories, metadata_filter)
        if record_ids is not None:
            wanted = set(record_ids)
            doomed = [r for r in doomed if r.id in wanted]
        if older_than is not None:
            doomed = [r for r in doomed if _naive(r.created_at) < _naive(older_than)]
        return self.memory.delete_many([f"rec:{r.id}" for r in doomed]) if doomed else 0

    def reset(self, scope_prefix: str | None = None) -> None:
        self.delete(scope_prefix=scope_prefix)

    # -- scopes and categories ------------------------------------------------------------

    def list_scopes(self, parent: str = "/") -> list[str]:
        return _children(parent, (r.scope for r in self._records()))

    def get_scope_info(self, scope: str) -> ScopeInfo:
        path = scope.rstrip("/") or "/"
        records = self._in_scope(path)
        created = [r.created_at for r in records]
        return ScopeInfo(
            path=path,
            record_count=len(records),
            categories=sorted({c for r in records for c in r.categories}),
            oldest_record=min(created) if created else None,
            newest_record=max(created) if created else None,
            child_scopes=_children(path, (r.scope for r in records)) if records else [],
        )

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._in_scope(scope_prefix):
            for category in record.categories:
                counts[category] = counts.get(category, 0) + 1
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        return len(self._in_scope(scope_prefix))

    # -- async (the memory's store does real async I/O where it has it) ---------------------

    async def asave(self, records: list[MemoryRecord]) -> None:
        await asyncio.to_thread(self.save, records)

    async def asearch(
        self,
        query_embedding: list[float],
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        metadata_filter: dict[str, Any] | None = None,
        limit: int = 10,
        min_score: float = 0.0,
    ) -> list[tuple[MemoryRecord, float]]:
        return await asyncio.to_thread(
            self.search,
            query_embedding,
            scope_prefix,
            categories,
            metadata_filter,
            limit,
            min_score,
        )

    async def adelete(
        self,
        scope_prefix: str | None = None,
        categories: list[str] | None = None,
        record_ids: list[str] | None = None,
        older_than: datetime | None = None,
        metadata_filter: dict[str, Any] | None = None,
    ) -> int:
        return await asyncio.to_thread(
            self.delete, scope_prefix, categories, record_ids, older_than, metadata_filter
        )


def _dump(record: MemoryRecord) -> dict[str, Any]:
    data: dict[str, Any] = record.model_dump(mode="json")
    data["embedding"] = record.embedding  # excluded by model_dump: kept beside the record
    return data


def _filtered(
    records: Iterable[MemoryRecord],
    categories: list[str] | None,
    metadata_filter: dict[str, Any] | None,
) -> list[MemoryRecord]:
    out = []
    for record in records:
        if categories and not any(c in record.categories for c in categories):
            continue
        if metadata_filter and not all(
            record.metadata.get(k) == v for k, v in metadata_filter.items()
        ):
            continue
        out.append(record)
    return out


def _children(parent: str, scopes: Iterable[str]) -> list[str]:
    parent = parent.rstrip("/")
    prefix = parent + "/"
    found = set()
    for scope in scopes:
        if scope.startswith(prefix) and scope != (parent or "/"):
            first = scope[len(prefix) :].split("/", 1)[0]
            if first:
                found.add(prefix + first)
    return sorted(found)


def _cosine(a: list[float], b: list[float]) -> float:
    if len(a) != len(b):
        return 0.0
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _naive(moment: datetime) -> datetime:
    return moment.replace(tzinfo=None) if moment.tzinfo else moment


def register(url: str | None = None) -> None:
    """Make ``Memory(storage="botwire")`` (or ``"botwire:<namespace>"``) use botwire."""

    def factory(spec: str) -> BotwireStorageBackend | None:
        if spec == SPEC:
            return BotwireStorageBackend(url=url)
        if spec.startswith(SPEC + ":"):
            return BotwireStorageBackend(spec[len(SPEC) + 1 :], url=url)
        return None  # CrewAI's own backends for every other spec

    set_memory_storage_factory(factory)


def memory_tools(namespace: str = "crewai-agent", url: str | None = None) -> list[BaseTool]:
    """Tools an agent's model can call to keep facts across runs."""
    memory = Memory(namespace, url=url)

    @tool("remember")  # type: ignore[untyped-decorator]  # (mypy runs without crewai)
    def remember(key: str, value: str) -> str:
        """Store a fact under a key (e.g. 'user:preferences') so later runs can recall it."""
        memory.set(key, value)
        return f"remembered {key!r}"

    @tool("recall")  # type: ignore[untyped-decorator]  # (mypy runs without crewai)
    def recall(key: str) -> str:
        """Read the fact stored under a key; says so when there is none."""
        value = memory.get(key)
        return f"nothing remembered under {key!r}" if value is None else str(value)

    @tool("forget")  # type: ignore[untyped-decorator]  # (mypy runs without crewai)
    def forget(key: str) -> str:
        """Delete the fact stored under a key."""
        return f"forgot {key!r}" if memory.delete(key) else f"nothing under {key!r}"

    @tool("list_memories")  # type: ignore[untyped-decorator]  # (mypy runs without crewai)
    def list_memories(prefix: str = "") -> str:
        """List the keys of stored facts, optionally only those starting with a prefix."""
        return ", ".join(memory.list_keys(prefix, limit=100)) or "no facts stored"

    return [remember, recall, forget, list_memories]
