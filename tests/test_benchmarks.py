"""The benchmark scripts still run (tiny sizes; the figures themselves are not checked)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).parent.parent / "benchmarks"


def test_embedded_benchmark_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "embedded.py"),
            "--keys",
            "30",
            "--rounds",
            "1",
            "--sync",
            "normal",
            "--systems",
            "botwire",
            "raw sqlite3",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| botwire | NORMAL |" in result.stdout and "import botwire:" in result.stdout


@pytest.mark.skipif(shutil.which("wrk") is None, reason="needs wrk (apt-get install wrk)")
def test_server_benchmark_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "server.py"),
            "--seconds",
            "1",
            "--keys",
            "20",
            "--connections",
            "4",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| botwire |" in result.stdout and "| reference BotWire replica |" in result.stdout
    assert "| botwire, client write path |" in result.stdout and "goal: client" in result.stdout


def _redis_up() -> bool:
    import socket

    try:
        socket.create_connection(("127.0.0.1", 6379), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.mark.skipif(not _redis_up(), reason="needs Redis on 127.0.0.1:6379 (the peer)")
def test_remote_benchmark_runs() -> None:
    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "remote.py"),
            "--keys",
            "60",
            "--rounds",
            "1",
            "--processes",
            "2",
            "--seconds",
            "1",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| botwire get, cached (hit) |" in result.stdout and "| redis-py GET |" in result.stdout
    assert "| botwire Memory.set (2 workers) |" in result.stdout


def test_checkpointer_benchmark_runs() -> None:
    from .postgres import base_url

    result = subprocess.run(
        [
            sys.executable,
            str(BENCH / "checkpointer.py"),
            "--turns",
            "2",
            "--rounds",
            "1",
            "--postgres",
            base_url(),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    assert "| botwire embedded |" in result.stdout and "| botwire PostgreSQL |" in result.stdout
