"""``botwire serve``, ``botwire token`` and ``botwire migrate``: the server's command line.

The three share one database: ``--db``, else ``$BOTWIRE_SERVER_DB``, else
``server.db`` in ``$BOTWIRE_HOME``, and each names it on standard error. ``token``
never makes a new, empty database unless told ``--create`` (a token minted into
a file the server does not read would only ever get 401). A missing extra is one
line naming the ``pip install`` to run, and exit status 2.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib
import importlib.util
import os
import shlex
import sys
from typing import Any

from botwire import Unavailable

from .settings import ENV_PREFIX, Settings, open_stores

_EXTRAS = {  # module -> the extra that installs it
    "uvicorn": "server",
    "fastapi": "server",
    "prometheus_client": "server",
    "psycopg": "postgres",
    "psycopg_pool": "postgres",
}
_SERVER = ("uvicorn", "fastapi", "prometheus_client")
_POSTGRES = ("psycopg", "psycopg_pool")


def settings_from(args: argparse.Namespace) -> Settings:
    names = Settings.__dataclass_fields__
    return Settings.from_env(**{k: v for k, v in vars(args).items() if k in names})


def missing_extras(command: str, modules: tuple[str, ...]) -> str | None:
    """The one-line message for ``command`` if any of ``modules`` cannot be imported."""
    missing = []
    for name in modules:
        try:
            importlib.import_module(name)
        except ImportError:
            missing.append(name)
    if not missing:
        return None
    extras = ",".join(e for e in ("server", "postgres") if e in {_EXTRAS[m] for m in missing})
    return (
        f"botwire: error: {command} needs {' and '.join(missing)}, not installed here: "
        f"pip install 'botwire[{extras}]'"
    )


def _needs(settings: Settings, server: bool = False) -> tuple[str, ...]:
    return (_SERVER if server else ()) + (_POSTGRES if settings.uses_postgres else ())


def serve(args: argparse.Namespace) -> int:
    settings = settings_from(args)
    if settings.exposed_open and not settings.allow_open:
        print(
            f"botwire: error: refusing to serve open mode on {settings.host}: anyone who can "
            "reach it could read every namespace. Use --auth token, or --allow-open.",
            file=sys.stderr,
        )
        return 2
    missing = missing_extras("serve", _needs(settings, server=True))
    if missing:
        print(missing, file=sys.stderr)
        return 2
    import uvicorn

    settings = _fit_open_file_limit(settings)
    if args.no_mcp:  # not a Settings field: the workers read it from the environment
        os.environ["BOTWIRE_SERVER_MCP"] = "off"
    announce(settings)
    os.environ.update(settings.to_env())  # how each worker process gets the settings
    uvicorn.run(
        "botwire_server.app:create_app",
        factory=True,
        host=settings.host,
        port=settings.port,
        workers=settings.workers,
        timeout_graceful_shutdown=10,
        log_level="info",
        http=_protocol(),
        access_log=args.access_log,  # a line per request costs ~10% of throughput
    )
    return 0


def announce(settings: Settings) -> None:
    """What ``serve`` prints before it listens: where, which database, auth mode, limits.

    It opens the database first (as each worker will), so an unreachable
    PostgreSQL or an unwritable file fails here, once, in one line.
    """
    new = not settings.uses_postgres and not os.path.exists(settings.db)
    items, admin = open_stores(settings)
    try:
        tokens = _token_counts(admin) if settings.auth == "token" else None
    finally:
        items.close()
        admin.close()
    host = f"[{settings.host}]" if ":" in settings.host else settings.host
    workers = f"{settings.workers} worker{'s' if settings.workers > 1 else ''}"
    database = settings.db_display[:-1]  # "... (SQLite" : the details go in the brackets
    if settings.uses_postgres:
        database += f", {settings.pool_size} connections per worker)"
    else:
        database += f", synchronous={settings.synchronous}{', new file' if new else ''})"
    if tokens is None:
        auth = (
            "open: no key is checked, a namespace's name is the access to it "
            "(--auth token for keys)"
        )
    else:
        live, revoked = tokens
        made = f"{live} live token{'s' * (live != 1)}" + (f", {revoked} revoked" if revoked else "")
        made = made if live else f"{made} (every request gets 401 until one is made)"
        auth = (
            f"token: {made}, kept in the database above; "
            f"botwire token create{_db_flag(settings)} --namespaces 'user-*'"
        )
    lines = [
        f"botwire serve: http://{host}:{settings.port}, {workers}",
        f"  database  {database}",
        f"  auth      {auth}",
        f"  limits    {_limits(settings)}",
        f"  mcp       {_mcp(f'http://{host}:{settings.port}/mcp')}",
        f"  ui        {f'http://{host}:{settings.port}/ui' if settings.ui else 'off (--no-ui)'}",
    ]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _mcp(url: str) -> str:
    """Where MCP is served (``botwire.mcp``), or why it is not."""
    from .app import MCP_OFF

    if os.environ.get("BOTWIRE_SERVER_MCP", "on").lower() in MCP_OFF:
        return "off (--no-mcp)"
    if importlib.util.find_spec("mcp") is None:
        return "off: pip install 'botwire[mcp]' to serve MCP at /mcp"
    return f"{url} (Streamable HTTP; the same tokens reach the same namespaces)"


def _limits(settings: Settings) -> str:
    def amount(n: int, unit: str, off: str) -> str:
        return f"{n:,} {unit}" if n else off

    per_namespace = ", ".join(
        [
            amount(settings.writes_per_day, "writes a UTC day (a batch is one)", "no write limit"),
            amount(settings.max_bytes, "bytes stored", "no storage quota"),
            amount(settings.max_value_bytes, "bytes a value", "no value limit"),
        ]
    )
    body = amount(settings.max_body_bytes, "bytes a request", "no request limit")
    return (
        f"per namespace: {per_namespace}\n            {body}; 0 = off: "
        "--writes-per-day, --max-bytes, --max-value-bytes, --max-body-bytes"
    )


def _token_counts(store: Any) -> tuple[int, int]:
    from .auth import Tokens

    tokens = Tokens(store).list()
    revoked = sum(t.revoked for t in tokens)
    return len(tokens) - revoked, revoked


def _db_flag(settings: Settings) -> str:
    """`` --db X`` if ``settings`` are not on the database a bare command would use."""
    return "" if settings.db == Settings.from_env().db else f" --db {shlex.quote(settings.db)}"


def _protocol() -> Any:
    """The bounded httptools protocol (see ``protocol.py``); h11 with a head limit without it."""
    try:
        from .protocol import BoundedHttpToolsProtocol
    except ImportError:  # no httptools: uvicorn's h11 bounds the head itself
        return "h11"
    return BoundedHttpToolsProtocol


_FILES_BESIDE_SOCKETS = 128  # the database, its WAL, the listening socket, logs...


def _fit_open_file_limit(settings: Settings) -> Settings:
    """Raise the open-file limit for ``max_connections``, or lower it to what fits.

    A worker that runs out of file descriptors cannot open its database: every
    client is locked out. So connections never take the last ones.
    """
    try:
        import resource
    except ImportError:  # Windows
        return settings
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = settings.max_connections + _FILES_BESIDE_SOCKETS
    if settings.max_connections == 0 or soft == resource.RLIM_INFINITY or soft >= wanted:
        return settings
    with contextlib.suppress(ValueError, OSError):
        new = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))
        soft = new
    if soft >= wanted:
        return settings
    fitted = max(1, soft - _FILES_BESIDE_SOCKETS)
    print(
        f"botwire: the open-file limit is {soft} (ulimit -n): max_connections lowered "
        f"from {settings.max_connections} to {fitted}",
        file=sys.stderr,
    )
    return dataclasses.replace(settings, max_connections=fitted)


def _no_database(settings: Settings, command: str, can_create: bool) -> str:
    """Why ``command`` refuses a SQLite database that does not exist, and what to do."""
    default = Settings.from_env().db
    create = ", or pass --create to start a new one there" if can_create else ""
    if settings.db == default:
        return (
            f"botwire: error: no server database at {settings.db} yet: "
            f"`botwire serve` creates it when it starts{create}"
        )
    return (
        f"botwire: error: no server database at {settings.db}; `botwire serve` without --db "
        f"uses {default}: give `botwire {command}` the --db the server has{create}"
    )


def migrate(args: argparse.Namespace) -> int:
    """Create or upgrade a database's schema (what ``serve`` also does on start)."""
    settings = settings_from(args)
    missing = missing_extras("migrate", _needs(settings))
    if missing:
        print(missing, file=sys.stderr)
        return 2
    if not settings.uses_postgres and not os.path.exists(settings.db):
        why = " (migrate is for PostgreSQL: serve itself brings a SQLite file's schema up)"
        print(_no_database(settings, "migrate", can_create=False) + why, file=sys.stderr)
        return 2
    print(f"botwire: database {settings.db_display}", file=sys.stderr)
    if not settings.uses_postgres:
        from botwire.stores.sqlite import SCHEMA_VERSION as SQLITE_VERSION

        for store in open_stores(settings):  # opening a SQLite file brings its schema up
            store.close()
        print(f"schema version {SQLITE_VERSION} (SQLite: serve also upgrades it when it opens)")
        return 0
    import psycopg

    from botwire.stores.postgres import SCHEMA_VERSION
    from botwire.stores.postgres import migrate as apply

    try:
        with psycopg.connect(settings.db, connect_timeout=10) as conn:
            applied = apply(conn)
    except psycopg.OperationalError as exc:
        where = settings.db_display.removesuffix(" (PostgreSQL)")
        reason = " ".join(line.strip() for line in str(exc).splitlines()) or type(exc).__name__
        raise Unavailable(f"PostgreSQL at {where} could not be reached: {reason}") from None
    done = ", ".join(map(str, applied)) if applied else "none needed"
    print(f"schema version {SCHEMA_VERSION}; migrations applied: {done}")
    return 0


def token(args: argparse.Namespace) -> int:
    from .auth import Tokens

    settings = settings_from(args)
    missing = missing_extras("token", _needs(settings))
    if missing:
        print(missing, file=sys.stderr)
        return 2
    creating = args.token_command == "create"
    if not settings.uses_postgres and not os.path.exists(settings.db):
        if not (creating and args.create):
            print(_no_database(settings, "token", can_create=creating), file=sys.stderr)
            return 2
        print(f"botwire: a new server database: {settings.db}", file=sys.stderr)
    print(f"botwire: database {settings.db_display}", file=sys.stderr)
    items, store = open_stores(settings)  # tokens live in the admin store
    items.close()
    try:
        tokens = Tokens(store)
        if creating:
            patterns = [p.strip() for item in args.namespaces for p in item.split(",") if p.strip()]
            secret, made = tokens.create(patterns, read_only=args.read_only)
            print(secret)
            mode = "read-only" if made.read_only else "read-write"
            print(f"id {made.id}, {mode}, namespaces {', '.join(made.namespaces)}", file=sys.stderr)
            print(
                "Shown once: only its SHA-256 is stored. Clients set BOTWIRE_API_KEY to it "
                f"(or api_key=); the server: botwire serve --auth token{_db_flag(settings)}",
                file=sys.stderr,
            )
        elif args.token_command == "list":
            for t in tokens.list():
                state = "revoked" if t.revoked else ("read-only" if t.read_only else "read-write")
                print(f"{t.id}\t{state}\t{','.join(t.namespaces)}")
        elif not tokens.revoke(args.id):
            print(f"botwire: no token {args.id!r}", file=sys.stderr)
            return 1
    finally:
        store.close()
    return 0


class ShowDefaults(argparse.HelpFormatter):
    """Each setting's help ends with its default and its environment variable."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        field = Settings.__dataclass_fields__.get(action.dest)
        if field is None:
            return text
        if field.default_factory is not dataclasses.MISSING:
            default: Any = field.default_factory()
        else:
            default = field.default
        if isinstance(default, bool):
            default = "on" if default else "off"
        env = ENV_PREFIX + action.dest.upper()
        now = f"; ${env} is set: {os.environ[env]}" if env in os.environ else f", or ${env}"
        return f"{text} (default: {default}{now})".lstrip().replace("%", "%%")

    def _split_lines(self, text: str, width: int) -> list[str]:
        import textwrap

        # a path is never cut at its hyphens: it must survive a copy and paste
        text = " ".join(text.split())
        return textwrap.wrap(text, width, break_on_hyphens=False, break_long_words=False)


def add_commands(sub: Any) -> None:
    """Add ``serve``, ``migrate`` and ``token`` to the ``botwire`` command's subparsers."""
    db_help = "SQLite file path, sqlite:///path.db, or postgresql://..."

    def parser(parent: Any, name: str, help: str, **kwargs: Any) -> argparse.ArgumentParser:
        made: argparse.ArgumentParser = parent.add_parser(
            name, help=help, description=help, formatter_class=ShowDefaults, **kwargs
        )
        return made

    p = parser(sub, "serve", "run the server (pip install 'botwire[server]')")
    p.set_defaults(run=serve)
    p.add_argument("--host", help="address to listen on")
    p.add_argument("--port", type=int, help="port to listen on")
    p.add_argument("--db", metavar="PATH|URL", help=db_help)
    p.add_argument("--pool-size", type=int, help="PostgreSQL connections per worker")
    p.add_argument("--workers", type=int, help="worker processes")
    p.add_argument("--auth", choices=["open", "token"], help="open: no key; token: bearer tokens")
    p.add_argument(
        "--allow-open",
        action="store_true",
        default=None,
        help="allow open mode on an address other machines reach",
    )
    p.add_argument("--synchronous", choices=["full", "normal"], help="SQLite's fsync setting")
    p.add_argument(
        "--writes-per-day",
        type=int,
        help="write requests (a batch is one) per namespace and UTC day; 0: no limit",
    )
    p.add_argument("--max-bytes", type=int, help="stored per namespace; 0: no limit")
    p.add_argument("--max-value-bytes", type=int, help="one value; 0: no limit")
    p.add_argument("--max-body-bytes", type=int, help="one request; 0: no limit")
    p.add_argument(
        "--max-answer-bytes", type=int, help="keys and values in one answer; 0: no limit"
    )
    p.add_argument("--max-header-bytes", type=int, help="a request's line and headers")
    p.add_argument(
        "--read-timeout", type=float, help="seconds to receive one whole request; 0: none"
    )
    p.add_argument("--max-connections", type=int, help="open connections per worker; 0: any")
    p.add_argument("--sweep-interval", type=float, help="seconds between expiry sweeps")
    p.add_argument(
        "--access-log", action="store_true", help="log every request (default: off: faster)"
    )
    p.add_argument(
        "--no-mcp", action="store_true", help="do not serve MCP at /mcp (default: served)"
    )
    p.add_argument(
        "--no-ui",
        dest="ui",
        action="store_false",
        default=None,
        help="do not serve the inspector at /ui",
    )
    p.add_argument(
        "--max-watchers",
        type=int,
        help=(
            "watch requests held at once per worker (at most half the connections it "
            "accepts), each caller a tenth of them; 0: none"
        ),
    )

    p = parser(sub, "migrate", "create or upgrade the server database's schema")
    p.set_defaults(run=migrate)
    p.add_argument("--db", metavar="PATH|URL", help=db_help)

    p = parser(sub, "token", "create, list and revoke API tokens of a server")
    p.set_defaults(run=token)
    p.add_argument("--db", metavar="PATH|URL", help=db_help)
    db = argparse.ArgumentParser(add_help=False, formatter_class=ShowDefaults)
    # --db after the subcommand too; SUPPRESS keeps one given before it
    db.add_argument("--db", metavar="PATH|URL", default=argparse.SUPPRESS, help=db_help)
    tsub = p.add_subparsers(dest="token_command", required=True)
    create = parser(tsub, "create", "mint a token; it is printed once", parents=[db])
    create.add_argument(
        "--namespaces",
        action="append",
        required=True,
        help="patterns such as 'user-*' (repeat, or separate with commas)",
    )
    create.add_argument("--read-only", action="store_true", help="(default: read-write)")
    create.add_argument(
        "--create",
        action="store_true",
        help="make the database if it does not exist (default: refuse, naming serve's)",
    )
    parser(tsub, "list", "list tokens (never their secrets)", parents=[db])
    revoke = parser(tsub, "revoke", "revoke a token by id", parents=[db])
    revoke.add_argument("id")
