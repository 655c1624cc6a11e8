"""React when another process writes an agent's memory: Memory.watch.

A watcher follows the namespace "team-inbox"; a second process (started here
with the same embedded store) drops two messages and withdraws one. The watcher
sees each change as it happens, then resumes from its cursor.

    python examples/watch.py
"""

from __future__ import annotations

import subprocess
import sys

from botwire import Memory

WRITER = """
from botwire import Memory
inbox = Memory("team-inbox")
inbox.set("inbox/1", {"from": "planner", "text": "draft the release notes"})
inbox.set("inbox/2", {"from": "critic", "text": "the tests are red"})
inbox.delete("inbox/1")
"""

inbox = Memory("team-inbox")
inbox.clear()
changes = inbox.watch("inbox/", values=True)  # from now on
writer = subprocess.Popen([sys.executable, "-c", WRITER])  # another process, same store

cursor = 0
for change in changes:
    if change.deleted:
        print(f"{change.key} withdrawn (version {change.version})")
    else:
        print(f"{change.key} from {change.value['from']}: {change.value['text']}")
    cursor = change.version
    if change.key == "inbox/1" and change.deleted:
        break
writer.wait()

# Later (another run, after a restart): resume after the last version seen.
inbox.set("inbox/3", {"from": "planner", "text": "fixed, please look"})
page = inbox.changes(since=cursor, prefix="inbox/", values=True)
print("since", cursor, "->", [(c.key, c.value["text"]) for c in page.changes])
