"""LangGraph: an agent's threads that survive restarts, with botwire as the checkpointer.

    pip install 'botwire[langgraph]'
    python examples/langgraph_checkpointer.py              # run it twice: the thread goes on
    python examples/langgraph_checkpointer.py http://127.0.0.1:8000   # or on a server

A ReAct agent (LangGraph's prebuilt one) with one tool saves every step of a
thread in botwire: the embedded SQLite under $BOTWIRE_HOME by default, or the
store URL given as the first argument (a server, PostgreSQL...). Each run adds
one user turn to the thread "demo-thread", which a new process picks up where
the last one stopped. A fake model stands in for the LLM, so it runs offline.
"""

from __future__ import annotations

import sys
import uuid
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.tools import tool

from botwire.integrations.langgraph import BotwireSaver


@tool
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


class FakeModel(GenericFakeChatModel):
    """Answers from a script; an agent binds its tools to the model, which needs no schema."""

    def bind_tools(self, tools: Sequence[Any], **kwargs: Any) -> FakeModel:
        return self


def agent(checkpointer: BotwireSaver) -> Any:
    call = {"name": "add", "args": {"a": 2, "b": 3}, "id": f"call-{uuid.uuid4().hex[:8]}"}
    model = FakeModel(
        messages=iter([AIMessage(content="", tool_calls=[call]), AIMessage(content="2 + 3 = 5")])
    )
    create: Callable[..., Any]
    try:  # LangChain 1.0's agent, if installed; else LangGraph's prebuilt one
        from langchain.agents import create_agent

        create = create_agent
    except ImportError:
        from langgraph.prebuilt import create_react_agent

        create = create_react_agent
    with warnings.catch_warnings():  # create_react_agent is deprecated for create_agent
        warnings.simplefilter("ignore", DeprecationWarning)
        return create(model, [add], checkpointer=checkpointer)


url = sys.argv[1] if len(sys.argv) > 1 else None  # None: botwire's embedded SQLite
checkpointer = BotwireSaver(url=url)
graph = agent(checkpointer)
config = {"configurable": {"thread_id": "demo-thread"}}

result = graph.invoke({"messages": [("user", "What is 2 + 3?")]}, config)
print(result["messages"][-1].content)
messages = graph.get_state(config).values["messages"]
print(f"thread demo-thread: {len(messages)} messages")
checkpointer.close()
