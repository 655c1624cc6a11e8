"""Worker processes for the multi-process SQLite tests (run as a script).

_worker.py mixed DB SEED N      N mixed writes; prints its own tallies as JSON
_worker.py ack DB START         writes k{START}, k{START+1}... forever, printing each
                                index once its write has returned (for the kill test)
"""

from __future__ import annotations

import json
import random
import sys

from botwire import Memory


def mixed(db: str, seed: int, n: int) -> None:
    rng = random.Random(seed)
    mem = Memory("shared", url=f"sqlite:///{db}")
    tally = {"c0": 0, "c1": 0, "updates": 0, "appends": 0}
    for i in range(n):
        roll = rng.random()
        if roll < 0.3:
            counter = rng.choice(["c0", "c1"])
            by = rng.randint(1, 5)
            mem.incr(counter, by)
            tally[counter] += by
        elif roll < 0.45:
            mem.update("cas", lambda v: v + 1, default=0)
            tally["updates"] += 1
        elif roll < 0.6:
            mem.append("log", {"w": seed, "i": i})
            tally["appends"] += 1
        elif roll < 0.8:
            mem.set(f"w{seed}:{i % 50}", {"i": i, "pad": "x" * rng.randint(0, 2000)})
        elif roll < 0.9:
            mem.set_many({f"w{seed}:m{j}": i for j in range(5)})
        else:
            mem.delete(f"w{seed}:{rng.randint(0, 49)}")
        if i % 100 == 0:
            mem.get_many([f"w{seed}:{j}" for j in range(10)])
            mem.list_keys(f"w{seed}:", limit=20)
    print(json.dumps(tally))


def ack(db: str, start: int) -> None:
    mem = Memory("crash", url=f"sqlite:///{db}")
    i = start
    while True:
        if i % 3 == 0:
            mem.set_many({f"k{i}": {"i": i}, f"pair{i}": i})
        else:
            mem.set(f"k{i}", {"i": i})
        mem.incr("acked")
        sys.stdout.write(f"{i}\n")
        sys.stdout.flush()
        i += 1


if __name__ == "__main__":
    if sys.argv[1] == "mixed":
        mixed(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    else:
        ack(sys.argv[2], int(sys.argv[3]))
