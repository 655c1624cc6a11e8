"""AG2: an Agent whose conversation and knowledge survive restarts, on botwire.

    pip install 'botwire[ag2]'
    python examples/ag2_agent.py           # run it twice: the second run continues the first

ag2.testing.TestConfig stands in for the LLM, so it runs offline.
"""

from __future__ import annotations

import asyncio
import uuid

from ag2 import Agent
from ag2.knowledge.config import KnowledgeConfig
from ag2.stream import MemoryStream
from ag2.testing import TestConfig

from botwire.integrations.ag2 import BotwireKnowledgeStore, BotwireStorage

CONVERSATION = uuid.UUID("00000000-0000-0000-0000-000000000042")  # one user's stream


async def main() -> None:
    knowledge = BotwireKnowledgeStore()
    agent = Agent("helper", knowledge=KnowledgeConfig(store=knowledge))
    stream = MemoryStream(storage=BotwireStorage(), id=CONVERSATION)
    turns = len(list(await stream.history.get_events())) // 2
    async with agent.run(f"message {turns + 1}", stream=stream, config=TestConfig("Noted.")) as run:
        reply = await run.result()
    turns = len(list(await stream.history.get_events())) // 2
    print(f"{reply.body} {turns} turns in this conversation; log: {await knowledge.list('/log/')}")


asyncio.run(main())
