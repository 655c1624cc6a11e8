"""The AutoGen adapter through AgentChat's AssistantAgent and ChatCompletionCache, offline."""

from __future__ import annotations

import asyncio

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import MemoryQueryEvent
from autogen_core import Image
from autogen_core.memory import MemoryContent, MemoryMimeType
from autogen_core.model_context import BufferedChatCompletionContext
from autogen_core.models import UserMessage
from autogen_ext.models.cache import ChatCompletionCache
from autogen_ext.models.replay import ReplayChatCompletionClient

from botwire.integrations.autogen import BotwireCacheStore, BotwireMemory


def test_an_assistant_agent_uses_the_memory(memory_url: str) -> None:
    async def run() -> None:
        memory = BotwireMemory("user-42", url=memory_url)
        await memory.add(MemoryContent(content="The user likes green tea", mime_type="text/plain"))
        client = ReplayChatCompletionClient(["You like green tea."])
        agent = AssistantAgent("assistant", model_client=client, memory=[memory])
        result = await agent.run(task="What do I like?")
        events = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
        assert events and events[0].content[0].content == "The user likes green tea"
        assert result.messages[-1].content == "You like green tea."  # type: ignore[union-attr]
        # A new memory object (as in a new process) on the same name sees the same entries.
        again = BotwireMemory("user-42", url=memory_url)
        assert [e.content for e in (await again.query("")).results] == ["The user likes green tea"]
        await memory.close()
        await again.close()

    asyncio.run(run())


def test_add_query_update_context_clear(memory_url: str) -> None:
    async def run() -> None:
        memory = BotwireMemory("notes", url=memory_url, k=2)
        png = Image.from_base64(
            "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg=="
        )
        contents = [
            MemoryContent(content="Prefers metric units", mime_type=MemoryMimeType.TEXT),
            MemoryContent(content={"tz": "UTC"}, mime_type=MemoryMimeType.JSON, metadata={"s": 1}),
            MemoryContent(content=b"\x00\xff", mime_type=MemoryMimeType.BINARY),
            MemoryContent(content=png, mime_type=MemoryMimeType.IMAGE),
        ]
        for content in contents:
            await memory.add(content)
        everything = (await memory.query("")).results
        assert [e.content for e in everything[:3]] == [
            "Prefers metric units",
            {"tz": "UTC"},
            b"\x00\xff",
        ]
        assert isinstance(everything[3].content, Image) and everything[1].metadata == {"s": 1}
        assert [e.content for e in (await memory.query("METRIC units")).results] == [
            "Prefers metric units"
        ]
        context = BufferedChatCompletionContext(buffer_size=10)
        await context.add_message(UserMessage(content="hi", source="user"))
        updated = await memory.update_context(context)
        assert len(updated.memories.results) == 2  # k=2: the newest two
        messages = await context.get_messages()
        assert "Relevant memory content" in str(messages[-1].content)
        await memory.clear()
        assert (await memory.query("")).results == []
        await memory.close()

    asyncio.run(run())


def test_processes_share_one_memory_and_appends_are_atomic(memory_url: str) -> None:
    async def run() -> None:
        memories = [BotwireMemory("shared", url=memory_url) for _ in range(4)]
        await asyncio.gather(
            *(
                m.add(MemoryContent(content=f"{i}-{n}", mime_type="text/plain"))
                for i, m in enumerate(memories)
                for n in range(10)
            )
        )
        entries = (await memories[0].query("")).results
        assert sorted(str(e.content) for e in entries) == sorted(
            f"{i}-{n}" for i in range(4) for n in range(10)
        )
        for m in memories:
            await m.close()

    asyncio.run(run())


def test_memory_component_round_trip(memory_url: str) -> None:
    memory = BotwireMemory("user-7", namespace="ag", url=memory_url, k=5)
    config = memory.dump_component()
    assert config.provider == "botwire.integrations.autogen.BotwireMemory"
    loaded = BotwireMemory.load_component(config)
    assert isinstance(loaded, BotwireMemory) and loaded.dump_component() == config
    store = BotwireCacheStore("ag-cache", url=memory_url, ttl=60)
    assert BotwireCacheStore.load_component(store.dump_component()).dump_component() == (
        store.dump_component()
    )


def test_chat_completion_cache(memory_url: str) -> None:
    async def run() -> None:
        replay = ReplayChatCompletionClient(["first answer", "second answer"])
        cached = ChatCompletionCache(replay, store=BotwireCacheStore(url=memory_url))
        question = [UserMessage(content="What is botwire?", source="user")]
        first = await cached.create(question)
        second = await cached.create(question)
        assert first.content == "first answer"
        assert (second.content, second.cached) == ("first answer", True)
        # Another cache object on the same store (a restart) hits too.
        other = ChatCompletionCache(
            ReplayChatCompletionClient(["never"]), store=BotwireCacheStore(url=memory_url)
        )
        third = await other.create(question)
        assert (third.content, third.cached) == ("first answer", True)
        different = await cached.create([UserMessage(content="Other?", source="user")])
        assert different.content == "second answer"  # the replay was asked only once before

    asyncio.run(run())
