"""The AutoGen adapter through AgentChat's AssistantAgent and ChatCompletionCache, offline."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import MemoryQueryEvent
from autogen_core import Image
from autogen_core.memory import ListMemory, MemoryContent, MemoryMimeType
from autogen_core.model_context import BufferedChatCompletionContext
from autogen_core.models import UserMessage
from autogen_ext.models.cache import ChatCompletionCache
from autogen_ext.models.replay import ReplayChatCompletionClient

from botwire import Forbidden, Memory
from botwire.integrations.autogen import BotwireCacheStore, BotwireMemory

from ..loopback import loopback


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
        newest = [e.content for e in (await memory.query("")).results]
        assert newest[0] == b"\x00\xff" and isinstance(newest[1], Image)
        everything = (await memory.query("", k=None)).results  # (k=2: the newest two)
        assert [e.content for e in everything[:3]] == [
            "Prefers metric units",
            {"tz": "UTC"},
            b"\x00\xff",
        ]
        assert isinstance(everything[3].content, Image) and everything[1].metadata == {"s": 1}
        best = (await memory.query("METRIC units", k=1)).results
        assert [e.content for e in best] == ["Prefers metric units"]
        assert best[0].metadata is not None and best[0].metadata["score"] > 0
        context = BufferedChatCompletionContext(buffer_size=10)
        await context.add_message(UserMessage(content="which tz?", source="user"))
        updated = await memory.update_context(context)
        assert updated.memories.results[0].content == {"tz": "UTC"}  # k=2: the best 2
        assert len(updated.memories.results) == 2
        messages = await context.get_messages()
        assert str(messages[-1].content).startswith("\nRelevant memory content:\n1. {'tz'")
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


# -- issue 13: query ranks by relevance instead of demanding every word -----------------------

FACTS = [
    "The user likes green tea",
    "The user drinks coffee every morning",
    "Meeting notes: budget approved",
]


def text(content: str) -> MemoryContent:
    return MemoryContent(content=content, mime_type=MemoryMimeType.TEXT)


def test_a_question_finds_the_entries_it_is_about(memory_url: str) -> None:
    async def run() -> None:
        memory = BotwireMemory("user-42", url=memory_url)
        for fact in FACTS:
            await memory.add(text(fact))
        # Round 1 kept only entries holding every word of the query: nothing here.
        found = (await memory.query("What does the user drink?")).results
        assert [e.content for e in found] == [FACTS[1], FACTS[0], FACTS[2]]  # all, best first
        assert [e.metadata["score"] > 0 for e in found] == [True, True, False]  # type: ignore[index]
        # An agent given the memory with k=1 is told the one entry its task is about.
        focused = BotwireMemory("user-42", url=memory_url, k=1)
        client = ReplayChatCompletionClient(["Coffee."])
        agent = AssistantAgent("assistant", model_client=client, memory=[focused])
        result = await agent.run(task="What does the user drink?")
        (event,) = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
        assert [c.content for c in event.content] == [FACTS[1]]
        await memory.close()
        await focused.close()

    asyncio.run(run())


def test_side_by_side_with_list_memory(tmp_path: Path) -> None:
    async def run() -> None:
        ours = BotwireMemory("prefs", url=f"sqlite:///{tmp_path}/m.db")
        reference = ListMemory("prefs")
        for memory in (ours, reference):
            for fact in FACTS:
                await memory.add(text(fact))
            await memory.add(MemoryContent(content={"tz": "UTC"}, mime_type="application/json"))
        assert (await ours.query("")).results == (await reference.query("")).results
        # A query: ListMemory ignores it and returns everything; botwire returns everything
        # too (no k, no score_threshold), ranked, each with its score in its metadata.
        question = "What does the user drink?"
        ranked = (await ours.query(question)).results
        everything = (await reference.query(question)).results
        assert sorted(str(e.content) for e in ranked) == sorted(str(e.content) for e in everything)
        assert [e.metadata and "score" in e.metadata for e in ranked] == [True] * 4
        # update_context: the same system message, the same memories.
        contexts = [BufferedChatCompletionContext(buffer_size=5) for _ in range(2)]
        results = []
        for memory, context in zip((ours, reference), contexts, strict=True):
            await context.add_message(UserMessage(content=question, source="user"))
            results.append(await memory.update_context(context))
        assert results[0] == results[1]
        assert await contexts[0].get_messages() == await contexts[1].get_messages()
        for memory in (ours, reference):
            await memory.clear()
        assert (await ours.query("")).results == (await reference.query("")).results == []
        await ours.close()

    asyncio.run(run())


def test_k_score_threshold_and_an_embedding_function(tmp_path: Path) -> None:
    def embed(texts: list[str]) -> list[list[float]]:
        return [[float("tea" in t.lower()), float("coffee" in t.lower()), 1.0] for t in texts]

    async def aembed(texts: list[str]) -> list[list[float]]:
        return embed(texts)

    async def run() -> None:
        url = f"sqlite:///{tmp_path}/m.db"
        lexical = BotwireMemory("facts", url=url, score_threshold=0.05)
        for fact in FACTS:
            await lexical.add(text(fact))
        found = (await lexical.query("user drink")).results
        assert [e.content for e in found] == FACTS[1::-1]  # the third scores 0: dropped
        assert [e.content for e in (await lexical.query("user drink", k=1)).results] == FACTS[1:2]
        assert (await lexical.query("user drink", score_threshold=0.99)).results == []
        assert [e.content for e in (await lexical.query("", k=2)).results] == FACTS[1:]
        # With embed: cosine similarity on Chroma's 0..1 scale; entries added before embed was
        # given are embedded when queried, later ones when added.
        for make in (embed, aembed):
            for fact in FACTS:
                await BotwireMemory(make.__name__, url=url).add(text(fact))
            semantic = BotwireMemory(make.__name__, url=url, embed=make, k=2)
            await semantic.add(text("Tea time is at five"))
            found = (await semantic.query("a cup of tea?")).results
            assert {e.content for e in found} == {FACTS[0], "Tea time is at five"}
            assert all(e.metadata and e.metadata["score"] > 0.9 for e in found)
        with pytest.raises(ValueError, match="cannot be serialised"):
            semantic.dump_component()

    asyncio.run(run())


def test_a_round_1_memory_is_read_and_moved_into_entries(tmp_path: Path) -> None:
    async def run() -> None:
        url = f"sqlite:///{tmp_path}/m.db"
        old = Memory("autogen", url=url)
        entry = {"content": FACTS[0], "mime_type": "text/plain", "metadata": None}
        old.append("memory:user-1", entry, entry | {"content": FACTS[1]})  # as round 1 wrote
        memory = BotwireMemory("user-1", url=url)
        assert [e.content for e in (await memory.query("")).results] == FACTS[:2]
        await memory.add(text(FACTS[2]))
        assert [e.content for e in (await memory.query("")).results] == FACTS
        assert not old.exists("memory:user-1") and old.count("mem:user-1/m/") == 3
        old.close()
        await memory.close()

    asyncio.run(run())


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[str]:
    """The real server with every default limit (1,000 writes a day, 1 MiB a value...)."""
    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "server.db")))
    url, shutdown = loopback().serve(app)
    yield url
    shutdown()


def test_500_entries_pass_1_mib_on_a_default_server(default_server: str) -> None:
    async def run() -> None:
        memory = BotwireMemory("journal", url=default_server, k=3)
        filler = "lorem ipsum " * 200  # 2.4 KB an entry: 1.2 MB in all
        for n in range(500):
            await memory.add(text(f"entry {n} {filler}"))
        again = BotwireMemory("journal", url=default_server, k=3)
        assert len((await again.query("", k=None)).results) == 500
        assert Memory("autogen", url=default_server).stats().writes_today <= 501  # one an add
        best = (await again.query("entry 417")).results
        assert best[0].content.startswith("entry 417 ")  # type: ignore[union-attr]
        agent = AssistantAgent(
            "assistant", model_client=ReplayChatCompletionClient(["Ok."]), memory=[again]
        )
        result = await agent.run(task="What is in entry 250?")
        (event,) = [m for m in result.messages if isinstance(m, MemoryQueryEvent)]
        assert event.content[0].content.startswith("entry 250 ")  # type: ignore[union-attr]
        await memory.close()
        await again.close()

    asyncio.run(run())


def test_each_memory_in_its_own_namespace_and_a_token_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)

    async def add(name: str) -> None:
        memory = BotwireMemory(name, namespace="autogen-{scope}", url=url)
        await memory.add(text(f"a fact about {name}"))
        await memory.close()

    try:
        monkeypatch.setenv("BOTWIRE_API_KEY", app.state.tokens.create(["autogen-*"])[0])
        for name in ("alice", "bob"):
            asyncio.run(add(name))
            assert Memory(f"autogen-{name}", url=url, cache=False).count("mem:") > 0
        monkeypatch.setenv("BOTWIRE_API_KEY", app.state.tokens.create(["autogen-alice"])[0])
        asyncio.run(add("alice"))
        with pytest.raises(Forbidden):
            asyncio.run(add("bob"))
        memory = BotwireMemory("alice", namespace="autogen-{scope}", url=url)
        assert BotwireMemory.load_component(memory.dump_component()).dump_component() == (
            memory.dump_component()
        )
        with pytest.raises(ValueError, match="callable namespace"):
            BotwireMemory("x", namespace=lambda scope: f"autogen-{scope}").dump_component()
    finally:
        shutdown()
