"""LangChain: a chat whose history and LLM cache survive restarts, on botwire.

    pip install 'botwire[langchain]'
    python examples/langchain_chat.py      # run it twice: the second run remembers the first

A fake chat model stands in for the LLM, so it runs offline.
"""

from __future__ import annotations

import warnings

from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage
from langchain_core.prompts import ChatPromptTemplate, MessagesPlaceholder
from langchain_core.runnables.history import RunnableWithMessageHistory

from botwire.integrations.langchain import BotwireChatMessageHistory, BotwireLLMCache

warnings.filterwarnings("ignore", "RunnableWithMessageHistory is deprecated")

model = GenericFakeChatModel(
    messages=iter([AIMessage(content=f"reply #{i}") for i in range(1, 10)]),
    cache=BotwireLLMCache(),  # the same prompt with the same history: no model call
)
prompt = ChatPromptTemplate.from_messages(
    [("system", "You are terse."), MessagesPlaceholder("history"), ("human", "{question}")]
)


def history_of(session_id: str) -> BotwireChatMessageHistory:
    # One message per key, so a conversation has no size limit. Each session in a namespace of
    # its own ("chat-user-42"), which a server token for "chat-user-42" alone can reach; the
    # newest 20 messages are kept, trimmed in whole exchanges (never a tool result cut from
    # the call that asked for it).
    return BotwireChatMessageHistory(session_id, namespace="chat-{scope}", max_messages=20)


chat = RunnableWithMessageHistory(
    prompt | model,
    history_of,
    input_messages_key="question",
    history_messages_key="history",
)
config = {"configurable": {"session_id": "user-42"}}
answer = chat.invoke({"question": "Remember that I like tea."}, config)
history = history_of("user-42").messages
print(f"{answer.content}; {len(history)} messages in user-42's history")
