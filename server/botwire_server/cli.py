"""``botwire serve`` and ``botwire token``: what the command line runs for the server."""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import sys
from typing import Any

from .settings import Settings


def settings_from(args: argparse.Namespace) -> Settings:
    names = Settings.__dataclass_fields__
    return Settings.from_env(**{k: v for k, v in vars(args).items() if k in names})


def serve(args: argparse.Namespace) -> int:
    import os

    import uvicorn

    settings = settings_from(args)
    if settings.exposed_open and not settings.allow_open:
        print(
            f"botwire: error: refusing to serve open mode on {settings.host}: anyone who can "
            "reach it could read every namespace. Use --auth token, or --allow-open.",
            file=sys.stderr,
        )
        return 2
    settings = _fit_open_file_limit(settings)
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


def migrate(args: argparse.Namespace) -> int:
    """Create or upgrade a PostgreSQL database's schema (what ``serve`` also does on start)."""
    import psycopg

    from botwire.stores.postgres import SCHEMA_VERSION
    from botwire.stores.postgres import migrate as apply

    settings = settings_from(args)
    if not settings.uses_postgres:
        print("botwire: migrate is for PostgreSQL: --db postgresql://...", file=sys.stderr)
        return 2
    with psycopg.connect(settings.db) as conn:
        applied = apply(conn)
    done = ", ".join(map(str, applied)) if applied else "none needed"
    print(f"schema version {SCHEMA_VERSION}; migrations applied: {done}")
    return 0


def token(args: argparse.Namespace) -> int:
    from .app import open_stores
    from .auth import Tokens

    items, store = open_stores(settings_from(args))  # tokens live in the admin store
    items.close()
    try:
        tokens = Tokens(store)
        if args.token_command == "create":
            patterns = [p.strip() for item in args.namespaces for p in item.split(",") if p.strip()]
            secret, made = tokens.create(patterns, read_only=args.read_only)
            print(secret)
            mode = "read-only" if made.read_only else "read-write"
            print(f"id {made.id}, {mode}, namespaces {', '.join(made.namespaces)}", file=sys.stderr)
            print("Shown once: only its SHA-256 is stored.", file=sys.stderr)
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


def add_commands(sub: Any) -> None:
    """Add ``serve``, ``migrate`` and ``token`` to the ``botwire`` command's subparsers."""
    p = sub.add_parser("serve", help="run the server (pip install 'botwire[server]')")
    p.set_defaults(run=serve)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument(
        "--db", help="SQLite file (default: server.db in $BOTWIRE_HOME), or postgresql://..."
    )
    p.add_argument("--pool-size", type=int, help="PostgreSQL connections per worker (10)")
    p.add_argument("--workers", type=int)
    p.add_argument("--auth", choices=["open", "token"])
    p.add_argument("--allow-open", action="store_true", default=None)
    p.add_argument("--synchronous", choices=["full", "normal"])
    p.add_argument(
        "--writes-per-day", type=int, help="write requests per namespace and UTC day; 0: no limit"
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
    p.add_argument("--access-log", action="store_true", help="log every request (off: faster)")

    p = sub.add_parser("migrate", help="create or upgrade a PostgreSQL database's schema")
    p.set_defaults(run=migrate)
    p.add_argument("--db", required=True, help="postgresql://user@host:5432/database")

    p = sub.add_parser("token", help="create, list and revoke API tokens of a server")
    p.set_defaults(run=token)
    db_help = "the server's SQLite file (default: server.db in $BOTWIRE_HOME) or postgresql://"
    p.add_argument("--db", help=db_help)
    db = argparse.ArgumentParser(add_help=False)  # --db after the subcommand too
    db.add_argument("--db", default=argparse.SUPPRESS, help=db_help)
    tsub = p.add_subparsers(dest="token_command", required=True)
    create = tsub.add_parser("create", help="mint a token; it is printed once", parents=[db])
    create.add_argument(
        "--namespaces",
        action="append",
        required=True,
        help="patterns such as 'user-*' (repeat, or separate with commas)",
    )
    create.add_argument("--read-only", action="store_true")
    tsub.add_parser("list", help="list tokens (never their secrets)", parents=[db])
    revoke = tsub.add_parser("revoke", help="revoke a token by id", parents=[db])
    revoke.add_argument("id")
