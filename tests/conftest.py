"""Fixtures shared by every test: an isolated BOTWIRE_HOME and a controllable clock."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from .loopback import Server

# No framework phones home from a test run (Haystack's telemetry would, on Pipeline.run),
# nor from the examples the tests run in child processes (they inherit this).
os.environ.setdefault("HAYSTACK_TELEMETRY_ENABLED", "False")
os.environ.setdefault("ANONYMIZED_TELEMETRY", "False")
os.environ.setdefault("CREWAI_DISABLE_TELEMETRY", "true")
os.environ.setdefault("OTEL_SDK_DISABLED", "true")


class FakeClock:
    """A clock the test moves by hand: ``clock.advance(60)``."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """No test touches the real user data or cache dir, or a BOTWIRE_URL from the environment."""
    home = tmp_path / "botwire-home"
    monkeypatch.setenv("BOTWIRE_HOME", str(home))
    monkeypatch.setenv("BOTWIRE_CACHE_DIR", str(tmp_path / "botwire-cache"))
    monkeypatch.delenv("BOTWIRE_URL", raising=False)
    yield home


@pytest.fixture(scope="session", autouse=True)
def _loopback_server() -> Iterator[None]:
    """At the end: stop the shared loopback uvicorn, drop the PostgreSQL test schemas."""
    yield
    from .loopback import close_loopback
    from .postgres import drop_schemas

    close_loopback()
    drop_schemas()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    """The real server app on a loopback uvicorn, with a fresh database."""
    (tmp_path / "server").mkdir()
    served = Server(tmp_path / "server")
    yield served
    served.stop()
