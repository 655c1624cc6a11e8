"""The conversation log every chat adapter shares (``botwire.integrations.history``)."""

from __future__ import annotations

import multiprocessing
from pathlib import Path
from typing import Any

import pytest

from botwire import Memory
from botwire.integrations.history import CHUNK, History


@pytest.fixture
def memory(tmp_path: Path) -> Memory:
    return Memory("h", url=f"sqlite:///{tmp_path}/h.db")


def _ids(history: History) -> History:
    history.id_of = lambda e: e.get("id")
    history.stamp = lambda e, i: {**e, "id": str(i)}
    return history


def test_appends_keep_order_and_trimming_never_freezes(memory: Memory) -> None:
    history = History("chat:", "a", max_entries=4)
    assert [history.append(memory, [{"n": i}]) for i in range(10)] == [1] * 10
    assert history.read(memory) == [{"n": i} for i in range(6, 10)]
    assert history.count(memory) == 4
    assert history.read(memory, last=2) == [{"n": 8}, {"n": 9}]
    assert len(memory.list_keys("chat:a/m/")) == 4  # the dropped entries are gone


def test_a_trim_callback_drops_whole_exchanges(memory: Memory) -> None:
    def whole(entries: list[Any]) -> int:  # never start the kept part on a "tool" entry
        drop = max(0, len(entries) - 3)
        while drop < len(entries) and entries[drop] == "tool":
            drop += 1
        return drop

    history = History("chat:", "t", trim=whole)
    history.append(memory, ["user", "call", "tool", "tool", "answer"])
    assert history.read(memory) == ["answer"]


def test_stamps_go_on_a_copy_and_never_collide(memory: Memory) -> None:
    memory.set("chat:old", [{"id": "2"}, {"id": "3"}, {"id": "4"}, {"id": "5"}])  # round 1
    history = _ids(History("chat:", "old", legacy="chat:old"))
    mine = {"text": "hi"}
    assert history.append(memory, [mine, {"text": "there"}, {"id": "3"}]) == 2
    assert mine == {"text": "hi"}  # the caller's entry is unchanged
    stored = history.read(memory)
    assert [e["id"] for e in stored] == ["2", "3", "4", "5", "4", "5"]  # stamped: positions
    assert [e.get("text") for e in stored[4:]] == ["hi", "there"]
    assert not memory.exists("chat:old")  # migrated in that append's batch


def test_only_a_list_under_the_legacy_key_is_a_round_1_history(memory: Memory) -> None:
    first = History("chat:", "a", legacy="chat:a")
    first.append(memory, [{"n": 1}])
    History("chat:", "a/head", legacy="chat:a/head").append(memory, [{"n": 2}])
    assert first.read(memory) == [{"n": 1}]  # "chat:a/head" is a's head, not a list


def test_a_long_round_1_list_moves_over_in_chunks(memory: Memory) -> None:
    old = [{"n": i} for i in range(CHUNK * 2 + 7)]
    memory.set("chat:long", old)
    history = History("chat:", "long", legacy="chat:long")
    assert history.read(memory, last=3) == old[-3:]
    assert history.append(memory, [{"n": "new"}]) == 1
    assert history.read(memory) == [*old, {"n": "new"}]
    assert not memory.exists("chat:long")
    many = [{"m": i} for i in range(CHUNK * 3)]  # more than one batch holds: in chunks
    assert history.append(memory, many) == len(many)
    assert history.count(memory) == len(old) + 1 + len(many)


def _writer(url: str, worker: int) -> None:
    memory = Memory("h", url=url)
    history = _ids(History("chat:", "race"))
    for j in range(25):
        history.append(memory, [{"w": worker, "j": j}])


def test_eight_processes_lose_nothing(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/race.db"
    workers = [multiprocessing.Process(target=_writer, args=(url, w)) for w in range(8)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    stored = _ids(History("chat:", "race")).read(Memory("h", url=url))
    assert len(stored) == 200
    assert [e["id"] for e in stored] == [str(i) for i in range(200)]
    for worker in range(8):  # each writer's entries in its own order
        assert [e["j"] for e in stored if e["w"] == worker] == list(range(25))


def test_clear_reaches_its_conversation_only(memory: Memory) -> None:
    History("chat:", "a/b").append(memory, [1, 2])
    History("chat:", "a").append(memory, [3])
    History("chat:", "a").clear(memory)
    assert History("chat:", "a/b").read(memory) == [1, 2]
    assert History("chat:", "a").read(memory) == []


def test_a_ttl_restarts_for_the_whole_conversation(tmp_path: Path) -> None:
    from botwire.stores.sqlite import SqliteStore

    now = [1000.0]
    memory = Memory("h", url=SqliteStore(tmp_path / "t.db", clock=lambda: now[0]))
    history = _ids(History("chat:", "ttl", ttl=100))
    history.append(memory, [{"x": 1}])
    now[0] += 90
    history.append(memory, [{"x": 2}])
    now[0] += 90  # past the first entry's own TTL, within the conversation's
    assert [e["x"] for e in history.read(memory)] == [1, 2]
    assert history.append(memory, [{"id": "0"}]) == 0  # its id key lives on too
    now[0] += 101
    assert history.read(memory) == [] and history.count(memory) == 0


def test_large_appends_go_in_chunks_a_request_can_carry(tmp_path: Path) -> None:
    """Four 600 KB entries: each under the value limit, together past a request body."""
    from ..loopback import Server

    server = Server(tmp_path)
    try:
        memory = Memory("h", url=server.url)
        history = History("chat:", "big")
        big = ["x" * 600_000 for _ in range(4)]
        assert history.append(memory, big) == 4
        assert history.read(memory) == big
        memory.close()
    finally:
        server.stop()


def test_many_concurrent_appends_in_one_process_all_land(memory: Memory) -> None:
    import asyncio

    from botwire import AsyncMemory

    async def storm() -> None:
        amemory = AsyncMemory("h", url=memory.store)
        history = History("chat:", "storm")
        added = await asyncio.gather(*(history.aappend(amemory, [n]) for n in range(40)))
        assert added == [1] * 40
        assert sorted(await history.aread(amemory)) == list(range(40))

    asyncio.run(storm())
