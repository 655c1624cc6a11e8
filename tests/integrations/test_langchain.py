"""The LangChain adapter through LangChain's own code paths, offline (fake chat models)."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path

import pytest
from langchain_core.globals import set_llm_cache
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage, ToolMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from botwire import Memory, ValueNotSerializable
from botwire.integrations.langchain import (
    BotwireChatMessageHistory,
    BotwireLLMCache,
    BotwireStore,
)
from botwire.stores.memory import MemoryStore

from ..conftest import FakeClock
from .conftest import MemoryFactory

# langchain-core 1.7 deprecates RunnableWithMessageHistory (for LangGraph persistence, which
# botwire.integrations.langgraph serves); it still works, and the issue asks for it.
pytestmark = pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated")


def _model(*replies: str) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter([AIMessage(content=r) for r in replies]))


def _chain(memory: Memory, model: GenericFakeChatModel) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    return RunnableWithMessageHistory(
        prompt | model,
        lambda session_id: BotwireChatMessageHistory(session_id, memory),
        input_messages_key="question",
        history_messages_key="history",
    )


def test_runnable_with_message_history(make_memory: MemoryFactory) -> None:
    memory = make_memory("langchain")
    chain = _chain(memory, _model("Hi Ann.", "Your name is Ann."))
    config = {"configurable": {"session_id": "s-1"}}
    assert chain.invoke({"question": "I am Ann."}, config).content == "Hi Ann."
    # A new chain (as in a new process) reads the conversation back.
    chain = _chain(make_memory("langchain"), _model("Your name is Ann."))
    assert chain.invoke({"question": "Who am I?"}, config).content == "Your name is Ann."
    history = BotwireChatMessageHistory("s-1", memory).messages
    assert [type(m).__name__ for m in history] == [
        "HumanMessage",
        "AIMessage",
        "HumanMessage",
        "AIMessage",
    ]
    assert history[0].content == "I am Ann." and history[-1].content == "Your name is Ann."
    assert BotwireChatMessageHistory("other", memory).messages == []


def test_runnable_with_message_history_async(make_memory: MemoryFactory) -> None:
    chain = _chain(make_memory("langchain"), _model("one", "two"))
    config = {"configurable": {"session_id": "s-async"}}

    async def run() -> None:
        assert (await chain.ainvoke({"question": "a"}, config)).content == "one"
        assert (await chain.ainvoke({"question": "b"}, config)).content == "two"
        history = BotwireChatMessageHistory("s-async", make_memory("langchain"))
        assert [m.content for m in await history.aget_messages()] == ["a", "one", "b", "two"]
        await history.aclear()
        assert await history.aget_messages() == []

    asyncio.run(run())


def test_history_round_trips_every_message_kind_and_trims(make_memory: MemoryFactory) -> None:
    history = BotwireChatMessageHistory("s", make_memory("langchain"), max_messages=3)
    messages = [
        SystemMessage("be brief"),
        HumanMessage("weather?", additional_kwargs={"lang": "en"}),
        AIMessage("", tool_calls=[{"name": "weather", "args": {"city": "Oslo"}, "id": "c1"}]),
        ToolMessage("rain", tool_call_id="c1"),
    ]
    history.add_messages(messages)
    assert history.messages == messages[-3:]
    history.clear()
    assert history.messages == []


HISTORY_WORKER = """
import sys
from langchain_core.messages import HumanMessage
from botwire import Memory
from botwire.integrations.langchain import BotwireChatMessageHistory

history = BotwireChatMessageHistory("shared", Memory("langchain", url=sys.argv[1]))
for i in range(50):
    history.add_message(HumanMessage(f"{sys.argv[2]}-{i}"))
"""


def test_processes_appending_to_one_history_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/history.db"
    workers = [
        subprocess.Popen([sys.executable, "-c", HISTORY_WORKER, url, f"w{i}"]) for i in range(3)
    ]
    assert all(w.wait(timeout=120) == 0 for w in workers)
    history = BotwireChatMessageHistory("shared", Memory("langchain", url=url))
    contents = [m.content for m in history.messages]
    assert len(contents) == 150
    for i in range(3):  # each writer's messages, all there and in its order
        assert [c for c in contents if c.startswith(f"w{i}-")] == [f"w{i}-{n}" for n in range(50)]


def test_history_ttl_restarts_on_each_write(clock: FakeClock) -> None:
    memory = Memory("langchain", url=MemoryStore(clock=clock))
    history = BotwireChatMessageHistory("s", memory, ttl=60)
    history.add_message(HumanMessage("a"))
    clock.advance(50)
    history.add_message(HumanMessage("b"))
    clock.advance(50)
    assert [m.content for m in history.messages] == ["a", "b"]
    clock.advance(11)
    assert history.messages == []


def test_key_value_store(make_memory: MemoryFactory) -> None:
    store = BotwireStore(make_memory("langchain-store"))
    store.mset([("doc:1", {"text": "a"}), ("doc:2", [1, 2]), ("other", "x")])
    assert store.mget(["doc:1", "missing", "doc:2"]) == [{"text": "a"}, None, [1, 2]]
    assert sorted(store.yield_keys(prefix="doc:")) == ["doc:1", "doc:2"]
    assert sorted(store.yield_keys()) == ["doc:1", "doc:2", "other"]
    store.mdelete(["doc:1", "missing"])
    assert store.mget(["doc:1"]) == [None]
    with pytest.raises(ValueNotSerializable):
        store.mset([("bytes", b"raw")])

    async def run() -> None:
        await store.amset([("k", 1)])
        assert await store.amget(["k", "doc:2"]) == [1, [1, 2]]
        assert sorted([k async for k in store.ayield_keys(prefix="k")]) == ["k"]
        await store.amdelete(["k"])
        assert await store.amget(["k"]) == [None]

    asyncio.run(run())


def test_llm_cache_serves_a_second_call_without_the_model(make_memory: MemoryFactory) -> None:
    cache = BotwireLLMCache(make_memory("langchain-llm-cache"))
    model = GenericFakeChatModel(messages=iter([AIMessage("first"), AIMessage("second")]))
    model.cache = cache
    assert model.invoke("hello").content == "first"
    assert model.invoke("hello").content == "first"  # from botwire: the model was not asked
    assert model.invoke("other").content == "second"
    again = GenericFakeChatModel(messages=iter([AIMessage("never used")]), cache=cache)
    assert again.invoke("hello").content == "first"  # same prompt and settings, new object
    cache.clear()
    assert cache.lookup("anything", "llm") is None

    async def run() -> None:
        model = GenericFakeChatModel(messages=iter([AIMessage("async")]), cache=cache)
        assert (await model.ainvoke("q")).content == "async"
        assert (await model.ainvoke("q")).content == "async"
        await cache.aclear()

    asyncio.run(run())


def test_llm_cache_as_the_global_cache(make_memory: MemoryFactory) -> None:
    set_llm_cache(BotwireLLMCache(make_memory("langchain-llm-cache")))
    try:
        model = GenericFakeChatModel(messages=iter([AIMessage("cached"), AIMessage("fresh")]))
        assert model.invoke("q").content == "cached"
        assert model.invoke("q").content == "cached"
    finally:
        set_llm_cache(None)


def test_llm_cache_skips_what_json_cannot_hold(caplog: pytest.LogCaptureFixture) -> None:
    from langchain_core.outputs import Generation

    cache = BotwireLLMCache(Memory("c", url="memory://"))
    cache.update("p", "llm", [Generation(text="t", generation_info={"when": object()})])
    assert cache.lookup("p", "llm") is None and "not caching" in caplog.text
    cache.update("p", "llm", [Generation(text="t", generation_info={"n": 1})])
    assert cache.lookup("p", "llm") == [Generation(text="t", generation_info={"n": 1})]
