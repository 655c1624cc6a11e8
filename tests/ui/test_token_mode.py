"""The inspector on a token-mode server (SQLite and PostgreSQL): it asks for a token, shows
only what the token reaches, keeps the token in page memory only, and shows a 403 plainly."""

from __future__ import annotations

from collections.abc import Iterator
from typing import NamedTuple

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from ..server.conftest import LiveServer
from .conftest import Inspector, botwire, new_database, open_inspector, seed


class TokenServer(NamedTuple):
    server: LiveServer
    tokens: dict[str, str]  # admin ("*"), alice ("alice-*"), reader ("alice-*", read-only)


@pytest.fixture(scope="module")
def token_server(backend: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    tmp = tmp_path_factory.mktemp("token")
    db = new_database(backend, tmp)
    made = {
        "admin": ["*"],
        "alice": ["alice-*"],
        "reader": ["alice-*", "--read-only"],
    }
    tokens = {
        name: botwire("token", "create", "--db", db, "--create", "--namespaces", *args).strip()
        for name, args in made.items()
    }
    server = LiveServer(db, log=tmp / "server.log", auth="token")
    server.start()
    admin = {"Authorization": f"Bearer {tokens['admin']}"}
    with httpx.Client(base_url=server.url, headers=admin, timeout=10) as client:
        seed(client, "alice-notes", {"todo": "milk"})
        seed(client, "bob-secrets", {"pin": "bob's 4321"})
    yield TokenServer(server, tokens)
    server.stop()


@pytest.fixture
def page_of(browser: Browser, token_server: TokenServer) -> Iterator[Inspector]:
    yield from open_inspector(browser, token_server.server.url)


def sign_in(page: Page, token: str) -> None:
    page.get_by_label("Token").fill(token)
    page.get_by_role("button", name="Open").click()


def test_the_token_decides_what_is_shown_and_is_never_stored(
    page_of: Inspector, token_server: TokenServer
) -> None:
    alice = token_server.tokens["alice"]
    page = page_of.open()
    expect(page.get_by_role("heading", name="Token")).to_be_visible()
    expect(page.locator("#server")).to_contain_text("token mode")
    expect(page.get_by_label("Token")).to_have_attribute("type", "password")
    sign_in(page, "not-a-token")
    expect(page.get_by_role("alert")).to_have_text(
        "The server did not accept this token: unauthorized: unknown or revoked token"
    )
    sign_in(page, alice)
    expect(page.get_by_role("link", name="alice-notes")).to_be_visible()
    expect(page.get_by_role("link", name="bob-secrets")).to_have_count(0)
    for hash in ("#/ns/bob-secrets", "#/ns/bob-secrets/key/pin", "#/ns/bob-secrets/live"):
        page.evaluate("hash => { location.hash = hash }", hash)  # as typed in the address bar
        expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()
        expect(page.get_by_role("alert")).to_contain_text(
            "forbidden: this token does not reach namespace 'bob-secrets'"
        )
        expect(page.locator("main")).not_to_contain_text("4321")
    page.get_by_role("link", name="Back to the namespaces").click()
    page.get_by_role("link", name="alice-notes").click()
    page.get_by_role("link", name="todo").click()
    expect(page.locator("pre.json")).to_have_text('"milk"')
    stored = page.evaluate(
        "[document.cookie, localStorage.length, sessionStorage.length, location.href]"
    )
    assert stored[:3] == ["", 0, 0] and alice not in stored[3]
    assert page.context.cookies() == []
    page.reload()  # memory only: a reload asks again
    expect(page.get_by_role("heading", name="Token")).to_be_visible()
    page.get_by_label("Token").fill(alice)
    page.get_by_role("button", name="Open").click()
    expect(page.locator("pre.json")).to_have_text('"milk"')  # back where it was
    page.get_by_role("button", name="Forget token").click()
    expect(page.get_by_role("heading", name="Token")).to_be_visible()


def test_a_read_only_token_reads_and_is_told_why_it_cannot_write(
    page_of: Inspector, token_server: TokenServer
) -> None:
    page = page_of.open("#/ns/alice-notes/key/todo")
    sign_in(page, token_server.tokens["reader"])
    expect(page.locator("pre.json")).to_have_text('"milk"')
    page.get_by_role("button", name="Edit").click()
    page.get_by_role("textbox", name="Value (JSON)").fill('"eggs"')
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text("Not saved: forbidden: this token is read-only")
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("alert")).to_have_text(
        "Not deleted: forbidden: this token is read-only"
    )
    admin = {"Authorization": f"Bearer {token_server.tokens['admin']}"}
    answer = httpx.get(
        f"{token_server.server.url}/v1/ns/alice-notes/keys/todo", headers=admin, timeout=10
    )
    assert answer.json()["value"] == "milk"
