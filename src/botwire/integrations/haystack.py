"""Haystack: a chat message store, memory components, Agent hooks and memory tools.

    pip install 'botwire[haystack]'

* :class:`BotwireChatMessageStore` implements haystack-experimental's
  ``ChatMessageStore`` protocol, for its ``ChatMessageRetriever`` and
  ``ChatMessageWriter``, with the semantics of its ``InMemoryChatMessageStore``.
  A conversation is a :class:`~botwire.integrations.history.History` (kind
  ``chat:``, one ``ChatMessage.to_dict()`` record per key), so it has no size
  limit but the namespace's quota. Writes from many processes apply whole and in
  order and lose nothing. Messages are de-duplicated on
  ``meta["chat_message_id"]`` (agents write retrieved history back); one without
  an id is stored with its position as id, on a copy (the caller's message is
  never changed). ``max_messages`` keeps the newest, never starting the kept
  part with a tool result cut from its call; ``ttl`` (seconds) restarts on every
  write. Retrieval with ``last_k`` counts rounds (a user turn and its answer,
  tool calls included), as Haystack's own in-memory store does.
* :class:`MemoryReader` / :class:`MemoryWriter`: pipeline components for one key.
* :class:`LoadState` / :class:`SaveState` (or :func:`state_hooks`): Agent hooks
  that load ``State`` keys before a run and save them after, per user when
  ``scope`` names a state key holding the user id. A value the caller passes to
  ``Agent.run`` is merged into the stored one by the key's State handler.
* :class:`MemoryToolset`: ``remember``, ``recall``, ``forget`` and ``list`` tools
  for the core ``Agent``.

Where data goes: ``namespace=`` (with ``url=``), or ``memory=`` (a ``Memory``,
which then wins). The chat store and the state hooks also take a namespace per
tenant: a ``{scope}`` template or a callable ``scope -> name``
(:mod:`botwire.integrations.tenants`), the scope being the ``chat_history_id``
for the chat store and the user id (the ``scope`` State key) for the hooks.

Everything serialises with ``to_dict``/``from_dict`` by its namespace and URL
(never a connection; a callable namespace by its import path, a passed
``Memory`` as its namespace and the URL of its store). Loading a pipeline YAML
that names these classes needs ``allowed_modules=["botwire"]`` where your
Haystack version restricts imports on deserialisation.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, TypeVar

try:
    from haystack import component, default_from_dict, default_to_dict
    from haystack.components.agents.state import replace_values
    from haystack.core.serialization import generate_qualified_class_name
    from haystack.dataclasses import ChatMessage, ChatRole
    from haystack.tools.tool import Tool
    from haystack.tools.toolset import Toolset
    from haystack.utils import deserialize_callable, serialize_callable
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError("botwire's Haystack adapter needs: pip install 'botwire[haystack]'") from exc

from .. import Memory
from ..ops import NOT_PROVIDED
from .history import History
from .tenants import NamespaceSpec, Tenants, per_scope

T = TypeVar("T")

CHUNK = 400  # messages per atomic append (a batch holds at most 1000 ops)


class _Placed:
    """Where an object keeps its data: a namespace (spec) on ``url``, or one ``Memory``."""

    namespace: NamespaceSpec
    url: str | None
    tenants: Tenants

    def _place(self, namespace: NamespaceSpec, url: str | None, memory: Memory | None) -> None:
        self.namespace = namespace if memory is None else memory.namespace
        self.url = url if memory is None or url is not None else _url_of(memory)
        self.tenants = Tenants(memory, namespace, url)

    def _placement(self) -> dict[str, Any]:
        """``namespace`` and ``url`` as ``to_dict`` writes them."""
        spec = self.namespace
        return {
            "namespace": spec if isinstance(spec, str) else {"callable": serialize_callable(spec)},
            "url": self.url,
        }


def _url_of(memory: Memory) -> str | None:
    """The URL of ``memory``'s store, where it names one (an in-process store has none)."""
    store = getattr(memory.store, "origin", memory.store)  # a read cache: the server behind it
    url: str | None = getattr(store, "url", None)
    path = getattr(store, "path", None)
    if url is None and isinstance(path, str) and path != ":memory:":
        url = f"sqlite:///{path}"
    return url


def _from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """``default_from_dict``, with a callable namespace loaded from its import path
    (through Haystack's allowlist of modules)."""
    params = data.get("init_parameters", {})
    spec = params.get("namespace")
    if isinstance(spec, dict):
        params = {**params, "namespace": deserialize_callable(spec["callable"])}
        data = {**data, "init_parameters": params}
    return default_from_dict(cls, data)


# -- the chat message store ------------------------------------------------------------


class BotwireChatMessageStore(_Placed):
    """Chat histories in botwire, with ``InMemoryChatMessageStore``'s semantics.

    ``namespace`` is a name (every conversation in it), a ``{scope}`` template or
    a callable ``chat_history_id -> name`` (each conversation in a namespace of
    its own); ``memory=`` puts every conversation in that ``Memory`` instead.

    ``write_messages`` returns how many messages were new; up to 400 messages
    are written atomically (a longer list in parts of 400, each whole and in
    order). ``count_messages`` reads the conversation's head, not its messages.
    ``delete_all_messages`` clears every conversation of the store's namespace;
    with a namespace per conversation it can only reach the conversations this
    instance has used (written, read, counted or deleted): delete the others
    with ``delete_messages`` or by clearing their namespaces.
    """

    def __init__(
        self,
        namespace: NamespaceSpec = "haystack-chat",
        url: str | None = None,
        *,
        memory: Memory | None = None,
        skip_system_messages: bool = True,
        last_k: int | None = 10,
        max_messages: int | None = None,
        ttl: float | None = None,
    ) -> None:
        if max_messages is not None and max_messages < 1:
            raise ValueError("max_messages must be 1 or greater")
        self._place(namespace, url, memory)
        self.skip_system_messages = skip_system_messages
        self.last_k = last_k
        self.max_messages = max_messages
        self.ttl = ttl
        self._used: set[str] = set()  # the conversations this instance has reached

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(
            self,
            **self._placement(),
            skip_system_messages=self.skip_system_messages,
            last_k=self.last_k,
            max_messages=self.max_messages,
            ttl=self.ttl,
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> BotwireChatMessageStore:
        return _from_dict(cls, data)

    def memory_for(self, chat_history_id: str) -> Memory:
        """The ``Memory`` holding ``chat_history_id``."""
        self._used.add(chat_history_id)
        return self.tenants.memory(chat_history_id)

    def history(self, chat_history_id: str) -> History:
        """The conversation ``chat_history_id`` (round 1 kept it as one list under
        ``chat:<chat_history_id>``: read, and moved into entries by the next write)."""
        return History(
            "chat:",
            chat_history_id,
            legacy=f"chat:{chat_history_id}",
            trim=None if self.max_messages is None else self._trim,
            ttl=self.ttl,
            id_of=_message_id,
            stamp=_stamped,
        )

    def count_messages(self, chat_history_id: str) -> int:
        return self.history(chat_history_id).count(self.memory_for(chat_history_id))

    def write_messages(self, chat_history_id: str, messages: list[ChatMessage]) -> int:
        """Append ``messages`` (system messages skipped if so configured); how many were new."""
        given = list(messages) if isinstance(messages, Iterable) else None
        if given is None or not all(isinstance(m, ChatMessage) for m in given):
            raise ValueError("Please provide a list of ChatMessages.")
        records = [
            m.to_dict()  # shares the caller's meta: History stamps ids on a copy
            for m in given
            if not (self.skip_system_messages and m.is_from(ChatRole.SYSTEM))
        ]
        history, memory = self.history(chat_history_id), self.memory_for(chat_history_id)
        return sum(
            history.append(memory, records[start : start + CHUNK])
            for start in range(0, len(records), CHUNK)
        )

    def retrieve_messages(
        self, chat_history_id: str, last_k: int | None = None
    ) -> list[ChatMessage]:
        """The last ``last_k`` rounds (else the store's ``last_k``; ``None``: every message)."""
        if last_k is not None and last_k < 0:
            raise ValueError("last_k must be 0 or greater")
        resolved = last_k if last_k is not None else self.last_k
        if resolved == 0:
            return []
        records = self.history(chat_history_id).read(self.memory_for(chat_history_id))
        messages = [ChatMessage.from_dict(record) for record in records]
        return messages if resolved is None else _last_rounds(messages, resolved)

    def delete_messages(self, chat_history_id: str) -> None:
        self.history(chat_history_id).clear(self.memory_for(chat_history_id))

    def delete_all_messages(self) -> None:
        """Every conversation of the namespace (per conversation: of those this instance used)."""
        if self.tenants.fixed is not None or not per_scope(self.tenants.spec):
            self.tenants.memory().clear("chat:")
            return
        namespaces = {self.tenants.name(scope): scope for scope in self._used}
        for scope in namespaces.values():
            self.tenants.memory(scope).clear("chat:")

    def _trim(self, records: list[dict[str, Any]]) -> int:
        """How many of the oldest to drop: down to ``max_messages``, and then any tool
        result at the start (its call was cut)."""
        if self.max_messages is None or len(records) <= self.max_messages:
            return 0
        drop = len(records) - self.max_messages
        while drop < len(records) and records[drop].get("role") == ChatRole.TOOL.value:
            drop += 1
        return drop


def _message_id(record: dict[str, Any]) -> str | None:
    found = (record.get("meta") or {}).get("chat_message_id")
    return None if found is None else str(found)


def _stamped(record: dict[str, Any], position: int) -> dict[str, Any]:
    """``record`` with its position as id, as InMemoryChatMessageStore numbers messages
    (a copy: the caller's meta is left as it was)."""
    return {**record, "meta": {**(record.get("meta") or {}), "chat_message_id": str(position)}}


def _last_rounds(messages: list[ChatMessage], last_k: int) -> list[ChatMessage]:
    """The last ``last_k`` rounds of ``messages``, cut as ``InMemoryChatMessageStore`` cuts.

    A round is a user turn up to the assistant's text answer, its tool calls and
    tool results included (so a call is never cut from its results); a system
    message is a round of its own; an unfinished round at the end counts as one.
    """
    rounds: list[list[ChatMessage]] = []
    current: list[ChatMessage] = []
    for message in messages:
        if message.is_from(ChatRole.SYSTEM):
            rounds.append([message])
            continue
        current.append(message)
        if message.is_from(ChatRole.ASSISTANT) and message.text and not message.tool_calls:
            rounds.append(current)
            current = []
    if current:
        rounds.append(current)
    return [message for kept in rounds[-last_k:] for message in kept]


# -- pipeline components for one key ---------------------------------------------------


@component
class MemoryReader(_Placed):
    """Reads one key: ``run(key, default=None) -> {"value": ...}``."""

    def __init__(
        self, namespace: str = "haystack", url: str | None = None, *, memory: Memory | None = None
    ) -> None:
        self._place(namespace, url, memory)
        self.memory = self.tenants.memory()

    @component.output_types(value=Any)
    def run(self, key: str, default: Any = None) -> dict[str, Any]:
        return {"value": self.memory.get(key, default)}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._placement())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryReader:
        return _from_dict(cls, data)


@component
class MemoryWriter(_Placed):
    """Writes one key: ``run(key, value, ttl=None) -> {"version": ...}``."""

    def __init__(
        self, namespace: str = "haystack", url: str | None = None, *, memory: Memory | None = None
    ) -> None:
        self._place(namespace, url, memory)
        self.memory = self.tenants.memory()

    @component.output_types(version=int)
    def run(self, key: str, value: Any, ttl: float | None = None) -> dict[str, Any]:
        return {"version": self.memory.set(key, value, ttl=NOT_PROVIDED if ttl is None else ttl)}

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, **self._placement())

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryWriter:
        return _from_dict(cls, data)


# -- Agent hooks: State keys loaded before a run, saved after ---------------------------


class _StateHook(_Placed):
    """What both hooks share: which State keys, in which memory, for which user.

    ``scope`` names the State key holding the user id: each user's keys are
    ``state:<user>:<key>``, in the namespace ``namespace`` gives that user
    (a ``{scope}`` template or a callable: one namespace per user).
    """

    def __init__(
        self,
        keys: list[str],
        namespace: NamespaceSpec = "haystack",
        url: str | None = None,
        scope: str | None = None,
        *,
        memory: Memory | None = None,
    ) -> None:
        if memory is None and per_scope(namespace) and scope is None:
            raise ValueError("a namespace per user needs scope=, the State key of the user id")
        self.keys, self.scope = list(keys), scope
        self._place(namespace, url, memory)

    def _where(self, state: Any) -> tuple[str, str]:
        """The scope (user id) and the key prefix of the user whose run this is."""
        if self.scope is None:
            return "", "state:"
        owner = state.get(self.scope)
        if owner is None:
            raise ValueError(f"state key {self.scope!r} (the memory scope) is not set")
        return str(owner), f"state:{owner}:"

    def to_dict(self) -> dict[str, Any]:
        return default_to_dict(self, keys=self.keys, **self._placement(), scope=self.scope)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Any:
        return _from_dict(cls, data)


class LoadState(_StateHook):
    """A ``before_run`` hook: set ``keys`` in the Agent's State from memory.

    A key the caller passed to ``Agent.run`` is an update to the stored value,
    merged by the key's State handler as the Agent merges every update: a list
    (``merge_lists``, the default) gets the passed items after the stored ones,
    any other type (``replace_values``) takes the passed value. Declare
    ``"handler": replace_values`` in the ``state_schema`` for a list the passed
    value should replace. A key not passed (or passed as ``None``) is the stored value.
    """

    def run(self, state: Any) -> None:
        scope, prefix = self._where(state)
        keys = [prefix + key for key in self.keys]
        self._apply(state, prefix, self.tenants.memory(scope).get_many(keys))

    async def run_async(self, state: Any) -> None:
        scope, prefix = self._where(state)
        keys = [prefix + key for key in self.keys]
        self._apply(state, prefix, await self.tenants.amemory(scope).get_many(keys))

    def _apply(self, state: Any, prefix: str, found: dict[str, Any]) -> None:
        for key in self.keys:
            if prefix + key not in found:
                continue
            passed = state.get(key)
            state.set(key, found[prefix + key], handler_override=replace_values)
            if passed is not None:
                state.set(key, passed)  # the schema's handler: stored first, then the update


class SaveState(_StateHook):
    """An ``after_run`` hook: save ``keys`` of the Agent's State to memory (one atomic write)."""

    def run(self, state: Any) -> None:
        scope, prefix = self._where(state)
        values = {prefix + key: state.get(key) for key in self.keys if state.has(key)}
        if values:
            self.tenants.memory(scope).set_many(values)

    async def run_async(self, state: Any) -> None:
        scope, prefix = self._where(state)
        values = {prefix + key: state.get(key) for key in self.keys if state.has(key)}
        if values:
            await self.tenants.amemory(scope).set_many(values)


def state_hooks(
    keys: list[str],
    namespace: NamespaceSpec = "haystack",
    url: str | None = None,
    scope: str | None = None,
    *,
    memory: Memory | None = None,
) -> dict[str, list[Any]]:
    """``Agent(hooks=state_hooks(["notes"], scope="user_id"))``: load before, save after."""
    return {
        "before_run": [LoadState(keys, namespace, url, scope, memory=memory)],
        "after_run": [SaveState(keys, namespace, url, scope, memory=memory)],
    }


# -- tools for the Agent's model --------------------------------------------------------


class MemoryToolset(Toolset, _Placed):
    """Tools an Agent's model can call: remember, recall, forget, list."""

    def __init__(
        self,
        namespace: str = "haystack-agent",
        url: str | None = None,
        *,
        memory: Memory | None = None,
    ) -> None:
        self._place(namespace, url, memory)
        store = self.tenants.memory()

        def remember(key: str, value: Any) -> str:
            store.set(key, value)
            return f"remembered {key!r}"

        def recall(key: str) -> Any:
            return store.get(key, f"nothing remembered under {key!r}")

        def forget(key: str) -> str:
            return f"forgot {key!r}" if store.delete(key) else f"nothing under {key!r}"

        def list_keys(prefix: str = "") -> list[str]:
            return store.list_keys(prefix, limit=100)

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
            "data": self._placement(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemoryToolset:
        return cls(**data["data"])


def _schema(**properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "object", "properties": properties, "required": list(properties)}
