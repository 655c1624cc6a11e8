"""AutoGen (autogen-core / autogen-agentchat 0.7): an agent ``Memory`` and a ``CacheStore``.

    pip install 'botwire[autogen]'

    from botwire.integrations.autogen import BotwireMemory
    agent = AssistantAgent("assistant", model_client, memory=[BotwireMemory(name="user-42")])

* :class:`BotwireMemory` keeps a named list of ``MemoryContent`` in botwire
  (``memory:<name>``), appended atomically, so several processes can add to one
  memory. ``update_context`` adds the memories (the newest ``k``, if set) to the
  model context as one system message, like AutoGen's ``ListMemory``; ``query``
  returns the entries whose text contains every word of the query (all of them
  for an empty query). Text, JSON and Markdown are stored as they are; bytes and
  images as base64. It is a serialisable component (``dump_component`` /
  ``load_component``) by its name, namespace and URL.
* :class:`BotwireCacheStore` is a ``CacheStore`` for ``ChatCompletionCache``:
  results are stored as JSON (pydantic ``model_dump``), never pickled.
"""

from __future__ import annotations

import base64
from typing import Any, Generic, TypeVar

try:
    from autogen_core import CacheStore, CancellationToken, Component, Image
    from autogen_core.memory import (
        Memory,
        MemoryContent,
        MemoryMimeType,
        MemoryQueryResult,
        UpdateContextResult,
    )
    from autogen_core.model_context import ChatCompletionContext
    from autogen_core.models import SystemMessage
    from pydantic import BaseModel
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError("botwire's AutoGen adapter needs: pip install 'botwire[autogen]'") from exc

from .. import AsyncMemory
from .. import Memory as BotwireStoreMemory

T = TypeVar("T")


class BotwireMemoryConfig(BaseModel):
    name: str = "default"
    namespace: str = "autogen"
    url: str | None = None
    k: int | None = None  # update_context adds the newest k entries (None: all)


class BotwireMemory(Memory, Component[BotwireMemoryConfig]):
    """AutoGen agent memory kept in botwire (see the module docstring)."""

    component_type = "memory"
    component_provider_override = "botwire.integrations.autogen.BotwireMemory"
    component_config_schema = BotwireMemoryConfig

    def __init__(
        self,
        name: str = "default",
        *,
        namespace: str = "autogen",
        url: str | None = None,
        k: int | None = None,
    ) -> None:
        self._config = BotwireMemoryConfig(name=name, namespace=namespace, url=url, k=k)
        self._memory = AsyncMemory(namespace, url=url)
        self._key = f"memory:{name}"

    @property
    def name(self) -> str:
        return self._config.name

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        await self._memory.append(self._key, _to_json(content))

    async def _entries(self) -> list[MemoryContent]:
        return [_from_json(entry) for entry in await self._memory.get(self._key, [])]

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        text = query if isinstance(query, str) else str(query.content)
        words = text.lower().split()
        entries = await self._entries()
        found = [e for e in entries if all(w in str(e.content).lower() for w in words)]
        return MemoryQueryResult(results=found)

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        entries = await self._entries()
        if self._config.k is not None:
            entries = entries[-self._config.k :] if self._config.k else []
        if entries:
            lines = "\n".join(f"{i}. {e.content!s}" for i, e in enumerate(entries, 1))
            text = f"\nRelevant memory content (in chronological order):\n{lines}\n"
            await model_context.add_message(SystemMessage(content=text))
        return UpdateContextResult(memories=MemoryQueryResult(results=entries))

    async def clear(self) -> None:
        await self._memory.delete(self._key)

    async def close(self) -> None:
        await self._memory.close()

    def _to_config(self) -> BotwireMemoryConfig:
        return self._config

    @classmethod
    def _from_config(cls, config: BotwireMemoryConfig) -> BotwireMemory:
        return cls(config.name, namespace=config.namespace, url=config.url, k=config.k)


def _to_json(content: MemoryContent) -> dict[str, Any]:
    mime = (
        content.mime_type.value
        if isinstance(content.mime_type, MemoryMimeType)
        else content.mime_type
    )
    value: Any = content.content
    if isinstance(value, Image):
        value = {"image_base64": value.to_base64()}
    elif isinstance(value, bytes):
        value = {"bytes_base64": base64.b64encode(value).decode()}
    return {"content": value, "mime_type": mime, "metadata": content.metadata}


def _from_json(entry: dict[str, Any]) -> MemoryContent:
    value = entry["content"]
    if isinstance(value, dict) and set(value) == {"image_base64"}:
        value = Image.from_base64(value["image_base64"])
    elif isinstance(value, dict) and set(value) == {"bytes_base64"}:
        value = base64.b64decode(value["bytes_base64"])
    return MemoryContent(content=value, mime_type=entry["mime_type"], metadata=entry["metadata"])


class BotwireCacheStoreConfig(BaseModel):
    namespace: str = "autogen-cache"
    url: str | None = None
    ttl: float | None = None


class BotwireCacheStore(CacheStore[T], Component[BotwireCacheStoreConfig], Generic[T]):
    """A ``CacheStore`` for ``ChatCompletionCache`` (values as JSON; ``ttl`` in seconds)."""

    component_type = "cache_store"
    component_provider_override = "botwire.integrations.autogen.BotwireCacheStore"
    component_config_schema = BotwireCacheStoreConfig

    def __init__(
        self, namespace: str = "autogen-cache", *, url: str | None = None, ttl: float | None = None
    ) -> None:
        self._config = BotwireCacheStoreConfig(namespace=namespace, url=url, ttl=ttl)
        self._memory = BotwireStoreMemory(namespace, url=url, default_ttl=ttl)

    def get(self, key: str, default: T | None = None) -> T | None:
        return self._memory.get(_cache_key(key), default)  # type: ignore[no-any-return]

    def set(self, key: str, value: T) -> None:
        self._memory.set(_cache_key(key), _dump(value))

    def _to_config(self) -> BotwireCacheStoreConfig:
        return self._config

    @classmethod
    def _from_config(cls, config: BotwireCacheStoreConfig) -> BotwireCacheStore[T]:
        return cls(config.namespace, url=config.url, ttl=config.ttl)


def _cache_key(key: str) -> str:
    return f"cache:{key}"  # AutoGen's keys are hashes; the prefix keeps the namespace tidy


def _dump(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, list):
        return [_dump(item) for item in value]
    return value
