"""Haystack: a chat message store, memory components, Agent hooks and memory tools.

    pip install 'botwire[haystack]'

* :class:`BotwireChatMessageStore` implements haystack-experimental's
  ``ChatMessageStore`` protocol, for its ``ChatMessageRetriever`` and
  ``ChatMessageWriter``. A conversation is one list (``chat:<chat_history_id>``)
  of ``ChatMessage.to_dict()`` records. Writes are compare-and-set, retried on a
  race, so processes writing one conversation never lose a message; messages are
  de-duplicated on ``meta["chat_message_id"]`` (agents write retrieved history
  back), and those without one get the next number. ``max_messages`` keeps the
  newest, never starting the kept part with a tool result cut from its call;
  ``ttl`` (seconds) restarts on every write. Retrieval with ``last_k`` counts
  rounds (a user turn and its answer, tool calls included), as Haystack's own
  in-memory store does.
* :class:`MemoryReader` / :class:`MemoryWriter`: pipeline components for one key.
* :class:`LoadState` / :class:`SaveState` (or :func:`state_hooks`): Agent hooks
  that load ``State`` keys before a run and save them after, per user when
  ``scope`` names a state key holding the user id.
* :class:`MemoryToolset`: ``remember``, ``recall``, ``forget`` and ``list`` tools
  for the core ``Agent``.

Everything serialises with ``to_dict``/``from_dict`` by its namespace and URL (never
a connection). Loading a pipeline YAML that names these classes needs
``allowed_modules=["botwire"]`` where your Haystack version restricts imports
on deserialisation.
"""

from __future__ import annotations

from typing import Any

try:
    from haystack import component, default_from_dict, default_to_dict
    from haystack.core.serialization import generate_qualified_class_name
    from haystack.dataclasses import ChatMessage, ChatRole
    from haystack.tools.tool import Tool
    from haystack.tools.toolset import Toolset
    from haystack_experimental.chat_message_stores.in_memory import InMemoryChatMessageStore
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError("botwire's Haystack adapter needs: pip install 'botwire[haystack]'") from exc

from .. import Memory
from ..ops import NOT_PROVIDED


def _memory(namespace: str, url: str | None) -> Memory:
    return Memory(namespace, url=url)


class BotwireChatMessageStore:
    """Chat histories in botwire (see the module docstring)."""

    def __init__(
        self,
        namespace: str = "haystack-chat",
        url: str | None = None,
        *,
        skip_system_messages: bool = True,
        last_k: int | None = 10,
        max_messages: int | None = None,
        ttl: float | None = None,
    ) -> None:
        self.namespace, self.url = namespace, url
        self.skip_system_messages = skip_system_messages
        self.last_k = last_k
        self.max_messages = max_messages
        self.ttl = ttl
        self.memory = _memory(namespace, url)

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            namespace=self.namespace,
            url=self.url,
            skip_system_messages=self.skip_system_messages,
            last_k=self.last_k,
            max_messages=self.max_messages,
            ttl=self.ttl,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BotwireChatMessageStore:
        return default_from_dict(cls, data)

    @staticmethod
    def _key(chat_history_id: str) -> str:
        return f"chat:{chat_history_id}"

    def count_messages(self, chat_history_id: str) -> int:
        return len(self.memory.get(self._key(chat_history_id), []))

    def write_messages(self, chat_history_id: str, messages: list[ChatMessage]) -> int:
        if not isinstance(messages, list) or not all(isinstance(m, ChatMessage) for m in messages):
            raise ValueError("Please provide a list of ChatMessages.")
        written = 0

        def add(stored: list[dict[str, Any]]) -> list[dict[str, Any]]:
            nonlocal written  # recomputed on every compare-and-set attempt
            known = {_message_id(m) for m in stored}
            counter, new = len(stored), []
            for message in messages:
                if self.skip_system_messages and message.is_from(ChatRole.SYSTEM):
                    continue
                record = message.to_dict()
                meta = record.setdefault("meta", {})
                if meta.get("chat_message_id") is None:
                    meta["chat_message_id"] = str(counter)
                    counter += 1
                if meta["chat_message_id"] not in known:
                    known.add(meta["chat_message_id"])
                    new.append(record)
            written = len(new)
            return _trim(stored + new, self.max_messages)

        ttl = NOT_PROVIDED if self.ttl is None else self.ttl
        self.memory.update(self._key(chat_history_id), add, [], ttl=ttl)
        return written

    def retrieve_messages(
        self, chat_history_id: str, last_k: int | None = None
    ) -> list[ChatMessage]:
        if last_k is not None and last_k < 0:
            raise ValueError("last_k must be 0 or greater")
        resolved = last_k if last_k is not None else self.last_k
        if resolved == 0:
            return []
        stored = self.memory.get(self._key(chat_history_id), [])
        messages = [ChatMessage.from_dict(m) for m in stored]
        if resolved is None:
            return messages
        # Haystack's own round-counting, so both stores cut a history the same way.
        kept: list[ChatMessage] = InMemoryChatMessageStore._get_last_k_messages(
            messages=messages, last_k=resolved
        )
        return kept

    def delete_messages(self, chat_history_id: str) -> None:
        self.memory.delete(self._key(chat_history_id))

    def delete_all_messages(self) -> None:
        self.memory.clear("chat:")


def _message_id(record: dict[str, Any]) -> Any:
    return (record.get("meta") or {}).get("chat_message_id")


def _trim(records: list[dict[str, Any]], max_messages: int | None) -> list[dict[str, Any]]:
    """The newest ``max_messages``, not starting with tool results cut from their call."""
    if max_messages is None or len(records) <= max_messages:
        return records
    kept = records[-max_messages:]
    while kept and kept[0].get("role") == ChatRole.TOOL.value:
        kept = kept[1:]
    return kept


@component
class MemoryReader:
    """Reads one key: ``run(key, default=None) -> {"value": ...}``."""

    def __init__(self, namespace: str = "haystack", url: str | None = None) -> None:
        self.namespace, self.url = namespace, url
        self.memory = _memory(namespace, url)

    @component.output_types(value=Any)
    def run(self, key: str, default: Any = None) -> dict[str, Any]:
        return {"value": self.memory.get(key, default)}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, namespace=self.namespace, url=self.url)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryReader:
        return default_from_dict(cls, data)


@component
class MemoryWriter:
    """Writes one key: ``run(key, value, ttl=None) -> {"version": ...}``."""

    def __init__(self, namespace: str = "haystack", url: str | None = None) -> None:
        self.namespace, self.url = namespace, url
        self.memory = _memory(namespace, url)

    @component.output_types(version=int)
    def run(self, key: str, value: Any, ttl: float | None = None) -> dict[str, Any]:
        return {"version": self.memory.set(key, value, ttl=NOT_PROVIDED if ttl is None else ttl)}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, namespace=self.namespace, url=self.url)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryWriter:
        return default_from_dict(cls, data)


class _StateHook:
    """What both hooks share: which State keys, in which memory, for which user."""

    def __init__(
        self,
        keys: list[str],
        namespace: str = "haystack",
        url: str | None = None,
        scope: str | None = None,
    ) -> None:
        self.keys, self.namespace, self.url, self.scope = list(keys), namespace, url, scope
        self.memory = _memory(namespace, url)

    def _prefix(self, state: Any) -> str:
        if self.scope is None:
            return "state:"
        owner = state.get(self.scope)
        if owner is None:
            raise ValueError(f"state key {self.scope!r} (the memory scope) is not set")
        return f"state:{owner}:"

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self, keys=self.keys, namespace=self.namespace, url=self.url, scope=self.scope
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return default_from_dict(cls, data)


class LoadState(_StateHook):
    """A ``before_run`` hook: set ``keys`` in the Agent's State from memory."""

    def run(self, state: Any) -> None:
        prefix = self._prefix(state)
        found = self.memory.get_many([prefix + key for key in self.keys])
        for key in self.keys:
            if prefix + key in found:
                state.set(key, found[prefix + key], handler_override=_replace)


class SaveState(_StateHook):
    """An ``after_run`` hook: save ``keys`` of the Agent's State to memory (one atomic write)."""

    def run(self, state: Any) -> None:
        prefix = self._prefix(state)
        values = {prefix + key: state.get(key) for key in self.keys if state.has(key)}
        if values:
            self.memory.set_many(values)


def _replace(current: Any, new: Any) -> Any:
    return new


def state_hooks(
    keys: list[str], namespace: str = "haystack", url: str | None = None, scope: str | None = None
) -> dict[str, list[Any]]:
    """``Agent(hooks=state_hooks(["notes"], scope="user_id"))``: load before, save after."""
    return {
        "before_run": [LoadState(keys, namespace, url, scope)],
        "after_run": [SaveState(keys, namespace, url, scope)],
    }


class MemoryToolset(Toolset):
    """Tools an Agent's model can call: remember, recall, forget, list."""

    def __init__(self, namespace: str = "haystack-agent", url: str | None = None) -> None:
        self.namespace, self.url = namespace, url
        memory = _memory(namespace, url)

        def remember(key: str, value: Any) -> str:
            memory.set(key, value)
            return f"remembered {key!r}"

        def recall(key: str) -> Any:
            return memory.get(key, f"nothing remembered under {key!r}")

        def forget(key: str) -> str:
            return f"forgot {key!r}" if memory.delete(key) else f"nothing under {key!r}"

        def list_keys(prefix: str = "") -> list[str]:
            return memory.list_keys(prefix, limit=100)

        key = {"type": "string", "description": "what to call the fact, e.g. 'user:preferences'"}
        super().__init__(
            tools=[
                Tool(
                    name="remember",
                    description="Store a fact under a key so it is available in later runs.",
                    parameters=_schema(key=key, value={"description": "any JSON value"}),
                    function=remember,
                ),
                Tool(
                    name="recall",
                    description="Read the fact stored under a key.",
                    parameters=_schema(key=key),
                    function=recall,
                ),
                Tool(
                    name="forget",
                    description="Delete the fact stored under a key.",
                    parameters=_schema(key=key),
                    function=forget,
                ),
                Tool(
                    name="list",
                    description="List the keys of stored facts (those starting with prefix).",
                    parameters={
                        "type": "object",
                        "properties": {"prefix": {"type": "string"}},
                        "required": [],
                    },
                    function=list_keys,
                ),
            ]
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "type": generate_qualified_class_name(type(self)),
            "data": {"namespace": self.namespace, "url": self.url},
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryToolset:
        return cls(**data["data"])


def _schema(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}
