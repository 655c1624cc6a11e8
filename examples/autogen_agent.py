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


async def main() -> None:
    memory = BotwireMemory("user-42")
    known = (await memory.query("")).results
    await memory.add(
        MemoryContent(content=f"fact #{len(known) + 1}: likes tea", mime_type="text/plain")
    )
    agent = AssistantAgent(
        "assistant",
        model_client=ReplayChatCompletionClient(["Noted."]),
        memory=[memory],
    )
    result = await agent.run(task="What do you know about me?")
    recalled = next(m for m in result.messages if isinstance(m, MemoryQueryEvent)).content
    print(f"the agent was given {len(recalled)} memories: {[c.content for c in recalled]}")
    await memory.close()


asyncio.run(main())
