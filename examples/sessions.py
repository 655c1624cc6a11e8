"""memory.session(): a unit of work, loaded in one round trip and saved in one atomic batch.

    python examples/sessions.py       # run it twice: the second run builds on the first

Everything a turn of the agent needs for one user is loaded at once (a prefix),
read and changed locally, and written back together when the block ends, guarded
by the versions read: if another process changed one of those keys meanwhile,
nothing is written and Conflict names the keys, so the turn can be retried.
"""

from __future__ import annotations

from botwire import Conflict, Memory

memory = Memory("sessions-agent")


def turn(user_id: str, message: str) -> str:
    for _attempt in range(5):
        try:
            with memory.session(prefetch=f"{user_id}:") as s:
                s[f"{user_id}:turns"] = s.get(f"{user_id}:turns", 0) + 1
                context = s.get(f"{user_id}:context", [])
                context.append(message)
                s[f"{user_id}:context"] = context[-10:]  # conversation context, trimmed
                prefs = s.get(f"{user_id}:prefs", {"language": "en"})
                if "merci" in message:
                    prefs["language"] = "fr"  # a learned preference
                s[f"{user_id}:prefs"] = prefs
                return f"turn {s[f'{user_id}:turns']} in {prefs['language']}: {len(context)} lines"
        except Conflict as exc:
            print(f"retrying: {exc}")
    raise RuntimeError("too much contention")


print(turn("u-7", "bonjour"))
print(turn("u-7", "merci"))

# An exception inside the block writes nothing.
try:
    with memory.session(prefetch="u-7:") as s:
        s["u-7:turns"] = -1
        raise ValueError("the agent crashed mid-turn")
except ValueError:
    pass
print(f"turns after a crashed turn: {memory.get('u-7:turns')} (not -1)")
memory.close()
