"""Settings: defaults, then BOTWIRE_SERVER_* variables, then flags; and the open-mode guard."""

from __future__ import annotations

import subprocess
import sys

import pytest

from botwire import InvalidRequest
from botwire_server import Settings


def test_precedence_defaults_env_flags() -> None:
    env = {
        "BOTWIRE_SERVER_PORT": "9000",
        "BOTWIRE_SERVER_WRITES_PER_DAY": "5",
        "BOTWIRE_SERVER_ALLOW_OPEN": "true",
        "BOTWIRE_SERVER_SWEEP_INTERVAL": "0.5",
    }
    settings = Settings.from_env(env, port=9100, db="/tmp/x.db")
    assert settings.port == 9100  # the flag wins
    assert settings.writes_per_day == 5 and settings.allow_open is True
    assert settings.sweep_interval == 0.5 and settings.max_bytes == 50_000_000
    assert Settings.from_env(settings.to_env()) == settings  # how workers get them


@pytest.mark.parametrize(
    "env",
    [
        {"BOTWIRE_SERVER_PORT": "eighty"},
        {"BOTWIRE_SERVER_AUTH": "magic"},
        {"BOTWIRE_SERVER_WORKERS": "0"},
        {"BOTWIRE_SERVER_MAX_BYTES": "-1"},
    ],
)
def test_bad_settings_are_refused(env: dict[str, str]) -> None:
    with pytest.raises(InvalidRequest):
        Settings.from_env(env, db="/tmp/x.db")


def test_open_mode_is_exposed_only_off_loopback() -> None:
    assert not Settings(db="x", host="127.0.0.1").exposed_open
    assert not Settings(db="x", host="::1").exposed_open
    assert Settings(db="x", host="0.0.0.0").exposed_open
    assert not Settings(db="x", host="0.0.0.0", auth="token").exposed_open


def test_serve_refuses_open_mode_on_a_public_address() -> None:
    # The check runs before anything binds: nothing listens, nothing is sent.
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "botwire.cli",
            "serve",
            "--host",
            "0.0.0.0",
            "--db",
            "/tmp/never.db",
        ],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert (
        "refusing to serve open mode on 0.0.0.0" in result.stderr
        and "--allow-open" in result.stderr
    )
