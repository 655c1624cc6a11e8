"""Who may touch which namespace.

Open mode: the namespace is the capability (as in the hosted free tier).
Token mode: ``Authorization: Bearer <token>``. Tokens are minted by
``botwire token create`` as ``bw_<id>_<secret>``, shown once; only the secret's
SHA-256 is stored, found by the public id and compared in constant time. A token
carries namespace patterns (``user-*``; ``*`` and ``?`` wildcards, matched
case-sensitively against the whole name) and may be read-only. A request for a
namespace outside its patterns gets 403, whatever route or encoding it uses:
every route takes its namespace through :func:`authorize`.

Tokens live in the server's own database, in a namespace no API route can
name (``!tokens`` is not a valid namespace), keyed by id. Each worker keeps a
token's record for ``TOKEN_CACHE_SECONDS`` (5 s) after reading it, so a request
looks tokens up without a database round trip, and never on the event loop
when the database is remote (PostgreSQL): a revocation takes effect on every
worker and replica within 5 seconds.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import time
from fnmatch import fnmatchcase
from typing import Any, NamedTuple

from botwire import Forbidden, InvalidRequest, Unauthorized
from botwire.ops import Get, ListKeys, Put
from botwire.stores import LocalIO, Store
from botwire.wire import decode_value as decode
from botwire.wire import encode_value as encode

TOKENS_NS = "!tokens"
TOKEN_PREFIX = "bw_"
TOKEN_CACHE_SECONDS = 5.0
TOKEN_CACHE_SIZE = 10_000
NO_KEY = "set BOTWIRE_API_KEY or pass api_key= (CLI: --api-key); the server is in token mode"


class Token(NamedTuple):
    id: str
    namespaces: list[str]
    read_only: bool
    created_at: float
    revoked: bool


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


class Tokens:
    """Token records in ``store`` (the server's database, without limits)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._cache: dict[str, tuple[float, Any]] = {}  # id -> (read at, record or None)

    def create(self, namespaces: list[str], *, read_only: bool = False) -> tuple[str, Token]:
        """Mint a token; the secret is returned once and never stored."""
        if not namespaces:
            raise InvalidRequest("a token needs at least one namespace pattern")
        for pattern in namespaces:
            if not pattern or any(c.isspace() or c in "/%" for c in pattern):
                raise InvalidRequest(f"bad namespace pattern {pattern!r}")
        token_id, secret = secrets.token_hex(8), secrets.token_urlsafe(32)
        token = Token(token_id, list(namespaces), read_only, time.time(), False)
        record = {**token._asdict(), "sha256": _digest(secret)}
        self.store.batch(TOKENS_NS, [Put(token_id, encode(record), None, 0)])
        return f"{TOKEN_PREFIX}{token_id}_{secret}", token

    def _records(self) -> list[dict[str, Any]]:
        (ids,) = self.store.batch(TOKENS_NS, [ListKeys()])
        records = self.store.batch(TOKENS_NS, [Get(i) for i in ids]) if ids else []
        return [decode(r.data) for r in records if r is not None]

    def list(self) -> list[Token]:
        tokens = (Token(**{k: v for k, v in r.items() if k != "sha256"}) for r in self._records())
        return sorted(tokens, key=lambda t: t.created_at)

    def revoke(self, token_id: str) -> bool:
        """Revoke by id; ``False`` if there is no such token."""
        (record,) = self.store.batch(TOKENS_NS, [Get(token_id)])
        self._cache.pop(token_id, None)  # at once on this worker; within 5 s on the others
        if record is None:
            return False
        self.store.batch(
            TOKENS_NS, [Put(token_id, encode({**decode(record.data), "revoked": True}))]
        )
        return True

    def find(self, presented: str) -> Token | None:
        """The live token ``presented`` is, or ``None`` (sync: the command line)."""
        token_id, secret = _split(presented)
        if token_id is None:
            return None
        (record,) = self.store.batch(TOKENS_NS, [Get(token_id)])
        return _check(record, secret)

    async def afind(self, presented: str) -> Token | None:
        """:meth:`find` for a request: from this worker's cache, else off the event loop."""
        token_id, secret = _split(presented)
        if token_id is None:
            return None
        now = time.monotonic()
        cached = self._cache.get(token_id)
        if cached is not None and now - cached[0] < TOKEN_CACHE_SECONDS:
            return _check(cached[1], secret)
        if isinstance(self.store, LocalIO):  # SQLite: one indexed read, microseconds
            (record,) = self.store.batch(TOKENS_NS, [Get(token_id)])
        else:
            (record,) = await self.store.abatch(TOKENS_NS, [Get(token_id)])
        if len(self._cache) >= TOKEN_CACHE_SIZE:
            del self._cache[next(iter(self._cache))]
        self._cache[token_id] = (now, record)
        return _check(record, secret)


def _split(presented: str) -> tuple[str | None, str]:
    prefix, _, rest = presented.partition("_")
    token_id, _, secret = rest.partition("_")
    if prefix + "_" != TOKEN_PREFIX or not token_id.isalnum() or not secret:
        return None, ""
    return token_id, secret


def _check(record: Any, secret: str) -> Token | None:
    """The token of ``record`` if ``secret`` is its secret and it is not revoked."""
    if record is None:
        return None
    data: dict[str, Any] = decode(record.data)
    if not hmac.compare_digest(data.pop("sha256"), _digest(secret)):
        return None
    token = Token(**data)
    return None if token.revoked else token


async def token_for(tokens: Tokens | None, authorization: str | None) -> Token | None:
    """The caller's token; ``None`` in open mode (``tokens=None``); else ``Unauthorized``."""
    if tokens is None:
        return None
    if not authorization:  # said for the people who meet it: Python and CLI users
        raise Unauthorized(NO_KEY)
    scheme, _, secret = authorization.partition(" ")
    if scheme.lower() != "bearer" or not secret.strip():
        raise Unauthorized("the Authorization header must be 'Bearer <token>' (token mode)")
    token = await tokens.afind(secret.strip())
    if token is None:
        raise Unauthorized("unknown or revoked token")
    return token


def reaches(token: Token | None, namespace: str) -> bool:
    """Whether ``token`` (``None``: open mode) reaches ``namespace``."""
    return token is None or any(fnmatchcase(namespace, p) for p in token.namespaces)


def literal_prefix(token: Token | None) -> str:
    """What every namespace ``token`` reaches starts with (``""``: anything)."""
    if token is None:
        return ""
    starts = [re.split(r"[*?\[]", pattern, maxsplit=1)[0] for pattern in token.namespaces]
    common = starts[0] if starts else ""
    for start in starts[1:]:
        while not start.startswith(common):
            common = common[:-1]
    return common


async def authorize(
    tokens: Tokens | None, authorization: str | None, namespace: str, *, write: bool
) -> None:
    """Raise unless the caller may read (or ``write``) ``namespace``; ``tokens=None``: open."""
    token = await token_for(tokens, authorization)
    if token is None:
        return
    if not reaches(token, namespace):
        raise Forbidden(f"this token does not reach namespace {namespace!r}")
    if write and token.read_only:
        raise Forbidden("this token is read-only")
