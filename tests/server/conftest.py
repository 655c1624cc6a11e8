"""Server fixtures: an in-process app (TestClient) and a real `botwire serve` on loopback."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from botwire_server import Settings, create_app

from ..conftest import FakeClock


@pytest.fixture
def make_client(tmp_path: Path) -> Iterator[Callable[..., TestClient]]:
    """``make_client(auth="token", writes_per_day=3, ...)``: a fresh app on its own file."""
    opened: list[TestClient] = []

    def make(**settings: Any) -> TestClient:
        settings.setdefault("db", str(tmp_path / f"server{len(opened)}.db"))
        client = TestClient(create_app(Settings(**settings)), raise_server_exceptions=False)
        opened.append(client.__enter__())
        return opened[-1]

    yield make
    for client in opened:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def clocked_client(
    make_client: Callable[..., TestClient], clock: FakeClock
) -> Iterator[TestClient]:
    """A client whose store runs on the test's fake clock."""
    c = make_client()
    c.app.state.store.clock = clock  # type: ignore[attr-defined]
    yield c


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class LiveServer:
    """`botwire serve` in a subprocess on a loopback port; restartable, killable."""

    def __init__(self, db: Path | str, log: Path | None = None, **flags: Any) -> None:
        self.db = db  # a SQLite file, or a postgresql:// URL
        self.flags = flags
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = log or Path(db).with_suffix(".log")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.launch()
        self.wait_ready(timeout)

    def launch(self) -> None:
        """Start the process, without waiting for it to answer."""
        args = [
            sys.executable,
            "-m",
            "botwire.cli",
            "serve",
            "--port",
            str(self.port),
            "--db",
            str(self.db),
        ]
        for name, value in self.flags.items():
            args += [f"--{name.replace('_', '-')}", str(value)]
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_SERVER_")}
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen(
                args,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=log,
                start_new_session=True,  # so a kill reaches every worker
            )

    def wait_ready(self, timeout: float = 30.0) -> None:
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(self.log.read_text())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise TimeoutError(f"the server on {self.url} did not start")

    def kill(self) -> None:
        """SIGKILL every process of the server at once."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[Callable[..., LiveServer]]:
    servers: list[LiveServer] = []

    def start(**flags: Any) -> LiveServer:
        server = LiveServer(tmp_path / f"live{len(servers)}.db", **flags)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
