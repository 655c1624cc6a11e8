"""The AG2 adapter: the KnowledgeStore protocol against AG2's own in-memory store, the stream
Storage against AG2's own MemoryStorage, and both inside an Agent driven by ag2.testing.TestConfig
(one config per turn)."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ag2 import Agent
from ag2.events import ToolCallEvent, ToolErrorEvent, ToolResultEvent, ToolResultsEvent
from ag2.events._serialization import serialize_value
from ag2.history import MemoryStorage, Storage
from ag2.knowledge.base import KnowledgeStore, NoopChangeSubscription
from ag2.knowledge.config import KnowledgeConfig
from ag2.knowledge.memory import MemoryKnowledgeStore
from ag2.stream import MemoryStream
from ag2.testing import TestConfig

from botwire import Forbidden, Memory, QuotaExceeded, ValueNotSerializable
from botwire.integrations.ag2 import BotwireKnowledgeStore, BotwireStorage
from botwire.integrations.files import Files
from botwire.ops import Put

from ..loopback import loopback


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


LONG = "".join(f'line {n}: ø€𝄞 \x00\t"quoted"\n' for n in range(120_000))  # 3.4 MB of UTF-8


def test_a_file_past_one_value_behaves_like_ag2s_own_store(memory_url: str) -> None:
    """Round 1 kept a file as one value: refused past a server's 1 MiB (max_value_bytes)."""

    async def run(store: KnowledgeStore) -> list[object]:
        await store.write("/docs/big.txt", LONG)
        out: list[object] = [await store.read("/docs/big.txt") == LONG]
        out += [await store.append("/docs/big.txt", "tail\n"), await store.list("/")]
        out += [await store.read_range("/docs/big.txt", len(LONG.encode()) - 5)]
        await store.write("/docs/big.txt", LONG[::-1])  # a second long version
        out += [await store.read("/docs/big.txt") == LONG[::-1]]
        await store.write("/docs/big.txt", "short again")
        out += [await store.read("/docs/big.txt"), await store.list("/docs/")]
        await store.write("/docs/deep/big.txt", LONG)
        await store.delete("/docs")
        out += [await store.list("/"), await store.exists("/docs/deep/big.txt")]
        return out

    async def both() -> None:
        ours = BotwireKnowledgeStore(url=memory_url)
        assert await run(ours) == await run(MemoryKnowledgeStore())
        assert await ours.memory.count() == 0  # no piece of any version is left behind
        await ours.close()

    asyncio.run(both())


def test_readers_see_a_whole_long_file_never_a_mix(memory_url: str) -> None:
    texts = [LONG, LONG.replace("line", "LINE")]

    async def run() -> None:
        writers = [BotwireKnowledgeStore(url=memory_url) for _ in range(2)]
        reader = BotwireKnowledgeStore(url=memory_url)
        await writers[0].write("/f.txt", texts[0])

        async def write(n: int) -> None:
            for _ in range(3):
                await writers[n].write("/f.txt", texts[n])

        async def read() -> list[str | None]:
            return [await reader.read("/f.txt") for _ in range(6)]

        *_, seen = await asyncio.gather(write(0), write(1), read())
        assert all(text in texts for text in seen)
        assert await reader.read("/f.txt") in texts
        for store in [*writers, reader]:
            await store.close()

    asyncio.run(run())


def test_a_writer_that_dies_before_its_head_leaves_the_old_file_and_expiring_pieces(
    memory_url: str,
) -> None:
    async def run() -> None:
        store = BotwireKnowledgeStore(url=memory_url)
        await store.write("/f.txt", "before")
        calls = 0

        class DiesOnTheHead:  # an AsyncMemory killed between the pieces and the head
            async def batch(self, ops: Any) -> list[Any]:
                nonlocal calls
                calls += 1
                if any(isinstance(op, Put) and op.key == "/f.txt" for op in ops):
                    raise KeyboardInterrupt
                return await store.memory.batch(ops)

        with pytest.raises(KeyboardInterrupt):
            await Files(DiesOnTheHead()).write("/f.txt", LONG)  # type: ignore[arg-type]
        assert calls > 2  # the pieces went out in several requests first
        assert await store.read("/f.txt") == "before"
        assert await store.list("/") == ["f.txt"]
        pieces = await store.memory.list_keys("#")
        ttls = [await store.memory.ttl(key) for key in pieces]
        assert pieces and all(ttl is not None and 0 < ttl <= 3600 for ttl in ttls)
        await store.write("/f.txt", LONG)  # and the next write works
        assert await store.read("/f.txt") == LONG
        await store.close()

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


# -- issue 13: events AG2's serialiser leaves non-JSON are stored exactly, never dropped ------


def checked_at() -> dict[str, Any]:
    """A tool result JSON cannot hold as it is (AG2 passes these through its serialiser)."""
    return {
        "at": datetime(2024, 5, 1, 12, 30, tzinfo=timezone.utc),
        "price": Decimal("19.90"),
        "tags": {"fresh"},
        "ratio": float("inf"),
        "big": 2**80,
    }


async def _turn_with_a_tool(storage: Storage, stream_id: uuid.UUID) -> list[Any]:
    """One real Agent turn whose tool returns ``checked_at()``; the stream's events after it."""
    agent = Agent("clerk", tools=[checked_at])
    stream = MemoryStream(storage=storage, id=stream_id)
    call = ToolCallEvent(name="checked_at", id="call-1")
    async with agent.run("When?", stream=stream, config=TestConfig(call, "At noon.")) as turn:
        assert (await turn.result()).body == "At noon."
    return list(await stream.history.get_events())


def test_a_tool_result_that_is_not_json_is_stored_exactly(memory_url: str) -> None:
    async def run() -> None:
        conversation = uuid.uuid4()
        reference = await _turn_with_a_tool(MemoryStorage(), conversation)
        storage = BotwireStorage(url=memory_url)
        events = await _turn_with_a_tool(storage, conversation)
        assert events == reference  # AG2's own storage keeps the objects: every event, equal
        (result,) = [e for e in events if type(e) is ToolResultEvent]
        assert result.result.parts[0].data == checked_at()  # type: ignore[attr-defined]
        # A new storage (a restart) reads the same events back.
        again = list(await BotwireStorage(url=memory_url).get_history(conversation))
        assert again == reference
        # What AG2 writes through Storage.set_history (compaction, repairs) and drop_history.
        for store in (storage, reference_storage := MemoryStorage()):
            await store.set_history(conversation, reference[1:])
        assert list(await storage.get_history(conversation)) == reference[1:]
        assert list(await reference_storage.get_history(conversation)) == reference[1:]
        await storage.drop_history(conversation)
        assert list(await storage.get_history(conversation)) == []
        await storage.close()

    asyncio.run(run())


class Opaque:
    """A value no serialiser can restore."""


@dataclass
class Receipt:
    total: Decimal
    handle: Any


def opaque_receipt() -> Receipt:
    """A dataclass holding an object botwire cannot store exactly."""
    return Receipt(Decimal("1.50"), Opaque())


def test_a_value_that_cannot_be_restored_fails_loudly(tmp_path: Path) -> None:
    async def run() -> None:
        storage = BotwireStorage(url=f"sqlite:///{tmp_path}/s.db")
        stream = MemoryStream(storage=storage, id=uuid.uuid4())
        agent = Agent("clerk", tools=[opaque_receipt])
        call = ToolCallEvent(name="opaque_receipt", id="call-1")
        config = TestConfig(call, "Done.", raise_tool_errors=False)
        async with agent.run("Receipt?", stream=stream, config=config) as turn:
            await turn.result()
        events = list(await stream.history.get_events())
        # The tool's result was refused where it would have been stored, and AG2 recorded
        # that refusal as the call's result: the model and the stream both see it.
        (results,) = [e for e in events if isinstance(e, ToolResultsEvent)]
        (error,) = results.results
        assert isinstance(error, ToolErrorEvent)
        assert "botwire cannot store exactly" in str(error.error)
        event = ToolResultEvent(parent_id="x", name="opaque_receipt", result=opaque_receipt())
        with pytest.raises(ValueNotSerializable, match="Opaque"):
            await storage.set_history(stream.id, [event])
        assert list(await storage.get_history(stream.id)) == events  # nothing was changed
        await storage.close()

    asyncio.run(run())


# -- issue 13: one event per key, round-1 streams, a namespace per stream --------------------


def test_a_round_1_stream_is_read_and_moved_into_entries(tmp_path: Path) -> None:
    async def run() -> None:
        url = f"sqlite:///{tmp_path}/s.db"
        conversation = uuid.uuid4()
        old = await _turn_with_a_tool(MemoryStorage(), conversation)
        memory = Memory("ag2-streams", url=url)
        plain = [e for e in old if type(e) not in (ToolResultEvent, ToolResultsEvent)]
        memory.set(f"stream:{conversation}", [serialize_value(e) for e in plain])  # round 1
        storage = BotwireStorage(url=url)
        assert list(await storage.get_history(conversation)) == plain
        events = await _turn_with_a_tool(storage, conversation)  # continues it
        assert events[: len(plain)] == plain and len(events) == len(plain) + len(old)
        assert not memory.exists(f"stream:{conversation}")  # moved by the first new event
        assert memory.count(f"events:{conversation}/m/") == len(events)
        memory.close()
        await storage.close()

    asyncio.run(run())


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[str]:
    """The real server with every default limit (1,000 writes a day, 1 MiB a value...)."""
    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "server.db")))
    url, shutdown = loopback().serve(app)
    yield url
    shutdown()


def fetch_page(n: int) -> str:
    """A tool with a large answer."""
    return f"page {n}: " + "lorem ipsum " * 210  # 2.5 KB, in two events


def test_a_stream_of_500_events_passes_1_mib_on_a_default_server(default_server: str) -> None:
    async def run() -> None:
        storage = BotwireStorage(url=default_server)
        stream = MemoryStream(storage=storage, id=uuid.uuid4())
        knowledge = BotwireKnowledgeStore(url=default_server)  # AG2 logs the stream here
        agent = Agent("reader", tools=[fetch_page], knowledge=KnowledgeConfig(store=knowledge))
        calls = []
        for turn in range(12):  # 20 tool calls a turn, 45 events: 540 events, 1.2 MB
            batch = [
                ToolCallEvent(name="fetch_page", id=f"call-{turn}-{n}", arguments=f'{{"n": {n}}}')
                for n in range(20)
            ]
            calls += [call.id for call in batch]
            config = TestConfig(batch, "Read.")
            async with agent.run(f"turn {turn}", stream=stream, config=config) as t:
                assert (await t.result()).body == "Read."
        events = list(await BotwireStorage(url=default_server).get_history(stream.id))
        assert len(events) == 540
        results = [e for e in events if type(e) is ToolResultEvent]
        assert sorted(r.parent_id for r in results) == sorted(calls)
        assert events[0].parts[0].content == "turn 0"  # type: ignore[attr-defined]
        stats = Memory("ag2-streams", url=default_server).stats()
        assert stats.bytes > 1_150_000 and stats.writes_today <= 540  # at most one an event
        log = await knowledge.read(f"/log/{stream.id}.jsonl")  # rewritten whole every turn
        assert log is not None and len(log.encode()) > 1_048_576 and len(log.splitlines()) == 540
        await knowledge.close()
        await storage.close()

    asyncio.run(run())


def test_events_saved_at_once_go_together_but_are_refused_alone(tmp_path: Path) -> None:
    from types import SimpleNamespace

    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "server.db"), max_bytes=4000))
    url, shutdown = loopback().serve(app)

    async def run() -> None:
        storage = BotwireStorage(url=url)
        context: Any = SimpleNamespace(stream=SimpleNamespace(id=uuid.uuid4()))
        first, small = (ToolCallEvent(name="fetch_page", id=f"call-{n}") for n in (1, 2))
        large = ToolCallEvent(name="fetch_page", id="call-3", arguments='"' + "x" * 5000 + '"')
        # The first goes at once; the two saved while it is on its way go out in one append,
        # which is over the namespace's 4000 bytes: then each is appended alone.
        outcomes = await asyncio.gather(
            *(storage.save_event(event, context) for event in (first, small, large)),
            return_exceptions=True,
        )
        assert outcomes[:2] == [None, None] and isinstance(outcomes[2], QuotaExceeded)
        assert list(await storage.get_history(context.stream.id)) == [first, small]
        await storage.close()

    try:
        asyncio.run(run())
    finally:
        shutdown()


def test_each_stream_in_its_own_namespace_and_a_token_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    a, b = uuid.uuid4(), uuid.uuid4()
    admin = app.state.tokens.create(["ag2-*"])[0]
    only_a = app.state.tokens.create([f"ag2-{a}"])[0]

    async def turn(stream_id: uuid.UUID) -> None:
        storage = BotwireStorage("ag2-{scope}", url=url)
        stream = MemoryStream(storage=storage, id=stream_id)
        async with Agent("helper").run("hi", stream=stream, config=TestConfig("Hello.")) as t:
            await t.result()
        await storage.close()

    try:
        monkeypatch.setenv("BOTWIRE_API_KEY", admin)
        for stream_id in (a, b):
            asyncio.run(turn(stream_id))
            assert Memory(f"ag2-{stream_id}", url=url, cache=False).count("events:") > 0
        monkeypatch.setenv("BOTWIRE_API_KEY", only_a)
        asyncio.run(turn(a))  # its own stream: fine
        with pytest.raises(Forbidden):
            asyncio.run(turn(b))  # another tenant's: refused by the server
    finally:
        shutdown()
