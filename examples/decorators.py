"""@remember: an agent's functions load their state before each call and save it after.

    python examples/decorators.py     # run it twice: the second run continues the first

Three of the seed's use cases, with a stand-in for the LLM so it runs offline:
conversation context per user, learned preferences, and a visit counter.
"""

from __future__ import annotations

from botwire import Memory

memory = Memory("decorators-agent")
WEEK = 7 * 24 * 3600


def fake_llm(history: list[dict[str, str]], prefs: dict[str, str]) -> str:
    return f"({prefs.get('tone', 'plain')}) reply #{len(history) // 2 + 1}"


# Conversation context per user: `history` is loaded for this user_id, mutated in
# place, and saved after the call only if it changed (here: always, trimmed to 20).
@memory.remember("history:{user_id}", into="history", default=list, ttl=WEEK)
def chat(user_id: str, message: str, history: list[dict[str, str]]) -> str:
    prefs = memory.get(f"prefs:{user_id}", {})
    history.append({"role": "user", "content": message})
    reply = fake_llm(history, prefs)
    history.append({"role": "assistant", "content": reply})
    del history[:-20]
    return reply


# Learned preferences: the function returns the new state (save="result").
@memory.remember("prefs:{user_id}", into="prefs", default=dict, save="result")
def learn(user_id: str, key: str, value: str, prefs: dict[str, str]) -> dict[str, str]:
    return {**prefs, key: value}


# A counter: re-run on the fresh value if another process saved first.
@memory.remember("visits:{user_id}", into="visits", default=0, save="result", on_conflict="retry")
def visit(user_id: str, visits: int) -> int:
    return visits + 1


n = visit("u-42")
learn("u-42", "tone", "brief")
print(f"visit {n}")
print("agent:", chat("u-42", "hello"))
print("agent:", chat("u-42", "what did I say first?"))
print(f"{len(memory.get(chat.key_for('u-42', 'x')))} messages remembered for u-42")
if n >= 3:
    chat.clear("u-42", "")  # forget the conversation (the key of these arguments)
    print("conversation cleared")
memory.close()
