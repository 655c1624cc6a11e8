"""CrewAI (1.x): a storage backend for the unified ``crewai.memory.Memory``, and memory tools.

    pip install 'botwire[crewai]'

    from botwire.integrations.crewai import register
    register()                                    # once, at startup
    memory = Memory(storage="botwire")            # or "botwire:<namespace>"
    crew = Crew(agents=[...], tasks=[...], memory=memory)

* :class:`BotwireStorageBackend` implements CrewAI's ``StorageBackend``
  protocol (every method, sync and async) and ``touch_records``. A record is
  two keys: ``rec:<id>`` (``MemoryRecord.model_dump``) and ``vec:<id>`` (its
  embedding, which ``model_dump`` leaves out), written in one atomic batch; so
  ``count()`` is one key count and reading scopes or categories never decodes
  an embedding. The first embedding fixes the store's dimension (``meta:dim``,
  until ``reset()``): saving, updating or searching with another raises CrewAI's
  ``EmbeddingDimensionMismatchError``, as its LanceDB backend does. Search is
  cosine similarity over the records in scope, filtered by categories (any of)
  and metadata (all equal). A scope prefix matches whole path segments
  (``/crew`` is ``/crew`` and ``/crew/...``, not ``/crewai``), as CrewAI's
  Qdrant Edge backend does; ``delete`` removes the records that match every
  filter given. Search reads the records of the namespace (and the embeddings
  of those in scope) per query: fine for an agent's memories (thousands), not a
  vector database for millions. Round-1 records (the embedding inside
  ``rec:<id>``) are read as they are and split on their next write.
* :func:`register` routes ``Memory(storage="botwire")`` here through
  ``set_memory_storage_factory``; other specs go to CrewAI's own backends.
* :func:`memory_tools` returns ``remember``/``recall``/``forget``/``list_memories``
  tools (``@tool``) over a plain key-value namespace.

Where records go: ``namespace=`` (with ``url=``) is a plain name, or a
``{scope}`` template or a callable ``scope -> name``
(:mod:`botwire.integrations.tenants`) with the tenant given as ``scope=``; or
``memory=`` (a ``Memory``, which then wins). One backend holds one tenant,
because CrewAI reads and deletes records by id alone (``get_record``,
``touch_records``, its de-duplication): after ``register(namespace="crew-{scope}")``,
``Memory(storage="botwire:acme")`` keeps tenant ``acme`` in namespace ``crew-acme``
(with a plain ``namespace``, ``"botwire:<name>"`` names the namespace itself).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable, Iterator
from datetime import datetime, timezone
from typing import Any

try:
    from crewai.memory.storage.backend import EmbeddingDimensionMismatchError
    from crewai.memory.storage.factory import set_memory_storage_factory
    from crewai.memory.types import MemoryRecord, ScopeInfo
    from crewai.tools import BaseTool, tool
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError("botwire's CrewAI adapter needs: pip install 'botwire[crewai]'") from exc

from .. import AnswerTooLarge, Conflict, Memory
from ..ops import Clear, Count, Delete, Get, Op, Put, Record
from ..paging import scan_all
from ..wire import MAX_BATCH, decode_value, encode_value
from .tenants import NamespaceSpec, Tenants, per_scope

SPEC = "botwire"
REC, VEC, DIM = "rec:", "vec:", "meta:dim"
PAGE = 100  # records or embeddings per read (a 3072-float embedding is ~60 KB of JSON)
ATTEMPTS = 100  # compare-and-set retries


class BotwireStorageBackend:
    """CrewAI's memory ``StorageBackend`` on botwire (see the module docstring)."""

    def __init__(
        self,
        namespace: NamespaceSpec = "crewai-memory",
        *,
        url: str | None = None,
        memory: Memory | None = None,
        scope: str | None = None,
    ) -> None:
        if memory is None and scope is None and per_scope(namespace):
            raise ValueError(
                "a per-tenant namespace needs the tenant: scope=..., or storage='botwire:<scope>'"
            )
        tenants = Tenants(memory, namespace, url)
        self.memory = tenants.memory(scope or "")
        self._owned = memory is None

    # -- reading ----------------------------------------------------------------------------

    def _read(self, ops: list[Op]) -> list[Any]:
        return self.memory.batch(ops)

    def _scan(self, prefix: str) -> Iterator[tuple[str, Record]]:
        """Every live item under ``prefix``, a page at a time (smaller if a page is too large)."""
        return scan_all(self._read, prefix, page=PAGE)

    def _get(self, keys: list[str]) -> list[Record | None]:
        """The records of ``keys``, in order, a page at a time."""
        found: list[Record | None] = []
        for start in range(0, len(keys), PAGE):
            chunk = keys[start : start + PAGE]
            try:
                found += self._read([Get(key) for key in chunk])
            except AnswerTooLarge:
                found += [self._read([Get(key)])[0] for key in chunk]
        return found

    def _records(self, scope_prefix: str | None = None) -> list[MemoryRecord]:
        """The records in scope, without their embeddings (but round-1 records')."""
        records = (_load(record) for _, record in self._scan(REC))
        return [r for r in records if _within(r.scope, scope_prefix)]

    def _by_id(self, record_ids: Iterable[str]) -> list[MemoryRecord]:
        ids = list(dict.fromkeys(record_ids))
        return [_load(found) for found in self._get([REC + i for i in ids]) if found is not None]

    def _embedded(self, records: list[MemoryRecord]) -> list[MemoryRecord]:
        """``records`` with their embeddings."""
        vectors = self._get([VEC + r.id for r in records])
        return [
            r if found is None else r.model_copy(update={"embedding": decode_value(found.data)})
            for r, found in zip(records, vectors, strict=True)
        ]

    def _dimension(self) -> int | None:
        (found,) = self._read([Get(DIM)])
        return None if found is None else int(decode_value(found.data))

    # -- writing ----------------------------------------------------------------------------

    def save(self, records: list[MemoryRecord]) -> None:
        if not records:
            return
        dim = _batch_dimension(records)
        for _ in range(ATTEMPTS):
            (stored,) = self._read([Get(DIM)])
            ops: list[Op] = []
            if dim is not None:
                if stored is None:
                    ops.append(Put(DIM, encode_value(dim), if_version=0))
                elif decode_value(stored.data) != dim:
                    raise EmbeddingDimensionMismatchError(decode_value(stored.data), dim)
            for record in records:
                ops.append(Put(REC + record.id, encode_value(_dump(record))))
                if record.embedding:
                    ops.append(Put(VEC + record.id, encode_value(list(record.embedding))))
                else:
                    ops.append(Delete(VEC + record.id))
            try:
                for start in range(0, len(ops), MAX_BATCH):  # atomic up to ~500 records
                    self.memory.batch(ops[start : start + MAX_BATCH])
            except Conflict:
                continue  # another writer fixed the dimension first: check against it
            return
        raise Conflict("the store's embedding dimension kept changing; try again")

    def update(self, record: MemoryRecord) -> None:
        """Replace the record with ``record.id`` (adding it if missing), as CrewAI's backends."""
        self.save([record])

    def touch_records(self, record_ids: list[str]) -> None:
        """Set ``last_accessed`` to now (naive UTC, as CrewAI) on each record that exists."""
        keys = [REC + i for i in dict.fromkeys(record_ids)]
        for start in range(0, len(keys), PAGE):
            self._touch(keys[start : start + PAGE])

    def _touch(self, keys: list[str]) -> None:
        for _ in range(ATTEMPTS):
            now = datetime.now(timezone.utc).replace(tzinfo=None).isoformat()
            ops: list[Op] = []
            for key, found in zip(keys, self._get(keys), strict=True):
                if found is not None:
                    data = decode_value(found.data)
                    data["last_accessed"] = now
                    ops.append(Put(key, encode_value(data), if_version=found.version))
            try:
                if ops:
                    self.memory.batch(ops)
            except Conflict:
                continue  # a concurrent update won: touch the new version
            return

    def get_record(self, record_id: str) -> MemoryRecord | None:
        found = self._by_id([record_id])
        return self._embedded(found)[0] if found else None

    def list_records(
        self, scope_prefix: str | None = None, limit: int = 200, offset: int = 0
    ) -> list[MemoryRecord]:
        if limit <= 0 or offset < 0:
            return []
        records = sorted(self._records(scope_prefix), key=lambda r: r.created_at, reverse=True)
        return self._embedded(records[offset : offset + limit])

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
        stored = self._dimension()
        if stored is not None and stored != len(query_embedding):
            raise EmbeddingDimensionMismatchError(stored, len(query_embedding))
        candidates = _filtered(self._records(scope_prefix), categories, metadata_filter)
        scored = []
        for record in self._embedded(candidates):
            if not record.embedding:
                continue
            if len(record.embedding) != len(query_embedding):  # round-1 data of another model
                raise EmbeddingDimensionMismatchError(len(record.embedding), len(query_embedding))
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
        """Delete the records that match every filter given; how many were deleted."""
        if record_ids is not None:
            found = [r for r in self._by_id(record_ids) if _within(r.scope, scope_prefix)]
        else:
            found = self._records(scope_prefix)
        doomed = _filtered(found, categories, metadata_filter)
        if older_than is not None:
            cutoff = _utc(older_than)
            doomed = [r for r in doomed if _utc(r.created_at) < cutoff]
        deleted = 0
        for start in range(0, len(doomed), MAX_BATCH // 2):
            ops: list[Op] = []
            for record in doomed[start : start + MAX_BATCH // 2]:
                ops += [Delete(REC + record.id), Delete(VEC + record.id)]
            deleted += sum(self.memory.batch(ops)[::2])
        return deleted

    def reset(self, scope_prefix: str | None = None) -> None:
        """Delete the records in scope; with none, every record and the stored dimension."""
        if scope_prefix is None or not scope_prefix.strip("/"):
            self.memory.batch([Clear(REC), Clear(VEC), Delete(DIM)])
        else:
            self.delete(scope_prefix=scope_prefix)

    # -- scopes and categories ------------------------------------------------------------

    def list_scopes(self, parent: str = "/") -> list[str]:
        return _children(parent, (r.scope for r in self._records(parent)))

    def get_scope_info(self, scope: str) -> ScopeInfo:
        path = scope.rstrip("/") or "/"
        records = self._records(path)
        created = [r.created_at for r in records]
        return ScopeInfo(
            path=path,
            record_count=len(records),
            categories=sorted({c for r in records for c in r.categories}),
            oldest_record=min(created) if created else None,
            newest_record=max(created) if created else None,
            child_scopes=_children(path, (r.scope for r in records)),
        )

    def list_categories(self, scope_prefix: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for record in self._records(scope_prefix):
            for category in record.categories:
                counts[category] = counts.get(category, 0) + 1
        return counts

    def count(self, scope_prefix: str | None = None) -> int:
        if scope_prefix is None or not scope_prefix.strip("/"):
            (n,) = self._read([Count(REC)])
            return int(n)
        return len(self._records(scope_prefix))

    def close(self) -> None:
        if self._owned:  # a memory= given stays the caller's to close
            self.memory.close()

    # -- async (in a worker thread: the sync store calls are short) -------------------------

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


def _load(record: Record) -> MemoryRecord:
    return MemoryRecord.model_validate(decode_value(record.data))


def _dump(record: MemoryRecord) -> dict[str, Any]:
    data: dict[str, Any] = record.model_dump(mode="json")  # (no embedding: it is in vec:<id>)
    return data


def _batch_dimension(records: list[MemoryRecord]) -> int | None:
    """The one dimension of the embeddings in ``records`` (``None`` if they have none)."""
    dim: int | None = None
    for record in records:
        if record.embedding:
            if dim is None:
                dim = len(record.embedding)
            elif len(record.embedding) != dim:
                raise EmbeddingDimensionMismatchError(dim, len(record.embedding))
    return dim


def _within(scope: str, prefix: str | None) -> bool:
    """Whether ``scope`` is ``prefix`` or below it, by whole path segments."""
    if prefix is None or not prefix.strip("/"):
        return True
    root, scope = "/" + prefix.strip("/"), "/" + scope.strip("/")
    return scope == root or scope.startswith(root + "/")


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
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _utc(moment: datetime) -> datetime:
    """Naive UTC (CrewAI's own timestamps are naive UTC)."""
    return moment.astimezone(timezone.utc).replace(tzinfo=None) if moment.tzinfo else moment


def register(url: str | None = None, *, namespace: NamespaceSpec = "crewai-memory") -> None:
    """Make ``Memory(storage="botwire")`` (or ``"botwire:<name>"``) use botwire.

    ``"botwire:<name>"`` names the tenant when ``namespace`` is a ``{scope}``
    template or a callable, and the namespace itself when it is a plain name.
    """

    def factory(spec: str) -> BotwireStorageBackend | None:
        if spec == SPEC:
            return BotwireStorageBackend(namespace, url=url)
        if spec.startswith(SPEC + ":"):
            name = spec[len(SPEC) + 1 :]
            if per_scope(namespace):
                return BotwireStorageBackend(namespace, url=url, scope=name)
            return BotwireStorageBackend(name, url=url)
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
