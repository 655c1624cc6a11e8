"""``botwire`` on the command line: inspect and move memory on any store URL, run a server.

    botwire get NS KEY                 print the value as JSON (exit 1 if missing)
    botwire set NS KEY JSON [--ttl S]  store a JSON value (--string stores the text as is)
    botwire delete NS KEY              exit 1 if the key was missing
    botwire ls NS [--prefix P] [--limit N]
    botwire ttl NS KEY                 seconds left, or "none" (exit 1 if missing)
    botwire export NS [-o FILE]        JSON Lines: {"namespace","key","value","expires_at"}
    botwire import FILE|- [--namespace NS]
    botwire serve [--host H] [--port P] [--db PATH] [--workers N] ...   (botwire[server])
    botwire migrate --db postgresql://...                              (botwire[server,postgres])
    botwire token create --namespaces 'user-*' [--read-only] | list | revoke ID

The store is ``--url``, else ``$BOTWIRE_URL``, else the embedded default.
``import`` checks every line first: a bad line is reported with its number and
nothing is written; otherwise each namespace is written in atomic batches.
Expiry survives the trip as an absolute time; items already expired are skipped.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, nullcontext
from itertools import islice
from typing import IO, Any

from . import BotwireError, InvalidRequest, Memory, NotFound
from .ops import Get, Put
from .wire import check_key, check_namespace, decode_value, encode_value

IMPORT_BATCH = 500


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return int(args.run(args))
    except NotFound as exc:
        print(f"botwire: {exc}", file=sys.stderr)
        return 1
    except (BotwireError, OSError) as exc:
        print(f"botwire: error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="botwire", description="Persistent memory for agents.")
    url_help = "store URL (default: $BOTWIRE_URL or the embedded file)"
    parser.add_argument("--url", help=url_help)
    # --url may also follow the command; SUPPRESS keeps an earlier one when it does not.
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--url", default=argparse.SUPPRESS, help=url_help)
    sub = parser.add_subparsers(required=True, metavar="command")

    def command(name: str, run: Any, help: str, key: bool = True) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, parents=[common])
        p.set_defaults(run=run)
        if name != "import":
            p.add_argument("namespace")
        if key:
            p.add_argument("key")
        return p

    command("get", _get, "print a value as JSON")
    p = command("set", _set, "store a value")
    p.add_argument("value", help="a JSON value (or any text with --string)")
    p.add_argument("--ttl", type=float, default=None, help="seconds until it expires")
    p.add_argument("--string", action="store_true", help="store VALUE as a plain string")
    command("delete", _delete, "delete a key")
    p = command("ls", _ls, "list keys", key=False)
    p.add_argument("--prefix", default="")
    p.add_argument("--limit", type=int, default=None)
    command("ttl", _ttl, "seconds until a key expires")
    p = command("export", _export, "write a namespace as JSON Lines", key=False)
    p.add_argument("-o", "--output", default="-", help="file (default: standard output)")
    p = command("import", _import, "read JSON Lines written by export", key=False)
    p.add_argument("file", help="a file, or - for standard input")
    p.add_argument("--namespace", help="write every line into this namespace instead")
    try:
        from botwire_server.cli import add_commands
    except ImportError:  # the server's package is always there; its imports may not be
        add_commands = _server_missing
    add_commands(sub)
    return parser


def _server_missing(sub: Any) -> None:
    def hint(args: argparse.Namespace) -> int:
        print("botwire: the server needs: pip install 'botwire[server]'", file=sys.stderr)
        return 2

    for name in ("serve", "migrate", "token"):
        p = sub.add_parser(name, help="(pip install 'botwire[server]')")
        p.set_defaults(run=hint)
        p.add_argument("rest", nargs=argparse.REMAINDER)


def _memory(args: argparse.Namespace, namespace: str | None = None) -> Memory:
    return Memory(namespace or args.namespace, url=args.url)


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
    with _memory(args) as mem:
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


def _export(args: argparse.Namespace) -> int:
    with _memory(args) as mem, _open(args.output, "w") as out:
        for line in _export_lines(mem):
            out.write(line)
    return 0


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


def _import(args: argparse.Namespace) -> int:
    with _open(args.file, "r") as source:
        batches = _parse_import(source, args.namespace)
    written = skipped = 0
    for namespace, rows in batches.items():
        with _memory(args, namespace) as mem:
            now = time.time()
            ops = []
            for key, data, expires_at in rows:
                if expires_at is not None and expires_at <= now:
                    skipped += 1
                    continue
                ops.append(Put(key, data, None if expires_at is None else expires_at - now))
            for i in range(0, len(ops), IMPORT_BATCH):
                mem.batch(ops[i : i + IMPORT_BATCH])
            written += len(ops)
    print(f"imported {written} keys, skipped {skipped} expired", file=sys.stderr)
    return 0


def _parse_import(
    lines: IO[str], override: str | None
) -> dict[str, list[tuple[str, bytes, float | None]]]:
    """Check every line before anything is written; raise naming the first bad line."""
    batches: dict[str, list[tuple[str, bytes, float | None]]] = {}
    for number, line in enumerate(lines, 1):
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
        except (BotwireError, ValueError) as exc:
            raise InvalidRequest(f"line {number}: {exc}; nothing was imported") from None
        batches.setdefault(namespace, []).append(row)
    return batches


if __name__ == "__main__":
    raise SystemExit(main())
