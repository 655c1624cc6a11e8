"""The README's shell blocks run as written, on a fresh machine (issue 15).

Each fenced ``bash`` (or ``sh``/``shell``) block of README.md, read when the tests
are collected, becomes one test that runs it with ``bash -e`` in a new directory,
with a fresh ``$BOTWIRE_HOME`` and cache, no ``BOTWIRE_*`` settings from the
environment, and this environment's ``bin`` first on ``PATH`` (as if the
reader's virtual environment were activated). Every command must exit 0.

What the test changes, and why:

* A command that needs the network, root or another machine is not run: the
  rules in ``SKIPPED`` say which, each with its reason. A chain ``a && b`` is
  split so that ``b`` still runs when only ``a`` is skipped (the quickstart's
  ``pip install`` is skipped, its ``.venv/bin/python examples/quickstart.py`` runs:
  the directory has ``examples/`` and a ``.venv`` that is this environment).
* ``botwire serve`` (or ``uvicorn``) runs in the background, and the block goes on
  once the server answers ``/healthz``; it is stopped when the block ends. It
  listens on a free port, which replaces ``8787`` throughout the block, so the
  test never meets another server on the machine.

A block whose every command is skipped is reported as skipped, with the reasons.
``BOTWIRE_README_UNDER_TEST=path`` checks another file (a draft of the README).
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import NamedTuple

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = Path(os.environ.get("BOTWIRE_README_UNDER_TEST") or ROOT / "README.md")

# (pattern, reason): a command matching the pattern is not run.
SKIPPED: list[tuple[str, str]] = [
    (r"\bpip3? (install|download)\b", "installs from PyPI (network); this environment has it"),
    (r"-m pip (install|download)\b", "installs from PyPI (network); this environment has it"),
    (r"\bpip3? wheel\b|-m pip wheel\b|-m build\b", "fetches the build backend from PyPI (network)"),
    (r"-m venv\b", "makes a virtual environment to install into; this environment stands for it"),
    (r"-m pytest\b|^pytest\b", "runs the test suite, which this test is part of"),
    (r"\bsudo\b", "needs root"),
    (r"\bpostgres(ql)?://", "needs the reader's PostgreSQL server"),
    (r"\bgit (clone|pull|fetch)\b", "reaches a remote repository (network)"),
    (r"\b(curl|wget)\b.*https?://(?!localhost|127\.0\.0\.1)", "reaches a remote host (network)"),
    (r"\bdocker\b", "needs Docker"),
]
BACKGROUND = re.compile(r"^(botwire serve|uvicorn)\b")  # long-running: started, then awaited
PORT = "8787"


class Block(NamedTuple):
    line: int  # where the fence opens in the README
    text: str


def blocks(readme: Path) -> list[Block]:
    found, lines = [], readme.read_text(encoding="utf-8").splitlines()
    opened: int | None = None
    body: list[str] = []
    for number, line in enumerate(lines, 1):
        fence = line.strip()
        if opened is None and fence in ("```bash", "```sh", "```shell"):
            opened, body = number, []
        elif opened is not None and fence == "```":
            found.append(Block(opened, "\n".join(body)))
            opened = None
        elif opened is not None:
            body.append(line)
    return found


def commands(text: str) -> list[str]:
    """The block's commands: continuation lines joined, ``&&`` chains split, comments kept."""
    joined = re.sub(r"\\\n", " ", text)
    out: list[str] = []
    for line in joined.splitlines():
        out.extend(_split_chain(line))
    return out


def _split_chain(line: str) -> list[str]:
    """``a && b`` as ``[a, b]`` (``&&`` inside quotes or after a comment is left alone)."""
    parts, start, quote, i = [], 0, "", 0
    while i < len(line):
        c = line[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c == "#" and (i == 0 or line[i - 1].isspace()):
            break
        elif line.startswith("&&", i):
            parts.append(line[start:i].strip())
            start = i = i + 2
            continue
        i += 1
    parts.append(line[start:].strip())
    return [p for p in parts if p] if len(parts) > 1 else [line]


def _reason(command: str) -> str | None:
    code = _code(command)
    for pattern, reason in SKIPPED:
        if re.search(pattern, code):
            return reason
    return None


def _code(command: str) -> str:
    """``command`` without its trailing comment."""
    return re.sub(r"(^|\s)#.*$", "", command).strip()


WAIT = r"""
__wait_for_server() {  # $1: the pid of a server started in the background, $2: its port
  "$__PYTHON" - "$1" "$2" <<'PY'
import os, sys, time, urllib.request
pid, port = int(sys.argv[1]), sys.argv[2]
deadline = time.monotonic() + 60
while time.monotonic() < deadline:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        sys.exit(f"the server (pid {pid}) exited: see its log")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1).read()
        sys.exit(0)
    except OSError:
        time.sleep(0.05)
sys.exit("the server did not answer /healthz within 60 s")
PY
}
trap 'echo "README command failed (exit $?): $BASH_COMMAND" >&2' ERR
"""


def script(block: Block, port: int) -> tuple[str, list[str]]:
    """The bash script that runs ``block``, and the reasons of the commands it skips."""
    lines, skipped = [WAIT], []
    for command in commands(block.text):
        code = _code(command)
        reason = _reason(command) if code else None
        if reason:
            skipped.append(f"{code!r}: {reason}")
            lines.append(": " + shlex.quote(f"skipped: {reason}"))
        elif BACKGROUND.match(code):
            started = re.sub(r"&\s*$", "", code).strip().replace(PORT, str(port))
            given = re.search(r"--port[= ]([0-9]+)", started)  # a port of its own, if it says one
            waits = given.group(1) if given else str(port)
            lines.append(f'{started} >>"$__SERVER_LOG" 2>&1 &\n__wait_for_server $! {waits}')
        else:
            lines.append(command.replace(PORT, str(port)))
    return "\n".join(lines) + "\n", skipped


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _environment(home: Path, port: int, log: Path) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("BOTWIRE_") and not k.lower().endswith("_proxy")
    }
    env.update(
        BOTWIRE_HOME=str(home / "botwire-home"),
        BOTWIRE_CACHE_DIR=str(home / "botwire-cache"),
        BOTWIRE_SERVER_PORT=str(port),
        PATH=os.path.dirname(sys.executable) + os.pathsep + env.get("PATH", ""),
        NO_PROXY="localhost,127.0.0.1",
        no_proxy="localhost,127.0.0.1",
        __PYTHON=sys.executable,
        __SERVER_LOG=str(log),
    )
    return env


def _fresh_checkout(directory: Path) -> None:
    """What a reader has after cloning, for the commands that name files of the clone."""
    shutil.copytree(ROOT / "examples", directory / "examples")
    (directory / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)


def _stop_group(proc: subprocess.Popen[str]) -> None:
    """Stop what the block left running (its background server), by its process group."""
    for sig, grace in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            try:
                os.killpg(proc.pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)


def _id(block: Block) -> str:
    first = next((_code(c) for c in commands(block.text) if _code(c)), "empty")
    return f"line{block.line}-{re.sub(r'[^A-Za-z0-9]+', '-', first)[:40].strip('-')}"


BLOCKS = blocks(README)


def test_the_readme_has_shell_blocks() -> None:
    assert len(BLOCKS) >= 3, f"no ```bash blocks found in {README}"


@pytest.mark.parametrize("block", BLOCKS, ids=[_id(b) for b in BLOCKS])
def test_readme_block_runs_as_written(block: Block, tmp_path: Path) -> None:
    port = _free_port()
    text, skipped = script(block, port)
    runs = [c for c in commands(block.text) if _code(c) and not _reason(c)]
    if not runs:
        pytest.skip(f"README line {block.line}: every command skipped: " + "; ".join(skipped))
    work = tmp_path / "fresh-clone"
    work.mkdir()
    _fresh_checkout(work)
    (tmp_path / "block.sh").write_text(text, encoding="utf-8")
    log = tmp_path / "server.log"
    proc = subprocess.Popen(
        ["bash", "-e", str(tmp_path / "block.sh")],
        cwd=work,
        env=_environment(tmp_path, port, log),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,  # the block's background server is in its group
    )
    try:
        out, err = proc.communicate(timeout=120)
    finally:
        _stop_group(proc)
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    server = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    assert proc.returncode == 0, (
        f"README line {block.line}: a command failed\n--- stderr:\n{err[-3000:]}"
        f"\n--- stdout:\n{out[-2000:]}\n--- server log:\n{server}\n--- script:\n{text}"
    )


def test_how_a_block_is_read() -> None:
    """Continuations join, chains split outside quotes and comments, and each skip is named."""
    block = Block(
        1,
        "python3 -m venv .venv && .venv/bin/pip install -e . && .venv/bin/python x.py\n"
        "echo 'a && b' && curl localhost:8787/x \\\n  -d '{}'   # note && more\n"
        "botwire serve &   # at 127.0.0.1:8787",
    )
    assert commands(block.text) == [
        "python3 -m venv .venv",
        ".venv/bin/pip install -e .",
        ".venv/bin/python x.py",
        "echo 'a && b'",
        "curl localhost:8787/x    -d '{}'   # note && more",
        "botwire serve &   # at 127.0.0.1:8787",
    ]
    text, skipped = script(block, 4321)
    assert [s.split(":")[0] for s in skipped] == [
        "'python3 -m venv .venv'",
        "'.venv/bin/pip install -e .'",
    ]
    assert "curl localhost:4321/x" in text and "8787" not in text
    assert 'botwire serve >>"$__SERVER_LOG" 2>&1 &\n__wait_for_server $! 4321' in text
