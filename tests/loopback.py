"""One real uvicorn server on 127.0.0.1 for the test session, serving the apps tests give it.

Starting a server per test would cost a second each; instead the session's
server routes each request to one of the apps ``Loopback.serve(app)`` mounted,
by a path prefix of its own (``http://127.0.0.1:<port>/app-7``), and runs each
app's lifespan on the server's event loop. Requests cross a real socket and a
real HTTP stack, the test keeps the app in hand (its store, its clock), and
every app has its own URL, so nothing keyed by URL (shared stores, read caches)
carries over from one test to the next.
"""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import uvicorn

from botwire.stores.base import Limits

Asgi = Callable[..., Any]


class Loopback:
    def __init__(self) -> None:
        self._apps: dict[str, Asgi] = {}
        self._mounted = 0
        self._loop: asyncio.AbstractEventLoop | None = None
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{sock.getsockname()[1]}"
        config = uvicorn.Config(self._asgi, interface="asgi3", lifespan="on", log_level="warning")
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [sock]}, daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + 30
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the loopback uvicorn did not start")
            time.sleep(0.01)

    async def _asgi(self, scope: dict[str, Any], receive: Asgi, send: Asgi) -> None:
        if scope["type"] == "lifespan":  # the server's own: note its loop, answer at once
            self._loop = asyncio.get_running_loop()
            while (await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        parts = scope["path"].split("/", 2)  # "", "app-7", "v1/ns/..."
        prefix, rest = parts[1] if len(parts) > 1 else "", parts[2] if len(parts) > 2 else ""
        app = self._apps.get(prefix)
        if app is None:
            await send({"type": "http.response.start", "status": 404, "headers": []})
            await send({"type": "http.response.body", "body": b"no app mounted here"})
            return
        path = "/" + rest
        await app({**scope, "path": path, "raw_path": path.encode()}, receive, send)

    def serve(self, app: Any) -> tuple[str, Callable[[], None]]:
        """Mount ``app`` after running its startup: its URL, and a function to shut it down."""
        assert self._loop is not None
        lifespan = app.router.lifespan_context(app)
        asyncio.run_coroutine_threadsafe(lifespan.__aenter__(), self._loop).result(30)
        self._mounted += 1
        prefix = f"app-{self._mounted}"
        self._apps[prefix] = app

        def shutdown() -> None:
            self._apps.pop(prefix, None)
            assert self._loop is not None
            done = lifespan.__aexit__(None, None, None)
            asyncio.run_coroutine_threadsafe(done, self._loop).result(30)

        return f"{self.url}/{prefix}", shutdown

    def close(self) -> None:
        self._server.should_exit = True
        self._thread.join(30)


def server_app(directory: Path, limits: Limits | None = None) -> Any:
    """The real server app on a fresh database in ``directory``, with ``limits``."""
    from botwire_server import Settings, create_app

    limits = limits or Limits()
    settings = Settings(
        db=str(directory / "server.db"),
        writes_per_day=limits.writes_per_day,
        max_bytes=limits.max_bytes,
        max_value_bytes=limits.max_value_bytes,
        max_body_bytes=0,
    )
    return create_app(settings)


_shared: Loopback | None = None


def loopback() -> Loopback:
    """The session's loopback server, started on first use."""
    global _shared
    if _shared is None:
        _shared = Loopback()
    return _shared


def close_loopback() -> None:
    global _shared
    if _shared is not None:
        _shared.close()
        _shared = None


class Server:
    """The real app on the session's loopback uvicorn, with a fresh database."""

    def __init__(self, directory: Path, limits: Limits | None = None) -> None:
        self.app = server_app(directory, limits)
        self.url, shutdown = loopback().serve(self.app)
        self._shutdown: Callable[[], None] | None = shutdown

    def stop(self) -> None:
        if self._shutdown is not None:
            self._shutdown()
            self._shutdown = None


def host(
    server: Server, cache_dir: Path | None, **options: Any
) -> tuple[Any, list[httpx.Response]]:
    """A client store as one machine would have it (cached unless ``cache_dir`` is
    ``None``), and the list of responses its HTTP client saw."""
    from botwire.stores.cached import CachedStore
    from botwire.stores.http import HttpStore

    seen: list[httpx.Response] = []
    client = httpx.Client(base_url=server.url, event_hooks={"response": [seen.append]})
    store = HttpStore(server.url, client=client)
    if cache_dir is None:
        return store, seen
    return CachedStore(store, cache_dir, **options), seen
