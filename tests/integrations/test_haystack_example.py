"""examples/haystack_agent.py keeps saving: 25 runs, then a fresh process sees the last.

Round 1 stopped saving at run 12 (max_messages=20): new messages took the ids of
kept ones after the first trim and were dropped as duplicates.
"""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path
from types import ModuleType

from botwire import Memory
from botwire.integrations.haystack import BotwireChatMessageStore

from .test_haystack import no_telemetry  # noqa: F401 - the autouse fixture

EXAMPLE = Path(__file__).parent.parent.parent / "examples" / "haystack_agent.py"


def _example() -> ModuleType:
    spec = importlib.util.spec_from_file_location("haystack_agent_example", EXAMPLE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_example_keeps_saving_over_25_runs(tmp_path: Path) -> None:
    example = _example()
    for run in range(25):
        agent = example.PersistentAgent()  # a new agent each run, as after a restart
        answer = agent.chat("user-42", f"fact {run}")
        if run:
            assert f"'fact {run - 1}'" in answer, (run, answer)  # the last run was saved
    # the newest 20 messages (10 exchanges), numbered by position, never reused
    store = BotwireChatMessageStore("haystack-{scope}", last_k=None)
    kept = store.retrieve_messages("user-42")
    assert [m.meta["chat_message_id"] for m in kept] == [str(i) for i in range(30, 50)]
    assert Memory("haystack-user-42").count("chat:user-42/m/") == 20  # the rest deleted
    env = {**os.environ}
    env.pop("OPENAI_API_KEY", None)  # offline: Haystack's MockChatGenerator
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), "fact 25"],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        check=True,
    ).stdout
    assert "'fact 24'" in out and "'fact 15'" in out and "'fact 14'" not in out
