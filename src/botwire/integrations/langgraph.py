"""LangGraph: a long-term memory store (``BaseStore``) and a node cache (``BaseCache``).

    pip install 'botwire[langgraph]'

    from botwire.integrations.langgraph import BotwireStore, BotwireCache
    graph = builder.compile(store=BotwireStore(), cache=BotwireCache())

Both keep everything in one botwire namespace (``"langgraph"`` by default). A
LangGraph namespace tuple and key become one botwire key, each label
percent-encoded and followed by ``/``, then ``#`` and the encoded key
(``("users", "u-1")``, ``"prefs"`` -> ``users/u-1/#prefs``), so the mapping is
reversible and a namespace prefix is a key prefix: a search or a namespace
listing is one ``Scan`` of a key range. A whole ``batch`` of LangGraph ops is one
botwire batch: one round trip, atomic.

Search: ``filter`` supports equality on (nested) fields and the operators
``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, as LangGraph's own
stores do; a comparison with a missing or non-numeric field is false rather
than an error. Results are sorted by namespace, then key. There is no vector
index: ``query`` is ignored (as by ``InMemoryStore`` without an index), and
``index`` on puts too.

TTL: ``supports_ttl = True``; LangGraph's TTLs are minutes, stored as seconds.
``refresh_ttl`` (or ``ttl_config["refresh_on_read"]``, default true) restarts
an item's clock when a get or search returns it. Expired items are never
returned.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timezone
from typing import Any
from urllib.parse import quote, unquote

try:
    from langgraph.cache.base import BaseCache, FullKey, Namespace
    from langgraph.store.base import (
        BaseStore,
        GetOp,
        Item,
        ListNamespacesOp,
        Op,
        PutOp,
        Result,
        SearchItem,
        SearchOp,
        TTLConfig,
    )
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError(
        "botwire's LangGraph adapter needs: pip install 'botwire[langgraph]'"
    ) from exc

from .. import AsyncMemory, Memory
from ..ops import Clear, Delete, Get, ListKeys, Put, Record, Scan
from ..ops import Op as BotwireOp
from ..wire import decode_value, encode_value

SEP, KEY = "/", "#"


def _label(text: str) -> str:
    return quote(text, safe="")  # never "/" or "#": the separators stay unambiguous


def prefix_of(namespace: Sequence[str]) -> str:
    """The key prefix of every item under ``namespace`` (or under a namespace prefix)."""
    return "".join(_label(label) + SEP for label in namespace)


def key_of(namespace: Sequence[str], key: str) -> str:
    """The botwire key of item ``key`` in ``namespace``."""
    return prefix_of(namespace) + KEY + _label(key)


def split_key(stored: str) -> tuple[tuple[str, ...], str]:
    """``(namespace, key)`` back from a botwire key."""
    if stored.startswith(KEY):  # the root namespace ()
        return (), unquote(stored[len(KEY) :])
    path, _, key = stored.rpartition(SEP + KEY)
    return tuple(unquote(label) for label in path.split(SEP)), unquote(key)


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _item(cls: type[Any], namespace: tuple[str, ...], key: str, record: Record) -> Any:
    return cls(
        namespace=namespace,
        key=key,
        value=decode_value(record.data),
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
    )


def _open(memory: Memory | None, namespace: str, url: str | None) -> Memory:
    return memory if memory is not None else Memory(namespace, url=url)


class BotwireStore(BaseStore):
    """LangGraph's ``BaseStore`` on botwire (embedded, a server, or any store URL)."""

    supports_ttl: bool = True

    def __init__(
        self,
        memory: Memory | None = None,
        *,
        namespace: str = "langgraph",
        url: str | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        self.memory = _open(memory, namespace, url)
        self._async = AsyncMemory(self.memory.namespace, url=self.memory.store)
        self.ttl_config = ttl

    # -- the primitive ----------------------------------------------------------------

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        plan = _Plan(list(ops))
        first = plan.first()
        results = self.memory.batch(first) if first else []
        refresh = plan.refreshes(results)
        if refresh:
            self.memory.batch(refresh)
        return plan.answers(results)

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        plan = _Plan(list(ops))
        first = plan.first()
        results = await self._async.batch(first) if first else []
        refresh = plan.refreshes(results)
        if refresh:
            await self._async.batch(refresh)
        return plan.answers(results)


class _Plan:
    """One LangGraph batch as botwire ops, and the LangGraph results back. No I/O."""

    def __init__(self, ops: list[Op]) -> None:
        self.ops = ops
        self.sent: list[BotwireOp] = []
        self.index: list[int | None] = []  # per LangGraph op: its botwire op, or None

    def first(self) -> list[BotwireOp]:
        for op in self.ops:
            self.index.append(len(self.sent))
            if isinstance(op, GetOp):
                self.sent.append(Get(key_of(op.namespace, op.key), op.refresh_ttl))
            elif isinstance(op, PutOp):
                key = key_of(op.namespace, op.key)
                if op.value is None:
                    self.sent.append(Delete(key))
                else:
                    self.sent.append(Put(key, encode_value(dict(op.value)), self._ttl(op.ttl)))
            elif isinstance(op, SearchOp):
                _check_filter(op.filter or {})
                self.sent.append(Scan(prefix_of(op.namespace_prefix)))
            elif isinstance(op, ListNamespacesOp):
                self.sent.append(ListKeys())  # the keys name every namespace with an item
            else:
                raise TypeError(f"unknown LangGraph operation {op!r}")
        return self.sent

    @staticmethod
    def _ttl(minutes: float | None) -> float | None:
        """Seconds (BaseStore.put has already applied the configured default)."""
        return None if minutes is None else float(minutes) * 60

    def refreshes(self, results: list[Any]) -> list[BotwireOp]:
        """The refreshing reads a search asks for, of the items it returns."""
        ops: list[BotwireOp] = []
        for op, position in zip(self.ops, self.index, strict=True):
            if isinstance(op, SearchOp) and op.refresh_ttl:
                for item in self._search(op, results[position]):  # type: ignore[index]
                    ops.append(Get(key_of(item.namespace, item.key), refresh=True))
        return ops

    def answers(self, results: list[Any]) -> list[Result]:
        out: list[Result] = []
        for op, position in zip(self.ops, self.index, strict=True):
            result = results[position]  # type: ignore[index]
            if isinstance(op, GetOp):
                out.append(None if result is None else _item(Item, op.namespace, op.key, result))
            elif isinstance(op, PutOp):
                out.append(None)
            elif isinstance(op, SearchOp):
                out.append(self._search(op, result))
            else:
                out.append(_namespaces(op, result))
        return out

    @staticmethod
    def _search(op: SearchOp, scanned: list[tuple[str, Record]]) -> list[SearchItem]:
        found = []
        for stored, record in scanned:
            namespace, key = split_key(stored)
            item = _item(SearchItem, namespace, key, record)
            if not op.filter or all(
                _matches(item.value.get(field), wanted) for field, wanted in op.filter.items()
            ):
                found.append(item)
        return found[op.offset : op.offset + op.limit]


def _namespaces(op: ListNamespacesOp, keys: list[str]) -> list[tuple[str, ...]]:
    spaces = {split_key(stored)[0] for stored in keys}
    for condition in op.match_conditions or ():
        spaces = {ns for ns in spaces if _path_matches(condition.match_type, condition.path, ns)}
    if op.max_depth is not None:
        spaces = {ns[: op.max_depth] for ns in spaces}
    return sorted(spaces)[op.offset : op.offset + op.limit]


def _path_matches(kind: str, path: Sequence[str], namespace: tuple[str, ...]) -> bool:
    if kind not in ("prefix", "suffix"):
        raise ValueError(f"unsupported match type {kind!r}")
    if len(namespace) < len(path):
        return False
    labels = namespace[: len(path)] if kind == "prefix" else namespace[len(namespace) - len(path) :]
    return all(wanted in ("*", label) for label, wanted in zip(labels, path, strict=True))


_COMPARE = {
    "$gt": lambda a, b: a > b,
    "$gte": lambda a, b: a >= b,
    "$lt": lambda a, b: a < b,
    "$lte": lambda a, b: a <= b,
}


def _matches(value: Any, wanted: Any) -> bool:
    """LangGraph's filter semantics (JSONB-like), false where a comparison makes no sense."""
    if isinstance(wanted, dict):
        if any(k.startswith("$") for k in wanted):
            return all(_operator(value, name, arg) for name, arg in wanted.items())
        return isinstance(value, dict) and all(_matches(value.get(k), v) for k, v in wanted.items())
    if isinstance(wanted, (list, tuple)):
        return (
            isinstance(value, list)
            and len(value) == len(wanted)
            and all(_matches(a, b) for a, b in zip(value, wanted, strict=True))
        )
    return bool(value == wanted)


def _check_filter(wanted: Any) -> None:
    """Refuse an unknown ``$operator`` before anything is read."""
    if isinstance(wanted, dict):
        for name, arg in wanted.items():
            if name.startswith("$") and name not in _COMPARE and name not in ("$eq", "$ne"):
                raise ValueError(f"unsupported filter operator {name!r}")
            _check_filter(arg)


def _operator(value: Any, name: str, arg: Any) -> bool:
    if name == "$eq":
        return bool(value == arg)
    if name == "$ne":
        return bool(value != arg)
    try:
        return bool(_COMPARE[name](float(value), float(arg)))
    except (TypeError, ValueError):
        return False


class BotwireCache(BaseCache[Any]):
    """LangGraph's node cache (``CachePolicy``) on botwire; TTLs in seconds.

    Values go through LangGraph's serializer (no pickle by default) and are
    stored as ``{"type": ..., "data": <base64>}`` JSON.
    """

    def __init__(
        self,
        memory: Memory | None = None,
        *,
        namespace: str = "langgraph-cache",
        url: str | None = None,
        serde: Any = None,
    ) -> None:
        super().__init__(serde=serde)
        self.memory = _open(memory, namespace, url)
        self._async = AsyncMemory(self.memory.namespace, url=self.memory.store)

    def _gets(self, keys: Sequence[FullKey]) -> list[BotwireOp]:
        return [Get(key_of(ns, key)) for ns, key in keys]

    def _values(self, keys: Sequence[FullKey], records: list[Any]) -> dict[FullKey, Any]:
        out: dict[FullKey, Any] = {}
        for (ns, key), record in zip(keys, records, strict=True):
            if record is not None:
                stored = decode_value(record.data)
                data = base64.b64decode(stored["data"])
                out[(tuple(ns), key)] = self.serde.loads_typed((stored["type"], data))
        return out

    def _puts(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> list[BotwireOp]:
        ops: list[BotwireOp] = []
        for (ns, key), (value, ttl) in pairs.items():
            kind, data = self.serde.dumps_typed(value)
            stored = {"type": kind, "data": base64.b64encode(data).decode()}
            ops.append(Put(key_of(ns, key), encode_value(stored), None if ttl is None else ttl))
        return ops

    @staticmethod
    def _clears(namespaces: Sequence[Namespace] | None) -> list[BotwireOp]:
        if namespaces is None:
            return [Clear()]
        return [Clear(prefix_of(ns) + KEY) for ns in namespaces]

    def _run(self, ops: list[BotwireOp]) -> list[Any]:
        return self.memory.batch(ops)

    async def _arun(self, ops: list[BotwireOp]) -> list[Any]:
        return await self._async.batch(ops)

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        return self._values(keys, self._run(self._gets(keys)))

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        return self._values(keys, await self._arun(self._gets(keys)))

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        self._run(self._puts(pairs))

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        await self._arun(self._puts(pairs))

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        self._run(self._clears(namespaces))

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        await self._arun(self._clears(namespaces))
