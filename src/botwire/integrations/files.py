"""Text files of any length over botwire keys: one value while short, pieces past that.

AG2's knowledge store keeps its files with :class:`Files` (a public module:
build your own adapter on it). A file at ``path`` is the key ``path``:

    <path>                   the text itself while it is at most PIECE_CHARS long (as
                             botwire 0.2 stored every file), else the head
                             {"botwire.file": {"gen": G, "pieces": N}}
    #<path>//<G>/<i:06d>     piece i of generation G, PIECE_CHARS characters each

A long write puts its pieces first, under a new generation and with a TTL (so
a crash leaves nothing behind for long), in as many requests as their size
needs; then one atomic batch clears their TTL, points the head at them, guarded
by the head's version as read before the pieces were written, and deletes the
previous generation's pieces. A reader reads the head, then that generation's
pieces, and reads again if a writer replaced them meanwhile: it sees a whole
file, never a mix. Keys starting with ``#`` are never listed as files, and
deleting a path deletes its pieces and those of every file below it.
"""

from __future__ import annotations

import uuid
from typing import Any

from .. import AsyncMemory, Conflict, ValueTooLarge
from ..ops import Clear, Delete, Get, Op, Put, Record, Scan, Touch
from ..wire import MAX_BATCH, decode_value, encode_value
from .history import Plan, arun_plan

PIECE_CHARS = 131_072  # a piece's JSON is at most 768 KiB even if every character is escaped
BATCH_BYTES = 1_000_000  # of pieces per request (a default server takes 2 MiB a body)
PAGE = 8  # pieces a scan returns: at most ~6 MiB, under a default server's 16 MiB answer
PENDING_TTL = 3600.0  # pieces no head points at yet (a writer died) expire after an hour
MOST_PIECES = MAX_BATCH - 3  # the final batch touches each piece, puts the head, clears
ATTEMPTS = 1000  # reads and writes retried on a race before giving up
TAG = "botwire.file"


def pieces_of(path: str) -> str:
    """The prefix of every piece of ``path``'s file (a normalised path never holds ``//``)."""
    return f"#{path}//"


def below(directory: str) -> list[Clear]:
    """The ops deleting every file under ``directory/`` (a prefix ending ``/``) and its pieces."""
    return [Clear(directory), Clear("#" + directory)]


class Files:
    """Files on one ``AsyncMemory``: ``read``, ``write``, ``append``, ``delete``."""

    def __init__(self, memory: AsyncMemory) -> None:
        self.memory = memory

    async def read(self, path: str) -> str | None:
        text, _ = await arun_plan(self.memory, _read(path))
        return text  # type: ignore[no-any-return]

    async def write(self, path: str, text: str) -> None:
        await arun_plan(self.memory, _write(path, text, None))

    async def append(self, path: str, text: str) -> int:
        """Add ``text`` at the end (compare-and-set, retried on a race); the byte offset it
        was written at."""
        for _ in range(ATTEMPTS):
            before, version = await arun_plan(self.memory, _read(path))
            try:
                await arun_plan(self.memory, _write(path, (before or "") + text, version))
            except Conflict:
                continue
            return len((before or "").encode("utf-8"))
        raise Conflict(f"{path!r} kept changing: {ATTEMPTS} appends lost the race")

    async def delete(self, path: str) -> None:
        """The file and its pieces, and every file below ``path/``, in one atomic batch."""
        await self.memory.batch([Delete(path), Clear(pieces_of(path)), *below(path + "/")])


def _head(record: Record | None) -> dict[str, Any] | None:
    value = None if record is None else decode_value(record.data)
    head = value.get(TAG) if isinstance(value, dict) else None
    return head if isinstance(head, dict) else None


def _read(path: str) -> Plan:
    """``(text or None, the head's version or 0)``."""
    fresh = False
    for _ in range(ATTEMPTS):
        (record,) = yield [Get(path, fresh=fresh)]
        if record is None:
            return None, 0
        head = _head(record)
        if head is None:
            return str(decode_value(record.data)), record.version
        prefix = f"{pieces_of(path)}{head['gen']}/"
        pieces: list[str] = []
        after = None
        while True:
            (rows,) = yield [Scan(prefix, after=after, limit=PAGE)]
            pieces += [decode_value(piece.data) for _, piece in rows]
            if len(rows) < PAGE:
                break
            after = rows[-1][0]
        if len(pieces) == head["pieces"]:
            return "".join(pieces), record.version
        fresh = True  # a writer replaced this generation meanwhile (or a cache was behind)
    raise Conflict(f"{path!r}: its pieces kept changing while it was read")


def _write(path: str, text: str, if_version: int | None) -> Plan:
    """Replace the file (or, with ``if_version``, only the one at that version)."""
    pieces = [text[i : i + PIECE_CHARS] for i in range(0, len(text), PIECE_CHARS)]
    if len(pieces) > MOST_PIECES:
        raise ValueTooLarge(
            f"{path!r} would take {len(pieces)} pieces; a file holds at most {MOST_PIECES}",
            limit=MOST_PIECES * PIECE_CHARS,
        )
    for _ in range(ATTEMPTS):
        (record,) = yield [Get(path, fresh=True)]
        version = 0 if record is None else record.version
        if if_version is not None and version != if_version:
            raise Conflict(f"{path!r} changed: version {version}, not {if_version}")
        old = _head(record)
        tail = [] if old is None else [Clear(f"{pieces_of(path)}{old['gen']}/")]
        if len(pieces) <= 1:
            try:
                yield [Put(path, encode_value(text), if_version=version), *tail]
            except Conflict:
                if if_version is not None:
                    raise
                continue  # another writer came first: last writer wins, as a plain set
            return
        gen = uuid.uuid4().hex
        keys = [f"{pieces_of(path)}{gen}/{i:06d}" for i in range(len(pieces))]
        group: list[Op] = []
        size = 0
        for key, piece in zip(keys, pieces, strict=True):
            data = encode_value(piece)
            if group and size + len(data) > BATCH_BYTES:
                yield group
                group, size = [], 0
            group.append(Put(key, data, ttl=PENDING_TTL))
            size += len(data)
        yield group
        head = encode_value({TAG: {"gen": gen, "pieces": len(pieces)}})
        try:
            touched = yield [
                *(Touch(key, None) for key in keys),
                Put(path, head, if_version=version),
                *tail,
            ]
        except Conflict:
            yield [Clear(f"{pieces_of(path)}{gen}/")]
            if if_version is not None:
                raise
            continue
        if all(touched[: len(keys)]):
            return
        # A delete of this path or of a directory above it took pieces away before the head
        # pointed at them: write them again, over this very version.
        if_version = touched[len(keys)] if if_version is not None else None
    raise Conflict(f"{path!r} kept changing: {ATTEMPTS} writes lost the race")
