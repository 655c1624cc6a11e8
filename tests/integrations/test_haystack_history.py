"""The Haystack chat message store, round 2 (issue 13): concurrent writers, trimming,
parity with haystack-experimental's InMemoryChatMessageStore, histories of any
length, round-1 data, and a namespace per conversation."""

from __future__ import annotations

import copy
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from haystack import Pipeline
from haystack.dataclasses import ChatMessage, ToolCall
from haystack_experimental.chat_message_stores.in_memory import InMemoryChatMessageStore
from haystack_experimental.components.retrievers import ChatMessageRetriever
from haystack_experimental.components.writers import ChatMessageWriter

from botwire import Forbidden, Memory
from botwire.integrations.haystack import BotwireChatMessageStore
from botwire.ops import Get, Op, Scan
from botwire.stores.base import Store
from botwire.stores.memory import MemoryStore

from ..conftest import FakeClock
from ..loopback import Server, loopback
from ..postgres import ENV as POSTGRES_ENV
from ..postgres import fresh_schema_url
from .test_haystack import no_telemetry  # noqa: F401 - the autouse fixture

# -- bug 1: writers racing on one conversation ----------------------------------------

WRITER = """
import sys
from haystack.dataclasses import ChatMessage
from botwire.integrations.haystack import BotwireChatMessageStore

name, urls = sys.argv[1], sys.argv[2:]
stores = [BotwireChatMessageStore(url=url) for url in urls]
sys.stdin.readline()  # every writer starts at once
for i in range(25):
    for store in stores:
        message = ChatMessage.from_user(f"{name}-{i}", meta={"by": name})
        written = store.write_messages("shared", [message])
        assert written == 1, (store.url, name, i, written)
        assert message.meta == {"by": name}, message.meta  # the caller's meta as it was
        if i == 12:  # one message every writer sends, with an id: stored once
            hello = ChatMessage.from_user("hi", meta={"chat_message_id": "hi"})
            store.write_messages("shared", [hello])
"""


def test_eight_processes_without_ids_store_all_200_and_leave_meta_alone(tmp_path: Path) -> None:
    """Round 1 stamped ids into the caller's meta, so a retry kept a stale id and a
    message was dropped as a duplicate (198/200 embedded, 144/200 on the server)."""
    (tmp_path / "server").mkdir()
    server = Server(tmp_path / "server")
    urls = [f"sqlite:///{tmp_path}/chat.db", server.url]
    if os.environ.get(POSTGRES_ENV):
        urls.append(fresh_schema_url())
    try:
        logs = [tmp_path / f"w{n}.log" for n in range(8)]
        workers = []
        for n, log in enumerate(logs):
            with log.open("w") as err:
                command = [sys.executable, "-c", WRITER, f"w{n}", *urls]
                workers.append(
                    subprocess.Popen(command, stdin=subprocess.PIPE, stderr=err, text=True)
                )
        for worker in workers:
            assert worker.stdin is not None
            worker.stdin.write("go\n")
            worker.stdin.close()
        codes = [worker.wait(timeout=300) for worker in workers]
        assert codes == [0] * 8, [log.read_text()[-2000:] for log in logs]
        expected = sorted(["hi", *(f"w{n}-{i}" for n in range(8) for i in range(25))])
        for url in urls:
            store = BotwireChatMessageStore(url=url, last_k=None)
            stored = store.retrieve_messages("shared")
            assert sorted(m.text or "" for m in stored) == expected, url
            assert store.count_messages("shared") == 201
            ids = [m.meta["chat_message_id"] for m in stored]
            # the others numbered by position: unique, in order
            assert ids == ["hi" if m.text == "hi" else str(i) for i, m in enumerate(stored)]
    finally:
        server.stop()


# -- bug 2: max_messages -------------------------------------------------------------


def _turn_with_a_tool(n: int) -> list[ChatMessage]:
    call = ToolCall("weather", {"day": n}, id=f"call-{n}")
    return [
        ChatMessage.from_user(f"weather on day {n}?"),
        ChatMessage.from_assistant(tool_calls=[call]),
        ChatMessage.from_tool(f"rain on day {n}", origin=call),
        ChatMessage.from_assistant(f"Rain on day {n}."),
    ]


def test_max_messages_trims_whole_exchanges_and_keeps_saving(memory_url: str) -> None:
    """Round 1 numbered new messages ``len(stored)`` after trimming, so they took the
    ids of kept ones: with max_messages=4 turn 3 wrote 0 and nothing was stored again."""
    store = BotwireChatMessageStore(url=memory_url, max_messages=4)
    pipeline = Pipeline()
    pipeline.add_component("writer", ChatMessageWriter(store))
    for n in range(8):
        turn = [ChatMessage.from_user(f"q{n}"), ChatMessage.from_assistant(f"a{n}")]
        out = pipeline.run({"writer": {"chat_history_id": "c", "messages": turn}})
        assert out["writer"]["messages_written"] == 2, n
        kept = ChatMessageRetriever(store).run(chat_history_id="c", last_k=100)["messages"]
        assert [m.text for m in kept] == [
            t for k in range(max(0, n - 1), n + 1) for t in (f"q{k}", f"a{k}")
        ]
    ids = [m.meta["chat_message_id"] for m in store.retrieve_messages("c", last_k=None)]
    assert ids == ["12", "13", "14", "15"]  # positions never repeat

    tools = BotwireChatMessageStore(namespace="tools", url=memory_url, max_messages=3)
    for n in range(5):
        assert tools.write_messages("c", _turn_with_a_tool(n)) == 4
        kept = tools.retrieve_messages("c", last_k=None)
        # the newest 3 start with the call; its result is never left without it
        assert [m.role.value for m in kept] == ["assistant", "tool", "assistant"]
        assert kept[-1].text == f"Rain on day {n}."
    two = BotwireChatMessageStore(namespace="two", url=memory_url, max_messages=2)
    for n in range(3):
        assert two.write_messages("c", _turn_with_a_tool(n)) == 4
        assert [m.text for m in two.retrieve_messages("c", None)] == [f"Rain on day {n}."]


# -- parity with the reference ---------------------------------------------------------


def _histories() -> list[list[ChatMessage]]:
    """Writes, in order, that exercise round counting: system messages in the middle,
    several tool results for one call, text beside tool calls, an unfinished round."""
    a, b = ToolCall("search", {"q": "a"}, id="a"), ToolCall("search", {"q": "b"}, id="b")
    return [
        [ChatMessage.from_system("be brief"), ChatMessage.from_user("hi")],
        [ChatMessage.from_assistant("Hello.")],
        [
            ChatMessage.from_user("find a and b"),
            ChatMessage.from_assistant("Looking.", tool_calls=[a, b]),
            ChatMessage.from_tool("A", origin=a),
            ChatMessage.from_tool("B", origin=b),
            ChatMessage.from_assistant(""),
            ChatMessage.from_assistant("A and B."),
        ],
        [ChatMessage.from_system("now be verbose"), ChatMessage.from_user("more?")],
        [ChatMessage.from_assistant(tool_calls=[a]), ChatMessage.from_tool("A", origin=a)],
        [ChatMessage.from_user("still there?", meta={"chat_message_id": "mine", "x": 1})],
        [ChatMessage.from_user("same id", meta={"chat_message_id": "mine"})],  # a duplicate
    ]


def _dicts(messages: Sequence[ChatMessage]) -> list[dict[str, Any]]:
    return [m.to_dict() for m in messages]


@pytest.mark.parametrize("skip_system_messages", [True, False])
def test_writes_counts_and_rounds_match_the_in_memory_store(
    tmp_path: Path, skip_system_messages: bool
) -> None:
    ours = BotwireChatMessageStore(
        url=f"sqlite:///{tmp_path}/parity.db", skip_system_messages=skip_system_messages
    )
    theirs = InMemoryChatMessageStore(skip_system_messages=skip_system_messages)
    chat = f"parity-{uuid.uuid4().hex}"  # the reference keeps one process-wide dict
    try:
        for messages in _histories():
            before = copy.deepcopy(_dicts(messages))  # to_dict() shares the message's meta
            written = [s.write_messages(chat, list(messages)) for s in (ours, theirs)]
            assert written[0] == written[1]
            assert _dicts(messages) == before  # neither changes the caller's messages
            assert ours.count_messages(chat) == theirs.count_messages(chat)
            for last_k in (None, 0, 1, 2, 3, 4, 5, 100):
                mine = _dicts(ours.retrieve_messages(chat, last_k=last_k))
                reference = _dicts(theirs.retrieve_messages(chat, last_k=last_k))
                assert mine == reference, last_k
        # an agent writes what it retrieved back, plus its new turn: only the turn is new
        for store in (ours, theirs):
            again = [*store.retrieve_messages(chat, last_k=None), ChatMessage.from_user("ok")]
            assert store.write_messages(chat, again) == 1
        assert _dicts(ours.retrieve_messages(chat, None)) == _dicts(
            theirs.retrieve_messages(chat, None)
        )
    finally:
        theirs.delete_messages(chat)


# -- any length, round-1 data, and reads that stay cheap --------------------------------


def test_a_500_turn_conversation_with_tool_calls_on_a_server_with_default_limits(
    tmp_path: Path,
) -> None:
    """Round 1 kept a conversation as one value, refused past the server's 1 MiB."""
    from botwire_server import Settings, create_app

    # every default: 1,000 writes a day, 1 MiB per value, 2 MiB per body, 50 MB per namespace
    settings = Settings(db=str(tmp_path / "server.db"))
    url, shutdown = loopback().serve(create_app(settings))
    try:
        store = BotwireChatMessageStore(url=url, last_k=None)  # None: every message
        writer = ChatMessageWriter(store)
        filler = "x" * 2500
        for n in range(500):
            turn = _turn_with_a_tool(n)
            turn[2] = ChatMessage.from_tool(f"{filler} {n}", origin=turn[1].tool_calls[0])
            assert writer.run("long", turn)["messages_written"] == 4
        assert store.count_messages("long") == 2000
        assert Memory("haystack-chat", url=url).stats().writes_today == 500  # one a turn
        everything = store.retrieve_messages("long", last_k=None)
        assert len(everything) == 2000
        assert sum(len(str(m.to_dict())) for m in everything) > 1_048_576
        assert [m.text for m in everything[-4:]] == [
            "weather on day 499?",
            None,
            None,
            "Rain on day 499.",
        ]
        last = store.retrieve_messages("long", last_k=2)
        assert [m.text for m in last][::4] == ["weather on day 498?", "weather on day 499?"]
    finally:
        shutdown()


def test_round_one_lists_are_read_and_moved_into_entries(memory_url: str) -> None:
    memory = Memory("haystack-chat", url=memory_url)
    old = [m.to_dict() for m in _turn_with_a_tool(0)]
    for i, record in enumerate(old):
        record["meta"]["chat_message_id"] = str(i)  # as round 1 numbered them
    memory.set("chat:c", old)
    store = BotwireChatMessageStore(url=memory_url)
    assert store.count_messages("c") == 4
    assert _dicts(store.retrieve_messages("c", None)) == old
    again = [*store.retrieve_messages("c", None), ChatMessage.from_user("and now?")]
    assert store.write_messages("c", again) == 1
    assert not memory.exists("chat:c")  # moved into entries by that write
    stored = store.retrieve_messages("c", None)
    assert [m.meta["chat_message_id"] for m in stored] == ["0", "1", "2", "3", "4"]
    assert stored[-1].text == "and now?"


class Spy(Store):
    """An in-process store that notes every op it is given."""

    def __init__(self) -> None:
        self.inner = MemoryStore()
        self.ops: list[Op] = []

    def batch(self, namespace: str, ops: Sequence[Op], **kwargs: Any) -> list[Any]:
        self.ops += ops
        return self.inner.batch(namespace, ops, **kwargs)


def test_counting_reads_the_head_not_the_messages() -> None:
    spy = Spy()
    store = BotwireChatMessageStore(memory=Memory("chat", url=spy))
    for n in range(30):
        store.write_messages("c", _turn_with_a_tool(n))
    spy.ops.clear()
    assert store.count_messages("c") == 120
    assert not any(isinstance(op, Scan) for op in spy.ops)
    assert [op.key for op in spy.ops if isinstance(op, Get)] == ["chat:c/head", "chat:c"]


def test_a_ttl_restarts_for_the_whole_conversation_on_every_write(clock: FakeClock) -> None:
    store = BotwireChatMessageStore(
        memory=Memory("chat", url=MemoryStore(clock=clock)), ttl=60, last_k=None
    )
    store.write_messages("c", [ChatMessage.from_user("first")])
    clock.advance(50)
    store.write_messages("c", [ChatMessage.from_user("second")])
    clock.advance(50)  # 100 s after the first write, 50 after the last
    assert [m.text for m in store.retrieve_messages("c")] == ["first", "second"]
    clock.advance(11)
    assert store.retrieve_messages("c") == [] and store.count_messages("c") == 0


# -- a namespace per conversation ---------------------------------------------------------


def per_user(chat_history_id: str) -> str:
    return f"people-{chat_history_id.removeprefix('user:')}"


def test_each_conversation_in_a_namespace_of_its_own(memory_url: str) -> None:
    store = BotwireChatMessageStore("chat-{scope}", url=memory_url)
    store.write_messages("ann", [ChatMessage.from_user("I am Ann")])
    store.write_messages("bob", [ChatMessage.from_user("I am Bob")])
    assert Memory("chat-ann", url=memory_url).count() > 0
    assert Memory("chat-bob", url=memory_url).count() > 0
    assert Memory("haystack-chat", url=memory_url).count() == 0
    assert [m.text for m in store.retrieve_messages("ann")] == ["I am Ann"]
    # another instance's conversation is out of this one's reach...
    BotwireChatMessageStore("chat-{scope}", url=memory_url).write_messages(
        "cy", [ChatMessage.from_user("I am Cy")]
    )
    Memory("chat-ann", url=memory_url).set("profile", "kept")  # ...and so is other data
    store.delete_all_messages()
    assert store.count_messages("ann") == store.count_messages("bob") == 0
    assert store.count_messages("cy") == 1
    assert Memory("chat-ann", url=memory_url).get("profile") == "kept"

    called = BotwireChatMessageStore(per_user, url=memory_url, last_k=3)
    called.write_messages("user:dee", [ChatMessage.from_user("I am Dee")])
    assert Memory("people-dee", url=memory_url).count() > 0
    pipeline = Pipeline()
    pipeline.add_component("retriever", ChatMessageRetriever(called))
    loaded = Pipeline.loads(pipeline.dumps(), allowed_modules=["botwire", __name__])
    restored = loaded.get_component("retriever").chat_message_store
    assert restored.namespace is per_user and restored.last_k == 3 and restored.url == memory_url
    assert [m.text for m in restored.retrieve_messages("user:dee")] == ["I am Dee"]


def test_a_shared_namespace_deletes_every_conversation(memory_url: str) -> None:
    BotwireChatMessageStore(url=memory_url).write_messages("a", [ChatMessage.from_user("x")])
    store = BotwireChatMessageStore(url=memory_url)
    store.write_messages("b", [ChatMessage.from_user("y")])
    store.delete_all_messages()
    assert store.count_messages("a") == store.count_messages("b") == 0


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A server with ``--auth token``; its URL and a token for the namespace chat-ann."""
    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "auth.db"), auth="token"))
    url, shutdown = loopback().serve(app)
    yield url, app.state.tokens.create(["chat-ann"])[0]
    shutdown()


def test_a_per_namespace_token_isolates_conversations(
    token_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    url, secret = token_server
    monkeypatch.setenv("BOTWIRE_API_KEY", secret)
    store = BotwireChatMessageStore("chat-{scope}", url=url)
    assert store.write_messages("ann", [ChatMessage.from_user("mine")]) == 1
    assert [m.text for m in store.retrieve_messages("ann")] == ["mine"]
    with pytest.raises(Forbidden):
        store.write_messages("bob", [ChatMessage.from_user("not mine")])
    with pytest.raises(Forbidden):
        store.retrieve_messages("bob")
