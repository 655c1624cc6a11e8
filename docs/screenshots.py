"""Screenshots of the inspector (/ui) for the README, taken in Debian's headless chromium.

    .venv/bin/python docs/screenshots.py

Starts ``botwire serve`` on a temporary database with demo data, drives chromium through
Playwright (no browser download: the system's ``chromium``), and writes docs/ui-*.png.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import Page, expect, sync_playwright

DOCS = Path(__file__).parent
VIEWPORT = {"width": 1200, "height": 750}


@contextmanager
def server() -> Iterator[str]:
    """``botwire serve`` on a free loopback port and a new database; its URL."""
    with tempfile.TemporaryDirectory() as tmp, socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
        s.close()
        env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_SERVER_")}
        args = ["serve", "--port", str(port), "--db", f"{tmp}/demo.db"]
        proc = subprocess.Popen(
            [sys.executable, "-m", "botwire.cli", *args],
            env=env,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    if httpx.get(url + "/healthz", timeout=1).status_code == 200:
                        break
                except httpx.TransportError:
                    if time.monotonic() > deadline or proc.poll() is not None:
                        raise
                    time.sleep(0.05)
            yield url
        finally:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=15)


def put(api: httpx.Client, ns: str, items: dict[str, Any], ttl: float | None = None) -> None:
    ops = [{"op": "put", "key": k, "value": v, "ttl": ttl} for k, v in items.items()]
    api.post(f"/v1/ns/{ns}/batch", json={"ops": ops}).raise_for_status()


def demo_data(api: httpx.Client) -> None:
    put(
        api,
        "support-bot",
        {
            f"ticket/{n}": {"status": s, "customer": c, "summary": m}
            for n, (s, c, m) in enumerate(
                [
                    ("open", "acme", "Login loop after password reset"),
                    ("waiting", "globex", "Invoice shows the wrong VAT rate"),
                    ("closed", "initech", "Export to CSV drops unicode names"),
                ]
                * 14,
                start=1041,
            )
        },
    )
    put(
        api,
        "user-alice",
        {
            "conversation/summary": "Planning a trip to Lisbon in May; asked for vegetarian food.",
            "todo": ["book hotel", "compare train fares", "renew passport"],
        },
    )
    put(
        api,
        "user-alice",
        {
            "profile": {
                "name": "Alice Martin",
                "language": "fr",
                "timezone": "Europe/Paris",
                "preferences": {"tone": "concise", "units": "metric", "emoji": False},
                "facts": [
                    "works night shifts on weekends",
                    "allergic to peanuts",
                    "prefers e-mail over phone",
                ],
                "last_seen_turn": 214,
                "score": 0.87,
            },
        },
        ttl=30 * 86400,
    )
    put(api, "user-alice", {"session/current": {"turn": 215, "topic": "Lisbon"}}, ttl=1800)
    put(api, "user-bob", {"profile": {"name": "Bob", "language": "en"}, "todo": []})
    put(
        api,
        "research-agent",
        {f"source/{i:03}": {"url": f"https://example.org/paper/{i}"} for i in range(230)},
    )
    put(api, "crew-planner", {"plan": {"steps": ["research", "draft", "review"], "done": 1}})
    for n in range(6):  # a few writes today, against the daily limit
        put(api, "user-alice", {"todo": ["book hotel", "compare train fares"][: n % 3]})


def shoot(page: Page, name: str) -> None:
    path = DOCS / f"ui-{name}.png"
    page.screenshot(path=str(path))
    print(f"{path} ({path.stat().st_size // 1000} KB)")


def main() -> None:
    chromium = shutil.which("chromium")
    if chromium is None:
        sys.exit("needs Debian's chromium (apt-get install chromium)")
    with server() as url, httpx.Client(base_url=url, timeout=10) as api, sync_playwright() as p:
        demo_data(api)
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(viewport=VIEWPORT)

        page.goto(url + "/ui")
        expect(page.get_by_role("link", name="user-alice")).to_be_visible()
        shoot(page, "namespaces")

        page.get_by_role("link", name="support-bot").click()
        expect(page.locator("ul.keys a")).to_have_count(42)
        shoot(page, "keys")

        page.goto(url + "/ui#/ns/user-alice/key/profile")
        expect(page.locator("pre.json")).to_contain_text("Alice Martin")
        shoot(page, "item")

        page.get_by_role("button", name="Edit").click()
        editor = page.get_by_role("textbox", name="Value (JSON)")
        editor.fill(editor.input_value().replace('"concise"', '"detailed"'))
        profile = api.get("/v1/ns/user-alice/keys/profile").json()["value"]
        put(api, "user-alice", {"profile": profile | {"last_seen_turn": 215}}, ttl=30 * 86400)
        page.get_by_role("button", name="Save", exact=True).click()
        expect(page.get_by_role("alert")).to_contain_text("Changed by someone else")
        page.get_by_role("alert").scroll_into_view_if_needed()
        shoot(page, "conflict")

        page.goto(url + "/ui#/ns/user-alice/live")
        expect(page.get_by_role("status")).to_have_text("Live")
        put(api, "user-alice", {"session/current": {"turn": 216, "topic": "Lisbon"}}, ttl=1800)
        put(api, "user-alice", {"conversation/summary": "Lisbon in May: hotel booked."})
        api.delete("/v1/ns/user-alice/keys/todo").raise_for_status()
        put(api, "user-alice", {"todo": ["renew passport"]})
        expect(page.locator("table.changes tbody tr")).to_have_count(4)
        shoot(page, "live")
        browser.close()


if __name__ == "__main__":
    main()
