"""AutoGen: an AssistantAgent whose memory survives restarts, on botwire.

    pip install 'botwire[autogen]'
    python examples/autogen_agent.py       # run it twice: the second run remembers more

A ReplayChatCompletionClient stands in for the LLM, so it runs offline.
"""

from __future__ import annotations

import asyncio

from autogen_agentchat.agents import AssistantAgent
from autogen_agentchat.messages import MemoryQueryEvent
from autogen_core.memory import MemoryContent
from autogen_ext.models.replay import ReplayChatCompletionClient

from botwire.integrations.autogen import BotwireMemory

DRINKS = ["tea", "coffee", "water"]


async def main() -> None:
    # Every entry one key: no size limit. namespace="autogen-{scope}" would give each
    # memory name (a user) a namespace of its own.
    memory = BotwireMemory("user-42")
    known = (await memory.query("")).results
    drink = DRINKS[len(known) % len(DRINKS)]
    await memory.add(
        MemoryContent(content=f"fact #{len(known) + 1}: drinks {drink}", mime_type="text/plain")
    )
    agent = AssistantAgent(
        "assistant",
        model_client=ReplayChatCompletionClient(["Noted."]),
        memory=[memory],  # like ListMemory: every entry, oldest first
    )
    result = await agent.run(task="What do you know about me?")
    recalled = next(m for m in result.messages if isinstance(m, MemoryQueryEvent)).content
    print(f"the agent was given {len(recalled)} memories: {[c.content for c in recalled]}")
    best = (await memory.query("does the user drink coffee?", k=1)).results  # ranked: BM25
    print(f"best match for 'does the user drink coffee?': {[c.content for c in best]}")
    await memory.close()


asyncio.run(main())
