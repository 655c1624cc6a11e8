"""Haystack: a PersistentAgent whose per-user context survives restarts, on botwire.

    pip install 'botwire[haystack]'
    python examples/haystack_agent.py      # run it twice: the second run sees the first

Each turn is a Pipeline: the user's history is retrieved from botwire before the
model runs, and the new messages are written back after (trimmed to the last 20,
whole exchanges kept). Each user's history lives in a namespace of its own
(``haystack-{scope}``, the scope being the chat_history_id), so a per-user token
on a botwire server can isolate it.
Offline by default with Haystack's MockChatGenerator; with OPENAI_API_KEY set it
uses OpenAIChatGenerator instead.
"""

from __future__ import annotations

import os
import sys

from haystack import Pipeline
from haystack.dataclasses import ChatMessage
from haystack_experimental.components.retrievers import ChatMessageRetriever
from haystack_experimental.components.writers import ChatMessageWriter

from botwire.integrations.haystack import BotwireChatMessageStore


def chat_generator():  # type: ignore[no-untyped-def]
    if os.environ.get("OPENAI_API_KEY"):
        from haystack.components.generators.chat import OpenAIChatGenerator

        return OpenAIChatGenerator()
    from haystack.components.generators.chat import MockChatGenerator

    def reply(messages: list[ChatMessage]) -> str:
        earlier = [m.text for m in messages[:-1] if m.is_from("user")]
        return f"You said {messages[-1].text!r}; before that: {earlier}"

    return MockChatGenerator(response_fn=reply)


class PersistentAgent:
    """A chat agent with user-scoped memory: context loaded before, saved after, trimmed."""

    def __init__(self, max_messages: int = 20) -> None:
        store = BotwireChatMessageStore(namespace="haystack-{scope}", max_messages=max_messages)
        self.turn = Pipeline()
        # The retriever returns the user's last 10 rounds followed by the new messages.
        self.turn.add_component("history", ChatMessageRetriever(store, last_k=10))
        self.turn.add_component("llm", chat_generator())
        self.turn.connect("history.messages", "llm.messages")
        self.save = ChatMessageWriter(store)

    def chat(self, user_id: str, question: str) -> str:
        asked = ChatMessage.from_user(question)
        out = self.turn.run({"history": {"chat_history_id": user_id, "current_messages": [asked]}})
        answer: ChatMessage = out["llm"]["replies"][0]
        self.save.run(user_id, [asked, answer])  # saved after the turn, trimmed to max_messages
        return answer.text or ""


if __name__ == "__main__":
    question = sys.argv[1] if len(sys.argv) > 1 else "I like green tea."
    print(PersistentAgent().chat("user-42", question))
