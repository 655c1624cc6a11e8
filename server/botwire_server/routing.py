"""Routes dispatched by Starlette directly and documented by FastAPI, from one declaration.

FastAPI's per-route machinery (dependency solving, even for a handler that only
takes the ``Request``) cost about 40% of a GET. Handlers here read their own
parameters (``deps.py``), so each route is registered twice: a Starlette
``Route`` placed first, which serves every request, and a FastAPI route with
the same handler, which only feeds the OpenAPI schema.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from enum import Enum
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from starlette.responses import Response
from starlette.routing import Route

Handler = Callable[[Request], Awaitable[Response]]


class Routes:
    def __init__(self, prefix: str, tags: list[str | Enum]) -> None:
        self.prefix = prefix
        self.docs = APIRouter(prefix=prefix, tags=tags)
        self.served: list[Route] = []

    def route(self, method: str, path: str, **docs: Any) -> Callable[[Handler], Handler]:
        def register(handler: Handler) -> Handler:
            self.docs.add_api_route(path, handler, methods=[method], **docs)

            async def endpoint(request: Request) -> Response:
                request.scope["route"] = served  # FastAPI's router does not note it: metrics do
                return await handler(request)

            served = Route(self.prefix + path, endpoint, methods=[method])
            served.methods = {method}  # Starlette adds HEAD to GET: not served, not documented
            self.served.append(served)
            return handler

        return register

    def get(self, path: str, **docs: Any) -> Callable[[Handler], Handler]:
        return self.route("GET", path, **docs)

    def put(self, path: str, **docs: Any) -> Callable[[Handler], Handler]:
        return self.route("PUT", path, **docs)

    def post(self, path: str, **docs: Any) -> Callable[[Handler], Handler]:
        return self.route("POST", path, **docs)

    def delete(self, path: str, **docs: Any) -> Callable[[Handler], Handler]:
        return self.route("DELETE", path, **docs)


def install(app: FastAPI, *groups: Routes) -> None:
    for group in groups:
        app.include_router(group.docs)
    app.router.routes[0:0] = [route for group in groups for route in group.served]
