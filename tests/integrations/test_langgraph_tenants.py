"""The LangGraph adapter with a namespace per tenant: the head of a LangGraph namespace
(``("alice", "facts")`` -> ``alice``) chooses the botwire namespace."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import PutOp
from langgraph.store.memory import InMemoryStore
from langgraph.types import CachePolicy

from botwire import Forbidden, Memory
from botwire.integrations.langgraph import BotwireCache, BotwireStore
from botwire_server import Settings, create_app

from ..loopback import loopback


class State(TypedDict):
    user: str
    fact: str
    known: int


def _graph(store: Any, cache: Any = None) -> Any:
    def learn(state: State, runtime: Runtime) -> dict[str, Any]:
        assert runtime.store is not None
        facts = (state["user"], "facts")
        known = runtime.store.search(facts)
        runtime.store.put(facts, f"f{len(known)}", {"text": state["fact"]})
        return {"known": len(known) + 1}

    def noted(state: State) -> dict[str, Any]:
        return {"fact": state["fact"].upper()}

    builder = StateGraph(State)
    builder.add_node("learn", learn)
    builder.add_node("noted", noted, cache_policy=CachePolicy(ttl=60))
    builder.add_edge(START, "learn")
    builder.add_edge("learn", "noted")
    builder.add_edge("noted", END)
    return builder.compile(store=store, cache=cache)


def test_each_head_in_a_namespace_of_its_own(memory_url: str) -> None:
    store = BotwireStore(namespace="lg-{scope}", url=memory_url)
    cache = BotwireCache(namespace="lgc-{scope}", url=memory_url)
    graph = _graph(store, cache)
    for user, fact in [("alice", "tea"), ("bob", "coffee"), ("alice", "cats")]:
        graph.invoke({"user": user, "fact": fact, "known": 0})
    assert asyncio.run(graph.ainvoke({"user": "bob", "fact": "jazz", "known": 0}))["known"] == 2
    alice, bob = Memory("lg-alice", url=memory_url), Memory("lg-bob", url=memory_url)
    assert alice.list_keys() == ["alice/facts/#f0", "alice/facts/#f1"]
    assert bob.list_keys() == ["bob/facts/#f0", "bob/facts/#f1"]
    assert Memory("lg-langgraph", url=memory_url).list_keys() == []
    # Searches and listings that name a head, or span the heads this object used:
    reference = InMemoryStore()
    for user, key, text in [("alice", "f0", "tea"), ("alice", "f1", "cats")]:
        reference.put((user, "facts"), key, {"text": text})
    assert _plain(store.search(("alice",))) == _plain(reference.search(("alice",)))
    assert [i.value["text"] for i in store.search(())] == ["tea", "cats", "coffee", "jazz"]
    assert store.list_namespaces() == [("alice", "facts"), ("bob", "facts")]
    assert store.list_namespaces(suffix=("facts",), max_depth=1) == [("alice",), ("bob",)]
    # A new object knows no tenant until it uses one: it never lists other tenants' data.
    fresh = BotwireStore(namespace="lg-{scope}", url=memory_url)
    assert fresh.search(()) == [] and fresh.list_namespaces() == []
    assert fresh.list_namespaces(prefix=("bob",)) == [("bob", "facts")]
    assert fresh.list_namespaces() == [("bob", "facts")]
    assert [i.key for i in fresh.search(("alice", "facts"), filter={"text": "cats"})] == ["f1"]
    # One batch over two tenants: one botwire batch each, the answers in the batch's order.
    fresh.batch([PutOp(("carol",), "k", {"v": 1}), PutOp(("alice",), "k", {"v": 2})])
    assert Memory("lg-carol", url=memory_url).get("carol/#k") == {"v": 1}
    cache.clear()
    for memory in (alice, bob):
        memory.close()


def test_async_with_a_namespace_per_head(memory_url: str) -> None:
    store = BotwireStore(namespace=lambda head: f"t-{head.upper()}", url=memory_url)

    async def run() -> None:
        await store.aput(("u1", "prefs"), "tone", {"v": "dry"})
        await store.aput(("u2", "prefs"), "tone", {"v": "warm"})
        item = await store.aget(("u1", "prefs"), "tone")
        assert item is not None and item.value == {"v": "dry"}
        assert [i.namespace for i in await store.asearch(())] == [("u1", "prefs"), ("u2", "prefs")]
        assert await store.alist_namespaces(prefix=("u2",)) == [("u2", "prefs")]
        await store.adelete(("u1", "prefs"), "tone")
        assert await store.aget(("u1", "prefs"), "tone") is None

    asyncio.run(run())
    assert Memory("t-U2", url=memory_url).list_keys() == ["u2/prefs/#tone"]


def _plain(items: list[Any]) -> list[tuple[tuple[str, ...], str, Any]]:
    return sorted((item.namespace, item.key, item.value) for item in items)


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A server in token mode on the loopback uvicorn: its URL and its tokens."""
    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    yield url, app.state.tokens
    shutdown()


def test_a_tenants_token_reaches_only_its_heads(
    token_server: tuple[str, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, tokens = token_server
    secret, _ = tokens.create(["lg-alice*"])
    monkeypatch.setenv("BOTWIRE_API_KEY", secret)
    store = BotwireStore(namespace="lg-{scope}", url=url)
    store.put(("alice", "facts"), "f0", {"text": "tea"})
    assert [i.key for i in store.search(("alice",))] == ["f0"]
    with pytest.raises(Forbidden):
        store.put(("bob", "facts"), "f0", {"text": "coffee"})
    with pytest.raises(Forbidden):
        store.get(("bob", "facts"), "f0")
    assert store.search(("alice", "facts")) != []  # one refused tenant leaves the other usable
