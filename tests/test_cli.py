"""The botwire command line, run as a real subprocess against a real file."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from botwire import Memory


def botwire(*args: str, url: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "botwire.cli", "--url", url, *args],
        capture_output=True,
        text=True,
        input=stdin,
        timeout=60,
    )


@pytest.fixture
def url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path}/cli.db"


def test_set_get_ls_ttl_delete(url: str) -> None:
    assert (
        botwire("set", "agent", "prefs", '{"format": "json"}', "--ttl", "3600", url=url).returncode
        == 0
    )
    assert botwire("set", "agent", "note", "plain text", "--string", url=url).returncode == 0
    got = botwire("get", "agent", "prefs", url=url)
    assert json.loads(got.stdout) == {"format": "json"}
    assert botwire("ls", "agent", url=url).stdout.split() == ["note", "prefs"]
    assert botwire("ls", "agent", "--prefix", "pr", url=url).stdout.split() == ["prefs"]
    assert 3590 < float(botwire("ttl", "agent", "prefs", url=url).stdout) <= 3600
    assert botwire("ttl", "agent", "note", url=url).stdout.strip() == "none"
    assert botwire("delete", "agent", "note", url=url).returncode == 0
    missing = botwire("get", "agent", "note", url=url)
    assert missing.returncode == 1 and "does not exist" in missing.stderr
    assert botwire("delete", "agent", "note", url=url).returncode == 1


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["set", "agent", "k", "{not json"], "not JSON"),
        (["get", "bad namespace", "k"], "invalid namespace"),
        (["set", "agent", "k", "NaN"], "not JSON"),
        (["get", "agent", "k", "--url", "ftp://x"], "unknown store URL"),
    ],
)
def test_errors_are_one_line_without_traceback(url: str, args: list[str], message: str) -> None:
    result = botwire(*args, url=url)
    assert result.returncode == 2
    assert message in result.stderr and "Traceback" not in result.stderr


def test_export_then_import_keeps_values_and_expiry(url: str, tmp_path: Path) -> None:
    with Memory("agent", url=url) as mem:
        mem.set("forever", {"a": [1, 2]})
        mem.set("soon", "x", ttl=3600)
        mem.set_many({f"bulk{i}": i for i in range(1200)})
    dump = botwire("export", "agent", url=url).stdout
    lines = [json.loads(line) for line in dump.splitlines()]
    assert len(lines) == 1202
    copy = f"sqlite:///{tmp_path}/copy.db"
    result = botwire("import", "-", url=copy, stdin=dump)
    assert result.returncode == 0, result.stderr
    with Memory("agent", url=copy) as mem:
        assert mem.get("forever") == {"a": [1, 2]} and len(mem) == 1202
        assert 3590 < mem.ttl("soon") <= 3600  # type: ignore[operator]
    renamed = botwire("import", "-", "--namespace", "other", url=copy, stdin=dump)
    assert renamed.returncode == 0
    with Memory("other", url=copy) as mem:
        assert len(mem) == 1202


def test_import_skips_expired_items(url: str) -> None:
    lines = [
        {"namespace": "a", "key": "old", "value": 1, "expires_at": 1.0},
        {"namespace": "a", "key": "new", "value": 2, "expires_at": None},
    ]
    stdin = "\n".join(json.dumps(x) for x in lines)
    result = botwire("import", "-", url=url, stdin=stdin)
    assert "imported 1 keys, skipped 1 expired" in result.stderr
    with Memory("a", url=url) as mem:
        assert mem.list_keys() == ["new"]


@pytest.mark.parametrize(
    "bad",
    [
        "{broken json",
        '{"namespace": "a", "key": "", "value": 1}',
        '{"namespace": "bad ns", "key": "k", "value": 1}',
        '{"namespace": "a", "key": "k"}',
        '{"namespace": "a", "key": "k", "value": NaN}',
        '{"namespace": "a", "key": "k", "value": 1, "expires_at": "tomorrow"}',
        "[1, 2]",
    ],
)
def test_import_refuses_a_bad_line_by_number_and_writes_nothing(url: str, bad: str) -> None:
    good = json.dumps({"namespace": "a", "key": "good", "value": 1})
    result = botwire("import", "-", url=url, stdin="\n".join([good, good, bad, good]))
    assert result.returncode == 2
    assert "line 3" in result.stderr and "nothing was imported" in result.stderr
    with Memory("a", url=url) as mem:
        assert mem.list_keys() == []


def test_console_script_is_installed() -> None:
    exe = Path(sys.executable).with_name("botwire")
    result = subprocess.run([str(exe), "--help"], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0 and "export" in result.stdout
