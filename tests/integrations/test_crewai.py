"""The CrewAI adapter through crewai.memory.Memory and an Agent kickoff, with a fake LLM and a
fake embedder. CrewAI cannot share an environment with AutoGen 0.7 (protobuf pins), so .ci/run
runs this module in its own virtual environment; elsewhere it skips."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from datetime import datetime, timedelta
from typing import Any

import pytest

crewai = pytest.importorskip(
    "crewai", reason="CrewAI runs in its own environment (.ci/run: .venv-crewai)"
)
os.environ["CREWAI_TESTING"] = "true"
# CrewAI's Agent touches its own deprecated fields while building itself.
pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning:crewai")

from crewai import Agent  # noqa: E402
from crewai.llms.base_llm import BaseLLM  # noqa: E402
from crewai.memory.storage.backend import StorageBackend  # noqa: E402
from crewai.memory.storage.factory import set_memory_storage_factory  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402
from crewai.memory.unified_memory import Memory as CrewMemory  # noqa: E402

from botwire import Memory  # noqa: E402
from botwire.integrations.crewai import (  # noqa: E402
    BotwireStorageBackend,
    memory_tools,
    register,
)


def fake_embedder(texts: list[str]) -> list[list[float]]:
    """Bag of words hashed into 32 dimensions: similar texts, similar vectors."""
    out = []
    for text in texts:
        vector = [0.0] * 32
        for word in text.lower().split():
            vector[int(hashlib.sha256(word.strip(".,?!").encode()).hexdigest(), 16) % 32] += 1
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        out.append([v / norm for v in vector])
    return out


PROMPTS: list[Any] = []  # what the fake model was sent
REPLIES: list[str] = []  # what it answers, in order


class FakeLLM(BaseLLM):
    """Answers every call with the next scripted reply (and records the prompts)."""

    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        PROMPTS.append(messages)
        return REPLIES.pop(0) if REPLIES else "Final Answer: ok"


@pytest.fixture
def backend(memory_url: str) -> BotwireStorageBackend:
    return BotwireStorageBackend("crewai-memory", url=memory_url)


def _record(content: str, scope: str, categories: list[str], **extra: Any) -> MemoryRecord:
    return MemoryRecord(
        content=content,
        scope=scope,
        categories=categories,
        embedding=fake_embedder([content])[0],
        **extra,
    )


def test_it_is_a_storage_backend(backend: BotwireStorageBackend) -> None:
    assert isinstance(backend, StorageBackend)


def test_records_search_and_scopes(backend: BotwireStorageBackend) -> None:
    old = datetime.utcnow() - timedelta(days=30)
    records = [
        _record("user likes green tea", "/crew/user", ["prefs"], metadata={"lang": "en"}),
        _record("user dislikes coffee", "/crew/user", ["prefs"], metadata={"lang": "en"}),
        _record("deploy on fridays is banned", "/crew/team", ["rules"], created_at=old),
        _record("the office is in Oslo", "/facts", ["places"]),
    ]
    backend.save(records)
    found = backend.get_record(records[0].id)
    assert found is not None and found.content == "user likes green tea"
    assert found.embedding == records[0].embedding  # kept although model_dump drops it
    hits = backend.search(fake_embedder(["green tea"])[0], limit=2)
    assert hits[0][0].content == "user likes green tea" and hits[0][1] > hits[1][1]
    scoped = backend.search(fake_embedder(["tea"])[0], scope_prefix="/crew/team")
    assert [r.content for r, _ in scoped] == ["deploy on fridays is banned"]
    assert backend.search(fake_embedder(["tea"])[0], categories=["places"])[0][0].scope == "/facts"
    assert len(backend.search(fake_embedder(["x"])[0], metadata_filter={"lang": "en"})) == 2
    assert backend.search(fake_embedder(["green tea"])[0], min_score=0.99) == []
    assert backend.count() == 4 and backend.count("/crew") == 3
    assert backend.list_scopes("/") == ["/crew", "/facts"]
    assert backend.list_scopes("/crew") == ["/crew/team", "/crew/user"]
    assert backend.list_categories("/crew") == {"prefs": 2, "rules": 1}
    info = backend.get_scope_info("/crew")
    assert (info.record_count, info.categories) == (3, ["prefs", "rules"])
    assert info.child_scopes == ["/crew/team", "/crew/user"] and info.oldest_record is not None
    newest_first = backend.list_records("/crew")
    assert newest_first[-1].content == "deploy on fridays is banned"
    updated = records[1].model_copy(update={"content": "user now likes coffee"})
    backend.update(updated)
    assert backend.get_record(records[1].id).content == "user now likes coffee"  # type: ignore[union-attr]
    assert backend.delete(older_than=datetime.utcnow() - timedelta(days=1)) == 1
    assert backend.delete(record_ids=[records[0].id]) == 1
    assert backend.delete(scope_prefix="/crew", categories=["nope"]) == 0
    backend.reset("/crew")
    assert backend.count() == 1
    backend.reset()
    assert backend.count() == 0


def test_async_methods(backend: BotwireStorageBackend) -> None:
    async def run() -> None:
        record = _record("async memory", "/a", ["x"])
        await backend.asave([record])
        hits = await backend.asearch(fake_embedder(["async memory"])[0])
        assert hits[0][0].id == record.id
        assert await backend.adelete(record_ids=[record.id]) == 1

    asyncio.run(run())


def test_unified_memory_remembers_and_recalls_through_botwire(memory_url: str) -> None:
    register(url=memory_url)
    try:
        memory = CrewMemory(storage="botwire", llm=FakeLLM(model="fake"), embedder=fake_embedder)
        memory.remember(
            "The user prefers green tea", scope="/user", categories=["prefs"], importance=0.9
        )
        memory.drain_writes() if hasattr(memory, "drain_writes") else None
        # A new Memory (as in a new process) on the same store recalls it.
        again = CrewMemory(storage="botwire", llm=FakeLLM(model="fake"), embedder=fake_embedder)
        matches = again.recall("green tea", depth="shallow")
        assert matches and matches[0].record.content == "The user prefers green tea"
        assert Memory("crewai-memory", url=memory_url).list_keys("rec:")
        other = CrewMemory(storage="botwire:crewai-other", embedder=fake_embedder)
        assert other.recall("green tea", depth="shallow") == []  # another namespace
    finally:
        set_memory_storage_factory(None)


def test_an_agent_kickoff_with_botwire_memory_and_tools(memory_url: str) -> None:
    register(url=memory_url)
    try:
        memory = CrewMemory(storage="botwire", llm=FakeLLM(model="fake"), embedder=fake_embedder)
        memory.remember("The user's name is Ann", scope="/", categories=["facts"], importance=0.9)
        PROMPTS.clear()
        REPLIES[:] = ["Thought: I know this.\nFinal Answer: Your name is Ann."]
        agent = Agent(
            role="assistant",
            goal="answer about the user",
            backstory="remembers users",
            llm=FakeLLM(model="fake"),
            memory=memory,
            tools=memory_tools(url=memory_url),
        )
        result = agent.kickoff("What is my name?")
        assert "Ann" in str(result)
        assert any("Ann" in str(p) for p in PROMPTS)  # the memory reached the model
    finally:
        set_memory_storage_factory(None)


def test_memory_tools(memory_url: str) -> None:
    remember, recall, forget, listed = memory_tools(url=memory_url)
    assert remember.description and "later runs" in remember.description
    assert remember.run(key="user:tea", value="green") == "remembered 'user:tea'"
    assert recall.run(key="user:tea") == "green"
    assert listed.run(prefix="user:") == "user:tea"
    assert forget.run(key="user:tea") == "forgot 'user:tea'"
    assert recall.run(key="user:tea") == "nothing remembered under 'user:tea'"
