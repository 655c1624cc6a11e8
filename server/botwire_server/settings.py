"""Server settings: defaults, then ``BOTWIRE_SERVER_*`` environment variables, then flags.

Limits default to the hosted free tier; ``0`` switches one off.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any

from botwire import InvalidRequest
from botwire.stores.base import Limits

ENV_PREFIX = "BOTWIRE_SERVER_"
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def _default_db() -> str:
    from botwire.stores import default_home

    return default_home() + "/server.db"  # beside the embedded default, never the same file


@dataclass(frozen=True)
class Settings:
    host: str = "127.0.0.1"
    port: int = 8787
    db: str = field(default_factory=_default_db)  # a SQLite path, or a postgresql:// URL
    workers: int = 1
    synchronous: str = "full"
    writes_per_day: int = 1000  # write requests (a batch is one) per namespace, UTC day
    max_bytes: int = 50_000_000  # stored per namespace
    max_value_bytes: int = 1_048_576  # one value
    max_body_bytes: int = 2_097_152  # one request body
    max_answer_bytes: int = 16_777_216  # the values one answer may carry (a batch's gets, scans)
    max_header_bytes: int = 65_536  # a request's line and headers
    read_timeout: float = 20.0  # seconds to receive one whole request (head and body)
    max_connections: int = 1000  # open connections per worker
    auth: str = "open"  # "open": the namespace is the capability; "token": bearer tokens
    allow_open: bool = False  # allow open mode on a non-loopback address
    sweep_interval: float = 5.0  # seconds between background sweeps of expired items
    pool_size: int = 10  # PostgreSQL connections per worker

    def __post_init__(self) -> None:
        if self.auth not in ("open", "token"):
            raise InvalidRequest(f"auth must be 'open' or 'token', not {self.auth!r}")
        for name in (
            "writes_per_day",
            "max_bytes",
            "max_value_bytes",
            "max_body_bytes",
            "max_answer_bytes",
            "max_header_bytes",
            "read_timeout",
            "max_connections",
        ):
            if getattr(self, name) < 0:
                raise InvalidRequest(f"{name} must be >= 0")
        if self.workers < 1:
            raise InvalidRequest("workers must be >= 1")
        if self.pool_size < 1:
            raise InvalidRequest("pool_size must be >= 1")

    @property
    def uses_postgres(self) -> bool:
        return self.db.startswith(("postgresql://", "postgres://"))

    @property
    def limits(self) -> Limits:
        return Limits(
            self.writes_per_day, self.max_bytes, self.max_value_bytes, self.max_answer_bytes
        )

    @property
    def exposed_open(self) -> bool:
        """Open mode on an address other machines can reach."""
        return self.auth == "open" and self.host not in LOOPBACK

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, **overrides: Any) -> Settings:
        """Defaults, then ``BOTWIRE_SERVER_<NAME>`` variables, then ``overrides`` (flags)."""
        environ = dict(os.environ if environ is None else environ)
        values: dict[str, Any] = {}
        for f in fields(cls):
            raw = environ.get(ENV_PREFIX + f.name.upper())
            if raw is not None:
                values[f.name] = _convert(f, raw)
        values.update({k: v for k, v in overrides.items() if v is not None})
        return cls(**values)

    def to_env(self) -> dict[str, str]:
        """The environment that makes ``from_env`` rebuild these settings (for workers)."""
        return {ENV_PREFIX + k.upper(): str(v) for k, v in dataclasses.asdict(self).items()}


def _convert(f: dataclasses.Field[Any], raw: str) -> Any:
    kind = f.type if isinstance(f.type, str) else f.type.__name__
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            return raw.strip().lower() in ("1", "true", "yes", "on")
    except ValueError:
        raise InvalidRequest(f"{ENV_PREFIX}{f.name.upper()}={raw!r} is not a {kind}") from None
    return raw
