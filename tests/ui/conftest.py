"""The inspector in a real headless Chromium (Debian's ``chromium``, driven by Playwright)
against a real ``botwire serve`` subprocess, once on SQLite and once on PostgreSQL.

One browser per module and one server per backend per module; each test opens a fresh
browser context (no state carried over) and works in namespaces of its own. Every test
fails if the page threw, opened a dialog, or sent a request anywhere but the server.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from ..postgres import fresh_schema_url
from ..server.conftest import LiveServer

sync_api = pytest.importorskip(
    "playwright.sync_api",
    reason="the inspector's browser tests need playwright (pip install -e '.[dev]')",
)
from playwright.sync_api import Browser, Page, expect  # noqa: E402

CHROMIUM = shutil.which("chromium")
expect.set_options(timeout=10_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if CHROMIUM is None:
        pytest.skip("the inspector's browser tests need chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM)
        yield launched
        launched.close()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def new_database(backend: str, tmp: Path) -> str:
    """A new, empty server database: a SQLite file, or a PostgreSQL schema of its own."""
    return fresh_schema_url() if backend == "postgresql" else str(tmp / "server.db")


@pytest.fixture(scope="module")
def served(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """``botwire serve`` in open mode (the default) on a new database."""
    tmp = tmp_path_factory.mktemp("served")
    server = LiveServer(new_database(backend, tmp), log=tmp / "server.log")
    server.start()
    yield server
    server.stop()


@pytest.fixture
def api(served: LiveServer) -> Iterator[httpx.Client]:
    """Another client of the same server: what other writers do while the page is open."""
    with httpx.Client(base_url=served.url, timeout=10) as client:
        yield client


@pytest.fixture
def ns() -> str:
    """A namespace of this test's own."""
    return f"t-{uuid.uuid4().hex[:10]}"


class Inspector:
    """A page of the inspector, recording what would make any test fail."""

    def __init__(self, page: Page, url: str) -> None:
        self.page = page
        self.url = url
        self.console_errors: list[str] = []
        self.page_errors: list[str] = []
        self.dialogs: list[str] = []
        self.requests: list[str] = []
        page.on("console", self._console)
        page.on("pageerror", lambda error: self.page_errors.append(str(error)))
        page.on("dialog", self._dialog)
        page.on("request", lambda request: self.requests.append(request.url))

    def _console(self, message: Any) -> None:
        if message.type == "error":
            self.console_errors.append(message.text)

    def _dialog(self, dialog: Any) -> None:
        self.dialogs.append(dialog.message)
        dialog.dismiss()

    def open(self, hash: str = "") -> Page:
        self.page.goto(f"{self.url}/ui{hash}")
        return self.page

    def check(self) -> None:
        assert self.page_errors == []
        assert self.dialogs == []
        elsewhere = [u for u in self.requests if not u.startswith(self.url + "/")]
        assert elsewhere == [], "requests that left the server"


def open_inspector(browser: Browser, url: str) -> Iterator[Inspector]:
    context = browser.new_context(viewport={"width": 1200, "height": 750})
    try:
        inspector = Inspector(context.new_page(), url)
        yield inspector
        inspector.check()
    finally:
        context.close()


@pytest.fixture
def inspector(browser: Browser, served: LiveServer) -> Iterator[Inspector]:
    yield from open_inspector(browser, served.url)


def botwire(*args: str) -> str:
    """The ``botwire`` command in another process; its standard output."""
    done = subprocess.run(
        [sys.executable, "-m", "botwire.cli", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def seed(client: httpx.Client, ns: str, items: dict[str, Any], ttl: float | None = None) -> None:
    """Write ``items`` in one batch (one write against the day's limit)."""
    ops = [{"op": "put", "key": k, "value": v, "ttl": ttl} for k, v in items.items()]
    client.post(f"/v1/ns/{ns}/batch", json={"ops": ops}).raise_for_status()
