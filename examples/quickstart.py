"""Quickstart: an agent that remembers between runs, with no server and no account.

    python examples/quickstart.py     # run it twice: the second run remembers the first

Memory lives in an embedded SQLite file in $BOTWIRE_HOME (default: the user
data directory, e.g. ~/.local/share/botwire/botwire.db).
"""

from __future__ import annotations

from botwire import Conflict, Memory

memory = Memory("quickstart-agent")

WEEK = 7 * 24 * 3600

# Learned preferences: a JSON value that expires a week after its last write.
prefs = memory.get("user-42:prefs", {"format": "markdown"})
prefs["format"] = "json"
memory.set("user-42:prefs", prefs, ttl=WEEK)

# A counter that many processes may bump at once without losing a visit.
visits = memory.incr("user-42:visits")

# Conversation context: an atomic append that keeps only the newest 20 turns.
turns = memory.append(
    "user-42:history", {"role": "user", "content": f"hello #{visits}"}, max_len=20
)

# Compare-and-set: write only if nobody changed the key since we read it.
# (Every write sets its expiry anew, so pass the TTL again.)
item = memory.get_item("user-42:prefs")
assert item is not None
memory.set("user-42:prefs", {**item.value, "tz": "UTC"}, ttl=WEEK, if_version=item.version)
try:
    memory.set("user-42:prefs", {"stale": True}, ttl=WEEK, if_version=item.version)
except Conflict as exc:
    print(f"stale write refused: {exc}")

print(f"visit {visits}: prefs={memory.get('user-42:prefs')}, {turns} turns remembered")
print(f"prefs expire in {memory.ttl('user-42:prefs'):.0f} s; keys: {memory.list_keys('user-42:')}")
print(f"stored at {memory!r}")
memory.close()
