"""LangGraph: long-term memory and a node cache that survive restarts, on botwire.

    pip install 'botwire[langgraph]'
    python examples/langgraph_agent.py     # run it twice: the second run remembers

The graph remembers each user's facts in botwire through LangGraph's own store
interface (`runtime.store`), and caches an expensive node with `CachePolicy`.
Each user is a tenant: the head of the LangGraph namespace, `(user, "facts")`,
picks the botwire namespace (`langgraph-u-42`), which a server token for
`langgraph-u-42` alone can reach. A fake model stands in for the LLM, so it
runs offline.
"""

from __future__ import annotations

from typing import Any, TypedDict

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langgraph.graph import END, START, StateGraph
from langgraph.runtime import Runtime
from langgraph.types import CachePolicy

from botwire.integrations.langgraph import BotwireCache, BotwireStore


class State(TypedDict):
    user: str
    message: str
    answer: str


model = GenericFakeChatModel(messages=iter([AIMessage(content="Noted!")] * 10))


def learn(state: State, runtime: Runtime) -> dict[str, Any]:
    assert runtime.store is not None
    facts = (state["user"], "facts")
    known = [item.value["text"] for item in runtime.store.search(facts, limit=100)]
    runtime.store.put(facts, f"fact-{len(known)}", {"text": state["message"]})
    reply = model.invoke(state["message"]).content
    return {"answer": f"{reply} I now know {len(known) + 1} things about you: {known}"}


def summary(state: State) -> dict[str, Any]:  # pretend this is slow: it is cached
    return {"answer": state["answer"] + " (summary cached)"}


builder = StateGraph(State)
builder.add_node("learn", learn)
builder.add_node("summary", summary, cache_policy=CachePolicy(ttl=3600))
builder.add_edge(START, "learn")
builder.add_edge("learn", "summary")
builder.add_edge("summary", END)
graph = builder.compile(store=BotwireStore(namespace="langgraph-{scope}"), cache=BotwireCache())

result = graph.invoke({"user": "u-42", "message": "I like tea", "answer": ""})
print(result["answer"])
