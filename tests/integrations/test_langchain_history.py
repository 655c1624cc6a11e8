"""BotwireChatMessageHistory, round 2: one message per key, trimming in whole exchanges,
round-1 lists read and migrated, and a namespace per session."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from langchain_core.chat_history import InMemoryChatMessageHistory
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
    message_to_dict,
    trim_messages,
)
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from botwire import Forbidden, Memory
from botwire.integrations.langchain import BotwireChatMessageHistory
from botwire_server import Settings, create_app

from ..loopback import loopback
from .conftest import MemoryFactory

# langchain-core 1.7 deprecates both (for LangGraph persistence); they still work, and they are
# what this adapter is used with and compared to.
pytestmark = [
    pytest.mark.filterwarnings("ignore:RunnableWithMessageHistory is deprecated"),
    pytest.mark.filterwarnings("ignore:The class `InMemoryChatMessageHistory` was deprecated"),
]


def _calls(*ids: str) -> AIMessage:
    return AIMessage("", tool_calls=[{"name": "lookup", "args": {"q": i}, "id": i} for i in ids])


def _exchange(n: int, tools: int, filler: str = "") -> list[BaseMessage]:
    """A human question, and the answer: with ``tools`` parallel tool calls before it."""
    messages: list[BaseMessage] = [HumanMessage(f"question {n}")]
    if tools:
        ids = [f"call-{n}-{t}" for t in range(tools)]
        messages.append(_calls(*ids))
        messages += [ToolMessage(f"result {i} {filler}", tool_call_id=i) for i in ids]
    messages.append(AIMessage(f"answer {n}"))
    return messages


def _valid(messages: list[BaseMessage]) -> bool:
    """What OpenAI and Anthropic accept: every tool result after the AI message that called
    it, and the first message a human (or system) one."""
    called: set[str] = set()
    for message in messages:
        if isinstance(message, AIMessage):
            called |= {call["id"] for call in message.tool_calls if call["id"]}
        if isinstance(message, ToolMessage) and message.tool_call_id not in called:
            return False
    return not messages or isinstance(messages[0], (HumanMessage, SystemMessage))


def _reference(limit: int) -> Any:
    """LangChain's own history, trimmed as documented: trim_messages after each add."""
    history = InMemoryChatMessageHistory()

    def add(messages: list[BaseMessage]) -> None:
        history.add_messages(messages)
        history.messages = trim_messages(
            history.messages,
            strategy="last",
            token_counter=len,
            max_tokens=limit,
            start_on=("human", "system"),
        )

    return history, add


def _model(*replies: AIMessage) -> GenericFakeChatModel:
    return GenericFakeChatModel(messages=iter(replies))


def _chain(history_of: Any, model: GenericFakeChatModel) -> RunnableWithMessageHistory:
    prompt = ChatPromptTemplate.from_messages(
        [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")]
    )
    return RunnableWithMessageHistory(
        prompt | model,
        history_of,
        input_messages_key="question",
        history_messages_key="history",
    )


# -- trimming in whole exchanges (issue 13, bug 5) -------------------------------------------


def test_trimming_never_keeps_tool_results_without_their_call(make_memory: MemoryFactory) -> None:
    """The reporter's case: after a parallel tool call, max_messages=3 kept
    [ToolMessage, ToolMessage, AIMessage]. Through RunnableWithMessageHistory, whose model
    calls two tools; the tool results go back in as the next input."""
    memory = make_memory("langchain")
    model = _model(AIMessage("hello"), _calls("c1", "c2"), AIMessage("Oslo is rainy and 4°C"))
    for limit in (3, 4, 6):
        BotwireChatMessageHistory("s", memory).clear()
        chain = _chain(partial(BotwireChatMessageHistory, memory=memory, max_messages=limit), model)
        config = {"configurable": {"session_id": "s"}}
        reference, add = _reference(limit)
        for question in ("hi", "weather in Oslo?"):
            reply = chain.invoke({"question": question}, config)
            add([HumanMessage(question), reply])
        results = [ToolMessage("rain", tool_call_id="c1"), ToolMessage("4°C", tool_call_id="c2")]
        reply = chain.invoke({"question": results}, config)
        add([*results, reply])
        kept = BotwireChatMessageHistory("s", memory).messages
        assert _valid(kept), (limit, kept)
        assert kept == reference.messages, limit
        model = _model(AIMessage("hello"), _calls("c1", "c2"), AIMessage("Oslo is rainy and 4°C"))
    assert [type(m).__name__ for m in kept] == [  # limit 6: from the question that called
        "HumanMessage",
        "AIMessage",
        "ToolMessage",
        "ToolMessage",
        "AIMessage",
    ]


def test_trimming_matches_trim_messages_on_random_conversations() -> None:
    rng = random.Random(13)
    memory = Memory("langchain", url="memory://trim")
    for run in range(40):
        limit = rng.randint(1, 12)
        ours = BotwireChatMessageHistory(f"s{run}", memory, max_messages=limit)
        reference, add = _reference(limit)
        if rng.random() < 0.3:
            ours.add_messages([SystemMessage("be brief")])
            add([SystemMessage("be brief")])
        for n in range(rng.randint(1, 12)):
            exchange = _exchange(n, rng.choice([0, 0, 1, 2, 3]))
            cut = rng.randint(0, len(exchange))  # added in one call or two
            for part in (exchange[:cut], exchange[cut:]):
                if part:
                    ours.add_messages(part)
                    add(part)
            assert ours.messages == reference.messages, (run, n, limit)
            assert len(ours.messages) <= limit and _valid(ours.messages)


# -- one message per key: no size limit but the quota -----------------------------------------


@pytest.fixture
def default_server(tmp_path: Path) -> Iterator[str]:
    """The server with every default limit (1,000 writes a day, 1 MiB a value, 50 MB...)."""
    app = create_app(Settings(db=str(tmp_path / "server.db")))
    url, shutdown = loopback().serve(app)
    yield url
    shutdown()


def test_a_500_turn_conversation_with_tool_calls(default_server: str) -> None:
    """Round 1 kept the history as one value, refused at turn ~120 (ValueTooLarge,
    1,056,001 bytes); here it is ~5 MB in 2,500 entries."""
    with Memory("langchain", url=default_server) as memory:
        history = BotwireChatMessageHistory("long", memory)
        filler = "x" * 4000
        for n in range(500):
            history.add_messages(_exchange(n, tools=2, filler=filler))
        messages = history.messages
        assert len(messages) == 2500 and messages[-1].content == "answer 499"
        assert [m.content for m in messages[:2]] == ["question 0", ""]
        assert memory.stats().bytes > 4_000_000
        assert memory.stats().writes_today == 500  # an add_messages is one atomic write
        # The chain reads it back, and adds a turn.
        chain = _chain(lambda sid: BotwireChatMessageHistory(sid, memory), _model(AIMessage("ok")))
        chain.invoke({"question": "still there?"}, {"configurable": {"session_id": "long"}})
        assert len(history.messages) == 2502


def test_a_round_1_history_is_read_then_migrated(make_memory: MemoryFactory) -> None:
    memory = make_memory("langchain")
    old = [HumanMessage("hi"), _calls("c1"), ToolMessage("r", tool_call_id="c1"), AIMessage("ok")]
    memory.set("history:s-1", [message_to_dict(m) for m in old])  # round 1's one list
    history = BotwireChatMessageHistory("s-1", memory)
    assert history.messages == old
    history.add_messages([HumanMessage("and now?")])
    assert history.messages == [*old, HumanMessage("and now?")]
    assert not memory.exists("history:s-1")  # moved into entries by that append
    assert len(memory.list_keys("history:s-1/m/")) == 5

    async def run() -> None:
        again = BotwireChatMessageHistory("s-1", memory)
        assert await again.aget_messages() == [*old, HumanMessage("and now?")]
        await again.aadd_messages([AIMessage("here")])
        assert len(await again.aget_messages()) == 6
        await again.aclear()
        assert await again.aget_messages() == [] and memory.list_keys() == []

    asyncio.run(run())


def test_a_session_id_that_names_another_sessions_key_touches_nothing_of_it() -> None:
    memory = Memory("langchain", url="memory://collide")
    victim = BotwireChatMessageHistory("s", memory)
    victim.add_messages([HumanMessage("mine")])
    odd = BotwireChatMessageHistory("s/head", memory)  # its round-1 key is s's head
    assert odd.messages == []
    odd.add_messages([HumanMessage("other")])
    odd.clear()
    assert victim.messages == [HumanMessage("mine")]


def test_the_history_behaves_as_langchains_own(make_memory: MemoryFactory) -> None:
    ours, theirs = (
        BotwireChatMessageHistory("p", make_memory("langchain")),
        InMemoryChatMessageHistory(),
    )
    batches = [_exchange(0, 0), _exchange(1, 2), [AIMessage("a follow-up", id="m-1")] * 2, []]
    for batch in batches:
        ours.add_messages(batch)
        theirs.add_messages(batch)
        assert ours.messages == theirs.messages
    ours.add_message(HumanMessage("one"))
    theirs.add_message(HumanMessage("one"))
    assert ours.messages == theirs.messages  # same ids twice are kept twice, as LangChain does
    many = [HumanMessage(f"m{i}") for i in range(700)]  # more than one atomic part
    ours.add_messages(many)
    theirs.add_messages(many)
    assert ours.messages == theirs.messages
    ours.clear()
    theirs.clear()
    assert ours.messages == theirs.messages == []


# -- a namespace per session --------------------------------------------------------------


def test_each_session_in_a_namespace_of_its_own(memory_url: str) -> None:
    def history(session_id: str) -> BotwireChatMessageHistory:
        return BotwireChatMessageHistory(session_id, namespace="chat-{scope}", url=memory_url)

    chain = _chain(history, _model(AIMessage("hi Ann"), AIMessage("hi Bob"), AIMessage("Ann")))
    chain.invoke({"question": "I am Ann"}, {"configurable": {"session_id": "ann"}})
    chain.invoke({"question": "I am Bob"}, {"configurable": {"session_id": "bob"}})
    chain.invoke({"question": "who am I?"}, {"configurable": {"session_id": "ann"}})
    with Memory("chat-ann", url=memory_url) as ann, Memory("chat-bob", url=memory_url) as bob:
        assert ann.count() == 5 and bob.count() == 3  # a head and each message
        assert [m.content for m in history("ann").messages] == [
            "I am Ann",
            "hi Ann",
            "who am I?",
            "Ann",
        ]
        assert [m.content for m in history("bob").messages] == ["I am Bob", "hi Bob"]
    upper = BotwireChatMessageHistory("x", namespace=lambda sid: f"c-{sid.upper()}", url=memory_url)
    upper.add_message(HumanMessage("x"))
    assert upper.memory.namespace == "c-X"


def test_a_sessions_token_reaches_only_its_namespace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    try:
        secret, _ = app.state.tokens.create(["chat-ann"])
        monkeypatch.setenv("BOTWIRE_API_KEY", secret)
        ann = BotwireChatMessageHistory("ann", namespace="chat-{scope}", url=url)
        ann.add_messages(_exchange(0, 1))
        assert len(ann.messages) == 4
        bob = BotwireChatMessageHistory("bob", namespace="chat-{scope}", url=url)
        with pytest.raises(Forbidden):
            bob.add_messages(_exchange(0, 0))
        with pytest.raises(Forbidden):
            assert bob.messages
    finally:
        shutdown()
