"""The botwire server: shared memory over HTTP for agents on many machines.

botwire serve [--host 127.0.0.1] [--port 8787] [--db PATH] [--workers N]
uvicorn botwire_server.app:create_app --factory
"""

from typing import Any

from .settings import Settings

__all__ = ["Settings", "create_app"]


def __getattr__(name: str) -> Any:
    if name == "create_app":  # FastAPI costs ~170 ms to import: not for `botwire token`
        from .app import create_app

        return create_app
    raise AttributeError(name)
