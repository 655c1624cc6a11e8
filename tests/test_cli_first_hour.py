"""The first hour with the ``botwire`` command (issue 15), run as a user runs it: a subprocess.

Read-only commands never create a store; a bare path gets a "did you mean";
``--api-key`` reaches a token server; ``--version``, ``python -m botwire``, ``info``,
``ns``, export of every namespace, shell completion; imports that show progress on
a terminal, report how far they got on Ctrl-C and resume when run again.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import botwire
from botwire import Memory

from .loopback import Server, loopback


def botwire_cmd(
    *args: str, stdin: str | None = None, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwire", *args],
        capture_output=True,
        text=True,
        input=stdin,
        env=_env(env),
        timeout=120,
    )


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("BOTWIRE_URL", "BOTWIRE_API_KEY")}
    return {**env, **(extra or {})}


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/agents.db"


def lines(items: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(item) + "\n" for item in items)


# -- basics ---------------------------------------------------------------------------


def test_version_and_python_m_botwire() -> None:
    exe = Path(sys.executable).with_name("botwire")
    for command in ([str(exe)], [sys.executable, "-m", "botwire"]):
        result = subprocess.run([*command, "--version"], capture_output=True, text=True)
        assert result.returncode == 0
        assert result.stdout.strip() == f"botwire {botwire.__version__}"
    helped = botwire_cmd("--help")
    assert helped.returncode == 0
    for name in ("info", "ns", "export", "import", "completion", "--api-key"):
        assert name in helped.stdout


# -- item 2: reading never creates a store ----------------------------------------------


@pytest.mark.parametrize(
    "args",
    [
        ["get", "agent", "k"],
        ["ls", "agent"],
        ["ttl", "agent", "k"],
        ["delete", "agent", "k"],
        ["export", "agent"],
        ["export"],
        ["info"],
        ["ns"],
    ],
)
def test_read_only_commands_do_not_create_a_store(tmp_path: Path, args: list[str]) -> None:
    typo = tmp_path / "srv" / "agents.db"  # sqlite:////srv/agents.db, one slash too many
    result = botwire_cmd("--url", f"sqlite:///{typo}", *args)
    assert result.returncode == 1, result.stderr
    assert f"no store at {typo}: the file does not exist" in result.stderr
    assert "Traceback" not in result.stderr
    assert not typo.parent.exists()


def test_the_embedded_default_is_not_created_by_a_read(_isolated_home: Path) -> None:
    result = botwire_cmd("ls", "agent")
    assert result.returncode == 1
    assert "the embedded default in $BOTWIRE_HOME" in result.stderr
    assert not (_isolated_home / "botwire.db").exists()
    assert botwire_cmd("set", "agent", "k", "1").returncode == 0  # a write creates it
    assert botwire_cmd("ls", "agent").stdout.split() == ["k"]


@pytest.mark.parametrize(
    ("given", "better"),
    [
        ("agent.db", "sqlite:///agent.db"),
        ("/srv/agent.db", "sqlite:////srv/agent.db"),
        ("localhost:8787", "http://localhost:8787"),
    ],
)
@pytest.mark.parametrize("args", [["set", "agent", "k", "1"], ["ls", "agent"], ["info"], ["ns"]])
def test_a_bare_path_gets_a_did_you_mean(given: str, better: str, args: list[str]) -> None:
    result = botwire_cmd("--url", given, *args)
    assert result.returncode == 2 and "Traceback" not in result.stderr
    assert "did you mean" in result.stderr and repr(better) in result.stderr
    from_env = botwire_cmd(*args, env={"BOTWIRE_URL": given})
    assert from_env.returncode == 2
    assert repr(better) in from_env.stderr and "$BOTWIRE_URL" in from_env.stderr
    assert not Path(given).exists()


# -- item 5: --api-key ------------------------------------------------------------------


@pytest.fixture
def token_server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    """A token-mode server; the URL and a token for ``team-*``."""
    from botwire_server import Settings, create_app

    app = create_app(Settings(db=str(tmp_path / "server.db"), auth="token"))
    server_url, shutdown = loopback().serve(app)
    secret = app.state.tokens.create(["team-*"])[0]
    yield server_url, secret
    shutdown()


def test_api_key_on_every_store_command(token_server: tuple[str, str]) -> None:
    server_url, secret = token_server
    refused = botwire_cmd("--url", server_url, "set", "team-a", "k", "1")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert (
        botwire_cmd("--url", server_url, "--api-key", secret, "set", "team-a", "k", "1").returncode
        == 0
    )
    # after the command too, and from the environment
    got = botwire_cmd("get", "team-a", "k", "--url", server_url, "--api-key", secret)
    assert got.returncode == 0 and got.stdout.strip() == "1"
    by_env = {"BOTWIRE_API_KEY": secret}
    assert botwire_cmd("--url", server_url, "ls", "team-a", env=by_env).stdout.split() == ["k"]
    dump = botwire_cmd("--url", server_url, "export", "team-a", env=by_env).stdout
    copied = botwire_cmd(
        "--url", server_url, "--api-key", secret, "import", "-", "--namespace", "team-b", stdin=dump
    )
    assert copied.returncode == 0, copied.stderr
    listed = botwire_cmd("--url", server_url, "ns", "--api-key", secret)
    assert [row.split()[0] for row in listed.stdout.splitlines()[1:]] == ["team-a", "team-b"]
    info = botwire_cmd("--url", server_url, "info", "--api-key", secret)
    assert info.returncode == 0, info.stderr
    assert "api key:    from --api-key" in info.stdout and secret not in info.stdout
    other = botwire_cmd("--url", server_url, "--api-key", secret, "get", "user-1", "k")
    assert other.returncode == 2 and "Traceback" not in other.stderr


# -- item 7: info and ns -----------------------------------------------------------------


def test_info_of_an_embedded_file(url: str, tmp_path: Path) -> None:
    with Memory("a", url=url) as a, Memory("b", url=url) as b:
        a.set_many({"x": 1, "y": 2})
        b.set("z", "three")
    result = botwire_cmd("--url", url, "info")
    assert result.returncode == 0, result.stderr
    facts = dict(line.split(":", 1) for line in result.stdout.splitlines())
    facts = {name: value.strip() for name, value in facts.items()}
    assert facts["store"] == url and facts["from"] == "--url"
    assert facts["file"] == str(tmp_path / "agents.db")
    assert facts["namespaces"] == "2" and facts["keys"] == "3"


def test_info_of_the_embedded_default_names_its_file(_isolated_home: Path) -> None:
    botwire_cmd("set", "agent", "k", "1")
    result = botwire_cmd("info")
    assert result.returncode == 0
    assert f"file:       {_isolated_home / 'botwire.db'}" in result.stdout
    assert "from:       the embedded default in $BOTWIRE_HOME" in result.stdout


def test_info_of_a_server(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        with Memory("agent", url=server.url) as mem:
            mem.set("k", 1)
        result = botwire_cmd("--url", server.url, "info")
        assert result.returncode == 0, result.stderr
        assert "kind:       botwire server" in result.stdout
        assert "health:     ok" in result.stdout
        assert f"version:    {botwire.__version__}" in result.stdout
        assert "namespaces: 1" in result.stdout and "keys:       1" in result.stdout
        assert "writes_per_day=0" in result.stdout  # GET /v1/info: this server's limits (off)
        assert "auth:       open" in result.stdout
    finally:
        server.stop()
    down = botwire_cmd("--url", server.url, "info")
    assert down.returncode == 2 and "Traceback" not in down.stderr


def test_ns_lists_namespaces_with_their_sizes(url: str) -> None:
    empty = f"{url}.empty"
    botwire_cmd("--url", empty, "set", "tmp", "k", "1")
    botwire_cmd("--url", empty, "delete", "tmp", "k")
    none = botwire_cmd("--url", empty, "ns")
    assert none.returncode == 0 and none.stdout == "" and "no namespaces" in none.stderr
    with Memory("agent", url=url) as a, Memory("user-1", url=url) as u:
        a.set_many({"k1": "x", "k2": "y"})
        u.set("key", [1, 2, 3])
    result = botwire_cmd("--url", url, "ns")
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0] == ["namespace", "keys", "bytes", "writes", "today"]
    assert rows[1][:3] == ["agent", "2", str(2 * len('k1"x"'))]
    assert rows[2][:3] == ["user-1", "1", str(len("key[1,2,3]"))]
    only = botwire_cmd("--url", url, "ns", "--prefix", "user-")
    assert [line.split()[0] for line in only.stdout.splitlines()[1:]] == ["user-1"]


# -- item 6: export everything, import that resumes, progress --------------------------------


def test_export_every_namespace_then_import(url: str, tmp_path: Path) -> None:
    with Memory("a", url=url) as a, Memory("b", url=url) as b, Memory("c", url=url) as c:
        a.set("k", 1)
        b.set_many({f"k{i}": i for i in range(700)})
        c.set("k", {"deep": [1]}, ttl=3600)
    everything = botwire_cmd("--url", url, "export")
    assert everything.returncode == 0, everything.stderr
    assert botwire_cmd("--url", url, "export", "--all").stdout == everything.stdout
    records = [json.loads(line) for line in everything.stdout.splitlines()]
    assert [r["namespace"] for r in records].count("b") == 700 and len(records) == 702
    two = botwire_cmd("--url", url, "export", "a", "c", "-o", str(tmp_path / "two.jsonl"))
    assert two.returncode == 0
    written = (tmp_path / "two.jsonl").read_text().splitlines()
    assert {json.loads(line)["namespace"] for line in written} == {"a", "c"}
    copy = f"sqlite:///{tmp_path}/copy.db"
    assert botwire_cmd("--url", copy, "import", "-", stdin=everything.stdout).returncode == 0
    copied = [json.loads(line) for line in botwire_cmd("--url", copy, "export").stdout.split()]
    assert [{**r, "expires_at": None} for r in copied] == [
        {**r, "expires_at": None} for r in records
    ]
    expiry = [(a["expires_at"], b["expires_at"]) for a, b in zip(copied, records, strict=True)]
    assert all(a == b or abs(a - b) < 1 for a, b in expiry)  # re-derived from a TTL


def test_import_again_leaves_what_is_there_and_fixes_what_differs(url: str) -> None:
    data = lines([{"namespace": "a", "key": f"k{i}", "value": i} for i in range(1200)])
    data += lines([{"namespace": "a", "key": "ttl", "value": "t", "expires_at": time.time() + 600}])
    assert "imported 1,201 keys" in botwire_cmd("--url", url, "import", "-", stdin=data).stderr
    with Memory("a", url=url) as mem:
        mem.set("k7", "changed")
        mem.delete("k8")
    again = botwire_cmd("--url", url, "import", "-", stdin=data)
    assert again.returncode == 0
    assert "imported 2 keys, skipped 0 expired, 1,199 already held the same value" in again.stderr
    with Memory("a", url=url) as mem:
        assert mem.get("k7") == 7 and mem.get("k8") == 8 and len(mem) == 1201
        assert 590 < mem.ttl("ttl") <= 600  # type: ignore[operator]


def test_import_again_over_a_server_costs_no_writes(tmp_path: Path) -> None:
    server = Server(tmp_path)
    try:
        data = lines([{"namespace": "a", "key": f"k{i}", "value": {"i": i}} for i in range(1200)])
        first = botwire_cmd("--url", server.url, "import", "-", stdin=data)
        assert first.returncode == 0 and "imported 1,200 keys" in first.stderr
        writes = botwire.namespaces(server.url)[0].writes_today
        again = botwire_cmd("--url", server.url, "import", "-", stdin=data)
        assert "1,200 already held the same value" in again.stderr
        assert botwire.namespaces(server.url)[0].writes_today == writes
    finally:
        server.stop()


@pytest.mark.skipif(sys.platform == "win32", reason="SIGINT to a child process is POSIX")
def test_ctrl_c_during_import_reports_how_far_and_the_same_command_resumes(
    tmp_path: Path,
) -> None:
    url = f"sqlite:///{tmp_path}/big.db"
    source = tmp_path / "big.jsonl"
    source.write_text(
        lines([{"namespace": "bulk", "key": f"k{i:06d}", "value": i} for i in range(100_000)])
    )
    command = [sys.executable, "-m", "botwire", "--url", url, "import", str(source)]
    child = subprocess.Popen(command, stderr=subprocess.PIPE, text=True, env=_env())
    with Memory("bulk", url=url) as mem:
        while mem.count() == 0:  # the first batch is in: the import is under way
            assert child.poll() is None, child.communicate()
            time.sleep(0.005)
        child.send_signal(signal.SIGINT)
        stderr = child.communicate(timeout=120)[1]
        assert child.returncode == 130, stderr
        assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
        reported = stderr.strip().splitlines()[-1]
        assert reported.startswith("botwire: interrupted: imported ")
        assert reported.endswith(" of 100,000 lines; run the same command again to resume")
        done = int(reported.split("imported ")[1].split(" of")[0].replace(",", ""))
        assert 0 < done < 100_000 and done % 500 == 0
        assert mem.count() == done  # the batch under way when Ctrl-C came was finished
    again = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    assert again.returncode == 0, again.stderr
    left = 100_000 - done
    assert again.stderr == (
        f"imported {left:,} keys, skipped 0 expired, {done:,} already held the same value\n"
    )
    with Memory("bulk", url=url) as mem:
        assert mem.count() == 100_000 and mem.get("k099999") == 99_999


def test_an_import_error_names_one_line_and_its_column(url: str) -> None:
    good = json.dumps({"namespace": "a", "key": "k", "value": 1})
    bad = '{"namespace": "a", "key": "k", "value": x}'
    result = botwire_cmd("--url", url, "import", "-", stdin=f"{good}\n{bad}\n")
    assert result.returncode == 2
    message = result.stderr.strip()
    assert message.startswith("botwire: error: line 2, column 41: unexpected character")
    assert "line 1" not in message and message.endswith("nothing was imported")


def run_on_a_terminal(command: list[str]) -> tuple[int, str]:
    """Run ``command`` with standard error on a pseudo-terminal; its exit code and stderr."""
    import fcntl
    import pty
    import struct
    import termios

    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 100, 0, 0))
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=follower, env=_env())
    os.close(follower)
    seen = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    return child.wait(timeout=120), seen.decode(errors="replace")


@pytest.mark.skipif(sys.platform == "win32", reason="pseudo-terminals are POSIX")
def test_progress_shows_on_a_terminal_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/p.db"
    source = tmp_path / "p.jsonl"
    source.write_text(lines([{"namespace": "a", "key": f"k{i}", "value": i} for i in range(3000)]))
    code, shown = run_on_a_terminal(
        [sys.executable, "-m", "botwire", "--url", url, "import", str(source)]
    )
    assert code == 0
    assert "checking:" in shown and "importing:" in shown and "/3.00k" in shown
    assert "imported 3,000 keys" in shown
    out = tmp_path / "out.jsonl"
    code, shown = run_on_a_terminal(
        [sys.executable, "-m", "botwire", "--url", url, "export", "-o", str(out)]
    )
    assert code == 0 and "exporting" in shown and "keys/s" in shown
    assert len(out.read_text().splitlines()) == 3000
    piped = botwire_cmd("--url", url, "import", str(source))  # stderr is a pipe: no bar
    assert piped.stderr == "imported 0 keys, skipped 0 expired, 3,000 already held the same value\n"


def test_export_into_a_closed_pipe_ends_quietly(url: str) -> None:
    with Memory("a", url=url) as mem:
        mem.set_many({f"k{i}": "x" * 200 for i in range(2000)})  # more than a pipe holds
    command = [sys.executable, "-m", "botwire", "--url", url, "export"]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env()
    ) as child:
        assert child.stdout is not None and child.stderr is not None
        assert json.loads(child.stdout.readline())["key"] == "k0"  # `| head -1`
        child.stdout.close()
        assert child.wait(timeout=120) == 1
        assert child.stderr.read() == b""


# -- item 7: shell completion -----------------------------------------------------------------


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completion_completes_commands_and_options(tmp_path: Path) -> None:
    script = botwire_cmd("completion", "bash")
    assert script.returncode == 0
    (tmp_path / "botwire.bash").write_text(script.stdout)
    probe = f"""
source {tmp_path / "botwire.bash"}
complete -p botwire
COMP_WORDS=(botwire ex); COMP_CWORD=1; _shtab_botwire; echo "commands: ${{COMPREPLY[*]}}"
COMP_WORDS=(botwire import --); COMP_CWORD=2; _shtab_botwire; echo "options: ${{COMPREPLY[*]}}"
"""
    result = subprocess.run(["bash", "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "complete -o bashdefault -F _shtab_botwire botwire" in result.stdout
    assert "commands: export" in result.stdout
    assert "--namespace" in result.stdout and "--api-key" in result.stdout


@pytest.mark.skipif(shutil.which("zsh") is None, reason="no zsh")
def test_zsh_completion_is_a_valid_completion_function(tmp_path: Path) -> None:
    script = botwire_cmd("completion", "zsh")
    assert script.returncode == 0 and script.stdout.startswith("#compdef botwire")
    (tmp_path / "_botwire").write_text(script.stdout)
    probe = f"fpath=({tmp_path} $fpath); autoload -Uz compinit; compinit -u -D"
    probe += "; print -r -- $_comps[botwire]"
    result = subprocess.run(["zsh", "-f", "-c", probe], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "_botwire"
    assert subprocess.run(["zsh", "-n", str(tmp_path / "_botwire")]).returncode == 0
