"""The LangGraph adapter: BaseStore against LangGraph's own InMemoryStore, inside a compiled
StateGraph (sync and async), TTLs, and the node cache."""

from __future__ import annotations

import asyncio
from typing import Any, TypedDict

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore, ListNamespacesOp, MatchCondition
from langgraph.store.memory import InMemoryStore
from langgraph.types import CachePolicy

from botwire import Memory
from botwire.integrations.langgraph import BotwireCache, BotwireStore, key_of, split_key
from botwire.stores.memory import MemoryStore

from ..conftest import FakeClock
from .conftest import MemoryFactory

ITEMS: list[tuple[tuple[str, ...], str, dict[str, Any]]] = [
    (("users", "u1"), "prefs", {"tone": "brief", "age": 31, "tags": ["a", "b"]}),
    (("users", "u1"), "profile", {"name": "Ann", "age": 31, "address": {"city": "Oslo"}}),
    (("users", "u2"), "prefs", {"tone": "warm", "age": 45}),
    (("users", "u2", "threads"), "t1", {"topic": "billing", "open": True, "age": 7}),
    (("users", "ü/#%"), "k#/ey", {"odd": "labels", "age": 99}),
    (("docs",), "readme", {"title": "hello", "views": 10}),
    (("docs", "v2"), "readme", {"title": "hello again", "views": 3}),
]

SEARCHES: list[dict[str, Any]] = [
    {"namespace_prefix": ("users",)},
    {"namespace_prefix": ("users", "u1")},
    {"namespace_prefix": ()},
    {"namespace_prefix": ("users",), "filter": {"tone": "brief"}},
    {"namespace_prefix": ("users",), "filter": {"age": {"$gt": 40}}},
    {"namespace_prefix": ("users",), "filter": {"age": {"$gte": 31, "$lt": 45}}},
    {"namespace_prefix": ("users",), "filter": {"age": {"$ne": 31}}},
    {"namespace_prefix": ("users",), "filter": {"address": {"city": "Oslo"}}},
    {"namespace_prefix": ("users",), "filter": {"tags": ["a", "b"]}},
    {"namespace_prefix": ("docs",), "filter": {"views": {"$lte": 3}}},
    {"namespace_prefix": ("users",), "limit": 2},
    {"namespace_prefix": ("users",), "limit": 2, "offset": 2},
    {"namespace_prefix": ("users",), "query": "ignored without an index"},
]

LISTINGS: list[dict[str, Any]] = [
    {},
    {"prefix": ("users",)},
    {"suffix": ("readme",)},
    {"prefix": ("users", "*")},
    {"max_depth": 1},
    {"prefix": ("users",), "max_depth": 2},
    {"limit": 2, "offset": 1},
]


def _fill(store: BaseStore) -> None:
    for namespace, key, value in ITEMS:
        store.put(namespace, key, value)


def _plain(items: list[Any]) -> list[tuple[tuple[str, ...], str, Any]]:
    return sorted((item.namespace, item.key, item.value) for item in items)


def test_it_answers_like_langgraphs_own_store(make_memory: MemoryFactory) -> None:
    ours, theirs = BotwireStore(make_memory("langgraph")), InMemoryStore()
    _fill(ours)
    _fill(theirs)
    for namespace, key, _ in ITEMS:
        mine, reference = ours.get(namespace, key), theirs.get(namespace, key)
        assert mine is not None and reference is not None
        assert (mine.namespace, mine.key, mine.value) == (namespace, key, reference.value)
    assert ours.get(("users", "u1"), "absent") is None
    for search in SEARCHES:
        kwargs = {k: v for k, v in search.items() if k != "namespace_prefix"}
        mine = ours.search(search["namespace_prefix"], **kwargs)
        reference = theirs.search(search["namespace_prefix"], **kwargs)
        if "limit" in search:  # the two stores page in their own (documented) orders
            assert len(mine) == len(reference)
            full = theirs.search(search["namespace_prefix"], limit=100)
            assert {(i.namespace, i.key) for i in mine} <= {(i.namespace, i.key) for i in full}
        else:
            assert _plain(mine) == _plain(reference), search
    for listing in LISTINGS:
        assert ours.list_namespaces(**listing) == theirs.list_namespaces(**listing), listing
    ours.delete(("users", "u1"), "prefs")
    assert ours.get(("users", "u1"), "prefs") is None
    assert [i.key for i in ours.search(("users", "u1"))] == ["profile"]


def test_a_batch_is_one_round_trip_and_atomic(make_memory: MemoryFactory) -> None:
    store = BotwireStore(make_memory("langgraph"))
    store.put(("a",), "k", {"v": 1})
    from langgraph.store.base import GetOp, PutOp, SearchOp

    results = store.batch(
        [
            PutOp(("a",), "k2", {"v": 2}),
            GetOp(("a",), "k2"),
            SearchOp(("a",)),
            PutOp(("a",), "k", None),
        ]
    )
    assert results[0] is None and results[1].value == {"v": 2}  # type: ignore[union-attr]
    assert [i.key for i in results[2]] == ["k", "k2"]  # type: ignore[union-attr]
    assert store.get(("a",), "k") is None


def test_async_batch(make_memory: MemoryFactory) -> None:
    store = BotwireStore(make_memory("langgraph"))

    async def run() -> None:
        await store.aput(("users", "u9"), "prefs", {"tone": "dry"})
        item = await store.aget(("users", "u9"), "prefs")
        assert item is not None and item.value == {"tone": "dry"}
        assert [i.key for i in await store.asearch(("users",))] == ["prefs"]
        assert await store.alist_namespaces() == [("users", "u9")]
        await store.adelete(("users", "u9"), "prefs")
        assert await store.aget(("users", "u9"), "prefs") is None

    asyncio.run(run())


def test_ttl_in_minutes_refresh_on_read_and_expiry(clock: FakeClock) -> None:
    raw = MemoryStore(clock=clock)
    store = BotwireStore(Memory("langgraph", url=raw), ttl={"default_ttl": 2})
    assert store.supports_ttl
    store.put(("s",), "default", {"v": 1})
    store.put(("s",), "short", {"v": 2}, ttl=1)
    store.put(("s",), "forever", {"v": 3}, ttl=None)
    clock.advance(90)  # 1.5 minutes
    assert store.get(("s",), "short") is None  # expired: never returned
    assert store.get(("s",), "default") is not None  # read at 1.5 min: its 2 minutes restart
    clock.advance(90)
    assert store.get(("s",), "default", refresh_ttl=False) is not None
    assert [i.key for i in store.search(("s",), refresh_ttl=False)] == ["default", "forever"]
    clock.advance(60)
    assert [i.key for i in store.search(("s",))] == ["forever"]


labels = st.text(
    alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=12
).filter(lambda s: "." not in s)


@given(namespace=st.lists(labels, max_size=4).map(tuple), key=labels)
def test_the_key_mapping_is_reversible(namespace: tuple[str, ...], key: str) -> None:
    assert split_key(key_of(namespace, key)) == (namespace, key)


class State(TypedDict):
    user: str
    visits: int
    report: str


def _graph(store: BaseStore, cache: BotwireCache, calls: list[str]) -> Any:
    def remember_visit(state: State, runtime: Runtime) -> dict[str, Any]:
        assert runtime.store is not None
        namespace = ("users", state["user"])
        item = runtime.store.get(namespace, "visits")
        visits = (item.value["n"] if item else 0) + 1
        runtime.store.put(namespace, "visits", {"n": visits})
        return {"visits": visits}

    def expensive_report(state: State) -> dict[str, Any]:
        calls.append(state["user"])
        return {"report": f"{state['user']} has {state['visits']} visits"}

    builder = StateGraph(State)
    builder.add_node("remember_visit", remember_visit)
    builder.add_node("report", expensive_report, cache_policy=CachePolicy(ttl=60))
    builder.add_edge(START, "remember_visit")
    builder.add_edge("remember_visit", "report")
    builder.add_edge("report", END)
    return builder.compile(store=store, cache=cache)


def test_inside_a_compiled_graph(make_memory: MemoryFactory) -> None:
    calls: list[str] = []
    store, cache = BotwireStore(make_memory("lg")), BotwireCache(make_memory("lg-cache"))
    graph = _graph(store, cache, calls)
    start = {"user": "u1", "visits": 0, "report": ""}
    assert graph.invoke(start)["visits"] == 1
    assert graph.invoke(start)["visits"] == 2
    # A new graph on new adapter objects (as after a restart) sees the same memory.
    graph = _graph(BotwireStore(make_memory("lg")), BotwireCache(make_memory("lg-cache")), calls)
    assert asyncio.run(graph.ainvoke(start))["visits"] == 3
    assert asyncio.run(graph.ainvoke({"user": "u2", "visits": 0, "report": ""}))["visits"] == 1
    assert store.list_namespaces(prefix=("users",)) == [("users", "u1"), ("users", "u2")]
    assert calls == ["u1", "u1", "u1", "u2"]  # each input differs: no cache hit yet


def test_the_node_cache(make_memory: MemoryFactory) -> None:
    calls: list[str] = []

    def report(state: State) -> dict[str, Any]:
        calls.append(state["user"])
        return {"report": f"report for {state['user']}"}

    builder = StateGraph(State)
    builder.add_node("report", report, cache_policy=CachePolicy(ttl=120))
    builder.add_edge(START, "report")
    builder.add_edge("report", END)
    cache = BotwireCache(make_memory("lg-cache"))
    graph = builder.compile(cache=cache)
    start = {"user": "u1", "visits": 0, "report": ""}
    assert graph.invoke(start)["report"] == "report for u1"
    assert graph.invoke(start)["report"] == "report for u1"
    assert asyncio.run(graph.ainvoke(start))["report"] == "report for u1"
    assert calls == ["u1"]  # computed once, then served from botwire
    assert builder.compile(cache=BotwireCache(make_memory("lg-cache"))).invoke(start)
    assert calls == ["u1"]  # a new cache object on the same memory: still cached
    cache.clear()
    graph.invoke(start)
    assert calls == ["u1", "u1"]


def test_cache_entries_expire_and_clear_by_namespace(clock: FakeClock) -> None:
    cache = BotwireCache(Memory("c", url=MemoryStore(clock=clock)))
    cache.set({(("n1",), "a"): ({"x": 1}, 10), (("n2",), "b"): ([1, 2], None)})
    assert cache.get([(("n1",), "a"), (("n2",), "b"), (("n1",), "zz")]) == {
        (("n1",), "a"): {"x": 1},
        (("n2",), "b"): [1, 2],
    }
    clock.advance(11)
    assert cache.get([(("n1",), "a")]) == {}
    cache.clear([("n2",)])
    assert cache.get([(("n2",), "b")]) == {}


def test_bad_values_are_refused_clearly(make_memory: MemoryFactory) -> None:
    from botwire import ValueNotSerializable

    store = BotwireStore(make_memory("langgraph"))
    with pytest.raises(ValueNotSerializable):
        store.put(("a",), "k", {"when": object()})
    with pytest.raises(ValueError, match="unsupported filter operator"):
        store.search(("a",), filter={"n": {"$regex": "x"}})
    assert store.search(("a",), filter={"n": {"$gt": 1}}) == []
    store.put(("a",), "k", {"n": "not a number"})
    assert store.search(("a",), filter={"n": {"$gt": 1}}) == []  # false, not a crash
    assert store.list_namespaces(prefix=("a",), limit=10) == [("a",)]
    (listed,) = store.batch([ListNamespacesOp((MatchCondition("suffix", ("*",)),))])
    assert listed == [("a",)]
