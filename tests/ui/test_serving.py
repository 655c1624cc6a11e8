"""How /ui is served (SQLite and PostgreSQL servers): headers, caching, 404s, --no-ui, size."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from importlib import resources
from pathlib import Path

import httpx

from ..server.conftest import LiveServer
from .conftest import new_database

CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
)
STATIC = resources.files("botwire_server.ui") / "static"


def test_the_page_loads_without_a_token_under_a_strict_policy(served: LiveServer) -> None:
    for path in ("/ui", "/ui/"):
        page = httpx.get(served.url + path)
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert page.headers["content-security-policy"] == CSP
        assert page.headers["x-content-type-options"] == "nosniff"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "set-cookie" not in page.headers
        assert page.content == (STATIC / "index.html").read_bytes()
    assert f"ui        {served.url}/ui" in served.log.read_text()  # serve names the address


def test_every_asset_is_served_with_its_type_and_an_etag(served: LiveServer) -> None:
    index = (STATIC / "index.html").read_text()
    modules = "".join(f.read_text() for f in STATIC.iterdir() if f.name.endswith(".js"))
    linked = re.findall(r'(?:src|href)="/ui/([\w.]+)"', index)
    imported = re.findall(r'from "\./([\w.]+)"', modules)
    assert {"ui.js", "ui.css"} <= set(linked)
    kinds = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}
    for name in set(linked) | set(imported):
        answer = httpx.get(f"{served.url}/ui/{name}")
        assert answer.status_code == 200, name
        assert answer.headers["content-type"] == kinds[Path(name).suffix]
        assert answer.headers["cache-control"] == "no-cache"
        assert answer.headers["content-security-policy"] == CSP
        etag = answer.headers["etag"]
        again = httpx.get(f"{served.url}/ui/{name}", headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""


def test_an_unknown_asset_is_a_json_404_and_ui_is_not_in_the_api_schema(
    served: LiveServer,
) -> None:
    answer = httpx.get(served.url + "/ui/nope.js")
    assert answer.status_code == 404
    assert answer.json() == {
        "error": {"code": "not_found", "message": "the inspector has no file 'nope.js'"}
    }
    assert httpx.get(served.url + "/ui/..%2Fapp.py").status_code == 404
    paths = httpx.get(served.url + "/openapi.json").json()["paths"]
    assert not [p for p in paths if p.startswith("/ui")]


def test_the_assets_stay_small() -> None:
    total = sum(len(f.read_bytes()) for f in STATIC.iterdir() if f.is_file())
    assert total < 60_000


def test_no_ui_serves_no_page(backend: str, tmp_path: Path) -> None:
    db = new_database(backend, tmp_path)
    server = LiveServer(db, log=tmp_path / "server.log")
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOTWIRE_SERVER_")}
    args = ["serve", "--port", str(server.port), "--db", db, "--no-ui"]
    with open(server.log, "ab") as log:  # LiveServer passes flags with values only
        server.proc = subprocess.Popen(
            [sys.executable, "-m", "botwire.cli", *args],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
            start_new_session=True,
        )
    try:
        server.wait_ready()
        for path in ("/ui", "/ui/", "/ui/ui.js"):
            answer = httpx.get(server.url + path)
            assert answer.status_code == 404
            assert answer.json()["error"]["code"] == "not_found"
        assert httpx.get(server.url + "/v1/info").status_code == 200
        assert "ui        off (--no-ui)" in server.log.read_text()
    finally:
        server.stop()
