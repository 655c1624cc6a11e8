"""Every failure becomes ``{"error": {"code", "message", ...}}`` here, and only here.

The status comes from the exception class (``BotwireError.status``, found by
MRO), so the HTTP client can raise the very class the embedded store raises.
Framework errors (unknown route, wrong method, bad query parameter) are
translated into the same shape. Nothing a client sends reaches the catch-all.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect
from starlette.responses import Response
from starlette.routing import Match

from botwire import BotwireError, DiskFull, InvalidRequest, TooManyWatchers, WriteLimitExceeded

from .limits import WRITE_LIMIT_SETTING, rate_limit_headers

log = logging.getLogger("botwire.server")

_HTTP_CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    413: "request_too_large",
    415: "unsupported_media_type",
}


def json_response(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(body), status, headers, media_type="application/json")


def error_response(exc: BotwireError, headers: dict[str, str] | None = None) -> Response:
    headers = dict(headers or {})
    error = exc.to_dict()
    if isinstance(exc, WriteLimitExceeded):
        headers.update(rate_limit_headers(exc))
        error["message"] = f"{exc.message}; {WRITE_LIMIT_SETTING}"
    elif isinstance(exc, (DiskFull, TooManyWatchers)):
        headers["Retry-After"] = str(max(1, math.ceil(exc.retry_after)))
        if isinstance(exc, TooManyWatchers):  # a refused watcher keeps no connection either
            headers["Connection"] = "close"
    return json_response({"error": error}, exc.status, headers)


def install(app: FastAPI) -> None:
    """Register the exception handlers on ``app``."""

    async def botwire_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, BotwireError)
        request.state.error_code = exc.code
        return error_response(exc)

    async def http_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, HTTPException)
        code = _HTTP_CODES.get(exc.status_code, "http_error")
        request.state.error_code = code
        body = {"error": {"code": code, "message": str(exc.detail)}}
        headers = dict(exc.headers or {})
        if exc.status_code == 405:  # Starlette names one route's methods; name them all
            headers["Allow"] = ", ".join(_allowed_methods(request))
        return json_response(body, exc.status_code, headers)

    async def validation_error(request: Request, exc: Exception) -> Response:
        assert isinstance(exc, RequestValidationError)
        where = "; ".join(
            f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors()
        )
        return await botwire_error(request, InvalidRequest(where or "invalid request"))

    async def client_gone(request: Request, exc: Exception) -> Response:
        request.state.error_code = "client_disconnected"  # nobody reads this answer
        body = {"error": {"code": "client_disconnected", "message": "the body was cut short"}}
        return json_response(body, 400)

    async def unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error on %s %s", request.method, request.url.path)
        request.state.error_code = "internal"
        body = {"error": {"code": "internal", "message": "internal error"}}
        return json_response(body, 500)

    app.add_exception_handler(BotwireError, botwire_error)
    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_exception_handler(ClientDisconnect, client_gone)
    app.add_exception_handler(Exception, unexpected)


def _allowed_methods(request: Request) -> list[str]:
    methods: set[str] = set()
    for route in request.app.router.routes:
        match, _ = route.matches({**request.scope, "method": "GET"})
        if match != Match.NONE:
            methods |= getattr(route, "methods", None) or set()
    return sorted(methods)


def openapi_errors(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` entries that document error answers in OpenAPI."""
    from botwire.wire import ERRORS_BY_CODE

    out: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        codes = sorted(c.code for c in ERRORS_BY_CODE.values() if c.status == status)
        codes += [_HTTP_CODES[status]] if status in _HTTP_CODES else []
        out[status] = {
            "description": "error: " + ", ".join(sorted(set(codes))),
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        }
    return out
