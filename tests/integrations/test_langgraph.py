"""The LangGraph adapter: BaseStore against LangGraph's own InMemoryStore, inside a compiled
StateGraph (sync and async), TTLs, and the node cache."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, TypedDict
from urllib.parse import quote

import pytest
from hypothesis import given
from hypothesis import strategies as st
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.store.base import BaseStore, GetOp, ListNamespacesOp, MatchCondition, PutOp
from langgraph.store.memory import InMemoryStore
from langgraph.types import CachePolicy

from botwire import Forbidden, InvalidName, InvalidRequest, Memory, ValueNotSerializable
from botwire.integrations.langgraph import (
    BotwireCache,
    BotwireStore,
    key_of,
    prefix_of,
    prefixes_of,
    shortened,
    split_key,
)
from botwire.ops import Get, is_read_only
from botwire.stores.base import Store
from botwire.stores.memory import MemoryStore
from botwire_server import Settings, create_app

from ..conftest import FakeClock
from ..loopback import Server, host, loopback
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
    from langgraph.store.base import SearchOp

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
    stored = key_of(namespace, key)
    assert shortened(stored) or split_key(stored) == (namespace, key)
    assert len(stored) <= 512 and stored.isascii()  # long labels shortened, never cut off
    if not shortened(stored):
        assert stored == prefix_of(namespace) + "#" + quote(key, safe="")  # botwire 0.2's form
    for depth in range(len(namespace) + 1):  # every namespace prefix is a key prefix
        assert any(stored.startswith(p) for p in prefixes_of(namespace[:depth]))


@given(namespace=st.lists(labels, min_size=1, max_size=3).map(tuple), key=labels)
def test_a_shortened_item_keeps_its_real_names(namespace: tuple[str, ...], key: str) -> None:
    store = BotwireStore(Memory("lg", url="memory://shortened"))
    long_key = key * (200 // len(key) + 1)
    store.put(namespace, long_key, {"v": 1})
    item = store.get(namespace, long_key)
    assert item is not None and (item.namespace, item.key) == (namespace, long_key)
    assert [(i.namespace, i.key) for i in store.search(namespace)] == [(namespace, long_key)]
    assert namespace in store.list_namespaces(prefix=namespace)
    store.delete(namespace, long_key)


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


# -- one validation, identical on every store (issue 13, bug 6) --------------------------------

LONG_KEY = "ж" * 240  # 1,440 bytes once percent-encoded: over botwire's 512-byte key limit
LONG_LABEL = "пользователь-" * 20
MID_LABEL = "Александрович"  # 78 characters encoded: long, but a key with it fits 512 bytes
TOO_DEEP = tuple(f"{i}-{LONG_LABEL}" for i in range(9))  # 9 x ~64 bytes once shortened: > 512


def test_long_keys_and_labels_work_on_every_store(make_memory: MemoryFactory) -> None:
    """A 240-character Cyrillic key worked embedded and was refused by the server; now it is
    encoded to fit, and answers as LangGraph's own store does."""
    ours, theirs = BotwireStore(make_memory("langgraph")), InMemoryStore()
    writes = [
        (("users", MID_LABEL), "k", {"v": 0}),  # fits as written: botwire 0.2's key
        (("users", MID_LABEL), LONG_KEY, {"v": 6}),  # the same namespace, shortened
        (("users", LONG_LABEL + "a"), LONG_KEY, {"v": 1}),
        (("users", LONG_LABEL + "b"), LONG_KEY, {"v": 2}),  # same first characters: no clash
        (("users", LONG_LABEL + "a", "deeper"), "k", {"v": 3}),
        (("users", "short"), LONG_KEY + "x", {"v": 4}),
        (("users", "short"), "k", {"v": 5}),
    ]
    for store in (ours, theirs):
        for namespace, key, value in writes:
            store.put(namespace, key, value)
    for namespace, key, _ in writes:
        mine, reference = ours.get(namespace, key), theirs.get(namespace, key)
        assert mine is not None and reference is not None
        assert (mine.namespace, mine.key, mine.value) == (namespace, key, reference.value)
    for prefix in [
        ("users",),
        ("users", LONG_LABEL + "a"),
        ("users", "short"),
        ("users", MID_LABEL),
    ]:
        assert _plain(ours.search(prefix)) == _plain(theirs.search(prefix)), prefix
    assert _plain(ours.search(("users",), filter={"v": {"$gte": 2}})) == _plain(
        theirs.search(("users",), filter={"v": {"$gte": 2}})
    )
    for listing in [{}, {"prefix": ("users", LONG_LABEL + "a")}, {"prefix": ("users", MID_LABEL)}]:
        assert ours.list_namespaces(**listing) == theirs.list_namespaces(**listing), listing
    ours.delete(("users", LONG_LABEL + "a"), LONG_KEY)
    assert ours.get(("users", LONG_LABEL + "a"), LONG_KEY) is None


def test_items_botwire_0_2_wrote_are_found(make_memory: MemoryFactory) -> None:
    memory = make_memory("langgraph")
    round_1 = "users/" + quote(MID_LABEL, safe="") + "/#prefs"  # how 0.2 keyed it
    memory.set(round_1, {"tone": "dry"})
    store = BotwireStore(memory)
    item = store.get(("users", MID_LABEL), "prefs")
    assert item is not None and item.value == {"tone": "dry"}
    assert [i.key for i in store.search(("users", MID_LABEL))] == ["prefs"]
    store.put(("users", MID_LABEL), "prefs", {"tone": "warm"})
    assert memory.get(round_1) == {"tone": "warm"}  # the same key, not a second copy


def test_what_no_store_can_hold_is_refused_alike(make_memory: MemoryFactory) -> None:
    store = BotwireStore(make_memory("langgraph"))
    with pytest.raises(InvalidName):
        store.put(TOO_DEEP, "k", {"v": 1})
    with pytest.raises(InvalidRequest):  # 1,000 years of seconds is botwire's longest TTL
        store.put(("a",), "k", {"v": 1}, ttl=10**12)
    assert store.search(("a",)) == []


class Unreachable(Store):
    """A store that fails the test if anything reaches it."""

    def batch(self, namespace: str, ops: Any, *, idempotency: Any = None) -> list[Any]:
        raise AssertionError(f"reached the store with {ops!r:.200}")


BOTH = ("langgraph", "lg-{scope}")  # every head in one namespace; a namespace per head


@pytest.mark.parametrize(
    ("call", "error", "specs"),
    [
        (lambda s: s.put(TOO_DEEP, "k", {"v": 1}), InvalidName, BOTH),
        (lambda s: s.get(TOO_DEEP, "k"), InvalidName, BOTH),
        (lambda s: s.put(("a",), "k", {"v": 1}, ttl=10**12), InvalidRequest, BOTH),
        (lambda s: s.put(("a",), "k", {"v": float("nan")}), ValueNotSerializable, BOTH),
        (
            lambda s: s.batch([PutOp(("a",), "k", {"v": 1}), GetOp(TOO_DEEP, "k")]),
            InvalidName,
            BOTH,
        ),
        (lambda s: s.search(("a",), filter={"v": {"$regex": "x"}}), ValueError, BOTH),
        # over two tenants: nothing is sent if one tenant's op is refused
        (
            lambda s: s.batch([PutOp(("a",), "k", {"v": 1}), PutOp(("b",), "k", {"v": 1e999})]),
            ValueNotSerializable,
            BOTH,
        ),
        (lambda s: s.put(("a b",), "k", {"v": 1}), InvalidName, ("lg-{scope}",)),  # not a name
    ],
)
def test_every_check_runs_before_any_io(call: Any, error: type, specs: tuple[str, ...]) -> None:
    for spec in specs:
        with pytest.raises(error):
            call(BotwireStore(namespace=spec, url=Unreachable()))  # type: ignore[arg-type]


def test_a_search_where_no_key_can_be_asks_nothing() -> None:
    store = BotwireStore(url=Unreachable())  # type: ignore[arg-type]
    assert store.search(TOO_DEEP) == [] and store.list_namespaces(prefix=TOO_DEEP) == []


# -- reads never write unless an item has a TTL (issue 13, bug 7) -----------------------------


class Recording(Store):
    """Another store, with every batch sent to it noted."""

    def __init__(self, inner: Store) -> None:
        self.inner = inner
        self.sent: list[list[Any]] = []

    def batch(self, namespace: str, ops: Any, *, idempotency: Any = None) -> list[Any]:
        self.sent.append(list(ops))
        return self.inner.batch(namespace, ops, idempotency=idempotency)

    async def abatch(self, namespace: str, ops: Any, *, idempotency: Any = None) -> list[Any]:
        self.sent.append(list(ops))
        return await self.inner.abatch(namespace, ops, idempotency=idempotency)


def test_reading_items_without_a_ttl_never_writes(memory_url: str) -> None:
    spy = Recording(Memory("langgraph", url=memory_url).store)
    store = BotwireStore(Memory("langgraph", url=spy))  # no ttl_config: refresh_ttl is true
    store.put(("a",), "plain", {"v": 1})
    store.put(("a",), "timed", {"v": 2}, ttl=5)
    spy.sent.clear()
    item = store.get(("a",), "plain")
    assert item is not None and item.value == {"v": 1}
    assert [i.key for i in store.search(("a",), filter={"v": 1})] == ["plain"]

    async def reads() -> None:
        item = await store.aget(("a",), "plain")
        assert item is not None and item.value == {"v": 1}
        assert [i.key for i in await store.asearch(("a",), filter={"v": 1})] == ["plain"]

    asyncio.run(reads())
    assert len(spy.sent) == 4 and all(is_read_only(ops) for ops in spy.sent)  # one read each
    spy.sent.clear()
    assert store.get(("a",), "timed") is not None  # an item with a TTL: read, then refreshed
    assert [i.key for i in store.search(("a",))] == ["plain", "timed"]
    refreshes = [op for ops in spy.sent for op in ops if not is_read_only([op])]
    assert refreshes == [Get(key_of(("a",), "timed"), refresh=True)] * 2


def test_a_cached_get_of_an_item_without_ttl_stays_local(server: Server, tmp_path: Path) -> None:
    cached, seen = host(server, tmp_path / "cache", max_stale=60)
    store = BotwireStore(Memory("langgraph", url=cached))
    store.put(("a",), "k", {"v": 1})
    assert store.get(("a",), "k") is not None
    asked = len(seen)
    for _ in range(3):
        assert store.get(("a",), "k") is not None
    assert len(seen) == asked  # served by the read cache: no request, no refresh
    cached.close()


def test_a_read_only_token_gets_and_searches(tmp_path: Path) -> None:
    """Over a server in token mode; the items have no TTL, so nothing is written."""
    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    try:
        writer, _ = app.state.tokens.create(["langgraph"])
        reader, _ = app.state.tokens.create(["langgraph"], read_only=True)
        with Memory("langgraph", url=url, api_key=writer) as memory:
            writes = BotwireStore(memory)
            writes.put(("users", "u1"), "prefs", {"tone": "dry"})
            writes.put(("users", "u1"), "session", {"n": 1}, ttl=10)
        with Memory("langgraph", url=url, api_key=reader) as memory:
            store = BotwireStore(memory)
            item = store.get(("users", "u1"), "prefs")
            assert item is not None and item.value == {"tone": "dry"}
            hits = store.search(("users",), filter={"tone": "dry"})
            assert [i.key for i in hits] == ["prefs"]
            assert store.list_namespaces() == [("users", "u1")]
            calls: list[str] = []
            graph = _graph(store, BotwireCache(Memory("c", url="memory://ro")), calls)
            with pytest.raises(Forbidden):  # the graph writes: the token may not
                graph.invoke({"user": "u1", "visits": 0, "report": ""})
            # An item with a TTL is refreshed on read, which this token may not do.
            with pytest.raises(Forbidden):
                store.get(("users", "u1"), "session")
            assert store.get(("users", "u1"), "session", refresh_ttl=False) is not None
    finally:
        shutdown()


def test_searches_and_listings_past_one_answer_are_paged(tmp_path: Path) -> None:
    """Round 1 scanned a whole prefix in one answer: past the server's ``max_answer_bytes``
    every search and listing of it failed (``AnswerTooLarge``). Here the answer limit is
    small, and both stores give the same answers."""
    settings = Settings(db=str(tmp_path / "server.db"), max_answer_bytes=100_000)
    url, shutdown = loopback().serve(create_app(settings))
    try:
        ours = BotwireStore(url=url)
        theirs = InMemoryStore()
        filler = "x" * 3000
        for store in (ours, theirs):
            ops = [
                PutOp(("docs", f"d{n:04d}", "notes"), "k", {"n": n, "text": filler})
                for n in range(240)  # 720 KB of values: 7 answers' worth, put in sorted order
            ]
            ops += [PutOp(("tags", f"t{n:05d}"), "k", {"n": n}) for n in range(2500)]
            for start in range(0, len(ops), 500):
                store.batch(ops[start : start + 500])
        searches: list[dict[str, Any]] = [
            {"limit": 240},
            {"limit": 5, "offset": 200},
            {"filter": {"n": {"$gte": 230}}, "limit": 100},
            {"filter": {"n": 17}},
        ]
        for search in searches:
            assert _plain(ours.search(("docs",), **search)) == _plain(
                theirs.search(("docs",), **search)
            ), search
        for listing in [{"limit": 3000}, {"prefix": ("tags",), "limit": 10, "offset": 2490}]:
            assert ours.list_namespaces(**listing) == theirs.list_namespaces(**listing)

        async def later_pages_async() -> None:
            hits = await ours.asearch(("docs",), limit=240)
            assert len(hits) == 240

        asyncio.run(later_pages_async())
    finally:
        shutdown()
