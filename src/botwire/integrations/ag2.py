"""AG2 (the ``ag2`` package, 1.x): a ``KnowledgeStore`` and a stream history ``Storage``.

    pip install 'botwire[ag2]'

    from botwire.integrations.ag2 import BotwireKnowledgeStore, BotwireStorage
    agent = Agent("helper", config=..., knowledge=KnowledgeConfig(store=BotwireKnowledgeStore()))
    stream = MemoryStream(storage=BotwireStorage(), id=conversation_id)

* :class:`BotwireKnowledgeStore`: AG2's virtual file system over botwire. A path
  (normalised as AG2 does: ``/a/b.txt``) is a key and a file's text its value;
  directories are implied by key prefixes, so listing is one key-range read and
  deleting a directory one atomic batch. ``append`` is compare-and-set (retried
  on a race) and returns the byte offset it wrote at, for ``read_range``.
  ``on_change`` returns AG2's ``NoopChangeSubscription``: AG2 then polls.
* :class:`BotwireStorage`: a ``MemoryStream``'s event history
  (``stream:<id>``), each event appended atomically as JSON through AG2's own
  event serialiser (never pickle).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

try:
    from ag2.annotations import Context
    from ag2.context import StreamId
    from ag2.events import BaseEvent
    from ag2.events._serialization import deserialize_value, serialize_value
    from ag2.history import Storage
    from ag2.knowledge.base import ChangeCallback, ChangeSubscription, NoopChangeSubscription
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError("botwire's AG2 adapter needs: pip install 'botwire[ag2]'") from exc

from .. import AsyncMemory
from ..ops import Clear, Count, Delete, Get, ListKeys


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
    """AG2's ``KnowledgeStore`` protocol on botwire."""

    def __init__(self, namespace: str = "ag2-knowledge", *, url: str | None = None) -> None:
        self.memory = AsyncMemory(namespace, url=url)

    async def _batch(self, ops: list[Any]) -> list[Any]:
        return await self.memory.batch(ops)

    async def read(self, path: str) -> str | None:
        value = await self.memory.get(normalize(path))
        return None if value is None else str(value)

    async def write(self, path: str, content: str) -> None:
        await self.memory.set(normalize(path), content)

    async def list(self, path: str = "/") -> list[str]:
        prefix = _under(path)
        (keys,) = await self._batch([ListKeys(prefix)])
        children = set()
        for key in keys:
            rest = key[len(prefix) :]
            children.add(rest.split("/", 1)[0] + "/" if "/" in rest else rest)
        return sorted(children)

    async def delete(self, path: str) -> None:
        await self._batch([Delete(normalize(path)), Clear(_under(path))])  # one atomic batch

    async def exists(self, path: str) -> bool:
        record, below = await self._batch([Get(normalize(path)), Count(_under(path))])
        return record is not None or below > 0

    async def append(self, path: str, content: str) -> int:
        offset = 0

        def add(existing: str) -> str:
            nonlocal offset  # recomputed on every compare-and-set attempt
            offset = len(existing.encode("utf-8"))
            return existing + content

        await self.memory.update(normalize(path), add, "")
        return offset

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


class BotwireStorage(Storage):
    """The event history of AG2 streams (``MemoryStream(storage=BotwireStorage())``)."""

    def __init__(self, namespace: str = "ag2-streams", *, url: str | None = None) -> None:
        self.memory = AsyncMemory(namespace, url=url)

    @staticmethod
    def _key(stream_id: StreamId) -> str:
        return f"stream:{stream_id}"

    async def save_event(self, event: BaseEvent, context: Context) -> None:
        await self.memory.append(self._key(context.stream.id), serialize_value(event))

    async def get_history(self, stream_id: StreamId) -> Iterable[BaseEvent]:
        return [deserialize_value(e) for e in await self.memory.get(self._key(stream_id), [])]

    async def set_history(self, stream_id: StreamId, events: Iterable[BaseEvent]) -> None:
        await self.memory.set(self._key(stream_id), [serialize_value(e) for e in events])

    async def drop_history(self, stream_id: StreamId) -> None:
        await self.memory.delete(self._key(stream_id))

    async def close(self) -> None:
        await self.memory.close()
