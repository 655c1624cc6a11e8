"""The inspector at ``/ui``: a static page (``static/``) that talks to ``/v1`` as its user.

The page holds no data, so it loads without a token; everything it shows comes
from ``/v1`` with the token its user types, which the page keeps in memory only
(never a cookie, so no other page can make the browser send it). The assets are
read once, when the app is built, and served with a Content-Security-Policy that
allows nothing but this server's own scripts, styles and requests: even a value
that slipped into the page as markup could neither run nor call out.
"""

from __future__ import annotations

import hashlib
from importlib import resources
from typing import NamedTuple

from fastapi import FastAPI, Request
from starlette.responses import Response

from botwire import NotFound

CSP = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        "connect-src 'self'",
        "img-src 'self' data:",
        "base-uri 'none'",
        "form-action 'none'",
        "frame-ancestors 'none'",
    ]
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",  # revalidate (ETag): a server upgrade shows its new page
}
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".svg": "image/svg+xml",
}
INDEX = "index.html"


class Asset(NamedTuple):
    body: bytes
    media_type: str
    etag: str


def load_assets() -> dict[str, Asset]:
    """Every servable file of ``static/`` by name, with its media type and ETag."""
    found: dict[str, Asset] = {}
    for entry in (resources.files(__package__) / "static").iterdir():
        suffix = "." + entry.name.rpartition(".")[2]
        if entry.is_file() and suffix in MEDIA_TYPES:
            body = entry.read_bytes()
            etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
            found[entry.name] = Asset(body, MEDIA_TYPES[suffix], etag)
    return found


def install(app: FastAPI) -> None:
    """Serve the page at ``/ui`` and ``/ui/``, and its assets at ``/ui/<name>``."""
    assets = load_assets()

    async def page(request: Request) -> Response:
        return _answer(request, assets[INDEX])

    async def asset(request: Request) -> Response:
        name = request.path_params["name"]
        found = assets.get(name)
        if found is None:
            raise NotFound(f"the inspector has no file {name!r}")
        return _answer(request, found)

    for path in ("/ui", "/ui/"):
        app.add_route(path, page, methods=["GET"], include_in_schema=False)
    app.add_route("/ui/{name}", asset, methods=["GET"], include_in_schema=False)


def _answer(request: Request, asset: Asset) -> Response:
    headers = {**HEADERS, "ETag": asset.etag}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    return Response(asset.body, headers=headers, media_type=asset.media_type)
