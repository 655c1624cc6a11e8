"""Server settings: defaults, then ``BOTWIRE_SERVER_*`` environment variables, then flags.

Limits default to the hosted free tier; ``0`` switches one off.

The database (``--db``) is one of: a path to a SQLite file, the same
``sqlite:///relative.db`` or ``sqlite:////absolute.db`` URL ``Memory(url=...)``
takes, or ``postgresql://...``. ``serve``, ``token`` and ``migrate`` share its
default, ``server.db`` in ``$BOTWIRE_HOME``. What cannot be served (a server's
own ``http://`` URL, ``memory://``, any other scheme) is refused with the reason
before anything is created, and a SQLite path is made absolute, so every
worker, and every message, names the same file.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

from botwire import InvalidRequest
from botwire.stores.base import Limits

if TYPE_CHECKING:
    from botwire.stores import Store

ENV_PREFIX = "BOTWIRE_SERVER_"
LOOPBACK = ("127.0.0.1", "localhost", "::1")
_SERVABLE = "a SQLite file (server.db, sqlite:///server.db) or postgresql://..."
_URL_SCHEMES = ("sqlite", "postgresql", "postgres", "http", "https", "memory")


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
    ui: bool = True  # serve the inspector at /ui
    max_watchers: int = 500  # watch requests held at once per worker (<= half the connections)

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
            "max_watchers",
        ):
            if getattr(self, name) < 0:
                raise InvalidRequest(f"{name} must be >= 0")
        if self.workers < 1:
            raise InvalidRequest("workers must be >= 1")
        if self.pool_size < 1:
            raise InvalidRequest("pool_size must be >= 1")
        db, synchronous = parse_db(self.db)
        object.__setattr__(self, "db", db)  # frozen: normalised once, here
        object.__setattr__(self, "synchronous", (synchronous or self.synchronous).lower())
        if self.synchronous not in ("full", "normal", "extra"):
            raise InvalidRequest(
                f"synchronous must be full, normal or extra, not {self.synchronous!r}"
            )

    @property
    def uses_postgres(self) -> bool:
        return self.db.startswith(("postgresql://", "postgres://"))

    @property
    def db_display(self) -> str:
        """The database, for messages: a SQLite path, or a PostgreSQL URL without password."""
        if self.uses_postgres:
            return f"{_without_password(self.db)} (PostgreSQL)"
        return f"{self.db} (SQLite)"

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


def parse_db(db: str) -> tuple[str, str | None]:
    """``(what to open, synchronous= from a sqlite URL)`` for ``--db``; raises InvalidRequest.

    A SQLite path comes back absolute; a PostgreSQL URL as given.
    """
    if not db:
        raise InvalidRequest(f"the database (--db, {ENV_PREFIX}DB) is empty: give {_SERVABLE}")
    scheme, sep, _ = db.partition("://")
    scheme = scheme.lower()
    if sep:
        if scheme in ("postgresql", "postgres"):
            return db, None
        if scheme == "sqlite":
            return _sqlite_url(db)
        if scheme in ("http", "https"):
            raise InvalidRequest(
                f"--db {db!r} is a botwire server's URL: a server serves a database, not "
                f"another server. Give {_SERVABLE}; clients use the server's URL as BOTWIRE_URL"
            )
        if scheme == "memory":
            raise InvalidRequest(
                f"--db {db!r} cannot be served: every worker would have its own, lost at "
                f"each restart. Give {_SERVABLE}"
            )
        raise InvalidRequest(f"--db {db!r}: unknown scheme {scheme}://. Give {_SERVABLE}")
    # "sqlite:x.db" is a URL missing its slashes, not a file named so (a one-letter
    # scheme is a Windows drive: C:\data\server.db)
    written = re.match(r"([A-Za-z][A-Za-z0-9+.-]+):", db)
    if written and written.group(1).lower() in _URL_SCHEMES:
        raise InvalidRequest(
            f"--db {db!r} is neither a path nor a URL: write a path, "
            "sqlite:///relative/path.db, sqlite:////absolute/path.db or postgresql://..."
        )
    return os.path.abspath(os.path.expanduser(db)), None


def _sqlite_url(url: str) -> tuple[str, str | None]:
    """The path and ``synchronous=`` option of a ``sqlite:///`` URL (as ``Memory`` reads it)."""
    from urllib.parse import parse_qsl, urlsplit

    parts = urlsplit(url)
    if parts.netloc or not parts.path.startswith("/") or len(parts.path) < 2:
        raise InvalidRequest(
            f"--db {url!r}: write sqlite:///relative/path.db or sqlite:////absolute/path.db"
        )
    options = dict(parse_qsl(parts.query, keep_blank_values=True))
    synchronous = options.pop("synchronous", None)
    if options:
        raise InvalidRequest(
            f"--db {url!r}: unknown option(s) {sorted(options)}; known: synchronous"
        )
    return os.path.abspath(os.path.expanduser(parts.path[1:])), synchronous


def _without_password(url: str) -> str:
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


def open_stores(settings: Settings) -> tuple[Store, Store]:
    """The items store (with the limits) and the admin store (tokens: no limits) of ``--db``.

    A ``postgresql://`` URL opens PostgreSQL (migrating its schema, safely when
    replicas start together); anything else is a SQLite file. Here rather than
    in ``app`` so that ``botwire token`` and ``migrate`` run without FastAPI.
    """
    if settings.uses_postgres:
        from botwire.stores.postgres import PostgresStore

        items: Store = PostgresStore(
            settings.db,
            limits=settings.limits,
            pool_size=settings.pool_size,
            sweep_interval=float("inf"),  # the app's sweeper task does it
        )
        admin = PostgresStore(settings.db, pool_size=2, migrate_schema=False)
        return items, admin
    from botwire.stores.sqlite import SqliteStore

    store = SqliteStore(
        settings.db,
        synchronous=settings.synchronous,
        limits=settings.limits,
        accounting=True,
        writer_lock=True,  # workers take turns without busy-wait sleeps
        sweep_interval=float("inf"),  # the app's sweeper task does it
    )
    return store, SqliteStore(settings.db, synchronous=settings.synchronous)


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
