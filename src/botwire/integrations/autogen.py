"""AutoGen (autogen-core / autogen-agentchat 0.7): an agent ``Memory`` and a ``CacheStore``.

    pip install 'botwire[autogen]'

    from botwire.integrations.autogen import BotwireMemory
    agent = AssistantAgent("assistant", model_client, memory=[BotwireMemory(name="user-42")])

* :class:`BotwireMemory` keeps a named memory's ``MemoryContent`` entries one
  per key (a :class:`~botwire.integrations.history.History` of kind ``mem:``),
  so it has no size limit but the namespace's quota; adds from many processes
  apply whole and in order (one object's adds one at a time). ``query`` ranks
  the entries by relevance to the query: BM25 over their words (case and a
  plural ``s`` ignored; scaled to 0..1), or cosine similarity with ``embed`` (a
  function ``texts -> vectors``; Chroma's scale, ``(1 + cos) / 2``). Each result
  carries its ``score`` in its metadata, as autogen-ext's ChromaDB memory does;
  ``score_threshold`` drops the weaker ones and ``k`` keeps the best ``k`` (both
  also per call: ``query(q, k=3)``). Without them nothing is dropped: like
  AutoGen's ``ListMemory``, every entry comes back (ranked). An empty query
  returns the entries oldest first (the newest ``k`` with ``k``).
  ``update_context`` adds, like ``ListMemory``, every entry in chronological
  order as one system message; with ``k`` or ``score_threshold`` set it adds,
  like the ChromaDB memory, the entries that ``query`` finds for the context's
  last message. Text, JSON and Markdown are stored as they are; bytes and images
  as base64 (they have no text to rank: score 0). A round-1 memory (one list
  under ``memory:<name>``) is read, and moved into entries by its next ``add``.
  It is a serialisable component (``dump_component`` / ``load_component``) by
  its name, namespace, URL, ``k`` and ``score_threshold`` (not with a callable
  namespace or an ``embed`` function: dumping raises ``ValueError``).
* :class:`BotwireCacheStore` is a ``CacheStore`` for ``ChatCompletionCache``:
  results are stored as JSON (pydantic ``model_dump``), never pickled.

Where a memory goes: ``namespace=`` (with ``url=``) is a plain name (every
memory in it), a ``{scope}`` template or a callable ``scope -> name``
(:mod:`botwire.integrations.tenants`), the scope being the memory's name.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import math
import re
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Generic, TypeVar
from weakref import WeakKeyDictionary

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

from .. import Memory as BotwireStoreMemory
from .history import History
from .tenants import NamespaceSpec, Tenants

T = TypeVar("T")

Vectors = Sequence[Sequence[float]]
Embed = Callable[[list[str]], Vectors | Awaitable[Vectors]]
"""An embedding function: texts -> one vector each (sync or async)."""


class BotwireMemoryConfig(BaseModel):
    name: str = "default"
    namespace: str = "autogen"
    url: str | None = None
    k: int | None = None  # at most k results (None: all)
    score_threshold: float | None = None  # drop results scoring lower (None: none dropped)


class BotwireMemory(Memory, Component[BotwireMemoryConfig]):
    """AutoGen agent memory kept in botwire (see the module docstring)."""

    component_type = "memory"
    component_provider_override = "botwire.integrations.autogen.BotwireMemory"
    component_config_schema = BotwireMemoryConfig

    def __init__(
        self,
        name: str = "default",
        *,
        namespace: NamespaceSpec = "autogen",
        url: str | None = None,
        k: int | None = None,
        score_threshold: float | None = None,
        embed: Embed | None = None,
    ) -> None:
        self._name, self._namespace, self._url = name, namespace, url
        self.k, self.score_threshold, self.embed = k, score_threshold, embed
        self._tenants = Tenants(None, namespace, url)
        self._memory = self._tenants.amemory(name)
        self._history = History("mem:", name, legacy=f"memory:{name}")
        self._turns: WeakKeyDictionary[Any, asyncio.Lock] = WeakKeyDictionary()  # per loop

    @property
    def name(self) -> str:
        return self._name

    async def add(
        self, content: MemoryContent, cancellation_token: CancellationToken | None = None
    ) -> None:
        entry = _to_json(content)
        if self.embed is not None and _text(entry["content"]):
            (entry["embedding"],) = await self._vectors([_text(entry["content"])])
        # One add at a time from this object: concurrent ones would only race for the head.
        async with self._turns.setdefault(asyncio.get_running_loop(), asyncio.Lock()):
            await self._history.aappend(self._memory, [entry])

    async def _entries(self) -> list[dict[str, Any]]:
        return list(await self._history.aread(self._memory))

    async def query(
        self,
        query: str | MemoryContent = "",
        cancellation_token: CancellationToken | None = None,
        **kwargs: Any,
    ) -> MemoryQueryResult:
        """The entries by relevance to ``query``; for an empty one, every entry oldest first
        (the newest ``k`` with ``k``).

        ``k`` and ``score_threshold`` in ``kwargs`` override the memory's own.
        """
        entries = await self._entries()
        k = kwargs.get("k", self.k)
        threshold = kwargs.get("score_threshold", self.score_threshold)
        text = query if isinstance(query, str) else _text(_to_json(query)["content"])
        if not text.strip():
            newest = entries if k is None else entries[max(0, len(entries) - k) :]
            return MemoryQueryResult(results=[_from_json(e) for e in newest])
        scores = await self._scores(text, entries)
        order = sorted(range(len(entries)), key=lambda i: (-scores[i], -i))  # ties: newest
        found = [i for i in order if threshold is None or scores[i] >= threshold]
        results = [_scored(_from_json(entries[i]), scores[i]) for i in found]
        return MemoryQueryResult(results=results if k is None else results[:k])

    async def _scores(self, query: str, entries: list[dict[str, Any]]) -> list[float]:
        texts = [_text(e["content"]) for e in entries]
        if self.embed is None:
            return bm25(query, texts)
        (target,) = await self._vectors([query])
        vectors: list[Sequence[float] | None] = [e.get("embedding") for e in entries]
        stale = [i for i, v in enumerate(vectors) if v is None or len(v) != len(target)]
        stale = [i for i in stale if texts[i]]  # added before embed was set, or by another model
        for i, vector in zip(stale, await self._vectors([texts[i] for i in stale]), strict=True):
            vectors[i] = vector
        return [
            0.0 if vector is None or not text else (1 + _cosine(target, vector)) / 2
            for vector, text in zip(vectors, texts, strict=True)
        ]

    async def _vectors(self, texts: list[str]) -> list[list[float]]:
        assert self.embed is not None
        if not texts:
            return []
        made = self.embed(texts)
        vectors = await made if inspect.isawaitable(made) else made
        return [[float(x) for x in v] for v in vectors]

    async def update_context(self, model_context: ChatCompletionContext) -> UpdateContextResult:
        if self.k is None and self.score_threshold is None:  # as ListMemory: everything
            found = (await self.query("")).results
            template = "\nRelevant memory content (in chronological order):\n{}\n"
        else:  # as autogen-ext's ChromaDB memory: what the last message finds
            messages = await model_context.get_messages()
            if not messages:
                return UpdateContextResult(memories=MemoryQueryResult(results=[]))
            last = messages[-1].content
            found = (await self.query(last if isinstance(last, str) else str(last))).results
            template = "\nRelevant memory content:\n{}"
        if found:
            lines = "\n".join(f"{i}. {e.content!s}" for i, e in enumerate(found, 1))
            await model_context.add_message(SystemMessage(content=template.format(lines)))
        return UpdateContextResult(memories=MemoryQueryResult(results=found))

    async def clear(self) -> None:
        await self._history.aclear(self._memory)

    async def close(self) -> None:
        await self._memory.close()
        self._tenants.memory(self._name).close()

    def _to_config(self) -> BotwireMemoryConfig:
        if callable(self._namespace) or self.embed is not None:
            raise ValueError(
                "a BotwireMemory with a callable namespace or an embed function cannot be "
                "serialised: use a '{scope}' template, and pass embed= when loading"
            )
        return BotwireMemoryConfig(
            name=self._name,
            namespace=self._namespace,
            url=self._url,
            k=self.k,
            score_threshold=self.score_threshold,
        )

    @classmethod
    def _from_config(cls, config: BotwireMemoryConfig) -> BotwireMemory:
        return cls(
            config.name,
            namespace=config.namespace,
            url=config.url,
            k=config.k,
            score_threshold=config.score_threshold,
        )


# -- relevance --------------------------------------------------------------------------


def _words(text: str) -> list[str]:
    """Lower-case words, a plural ``s`` dropped ("drinks" matches "drink")."""
    words = re.findall(r"\w+", text.lower())
    return [w[:-1] if len(w) > 3 and w[-1] == "s" and w[-2] not in "su" else w for w in words]


def bm25(query: str, texts: Sequence[str], k1: float = 1.2, b: float = 0.75) -> list[float]:
    """The BM25 score of each of ``texts`` for ``query``, divided by the most any text
    could score (one holding every query word, many times): 0 (no query word) to 1."""
    docs = [Counter(_words(t)) for t in texts]
    terms = set(_words(query))
    if not docs or not terms:
        return [0.0] * len(docs)
    lengths = [sum(d.values()) for d in docs]
    average = sum(lengths) / len(docs) or 1.0
    df = {t: sum(1 for d in docs if t in d) for t in terms}
    idf = {t: math.log(1 + (len(docs) - df[t] + 0.5) / (df[t] + 0.5)) for t in terms}
    best = (k1 + 1) * sum(idf.values())
    scores = []
    for doc, length in zip(docs, lengths, strict=True):
        norm = k1 * (1 - b + b * length / average)
        score = sum(idf[t] * doc[t] * (k1 + 1) / (doc[t] + norm) for t in terms if t in doc)
        scores.append(score / best)
    return scores


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return dot / norm if norm else 0.0


def _text(stored: Any) -> str:
    """What of a stored entry's content can be ranked: text, Markdown, JSON (as ``str``
    shows it to the model); nothing for bytes or images."""
    binary = isinstance(stored, dict) and set(stored) in ({"image_base64"}, {"bytes_base64"})
    return "" if binary else str(stored)


def _scored(content: MemoryContent, score: float) -> MemoryContent:
    return content.model_copy(update={"metadata": {**(content.metadata or {}), "score": score}})


# -- entries as JSON ----------------------------------------------------------------------


def _to_json(content: MemoryContent) -> dict[str, Any]:
    value: Any = content.content
    if isinstance(value, Image):
        value = {"image_base64": value.to_base64()}
    elif isinstance(value, bytes):
        value = {"bytes_base64": base64.b64encode(value).decode()}
    entry = {"content": value, "mime_type": content.mime_type, "metadata": content.metadata}
    if isinstance(content.mime_type, MemoryMimeType):  # given as the enum: comes back so
        entry.update(mime_type=content.mime_type.value, mime_enum=True)
    return entry


def _from_json(entry: dict[str, Any]) -> MemoryContent:
    value = entry["content"]
    if isinstance(value, dict) and set(value) == {"image_base64"}:
        value = Image.from_base64(value["image_base64"])
    elif isinstance(value, dict) and set(value) == {"bytes_base64"}:
        value = base64.b64decode(value["bytes_base64"])
    mime = MemoryMimeType(entry["mime_type"]) if entry.get("mime_enum") else entry["mime_type"]
    return MemoryContent(content=value, mime_type=mime, metadata=entry["metadata"])


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
