"""The inspector at /ui in headless Chromium, on an open-mode server (SQLite and PostgreSQL):
browse, edit (guarded by the version), delete, expiry, the live view, and stored markup."""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx
from playwright.sync_api import Browser, expect

from ..server.conftest import LiveServer
from .conftest import Inspector, botwire, new_database, open_inspector, seed

WEIRD = "a/b?c#d%e f ü."  # every character a URL or a hash route could trip on


def item(api: httpx.Client, ns: str, key: str) -> dict:
    """The item as the server has it (through the batch: any key, "." and ".." too)."""
    answer = api.post(f"/v1/ns/{ns}/batch", json={"ops": [{"op": "get", "key": key}]})
    found: dict = answer.raise_for_status().json()["results"][0]
    return found


def test_load_lists_namespaces_with_usage_against_the_limits(
    inspector: Inspector, api: httpx.Client, ns: str
) -> None:
    seed(api, ns, {"a": 1, "b": [1, 2], "c": {"x": "y"}})
    stored = api.get(f"/v1/ns/{ns}/stats").json()["bytes"]
    version = api.get("/v1/info").json()["version"]
    page = inspector.open()
    row = page.get_by_role("row").filter(has=page.get_by_role("link", name=ns, exact=True))
    expect(row.locator("td")).to_have_text(["3", f"{stored} B of 50 MB", "1 of 1,000"])
    expect(row.locator("meter")).to_have_count(2)
    expect(page.locator("#server")).to_have_text(f"botwire {version} · open mode")
    page.get_by_role("searchbox", name="Namespace prefix").fill(ns)
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("tbody tr")).to_have_count(1)
    expect(page).to_have_url(f"{inspector.url}/ui#/?prefix={ns}")
    assert inspector.console_errors == []
    assert any("/v1/namespaces" in url for url in inspector.requests)


def test_browse_pages_of_keys_down_to_an_item_by_mouse_and_keyboard(
    inspector: Inspector, api: httpx.Client, ns: str
) -> None:
    value = {"deep": [1, {"x": None}], "text": "two\nlines"}
    seed(api, ns, {f"k{i:03}": i for i in range(150)} | {WEIRD: value})
    page = inspector.open()
    page.get_by_role("link", name=ns, exact=True).click()
    expect(page.get_by_role("definition").first).to_have_text("151")
    keys = page.locator("ul.keys a")
    expect(keys).to_have_count(100)
    expect(keys.first).to_have_text(WEIRD)
    page.keyboard.press("n")  # the next page
    expect(keys).to_have_count(51)
    expect(keys.last).to_have_text("k149")
    page.go_back()
    expect(keys).to_have_count(100)
    for key in "jjk":  # down, down, up
        page.keyboard.press(key)
    expect(keys.first).to_be_focused()
    page.keyboard.press("/")  # the prefix filter
    page.keyboard.type("a/")
    page.keyboard.press("Enter")
    expect(keys).to_have_count(1)
    page.keyboard.press("j")  # the first row
    page.keyboard.press("Enter")
    expect(page.locator("h1")).to_have_text(WEIRD)
    expect(page.locator("pre.json")).to_have_text(json.dumps(value, indent=2))
    expect(page.locator("[data-field=version]")).to_have_text(str(item(api, ns, WEIRD)["version"]))
    expect(page.locator("[data-field=expires]")).to_have_text("never")
    page.reload()  # the hash names the view
    expect(page.locator("h1")).to_have_text(WEIRD)
    expect(page.locator("dl.facts dt")).to_have_text(
        ["Version", "Created", "Updated", "Expires", "Size"]
    )
    page.keyboard.press("u")  # one level up
    expect(keys).to_have_count(100)
    page.keyboard.press("l")  # its live view
    expect(page.locator("h1")).to_have_text(f"Changes in {ns}")
    assert inspector.console_errors == []


def test_dot_keys_are_reachable(inspector: Inspector, api: httpx.Client, ns: str) -> None:
    """A browser drops "." and ".." path segments (even as %2E%2E): the page still reads them."""
    seed(api, ns, {".": "one dot", "..": "two dots"})
    page = inspector.open(f"#/ns/{ns}")
    page.get_by_role("link", name="..", exact=True).click()
    expect(page.locator("pre.json")).to_have_text('"two dots"')


def test_an_edit_after_another_writer_shows_their_value_and_overwrites_nothing(
    inspector: Inspector, api: httpx.Client, ns: str, served: LiveServer
) -> None:
    seed(api, ns, {"doc": {"by": "seed"}})
    page = inspector.open(f"#/ns/{ns}/key/doc")
    page.get_by_role("button", name="Edit").click()
    botwire("--url", served.url, "set", ns, "doc", '{"by": "cli"}')  # another process
    editor = page.get_by_role("textbox", name="Value (JSON)")
    editor.fill('{"by": "page"}')
    page.get_by_role("button", name="Save", exact=True).click()
    alert = page.get_by_role("alert")
    expect(alert).to_contain_text("Changed by someone else since you opened it.")
    expect(alert.locator("pre")).to_have_text('{\n  "by": "cli"\n}')
    assert item(api, ns, "doc")["value"] == {"by": "cli"}
    expect(editor).to_have_value('{"by": "page"}')  # the edit is kept, not lost
    # overwriting is a second choice, guarded in turn by the version now shown
    page.get_by_role("button", name="Save mine over theirs").click()
    expect(page.get_by_role("status")).to_contain_text("Saved: version")
    assert item(api, ns, "doc")["value"] == {"by": "page"}


def test_invalid_json_is_refused_before_anything_is_sent(
    inspector: Inspector, api: httpx.Client, ns: str
) -> None:
    seed(api, ns, {"doc": [1]})
    before = item(api, ns, "doc")
    page = inspector.open(f"#/ns/{ns}/key/doc")
    page.get_by_role("button", name="Edit").click()
    page.get_by_role("textbox", name="Value (JSON)").fill("[1, 2")
    sent = len(inspector.requests)
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("Not valid JSON, nothing was sent")
    assert len(inspector.requests) == sent
    assert item(api, ns, "doc") == before
    page.keyboard.press("Escape")  # cancels the edit
    expect(page.get_by_role("textbox", name="Value (JSON)")).to_have_count(0)
    expect(page.locator("pre.json")).to_have_text("[\n  1\n]")


def test_a_saved_edit_keeps_the_expiry_and_every_number_as_written(
    inspector: Inspector, api: httpx.Client, ns: str
) -> None:
    value = {"big": 2**63 - 1, "float": 1.0, "text": "old"}
    api.put(f"/v1/ns/{ns}/keys/doc", json={"value": value, "ttl": 3600}).raise_for_status()
    before = item(api, ns, "doc")
    page = inspector.open(f"#/ns/{ns}/key/doc")
    expect(page.locator("[data-field=expires]")).to_contain_text("(in 60 minutes)")
    page.keyboard.press("e")  # edit
    editor = page.get_by_role("textbox", name="Value (JSON)")
    text = editor.input_value()
    assert "9223372036854775807" in text and "1.0" in text  # JSON.parse would round both
    editor.fill(text.replace('"old"', '"new"'))
    editor.press("Control+Enter")  # save
    expect(page.get_by_role("status")).to_contain_text("Saved: version")
    after = item(api, ns, "doc")
    assert after["value"] == value | {"text": "new"}
    assert type(after["value"]["float"]) is float
    assert after["version"] > before["version"]
    assert abs(after["expires_at"] - before["expires_at"]) < 1  # clocks of one machine
    expect(page.locator("pre.json")).to_contain_text('"new"')


def test_delete_asks_first_and_is_guarded_by_the_version(
    inspector: Inspector, api: httpx.Client, ns: str
) -> None:
    seed(api, ns, {"gone": 1, "kept": 2})
    page = inspector.open(f"#/ns/{ns}/key/gone")
    expect(page.locator("pre.json")).to_have_text("1")
    page.keyboard.press("d")  # delete…
    seed(api, ns, {"gone": 5})  # someone else writes before the confirmation
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("alert")).to_contain_text("not deleted")
    assert item(api, ns, "gone")["value"] == 5
    page.get_by_role("button", name="Reload").click()
    expect(page.locator("pre.json")).to_have_text("5")
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Cancel").click()
    page.get_by_role("button", name="Delete…").click()
    page.get_by_role("button", name="Delete", exact=True).click()
    expect(page.get_by_role("status")).to_have_text("Deleted gone.")
    expect(page.locator("ul.keys a")).to_have_text(["kept"])
    assert item(api, ns, "gone") is None


def test_set_and_clear_an_expiry(inspector: Inspector, api: httpx.Client, ns: str) -> None:
    seed(api, ns, {"t": 1})
    page = inspector.open(f"#/ns/{ns}/key/t")
    expires = page.locator("[data-field=expires]")
    expect(expires).to_have_text("never")
    expect(page.get_by_role("button", name="Never expire")).to_be_disabled()
    page.get_by_label("Expire in").fill("120")
    page.get_by_role("button", name="Set expiry").click()
    expect(page.get_by_role("status")).to_have_text("Expiry set.")
    expect(expires).to_contain_text("(in 2 minutes)")
    assert 110 < item(api, ns, "t")["expires_at"] - time.time() <= 120
    page.get_by_role("button", name="Never expire").click()
    expect(page.get_by_role("status")).to_have_text("It never expires now.")
    expect(expires).to_have_text("never")
    assert item(api, ns, "t")["expires_at"] is None


def test_the_live_view_shows_writes_of_another_process(
    inspector: Inspector, ns: str, served: LiveServer
) -> None:
    page = inspector.open(f"#/ns/{ns}/live")
    expect(page.get_by_role("status")).to_have_text("Live")
    botwire("--url", served.url, "set", ns, "news", '{"n": 1}', "--ttl", "600")
    rows = page.locator("table.changes tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first.locator("td, th")).to_contain_text(["news", '{"n":1}', "in 10 minutes"])
    botwire("--url", served.url, "delete", ns, "news")
    expect(rows).to_have_count(2)
    expect(rows.first).to_contain_text("deleted")
    with page.expect_event("requestfailed", lambda r: "/changes" in r.url):
        page.get_by_role("link", name="Keys").click()  # leaving the view ends its poll
    expect(page.locator("h1")).to_have_text(ns)


def test_the_live_view_by_prefix(inspector: Inspector, api: httpx.Client, ns: str) -> None:
    page = inspector.open(f"#/ns/{ns}/live?prefix=a%2F")
    expect(page.get_by_role("status")).to_have_text("Live: keys starting with “a/”")
    seed(api, ns, {"b": 1})
    seed(api, ns, {"a/x": 2})
    rows = page.locator("table.changes tbody tr")
    expect(rows.first).to_contain_text("a/x")
    expect(rows).to_have_count(1)  # "b", written before, was not shown


SCRIPT = "<script>window.pwned=1</script>"
IMG = '<img src=x onerror="window.pwned=1;alert(1)">'


def test_stored_markup_is_shown_as_text_and_never_runs(
    inspector: Inspector, api: httpx.Client, ns: str
) -> None:
    seed(api, ns, {IMG: SCRIPT, "html": {IMG: [SCRIPT]}})
    page = inspector.open(f"#/ns/{ns}")
    expect(page.locator("ul.keys")).to_contain_text(IMG)
    page.get_by_role("link", name=IMG, exact=True).click()
    expect(page.locator("h1")).to_have_text(IMG)
    expect(page.locator("pre.json")).to_have_text(json.dumps(SCRIPT))
    page.get_by_role("button", name="Edit").click()
    expect(page.get_by_role("textbox", name="Value (JSON)")).to_have_value(json.dumps(SCRIPT))
    page.goto(f"{inspector.url}/ui#/ns/{ns}/key/html")
    expect(page.locator("pre.json")).to_have_text(json.dumps({IMG: [SCRIPT]}, indent=2))
    page.goto(f"{inspector.url}/ui#/ns/{ns}/live")
    expect(page.get_by_role("status")).to_have_text("Live")
    seed(api, ns, {IMG: {"again": IMG}})
    expect(page.locator("table.changes tbody")).to_contain_text(IMG)
    assert page.evaluate("window.pwned") is None
    assert page.locator("img, script:not([src])").count() == 0
    assert not any(url.endswith("/x") for url in inspector.requests)


def test_the_live_view_rides_out_a_server_restart_without_missing_a_change(
    browser: Browser, backend: str, tmp_path: Path
) -> None:
    db = new_database(backend, tmp_path)
    server = LiveServer(db, log=tmp_path / "server.log")
    server.start()
    try:
        for inspector in open_inspector(browser, server.url):
            page = inspector.open("#/ns/restarts/live")
            status = page.get_by_role("status")
            expect(status).to_have_text("Live")
            server.kill()
            expect(status).to_contain_text("Reconnecting in")
            store = f"sqlite:///{db}" if backend == "sqlite" else db
            botwire("--url", store, "set", "restarts", "while-down", "1")  # straight to the db
            server.start()
            rows = page.locator("table.changes tbody tr")
            expect(rows).to_have_count(1, timeout=20_000)  # retries wait 1, 2, 4 ... s
            expect(rows.first).to_contain_text("while-down")
            expect(status).to_have_text("Live")
    finally:
        server.stop()
