"""AG2 (the ``ag2`` package, 1.x): a ``KnowledgeStore`` and a stream history ``Storage``.

    pip install 'botwire[ag2]'

    from botwire.integrations.ag2 import BotwireKnowledgeStore, BotwireStorage
    agent = Agent("helper", config=..., knowledge=KnowledgeConfig(store=BotwireKnowledgeStore()))
    stream = MemoryStream(storage=BotwireStorage(), id=conversation_id)

* :class:`BotwireKnowledgeStore`: AG2's virtual file system over botwire. A path
  (normalised as AG2 does: ``/a/b.txt``) is a key and a file's text its value;
  directories are implied by key prefixes, so listing reads key ranges (paged) and
  deleting a directory one atomic batch. ``append`` is compare-and-set (retried
  on a race) and returns the byte offset it wrote at, for ``read_range``.
  ``on_change`` returns AG2's ``NoopChangeSubscription``: AG2 then polls. A
  file of any length (AG2 rewrites a stream's ``/log/<id>.jsonl`` whole each
  turn) is one value while short and pieces past that, written all or nothing
  (:mod:`botwire.integrations.files`).
* :class:`BotwireStorage`: a ``MemoryStream``'s event history, one event per key
  (a :class:`~botwire.integrations.history.History` of kind ``events:`` named by
  the stream id), so a stream has no size limit but the namespace's quota.
  Events from many processes apply whole and in order. An event is stored as
  what AG2's own serialiser (``serialize_value``) makes of it, with the values
  that serialiser passes through and JSON cannot hold (a tool's ``datetime``,
  ``Decimal``, ``set``, NaN, a 100-bit integer...) tagged so they come back
  equal; a value botwire cannot restore exactly is refused with
  ``ValueNotSerializable`` (AG2 records that as the tool's error): an event is
  never dropped or changed silently. A round-1 stream (one list under
  ``stream:<id>``) is read, and moved into entries by its next event.

Where a stream goes: ``namespace=`` (with ``url=``) is a plain name (every
stream in it), a ``{scope}`` template or a callable ``scope -> name``
(:mod:`botwire.integrations.tenants`), the scope being the stream id
(``str(stream.id)``); or ``memory=`` (a ``Memory``, which then wins).
"""

from __future__ import annotations

import asyncio
import base64
import math
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID
from weakref import WeakKeyDictionary
from zoneinfo import ZoneInfo

try:
    from ag2.annotations import Context
    from ag2.context import StreamId
    from ag2.events import BaseEvent
    from ag2.events._serialization import deserialize_value, serialize_value
    from ag2.history import Storage
    from ag2.knowledge.base import ChangeCallback, ChangeSubscription, NoopChangeSubscription
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError("botwire's AG2 adapter needs: pip install 'botwire[ag2]'") from exc

from .. import (
    AsyncMemory,
    InvalidRequest,
    Memory,
    QuotaExceeded,
    RequestTooLarge,
    ValueNotSerializable,
    ValueTooLarge,
)
from ..ops import Count, Get
from ..wire import MAX_BATCH, encode_value
from .files import Files
from .history import History
from .tenants import NamespaceSpec, Tenants


def normalize(path: str) -> str:
    """AG2's path rule: a leading ``/``, no ``//``, no trailing ``/`` (but ``/`` itself)."""
    if not path.startswith("/"):
        path = "/" + path
    while "//" in path:
        path = path.replace("//", "/")
    if path != "/" and path.endswith("/"):
        path = path.rstrip("/")
    return path


def _under(path: str) -> str:
    return normalize(path).rstrip("/") + "/"


class BotwireKnowledgeStore:
    """AG2's ``KnowledgeStore`` protocol on botwire (files through :class:`Files`)."""

    def __init__(self, namespace: str = "ag2-knowledge", *, url: str | None = None) -> None:
        self.memory = AsyncMemory(namespace, url=url)
        self._files = Files(self.memory)

    async def read(self, path: str) -> str | None:
        return await self._files.read(normalize(path))

    async def write(self, path: str, content: str) -> None:
        await self._files.write(normalize(path), content)

    async def list(self, path: str = "/") -> list[str]:
        prefix = _under(path)
        children = set()
        async for key in self.memory.iter_keys(prefix):
            rest = key[len(prefix) :]
            children.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
        return sorted(children)

    async def delete(self, path: str) -> None:
        await self._files.delete(normalize(path))  # one atomic batch

    async def exists(self, path: str) -> bool:
        record, below = await self.memory.batch([Get(normalize(path)), Count(_under(path))])
        return record is not None or below > 0

    async def append(self, path: str, content: str) -> int:
        return await self._files.append(normalize(path), content)

    async def read_range(self, path: str, start: int, end: int | None = None) -> str:
        text = await self.read(path)
        if text is None:
            return ""
        data = text.encode("utf-8")
        stop = len(data) if end is None else min(end, len(data))
        return "" if start >= stop else data[start:stop].decode("utf-8", errors="strict")

    async def on_change(self, path: str, callback: ChangeCallback) -> ChangeSubscription:
        return NoopChangeSubscription()

    async def close(self) -> None:
        await self.memory.close()


# One append carries at most this many events, and this many bytes of them unless one event
# is larger alone (History's own bound; half a default server's 2 MiB request).
_MOST, _BYTES = MAX_BATCH // 2 - 2, 1 << 20

Waiting = list[tuple[Any, int, "asyncio.Future[None]"]]
_REFUSED = (InvalidRequest, QuotaExceeded, RequestTooLarge, ValueTooLarge)


class BotwireStorage(Storage):
    """The event history of AG2 streams (``MemoryStream(storage=BotwireStorage())``).

    ``ttl`` (seconds): a stream expires that long after its last event.
    Events saved at once in one process (AG2 runs a turn's tool calls
    concurrently) go out together in one atomic append, in the order they came;
    ``save_event`` returns once its event is stored. ``set_history`` (AG2 calls
    it to compact or repair a stream) checks every event first, then replaces
    the stream in steps: a reader in between may see it empty or partly written.
    """

    def __init__(
        self,
        namespace: NamespaceSpec = "ag2-streams",
        *,
        url: str | None = None,
        memory: Memory | None = None,
        ttl: float | None = None,
    ) -> None:
        self.tenants = Tenants(memory, namespace, url)
        self.ttl = ttl
        self._scopes: set[str] = set()
        self._queues: WeakKeyDictionary[Any, dict[str, tuple[Waiting, asyncio.Lock]]]
        self._queues = WeakKeyDictionary()  # per event loop: its locks and futures are its own

    def _stream(self, stream_id: StreamId) -> tuple[History, AsyncMemory]:
        scope = str(stream_id)
        self._scopes.add(scope)
        history = History("events:", scope, legacy=f"stream:{scope}", ttl=self.ttl)
        return history, self.tenants.amemory(scope)

    async def save_event(self, event: BaseEvent, context: Context) -> None:
        entry = encode_event(event)
        size = len(encode_value(entry))  # refused here, before it joins other events
        history, memory = self._stream(context.stream.id)
        loop = asyncio.get_running_loop()
        queues = self._queues.setdefault(loop, {})
        waiting, lock = queues.setdefault(history.base, ([], asyncio.Lock()))
        done: asyncio.Future[None] = loop.create_future()
        waiting.append((entry, size, done))
        async with lock:
            if not done.done():  # no earlier save took it along: take every event waiting
                group = _group([(e, n) for e, n, _ in waiting])
                taken, waiting[:] = waiting[:group], waiting[group:]
                await _append(history, memory, taken)
        done.result()

    async def get_history(self, stream_id: StreamId) -> Iterable[BaseEvent]:
        history, memory = self._stream(stream_id)
        return [decode_event(entry) for entry in await history.aread(memory)]

    async def set_history(self, stream_id: StreamId, events: Iterable[BaseEvent]) -> None:
        entries = [encode_event(event) for event in events]
        sized = [(e, len(encode_value(e))) for e in entries]  # refused before anything changes
        history, memory = self._stream(stream_id)
        await history.aclear(memory)
        while sized:
            group = _group(sized)
            await history.aappend(memory, [e for e, _ in sized[:group]])
            sized = sized[group:]

    async def drop_history(self, stream_id: StreamId) -> None:
        history, memory = self._stream(stream_id)
        await history.aclear(memory)

    async def close(self) -> None:
        for scope in self._scopes:
            await self.tenants.amemory(scope).close()
            if self.tenants.fixed is None:  # a memory= given stays the caller's to close
                self.tenants.memory(scope).close()


async def _append(history: History, memory: AsyncMemory, taken: Waiting) -> None:
    """Append the ``taken`` events in one batch and settle their futures; if the batch is
    refused for its data (an event too large, a quota), each event alone, so each gets its
    own answer."""
    try:
        await history.aappend(memory, [entry for entry, _, _ in taken])
    except _REFUSED as exc:
        if len(taken) == 1:
            taken[0][2].set_exception(exc)
            return
        for one in taken:  # a refused batch applied nothing (appends are atomic)
            await _append(history, memory, [one])
        return
    except Exception as exc:  # maybe applied (an answer lost on the way): no second try
        for _, _, future in taken:
            future.set_exception(exc)
        return
    except BaseException:
        for _, _, future in taken:
            future.cancel()  # stored or not: the append was cut short
        raise
    for _, _, future in taken:
        future.set_result(None)


def _group(sized: list[tuple[Any, int]]) -> int:
    """How many of the first ``sized`` entries go in one append (at least one)."""
    total = 0
    for n, (_, size) in enumerate(sized[:_MOST]):
        total += size
        if total > _BYTES and n:
            return n
    return min(len(sized), _MOST)


# -- events as JSON, exactly --------------------------------------------------------------
#
# AG2's serialize_value tags events, enums, bytes, UUIDs, dataclasses and pydantic
# models, and passes every other value through as it is, JSON or not: a tool that
# returns a datetime leaves a datetime (AG2's Redis storage then fails in json.dumps;
# its event log writes str(value)). The walk below tags what JSON cannot hold under
# one reserved key, and restores it before AG2's deserialize_value sees the tree.

TAG = "__botwire__"

_Encoder = Callable[[Any, str], dict[str, Any]]


def encode_event(event: BaseEvent) -> Any:
    """``event`` as AG2 serialises it, in plain JSON; ``ValueNotSerializable`` if a value
    in it could not come back equal."""
    return _encode(serialize_value(event), type(event).__name__)


def decode_event(entry: Any) -> BaseEvent:
    """The event :func:`encode_event` stored (or a round-1 entry)."""
    return deserialize_value(_decode(entry))  # type: ignore[no-any-return]


def _encode(value: Any, where: str) -> Any:
    kind = type(value)
    if value is None or kind is bool:
        return value
    if kind is str:
        if value.isascii() or _utf8(value):
            return value
        return {TAG: "str", "utf8": _b64(value.encode("utf-8", "surrogatepass"))}
    if kind is int:
        return value if -(2**63) <= value < 2**64 else {TAG: "int", "value": str(value)}
    if kind is float:
        return value if math.isfinite(value) else {TAG: "float", "value": repr(value)}
    if kind is list:
        return [_encode(item, f"{where}[{i}]") for i, item in enumerate(value)]
    if kind is dict:
        if all(type(k) is str for k in value) and TAG not in value:
            return {k: _encode(v, f"{where}[{k!r}]") for k, v in value.items()}
        pairs = [[_encode(k, where), _encode(v, f"{where}[{k!r}]")] for k, v in value.items()]
        return {TAG: "dict", "items": pairs}
    for base, encoder in _ENCODERS.items():
        if isinstance(value, base):
            return encoder(value, where)
    raise ValueNotSerializable(
        f"AG2 event {where} holds a {kind.__name__}, which botwire cannot store exactly "
        "(return JSON, a datetime, a Decimal, a dataclass or a pydantic model from tools)"
    )


def _utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate: JSON (and orjson) cannot carry it
        return False
    return True


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def _clock(kind: str) -> _Encoder:
    def encode(value: datetime | time, where: str) -> dict[str, Any]:
        out = {TAG: kind, "value": value.isoformat()}
        if isinstance(value.tzinfo, ZoneInfo):  # the named zone, not only its offset that day
            out["zone"] = value.tzinfo.key
        return out

    return encode


def _items(kind: str) -> _Encoder:
    return lambda value, where: {TAG: kind, "items": [_encode(v, where) for v in value]}


# Checked in order: datetime before date (a datetime is a date).
_ENCODERS: dict[type, _Encoder] = {
    datetime: _clock("datetime"),
    date: lambda value, where: {TAG: "date", "value": value.isoformat()},
    time: _clock("time"),
    timedelta: lambda v, where: {TAG: "timedelta", "value": [v.days, v.seconds, v.microseconds]},
    Decimal: lambda value, where: {TAG: "decimal", "value": str(value)},
    UUID: lambda value, where: {TAG: "uuid", "value": str(value)},
    bytes: lambda value, where: {TAG: "bytes", "value": _b64(value)},
    tuple: _items("tuple"),
    frozenset: _items("frozenset"),
    set: _items("set"),
}


def _restore_datetime(tagged: dict[str, Any]) -> datetime:
    moment = datetime.fromisoformat(tagged["value"])
    return moment.astimezone(ZoneInfo(tagged["zone"])) if "zone" in tagged else moment


def _restore_time(tagged: dict[str, Any]) -> time:
    moment = time.fromisoformat(tagged["value"])
    return moment.replace(tzinfo=ZoneInfo(tagged["zone"])) if "zone" in tagged else moment


_DECODERS: dict[str, Callable[[dict[str, Any]], Any]] = {
    "str": lambda t: base64.b64decode(t["utf8"]).decode("utf-8", "surrogatepass"),
    "int": lambda t: int(t["value"]),
    "float": lambda t: float(t["value"]),
    "dict": lambda t: {_decode(k): _decode(v) for k, v in t["items"]},
    "datetime": _restore_datetime,
    "date": lambda t: date.fromisoformat(t["value"]),
    "time": _restore_time,
    "timedelta": lambda t: timedelta(*t["value"]),
    "decimal": lambda t: Decimal(t["value"]),
    "uuid": lambda t: UUID(t["value"]),
    "bytes": lambda t: base64.b64decode(t["value"]),
    "tuple": lambda t: tuple(_decode(v) for v in t["items"]),
    "frozenset": lambda t: frozenset(_decode(v) for v in t["items"]),
    "set": lambda t: {_decode(v) for v in t["items"]},
}


def _decode(value: Any) -> Any:
    if type(value) is list:
        return [_decode(item) for item in value]
    if type(value) is not dict:
        return value
    kind = value.get(TAG)
    if kind is None:
        return {k: _decode(v) for k, v in value.items()}
    decoder = _DECODERS.get(kind)
    if decoder is None:
        raise ValueNotSerializable(f"an AG2 event holds a {kind!r} this botwire cannot read")
    return decoder(value)
