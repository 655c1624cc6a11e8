"""Listing namespaces (``botwire.stores.namespaces``, ``botwire.namespaces``), on every store."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

import botwire
from botwire import Memory, Unauthorized
from botwire.ops import NamespaceInfo
from botwire.stores import Limits, Store, namespaces

from ..conftest import FakeClock
from ..loopback import loopback


def test_the_namespaces_holding_live_keys_in_order_with_their_sizes(
    make_store: Callable[..., Store], clock: FakeClock
) -> None:
    store = make_store(limits=Limits(writes_per_day=100))
    Memory("b-user", url=store).set_many({"x": 1, "y": [1, 2]})
    Memory("a-user", url=store).set("k", "v")
    Memory("c-gone", url=store).set("k", 1, ttl=5)
    Memory("d-empty", url=store).set("k", 1)
    Memory("d-empty", url=store).delete("k")
    assert [i.namespace for i in namespaces(store)] == ["a-user", "b-user", "c-gone"]
    clock.now += 10  # c-gone's only key expires: the namespace is no longer listed
    found = namespaces(store)
    assert [i.namespace for i in found] == ["a-user", "b-user"]
    for info in found:  # the same figures as the namespace's own Stats
        assert tuple(info)[1:] == tuple(Memory(info.namespace, url=store).stats())
    assert found[1] == NamespaceInfo("b-user", 2, len("x1") + len("y[1,2]"), 1)
    assert namespaces(store, prefix="b") == [found[1]]
    assert namespaces(store, limit=1) == [found[0]]  # paged
    assert namespaces(store, after="a-user", limit=1) == [found[1]]
    assert namespaces(store, prefix="zzz") == []


def test_botwire_namespaces_reads_every_page(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/many.db"
    with Memory("warm", url=url) as memory:
        store = memory.store
        for n in range(1100):
            Memory(f"ns-{n:04d}", url=store).set("k", n)
    names = [info.namespace for info in botwire.namespaces(url, prefix="ns-")]
    assert names == [f"ns-{n:04d}" for n in range(1100)]


def test_over_a_server_a_token_lists_only_what_it_reaches(tmp_path: Path) -> None:
    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    try:
        admin, _ = app.state.tokens.create(["*"])
        alice, _ = app.state.tokens.create(["alice-*"], read_only=True)
        for name in ("alice-1", "alice-2", "bob-1"):
            Memory(name, url=url, api_key=admin).set("k", name)
        assert [i.namespace for i in botwire.namespaces(url, api_key=admin)] == [
            "alice-1",
            "alice-2",
            "bob-1",
        ]
        mine = botwire.namespaces(url, api_key=alice)
        assert [(i.namespace, i.keys) for i in mine] == [("alice-1", 1), ("alice-2", 1)]
        assert botwire.namespaces(url, api_key=alice, prefix="bob") == []  # disjoint
        assert [i.namespace for i in botwire.namespaces(url, api_key=alice, prefix="alice-2")] == [
            "alice-2"
        ]
        with pytest.raises(Unauthorized):
            botwire.namespaces(url)  # no token: 401, not an empty list
        with pytest.raises(Unauthorized):
            botwire.namespaces(url, api_key="bw_nope.nope")
    finally:
        shutdown()


@pytest.mark.parametrize(
    ("patterns", "prefix"),
    [
        (["alice-*"], "alice-"),
        (["user-*", "user-team?"], "user-"),
        (["user-[ab]*"], "user-"),
        (["a-*", "b-*"], ""),
        (["*"], ""),
        (["exact-name"], "exact-name"),
    ],
)
def test_a_listing_reads_only_where_the_token_can_reach(patterns: list[str], prefix: str) -> None:
    """The server narrows a token's listing to its patterns' common literal start, so a narrow
    token never makes it read every namespace of the store."""
    from botwire_server.auth import Token, literal_prefix

    assert literal_prefix(Token("id", patterns, False, 0.0, False)) == prefix
    assert literal_prefix(None) == ""
