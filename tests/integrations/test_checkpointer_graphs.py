"""BotwireSaver under real LangGraph graphs: a ReAct agent, time travel, interrupts,
subgraphs and the async API, threads continued by a second process, and the same
answers as LangGraph's own savers (InMemorySaver, SqliteSaver).

A "second process" is a child Python running ``child(...)`` below on the same store
URL (embedded SQLite, a server on loopback, PostgreSQL): it knows only the URL.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import operator
import os
import sqlite3
import subprocess
import sys
import threading
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.tools import tool
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, StateSnapshot, interrupt

from botwire import Memory
from botwire.integrations.langgraph import BotwireSaver

from ..loopback import Server

ROOT = Path(__file__).parent.parent.parent
EXAMPLE = ROOT / "examples" / "langgraph_checkpointer.py"

# -- graphs ------------------------------------------------------------------------------------


class Log(TypedDict):
    log: Annotated[list[str], operator.add]


def _step(name: str) -> Callable[[Any], dict[str, Any]]:
    return lambda state: {"log": [name]}


def chain(saver: BaseCheckpointSaver[Any]) -> Any:
    """START -> a -> b -> c: each node appends its name to ``log``."""
    builder = StateGraph(Log)
    for name in "abc":
        builder.add_node(name, _step(name))
    builder.add_edge(START, "a")
    builder.add_edge("a", "b")
    builder.add_edge("b", "c")
    builder.add_edge("c", END)
    return builder.compile(checkpointer=saver)


class Ask(TypedDict):
    name: str
    greeting: str


def asking(saver: BaseCheckpointSaver[Any]) -> Any:
    """ask (an interrupt: the answer is the name) -> greet."""

    def ask(state: Ask) -> dict[str, Any]:
        return {"name": interrupt({"question": "what is your name?"})}

    def greet(state: Ask) -> dict[str, Any]:
        return {"greeting": f"hello {state['name']}"}

    builder = StateGraph(Ask)
    builder.add_node("ask", ask)
    builder.add_node("greet", greet)
    builder.add_edge(START, "ask")
    builder.add_edge("ask", "greet")
    builder.add_edge("greet", END)
    return builder.compile(checkpointer=saver)


class Notes(TypedDict):
    notes: Annotated[list[str], operator.add]


class Outer(Log, Notes):
    pass


def nested(saver: BaseCheckpointSaver[Any]) -> Any:
    """plan -> sub (a compiled subgraph: draft -> review, an interrupt) -> publish; the
    parent's nodes append to ``log``, the subgraph's to ``notes`` (its only channel)."""

    def draft(state: Notes) -> dict[str, Any]:
        return {"notes": ["draft"]}

    def review(state: Notes) -> dict[str, Any]:
        return {"notes": [f"review:{interrupt('approve the draft?')}"]}

    inner = StateGraph(Notes)
    inner.add_node("draft", draft)
    inner.add_node("review", review)
    inner.add_edge(START, "draft")
    inner.add_edge("draft", "review")
    inner.add_edge("review", END)
    outer = StateGraph(Outer)
    outer.add_node("plan", _step("plan"))
    outer.add_node("sub", inner.compile())  # checkpoints under the parent's saver
    outer.add_node("publish", _step("publish"))
    outer.add_edge(START, "plan")
    outer.add_edge("plan", "sub")
    outer.add_edge("sub", "publish")
    outer.add_edge("publish", END)
    return outer.compile(checkpointer=saver)


def branches(saver: BaseCheckpointSaver[Any], calls: list[str], failures: int) -> Any:
    """START -> x and y in parallel -> join; y fails its first ``failures`` calls, each time
    once x has returned (so what a saver keeps of x never depends on which thread won)."""
    x_returned = threading.Event()

    def x(state: Log) -> dict[str, Any]:
        calls.append("x")
        threading.Timer(0.05, x_returned.set).start()  # just after x's write is handed over
        return {"log": ["x"]}

    def y(state: Log) -> dict[str, Any]:
        calls.append("y")
        if calls.count("y") <= failures:
            x_returned.wait(timeout=10)
            raise RuntimeError("y failed")
        return {"log": ["y"]}

    def join(state: Log) -> dict[str, Any]:
        calls.append("join")
        return {"log": ["join"]}

    builder = StateGraph(Log)
    builder.add_node("x", x)
    builder.add_node("y", y)
    builder.add_node("join", join)
    builder.add_edge(START, "x")
    builder.add_edge(START, "y")
    builder.add_edge(["x", "y"], "join")
    builder.add_edge("join", END)
    return builder.compile(checkpointer=saver)


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


SEEN: list[list[str]] = []  # what the fake model was given, call by call


class FakeModel(GenericFakeChatModel):
    """Scripted answers; notes the conversation it is shown (the history a thread loaded)."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeModel:
        return self

    def _generate(self, messages: list[BaseMessage], *args: Any, **kwargs: Any) -> Any:
        SEEN.append([f"{m.type}:{m.content}" for m in messages])
        return super()._generate(messages, *args, **kwargs)


def react(saver: BaseCheckpointSaver[Any], turn: int) -> Any:
    """LangGraph's prebuilt ReAct agent with ``add``; the model calls it once a turn."""
    from langgraph.prebuilt import create_react_agent

    call = {"name": "add", "args": {"a": turn, "b": 1}, "id": f"call-{turn}"}
    script = [AIMessage(content="", tool_calls=[call]), AIMessage(content=f"it is {turn + 1}")]
    with warnings.catch_warnings():  # deprecated for langchain's create_agent (not installed)
        warnings.simplefilter("ignore", DeprecationWarning)
        return create_react_agent(FakeModel(messages=iter(script)), [add], checkpointer=saver)


def _thread(name: str, ns: str | None = None) -> RunnableConfig:
    conf: dict[str, Any] = {"thread_id": name}
    if ns is not None:
        conf["checkpoint_ns"] = ns
    return {"configurable": conf}


def _id(config: RunnableConfig | None) -> str | None:
    return None if config is None else config["configurable"]["checkpoint_id"]


def _ns(config: RunnableConfig) -> str:
    return str(config["configurable"]["checkpoint_ns"])


def _messages(state: StateSnapshot) -> list[str]:
    return [f"{m.type}:{m.content}" for m in state.values["messages"]]


# -- the second process ------------------------------------------------------------------------


def child(kind: str, url: str, step: str) -> None:
    """What a child process runs: one step of a graph on a new saver on ``url``; prints JSON."""
    saver = BotwireSaver(url=url)
    config = _thread(kind)
    out: dict[str, Any]
    if kind == "react":
        graph = react(saver, int(step))
        graph.invoke({"messages": [("user", f"what is {step} + 1?")]}, config)
        out = {"messages": _messages(graph.get_state(config)), "model_saw": SEEN}
    elif kind in ("ask", "nested"):
        graph = asking(saver) if kind == "ask" else nested(saver)
        start: dict[str, Any] = (
            {"name": "", "greeting": ""} if kind == "ask" else {"log": [], "notes": []}
        )
        result = graph.invoke(start if step == "start" else Command(resume=step), config)
        out = {
            "values": {k: v for k, v in result.items() if k != "__interrupt__"},
            "interrupts": [i.value for i in result.get("__interrupt__", [])],
            "next": list(graph.get_state(config).next),
        }
    else:
        raise ValueError(kind)
    saver.close()
    print(json.dumps(out))


def run_child(kind: str, url: str, step: str) -> Any:
    code = "import sys; from tests.integrations.test_checkpointer_graphs import child; "
    code += "child(*sys.argv[1:])"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [sys.executable, "-c", code, kind, url, step],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


@pytest.fixture(params=["sqlite", "http", "postgres"])
def shared_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A store URL that another process reaches too."""
    if request.param == "postgres":
        from ..postgres import fresh_schema_url

        yield fresh_schema_url()
    elif request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/checkpoints.db"
    else:
        (tmp_path / "server").mkdir()
        server = Server(tmp_path / "server")
        yield server.url
        server.stop()


@pytest.fixture
def make_saver(memory_url: str) -> Iterator[Callable[[], BotwireSaver]]:
    """``make_saver()``: a new BotwireSaver on the store under test (as after a restart)."""
    made: list[BotwireSaver] = []

    def make() -> BotwireSaver:
        made.append(BotwireSaver(url=memory_url))
        return made[-1]

    yield make
    for saver in made:
        saver.close()


# -- the example -------------------------------------------------------------------------------


@pytest.fixture(params=["embedded", "http", "postgres"])
def example_args(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[list[str]]:
    """The example's arguments: none (botwire's embedded SQLite), or a store URL."""
    if request.param == "embedded":
        yield []
    elif request.param == "postgres":
        from ..postgres import fresh_schema_url

        yield [fresh_schema_url()]
    else:
        (tmp_path / "server").mkdir()
        server = Server(tmp_path / "server")
        yield [server.url]
        server.stop()


def test_the_example_continues_its_thread_in_a_new_process(
    example_args: list[str], tmp_path: Path
) -> None:
    home = tmp_path / "home"
    env = {**os.environ, "BOTWIRE_HOME": str(home)}
    env.pop("BOTWIRE_URL", None)
    env.pop("OPENAI_API_KEY", None)
    outputs = []
    for _ in range(2):
        result = subprocess.run(
            [sys.executable, str(EXAMPLE), *example_args],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        assert result.stderr == ""  # no deprecation warning shown to the user
        outputs.append(result.stdout)
    assert "2 + 3 = 5" in outputs[0] and "thread demo-thread: 4 messages" in outputs[0]
    assert "thread demo-thread: 8 messages" in outputs[1]
    assert (home / "botwire.db").exists() == (not example_args)
    url = example_args[0] if example_args else f"sqlite:///{home}/botwire.db"
    saver = BotwireSaver(url=url)  # what the two runs left
    found = saver.get_tuple(_thread("demo-thread"))
    saver.close()
    assert found is not None
    kinds = [m.type for m in found.checkpoint["channel_values"]["messages"]]
    assert kinds == ["human", "ai", "tool", "ai"] * 2


# -- across processes ----------------------------------------------------------------------------


def test_a_react_agents_thread_continues_in_a_second_process(shared_url: str) -> None:
    first = run_child("react", shared_url, "1")
    turn_1 = ["human:what is 1 + 1?", "ai:", "tool:2", "ai:it is 2"]
    assert first["messages"] == turn_1 and first["model_saw"][0] == [turn_1[0]]
    second = run_child("react", shared_url, "2")
    assert second["messages"] == [*turn_1, "human:what is 2 + 1?", "ai:", "tool:3", "ai:it is 3"]
    # the model in the second process was shown the first process's turn
    assert second["model_saw"][0] == [*turn_1, "human:what is 2 + 1?"]


def test_an_interrupt_is_resumed_by_a_second_process(shared_url: str) -> None:
    first = run_child("ask", shared_url, "start")
    assert first["interrupts"] == [{"question": "what is your name?"}]
    assert first["next"] == ["ask"] and first["values"] == {"name": "", "greeting": ""}
    saver = BotwireSaver(url=shared_url)  # the test's own view, between the two
    waiting = asking(saver).get_state(_thread("ask"))
    assert waiting.next == ("ask",)
    assert [i.value for i in waiting.tasks[0].interrupts] == [{"question": "what is your name?"}]
    second = run_child("ask", shared_url, "Ada")
    assert second["values"] == {"name": "Ada", "greeting": "hello Ada"}
    assert second["next"] == [] and second["interrupts"] == []
    assert asking(saver).get_state(_thread("ask")).values["greeting"] == "hello Ada"
    saver.close()


def test_a_subgraphs_interrupt_is_resumed_by_a_second_process(shared_url: str) -> None:
    first = run_child("nested", shared_url, "start")
    assert first["interrupts"] == ["approve the draft?"] and first["next"] == ["sub"]
    saver = BotwireSaver(url=shared_url)
    graph = nested(saver)
    state = graph.get_state(_thread("nested"), subgraphs=True)
    assert state.values == {"log": ["plan"], "notes": []} and state.next == ("sub",)
    (task,) = state.tasks
    assert isinstance(task.state, StateSnapshot)  # the subgraph's own state
    assert task.state.values == {"notes": ["draft"]} and task.state.next == ("review",)
    sub_ns = task.state.config["configurable"]["checkpoint_ns"]
    assert sub_ns.startswith("sub:")
    namespaces = {_ns(t.config) for t in saver.list(_thread("nested"))}
    assert namespaces == {"", sub_ns}
    inner = list(saver.list(_thread("nested", sub_ns)))
    assert inner and all(_ns(t.config) == sub_ns for t in inner)
    assert inner[0].checkpoint["id"] == _id(task.state.config)
    second = run_child("nested", shared_url, "yes")
    # draft ran once: the subgraph went on from its own checkpoint, in the second process
    assert second["values"] == {"log": ["plan", "publish"], "notes": ["draft", "review:yes"]}
    assert second["next"] == [] and second["interrupts"] == []
    saver.close()


# -- time travel -------------------------------------------------------------------------------


def test_history_lists_every_checkpoint_newest_first(make_saver: Callable[[], Any]) -> None:
    graph, config = chain(make_saver()), _thread("t")
    assert graph.invoke({"log": []}, config) == {"log": ["a", "b", "c"]}
    history = list(chain(make_saver()).get_state_history(config))  # as after a restart
    assert [h.metadata["step"] for h in history] == [3, 2, 1, 0, -1]
    assert [h.metadata["source"] for h in history] == ["loop"] * 4 + ["input"]
    assert [h.next for h in history] == [(), ("c",), ("b",), ("a",), ("__start__",)]
    assert [h.values.get("log") for h in history] == [["a", "b", "c"], ["a", "b"], ["a"], [], []]
    for newer, older in itertools.pairwise(history):
        assert _id(newer.parent_config) == _id(older.config)
    assert history[-1].parent_config is None
    ids = [_id(h.config) for h in history]
    assert [_id(h.config) for h in graph.get_state_history(config, limit=2)] == ids[:2]
    before = graph.get_state_history(config, before=history[1].config)
    assert [_id(h.config) for h in before] == ids[2:]
    past = graph.get_state(history[2].config)  # one checkpoint, by its id
    assert (past.values, past.next, _id(past.config)) == ({"log": ["a"]}, ("b",), ids[2])


def test_resuming_from_an_earlier_checkpoint_forks(make_saver: Callable[[], Any]) -> None:
    graph, config = chain(make_saver()), _thread("t")
    graph.invoke({"log": []}, config)
    original = list(graph.get_state_history(config))
    after_a = original[2]
    assert after_a.next == ("b",)

    replayed = chain(make_saver()).invoke(None, after_a.config)  # replay b and c from there
    assert replayed == {"log": ["a", "b", "c"]}
    history = list(graph.get_state_history(config))
    assert len(history) == 8
    assert {_id(h.config) for h in original} < {_id(h.config) for h in history}  # all kept
    fork = history[2]  # LangGraph copies the checkpoint it replays from, then goes on
    assert [(h.metadata["step"], h.metadata["source"]) for h in history[:3]] == [
        (4, "loop"),
        (3, "loop"),
        (2, "fork"),
    ]
    assert (fork.values, fork.next) == (after_a.values, after_a.next)
    assert _id(history[0].parent_config) == _id(history[1].config)
    assert _id(history[1].parent_config) == _id(fork.config)
    assert _id(fork.parent_config) == _id(after_a.config)  # the fork's root

    edited = graph.update_state(after_a.config, {"log": ["edit"]})  # fork with a change
    assert graph.get_state(config).next == ("b",)
    assert chain(make_saver()).invoke(None, edited) == {"log": ["a", "edit", "b", "c"]}
    assert graph.get_state(config).values == {"log": ["a", "edit", "b", "c"]}  # the newest
    history = list(graph.get_state_history(config))
    assert len(history) == 11
    update = history[2]
    assert (update.metadata["source"], update.values) == ("update", {"log": ["a", "edit"]})
    assert _id(update.config) == _id(edited) and _id(update.parent_config) == _id(after_a.config)
    assert _id(history[1].parent_config) == _id(update.config)

    fresh = graph.invoke({"log": ["again"]}, after_a.config)  # new input at an old checkpoint
    assert fresh == {"log": ["a", "again", "a", "b", "c"]}
    history = list(graph.get_state_history(config))
    assert len(history) == 16
    start = history[4]
    assert (start.metadata["source"], start.values) == ("input", {"log": ["a"]})
    assert _id(start.parent_config) == _id(after_a.config)
    assert graph.get_state(after_a.config).values == {"log": ["a"]}  # the past is unchanged


# -- the async API -----------------------------------------------------------------------------


class Count(TypedDict):
    n: int
    log: Annotated[list[str], operator.add]


def counting(saver: BaseCheckpointSaver[Any]) -> Any:
    async def bump(state: Count) -> dict[str, Any]:
        await asyncio.sleep(0)
        return {"n": state["n"] + 1, "log": [f"bump {state['n']}"]}

    async def confirm(state: Count) -> dict[str, Any]:
        answer = interrupt(f"keep {state['n']}?")
        return {"log": [f"confirm {answer}"]}

    builder = StateGraph(Count)
    builder.add_node("bump", bump)
    builder.add_node("confirm", confirm)
    builder.add_edge(START, "bump")
    builder.add_edge("bump", "confirm")
    builder.add_edge("confirm", END)
    return builder.compile(checkpointer=saver)


def test_the_async_api_in_an_async_graph(memory_url: str, make_saver: Callable[[], Any]) -> None:
    keeper = Memory("keeper", url=memory_url)  # a memory:// store lives while it is used

    async def first() -> None:
        saver = make_saver()
        graph = counting(saver)
        threads = [_thread(f"t{i}") for i in range(4)]
        results = await asyncio.gather(
            *(graph.ainvoke({"n": i, "log": []}, c) for i, c in enumerate(threads))
        )
        for i, result in enumerate(results):
            assert result["n"] == i + 1 and [x.value for x in result["__interrupt__"]] == [
                f"keep {i + 1}?"
            ]
        state = await graph.aget_state(threads[2])
        assert state.values == {"n": 3, "log": ["bump 2"]} and state.next == ("confirm",)
        await saver.aclose()

    async def second() -> None:  # a new saver, a new event loop: as after a restart
        saver = make_saver()
        graph = counting(saver)
        config = _thread("t2")
        done = await graph.ainvoke(Command(resume="yes"), config)
        assert done == {"n": 3, "log": ["bump 2", "confirm yes"]}
        state = await graph.aget_state(config)
        assert state.next == () and state.values == done
        history = [h async for h in graph.aget_state_history(config)]
        assert [(h.metadata["step"], h.next) for h in history] == [
            (2, ()),
            (1, ("confirm",)),
            (0, ("bump",)),
            (-1, ("__start__",)),
        ]
        for newer, older in itertools.pairwise(history):
            assert _id(newer.parent_config) == _id(older.config)
        sync = [_id(h.config) for h in graph.get_state_history(config)]
        assert [_id(h.config) for h in history] == sync
        other = await graph.aget_state(_thread("t0"))  # the other threads left alone
        assert other.values == {"n": 1, "log": ["bump 0"]} and other.next == ("confirm",)
        await saver.aclose()

    asyncio.run(first())
    asyncio.run(second())
    keeper.close()


# -- side by side with LangGraph's own savers --------------------------------------------------


def _summary(graph: Any, saver: BaseCheckpointSaver[Any], thread: str) -> dict[str, Any]:
    """A thread's history as LangGraph shows it, checkpoint ids replaced by positions."""
    config = _thread(thread)
    history = list(graph.get_state_history(config))
    where = {_id(h.config): n for n, h in enumerate(history)}
    by_ns: dict[str, list[Any]] = {}
    for t in saver.list(config):  # every checkpoint namespace, newest first in each
        by_ns.setdefault(_ns(t.config), []).append(t)
    namespaces = {}
    for ns, tuples in by_ns.items():  # ids differ from run to run: named by node, positions
        ids = [_id(t.config) for t in tuples]
        namespaces[ns.split(":")[0]] = [
            (t.metadata["step"], t.metadata["source"], ids.index(_id(t.parent_config)))
            if t.parent_config
            else (t.metadata["step"], t.metadata["source"], None)
            for t in tuples
        ]
    return {
        "final": graph.get_state(config).values,
        "history": [
            (
                h.values,
                h.next,
                h.metadata["step"],
                h.metadata["source"],
                where.get(_id(h.parent_config)),
                [
                    (t.name, [i.value for i in t.interrupts], repr(t.error), t.result)
                    for t in h.tasks
                ],
            )
            for h in history
        ],
        "namespaces": namespaces,
    }


def _scenario(saver: BaseCheckpointSaver[Any], durability: str) -> dict[str, Any]:
    """The same graphs and inputs, whatever the saver: what LangGraph shows of them."""
    graph = chain(saver)
    graph.invoke({"log": []}, _thread("chain"), durability=durability)
    history = list(graph.get_state_history(_thread("chain")))  # "exit": the last one alone
    after_a = next((h for h in history if h.next == ("b",)), history[-1])
    graph.invoke(None, after_a.config, durability=durability)
    edited = graph.update_state(after_a.config, {"log": ["edit"]})
    graph.invoke(None, edited, durability=durability)
    graph.invoke({"log": ["again"]}, after_a.config, durability=durability)
    ask = asking(saver)
    ask.invoke({"name": "", "greeting": ""}, _thread("ask"), durability=durability)
    ask.invoke(Command(resume="Ada"), _thread("ask"), durability=durability)
    outer = nested(saver)
    outer.invoke({"log": [], "notes": []}, _thread("nested"), durability=durability)
    waiting = outer.get_state(_thread("nested"), subgraphs=True)
    sub = waiting.tasks[0].state
    assert isinstance(sub, StateSnapshot)
    sub_ns = _thread("nested", _ns(sub.config))  # the subgraph's every checkpoint
    inner = (sub.values, sub.next, [h.metadata["step"] for h in outer.get_state_history(sub_ns)])
    outer.invoke(Command(resume="yes"), _thread("nested"), durability=durability)
    calls: list[str] = []
    fan = branches(saver, calls, failures=1)
    with pytest.raises(RuntimeError, match="y failed"):
        fan.invoke({"log": []}, _thread("fan"), durability=durability)
    fan.invoke(None, _thread("fan"), durability=durability)  # x's saved write is reused
    return {
        "fan": _summary(fan, saver, "fan"),
        "fan_calls": sorted(calls),
        "chain": _summary(graph, saver, "chain"),
        "ask": _summary(ask, saver, "ask"),
        "nested": _summary(outer, saver, "nested"),
        "inner": inner,
    }


@pytest.mark.parametrize(
    ("durability", "namespace"),
    [
        ("sync", "langgraph-checkpoints"),
        ("async", "langgraph-checkpoints"),
        ("exit", "langgraph-checkpoints"),
        ("async", "lg-{scope}"),  # a namespace per thread
    ],
)
def test_the_same_answers_as_langgraphs_own_savers(
    durability: str, namespace: str, memory_url: str, tmp_path: Path
) -> None:
    saver = BotwireSaver(url=memory_url, namespace=namespace)
    ours = _scenario(saver, durability)
    if "{scope}" in namespace:  # each thread's checkpoints in its own namespace
        for thread in ("chain", "ask", "nested", "fan"):
            with Memory(f"lg-{thread}", url=memory_url) as memory:
                assert memory.count("k/") == sum(
                    len(r) for r in ours[thread]["namespaces"].values()
                )
    saver.close()
    assert ours == _scenario(InMemorySaver(), durability)
    with sqlite3.connect(tmp_path / "langgraph.db", check_same_thread=False) as conn:
        assert ours == _scenario(SqliteSaver(conn), durability)
    assert ours["ask"]["final"] == {"name": "Ada", "greeting": "hello Ada"}  # not all empty
    assert ours["nested"]["final"] == {"log": ["plan", "publish"], "notes": ["draft", "review:yes"]}
    assert ours["nested"]["namespaces"].keys() == {"", "sub"}
    if durability != "exit":  # which then keeps a run's last checkpoint alone
        assert ours["chain"]["final"] == {"log": ["a", "again", "a", "b", "c"]}
        assert ours["inner"] == ({"notes": ["draft"]}, ("review",), [1, 0, -1])
        assert ours["fan"]["final"] == {"log": ["x", "y", "join"]}
        assert ours["fan_calls"] == ["join", "x", "y", "y"]  # x ran once
