"""``botwire`` on the command line: inspect and move memory on any store URL, run a server.

    botwire get NS KEY                 print the value as JSON (exit 1 if missing)
    botwire set NS KEY JSON [--ttl S]  store a JSON value (--string stores the text as is)
    botwire delete NS KEY              exit 1 if the key was missing
    botwire ls NS [--prefix P] [--limit N]
    botwire ttl NS KEY                 seconds left, or "none" (exit 1 if missing)
    botwire ns [--prefix P]            the namespaces, with their keys and bytes
    botwire info                       which store the URL resolves to, and what it holds
    botwire export [NS ...|--all] [-o FILE]   JSON Lines: {"namespace","key","value","expires_at"}
    botwire import FILE|- [--namespace NS]
    botwire completion bash|zsh        a shell completion script
    botwire mcp [--namespace NS] [--import-graph FILE]   MCP over stdio     (botwire[mcp])
    botwire serve [--host H] [--port P] [--db PATH] [--workers N] ...   (botwire[server])
    botwire migrate --db postgresql://...                              (botwire[server,postgres])
    botwire token create --namespaces 'user-*' [--read-only] | list | revoke ID

The store is ``--url``, else ``$BOTWIRE_URL``, else the embedded default; a
remote store gets ``--api-key``, else ``$BOTWIRE_API_KEY``. Commands that only
read (and ``delete``) never create a store: on a SQLite file that does not
exist they say so and exit 1.

``import`` checks every line first: a bad line is reported with its number and
nothing is written. Then it writes batches of 500 lines, each atomically, and
leaves alone the keys that already hold the line's value and expiry: after an
interruption (Ctrl-C reports how far it got) the same command resumes. Expiry
survives the trip as an absolute time; items already expired are skipped.
Imports and exports show progress while standard error is a terminal.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from itertools import islice
from typing import IO, Any

import botwire

from . import BotwireError, InvalidRequest, Memory, NotFound, Unavailable
from .ops import Get, Put, Record
from .wire import check_key, check_namespace, decode_value, encode_value

IMPORT_BATCH = 500
INTERRUPTED = 130  # the shell's code for a command ended by SIGINT
_FILE = {"bash": "_shtab_compgen_files", "zsh": "_files"}  # shtab.FILE, without importing it
_SAME_EXPIRY = 1.0  # seconds: an expiry re-derived from a TTL lands this close to the original


def main(argv: Sequence[str] | None = None) -> int:
    warnings.showwarning = _warn  # "botwire: warning: ...", not "<frozen runpy>:88: ..."
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except NotFound as exc:
        print(f"botwire: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # `botwire export | head`: the reader has all it wanted
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no error at exit
        return 1
    except (BotwireError, OSError) as exc:
        print(f"botwire: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("botwire: interrupted", file=sys.stderr)
        return INTERRUPTED


def _warn(message: Any, category: Any, *_: Any, **__: Any) -> None:
    print(f"botwire: warning: {message}", file=sys.stderr)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botwire", description="Persistent memory for agents.")
    parser.add_argument("--version", action="version", version=f"botwire {botwire.__version__}")
    url_help = "store URL (default: $BOTWIRE_URL or the embedded file)"
    key_help = "API key of a server (default: $BOTWIRE_API_KEY)"
    parser.add_argument("--url", help=url_help)
    parser.add_argument("--api-key", help=key_help)
    # --url may also follow the command; SUPPRESS keeps an earlier one when it does not.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=url_help)
    common.add_argument("--api-key", default=argparse.SUPPRESS, help=key_help)
    sub = parser.add_subparsers(required=True, metavar="command", dest="command")

    def command(name: str, run: Any, help: str, *args: str, **kw: Any) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=kw.pop("description", help), **kw)
        p.set_defaults(run=run)
        for arg in args:
            p.add_argument(arg)
        return p

    store = {"parents": [common]}
    command("get", _get, "print a value as JSON", "namespace", "key", **store)
    p = command("set", _set, "store a value", "namespace", "key", **store)
    p.add_argument("value", help="a JSON value (or any text with --string)")
    p.add_argument("--ttl", type=float, default=None, help="seconds until it expires")
    p.add_argument("--string", action="store_true", help="store VALUE as a plain string")
    command("delete", _delete, "delete a key", "namespace", "key", **store)
    p = command("ls", _ls, "list keys", "namespace", **store)
    p.add_argument("--prefix", default="")
    p.add_argument("--limit", type=int, default=None)
    command("ttl", _ttl, "seconds until a key expires", "namespace", "key", **store)
    p = command(
        "watch",
        _watch,
        "print changes to a namespace as JSON Lines, as they happen",
        "namespace",
        description=(
            "Print each change to the namespace as a JSON line, as it happens: key, version, "
            "deleted, and the new value and expires_at. Runs until Ctrl-C (or --count). "
            "A line's version is the cursor: --since VERSION resumes after it."
        ),
        **store,
    )
    p.add_argument("--prefix", default="", help="only keys starting with this")
    p.add_argument(
        "--since",
        type=int,
        default=None,
        help="replay changes after this version first (0: the oldest kept; default: from now)",
    )
    p.add_argument("--no-values", action="store_true", help="leave out values (smaller lines)")
    p.add_argument("--count", type=int, default=None, help="stop after this many changes")
    p = command("ns", _ns, "list the namespaces with their keys and bytes", **store)
    p.add_argument("--prefix", default="", help="only namespaces starting with this")
    command("info", _info, "which store the URL resolves to, and what it holds", **store)
    p = command(
        "export",
        _export,
        "write namespaces as JSON Lines",
        description="Write namespaces as JSON Lines (every namespace unless some are named).",
        **store,
    )
    p.add_argument("namespace", nargs="*", help="the namespaces (default: all)")
    p.add_argument("--all", action="store_true", help="every namespace (the default)")
    _completes_files(p.add_argument("-o", "--output", default="-", help="file (default: stdout)"))
    p = command(
        "import",
        _import,
        "read JSON Lines written by export (resumable)",
        description=(
            "Read JSON Lines written by export. Every line is checked first: a bad line is "
            f"named and nothing is written. Lines are then written {IMPORT_BATCH} at a time, "
            "each batch atomically; keys that already hold the line's value and expiry are "
            "left alone, so an interrupted import (Ctrl-C says how far it got) resumes when "
            "the same command is run again."
        ),
        **store,
    )
    _completes_files(p.add_argument("file", help="a file, or - for standard input"))
    p.add_argument("--namespace", help="write every line into this namespace instead")
    p = command("completion", _completion, "print a shell completion script")
    p.add_argument("shell", choices=["bash", "zsh"])
    p = command(
        "mcp",
        _mcp,
        "serve this store to MCP clients over stdio (pip install 'botwire[mcp]')",
        description=(
            "Serve the store to an MCP client (Claude Desktop, Claude Code, Cursor...) over "
            "standard input and output: key-value tools, resources, subscriptions and the "
            "reference memory server's knowledge-graph tools. Without --namespace a call may "
            "name any namespace (default: mcp)."
        ),
        **store,
    )
    p.add_argument("--namespace", help="fix every call to this namespace")
    _completes_files(
        p.add_argument(
            "--import-graph",
            metavar="FILE",
            help="first import a reference memory server's memory.jsonl into the namespace",
        )
    )
    try:
        from botwire_server.cli import add_commands
    except ImportError:  # the server's package is always there; its imports may not be
        add_commands = _server_missing
    add_commands(sub)
    return parser


def _mcp(args: argparse.Namespace) -> int:
    try:
        from .mcp.server import serve_stdio
    except ImportError as exc:  # the SDK is an extra
        if exc.name is None or exc.name.partition(".")[0] not in ("mcp", "mcp_types"):
            raise
        print(
            "botwire: error: botwire mcp needs the MCP SDK: pip install 'botwire[mcp]'",
            file=sys.stderr,
        )
        return 2
    serve_stdio(
        args.url, namespace=args.namespace, api_key=args.api_key, import_graph=args.import_graph
    )
    return 0


def _completes_files(action: argparse.Action) -> None:
    action.complete = _FILE  # type: ignore[attr-defined]  # what shtab reads


def _server_missing(sub: Any) -> None:
    def hint(args: argparse.Namespace) -> int:
        print("botwire: the server needs: pip install 'botwire[server]'", file=sys.stderr)
        return 2

    for name in ("serve", "migrate", "token"):
        p = sub.add_parser(name, help="(pip install 'botwire[server]')")
        p.set_defaults(run=hint)
        p.add_argument("rest", nargs=argparse.REMAINDER)


# -- which store ----------------------------------------------------------------------


def _source(args: argparse.Namespace) -> str:
    if args.url:
        return "--url"
    if os.environ.get("BOTWIRE_URL"):
        return "$BOTWIRE_URL"
    where = "$BOTWIRE_HOME" if os.environ.get("BOTWIRE_HOME") else "the user data directory"
    return f"the embedded default in {where}"


def _store_url(args: argparse.Namespace, *, must_exist: bool) -> str:
    """The URL ``Memory(url=args.url)`` uses; when ``must_exist``, refuses a missing SQLite file.

    (A URL that is no store's is left for ``Memory`` to refuse, with its "did you mean".)
    """
    from .stores import default_home

    # botwire's resolution, as Memory does it: --url, $BOTWIRE_URL, the embedded file
    url = args.url or os.environ.get("BOTWIRE_URL") or f"sqlite:///{default_home()}/botwire.db"
    path = _sqlite_file(url)
    if must_exist and path is not None and not os.path.exists(path):
        raise NotFound(
            f"no store at {os.path.abspath(path)}: the file does not exist (the URL {url} "
            f"came from {_source(args)}); {args.command!r} does not create one"
        )
    return url


def _sqlite_file(url: str) -> str | None:
    """The file of a ``sqlite://`` URL, or ``None`` (another scheme; a malformed URL is
    left for ``Memory`` to refuse)."""
    from urllib.parse import urlsplit

    if url.partition(":")[0].lower() != "sqlite":
        return None
    parts = urlsplit(url)
    return parts.path[1:] if not parts.netloc and len(parts.path) > 1 else None


def _memory(args: argparse.Namespace, namespace: str | None = None, *, read: bool = True) -> Memory:
    """A ``Memory`` as ``args`` say; ``read``: refuse a SQLite file that does not exist.

    Names are checked first, as ``Memory`` checks them before any I/O. The URL as
    given (not resolved) goes to ``Memory``, so its errors can say where it came from.
    """
    namespace = check_namespace(namespace or args.namespace)
    if getattr(args, "key", None) is not None:
        check_key(args.key)
    _store_url(args, must_exist=read)
    return Memory(namespace, url=args.url, api_key=args.api_key)


def _namespaces(args: argparse.Namespace, prefix: str = "") -> list[Any]:
    from . import namespaces

    _store_url(args, must_exist=True)
    return namespaces(args.url, api_key=args.api_key, prefix=prefix)


# -- one key at a time ------------------------------------------------------------------


def _print_json(value: Any) -> None:
    print(encode_value(value).decode())


def _get(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        _print_json(mem[args.key])
    return 0


def _set(args: argparse.Namespace) -> int:
    if args.string:
        value = args.value
    else:
        try:
            value = decode_value(args.value)
        except ValueError:
            raise InvalidRequest(f"VALUE is not JSON: {args.value[:60]!r} (use --string)") from None
    with _memory(args, read=False) as mem:
        print(mem.set(args.key, value, ttl=args.ttl))
    return 0


def _delete(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        del mem[args.key]
    return 0


def _ls(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        keys = mem.list_keys(args.prefix, limit=args.limit)
    print("\n".join(keys)) if keys else None
    return 0


def _ttl(args: argparse.Namespace) -> int:
    with _memory(args) as mem:
        left = mem.ttl(args.key)
    print("none" if left is None else f"{left:.3f}")
    return 0


def _watch(args: argparse.Namespace) -> int:
    if args.count is not None and args.count < 1:
        raise InvalidRequest(f"--count must be 1 or more, not {args.count}")
    with _memory(args) as mem:
        changes = mem.watch(args.prefix, args.since, values=not args.no_values)
        for n, change in enumerate(changes, 1):
            line: dict[str, Any] = {
                "key": change.key,
                "version": change.version,
                "deleted": change.deleted,
            }
            if change.data is not None:
                line["value"] = change.value
                line["expires_at"] = change.expires_at
            print(encode_value(line).decode(), flush=True)
            if n == args.count:
                break
    return 0


# -- the store as a whole ----------------------------------------------------------------


def _ns(args: argparse.Namespace) -> int:
    found = _namespaces(args, args.prefix)
    if not found:
        print("botwire: no namespaces", file=sys.stderr)
        return 0
    rows = [("namespace", "keys", "bytes", "writes today")]
    rows += [(n.namespace, f"{n.keys:,}", f"{n.bytes:,}", f"{n.writes_today:,}") for n in found]
    widths = [max(len(row[i]) for row in rows) for i in range(4)]
    for name, *numbers in rows:
        cells = [c.rjust(w) for c, w in zip(numbers, widths[1:], strict=True)]
        print("  ".join([name.ljust(widths[0]), *cells]))
    return 0


def _info(args: argparse.Namespace) -> int:
    from .stores.cached import CachedStore

    url = _store_url(args, must_exist=False)
    scheme = url.partition(":")[0].lower()
    _fact("store", _hide_password(url))
    _fact("from", _source(args))
    path = _sqlite_file(url)
    if path is not None:
        _fact("file", os.path.abspath(path))  # where it is, even when it does not exist
    with _memory(args, "info") as mem:  # refuses a missing file, and what is no store's URL
        store = mem.store
    if path is not None:
        _fact("kind", "SQLite file (embedded: no server, no limits)")
        sizes = [(s, os.path.getsize(path + s)) for s in ("", "-wal") if os.path.exists(path + s)]
        _fact("size", ", ".join(f"{_size(n)}{' in ' + s if s else ''}" for s, n in sizes))
    elif scheme in ("http", "https"):
        api_key = args.api_key or os.environ.get("BOTWIRE_API_KEY")
        _fact("kind", "botwire server")
        given = "--api-key" if args.api_key else "$BOTWIRE_API_KEY"
        _fact("api key", f"from {given}" if api_key else "none (fine for an open-mode server)")
        for name, value in _server_facts(url, api_key):
            _fact(name, value)
        if isinstance(store, CachedStore):
            _fact("read cache", store.directory)
    elif scheme == "memory":
        _fact("kind", "in-process memory: every process starts empty (for tests)")
    else:
        _fact("kind", "PostgreSQL (no limits unless a server in front of it sets them)")
    found = _namespaces(args)
    reach = " (those this key can reach)" if scheme in ("http", "https") else ""
    _fact("namespaces", f"{len(found):,}{reach}")
    _fact("keys", f"{sum(n.keys for n in found):,}")
    _fact("bytes", _size(sum(n.bytes for n in found)))
    return 0


def _fact(name: str, value: str) -> None:
    print(f"{name + ':':<12}{value}", flush=True)


def _hide_password(url: str) -> str:
    return re.sub(r"(://[^:/@]*:)[^@/]*@", r"\1***@", url)


def _size(n: int) -> str:
    value, unit = float(n), "bytes"
    for bigger in ("kB", "MB", "GB"):
        if value < 1000:
            break
        value, unit = value / 1000, bigger
    return f"{n:,} bytes" if unit == "bytes" else f"{value:.1f} {unit}"


def _server_facts(url: str, api_key: str | None) -> Iterator[tuple[str, str]]:
    """What a server says about itself: health, version and, where it publishes them, limits."""
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    with httpx.Client(base_url=url.rstrip("/"), headers=headers, timeout=10.0) as client:
        try:
            health = client.get("/healthz")
        except httpx.HTTPError as exc:
            raise Unavailable(f"cannot reach {url}: {exc}") from None
        yield "health", "ok" if health.is_success else f"GET /healthz answered {health.status_code}"
        info = _optional_json(client, "/v1/info")  # version, auth mode, limits
        if isinstance(info, dict):
            yield "version", str(info.get("version"))
            yield "auth", str(info.get("auth"))
            limits = info.get("limits")
            if isinstance(limits, dict):
                shown = ", ".join(f"{name}={value}" for name, value in limits.items())
                yield "limits", f"{shown} (0 = off)"
            return
        spec = _optional_json(client, "/openapi.json")  # an older server
        if isinstance(spec, dict) and isinstance(spec.get("info"), dict):
            yield "version", str(spec["info"].get("version"))
        limits = "not published by this server; a write over one is refused naming it"
        yield "limits", limits + " (429 with RateLimit-Policy for the daily writes)"


def _optional_json(client: Any, path: str) -> Any:
    """The JSON answer to ``GET path``, or ``None`` if there is none to be had."""
    import httpx

    try:
        answer = client.get(path)
        return answer.json() if answer.is_success else None
    except (httpx.HTTPError, ValueError):
        return None


def _completion(args: argparse.Namespace) -> int:
    try:
        import shtab
    except ImportError:
        print("botwire: completion needs shtab: pip install shtab", file=sys.stderr)
        return 2
    print(shtab.complete(_parser(), args.shell))
    return 0


# -- export and import --------------------------------------------------------------------


def _export(args: argparse.Namespace) -> int:
    if args.all and args.namespace:
        raise InvalidRequest("name namespaces or give --all, not both")
    show = _shows_progress() and not (args.output == "-" and sys.stdout.isatty())
    if args.namespace:
        names = [check_namespace(n) for n in args.namespace]
        _store_url(args, must_exist=True)
        total = sum(_count(args, n) for n in names) if show else None
    else:
        found = _namespaces(args)
        names, total = [n.namespace for n in found], sum(n.keys for n in found)
    bar = _progress(total, "keys", desc="exporting", show=show)
    written = 0
    try:
        with _open(args.output, "w") as out:
            for name in names:
                with _memory(args, name) as mem:
                    for line in _export_lines(mem):
                        out.write(line)
                        written += 1
                        bar.update(1)
    except KeyboardInterrupt:
        bar.close()
        where = "standard output" if args.output == "-" else args.output
        print(
            f"botwire: interrupted: wrote {written:,} keys; {where} is incomplete", file=sys.stderr
        )
        return INTERRUPTED
    bar.close()
    return 0


def _count(args: argparse.Namespace, namespace: str) -> int:
    with _memory(args, namespace) as mem:
        return mem.count()


def _open(path: str, mode: str) -> AbstractContextManager[IO[str]]:
    """A file, or standard input/output for ``-`` (left open)."""
    if path == "-":
        return nullcontext(sys.stdout if "w" in mode else sys.stdin)
    return open(path, mode, encoding="utf-8")


def _export_lines(mem: Memory) -> Iterator[str]:
    keys = mem.iter_keys(page_size=IMPORT_BATCH)
    while page := list(islice(keys, IMPORT_BATCH)):
        records = mem.batch([Get(key) for key in page])
        for key, record in zip(page, records, strict=True):
            if record is not None:  # it may have expired since it was listed
                line = {
                    "namespace": mem.namespace,
                    "key": key,
                    "value": decode_value(record.data),
                    "expires_at": record.expires_at,
                }
                yield encode_value(line).decode() + "\n"


Row = tuple[str, bytes, float | None]  # key, JSON value, expires_at


def _import(args: argparse.Namespace) -> int:
    checking = _progress(None, "lines", desc="checking")
    try:
        with _open(args.file, "r") as source:
            batches = _parse_import(source, args.namespace, checking)
    except KeyboardInterrupt:
        print(
            "botwire: interrupted while checking the lines: nothing was imported", file=sys.stderr
        )
        return INTERRUPTED
    finally:
        checking.close()
    total = sum(len(rows) for rows in batches.values())
    done = written = same = expired = 0
    bar = _progress(total, "lines", desc="importing")
    try:
        with _stop_between_batches() as stopping:
            for namespace, rows in batches.items():
                with _memory(args, namespace, read=False) as mem:
                    for i in range(0, len(rows), IMPORT_BATCH):
                        chunk = rows[i : i + IMPORT_BATCH]
                        w, s, e = _import_batch(mem, chunk)
                        written, same, expired = written + w, same + s, expired + e
                        done += len(chunk)
                        bar.update(len(chunk))
                        if stopping():
                            raise KeyboardInterrupt
    except KeyboardInterrupt:
        bar.close()
        print(
            f"botwire: interrupted: imported {done:,} of {total:,} lines; "
            "run the same command again to resume",
            file=sys.stderr,
        )
        return INTERRUPTED
    bar.close()
    report = f"imported {written:,} keys, skipped {expired:,} expired"
    if same:
        report += f", {same:,} already held the same value"
    print(report, file=sys.stderr)
    return 0


@contextmanager
def _stop_between_batches() -> Iterator[Callable[[], bool]]:
    """Ctrl-C lets the batch being written finish, so the report is exact; a second stops
    at once (that batch may or may not have landed: running the import again settles it)."""
    pressed: list[int] = []

    def on_ctrl_c(signum: int, frame: Any) -> None:
        if pressed:
            raise KeyboardInterrupt
        pressed.append(signum)

    if threading.current_thread() is not threading.main_thread():  # main() called in a thread
        yield lambda: False
        return
    previous = signal.signal(signal.SIGINT, on_ctrl_c)
    try:
        yield lambda: bool(pressed)
    finally:
        signal.signal(signal.SIGINT, previous)


def _import_batch(mem: Memory, rows: list[Row]) -> tuple[int, int, int]:
    """Write ``rows`` in one atomic batch, but for keys already as the line has them.

    Returns (written, already the same, expired). The current values are read
    past any read cache, so a stale copy never passes for an imported key.
    """
    now = time.time()
    live = [row for row in rows if row[2] is None or row[2] > now]
    current = mem.batch([Get(key, fresh=True) for key, _, _ in live])
    ops = [
        Put(key, data, None if expires_at is None else expires_at - now)
        for (key, data, expires_at), record in zip(live, current, strict=True)
        if not _same(record, data, expires_at)
    ]
    if ops:
        mem.batch(ops)
    return len(ops), len(live) - len(ops), len(rows) - len(live)


def _same(record: Record | None, data: bytes, expires_at: float | None) -> bool:
    if record is None or record.data != data:
        return False
    if record.expires_at is None or expires_at is None:
        return record.expires_at is expires_at
    return abs(record.expires_at - expires_at) < _SAME_EXPIRY


def _parse_import(lines: IO[str], override: str | None, bar: Any) -> dict[str, list[Row]]:
    """Check every line before anything is written; raise naming the first bad line."""
    batches: dict[str, list[Row]] = {}
    for number, line in enumerate(lines, 1):
        bar.update(1)
        if not line.strip():
            continue
        try:
            record = decode_value(line)
            if not isinstance(record, dict) or not {"key", "value"} <= record.keys():
                raise InvalidRequest('each line must be an object with "key" and "value"')
            namespace = check_namespace(override or record.get("namespace"))
            expires_at = record.get("expires_at")
            if expires_at is not None and type(expires_at) not in (int, float):
                raise InvalidRequest('"expires_at" must be a Unix time or null')
            row = (check_key(record["key"]), encode_value(record["value"]), expires_at)
        except json.JSONDecodeError as exc:  # orjson's too; its "line 1" is the line's own
            raise InvalidRequest(
                f"line {number}, column {exc.colno}: {exc.msg}; nothing was imported"
            ) from None
        except (BotwireError, ValueError) as exc:
            raise InvalidRequest(f"line {number}: {exc}; nothing was imported") from None
        batches.setdefault(namespace, []).append(row)
    return batches


# -- progress --------------------------------------------------------------------------------


class _NoProgress:
    def update(self, n: int) -> None:
        pass

    def close(self) -> None:
        pass


def _shows_progress() -> bool:
    return sys.stderr.isatty()


def _progress(total: int | None, unit: str, *, desc: str = "", show: bool = True) -> Any:
    """A tqdm bar on standard error while it is a terminal; else nothing (tqdm not imported)."""
    if not (show and _shows_progress()):
        return _NoProgress()
    from tqdm import tqdm

    return tqdm(
        total=total, desc=desc, unit=f" {unit}", unit_scale=True, file=sys.stderr, leave=False
    )


if __name__ == "__main__":
    raise SystemExit(main())
