"""``@remember``: every kind of callable, key templates, the saving rules, conflicts."""

from __future__ import annotations

import asyncio
import inspect
import pydoc
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

import botwire
from botwire import Conflict, InvalidRequest, Memory


@pytest.fixture
def mem() -> Memory:
    return Memory("agent", url="memory://")


def test_the_wrapper_looks_like_the_function(mem: Memory) -> None:
    def chat(user_id: str, query: str = "hi", *, history: list[str]) -> str:
        """Answer a user."""
        return query

    wrapped = mem.remember("history:{user_id}", into="history", default=list)(chat)
    assert inspect.signature(wrapped) == inspect.signature(chat)
    assert wrapped.__wrapped__ is chat and wrapped.__name__ == "chat"
    assert wrapped.__doc__ == "Answer a user." and "Answer a user." in pydoc.render_doc(wrapped)
    assert not inspect.iscoroutinefunction(wrapped)
    assert wrapped("u1") == "hi"  # defaults still apply

    async def achat(user_id: str, history: list[str]) -> None:
        return None

    assert inspect.iscoroutinefunction(mem.remember("h:{user_id}", into="history")(achat))


def make_agent_class(mem: Memory) -> type:
    class User:
        def __init__(self, uid: str) -> None:
            self.id = uid

    class Bot:
        def __init__(self, uid: str) -> None:
            self.user = User(uid)

        @mem.remember("m:{self.user.id}", into="n", default=0, save="result")
        def method(self, n: int) -> int:
            return n + 1

        @mem.remember("am:{self.user.id}", into="n", default=0, save="result")
        async def amethod(self, n: int) -> int:
            return n + 1

        @classmethod
        @mem.remember("c:{cls.__name__}", into="n", default=0, save="result")
        def inner_classmethod(cls, n: int) -> int:
            return n + 1

        @mem.remember("oc:{cls.__name__}", into="n", default=0, save="result")
        @classmethod
        def outer_classmethod(cls, n: int) -> int:
            return n + 1

        @staticmethod
        @mem.remember("s:{x}", into="n", default=0, save="result")
        def inner_staticmethod(x: str, n: int) -> int:
            return n + 1

        @mem.remember("os:{x}", into="n", default=0, save="result")
        @staticmethod
        async def outer_staticmethod(x: str, n: int) -> int:
            return n + 1

    return Bot


def test_every_kind_of_callable(mem: Memory) -> None:
    bot_class: Any = make_agent_class(mem)
    bot = bot_class("u7")
    assert [bot.method(), bot.method(), bot_class.method(bot)] == [1, 2, 3]
    assert asyncio.run(bot.amethod()) == 1 and asyncio.run(bot.amethod()) == 2
    assert [bot_class.inner_classmethod(), bot.inner_classmethod()] == [1, 2]
    assert [bot_class.outer_classmethod(), bot.outer_classmethod()] == [1, 2]
    assert [bot_class.inner_staticmethod("x"), bot.inner_staticmethod("x")] == [1, 2]
    assert asyncio.run(bot_class.outer_staticmethod("x")) == 1
    assert asyncio.run(bot.outer_staticmethod("x")) == 2
    assert mem.get_many(["m:u7", "am:u7", "c:Bot", "oc:Bot", "s:x", "os:x"]) == {
        "m:u7": 3,
        "am:u7": 2,
        "c:Bot": 2,
        "oc:Bot": 2,
        "s:x": 2,
        "os:x": 2,
    }
    assert inspect.iscoroutinefunction(bot.amethod)
    assert bot.method.key_for() == "m:u7" and bot_class.method.key_for(bot) == "m:u7"
    assert bot_class.inner_classmethod.key_for() == "c:Bot"
    assert bot_class.outer_classmethod.key_for() == "oc:Bot"
    assert bot.inner_staticmethod.key_for("y") == "s:y"
    assert bot.method.memory is mem
    assert bot.method.clear() is True and mem.get("m:u7") is None


def test_key_templates_are_checked_when_decorating(mem: Memory) -> None:
    def f(user_id: str, state: Any) -> None: ...

    with pytest.raises(InvalidRequest, match="'missing', which is not a parameter"):
        mem.remember("k:{missing}", into="state")(f)
    with pytest.raises(InvalidRequest, match="argument names"):
        mem.remember("k:{}", into="state")(f)
    with pytest.raises(InvalidRequest, match="into="):
        mem.remember("k:{user_id}")(f)  # the key is not a parameter name
    with pytest.raises(InvalidRequest, match="no parameter 'nope'"):
        mem.remember("k:{user_id}", into="nope")(f)
    with pytest.raises(InvalidRequest, match="bad key template"):
        mem.remember("k:{user_id", into="state")(f)
    with pytest.raises(InvalidRequest, match="save must be"):
        mem.remember("k", into="state", save="both")(f)
    with pytest.raises(InvalidRequest, match="on_conflict must be"):
        mem.remember("k", into="state", on_conflict="ignore")(f)


def test_key_templates_are_filled_from_the_bound_arguments(mem: Memory) -> None:
    class User:
        id = 42

    @mem.remember("k:{user.id}:{lang}", into="state", default=dict)
    def f(user: Any, state: dict[str, Any], lang: str = "en") -> None: ...

    assert f.key_for(User()) == "k:42:en" and f.key_for(User(), lang="fr") == "k:42:fr"
    with pytest.raises(InvalidRequest, match="could not be filled"):
        f(object())  # no .id
    with pytest.raises(InvalidRequest, match="gets 'state' from memory"):
        f(User(), state={})
    with pytest.raises(TypeError, match="missing a required argument"):
        f()


def test_what_is_saved_and_when(mem: Memory) -> None:
    calls: list[str] = []

    @mem.remember("prefs", default=lambda: {"tone": "plain"})
    def read_only(prefs: dict[str, str]) -> str:
        calls.append("read")
        return prefs["tone"]

    assert read_only() == "plain" and not mem.exists("prefs")  # unchanged default: no write
    mem.set("prefs", {"tone": "brief"})
    version = mem.get_item("prefs").version  # type: ignore[union-attr]
    assert read_only() == "brief"
    assert mem.get_item("prefs").version == version  # type: ignore[union-attr]  # unchanged

    @mem.remember("prefs")
    def failing(prefs: dict[str, str]) -> None:
        prefs["tone"] = "loud"
        raise ValueError("the agent failed")

    with pytest.raises(ValueError):
        failing()
    assert mem.get("prefs") == {"tone": "brief"}  # an exception saves nothing

    shared_default: list[int] = []

    @mem.remember("items:{n}", into="items", default=shared_default)
    def add(n: int, items: list[int]) -> None:
        items.append(n)

    add(1)
    add(2)
    assert mem.get("items:1") == [1] and mem.get("items:2") == [2] and shared_default == []


def test_conflicts_raise_retry_or_overwrite(mem: Memory) -> None:
    other = Memory("agent", url=mem.store)  # a second writer on the same store
    runs: list[int] = []

    def racing(mode: str) -> Any:
        @mem.remember("n", default=0, save="result", on_conflict=mode)
        def bump(n: int) -> int:
            runs.append(n)
            if len(runs) == 1:
                other.set("n", 100)  # someone writes between our load and our save
            return n + 1

        return bump

    mem.set("n", 0)
    with pytest.raises(Conflict) as raised:
        racing("raise")()
    assert raised.value.keys == ["n"] and mem.get("n") == 100
    runs.clear()
    mem.set("n", 0)
    assert racing("retry")() == 101 and runs == [0, 100]  # re-run on the fresh value
    runs.clear()
    mem.set("n", 0)
    assert racing("overwrite")() == 1 and mem.get("n") == 1  # last writer wins


def test_a_lost_race_every_time_ends_in_conflict(mem: Memory) -> None:
    other = Memory("agent", url=mem.store)

    @mem.remember("n", default=0, save="result", on_conflict="retry")
    def bump(n: int) -> int:
        other.incr("n")
        return n + 1

    with pytest.raises(Conflict, match="races in a row"):
        bump()


WORKER = """
import sys
from botwire import Memory, remember

@remember("count", namespace="shared", url=sys.argv[1], default=0, save="result",
          on_conflict="retry")
def bump(count):
    return count + 1

import os, time
while not os.path.exists(sys.argv[-1]):  # start together
    time.sleep(0.001)
for _ in range(int(sys.argv[2])):
    bump()
"""


def test_processes_racing_through_remember_lose_no_update(tmp_path: Path) -> None:
    url, go = f"sqlite:///{tmp_path}/shared.db", tmp_path / "go"
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, url, "150", str(go)], stderr=subprocess.PIPE
        )
        for _ in range(4)
    ]
    go.touch()
    for worker in workers:
        _, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err.decode()
    assert Memory("shared", url=url).get("count") == 600


def test_module_level_remember_opens_its_memory_on_first_call(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/lazy.db"

    @botwire.remember("k", namespace="lazy", url=url, default=0, save="result")
    def bump(k: int) -> int:
        return k + 1

    assert not (tmp_path / "lazy.db").exists()
    assert bump() == 1 and bump() == 2
    assert bump.memory.get("k") == 2 and bump.memory.namespace == "lazy"
    with pytest.raises(botwire.InvalidName):
        botwire.remember("k", namespace="bad name")
