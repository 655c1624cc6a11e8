"""LangGraph's checkpointer on botwire: agent threads that survive restarts, on any store.

    from botwire.integrations.langgraph import BotwireSaver
    graph = builder.compile(checkpointer=BotwireSaver())          # embedded SQLite
    graph = builder.compile(checkpointer=BotwireSaver(url=...))   # a server, PostgreSQL...

Where a thread goes: ``namespace=`` is a botwire namespace
(``"langgraph-checkpoints"``: every thread in one), a ``{scope}`` template or a
callable, the scope being the thread id: with ``namespace="lg-{scope}"`` each
thread is a tenant of its own (its own limits; a token for ``lg-alice*`` reaches
only alice's threads); ``memory=`` (a ``Memory`` or ``AsyncMemory``) puts every
thread in that one. Values go through LangGraph's own serializer (``serde=``,
``JsonPlusSerializer`` by default), stored as base64.

Keys, in each namespace (``T``, ``N``: the thread id and checkpoint namespace,
percent-encoded behind a ``-``, shortened with a hash past 64 characters; ``I``:
the checkpoint id, percent-encoded with every character mapped so that keys
ascend as ids descend, ended by ``~``):

    k/T/N/I                  a checkpoint: {"thread", "ns", "id", "parent", "run",
                             "checkpoint", "metadata"} (the whole checkpoint, as
                             LangGraph's SqliteSaver keeps it)
    x/T/N/I/w/<task>/<idx>   a pending write: {"task", "channel", "path", "value"}
    x/T/N/I/p/<gen>/<j>      piece j of a value too long for one key (a checkpoint's
                             or a write's, which then says {"gen", "pieces"})
    r/<run>/T/N/I            a run's checkpoints (``delete_for_runs``), and their
    s/T/<run>/N/I            mirror per thread (``delete_thread``)

So the newest checkpoint of a namespace is the first key of ``k/T/N/``, a
thread's history one key range read newest first, and its writes another.

All or nothing: a checkpoint (or a call's writes) is one atomic batch while it
fits one request (1 MB); a longer one writes its pieces first, with a one-hour
TTL, then one batch clears their TTL and puts the record that points at them.
A reader never sees a record whose pieces are missing; a writer killed half-way
leaves pieces that expire. Regular writes of a task are kept as first written
(a retried task does not overwrite them); special ones (errors, interrupts)
replace, as LangGraph's own savers do.
"""

from __future__ import annotations

import base64
import hashlib
import uuid
from collections.abc import AsyncIterator, Iterator, Sequence
from typing import Any
from urllib.parse import quote

try:
    from langchain_core.runnables import RunnableConfig
    from langgraph.checkpoint.base import (
        WRITES_IDX_MAP,
        BaseCheckpointSaver,
        ChannelVersions,
        Checkpoint,
        CheckpointMetadata,
        CheckpointTuple,
        get_checkpoint_id,
        get_checkpoint_metadata,
    )
    from langgraph.checkpoint.serde.base import SerializerProtocol
except ImportError as exc:  # pragma: no cover - the hint is the point
    raise ImportError(
        "botwire's LangGraph checkpointer needs: pip install 'botwire[langgraph]'"
    ) from exc

from .. import AnswerTooLarge, AsyncMemory, Conflict, Memory, ValueTooLarge
from ..ops import Clear, Delete, Get, ListKeys, Op, Put, Scan, Touch
from ..wire import MAX_BATCH, decode_value, encode_value
from .history import Plan, arun_plan, run_plan
from .tenants import NamespaceSpec, Tenants, per_scope

LONG = 64  # an encoded label longer than this is shortened to its start and a hash
MOST_ID = 120  # characters of an encoded checkpoint id (LangGraph's are 36)
PIECE = 512_000  # base64 characters a piece holds (a value under 1 MiB)
BATCH_BYTES = 1_000_000  # of values per request (a default server takes 2 MiB a body)
PAGE = 64  # records a scan returns at first (halved when an answer is too large)
PENDING_TTL = 3600.0  # pieces no record points at yet (a writer died) expire after an hour
STRATEGIES = ("keep_latest", "delete")
_DESC = str.maketrans(  # an encoded id's characters, reversed in order: keys ascend as ids descend
    {c: chr(0x7D - (ord(c) - 0x25)) for c in map(chr, range(0x25, 0x7F))}
)


def _label(text: str) -> str:
    encoded = "-" + quote(text, safe="")
    if len(encoded) <= LONG:
        return encoded
    return encoded[:32] + "!" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def _desc(checkpoint_id: str) -> str:
    encoded = quote(checkpoint_id, safe="")
    if len(encoded) > MOST_ID:
        raise ValueError(f"a checkpoint id of at most {MOST_ID} characters, not {encoded[:40]}...")
    return encoded.translate(_DESC) + "~"


def _where(config: RunnableConfig) -> tuple[str, str]:
    conf = config["configurable"]
    return str(conf["thread_id"]), str(conf.get("checkpoint_ns", ""))


def _config(thread: str, ns: str, checkpoint_id: str) -> RunnableConfig:
    return {
        "configurable": {"thread_id": thread, "checkpoint_ns": ns, "checkpoint_id": checkpoint_id}
    }


def record_key(thread: str, ns: str, checkpoint_id: str) -> str:
    return f"k/{_label(thread)}/{_label(ns)}/{_desc(checkpoint_id)}"


def below_key(thread: str, ns: str, checkpoint_id: str) -> str:
    """The prefix of a checkpoint's pending writes and pieces."""
    return f"x/{_label(thread)}/{_label(ns)}/{_desc(checkpoint_id)}/"


def _runs(run: str, thread: str, ns: str, checkpoint_id: str) -> list[str]:
    tail = f"{_label(ns)}/{_desc(checkpoint_id)}"
    return [f"r/{_label(run)}/{_label(thread)}/{tail}", f"s/{_label(thread)}/{_label(run)}/{tail}"]


# -- values: LangGraph's serializer, base64, split into pieces past PIECE -----------------------


class _Packed:
    """A serialized value as stored: ``json(fields)`` is its record with the value inside
    (or, past PIECE, pointing at ``pieces``, which go first)."""

    __slots__ = ("name", "pieces", "ref", "text")

    def __init__(self, name: str, typed: tuple[str, bytes], below: str) -> None:
        kind, data = typed
        text = base64.b64encode(data)  # base64 needs no JSON escaping: spliced in as it is
        self.name = name
        if len(text) <= PIECE:
            self.text: bytes | None = text
            self.ref: dict[str, Any] = {"t": kind}
            self.pieces: list[tuple[str, bytes]] = []
            return
        gen = uuid.uuid4().hex
        self.text = None
        self.ref = {"t": kind, "gen": gen, "pieces": -(-len(text) // PIECE)}
        self.pieces = [
            (f"{below}p/{gen}/{j:06d}", b'"' + text[at : at + PIECE] + b'"')
            for j, at in enumerate(range(0, len(text), PIECE))
        ]

    def json(self, fields: dict[str, Any]) -> bytes:
        """``fields`` and this value (under ``name``) as one JSON object."""
        ref = encode_value({**fields, self.name: self.ref})
        if self.text is None:
            return ref
        return ref[:-2] + b',"b":"' + self.text + b'"}}'


def _unpack(field: dict[str, Any], pieces: dict[str, list[tuple[str, str]]]) -> tuple[str, bytes]:
    if "b" in field:
        return field["t"], base64.b64decode(field["b"])
    found = sorted(pieces.get(field["gen"], []))
    if len(found) != field["pieces"]:
        raise Conflict("a value's pieces changed while it was read")  # read again
    return field["t"], base64.b64decode("".join(text for _, text in found))


def _stored(pieces: list[tuple[str, bytes]], final: list[Op]) -> Plan:
    """``final`` and the pieces it points at, all or nothing: in its own batch while they fit
    one request, else the pieces first with a TTL, then ``final`` clearing it."""
    if len(pieces) + len(final) > MAX_BATCH:
        raise ValueTooLarge(
            f"{len(pieces)} pieces of {PIECE} bytes: a checkpoint or a task's writes take at "
            f"most {MAX_BATCH - len(final)}",
            limit=(MAX_BATCH - len(final)) * PIECE,
        )
    if sum(len(data) for _, data in pieces) <= BATCH_BYTES:
        yield [*(Put(key, data) for key, data in pieces), *final]
        return
    for batch in _batched(pieces, PENDING_TTL):  # noqa: UP028 (a plan is sent results)
        yield batch
    yield [*(Touch(key, None) for key, _ in pieces), *final]


def _batched(pieces: list[tuple[str, bytes]], ttl: float | None) -> list[list[Op]]:
    batches: list[list[Op]] = [[]]
    size = 0
    for key, data in pieces:
        if batches[-1] and (size + len(data) > BATCH_BYTES or len(batches[-1]) >= MAX_BATCH):
            batches.append([])
            size = 0
        batches[-1].append(Put(key, data, ttl=ttl))
        size += len(data)
    return batches if batches[0] else []


def _scan(prefix: str, *, limit: int | None = None, after: str | None = None) -> Plan:
    """Every row of ``prefix`` (or the first ``limit``), paged, pages halved while an answer
    is too large."""
    rows: list[Any] = []
    page = PAGE if limit is None else min(PAGE, limit)
    while limit is None or len(rows) < limit:
        want = page if limit is None else min(page, limit - len(rows))
        try:
            (got,) = yield [Scan(prefix, after=after, limit=want)]
        except AnswerTooLarge:
            if page == 1:
                raise
            page = max(1, page // 2)
            continue
        rows += got
        if len(got) < want:
            break
        after = got[-1][0]
    return rows


def _keys(prefix: str) -> Plan:
    keys: list[str] = []
    after = None
    while True:
        (got,) = yield [ListKeys(prefix, after=after, limit=1000)]
        keys += got
        if len(got) < 1000:
            return keys
        after = got[-1]


def _in_batches(ops: list[Op], last: list[Op]) -> Plan:
    """``ops`` in batches of at most MAX_BATCH, then ``last`` (deletes before what they free)."""
    everything = [*ops, *last]
    for start in range(0, len(everything), MAX_BATCH):
        yield everything[start : start + MAX_BATCH]


class _Direct:
    """A memory's ``batch`` sent straight to its store: the saver builds only valid ops (its
    keys by construction, its values JSON by construction), so ``Memory.batch``'s re-check
    of every value (a JSON parse of each checkpoint) is skipped."""

    __slots__ = ("memory",)

    def __init__(self, memory: Memory) -> None:
        self.memory = memory

    def batch(self, ops: list[Op]) -> list[Any]:
        return self.memory.store.batch(self.memory.namespace, ops)


class _ADirect:
    """:class:`_Direct` for an ``AsyncMemory``."""

    __slots__ = ("memory",)

    def __init__(self, memory: AsyncMemory) -> None:
        self.memory = memory

    async def batch(self, ops: list[Op]) -> list[Any]:
        return await self.memory.store.abatch(self.memory.namespace, ops)


def _run(memory: Memory, plan: Plan) -> Any:
    return run_plan(_Direct(memory), plan)  # type: ignore[arg-type]


async def _arun(memory: AsyncMemory, plan: Plan) -> Any:
    return await arun_plan(_ADirect(memory), plan)  # type: ignore[arg-type]


class BotwireSaver(BaseCheckpointSaver[int]):
    """LangGraph's ``BaseCheckpointSaver`` on botwire: every sync and async method, on
    every store (see the module docstring)."""

    def __init__(
        self,
        memory: Memory | AsyncMemory | None = None,
        *,
        namespace: NamespaceSpec = "langgraph-checkpoints",
        url: str | None = None,
        api_key: str | None = None,
        serde: SerializerProtocol | None = None,
    ) -> None:
        super().__init__(serde=serde)
        if isinstance(memory, AsyncMemory):
            memory = Memory(memory.namespace, url=memory.store)
        # No read cache: checkpoints are read by key range, which a cache does not serve,
        # and a cache would read every value written back into it.
        self._tenants = Tenants(memory, namespace, url, api_key=api_key, cache=False)
        self._split = memory is None and per_scope(namespace)
        self._seen: dict[str, str] = {}  # botwire namespace -> a thread placed in it

    # -- where ----------------------------------------------------------------------------

    def _scope(self, thread: str) -> str:
        scope = thread if self._split else ""
        self._seen.setdefault(self._tenants.name(scope), scope)
        return scope

    def _memory(self, thread: str) -> Memory:
        return self._tenants.memory(self._scope(thread))

    def _amemory(self, thread: str) -> AsyncMemory:
        return self._tenants.amemory(self._scope(thread))

    def _everywhere(self) -> list[str]:
        """The scopes a call naming no thread covers: every thread's namespace this object
        has used (with a namespace per thread), else the one namespace."""
        if not self._split:
            return [self._scope("")]
        return sorted(self._seen.values())

    def close(self) -> None:
        """Release what the sync methods opened (``aclose`` releases everything)."""
        self._tenants.close()

    async def aclose(self) -> None:
        await self._tenants.aclose()

    def __enter__(self) -> BotwireSaver:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    async def __aenter__(self) -> BotwireSaver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    # -- plans (no I/O): each sync and async method drives one ------------------------------

    def _get_plan(self, config: RunnableConfig) -> Plan:
        thread, ns = _where(config)
        checkpoint_id = get_checkpoint_id(config)
        if checkpoint_id:
            key = record_key(thread, ns, checkpoint_id)
            try:
                record, rows = yield [Get(key), Scan(below_key(thread, ns, checkpoint_id))]
            except AnswerTooLarge:
                (record,) = yield [Get(key)]
                rows = yield from _scan(below_key(thread, ns, checkpoint_id))
            if record is None:
                return None
            return self._tuple(decode_value(record.data), rows)
        first = f"k/{_label(thread)}/{_label(ns)}/"
        for _ in range(100):
            found = yield from _scan(first, limit=1)
            if not found:
                return None
            value = decode_value(found[0][1].data)
            rows = yield from _scan(below_key(thread, ns, value["id"]))
            try:
                return self._tuple(value, rows)
            except Conflict:
                continue  # replaced while it was read
        raise Conflict(f"thread {thread!r} kept changing while it was read")

    def _tuple(self, value: dict[str, Any], rows: list[Any]) -> CheckpointTuple:
        thread, ns, checkpoint_id = value["thread"], value["ns"], value["id"]
        prefix = below_key(thread, ns, checkpoint_id)
        pieces: dict[str, list[tuple[str, str]]] = {}
        writes = []
        for key, record in rows:
            rest = key[len(prefix) :].split("/")
            if rest[0] == "p":
                pieces.setdefault(rest[1], []).append((rest[2], decode_value(record.data)))
            elif rest[0] == "w" and len(rest) == 3:
                writes.append(decode_value(record.data))
        writes.sort(key=lambda w: (w["path"], w["task"], w["idx"]))
        parent = value.get("parent")
        return CheckpointTuple(
            config=_config(thread, ns, checkpoint_id),
            checkpoint=self.serde.loads_typed(_unpack(value["checkpoint"], pieces)),
            metadata=self.serde.loads_typed(_unpack(value["metadata"], pieces)),
            parent_config=_config(thread, ns, parent) if parent else None,
            pending_writes=[
                (w["task"], w["channel"], self.serde.loads_typed(_unpack(w["value"], pieces)))
                for w in writes
            ],
        )

    def _list_plan(
        self,
        config: RunnableConfig | None,
        filter: dict[str, Any] | None,
        before: RunnableConfig | None,
        limit: int | None,
    ) -> Plan:
        """The tuples ``list`` yields, newest first in each thread and checkpoint namespace."""
        if config is None:
            prefix = "k/"
        else:
            thread, ns = _where(config)
            explicit = config["configurable"].get("checkpoint_ns")
            prefix = f"k/{_label(thread)}/" + ("" if explicit is None else f"{_label(ns)}/")
        only = get_checkpoint_id(config) if config else None
        before_id = get_checkpoint_id(before) if before else None
        out: list[CheckpointTuple] = []
        after: str | None = None
        while limit is None or len(out) < limit:
            page = yield from _scan(prefix, limit=PAGE, after=after)
            for _, record in page:
                value = decode_value(record.data)
                if only and value["id"] != only:
                    continue
                if before_id and value["id"] >= before_id:
                    continue
                if filter:
                    metadata = self.serde.loads_typed(_unpack(value["metadata"], {}))
                    if not all(metadata.get(k) == v for k, v in filter.items()):
                        continue
                rows = yield from _scan(below_key(value["thread"], value["ns"], value["id"]))
                try:
                    out.append(self._tuple(value, rows))
                except Conflict:
                    continue  # deleted or replaced while it was read
                if limit is not None and len(out) >= limit:
                    break
            if len(page) < PAGE:
                break
            after = page[-1][0]
        return out

    def _put_plan(
        self, config: RunnableConfig, checkpoint: Checkpoint, metadata: CheckpointMetadata
    ) -> Plan:
        thread, ns = _where(config)
        checkpoint_id = checkpoint["id"]
        below = below_key(thread, ns, checkpoint_id)
        full = get_checkpoint_metadata(config, metadata)
        packed = _Packed("checkpoint", self.serde.dumps_typed(checkpoint), below)
        kind, data = self.serde.dumps_typed(full)
        run = full.get("run_id")
        value = {
            "thread": thread,
            "ns": ns,
            "id": checkpoint_id,
            "parent": config["configurable"].get("checkpoint_id"),
            "run": None if run is None else str(run),
            "metadata": {"t": kind, "b": base64.b64encode(data).decode("ascii")},
        }
        final: list[Op] = [Put(record_key(thread, ns, checkpoint_id), packed.json(value))]
        if run is not None:
            final += [Put(key, b'""') for key in _runs(str(run), thread, ns, checkpoint_id)]
        yield from _stored(packed.pieces, final)
        return _config(thread, ns, checkpoint_id)

    def _put_writes_plan(
        self, config: RunnableConfig, writes: Sequence[tuple[str, Any]], task_id: str, path: str
    ) -> Plan:
        thread, ns = _where(config)
        below = below_key(thread, ns, config["configurable"]["checkpoint_id"])
        pieces: list[tuple[str, bytes]] = []
        records: list[Put] = []
        for n, (channel, value) in enumerate(writes):
            idx = WRITES_IDX_MAP.get(channel, n)
            packed = _Packed("value", self.serde.dumps_typed(value), below)
            pieces += packed.pieces
            stored = {"task": task_id, "idx": idx, "channel": channel, "path": path}
            key = f"{below}w/{_label(task_id)}/{idx}"
            data = packed.json(stored)
            records.append(Put(key, data, if_version=0 if idx >= 0 else None))
        while records:
            try:
                yield from _stored(pieces, list(records))
                return
            except Conflict as exc:  # a regular write stored already is kept as it was
                taken = set(exc.keys) & {op.key for op in records}
                if not taken:
                    raise
                records = [op for op in records if op.key not in taken]
                # (the pieces of what was not stored go again; unreferenced, they are dropped
                # by nothing but their TTL or the thread's deletion)

    def _thread_ops(self, thread: str) -> Plan:
        index = yield from _keys(f"s/{_label(thread)}/")
        runs: list[Op] = []
        for key in index:  # s/T/<run>/N/I -> r/<run>/T/N/I
            _, t, run, n, i = key.split("/", 4)
            runs.append(Delete(f"r/{run}/{t}/{n}/{i}"))
        label = _label(thread)
        yield from _in_batches(
            runs, [Clear(f"s/{label}/"), Clear(f"k/{label}/"), Clear(f"x/{label}/")]
        )

    def _runs_plan(self, run_ids: Sequence[str]) -> Plan:
        ops: list[Op] = []
        for run in run_ids:
            for key in (yield from _keys(f"r/{_label(str(run))}/")):
                _, r, t, n, i = key.split("/", 4)
                ops += [
                    Delete(f"k/{t}/{n}/{i}"),
                    Clear(f"x/{t}/{n}/{i}/"),
                    Delete(key),
                    Delete(f"s/{t}/{r}/{n}/{i}"),
                ]
        yield from _in_batches(ops, [])

    def _copy_plan(self, source: str, target: str) -> Plan:
        """Read the source thread (records, writes, pieces): what to write for the target."""
        src, dst = _label(source), _label(target)
        children = yield from _scan(f"x/{src}/")
        records = yield from _scan(f"k/{src}/")
        index = yield from _keys(f"s/{src}/")
        puts: list[tuple[str, bytes]] = [
            (f"x/{dst}/" + k[len(src) + 3 :], r.data) for k, r in children
        ]
        final: list[tuple[str, bytes]] = []
        for key, record in records:
            value = decode_value(record.data)
            value["thread"] = target
            final.append((f"k/{dst}/" + key[len(src) + 3 :], encode_value(value)))
        for key in index:
            _, _, run, n, i = key.split("/", 4)
            final += [(f"s/{dst}/{run}/{n}/{i}", b'""'), (f"r/{run}/{dst}/{n}/{i}", b'""')]
        return puts, final

    def _prune_plan(self, thread: str) -> Plan:
        records = yield from _scan(f"k/{_label(thread)}/")
        newest: dict[str, dict[str, Any]] = {}
        doomed: list[dict[str, Any]] = []
        for _, record in records:  # newest first within each checkpoint namespace
            value = decode_value(record.data)
            if value["ns"] in newest:
                doomed.append(value)
            else:
                newest[value["ns"]] = value
        for value in newest.values():
            metadata = self.serde.loads_typed(_unpack(value["metadata"], {}))
            if "counters_since_delta_snapshot" in metadata or "delta_writes_versioned" in metadata:
                raise NotImplementedError(
                    f"keep_latest can't prune thread {thread!r}: it uses a DeltaChannel"
                )
        ops: list[Op] = []
        for value in doomed:
            t, n, i = thread, value["ns"], value["id"]
            ops += [Delete(record_key(t, n, i)), Clear(below_key(t, n, i))]
            if value.get("run") is not None:
                ops += [Delete(key) for key in _runs(value["run"], t, n, i)]
        gone = {value["id"] for value in doomed}
        orphans = [v for v in newest.values() if v.get("parent") in gone]
        for value in orphans:  # a kept checkpoint whose parent went is left with none
            value["parent"] = None
            ops.append(Put(record_key(thread, value["ns"], value["id"]), encode_value(value)))
        yield from _in_batches(ops, [])

    # -- the sync API -------------------------------------------------------------------------

    def get_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return _run(self._memory(_where(config)[0]), self._get_plan(config))  # type: ignore[no-any-return]

    def list(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> Iterator[CheckpointTuple]:
        scopes = self._everywhere() if config is None else [self._scope(_where(config)[0])]
        for scope in scopes:
            memory = self._tenants.memory(scope)
            got: list[CheckpointTuple] = _run(
                memory, self._list_plan(config, filter, before, limit)
            )
            yield from got
            if limit is not None:
                limit -= len(got)
                if limit <= 0:
                    return

    def put(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        plan = self._put_plan(config, checkpoint, metadata)
        return _run(self._memory(_where(config)[0]), plan)  # type: ignore[no-any-return]

    def put_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        plan = self._put_writes_plan(config, writes, task_id, task_path)
        _run(self._memory(_where(config)[0]), plan)

    def delete_thread(self, thread_id: str) -> None:
        _run(self._memory(str(thread_id)), self._thread_ops(str(thread_id)))

    def delete_for_runs(self, run_ids: Sequence[str]) -> None:
        for scope in self._everywhere():
            _run(self._tenants.memory(scope), self._runs_plan(list(run_ids)))

    def copy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        source, target = str(source_thread_id), str(target_thread_id)
        puts, final = _run(self._memory(source), self._copy_plan(source, target))
        _run(self._memory(target), _write_copy(puts, final))

    def prune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for thread in _pruned(thread_ids, strategy):
            plan = self._thread_ops(thread) if strategy == "delete" else self._prune_plan(thread)
            _run(self._memory(thread), plan)

    # -- the async API ------------------------------------------------------------------------

    async def aget_tuple(self, config: RunnableConfig) -> CheckpointTuple | None:
        return await _arun(self._amemory(_where(config)[0]), self._get_plan(config))  # type: ignore[no-any-return]

    async def alist(
        self,
        config: RunnableConfig | None,
        *,
        filter: dict[str, Any] | None = None,
        before: RunnableConfig | None = None,
        limit: int | None = None,
    ) -> AsyncIterator[CheckpointTuple]:
        scopes = self._everywhere() if config is None else [self._scope(_where(config)[0])]
        for scope in scopes:
            memory = self._tenants.amemory(scope)
            plan = self._list_plan(config, filter, before, limit)
            got: list[CheckpointTuple] = await _arun(memory, plan)
            for item in got:
                yield item
            if limit is not None:
                limit -= len(got)
                if limit <= 0:
                    return

    async def aput(
        self,
        config: RunnableConfig,
        checkpoint: Checkpoint,
        metadata: CheckpointMetadata,
        new_versions: ChannelVersions,
    ) -> RunnableConfig:
        plan = self._put_plan(config, checkpoint, metadata)
        return await _arun(self._amemory(_where(config)[0]), plan)  # type: ignore[no-any-return]

    async def aput_writes(
        self,
        config: RunnableConfig,
        writes: Sequence[tuple[str, Any]],
        task_id: str,
        task_path: str = "",
    ) -> None:
        plan = self._put_writes_plan(config, writes, task_id, task_path)
        await _arun(self._amemory(_where(config)[0]), plan)

    async def adelete_thread(self, thread_id: str) -> None:
        await _arun(self._amemory(str(thread_id)), self._thread_ops(str(thread_id)))

    async def adelete_for_runs(self, run_ids: Sequence[str]) -> None:
        for scope in self._everywhere():
            await _arun(self._tenants.amemory(scope), self._runs_plan(list(run_ids)))

    async def acopy_thread(self, source_thread_id: str, target_thread_id: str) -> None:
        source, target = str(source_thread_id), str(target_thread_id)
        puts, final = await _arun(self._amemory(source), self._copy_plan(source, target))
        await _arun(self._amemory(target), _write_copy(puts, final))

    async def aprune(self, thread_ids: Sequence[str], *, strategy: str = "keep_latest") -> None:
        for thread in _pruned(thread_ids, strategy):
            plan = self._thread_ops(thread) if strategy == "delete" else self._prune_plan(thread)
            await _arun(self._amemory(thread), plan)


def _pruned(thread_ids: Sequence[str], strategy: str) -> list[str]:
    if isinstance(thread_ids, str):
        raise TypeError("thread_ids must be a sequence of thread IDs, not a str")
    if strategy not in STRATEGIES:
        raise ValueError(f"Unknown prune strategy: {strategy!r}")
    return [str(t) for t in thread_ids]


def _write_copy(puts: list[tuple[str, bytes]], final: list[tuple[str, bytes]]) -> Plan:
    """The copy's writes and pieces first, its records last: a record is never seen before
    what it points at."""
    for batch in [*_batched(puts, None), *_batched(final, None)]:  # noqa: UP028 (as above)
        yield batch
