"""The stack's limit: a bare ASGI app answering a fixed JSON body, under the same uvicorn.

No routing, no storage, no validation: whatever botwire does above the HTTP server
is measured against this.

    uvicorn benchmarks.peers.bare_app:app --workers 2
"""

from __future__ import annotations

from typing import Any

BODY = b'{"key":"k","value":{"n":1},"version":1,"created_at":0.0,"updated_at":0.0}'
HEADERS = [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    more = True
    while more:  # read the body, as a real handler must
        more = (await receive()).get("more_body", False)
    await send({"type": "http.response.start", "status": 200, "headers": HEADERS})
    await send({"type": "http.response.body", "body": BODY})
