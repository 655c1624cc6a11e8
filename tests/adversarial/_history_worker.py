"""Worker processes for ``test_cache_history.py``.

As a script (``python _history_worker.py probe ...``): one credentials probe,
printing one JSON line per step (``{"value": ...}`` or ``{"error": "Forbidden"}``).

As spawned ``multiprocessing`` targets: :func:`open_rounds` (racing opens of
fresh cache directories) and :func:`history` (a random mix of operations, each
recorded with its monotonic start and end in a JSON-lines file).
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
import traceback
from pathlib import Path
from typing import Any

from botwire import Conflict, Memory

NAMESPACE = "hist"
KEYS = ("a", "b")  # set and compare-and-set
COUNTER = "n"  # incr only
READ_KEYS = (*KEYS, COUNTER)


# -- credentials probe (a script) ------------------------------------------------------


def _step(fn: Any) -> dict[str, Any]:
    try:
        return {"value": fn()}
    except Exception as exc:  # reported to the test, which decides
        return {"error": type(exc).__name__, "message": str(exc)[:200]}


def probe(argv: list[str]) -> None:
    """``probe NS KEY [--set V] [--api-key K] [--first-api-key K0]``; the URL from the env."""
    parser = argparse.ArgumentParser()
    parser.add_argument("namespace")
    parser.add_argument("key")
    parser.add_argument("--set")
    parser.add_argument("--api-key")
    parser.add_argument("--first-api-key")
    args = parser.parse_args(argv)
    if args.first_api_key:  # the same URL with other credentials first, in this process
        with Memory(args.namespace, api_key=args.first_api_key, max_stale=60) as first:
            print(json.dumps({"first": _step(lambda: first.get(args.key))}), flush=True)
    with Memory(args.namespace, api_key=args.api_key, max_stale=60) as mem:
        if args.set is not None:
            print(json.dumps({"set": _step(lambda: mem.set(args.key, args.set))}), flush=True)
        print(json.dumps({"get": _step(lambda: mem.get(args.key))}), flush=True)
        print(json.dumps({"again": _step(lambda: mem.get(args.key))}), flush=True)


# -- racing opens (multiprocessing target) ---------------------------------------------


def open_rounds(root: str, index: int, rounds: int, barrier: Any, errors: str) -> None:
    """Open ``root/round-R`` at the same moment as the other workers, ``rounds`` times."""
    from botwire.stores.cached import open_cache

    deadline = time.monotonic() + 60
    try:
        for r in range(rounds):
            if time.monotonic() > deadline:
                raise TimeoutError(f"round {r} not reached within 60 s")
            barrier.wait(timeout=30)
            cache = open_cache(Path(root) / f"round-{r}")
            try:
                name, blob = f"worker-{index}", f"{index}:{r}".encode()
                cache.set(name, blob, retry=True)
                if cache.get(name, retry=True) != blob:
                    raise AssertionError(f"round {r}: read back something else")
            finally:
                cache.close()
    except BaseException:
        Path(errors).write_text(traceback.format_exc())
        barrier.abort()  # the others fail fast instead of waiting out the timeout
        sys.exit(1)


# -- the history (multiprocessing target) ----------------------------------------------


def history(
    url: str,
    index: int,
    seconds: float,
    max_ops: int,
    seed: int,
    out: str,
    barrier: Any | None,
) -> None:
    """A random mix on :data:`READ_KEYS` for ``seconds`` (at most ``max_ops``), recorded.

    Each line of ``out`` is one completed operation: ``p`` (``index``), ``i``,
    ``op`` (set, cas, incr, get), ``key``, ``v`` (the version written or read,
    ``None``: absent or a failed CAS), ``val`` (the value read, or the number an
    incr returned), ``iv`` (a CAS's expected version), ``ok``, ``fresh``, and
    ``s``/``e`` (``time.monotonic()`` before and after the call).
    """
    rng = random.Random(seed)
    mem = Memory(NAMESPACE, url=url)  # the read cache on, max_stale 1 s
    last: dict[str, int] = {}  # the highest version this process saw of each key
    with open(out, "w", encoding="utf-8") as log:
        try:
            if barrier is not None:
                barrier.wait(timeout=60)
            deadline = time.monotonic() + seconds
            for i in range(max_ops):
                if time.monotonic() > deadline:
                    break
                log.write(json.dumps(_one(mem, rng, index, i, last)) + "\n")
                log.flush()
        except BaseException:
            log.write(json.dumps({"p": index, "op": "error", "tb": traceback.format_exc()}) + "\n")
            log.flush()
            raise
        finally:
            mem.close()


def _one(mem: Memory, rng: random.Random, index: int, i: int, last: dict[str, int]) -> Any:
    roll = rng.random()
    rec: dict[str, Any] = {"p": index, "i": i, "v": None, "val": None, "iv": None}
    rec["ok"], rec["fresh"] = True, False
    value = {"p": index, "i": i}
    if roll < 0.25:
        key = rng.choice(KEYS)
        rec.update(op="set", key=key, val=value, s=time.monotonic())
        rec["v"] = mem.set(key, value)
    elif roll < 0.45:
        key = rng.choice(KEYS)
        expected = last.get(key, 0)
        rec.update(op="cas", key=key, val=value, iv=expected, s=time.monotonic())
        try:
            rec["v"] = mem.set(key, value, if_version=expected)
        except Conflict:
            rec["ok"] = False
    elif roll < 0.6:
        rec.update(op="incr", key=COUNTER, s=time.monotonic())
        rec["val"] = mem.incr(COUNTER)
    else:
        key = rng.choice(READ_KEYS)
        fresh = rng.random() < 0.3
        rec.update(op="get", key=key, fresh=fresh, s=time.monotonic())
        item = mem.get_item(key, fresh=fresh)
        if item is not None:
            rec["v"], rec["val"] = item.version, item.value
    rec["e"] = time.monotonic()
    if rec["v"] is not None:
        last[rec["key"]] = max(last.get(rec["key"], 0), rec["v"])
    return rec


if __name__ == "__main__":
    if sys.argv[1] != "probe":
        raise SystemExit(f"unknown command {sys.argv[1]!r}")
    probe(sys.argv[2:])
