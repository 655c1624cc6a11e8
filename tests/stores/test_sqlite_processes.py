"""Many processes on one SQLite file: exact counters, no 'database is locked', no lost write."""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from botwire import Memory

WORKER = str(Path(__file__).with_name("_worker.py"))
pytestmark = pytest.mark.slow


def test_four_processes_of_mixed_writes_keep_counters_exact(tmp_path: Path) -> None:
    db = tmp_path / "shared.db"
    procs = [
        subprocess.Popen(
            [sys.executable, WORKER, "mixed", str(db), str(seed), "2000"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    tallies = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        assert "locked" not in err and err == ""
        tallies.append(json.loads(out))
    mem = Memory("shared", url=f"sqlite:///{db}")
    for name in ("c0", "c1"):
        assert mem.get(name, 0) == sum(t[name] for t in tallies)
    assert mem.get("cas", 0) == sum(t["updates"] for t in tallies)
    assert len(mem.get("log", [])) == sum(t["appends"] for t in tallies)
    mem.close()
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)


def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    db = tmp_path / "crash.db"
    rng = random.Random(2026)
    acked: list[int] = []
    start = 0
    for _ in range(20):
        proc = subprocess.Popen(
            [sys.executable, WORKER, "ack", str(db), str(start)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        assert proc.stdout is not None
        first = proc.stdout.readline()  # wait until the writer is really writing
        assert first, proc.stderr.read() if proc.stderr else ""
        time.sleep(rng.uniform(0.0, 0.15))
        os.kill(proc.pid, signal.SIGKILL)
        rest, err = proc.communicate(timeout=30)
        lines = (first + rest).split("\n")
        complete = [int(x) for x in lines[:-1] if x]  # the last piece may be cut mid-line
        assert complete, err
        acked.extend(complete)
        start = complete[-1] + 1 + 1  # skip the one that may have been half-acknowledged
        with sqlite3.connect(db) as conn:
            assert conn.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    assert len(acked) > 200, "the writer should have been killed mid-stream, not at its start"
    mem = Memory("crash", url=f"sqlite:///{db}")
    found = mem.get_many([f"k{i}" for i in acked])
    assert found == {f"k{i}": {"i": i} for i in acked}
    pairs = mem.get_many([f"pair{i}" for i in acked if i % 3 == 0])
    assert pairs == {f"pair{i}": i for i in acked if i % 3 == 0}  # set_many is all or nothing
    assert mem.get("acked") >= len(acked)
    mem.close()
