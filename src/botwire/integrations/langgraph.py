"""LangGraph: a long-term memory store (``BaseStore``), a node cache (``BaseCache``) and a
checkpointer (``BotwireSaver``, in :mod:`botwire.integrations.checkpointer`).

    pip install 'botwire[langgraph]'

    from botwire.integrations.langgraph import BotwireCache, BotwireSaver, BotwireStore
    graph = builder.compile(
        checkpointer=BotwireSaver(), store=BotwireStore(), cache=BotwireCache()
    )

Tenants: ``namespace=`` is a botwire namespace (``"langgraph"`` by default: every
item in one), a template with ``{scope}`` or a callable, the scope being the
head of the LangGraph namespace (``("alice", "memories")`` -> ``alice``): with
``namespace="lg-{scope}"`` each head is a tenant of its own, which a token for
``lg-alice*`` isolates (a head must then be a valid namespace part:
``A-Z a-z 0-9 . _ - : @``, else ``InvalidName``; map other heads with a callable).

Keys: a LangGraph namespace and key become one botwire key, each label
percent-encoded and followed by ``/``, then ``#`` and the encoded key
(``("users", "u-1")``, ``"prefs"`` -> ``users/u-1/#prefs``), so a namespace
prefix is a key prefix: a search or a listing is a ``Scan`` of a key range.
Where that key would be over botwire's 512 bytes, each label (and the key) over
64 characters once encoded is shortened to its first characters, ``!`` and a
128-bit hash of the whole (``!`` never appears in an encoded label), and the
item's value is stored with its real namespace and key (``{"namespace", "key",
"value"}``): every store takes a key of any length alike, and a key that fits
keeps the form botwire 0.2 gave it. A search scans both forms of its prefix
where they differ. A shortened label or key takes at most 65 bytes: only a
namespace of seven or more long labels can still be over the limit, refused
with ``InvalidName`` by every store. Every op is
checked as the server checks it (``InvalidName``, ``InvalidRequest``,
``ValueNotSerializable``) before any I/O, on every store.

A ``batch`` is one botwire batch per tenant namespace it touches: one round trip
and atomic within a tenant (the usual case), not across tenants. A search or a
listing reads its key range in pages (the first small, the next ones growing
while answers stay under the server's ``max_answer_bytes``, halved when one is
refused), keeping only the ``offset + limit`` first matches: a namespace of any
size is searched in bounded memory, as LangGraph's own stores do. With a
namespace per head, a search or a namespace listing that does not name a head
(an empty ``namespace_prefix``, a ``prefix`` condition that starts with ``*``,
only ``suffix`` conditions) covers the heads this object has used since it was
made, never other tenants: name the head to reach one.

Search: ``filter`` supports equality on (nested) fields and the operators
``$eq``, ``$ne``, ``$gt``, ``$gte``, ``$lt``, ``$lte``, as LangGraph's own
stores do; a comparison with a missing or non-numeric field is false rather
than an error. Results are sorted by namespace, then key. There is no vector
index: ``query`` is ignored (as by ``InMemoryStore`` without an index), and
``index`` on puts too.

TTL: ``supports_ttl = True``; LangGraph's TTLs are minutes, stored as seconds
(at most botwire's ``MAX_TTL``, else ``InvalidRequest``). ``refresh_ttl`` (or
``ttl_config["refresh_on_read"]``, default true) restarts the clock of the
items a get or search returns that have a TTL, in a second batch; reading items
without a TTL never writes (a read-only token reads them; a cached store serves
them locally). Expired items are never returned.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
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

from .. import AnswerTooLarge, Memory
from ..ops import Clear, Delete, Get, ListKeys, Put, Record, Scan
from ..ops import Op as BotwireOp
from ..wire import check_namespace, decode_value, encode_value, op_from_json, op_to_json
from .checkpointer import BotwireSaver
from .tenants import NamespaceSpec, Tenants, per_scope

__all__ = ["BotwireCache", "BotwireSaver", "BotwireStore"]

SEP, KEY, SHORT = "/", "#", "!"
MAX_KEY = 512  # botwire's key limit, in bytes (an encoded key is ASCII: one byte a character)
LONG = 64  # in a key over MAX_KEY, an encoded label longer than this is shortened
DIGEST = 32  # hex digits of the hash that ends a shortened label
FIRST_PAGE = 16  # items a search's first scan returns (16 MiB at most with 1 MiB values)
MOST_PAGE = 1024  # items a later page grows to, while answers fit
KEYS_PAGE = 2000  # keys a listing's page returns (1 MiB at most)


def _label(text: str, short: bool = False) -> str:
    """``text`` percent-encoded (never ``/``, ``#`` or ``!``: the separators stay
    unambiguous); with ``short``, cut to :data:`LONG` characters ending in a hash."""
    encoded = quote(text, safe="")
    if not short or len(encoded) <= LONG:
        return encoded
    head = encoded[: LONG - DIGEST - 1]
    cut = head.find("%", len(head) - 2)  # never half of a %XX
    if cut != -1:
        head = head[:cut]
    return head + SHORT + hashlib.sha256(text.encode()).hexdigest()[:DIGEST]


def _prefix(namespace: Sequence[str], short: bool = False) -> str:
    return "".join(_label(label, short) + SEP for label in namespace)


def prefix_of(namespace: Sequence[str]) -> str:
    """The key prefix of the items under ``namespace`` whose keys fit as they are."""
    return _prefix(namespace)


def prefixes_of(namespace: Sequence[str]) -> list[str]:
    """Every key prefix an item under ``namespace`` (or a namespace prefix) can have: as
    written, and shortened, where they differ and can begin a key."""
    return [
        p for p in dict.fromkeys((_prefix(namespace), _prefix(namespace, True))) if len(p) < MAX_KEY
    ]


def key_of(namespace: Sequence[str], key: str) -> str:
    """The botwire key of item ``key`` in ``namespace``: as written if that fits
    :data:`MAX_KEY` (the round-1 form), else with its long labels shortened."""
    written = _prefix(namespace) + KEY + _label(key)
    if len(written) <= MAX_KEY:
        return written
    return _prefix(namespace, True) + KEY + _label(key, True)


def split_key(stored: str) -> tuple[tuple[str, ...], str]:
    """``(namespace, key)`` back from a botwire key (a shortened label stays shortened:
    the real ones are in the item's value)."""
    if stored.startswith(KEY):  # the root namespace ()
        return (), unquote(stored[len(KEY) :])
    path, _, key = stored.rpartition(SEP + KEY)
    return tuple(unquote(label) for label in path.split(SEP)), unquote(key)


def shortened(stored: str) -> bool:
    """Whether a label of ``stored`` was shortened (its value then names the real ones)."""
    return SHORT in stored


def _stored_value(namespace: Sequence[str], key: str, value: Mapping[str, Any]) -> bytes:
    stored = key_of(namespace, key)
    if shortened(stored):
        return encode_value({"namespace": list(namespace), "key": key, "value": dict(value)})
    return encode_value(dict(value))


def _unpack(stored: str, record: Record) -> tuple[tuple[str, ...], str, Any]:
    """The real ``(namespace, key, value)`` of a stored item."""
    value = decode_value(record.data)
    if shortened(stored):
        return tuple(value["namespace"]), value["key"], value["value"]
    namespace, key = split_key(stored)
    return namespace, key, value


def _time(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, tz=timezone.utc)


def _item(cls: type[Any], namespace: tuple[str, ...], key: str, value: Any, record: Record) -> Any:
    return cls(
        namespace=namespace,
        key=key,
        value=value,
        created_at=_time(record.created_at),
        updated_at=_time(record.updated_at),
    )


# -- tenants: which botwire namespace holds a LangGraph namespace ---------------------------

Step = dict[str, list[BotwireOp]]  # botwire ops per botwire namespace
Results = dict[str, list[Any]]
Plan = Generator[Step, Results, Any]


class _Tenancy:
    """The botwire namespaces of one adapter object, and the drivers of its plans."""

    def __init__(self, memory: Memory | None, namespace: NamespaceSpec, url: str | None) -> None:
        self.tenants = Tenants(memory, namespace, url)
        self.split = memory is None and per_scope(namespace)
        self.seen: dict[str, str] = {}  # botwire namespace -> a head that maps to it

    def of(self, namespace: Sequence[str]) -> str:
        """The botwire namespace of a LangGraph namespace (``InvalidName`` if none is valid)."""
        head = namespace[0] if self.split and namespace else ""
        name = check_namespace(self.tenants.name(head))
        self.seen.setdefault(name, head)
        return name

    def heads(self, prefix: Sequence[str]) -> list[str]:
        """The botwire namespaces a search under ``prefix`` covers (see the module docstring)."""
        if prefix or not self.split:
            return [self.of(prefix)]
        return sorted(self.seen)

    def run(self, plan: Plan) -> Any:
        """Drive ``plan``; a refused answer is raised inside it (a later page may shrink)."""
        try:
            step = next(plan)
            while True:
                memories = self._check({n: self.tenants.memory(self.seen[n]) for n in step}, step)
                try:
                    results = {n: memories[n].batch(ops) for n, ops in step.items()}
                except AnswerTooLarge as exc:
                    step = plan.throw(exc)
                    continue
                step = plan.send(results)
        except StopIteration as done:
            return done.value

    async def arun(self, plan: Plan) -> Any:
        """Async :meth:`run`."""
        try:
            step = next(plan)
            while True:
                memories = self._check({n: self.tenants.amemory(self.seen[n]) for n in step}, step)
                try:
                    results = {n: await memories[n].batch(ops) for n, ops in step.items()}
                except AnswerTooLarge as exc:
                    step = plan.throw(exc)
                    continue
                step = plan.send(results)
        except StopIteration as done:
            return done.value

    @staticmethod
    def _check(memories: dict[str, Any], step: Step) -> dict[str, Any]:
        """Every op of a step checked before its first batch (each batch checks its own)."""
        if len(step) > 1:
            for ops in step.values():
                for op in ops:
                    op_from_json(op_to_json(op))
        return memories


# -- the store ---------------------------------------------------------------------------------


class BotwireStore(BaseStore):
    """LangGraph's ``BaseStore`` on botwire (embedded, a server, or any store URL)."""

    supports_ttl: bool = True

    def __init__(
        self,
        memory: Memory | None = None,
        *,
        namespace: NamespaceSpec = "langgraph",
        url: str | None = None,
        ttl: TTLConfig | None = None,
    ) -> None:
        self._tenancy = _Tenancy(memory, namespace, url)
        self.ttl_config = ttl

    def batch(self, ops: Iterable[Op]) -> list[Result]:
        return self._tenancy.run(_plan(list(ops), self._tenancy))  # type: ignore[no-any-return]

    async def abatch(self, ops: Iterable[Op]) -> list[Result]:
        return await self._tenancy.arun(_plan(list(ops), self._tenancy))  # type: ignore[no-any-return]


def _plan(ops: list[Op], tenancy: _Tenancy) -> Plan:
    """One LangGraph batch: its reads and writes, then the refreshes and the real names
    of shortened namespaces it needs. No I/O."""
    first: Step = {}
    spots: list[list[tuple[str, int]]] = []  # per LangGraph op: (botwire namespace, index)
    for op in ops:
        sent: list[tuple[str, BotwireOp]]
        if isinstance(op, GetOp):
            sent = [(tenancy.of(op.namespace), Get(key_of(op.namespace, op.key)))]
        elif isinstance(op, PutOp):
            key = key_of(op.namespace, op.key)
            write: BotwireOp = (
                Delete(key)
                if op.value is None
                else Put(key, _stored_value(op.namespace, op.key, op.value), _seconds(op.ttl))
            )
            sent = [(tenancy.of(op.namespace), write)]
        elif isinstance(op, SearchOp):
            _check_filter(op.filter or {})
            prefix = op.namespace_prefix
            sent = [
                (n, Scan(p, limit=FIRST_PAGE))
                for n in tenancy.heads(prefix)
                for p in prefixes_of(prefix)
            ]
        elif isinstance(op, ListNamespacesOp):
            fixed = _fixed_prefix(op)
            sent = [
                (n, ListKeys(p, limit=KEYS_PAGE))
                for n in tenancy.heads(fixed)
                for p in prefixes_of(fixed)
            ]
        else:
            raise TypeError(f"unknown LangGraph operation {op!r}")
        places = []
        for name, botwire_op in sent:
            group = first.setdefault(name, [])
            places.append((name, len(group)))
            group.append(botwire_op)
        spots.append(places)
    results = (yield first) if first else {}
    found = [[(name, results[name][i]) for name, i in places] for places in spots]
    cursors: list[Cursor] = []
    for op, places in zip(ops, spots, strict=True):
        for name, i in places:
            sent_op = first[name][i]
            if isinstance(sent_op, (Scan, ListKeys)):
                keep = _best(op) if isinstance(op, SearchOp) else None
                cursors.append((name, sent_op, results[name][i], keep))
    yield from _rest(cursors)

    answers: list[Any] = []
    second: Step = {}  # refreshes, and a key of each shortened namespace listed
    lookups: list[tuple[str, int, str]] = []  # (botwire namespace, index, key) of the latter
    for op, parts in zip(ops, found, strict=True):
        if isinstance(op, GetOp):
            ((name, record),) = parts
            if record is None:
                answers.append(None)
                continue
            _, _, value = _unpack(key_of(op.namespace, op.key), record)
            answers.append(_item(Item, op.namespace, op.key, value, record))
            if op.refresh_ttl and record.expires_at is not None:
                second.setdefault(name, []).append(Get(key_of(op.namespace, op.key), refresh=True))
        elif isinstance(op, PutOp):
            answers.append(None)
        elif isinstance(op, SearchOp):
            hits = _search(op, parts)
            answers.append([item for item, _, _ in hits])
            for item, name, record in hits:
                if op.refresh_ttl and record.expires_at is not None:
                    refresh = Get(key_of(item.namespace, item.key), refresh=True)
                    second.setdefault(name, []).append(refresh)
        else:
            answers.append(parts)  # keys, until the shortened namespaces are known
            for name, keys in parts:
                for stored in _short_namespaces(keys).values():
                    group = second.setdefault(name, [])
                    lookups.append((name, len(group), stored))
                    group.append(Get(stored))
    real: dict[str, tuple[str, ...]] = {}  # a shortened stored prefix -> its namespace
    if second:
        results = yield second
        for name, i, stored in lookups:
            if (record := results[name][i]) is not None:
                real[_stored_prefix(stored)] = _unpack(stored, record)[0]
    for i, op in enumerate(ops):
        if isinstance(op, ListNamespacesOp):
            answers[i] = _namespaces(op, answers[i], real)
    return answers


Rows = list[Any]
Cursor = tuple[str, Any, Rows, Callable[[Rows], Rows] | None]  # name, Scan or ListKeys, rows


def _rest(cursors: list[Cursor]) -> Plan:
    """Read the pages after the first of each full scan or listing into its list of rows,
    every cursor's next page in one step; a scan's pages grow while answers fit, and
    ``keep`` (a search's) drops the rows it can no longer return as they come."""
    open_ = [
        (n, op._replace(after=_last(r)), r, k) for n, op, r, k in cursors if len(r) == op.limit
    ]
    while open_:
        step: Step = {}
        for name, op, _, _ in open_:
            step.setdefault(name, []).append(op)
        try:
            results = yield step
        except AnswerTooLarge:
            if all(op.limit == 1 for _, op, _, _ in open_):
                raise
            open_ = [(n, op._replace(limit=max(1, op.limit // 2)), r, k) for n, op, r, k in open_]
            continue
        spots = dict.fromkeys(step, 0)
        grown: list[Cursor] = []
        for name, op, rows, keep in open_:
            page = results[name][spots[name]]
            spots[name] += 1
            rows += page
            if keep is not None:
                rows[:] = keep(rows)
            if len(page) == op.limit:
                more = min(MOST_PAGE, 2 * (op.limit or 1)) if isinstance(op, Scan) else op.limit
                grown.append((name, op._replace(limit=more, after=_last(page)), rows, keep))
        open_ = grown


def _last(rows: Rows) -> str:
    """The key a page ended at (a listing's rows are keys, a scan's ``(key, record)``)."""
    return rows[-1] if isinstance(rows[-1], str) else str(rows[-1][0])


def _best(op: SearchOp) -> Callable[[Rows], Rows]:
    """A search's rows cut to those it may still return: its first ``offset + limit``
    matches in (namespace, key) order, once there are twice as many."""
    most = op.offset + op.limit

    def keep(rows: Rows) -> Rows:
        if len(rows) <= 2 * most:
            return rows
        hits = _search(op._replace(offset=0, limit=most), [("", rows)])
        wanted = {(item.namespace, item.key) for item, _, _ in hits}
        return [row for row in rows if _unpack(row[0], row[1])[:2] in wanted]

    return keep


def _seconds(minutes: float | None) -> float | None:
    """Seconds (BaseStore.put has already applied the configured default)."""
    return None if minutes is None else float(minutes) * 60


def _search(
    op: SearchOp, parts: list[tuple[str, list[tuple[str, Record]]]]
) -> list[tuple[SearchItem, str, Record]]:
    found = []
    for name, scanned in parts:
        for stored, record in scanned:
            namespace, key, value = _unpack(stored, record)
            if not op.filter or all(
                _matches(value.get(field), wanted) for field, wanted in op.filter.items()
            ):
                found.append((_item(SearchItem, namespace, key, value, record), name, record))
    found.sort(key=lambda hit: (hit[0].namespace, hit[0].key))
    return found[op.offset : op.offset + op.limit]


def _fixed_prefix(op: ListNamespacesOp) -> tuple[str, ...]:
    """The labels every listed namespace starts with: a ``prefix`` condition's, up to a ``*``."""
    for condition in op.match_conditions or ():
        if condition.match_type == "prefix":
            labels = list(condition.path)
            return tuple(labels[: labels.index("*")] if "*" in labels else labels)
    return ()


def _stored_prefix(stored: str) -> str:
    """The namespace part of a botwire key (``users/u-1/`` of ``users/u-1/#prefs``)."""
    return stored[: stored.rfind(SEP + KEY) + 1]


def _short_namespaces(keys: list[str]) -> dict[str, str]:
    """One key per shortened namespace: its value names the namespace."""
    out: dict[str, str] = {}
    for stored in keys:
        prefix = _stored_prefix(stored)
        if shortened(prefix):
            out.setdefault(prefix, stored)
    return out


def _namespaces(
    op: ListNamespacesOp,
    parts: list[tuple[str, list[str]]],
    real: dict[str, tuple[str, ...]],
) -> list[tuple[str, ...]]:
    spaces = set()
    for _, keys in parts:
        for stored in keys:
            prefix = _stored_prefix(stored)
            if not shortened(prefix):
                spaces.add(split_key(stored)[0])
            elif prefix in real:  # (else every item of it went away meanwhile)
                spaces.add(real[prefix])
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


_COMPARE: dict[str, Callable[[float, float], bool]] = {
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


# -- the node cache ----------------------------------------------------------------------------


class BotwireCache(BaseCache[Any]):
    """LangGraph's node cache (``CachePolicy``) on botwire; TTLs in seconds.

    Values go through LangGraph's serializer (no pickle by default) and are
    stored as ``{"type": ..., "data": <base64>}`` JSON. ``namespace=`` as for
    :class:`BotwireStore` (the scope is the head of the cache namespace);
    ``clear()`` without namespaces clears every tenant this object has used.
    """

    def __init__(
        self,
        memory: Memory | None = None,
        *,
        namespace: NamespaceSpec = "langgraph-cache",
        url: str | None = None,
        serde: Any = None,
    ) -> None:
        super().__init__(serde=serde)
        self._tenancy = _Tenancy(memory, namespace, url)

    def _get(self, keys: Sequence[FullKey]) -> Plan:
        step: Step = {}
        for ns, key in keys:
            step.setdefault(self._tenancy.of(ns), []).append(Get(key_of(ns, key)))
        results = (yield step) if step else {}
        out: dict[FullKey, Any] = {}
        at = dict.fromkeys(step, 0)
        for ns, key in keys:
            name = self._tenancy.of(ns)
            record = results[name][at[name]]
            at[name] += 1
            if record is not None:
                stored = decode_value(record.data)
                data = base64.b64decode(stored["data"])
                out[(tuple(ns), key)] = self.serde.loads_typed((stored["type"], data))
        return out

    def _set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> Plan:
        step: Step = {}
        for (ns, key), (value, ttl) in pairs.items():
            kind, data = self.serde.dumps_typed(value)
            stored = encode_value({"type": kind, "data": base64.b64encode(data).decode()})
            put = Put(key_of(ns, key), stored, None if ttl is None else ttl)
            step.setdefault(self._tenancy.of(ns), []).append(put)
        if step:
            yield step

    def _clear(self, namespaces: Sequence[Namespace] | None) -> Plan:
        step: Step = {}
        if namespaces is None:
            step = {name: [Clear()] for name in self._tenancy.heads(())}
        for ns in namespaces or ():
            clears = [Clear(prefix + KEY) for prefix in prefixes_of(ns)]
            step.setdefault(self._tenancy.of(ns), []).extend(clears)
        if step:
            yield step

    def get(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        return self._tenancy.run(self._get(keys))  # type: ignore[no-any-return]

    async def aget(self, keys: Sequence[FullKey]) -> dict[FullKey, Any]:
        return await self._tenancy.arun(self._get(keys))  # type: ignore[no-any-return]

    def set(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        self._tenancy.run(self._set(pairs))

    async def aset(self, pairs: Mapping[FullKey, tuple[Any, int | None]]) -> None:
        await self._tenancy.arun(self._set(pairs))

    def clear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        self._tenancy.run(self._clear(namespaces))

    async def aclear(self, namespaces: Sequence[Namespace] | None = None) -> None:
        await self._tenancy.arun(self._clear(namespaces))
