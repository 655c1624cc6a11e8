"""LangGraph checkpointers: BotwireSaver against LangGraph's SqliteSaver and PostgresSaver.

    python benchmarks/checkpointer.py [--turns 30] [--rounds 3] [--postgres URL]

One graph for every saver: an agent turn of 20 checkpoints (the input, then
``agent`` and ``tools`` nodes taking turns, 9 tool calls and an answer, each
adding a message, as a tool-calling agent does: the thread's message list grows
every step), on one thread per saver and round; ``--turns`` turns a round. Per
turn it times ``graph.invoke`` (p50, p99) and, after the turns,
``graph.get_state`` of the thread (p50 over 200 calls).
Savers run alternately, round by round, each on its own fresh file or schema;
the table shows medians over rounds, and ratios against LangGraph's own saver
on the same database (SqliteSaver on a file with WAL; PostgresSaver with an
autocommit connection, as its docs set it up). InMemorySaver is the floor.

PostgreSQL (``--postgres``, default ``$BOTWIRE_TEST_POSTGRES_URL``): each saver
in a fresh schema, dropped afterwards.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, Any, TypedDict
from urllib.parse import quote

from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langgraph.graph import END, START, StateGraph
from langgraph.graph.message import add_messages

STEPS = 20  # checkpoints a turn: the input, 10 agent and 9 tool steps (and 20 messages)


class AgentState(TypedDict):
    messages: Annotated[list[Any], add_messages]
    calls: int


def graph_with(saver: Any) -> Any:
    def agent(state: AgentState) -> dict[str, Any]:
        n = state.get("calls", 0) + 1
        if n % (STEPS // 2) == 0:  # the answer, after 9 tool calls
            return {"messages": [AIMessage("answer " * 20)], "calls": n}
        call = {"name": "lookup", "args": {"q": f"step {n}"}, "id": f"c-{uuid.uuid4().hex[:8]}"}
        return {"messages": [AIMessage("thinking " * 20, tool_calls=[call])], "calls": n}

    def tools(state: AgentState) -> dict[str, Any]:
        last = state["messages"][-1]
        call = last.tool_calls[0]
        return {"messages": [ToolMessage("result " * 40, tool_call_id=call["id"])]}

    def route(state: AgentState) -> str:
        return END if state["calls"] % (STEPS // 2) == 0 else "tools"

    builder = StateGraph(AgentState)
    builder.add_node("agent", agent)
    builder.add_node("tools", tools)
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", route, {"tools": "tools", END: END})
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=saver)


def fresh_schema(url: str) -> tuple[str, Callable[[], None]]:
    import psycopg

    schema = f"bwcp_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"CREATE SCHEMA {schema}")

    def drop() -> None:
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {schema} CASCADE")

    joined = f"{url}{'&' if '?' in url else '?'}options={quote('-csearch_path=' + schema)}"
    return joined, drop


@contextmanager
def saver_for(name: str, tmp: Path, postgres: str | None) -> Iterator[Any]:
    if name == "InMemorySaver":
        from langgraph.checkpoint.memory import InMemorySaver

        yield InMemorySaver()
    elif name == "SqliteSaver":
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        conn = sqlite3.connect(tmp / "lg.db", check_same_thread=False)
        conn.execute("PRAGMA journal_mode=WAL")
        yield SqliteSaver(conn)
        conn.close()
    elif name == "botwire embedded":
        from botwire.integrations.langgraph import BotwireSaver

        saver = BotwireSaver(url=f"sqlite:///{tmp}/botwire.db")
        yield saver
        saver.close()
    elif name == "PostgresSaver":
        import psycopg
        from langgraph.checkpoint.postgres import PostgresSaver
        from psycopg.rows import dict_row

        assert postgres
        url, drop = fresh_schema(postgres)
        with psycopg.connect(url, autocommit=True, prepare_threshold=0, row_factory=dict_row) as c:
            saver = PostgresSaver(c)  # type: ignore[arg-type]
            saver.setup()
            yield saver
        drop()
    elif name == "botwire PostgreSQL":
        from botwire.integrations.langgraph import BotwireSaver

        assert postgres
        url, drop = fresh_schema(postgres)
        saver = BotwireSaver(url=url)
        yield saver
        saver.close()
        drop()
    else:
        raise ValueError(name)


def one_round(name: str, turns: int, postgres: str | None) -> dict[str, float]:
    tmp = Path(tempfile.mkdtemp(prefix="bwcp-"))
    try:
        with saver_for(name, tmp, postgres) as saver:
            graph = graph_with(saver)
            config = {"configurable": {"thread_id": f"t-{uuid.uuid4().hex[:8]}"}}
            times = []
            for n in range(turns):
                start = time.perf_counter()
                out = graph.invoke({"messages": [HumanMessage(f"turn {n}")]}, config)
                times.append(time.perf_counter() - start)
            assert len(out["messages"]) == turns * STEPS
            gets = []
            for _ in range(200):
                start = time.perf_counter()
                state = graph.get_state(config)
                gets.append(time.perf_counter() - start)
            assert len(state.values["messages"]) == turns * STEPS
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    times.sort()
    return {
        "p50": statistics.median(times),
        "p99": times[min(len(times) - 1, int(len(times) * 0.99))],
        "get": statistics.median(gets),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--postgres", default=os.environ.get("BOTWIRE_TEST_POSTGRES_URL"))
    args = parser.parse_args()
    names = ["InMemorySaver", "SqliteSaver", "botwire embedded"]
    if args.postgres:
        names += ["PostgresSaver", "botwire PostgreSQL"]
    results: dict[str, list[dict[str, float]]] = {name: [] for name in names}
    for _ in range(args.rounds):
        for name in names:
            results[name].append(one_round(name, args.turns, args.postgres))
    peer = {"botwire embedded": "SqliteSaver", "botwire PostgreSQL": "PostgresSaver"}
    median = {
        name: {k: statistics.median(r[k] for r in rounds) for k in ("p50", "p99", "get")}
        for name, rounds in results.items()
    }
    print(f"{args.turns} turns of {STEPS} super-steps, {args.rounds} rounds (medians)\n")
    print("| saver | turn p50 ms | turn p99 ms | get_state p50 ms | turn p50 vs peer |")
    print("|---|---|---|---|---|")
    for name in names:
        m = median[name]
        ratio = f"{m['p50'] / median[peer[name]]['p50']:.2f}x" if name in peer else ""
        print(
            f"| {name} | {m['p50'] * 1e3:.2f} | {m['p99'] * 1e3:.2f} | "
            f"{m['get'] * 1e3:.3f} | {ratio} |"
        )


if __name__ == "__main__":
    main()
