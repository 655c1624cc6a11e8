"""The Haystack adapter through Haystack's own components, pipelines and Agent, offline."""

from __future__ import annotations

from typing import Any

import pytest
from haystack import Pipeline
from haystack.components.agents import Agent
from haystack.components.generators.chat import MockChatGenerator
from haystack.dataclasses import ChatMessage, ToolCall
from haystack_experimental.chat_message_stores.in_memory import InMemoryChatMessageStore
from haystack_experimental.components.retrievers import ChatMessageRetriever
from haystack_experimental.components.writers import ChatMessageWriter

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


@pytest.fixture(autouse=True)
def no_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    """Haystack sends usage events from ``Pipeline.run``; tests run offline."""
    monkeypatch.setattr("haystack.telemetry._telemetry.telemetry", None)


def _conversation() -> list[ChatMessage]:
    return [
        ChatMessage.from_system("be brief"),
        ChatMessage.from_user("weather in Oslo?"),
        ChatMessage.from_assistant(tool_calls=[ToolCall("weather", {"city": "Oslo"}, id="c1")]),
        ChatMessage.from_tool("rain", origin=ToolCall("weather", {"city": "Oslo"}, id="c1")),
        ChatMessage.from_assistant("Rain."),
        ChatMessage.from_user("and tomorrow?"),
        ChatMessage.from_assistant("Sun."),
    ]


def test_the_store_behaves_like_haystacks_own(memory_url: str) -> None:
    ours = BotwireChatMessageStore(url=memory_url)
    theirs = InMemoryChatMessageStore()
    theirs.delete_all_messages()
    for store in (ours, theirs):
        assert store.write_messages("c", _conversation()) == 6  # the system message skipped
        assert store.count_messages("c") == 6
    for last_k in (None, 0, 1, 2, 10):
        mine = ours.retrieve_messages("c", last_k=last_k)
        reference = theirs.retrieve_messages("c", last_k=last_k)
        assert [m.to_dict() for m in mine] == [m.to_dict() for m in reference], last_k
    # An agent writes the retrieved history back, plus a new turn: only the new turn is added.
    again = [*ours.retrieve_messages("c", last_k=None), ChatMessage.from_user("thanks")]
    assert ours.write_messages("c", again) == 1 and ours.count_messages("c") == 7
    with pytest.raises(ValueError, match="last_k"):
        ours.retrieve_messages("c", last_k=-1)
    with pytest.raises(ValueError, match="list of ChatMessages"):
        ours.write_messages("c", ["not a message"])  # type: ignore[list-item]
    ours.delete_messages("c")
    assert ours.count_messages("c") == 0
    ours.write_messages("a", [ChatMessage.from_user("x")])
    ours.write_messages("b", [ChatMessage.from_user("y")])
    ours.delete_all_messages()
    assert ours.count_messages("a") == ours.count_messages("b") == 0
    theirs.delete_all_messages()


def test_trimming_keeps_a_tool_call_with_its_result(memory_url: str) -> None:
    three = BotwireChatMessageStore(namespace="three", url=memory_url, max_messages=3)
    three.write_messages("c", _conversation()[:5])  # user, call, result, answer
    kept = three.retrieve_messages("c", last_k=None)
    assert [m.role.value for m in kept] == ["assistant", "tool", "assistant"]  # call kept
    two = BotwireChatMessageStore(namespace="two", url=memory_url, max_messages=2)
    two.write_messages("c", _conversation()[:5])
    kept = two.retrieve_messages("c", last_k=None)
    assert [m.text for m in kept] == ["Rain."]  # the result went with its call


def test_chat_history_in_a_pipeline_and_serialisation(memory_url: str) -> None:
    store = BotwireChatMessageStore(url=memory_url, last_k=5)
    pipeline = Pipeline()
    pipeline.add_component("writer", ChatMessageWriter(store))
    pipeline.add_component("retriever", ChatMessageRetriever(store))
    pipeline.add_component("generator", MockChatGenerator(responses=["Hello Ann."]))
    pipeline.connect("retriever.messages", "generator.messages")
    result = pipeline.run(
        {
            "writer": {"chat_history_id": "u1", "messages": [ChatMessage.from_user("I am Ann")]},
            "retriever": {"chat_history_id": "u1"},
        },
        include_outputs_from={"writer"},
    )
    assert result["writer"]["messages_written"] == 1
    restored = Pipeline.loads(
        pipeline.dumps(), allowed_modules=["botwire"]
    )  # the store is rebuilt from namespace and URL
    history = restored.get_component("retriever").chat_message_store
    assert isinstance(history, BotwireChatMessageStore) and history.url == memory_url
    assert [m.text for m in history.retrieve_messages("u1")] == ["I am Ann"]


def test_reader_and_writer_components(memory_url: str) -> None:
    pipeline = Pipeline()
    pipeline.add_component("write", MemoryWriter(namespace="hs", url=memory_url))
    pipeline.add_component("read", MemoryReader(namespace="hs", url=memory_url))
    out = pipeline.run(
        {"write": {"key": "prefs", "value": {"tone": "brief"}}, "read": {"key": "x", "default": 1}}
    )
    assert out["write"]["version"] > 0
    restored = Pipeline.loads(pipeline.dumps(), allowed_modules=["botwire"])
    out = restored.run({"read": {"key": "prefs"}, "write": {"key": "n", "value": 1}})
    assert out["read"]["value"] == {"tone": "brief"}


def _agent(memory_url: str, reply: str, **kwargs: Any) -> Agent:
    return Agent(
        chat_generator=MockChatGenerator(responses=reply),
        state_schema={"user_id": {"type": str}, "notes": {"type": list}},
        hooks=state_hooks(["notes"], namespace="hs-agent", url=memory_url, scope="user_id"),
        **kwargs,
    )


def test_agent_hooks_load_state_before_and_save_it_after(memory_url: str) -> None:
    agent = _agent(memory_url, "ok")
    agent.warm_up()
    out = agent.run([ChatMessage.from_user("hi")], user_id="ann", notes=["likes tea"])
    assert out["notes"] == ["likes tea"]
    again = _agent(memory_url, "ok")  # a new Agent, as after a restart
    again.warm_up()
    out = again.run([ChatMessage.from_user("hi")], user_id="ann")
    assert out["notes"] == ["likes tea"]  # loaded by the before_run hook
    out = again.run([ChatMessage.from_user("hi")], user_id="bob")
    assert not out.get("notes")  # another user's state is separate
    hook = LoadState.from_dict(LoadState(["notes"], "hs-agent", memory_url, "user_id").to_dict())
    assert isinstance(hook, LoadState) and hook.scope == "user_id"
    assert isinstance(SaveState.from_dict(SaveState(["notes"]).to_dict()), SaveState)


def test_memory_tools_in_an_agent(memory_url: str) -> None:
    tools = MemoryToolset(namespace="hs-tools", url=memory_url)
    remember = ChatMessage.from_assistant(
        tool_calls=[ToolCall("remember", {"key": "user:tea", "value": "green"}, id="t1")]
    )
    agent = Agent(
        chat_generator=MockChatGenerator(responses=[remember, "Noted."]),
        tools=tools,
    )
    agent.warm_up()
    out = agent.run([ChatMessage.from_user("I like green tea")])
    assert out["last_message"].text == "Noted."
    assert Memory("hs-tools", url=memory_url).get("user:tea") == "green"
    recall = ChatMessage.from_assistant(
        tool_calls=[ToolCall("recall", {"key": "user:tea"}, id="t2")]
    )
    agent = Agent(
        chat_generator=MockChatGenerator(responses=[recall, "You like green tea."]),
        tools=MemoryToolset.from_dict(tools.to_dict()),
    )
    agent.warm_up()
    out = agent.run([ChatMessage.from_user("What tea do I like?")])
    assert any(
        "green" in (m.tool_call_result.result if m.tool_call_result else "")
        for m in out["messages"]
    )
    assert [t.name for t in tools] == ["remember", "recall", "forget", "list"]
    listed = tools.tools[3].invoke(prefix="user:")
    assert listed == ["user:tea"]
    assert tools.tools[2].invoke(key="user:tea") == "forgot 'user:tea'"
