"""The CrewAI adapter through crewai.memory.Memory and an Agent kickoff, with a fake LLM and a
fake embedder. CrewAI cannot share an environment with AutoGen 0.7 (protobuf pins), so .ci/run
runs this module in its own virtual environment; elsewhere it skips."""

from __future__ import annotations

import asyncio
import hashlib
import math
import os
from datetime import datetime, timedelta, timezone
from pathlib import Path
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
from crewai.memory.storage.backend import (  # noqa: E402
    EmbeddingDimensionMismatchError,
    StorageBackend,
)
from crewai.memory.storage.factory import set_memory_storage_factory  # noqa: E402
from crewai.memory.types import MemoryRecord  # noqa: E402
from crewai.memory.unified_memory import Memory as CrewMemory  # noqa: E402

from botwire import Forbidden, Memory  # noqa: E402
from botwire.integrations.crewai import (  # noqa: E402
    BotwireStorageBackend,
    memory_tools,
    register,
)


def fake_embedder(texts: list[str], dimensions: int = 32) -> list[list[float]]:
    """Bag of words hashed into 32 dimensions: similar texts, similar vectors."""
    out = []
    for text in texts:
        vector = [0.0] * dimensions
        for word in text.lower().split():
            digest = hashlib.sha256(word.strip(".,?!").encode()).hexdigest()
            vector[int(digest, 16) % dimensions] += 1
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        out.append([v / norm for v in vector])
    return out


def small_embedder(texts: list[str]) -> list[list[float]]:
    """Another model: 16 dimensions."""
    return fake_embedder(texts, 16)


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
    extra.setdefault("embedding", fake_embedder([content])[0])
    return MemoryRecord(content=content, scope=scope, categories=categories, **extra)


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


# -- issue 13: another embedding model is refused, as CrewAI's LanceDB backend refuses it -------


def test_an_embedding_of_another_dimension_is_refused(memory_url: str) -> None:
    register(url=memory_url)
    try:
        memory = CrewMemory(storage="botwire", llm=FakeLLM(model="fake"), embedder=fake_embedder)
        memory.remember("The user prefers green tea", scope="/user", importance=0.9)
        other = CrewMemory(storage="botwire", llm=FakeLLM(model="fake"), embedder=small_embedder)
        # Round 1 scored every record 0 here and returned them all.
        with pytest.raises(EmbeddingDimensionMismatchError):
            other.recall("green tea", depth="shallow")
        with pytest.raises(EmbeddingDimensionMismatchError):
            other.remember("The user likes cake", scope="/user", importance=0.9)
        backend = BotwireStorageBackend(url=memory_url)
        (record,) = backend.list_records()
        with pytest.raises(EmbeddingDimensionMismatchError):
            backend.update(record.model_copy(update={"embedding": small_embedder(["x"])[0]}))
        with pytest.raises(EmbeddingDimensionMismatchError):
            backend.save([_record("a", "/", []), _record("b", "/", [], embedding=[1.0])])
        assert [m.record.content for m in memory.recall("green tea", depth="shallow")] == [
            "The user prefers green tea"
        ]
        backend.reset()  # forgets the dimension with the records, as LanceDB drops its table
        other.remember("The user likes cake", scope="/user", importance=0.9)
        assert backend.count() == 1
    finally:
        set_memory_storage_factory(None)


def test_scopes_categories_and_counts_never_read_an_embedding(tmp_path: Path) -> None:
    backend = BotwireStorageBackend(url=f"sqlite:///{tmp_path}/m.db")
    backend.save([_record(f"fact {n}", f"/crew/a{n % 3}", [f"c{n % 2}"]) for n in range(9)])
    read: list[str] = []

    class Spy:
        def __init__(self, memory: Memory) -> None:
            self.memory = memory

        def batch(self, ops: list[Any]) -> list[Any]:
            read.extend(op.key if hasattr(op, "key") else op.prefix for op in ops)
            return self.memory.batch(ops)

    backend.memory = Spy(backend.memory)  # type: ignore[assignment]
    assert backend.count() == 9 and read == ["rec:"]  # one key count
    assert backend.count("/crew/a1") == 3
    assert backend.list_scopes("/crew") == ["/crew/a0", "/crew/a1", "/crew/a2"]
    assert backend.list_categories() == {"c0": 5, "c1": 4}
    assert backend.get_scope_info("/crew").record_count == 9
    assert not [key for key in read if key.startswith("vec:")]


def test_recall_touches_the_records_it_returns(tmp_path: Path) -> None:
    register(url=f"sqlite:///{tmp_path}/m.db")
    try:
        memory = CrewMemory(storage="botwire", llm=FakeLLM(model="fake"), embedder=fake_embedder)
        memory.remember("The user prefers green tea", scope="/user", importance=0.9)
        backend = BotwireStorageBackend(url=f"sqlite:///{tmp_path}/m.db")
        (before,) = backend.list_records()
        assert len(memory.recall("green tea", depth="shallow")) == 1
        (after,) = backend.list_records()
        assert after.last_accessed > before.last_accessed  # round 1 had no touch_records
        assert after.model_dump() == before.model_dump() | {"last_accessed": after.last_accessed}
        assert after.embedding == before.embedding
        backend.touch_records(["missing", before.id, before.id])  # missing ids are skipped
    finally:
        set_memory_storage_factory(None)


def test_side_by_side_with_crewais_lancedb_backend(tmp_path: Path) -> None:
    from crewai.memory.storage.lancedb_storage import LanceDBStorage

    ours = BotwireStorageBackend(url=f"sqlite:///{tmp_path}/m.db")
    lance = LanceDBStorage(path=str(tmp_path / "lance"))
    now = datetime.utcnow()
    records = [
        _record("user likes green tea", "/crew/user", ["prefs"], metadata={"lang": "en"}),
        _record("user dislikes coffee", "/crew/user", ["prefs"], metadata={"lang": "en"}),
        _record("deploy on fridays is banned", "/crew/team", ["rules"]),
        _record("the office is in Oslo", "/facts", ["places"]),
    ]
    for age, record in enumerate(records):  # distinct times: one order, newest first
        record.created_at = record.last_accessed = now - timedelta(days=age)

    def same(call: Any) -> Any:
        mine, theirs = call(ours), call(lance)
        assert mine == theirs
        return mine

    for backend in (ours, lance):
        backend.save(records)
    same(lambda b: b.get_record(records[0].id).model_dump())  # type: ignore[union-attr]
    listed = same(lambda b: [r.id for r in b.list_records("/crew")])
    for mine, theirs in zip(ours.list_records("/crew"), lance.list_records("/crew"), strict=True):
        assert mine.embedding == pytest.approx(theirs.embedding)  # (float32 in LanceDB)
    assert len(listed) == 3
    same(lambda b: [b.count(), b.count("/crew"), b.count("/crew/user")])
    same(lambda b: [b.list_scopes("/"), b.list_scopes("/crew")])
    same(lambda b: [b.list_categories(), b.list_categories("/crew")])
    same(lambda b: b.get_scope_info("/crew"))
    query = fake_embedder(["green tea"])[0]
    # The same best match; the scores differ in scale: cosine here, 1 / (1 + L2 distance) there.
    same(lambda b: [r.id for r, _ in b.search(query, limit=1)])
    same(lambda b: len(b.search(query, limit=3)))
    same(lambda b: [r.id for r, _ in b.search(query, scope_prefix="/crew", categories=["prefs"])])
    for backend in (ours, lance):
        with pytest.raises(EmbeddingDimensionMismatchError):
            backend.search(small_embedder(["tea"])[0])
        backend.touch_records([records[3].id])
    assert ours.get_record(records[3].id).last_accessed > records[3].last_accessed  # type: ignore[union-attr]
    same(
        lambda b: b.delete(
            scope_prefix="/crew", categories=["prefs"], metadata_filter={"lang": "en"}
        )
    )
    same(lambda b: b.delete(record_ids=[records[2].id]))
    same(lambda b: [r.id for r in b.list_records()])
    for backend in (ours, lance):
        backend.reset()
    same(lambda b: b.count())


def test_delete_by_scope_takes_whole_segments_and_every_filter(tmp_path: Path) -> None:
    backend = BotwireStorageBackend(url=f"sqlite:///{tmp_path}/m.db")
    root, crew, crewai_ = (
        _record("at the root", "/", []),
        _record("in /crew", "/crew/user", []),
        _record("in /crewai", "/crewai", []),
    )
    backend.save([root, crew, crewai_])
    assert backend.count("/crew") == 1  # LanceDB's LIKE '/crew%' counts /crewai too
    assert backend.delete(scope_prefix="/crew", record_ids=[crewai_.id]) == 0  # ids AND scope
    assert backend.delete(scope_prefix="/crew") == 1  # LanceDB also deletes the root's records
    assert sorted(r.content for r in backend.list_records()) == ["at the root", "in /crewai"]
    assert backend.delete(older_than=datetime.now(timezone.utc) + timedelta(hours=1)) == 2


def test_a_round_1_record_is_read_and_split_on_its_next_write(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/m.db"
    record = _record("user likes green tea", "/crew/user", ["prefs"])
    old = Memory("crewai-memory", url=url)
    old.set(f"rec:{record.id}", record.model_dump(mode="json") | {"embedding": record.embedding})
    backend = BotwireStorageBackend(url=url)
    assert backend.get_record(record.id) == record
    assert backend.get_record(record.id).embedding == record.embedding  # type: ignore[union-attr]
    assert backend.search(fake_embedder(["green tea"])[0])[0][0].id == record.id
    assert backend.count() == 1 and backend.count("/crew") == 1
    backend.update(record.model_copy(update={"content": "user now likes coffee"}))
    assert "embedding" not in old.get(f"rec:{record.id}")
    assert old.get(f"vec:{record.id}") == record.embedding
    old.close()


def test_one_tenant_per_namespace_and_a_token_for_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botwire_server import Settings, create_app

    from ..loopback import loopback

    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    register(url=url, namespace="crew-{scope}")
    llm = FakeLLM(model="fake")
    try:
        monkeypatch.setenv("BOTWIRE_API_KEY", app.state.tokens.create(["crew-*"])[0])
        for tenant in ("acme", "globex"):
            memory = CrewMemory(storage=f"botwire:{tenant}", llm=llm, embedder=fake_embedder)
            memory.remember(f"{tenant} prefers tea", scope="/user", importance=0.9)
            assert Memory(f"crew-{tenant}", url=url, cache=False).count("rec:") == 1
        acme = CrewMemory(storage="botwire:acme", llm=llm, embedder=fake_embedder)
        assert [m.record.content for m in acme.recall("tea", depth="shallow")] == [
            "acme prefers tea"
        ]
        with pytest.raises(ValueError, match="needs the tenant"):
            CrewMemory(storage="botwire", llm=llm, embedder=fake_embedder)
        monkeypatch.setenv("BOTWIRE_API_KEY", app.state.tokens.create(["crew-acme"])[0])
        acme = CrewMemory(storage="botwire:acme", llm=llm, embedder=fake_embedder)
        assert acme.recall("tea", depth="shallow")
        globex = CrewMemory(storage="botwire:globex", llm=llm, embedder=fake_embedder)
        with pytest.raises(Forbidden):
            globex.recall("tea", depth="shallow")
    finally:
        set_memory_storage_factory(None)
        shutdown()
