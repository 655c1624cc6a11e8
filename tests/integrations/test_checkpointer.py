"""BotwireSaver against LangGraph's own conformance suite on every store, and what that suite
does not cover: values past one key and one request, all-or-nothing checkpoints, a writer
killed half-way, concurrent threads in several processes, a namespace per thread."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading
from collections.abc import AsyncGenerator, Iterator
from pathlib import Path
from typing import Annotated, Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.checkpoint.base import BaseCheckpointSaver, CheckpointTuple, empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from langgraph.checkpoint.conformance import checkpointer_test, validate
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

from botwire import Forbidden, Memory, ValueTooLarge
from botwire.integrations.langgraph import BotwireSaver
from botwire.stores.sqlite import SqliteStore
from botwire_server import Settings, create_app

from ..loopback import Server, loopback


@pytest.fixture(params=["sqlite", "memory", "http", "http-cached", "postgres", "per-thread"])
def saver_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """``make()``: a new BotwireSaver on the store under test (all on one store)."""
    kind = request.param
    server = None
    if kind == "postgres":
        from ..postgres import fresh_schema_url

        url = fresh_schema_url()
    elif kind == "memory":
        url = f"memory://{tmp_path.name}"
    elif kind.startswith("http"):
        (tmp_path / "server").mkdir()
        server = Server(tmp_path / "server")
        url = server.url
    else:
        url = f"sqlite:///{tmp_path}/checkpoints.db"
    made: list[BotwireSaver] = []
    owned: list[Memory] = []

    def make() -> BotwireSaver:
        if kind == "http-cached":  # a Memory with the read cache (a saver's own has none)
            owned.append(Memory("langgraph-checkpoints", url=url))
            saver = BotwireSaver(owned[-1])
        elif kind == "per-thread":  # thread ids are UUIDs here: valid in a namespace name
            saver = BotwireSaver(url=url, namespace="cp-{scope}")
        else:
            saver = BotwireSaver(url=url)
        made.append(saver)
        return saver

    make.url = url  # type: ignore[attr-defined]
    make.namespace = "cp-{scope}" if kind == "per-thread" else "langgraph-checkpoints"  # type: ignore[attr-defined]
    yield make
    for saver in made:
        saver.close()
    for memory in owned:
        memory.close()
    if server is not None:
        server.stop()


def test_langgraphs_conformance_suite_passes_every_capability(saver_factory: Any) -> None:
    @checkpointer_test(name="BotwireSaver")
    async def factory() -> AsyncGenerator[BaseCheckpointSaver[Any], None]:
        yield saver_factory()

    report = asyncio.run(validate(factory))
    failed = {
        name: [str(f)[:300] for f in (result.failures or [])]
        for name, result in report.results.items()
        if result.passed is not True
    }
    assert failed == {}
    assert set(report.results) == {
        "put",
        "put_writes",
        "get_tuple",
        "list",
        "delete_thread",
        "delete_for_runs",
        "copy_thread",
        "prune",
    }


# -- values past one key and one request -------------------------------------------------------


def _put(saver: BaseCheckpointSaver[Any], thread: str, values: dict[str, Any]) -> dict[str, Any]:
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=-1))
    checkpoint["channel_values"] = values
    config = {"configurable": {"thread_id": thread, "checkpoint_ns": ""}}
    return dict(saver.put(config, checkpoint, {"source": "input", "step": 0}, {}))  # type: ignore[arg-type]


BIG = "".join(f"{n:08d} ø€ " for n in range(300_000))  # 4.5 MB of UTF-8


def test_checkpoints_and_writes_past_a_default_servers_limits(tmp_path: Path) -> None:
    """1 MiB a value and 2 MiB a request: a 4.5 MB channel value and a 4.5 MB pending write."""
    server = Server(tmp_path)
    saver = BotwireSaver(url=server.url)
    ours, theirs = saver, InMemorySaver()
    for saver_ in (ours, theirs):
        config = _put(saver_, "t", {"doc": BIG, "n": 1})
        saver_.put_writes(config, [("doc", BIG[::-1]), ("n", 2)], task_id="task-1")  # type: ignore[arg-type]
    got = [s.get_tuple({"configurable": {"thread_id": "t"}}) for s in (ours, theirs)]
    assert got[0] is not None and got[1] is not None
    assert got[0].checkpoint["channel_values"] == {"doc": BIG, "n": 1}
    assert (
        got[0].pending_writes
        == got[1].pending_writes
        == [
            ("task-1", "doc", BIG[::-1]),
            ("task-1", "n", 2),
        ]
    )
    fresh = BotwireSaver(url=server.url)  # another process's view: no shared state
    again = fresh.get_tuple({"configurable": {"thread_id": "t"}})
    assert again is not None and again.checkpoint["channel_values"]["doc"] == BIG
    saver.close()
    fresh.close()
    server.stop()


def test_a_reader_sees_a_whole_checkpoint_or_the_one_before(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    writer, reader = BotwireSaver(url=url), BotwireSaver(url=url)
    _put(writer, "t", {"doc": "small", "n": 0})
    seen: list[CheckpointTuple | None] = []
    done = threading.Event()

    def read() -> None:
        while not done.is_set():
            seen.append(reader.get_tuple({"configurable": {"thread_id": "t"}}))

    thread = threading.Thread(target=read)
    thread.start()
    for n in range(1, 4):
        _put(writer, "t", {"doc": BIG[: len(BIG) // n], "n": n})
    done.set()
    thread.join()
    assert seen
    for tup in seen:
        assert tup is not None
        values = tup.checkpoint["channel_values"]
        assert values["doc"] == ("small" if values["n"] == 0 else BIG[: len(BIG) // values["n"]])


def test_a_writer_killed_between_pieces_and_record_leaves_the_thread_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"sqlite:///{tmp_path}/c.db"
    saver = BotwireSaver(url=url)
    _put(saver, "t", {"doc": "before"})
    real = SqliteStore.batch

    def killed_at_the_record(self: SqliteStore, namespace: str, ops: Any, **kw: Any) -> Any:
        if any(getattr(op, "key", "").startswith("k/") for op in ops):
            raise KeyboardInterrupt  # kill -9 after the pieces went out
        return real(self, namespace, ops, **kw)

    monkeypatch.setattr(SqliteStore, "batch", killed_at_the_record)
    with pytest.raises(KeyboardInterrupt):
        _put(saver, "t", {"doc": BIG})
    monkeypatch.setattr(SqliteStore, "batch", real)
    got = BotwireSaver(url=url).get_tuple({"configurable": {"thread_id": "t"}})
    assert got is not None and got.checkpoint["channel_values"] == {"doc": "before"}
    memory = Memory("langgraph-checkpoints", url=url)
    pieces = [k for k in memory.list_keys("x/") if "/p/" in k]
    assert pieces and all(0 < (memory.ttl(k) or 0) <= 3600 for k in pieces)  # they expire
    assert len(list(BotwireSaver(url=url).list(None))) == 1


# -- concurrency and tenants --------------------------------------------------------------------

WRITER = """
import sys
from langgraph.checkpoint.base import empty_checkpoint
from langgraph.checkpoint.base.id import uuid6
from botwire.integrations.langgraph import BotwireSaver
from botwire.stores.sqlite import SqliteStore
saver = BotwireSaver(url=sys.argv[1], namespace=sys.argv[3])
config = {"configurable": {"thread_id": sys.argv[2], "checkpoint_ns": ""}}
for n in range(40):
    checkpoint = empty_checkpoint()
    checkpoint["id"] = str(uuid6(clock_seq=-1))
    checkpoint["channel_values"] = {"n": n}
    config = saver.put(config, checkpoint, {"step": n}, {})
    saver.put_writes(config, [("n", n), ("log", f"{sys.argv[2]}-{n}")], task_id=f"task-{n}")
"""


def test_two_threads_in_two_processes_lose_nothing(saver_factory: Any) -> None:
    saver: BotwireSaver = saver_factory()
    url = saver_factory.url
    if url.startswith("memory://"):
        pytest.skip("an in-process store is not shared by another process")
    threads = [f"thread-{n}" for n in range(2)]
    children = [
        subprocess.Popen([sys.executable, "-c", WRITER, url, thread, saver_factory.namespace])
        for thread in threads
    ]
    assert [child.wait(timeout=120) for child in children] == [0, 0]
    for thread in threads:
        history = list(saver.list({"configurable": {"thread_id": thread}}))
        assert [t.metadata["step"] for t in history] == list(range(39, -1, -1))
        assert all(len(t.pending_writes or []) == 2 for t in history)
        assert history[0].parent_config == history[1].config  # the chain is whole


def test_a_namespace_per_thread_and_a_token_for_one(tmp_path: Path) -> None:
    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    try:
        admin, _ = app.state.tokens.create(["cp-*"])
        alice, _ = app.state.tokens.create(["cp-alice*"])
        everyone = BotwireSaver(url=url, namespace="cp-{scope}", api_key=admin)
        for thread in ("alice-1", "bob-1"):
            _put(everyone, thread, {"owner": thread})
        assert Memory("cp-alice-1", url=url, api_key=admin).count("k/") == 1
        mine = BotwireSaver(url=url, namespace="cp-{scope}", api_key=alice)
        got = mine.get_tuple({"configurable": {"thread_id": "alice-1"}})
        assert got is not None and got.checkpoint["channel_values"] == {"owner": "alice-1"}
        with pytest.raises(Forbidden):
            mine.get_tuple({"configurable": {"thread_id": "bob-1"}})
        everyone.close()
        mine.close()
    finally:
        shutdown()


# -- what a turn costs against the server's daily write limit (the README's figures) ----------


class State(TypedDict):
    messages: Annotated[list[Any], add_messages]


def _agent_loop(saver: BotwireSaver, tool_calls: int) -> Any:
    """A tool-calling agent's shape: ``agent`` and ``tools`` nodes taking turns."""

    def agent(state: State) -> dict[str, Any]:
        done = sum(isinstance(m, ToolMessage) for m in state["messages"]) % (tool_calls + 1)
        if done == tool_calls:
            return {"messages": [AIMessage("answer")]}
        return {
            "messages": [AIMessage("", tool_calls=[{"name": "t", "args": {}, "id": f"c{done}"}])]
        }

    def tools(state: State) -> dict[str, Any]:
        return {
            "messages": [ToolMessage("r", tool_call_id=state["messages"][-1].tool_calls[0]["id"])]
        }

    builder = StateGraph(State)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges(
        "agent", lambda s: "tools" if s["messages"][-1].tool_calls else END, ["tools", END]
    )
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=saver)


@pytest.mark.parametrize(
    ("durability", "writes"), [("async", 4 * 4 + 5), ("sync", 4 * 4 + 5), ("exit", 1)]
)
def test_writes_a_turn_costs(tmp_path: Path, durability: str, writes: int) -> None:
    """A first turn with 4 tool calls: a checkpoint for the input, one when it is applied and
    one a super-step (2 + 2 x 4 + 1), and each task's writes (the input's and 2 x 4 + 1 nodes'),
    one write each; with ``durability="exit"``, only the final checkpoint."""
    server = Server(tmp_path)
    saver = BotwireSaver(url=server.url, namespace="lg-{scope}")
    graph = _agent_loop(saver, tool_calls=4)
    config = {"configurable": {"thread_id": "alice-1"}}
    out = graph.invoke({"messages": [HumanMessage("hi")]}, config, durability=durability)
    assert out["messages"][-1].content == "answer"
    assert Memory("lg-alice-1", url=server.url).stats().writes_today == writes
    saver.close()
    server.stop()


def test_a_checkpoint_past_what_one_batch_can_point_at_is_refused_before_any_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import botwire.integrations.checkpointer as module

    monkeypatch.setattr(module, "PIECE", 100)  # 1,000 pieces of 100 bytes: past one batch
    saver = BotwireSaver(url=f"sqlite:///{tmp_path}/c.db")
    with pytest.raises(ValueTooLarge):
        _put(saver, "t", {"doc": "x" * 80_000})
    assert Memory("langgraph-checkpoints", url=f"sqlite:///{tmp_path}/c.db").count() == 0
