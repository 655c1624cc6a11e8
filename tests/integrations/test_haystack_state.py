"""The Haystack Agent hooks and components, round 2 (issue 13): a value passed to
``Agent.run`` merged into the stored one, ``memory=`` everywhere, a namespace per user."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from haystack import Pipeline
from haystack.components.agents import Agent
from haystack.components.agents.state import replace_values
from haystack.components.generators.chat import MockChatGenerator
from haystack.dataclasses import ChatMessage, ToolCall

from botwire import Memory
from botwire.integrations.haystack import (
    BotwireChatMessageStore,
    LoadState,
    MemoryReader,
    MemoryToolset,
    MemoryWriter,
    SaveState,
    state_hooks,
)

from .test_haystack import no_telemetry  # noqa: F401 - the autouse fixture

SCHEMA: dict[str, Any] = {
    "user_id": {"type": str},
    "notes": {"type": list},  # Haystack's default for a list: merge_lists
    "tags": {"type": list, "handler": replace_values},
    "language": {"type": str},
}


def _agent(hooks: dict[str, list[Any]]) -> Agent:
    model = MockChatGenerator(responses="ok")
    agent = Agent(chat_generator=model, state_schema=SCHEMA, hooks=hooks)
    agent.warm_up()
    return agent


def _run(agent: Agent, **state: Any) -> dict[str, Any]:
    return agent.run([ChatMessage.from_user("hi")], **state)  # type: ignore[no-any-return]


def test_a_value_passed_to_run_is_merged_by_its_state_handler(memory_url: str) -> None:
    """Round 1's LoadState replaced what the caller passed with the stored value."""
    hooks = state_hooks(["notes", "tags", "language"], "hs-state", memory_url, scope="user_id")
    first = _run(_agent(hooks), user_id="ann", notes=["likes tea"], tags=["a"], language="en")
    assert first["notes"] == ["likes tea"]
    agent = _agent(state_hooks(["notes", "tags", "language"], "hs-state", memory_url, "user_id"))
    second = _run(agent, user_id="ann", notes=["vegetarian"], tags=["b"], language="fr")
    assert second["notes"] == ["likes tea", "vegetarian"]  # merge_lists: stored, then passed
    assert second["tags"] == ["b"]  # replace_values in the schema: the passed value wins
    assert second["language"] == "fr"  # a str: replace_values, Haystack's default
    third = _run(agent, user_id="ann")  # nothing passed: what was saved
    assert (third["notes"], third["tags"], third["language"]) == (
        ["likes tea", "vegetarian"],
        ["b"],
        "fr",
    )
    assert not _run(agent, user_id="bob").get("notes")  # another user's state is separate


def test_async_runs_use_the_async_hooks(memory_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    hooks = state_hooks(["notes"], "hs-async", memory_url, scope="user_id")
    agent = _agent(hooks)

    def blocking(self: Any, state: Any) -> None:
        raise AssertionError("the sync hook ran in an async run")

    monkeypatch.setattr(LoadState, "run", blocking)
    monkeypatch.setattr(SaveState, "run", blocking)

    async def twice() -> list[Any]:
        first = await agent.run_async([ChatMessage.from_user("hi")], user_id="ann", notes=["a"])
        second = await agent.run_async([ChatMessage.from_user("hi")], user_id="ann", notes=["b"])
        return [first["notes"], second["notes"]]

    assert asyncio.run(twice()) == [["a"], ["a", "b"]]
    assert Memory("hs-async", url=memory_url).get("state:ann:notes") == ["a", "b"]


def test_state_in_a_namespace_per_user_or_a_given_memory(memory_url: str) -> None:
    agent = _agent(state_hooks(["notes"], "user-{scope}", memory_url, scope="user_id"))
    _run(agent, user_id="ann", notes=["tea"])
    _run(agent, user_id="bob", notes=["coffee"])
    assert Memory("user-ann", url=memory_url).get("state:ann:notes") == ["tea"]
    assert Memory("user-bob", url=memory_url).get("state:bob:notes") == ["coffee"]
    with pytest.raises(ValueError, match="scope="):
        state_hooks(["notes"], "user-{scope}", memory_url)

    # the pattern Memory(f"user-{user_id}"), handed to the hooks
    mine = Memory("user-cy", url=memory_url)
    _run(_agent(state_hooks(["notes"], memory=mine)), notes=["water"])
    assert mine.get("state:notes") == ["water"]
    again = _run(_agent(state_hooks(["notes"], memory=mine)))
    assert again["notes"] == ["water"]

    hook = LoadState(["notes"], "user-{scope}", memory_url, "user_id")
    hook = LoadState.from_dict(hook.to_dict())
    assert isinstance(hook, LoadState) and hook.namespace == "user-{scope}"
    assert hook.scope == "user_id" and hook.url == memory_url
    saved = SaveState.from_dict(SaveState(["notes"], memory=mine).to_dict())
    assert saved.namespace == "user-cy"


def _url_kept(memory_url: str) -> str | None:
    """The URL a passed Memory serialises with: an in-process store has none."""
    return None if memory_url.startswith("memory://") else memory_url


def test_memory_is_accepted_everywhere_and_serialises_as_namespace_and_url(
    memory_url: str,
) -> None:
    memory = Memory("hs-given", url=memory_url)
    pipeline = Pipeline()
    pipeline.add_component("write", MemoryWriter(memory=memory))
    pipeline.add_component("read", MemoryReader(memory=memory))
    out = pipeline.run({"write": {"key": "prefs", "value": "brief"}, "read": {"key": "prefs"}})
    assert out["write"]["version"] > 0 and memory.get("prefs") == "brief"
    dumped = pipeline.to_dict()["components"]
    for name in ("write", "read"):
        assert dumped[name]["init_parameters"] == {
            "namespace": "hs-given",
            "url": _url_kept(memory_url),
        }

    store = BotwireChatMessageStore(memory=memory, last_k=None)
    store.write_messages("c", [ChatMessage.from_user("kept")])
    assert memory.count("chat:") > 0
    data = store.to_dict()["init_parameters"]
    assert (data["namespace"], data["url"]) == ("hs-given", _url_kept(memory_url))
    # a URL given beside the memory is the one written
    named = BotwireChatMessageStore(memory=memory, url=memory_url).to_dict()["init_parameters"]
    assert named["url"] == memory_url
    restored = BotwireChatMessageStore.from_dict(
        {**store.to_dict(), "init_parameters": {**data, "url": memory_url}}
    )
    assert [m.text for m in restored.retrieve_messages("c")] == ["kept"]

    tools = MemoryToolset(memory=memory)
    remember = ChatMessage.from_assistant(
        tool_calls=[ToolCall("remember", {"key": "user:tea", "value": "green"}, id="t1")]
    )
    agent = Agent(chat_generator=MockChatGenerator(responses=[remember, "Noted."]), tools=tools)
    agent.warm_up()
    agent.run([ChatMessage.from_user("I like green tea")])
    assert memory.get("user:tea") == "green"
    assert tools.to_dict()["data"] == {"namespace": "hs-given", "url": _url_kept(memory_url)}
