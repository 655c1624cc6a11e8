"""LangChain: chat message history, a key-value ``BaseStore`` and an LLM cache, on botwire.

    pip install 'botwire[langchain]'

    from botwire.integrations.langchain import BotwireChatMessageHistory
    chain = RunnableWithMessageHistory(model, lambda sid: BotwireChatMessageHistory(sid))

* :class:`BotwireChatMessageHistory` keeps a session's messages one per key
  (:class:`~botwire.integrations.history.History`, kind ``history:``, name the
  session id), so a conversation has no size limit but the namespace's quota;
  appends are atomic and in order across processes. ``max_messages`` trims in
  whole exchanges: what is kept starts at a human (or system) message, so a
  tool result is never kept without the AI message that called it (as
  LangChain's ``trim_messages`` with ``start_on``, after each add). ``ttl`` (seconds)
  restarts on every write. ``namespace=`` may be a ``{scope}`` template or a
  callable, the scope being the session id: a namespace per conversation. A
  round-1 history (one list under ``history:<session_id>``) is read, and moved
  to one entry per key by the next write. Messages are stored with LangChain's
  own ``message_to_dict`` (JSON), never pickled.
* :class:`BotwireStore` is ``BaseStore[str, Any]`` for JSON values.
* :class:`BotwireLLMCache` caches generations under a hash of the prompt and the
  model's settings, as JSON (text or message, and ``generation_info``), never
  pickled; a generation whose info is not JSON is not cached (logged).

Each takes a ``Memory`` (or a namespace and ``url``), so it works on every store.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any

try:
    from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
    from langchain_core.chat_history import BaseChatMessageHistory
    from langchain_core.messages import BaseMessage, message_to_dict, messages_from_dict
    from langchain_core.outputs import ChatGeneration, Generation
    from langchain_core.stores import BaseStore
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError(
        "botwire's LangChain adapter needs: pip install 'botwire[langchain]'"
    ) from exc

from .. import AsyncMemory, Memory, ValueNotSerializable
from ..ops import NOT_PROVIDED, TTLArg
from ..wire import encode_value
from .history import History
from .tenants import NamespaceSpec, Tenants

log = logging.getLogger("botwire")


def _open(memory: Memory | None, namespace: str, url: str | None) -> tuple[Memory, AsyncMemory]:
    """A memory and its async twin on the same store."""
    memory = memory if memory is not None else Memory(namespace, url=url)
    return memory, AsyncMemory(memory.namespace, url=memory.store)


START_ON = ("human", "system")  # what a trimmed history starts with


class BotwireChatMessageHistory(BaseChatMessageHistory):
    """The messages of one conversation (``session_id``).

    ``add_messages`` is atomic for up to 300 messages (and about 1 MB of them);
    a larger call is added in such parts, each atomic, in order.
    ``max_messages`` (>= 1): after each add, the history keeps
    the newest ``max_messages`` at most, from the first human or system message
    among them, as LangChain's ``trim_messages(strategy="last",
    token_counter=len, max_tokens=max_messages, start_on=("human", "system"))``;
    so a kept tool result always follows its call, and a model that wants a
    human message first gets one. If those newest messages hold no human or
    system message, nothing is kept, as with ``trim_messages``: choose a limit
    above the longest exchange.
    """

    def __init__(
        self,
        session_id: str,
        memory: Memory | None = None,
        *,
        namespace: NamespaceSpec = "langchain",
        url: str | None = None,
        max_messages: int | None = None,
        ttl: float | None = None,
    ) -> None:
        if max_messages is not None and (type(max_messages) is not int or max_messages < 1):
            raise ValueError(f"max_messages must be None or an int >= 1, not {max_messages!r}")
        self.session_id = session_id
        tenants = Tenants(memory, namespace, url)
        self.memory, self._async = tenants.memory(session_id), tenants.amemory(session_id)
        self.max_messages = max_messages
        self.history = History(
            "history:",
            session_id,
            legacy=f"history:{session_id}",
            trim=None if max_messages is None else self._trimmed,
            ttl=ttl,
        )

    def _trimmed(self, entries: list[Any]) -> int:
        """How many of the oldest to drop: down to ``max_messages``, then on to a message
        that can start a history (never a tool result cut from its call)."""
        assert self.max_messages is not None
        start = max(0, len(entries) - self.max_messages)
        while start < len(entries) and entries[start].get("type") not in START_ON:
            start += 1
        return start

    @property
    def messages(self) -> list[BaseMessage]:  # type: ignore[override]
        return messages_from_dict(self.history.read(self.memory))

    async def aget_messages(self) -> list[BaseMessage]:
        return messages_from_dict(await self.history.aread(self._async))

    def add_messages(self, messages: Sequence[BaseMessage]) -> None:
        self.history.append(self.memory, [message_to_dict(m) for m in messages])

    async def aadd_messages(self, messages: Sequence[BaseMessage]) -> None:
        await self.history.aappend(self._async, [message_to_dict(m) for m in messages])

    def clear(self) -> None:
        self.history.clear(self.memory)

    async def aclear(self) -> None:
        await self.history.aclear(self._async)


class BotwireStore(BaseStore[str, Any]):
    """LangChain's key-value ``BaseStore`` for JSON values (``mget``/``mset``/...)."""

    def __init__(
        self,
        memory: Memory | None = None,
        *,
        namespace: str = "langchain-store",
        url: str | None = None,
        ttl: float | None = None,
    ) -> None:
        self.memory, self._async = _open(memory, namespace, url)
        self._ttl: TTLArg = NOT_PROVIDED if ttl is None else ttl

    def mget(self, keys: Sequence[str]) -> list[Any | None]:
        found = self.memory.get_many(keys)
        return [found.get(key) for key in keys]

    async def amget(self, keys: Sequence[str]) -> list[Any | None]:
        found = await self._async.get_many(keys)
        return [found.get(key) for key in keys]

    def mset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        if key_value_pairs:
            self.memory.set_many(dict(key_value_pairs), ttl=self._ttl)

    async def amset(self, key_value_pairs: Sequence[tuple[str, Any]]) -> None:
        if key_value_pairs:
            await self._async.set_many(dict(key_value_pairs), ttl=self._ttl)

    def mdelete(self, keys: Sequence[str]) -> None:
        self.memory.delete_many(keys)

    async def amdelete(self, keys: Sequence[str]) -> None:
        await self._async.delete_many(keys)

    def yield_keys(self, *, prefix: str | None = None) -> Iterator[str]:
        return self.memory.iter_keys(prefix or "")

    async def ayield_keys(self, *, prefix: str | None = None) -> AsyncIterator[str]:
        async for key in self._async.iter_keys(prefix or ""):
            yield key


class BotwireLLMCache(BaseCache):
    """LangChain's LLM cache (``set_llm_cache(BotwireLLMCache())`` or ``cache=`` on a model)."""

    def __init__(
        self,
        memory: Memory | None = None,
        *,
        namespace: str = "langchain-llm-cache",
        url: str | None = None,
        ttl: float | None = None,
    ) -> None:
        self.memory, self._async = _open(memory, namespace, url)
        self._ttl: TTLArg = NOT_PROVIDED if ttl is None else ttl

    @staticmethod
    def _key(prompt: str, llm_string: str) -> str:
        digest = hashlib.sha256(f"{llm_string}\x00{prompt}".encode()).hexdigest()
        return f"llm:{digest}"

    @staticmethod
    def _generations(stored: Any) -> RETURN_VAL_TYPE | None:
        if stored is None:
            return None
        return [_load(g) for g in stored]

    @staticmethod
    def _stored(return_val: RETURN_VAL_TYPE) -> list[dict[str, Any]] | None:
        stored = [_dump(g) for g in return_val]
        try:
            encode_value(stored)
        except ValueNotSerializable as exc:
            log.warning("botwire LLM cache: not caching a generation (%s)", exc)
            return None
        return stored

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self._generations(self.memory.get(self._key(prompt, llm_string)))

    async def alookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        return self._generations(await self._async.get(self._key(prompt, llm_string)))

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        stored = self._stored(return_val)
        if stored is not None:
            self.memory.set(self._key(prompt, llm_string), stored, ttl=self._ttl)

    async def aupdate(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        stored = self._stored(return_val)
        if stored is not None:
            await self._async.set(self._key(prompt, llm_string), stored, ttl=self._ttl)

    def clear(self, **kwargs: Any) -> None:
        self.memory.clear()

    async def aclear(self, **kwargs: Any) -> None:
        await self._async.clear()


def _dump(generation: Generation) -> dict[str, Any]:
    if isinstance(generation, ChatGeneration):
        return {"message": message_to_dict(generation.message), "info": generation.generation_info}
    return {"text": generation.text, "info": generation.generation_info}


def _load(stored: dict[str, Any]) -> Generation:
    if "message" in stored:
        (message,) = messages_from_dict([stored["message"]])
        return ChatGeneration(message=message, generation_info=stored["info"])
    return Generation(text=stored["text"], generation_info=stored["info"])
