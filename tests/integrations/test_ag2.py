"""The AG2 adapter: the KnowledgeStore protocol against AG2's own in-memory store, and both
adapters inside an Agent driven by ag2.testing.TestConfig (one config per turn)."""

from __future__ import annotations

import asyncio
import uuid

from ag2 import Agent
from ag2.knowledge.base import KnowledgeStore, NoopChangeSubscription
from ag2.knowledge.config import KnowledgeConfig
from ag2.knowledge.memory import MemoryKnowledgeStore
from ag2.stream import MemoryStream
from ag2.testing import TestConfig

from botwire.integrations.ag2 import BotwireKnowledgeStore, BotwireStorage


async def _exercise(store: KnowledgeStore) -> list[object]:
    """The same calls on any KnowledgeStore; what each returned."""
    out: list[object] = []
    await store.write("/notes/a.txt", "alpha")
    await store.write("notes//b.txt/", "beta")  # normalised to /notes/b.txt
    await store.write("/notes/deep/c.md", "gamma")
    await store.write("/top.txt", "top")
    out += [await store.read("/notes/a.txt"), await store.read("/notes/b.txt")]
    out += [await store.read("/missing"), await store.list("/"), await store.list("/notes/")]
    out += [await store.exists("/notes"), await store.exists("/notes/deep/c.md")]
    out += [await store.exists("/nope")]
    out += [
        await store.append("/log/x.jsonl", "one\n"),
        await store.append("/log/x.jsonl", "twø\n"),
    ]
    out += [await store.read_range("/log/x.jsonl", 4), await store.read_range("/log/x.jsonl", 0, 3)]
    out += [await store.read_range("/missing", 0)]
    await store.delete("/notes")
    out += [await store.list("/"), await store.exists("/notes/a.txt")]
    await store.delete("/never")
    return out


def test_it_behaves_like_ag2s_own_store(memory_url: str) -> None:
    async def run() -> None:
        ours = BotwireKnowledgeStore(url=memory_url)
        assert isinstance(ours, KnowledgeStore)
        assert await _exercise(ours) == await _exercise(MemoryKnowledgeStore())
        subscription = await ours.on_change("/", lambda path: asyncio.sleep(0))  # type: ignore[arg-type,return-value]
        assert isinstance(subscription, NoopChangeSubscription)
        await ours.close()

    asyncio.run(run())


def test_concurrent_appends_get_distinct_offsets(memory_url: str) -> None:
    async def run() -> None:
        stores = [BotwireKnowledgeStore(url=memory_url) for _ in range(4)]
        offsets = await asyncio.gather(
            *(
                s.append("/log/shared.jsonl", f"{i}-{n}\n")
                for i, s in enumerate(stores)
                for n in range(5)
            )
        )
        text = await stores[0].read("/log/shared.jsonl")
        assert text is not None and sorted(text.splitlines()) == sorted(
            f"{i}-{n}" for i in range(4) for n in range(5)
        )
        assert len(set(offsets)) == 20  # every append got its own place
        for offset in offsets:  # and each offset starts one whole line
            assert (await stores[0].read_range("/log/shared.jsonl", offset)).split("\n")[0]
        for s in stores:
            await s.close()

    asyncio.run(run())


def test_an_agent_keeps_its_knowledge_and_history_in_botwire(memory_url: str) -> None:
    async def run() -> None:
        knowledge = BotwireKnowledgeStore(url=memory_url)
        storage = BotwireStorage(url=memory_url)
        conversation = uuid.uuid4()
        agent = Agent("helper", knowledge=KnowledgeConfig(store=knowledge))

        stream = MemoryStream(storage=storage, id=conversation)
        async with agent.run(
            "I like green tea", stream=stream, config=TestConfig("Noted.")
        ) as turn:
            assert (await turn.result()).body == "Noted."
        # A new stream object on the same id and storage (as after a restart) continues it.
        again = MemoryStream(storage=BotwireStorage(url=memory_url), id=conversation)
        async with agent.run("What do I like?", stream=again, config=TestConfig("Tea.")) as turn:
            assert (await turn.result()).body == "Tea."
        events = list(await again.history.get_events())
        kinds = [type(e).__name__ for e in events]
        assert kinds == ["ModelRequest", "ModelResponse", "ModelRequest", "ModelResponse"]
        assert events[0].parts[0].content == "I like green tea"  # type: ignore[attr-defined]
        # The agent wrote its skill files and the stream's log into the knowledge store.
        assert await knowledge.exists("/SKILL.md")
        assert f"{conversation}.jsonl" in await knowledge.list("/log/")
        await storage.drop_history(conversation)
        assert list(await storage.get_history(conversation)) == []
        await knowledge.close()
        await storage.close()

    asyncio.run(run())
