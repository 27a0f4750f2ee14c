"""The postgres store on psycopg's asyncio API: the same operations as ``_sync``."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors

from qflow import DeliveryAttempt, Event, IncidentQuery, IncidentState, OutboxMessage, Timer, Write
from qflow import projection_sql
from qflow.store import Due, Filter, Measure, Projection

from qflow_postgres import _ops, _schema
from qflow_postgres._codec import Codec
from qflow_postgres._errors import closed_error
from qflow_postgres._sync import LOST, refused, session_setup, unavailable
from qflow_postgres._url import Target

__all__ = ["AsyncPostgresStore"]

log = logging.getLogger("qflow.postgres")

#: Batches from this size on are encoded and decoded off the event loop (a thread hop
#: costs more than a handful of rows take).
OFFLOAD_AT = 20


class AsyncPostgresStore:
    """The :class:`qflow.aio.AsyncStore` for PostgreSQL: every method of
    :class:`qflow.Store` as a coroutine, one transaction each, one connection.

    Nothing connects until the first call, inside the running loop (the plugin hook
    hands the store out before a loop may exist); that call also checks the schema.
    """

    def __init__(self, target: Target, *, retries: int = 5, backoff: float = 0.1, connect_timeout: int = 10,
                 sleep: Callable[[float], Awaitable[None]] = asyncio.sleep) -> None:
        self.target = target
        self.retries = retries
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self._sleep = sleep
        self._codec = Codec()
        self._lock = asyncio.Lock()
        self._conn: psycopg.AsyncConnection[Any] | None = None
        self._ready = False
        self._projections: dict[str, Projection] = {}
        self._undeclared: dict[str, Projection] = {}  # declared, tables not yet made
        self.reconnects = 0
        self._closed = False  # by close(): a call then is refused, not a reconnection

    async def _connection(self) -> psycopg.AsyncConnection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self.reconnects += 1
            await conn.close()
        conn = await psycopg.AsyncConnection.connect(self.target.conninfo, autocommit=True,
                                                     connect_timeout=self.connect_timeout)
        create, session = session_setup(self.target)
        if create:
            async with conn.transaction():
                for stmt in create:
                    await conn.execute(stmt)
        for stmt in session:
            await conn.execute(stmt)
        self._conn = conn
        return conn

    @property
    def backend_pid(self) -> int | None:
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    async def _run(self, make: Callable[[bool], _ops.Op], *, tx: bool = True, offload: bool = False) -> Any:
        """Run one operation; with *offload* its Python steps (encoding and decoding
        rows) run in a thread and only the I/O on the loop."""
        self._ensure_open()
        async with self._lock:
            self._ensure_open()  # closed while this call waited for the lock
            for attempt in range(self.retries + 1):
                try:
                    conn = await self._connection()
                    if not self._ready:
                        _found, version = await _transact(conn, _ops.bootstrap(self.target.shown, upgrade=False))
                        if version < _schema.CURRENT:
                            raise _ops.older(self.target.shown, version)
                        self._ready = True
                    if self._undeclared:
                        await _transact(conn, _ops.declare(list(self._undeclared.values())))
                        self._undeclared.clear()
                    op = make(attempt > 0)
                    return await (_transact(conn, op, offload) if tx else _once(conn, op, offload))
                except LOST as exc:
                    refusal = refused(self.target, exc)
                    if refusal is not None:
                        raise refusal from None
                    if attempt == self.retries:
                        raise unavailable(self.target, attempt + 1, exc) from exc
                    log.warning("postgres: %s; reconnecting and running the transaction again (try %d of %d)",
                                str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__,
                                attempt + 2, self.retries + 1)
                    if attempt:
                        await self._sleep(self.backoff * 2 ** (attempt - 1))
            raise AssertionError("unreachable")

    async def close(self) -> None:
        async with self._lock:
            self._closed = True
            if self._conn is not None:
                await self._conn.close()
                self._conn = None

    def _ensure_open(self) -> None:
        if self._closed:
            raise closed_error(self.target.shown)

    async def schema_version(self) -> int:
        return await self._run(lambda retry: _ops.schema_version(), tx=False)

    async def next_id(self) -> str:
        return await self._run(lambda retry: _ops.next_id(), tx=False)

    async def append(self, events: Sequence[Event], state: IncidentState, *, timers: Sequence[Timer] | None = None,
                     outbox: Sequence[OutboxMessage] = ()) -> None:
        await self.write([Write(tuple(events), state, None if timers is None else tuple(timers), tuple(outbox))])

    async def write(self, writes: Sequence[Write]) -> None:
        writes = list(writes)
        await self._run(lambda retry: _ops.write(self._codec, writes, self._projections, retry=retry),
                        offload=len(writes) >= OFFLOAD_AT)

    async def get(self, incident_id: str) -> IncidentState | None:
        return await self._run(lambda retry: _ops.get(self._codec, incident_id), tx=False)

    async def events(self, incident_id: str) -> tuple[Event, ...]:
        return await self._run(lambda retry: _ops.events(self._codec, incident_id), tx=False)

    async def read_many(self, incident_ids: Sequence[str]) -> dict[str, tuple[IncidentState, tuple[Event, ...]]]:
        return await self._run(lambda retry: _ops.read_many(self._codec, incident_ids), tx=False,
                               offload=len(incident_ids) >= OFFLOAD_AT)

    async def find_dedup(self, dedup_key: str, since: datetime) -> str | None:
        return await self._run(lambda retry: _ops.find_dedup(dedup_key, since), tx=False)

    async def next_ids(self, count: int) -> list[str]:
        return [await self.next_id() for _ in range(count)]

    async def count(self, query: IncidentQuery) -> int:
        return await self._run(lambda retry: _ops.count(self._codec, query), tx=False)

    def declare(self, projections: Sequence[Projection]) -> None:
        """Take *projections*; their tables are created by the next call, in the loop
        (this is called from ``Engine.__init__``, where nothing may be awaited)."""
        self._ensure_open()
        for p in projections:
            projection_sql.table(p)  # a bad name is refused here, not at the first write
            self._projections[p.name] = p
            self._undeclared[p.name] = p

    async def aggregate(self, projection: Projection, *, measures: Sequence[Measure], group_by: Sequence[Any] = (),
                        where: Sequence[Filter] = ()) -> list[Any]:
        if projection.name not in self._projections:
            self.declare([projection])
        return await self._run(lambda retry: _ops.aggregate(projection, measures, group_by, where))

    async def find_external(self, external_id: str) -> str | None:
        return await self._run(lambda retry: _ops.find_external(external_id), tx=False)

    async def query(self, query: IncidentQuery) -> list[IncidentState]:
        return await self._run(lambda retry: _ops.query(self._codec, query), tx=False)

    async def due(self, until: datetime) -> list[Due]:
        return await self._run(lambda retry: _ops.due(self._codec, until), tx=False)

    async def without_dues(self) -> int:
        return await self._run(lambda retry: _ops.without_dues(), tx=False)  # type: ignore[no-any-return]

    async def claim_timers(self, until: datetime, *, worker: str, limit: int = 100,
                           lease_until: datetime | None = None) -> list[Timer]:
        return await self._run(lambda retry: _ops.claim_timers(self._codec, until, worker, limit, lease_until),
                              tx=False)

    async def release_timers(self, worker: str) -> None:
        await self._run(lambda retry: _ops.release(worker))

    async def timers(self, incident_id: str | None = None) -> list[Timer]:
        return await self._run(lambda retry: _ops.timers(self._codec, incident_id), tx=False)

    async def claim_outbox(self, now: datetime, *, worker: str, limit: int = 100,
                           lease_until: datetime | None = None) -> list[OutboxMessage]:
        return await self._run(lambda retry: _ops.claim_outbox(self._codec, now, worker, limit, lease_until),
                              tx=False)

    async def record_delivery(self, message: OutboxMessage, attempt: DeliveryAttempt,
                              write: Write | None = None) -> bool:
        return await self._run(lambda retry: _ops.record_delivery(self._codec, message, attempt, write,
                                                                  self._projections, retry=retry))

    async def outbox(self, *, incident_id: str | None = None, status: str | None = None) -> list[OutboxMessage]:
        return await self._run(lambda retry: _ops.outbox(self._codec, incident_id, status), tx=False)

    async def attempts(self, message_id: str) -> list[DeliveryAttempt]:
        return await self._run(lambda retry: _ops.attempts(self._codec, message_id), tx=False)

    async def save_document(self, kind: str, doc_id: str, data: Mapping[str, Any], *, version: int) -> None:
        await self._run(lambda retry: _ops.save_document(self._codec, kind, doc_id, data, version))

    async def document(self, kind: str, doc_id: str) -> tuple[int, Mapping[str, Any]] | None:
        return await self._run(lambda retry: _ops.document(kind, doc_id), tx=False)

    async def documents(self, kind: str) -> list[tuple[str, int, Mapping[str, Any]]]:
        return await self._run(lambda retry: _ops.documents(kind), tx=False)

    def __repr__(self) -> str:
        return f"AsyncPostgresStore({self.target.shown!r})"


async def _transact(conn: psycopg.AsyncConnection[Any], op: _ops.Op, offload: bool = False) -> Any:
    """As ``_sync._transact``: one transaction in pipeline mode."""
    conflicts: list[tuple[str, str]] = []
    try:
        async with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as cur:
            return await _drive(cur, op, pipeline, conflicts, offload)
    except psycopg.errors.UniqueViolation as exc:
        mapped = _ops.conflict(exc, conflicts)
        if mapped is None:
            raise
        raise mapped from None


async def _once(conn: psycopg.AsyncConnection[Any], op: _ops.Op, offload: bool = False) -> Any:
    async with conn.cursor() as cur:
        return await _drive(cur, op, None, [], offload)


class _Done(Exception):
    """The operation returned *value* (StopIteration cannot cross a Future)."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.value = value


def _advance(step: Callable[..., Any], *args: Any) -> Any:
    try:
        return step(*args)
    except StopIteration as stop:
        raise _Done(stop.value) from None


async def _drive(cur: psycopg.AsyncCursor[Any], op: _ops.Op, pipeline: psycopg.AsyncPipeline | None,
                 conflicts: list[tuple[str, str]], offload: bool = False) -> Any:
    # An operation's steps between statements are plain Python: decoding a tick's
    # batch or encoding its writes took 60-180 ms for 150 incidents, too long to hold
    # the application's loop. Offloaded, they run in a thread, one at a time.
    async def advance(step: Callable[..., Any], *args: Any) -> Any:
        if offload:
            return await asyncio.to_thread(_advance, step, *args)
        return _advance(step, *args)

    try:
        q = await advance(next, op)
        while True:
            try:
                if q.many:
                    await cur.executemany(q.sql, q.params)
                else:
                    await cur.execute(q.sql, q.params)
                if not q.fetch:
                    if q.conflict is not None:
                        conflicts.append(q.conflict)
                    q = await advance(op.send, [])
                    continue
                if pipeline is not None:
                    await pipeline.sync()
                rows: list[Any] = await cur.fetchall() if cur.description is not None else []
            except LOST:
                raise
            except psycopg.errors.UniqueViolation as exc:
                mapped = _ops.conflict(exc, conflicts)
                if mapped is not None:
                    raise mapped from None
                q = await advance(op.throw, exc)
                continue
            except psycopg.Error as exc:
                q = await advance(op.throw, exc)
                continue
            q = await advance(op.send, rows)
    except _Done as done:
        return done.value
