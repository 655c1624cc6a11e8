"""AG2: an Agent whose conversation and knowledge survive restarts, on botwire.

    pip install 'botwire[ag2]'
    python examples/ag2_agent.py           # run it twice: the second run continues the first

ag2.testing.TestConfig stands in for the LLM, so it runs offline. The agent calls a tool
that returns a datetime: the stream keeps its result exactly (one event per key).
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import datetime, timezone

from ag2 import Agent
from ag2.events import ModelRequest, ToolCallEvent, ToolResultEvent
from ag2.knowledge.config import KnowledgeConfig
from ag2.stream import MemoryStream
from ag2.testing import TestConfig

from botwire.integrations.ag2 import BotwireKnowledgeStore, BotwireStorage

CONVERSATION = uuid.UUID("00000000-0000-0000-0000-000000000042")  # one user's stream


def now() -> datetime:
    """The current time (UTC)."""
    return datetime.now(timezone.utc)


async def main() -> None:
    knowledge = BotwireKnowledgeStore()
    storage = BotwireStorage()  # or BotwireStorage("ag2-{scope}"): a namespace per stream
    agent = Agent("helper", tools=[now], knowledge=KnowledgeConfig(store=knowledge))
    stream = MemoryStream(storage=storage, id=CONVERSATION)
    turns = sum(isinstance(e, ModelRequest) for e in await stream.history.get_events())
    script = TestConfig(ToolCallEvent(name="now"), "Noted.")
    async with agent.run(f"message {turns + 1}", stream=stream, config=script) as run:
        reply = await run.result()
    events = list(await stream.history.get_events())
    turns = sum(isinstance(e, ModelRequest) for e in events)
    times = [e.result.parts[0].data for e in events if isinstance(e, ToolResultEvent)]  # type: ignore[attr-defined]
    print(f"{reply.body} {turns} turns in this conversation; log: {await knowledge.list('/log/')}")
    print(f"the tool answered {[t.isoformat(timespec='seconds') for t in times]}")
    await knowledge.close()
    await storage.close()


asyncio.run(main())
