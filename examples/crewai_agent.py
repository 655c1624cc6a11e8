"""CrewAI: an Agent whose memory survives restarts, on botwire.

    pip install 'botwire[crewai]'
    python examples/crewai_agent.py        # run it twice: the second run recalls more

A scripted fake LLM and a toy embedder stand in for real models, so it runs offline.
"""

from __future__ import annotations

import hashlib
import math
import os
from typing import Any

os.environ.setdefault("CREWAI_TESTING", "true")  # no telemetry from an offline example

from crewai import Agent
from crewai.llms.base_llm import BaseLLM
from crewai.memory.unified_memory import Memory

from botwire.integrations.crewai import memory_tools, register


def embedder(texts: list[str]) -> list[list[float]]:
    vectors = []
    for text in texts:
        v = [0.0] * 32
        for word in text.lower().split():
            v[int(hashlib.sha256(word.encode()).hexdigest(), 16) % 32] += 1
        norm = math.sqrt(sum(x * x for x in v)) or 1.0
        vectors.append([x / norm for x in v])
    return vectors


class ScriptedLLM(BaseLLM):
    def call(self, messages: Any, *args: Any, **kwargs: Any) -> str:
        return "Thought: I can answer.\nFinal Answer: You like tea."


register()  # Memory(storage="botwire") now keeps CrewAI's memories in botwire
# (register(namespace="crew-{scope}") and storage="botwire:<tenant>": a namespace per tenant)
memory = Memory(storage="botwire", llm=ScriptedLLM(model="scripted"), embedder=embedder)
count = len(memory.recall("tea", depth="shallow"))
memory.remember(f"Fact {count + 1}: the user likes tea", scope="/user", importance=0.8)
agent = Agent(
    role="assistant",
    goal="help the user",
    backstory="remembers what users like",
    llm=ScriptedLLM(model="scripted"),
    memory=memory,
    tools=memory_tools(),
)
print(agent.kickoff("What do I like?"))
print(f"{len(memory.recall('tea', depth='shallow'))} memories about tea")
