"""A whole-call deadline for httpx's clients, at the socket.

httpx's timeouts bound each socket operation, not a request: a server that
sends one byte every half second never trips a 2 s read timeout and holds the
caller for ever. :func:`bounded` wraps the network backend of a transport
(sync or async) so each connect, read and write waits at most until the
deadline the caller set with :func:`deadline` (a context variable: per thread,
and per task); past it, httpcore's own timeout error is raised (httpx maps it
to ``httpx.TimeoutException``). No task is spawned and nothing is cancelled
from outside, so connections are released as after any timeout.
"""

from __future__ import annotations

import contextlib
import contextvars
import time
import typing
from collections.abc import Iterator

import httpcore
import httpx

_deadline: contextvars.ContextVar[float | None] = contextvars.ContextVar(
    "botwire_deadline", default=None
)


@contextlib.contextmanager
def deadline(at: float) -> Iterator[None]:
    """Socket waits in this block end by ``at`` (``time.monotonic()`` seconds)."""
    token = _deadline.set(at)
    try:
        yield
    finally:
        _deadline.reset(token)


def _left(timeout: float | None, error: type[Exception]) -> float | None:
    at = _deadline.get()
    if at is None:
        return timeout
    left = at - time.monotonic()
    if left <= 0:
        raise error("the call's deadline passed")
    return left if timeout is None else min(timeout, left)


class _Stream(httpcore.NetworkStream):
    def __init__(self, stream: httpcore.NetworkStream) -> None:
        self._stream = stream

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    def close(self) -> None:
        self._stream.close()

    def start_tls(self, *args: typing.Any, **kwargs: typing.Any) -> httpcore.NetworkStream:
        return _Stream(self._stream.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _Backend(httpcore.NetworkBackend):
    def __init__(self, backend: httpcore.NetworkBackend) -> None:
        self._backend = backend

    def connect_tcp(  # type: ignore[override]
        self, host: str, port: int, timeout: float | None = None, **kwargs: typing.Any
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_tcp(host, port, left, **kwargs))

    def connect_unix_socket(  # type: ignore[override]
        self, path: str, timeout: float | None = None, **kwargs: typing.Any
    ) -> httpcore.NetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _Stream(self._backend.connect_unix_socket(path, left, **kwargs))

    def sleep(self, seconds: float) -> None:
        self._backend.sleep(seconds)


class _AsyncStream(httpcore.AsyncNetworkStream):
    def __init__(self, stream: httpcore.AsyncNetworkStream) -> None:
        self._stream = stream

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return await self._stream.read(max_bytes, _left(timeout, httpcore.ReadTimeout))

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._stream.write(buffer, _left(timeout, httpcore.WriteTimeout))

    async def aclose(self) -> None:
        await self._stream.aclose()

    async def start_tls(
        self, *args: typing.Any, **kwargs: typing.Any
    ) -> httpcore.AsyncNetworkStream:
        return _AsyncStream(await self._stream.start_tls(*args, **kwargs))

    def get_extra_info(self, info: str) -> typing.Any:
        return self._stream.get_extra_info(info)


class _AsyncBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, backend: httpcore.AsyncNetworkBackend) -> None:
        self._backend = backend

    async def connect_tcp(  # type: ignore[override]
        self, host: str, port: int, timeout: float | None = None, **kwargs: typing.Any
    ) -> httpcore.AsyncNetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _AsyncStream(await self._backend.connect_tcp(host, port, left, **kwargs))

    async def connect_unix_socket(  # type: ignore[override]
        self, path: str, timeout: float | None = None, **kwargs: typing.Any
    ) -> httpcore.AsyncNetworkStream:
        left = _left(timeout, httpcore.ConnectTimeout)
        return _AsyncStream(await self._backend.connect_unix_socket(path, left, **kwargs))

    async def sleep(self, seconds: float) -> None:
        await self._backend.sleep(seconds)


C = typing.TypeVar("C", httpx.Client, httpx.AsyncClient)


def bounded(client: C) -> C:
    """``client``, its transports (proxies from the environment too) honouring :func:`deadline`.

    httpx builds its httpcore pools with no way to pass a network backend, so
    each pool's backend is replaced in place (``tests/adversarial/
    test_client_faults.py`` fails if a new httpx moves it); a transport without
    one is left as it is.
    """
    transports = [client._transport, *client._mounts.values()]
    for transport in transports:
        pool = getattr(transport, "_pool", None)
        backend = getattr(pool, "_network_backend", None)
        if backend is None or isinstance(backend, (_Backend, _AsyncBackend)):
            continue
        wrapper = _AsyncBackend if isinstance(client, httpx.AsyncClient) else _Backend
        pool._network_backend = wrapper(backend)  # type: ignore[union-attr]
    return client
