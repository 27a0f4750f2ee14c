"""The postgres store on psycopg's blocking API."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any

import psycopg
import psycopg.errors
from psycopg import sql

from qflow import DeliveryAttempt, Event, IncidentQuery, IncidentState, OutboxMessage, Store, Timer, Write
from qflow.errors import StoreUnavailableError
from qflow import projection_sql
from qflow.store import Due, Filter, Measure, Projection

from qflow_postgres import _ops, _schema
from qflow_postgres._codec import Codec
from qflow_postgres._errors import StoreError, closed_error
from qflow_postgres._url import Target

__all__ = ["PostgresStore", "LOST", "refused", "unavailable"]

log = logging.getLogger("qflow.postgres")

#: What a lost or refused connection raises. A transaction that failed with one of
#: these was rolled back by the server (or never started), so running it again is safe.
LOST: tuple[type[BaseException], ...] = (psycopg.OperationalError, psycopg.InterfaceError)


def unavailable(target: Target, tries: int, exc: BaseException) -> StoreUnavailableError:
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return StoreUnavailableError(
        f"the database at {target.shown} did not answer after {tries} tries ({reason}); "
        "nothing was written: check that the server runs and the URL, then try again")


#: What a server says when it answers but the URL or the account is wrong (no such
#: database or role, a bad password, no pg_hba.conf entry): no retry mends that.
_REFUSALS = ("does not exist", "authentication failed", "pg_hba.conf", "permission denied for database",
             "no password supplied")


def refused(target: Target, exc: BaseException) -> StoreError | None:
    """The configuration error a lost-looking *exc* really is, or None."""
    line = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    if not any(r in line for r in _REFUSALS):
        return None
    reason = line.rsplit(" failed: ", 1)[-1].removeprefix("FATAL:").strip()
    return StoreError(
        f"the database server of {target.shown} refused the connection ({reason}); it answers, so waiting will not "
        "help: check the database name and the user in the URL, the password (PGPASSWORD or ~/.pgpass) and the "
        "server's pg_hba.conf, then try again")


def session_setup(target: Target) -> tuple[list[Any], list[Any]]:
    """What every new connection runs: ``(create, session)``. *create* makes the named
    schema under an advisory lock (two workers starting together would otherwise race
    on ``CREATE SCHEMA IF NOT EXISTS``); *session* sets UTC and the search path."""
    create: list[Any] = []
    session: list[Any] = [sql.SQL("SET TIME ZONE 'UTC'")]
    if target.synchronous_commit is not None:
        session.append(sql.SQL("SET synchronous_commit TO {}").format(sql.Identifier(target.synchronous_commit)))
    if target.schema is not None:
        name = sql.Identifier(target.schema)
        create = [sql.SQL("SELECT pg_advisory_xact_lock({})").format(sql.Literal(_schema.LOCK_KEY)),
                  sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(name)]
        session.append(sql.SQL("SET search_path TO {}").format(name))
    return create, session


class PostgresStore(Store):
    """One connection, one transaction per method; thread-safe (calls queue on a lock).

    A dropped connection is reopened and the method's transaction run again from the
    start, up to *retries* times with a doubling pause starting at *backoff* seconds;
    then :class:`~qflow.errors.StoreUnavailableError`. *sleep* is injectable for tests.
    """

    def __init__(self, target: Target, *, retries: int = 5, backoff: float = 0.1,
                 connect_timeout: int = 10, upgrade: bool = False, create: bool = True,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self.target = target
        self._may_create = create
        self.retries = retries
        self.backoff = backoff
        self.connect_timeout = connect_timeout
        self._sleep = sleep
        self._codec = Codec()
        self._lock = threading.RLock()
        self._conn: psycopg.Connection[Any] | None = None
        self.reconnects = 0
        self._closed = False  # by close(): a call then is refused, not a reconnection
        self._projections: dict[str, Projection] = {}
        self._undeclared: dict[str, Projection] = {}  # declared, tables not yet made
        self._version = _schema.CURRENT  # what bootstrap finds replaces it
        found, self._version = self._run(lambda retry: _ops.bootstrap(target.shown, upgrade=upgrade, create=create),
                                         check=False)
        self.found_version = found

    # -- the driver --------------------------------------------------------------------

    def _connection(self) -> psycopg.Connection[Any]:
        conn = self._conn
        if conn is not None and not conn.closed and not conn.broken:
            return conn
        if conn is not None:
            self.reconnects += 1
            conn.close()
        conn = psycopg.connect(self.target.conninfo, autocommit=True, connect_timeout=self.connect_timeout)
        create, session = session_setup(self.target)
        if create and not self._may_create:
            found = conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.target.schema,)).fetchone()
            if found is None:
                conn.close()
                raise StoreError(f"no store at {self.target.shown} (schema {self.target.schema} does not exist); "
                                 "check ?schema=, or create the store with 'qflow import' (or 'qflow demo')")
            create = []
        if create:
            with conn.transaction():
                for stmt in create:
                    conn.execute(stmt)
        for stmt in session:
            conn.execute(stmt)
        self._conn = conn
        return conn

    @property
    def backend_pid(self) -> int | None:
        """The server process of the current connection (for operators and tests)."""
        conn = self._conn
        return None if conn is None or conn.closed else conn.info.backend_pid

    def _run(self, make: Callable[[bool], _ops.Op], *, check: bool = True, tx: bool = True) -> Any:
        """Run one operation; *tx=False* for one statement that needs no transaction
        of its own (a read, a claim): autocommit runs it as one, without the BEGIN and
        COMMIT round trips."""
        self._ensure_open()
        if check and self._version < _schema.CURRENT:
            raise _ops.older(self.target.shown, self._version)
        with self._lock:
            self._ensure_open()  # closed while this call waited for the lock
            for attempt in range(self.retries + 1):
                try:
                    conn = self._connection()
                    if check and self._undeclared:
                        self._create(conn)
                    return _transact(conn, make(attempt > 0)) if tx else _once(conn, make(attempt > 0))
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
                        self._sleep(self.backoff * 2 ** (attempt - 1))
            raise AssertionError("unreachable")

    def _create(self, conn: psycopg.Connection[Any]) -> None:
        _transact(conn, _ops.declare(list(self._undeclared.values())))
        self._undeclared.clear()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            if self._conn is not None:
                self._conn.close()
                self._conn = None

    def _ensure_open(self) -> None:
        if self._closed:
            raise closed_error(self.target.shown)

    # -- the interface -----------------------------------------------------------------

    def schema_version(self) -> int:
        return self._run(lambda retry: _ops.schema_version(), check=False, tx=False)

    def upgrade(self) -> tuple[int, int]:
        """Migrate forward to the current schema in one transaction; ``(from, to)``."""
        found, self._version = self._run(lambda retry: _ops.bootstrap(self.target.shown, upgrade=True),
                                         check=False)
        if self._undeclared:
            self._run(lambda retry: _ops.nothing(), tx=False)
        return (found, self._version)

    def next_id(self) -> str:
        return self._run(lambda retry: _ops.next_id(), tx=False)

    def write(self, writes: Sequence[Write]) -> None:
        writes = list(writes)
        self._run(lambda retry: _ops.write(self._codec, writes, self._projections, retry=retry))

    def get(self, incident_id: str) -> IncidentState | None:
        return self._run(lambda retry: _ops.get(self._codec, incident_id), tx=False)

    def events(self, incident_id: str) -> tuple[Event, ...]:
        return self._run(lambda retry: _ops.events(self._codec, incident_id), tx=False)

    def read_many(self, incident_ids: Sequence[str]) -> dict[str, tuple[IncidentState, tuple[Event, ...]]]:
        return self._run(lambda retry: _ops.read_many(self._codec, incident_ids), tx=False)

    def find_dedup(self, dedup_key: str, since: datetime) -> str | None:
        return self._run(lambda retry: _ops.find_dedup(dedup_key, since), tx=False)

    def next_ids(self, count: int) -> list[str]:
        return [self.next_id() for _ in range(count)]

    def count(self, query: IncidentQuery) -> int:
        return self._run(lambda retry: _ops.count(self._codec, query), tx=False)

    def declare(self, projections: Sequence[Projection]) -> None:
        """Create the typed tables of *projections* (idempotent; on a store that still
        needs ``upgrade`` they are created by it)."""
        self._ensure_open()
        for p in projections:
            projection_sql.table(p)  # a bad name is refused here, not at the first write
            self._projections[p.name] = p
            self._undeclared[p.name] = p
        if self._version == _schema.CURRENT:
            self._run(lambda retry: _ops.nothing(), tx=False)  # creates what is undeclared

    def aggregate(self, projection: Projection, *, measures: Sequence[Measure], group_by: Sequence[Any] = (),
                  where: Sequence[Filter] = ()) -> list[Any]:
        if projection.name not in self._projections:
            self.declare([projection])
        return self._run(lambda retry: _ops.aggregate(projection, measures, group_by, where))

    def find_external(self, external_id: str) -> str | None:
        return self._run(lambda retry: _ops.find_external(external_id), tx=False)

    def query(self, query: IncidentQuery) -> list[IncidentState]:
        return self._run(lambda retry: _ops.query(self._codec, query), tx=False)

    def due(self, until: datetime) -> list[Due]:
        return self._run(lambda retry: _ops.due(self._codec, until), tx=False)

    def without_dues(self) -> int:
        return self._run(lambda retry: _ops.without_dues(), tx=False)  # type: ignore[no-any-return]

    def claim_timers(self, until: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[Timer]:
        return self._run(lambda retry: _ops.claim_timers(self._codec, until, worker, limit, lease_until), tx=False)

    def release_timers(self, worker: str) -> None:
        self._run(lambda retry: _ops.release(worker))

    def timers(self, incident_id: str | None = None) -> list[Timer]:
        return self._run(lambda retry: _ops.timers(self._codec, incident_id), tx=False)

    def claim_outbox(self, now: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[OutboxMessage]:
        return self._run(lambda retry: _ops.claim_outbox(self._codec, now, worker, limit, lease_until), tx=False)

    def record_delivery(self, message: OutboxMessage, attempt: DeliveryAttempt, write: Write | None = None) -> bool:
        return self._run(lambda retry: _ops.record_delivery(self._codec, message, attempt, write, self._projections,
                                                            retry=retry))

    def outbox(self, *, incident_id: str | None = None, status: str | None = None) -> list[OutboxMessage]:
        return self._run(lambda retry: _ops.outbox(self._codec, incident_id, status), tx=False)

    def attempts(self, message_id: str) -> list[DeliveryAttempt]:
        return self._run(lambda retry: _ops.attempts(self._codec, message_id), tx=False)

    def save_document(self, kind: str, doc_id: str, data: Mapping[str, Any], *, version: int) -> None:
        self._run(lambda retry: _ops.save_document(self._codec, kind, doc_id, data, version))

    def document(self, kind: str, doc_id: str) -> tuple[int, Mapping[str, Any]] | None:
        return self._run(lambda retry: _ops.document(kind, doc_id), tx=False)

    def documents(self, kind: str) -> list[tuple[str, int, Mapping[str, Any]]]:
        return self._run(lambda retry: _ops.documents(kind), tx=False)

    def __repr__(self) -> str:
        return f"PostgresStore({self.target.shown!r})"


def _transact(conn: psycopg.Connection[Any], op: _ops.Op) -> Any:
    """*op* in one transaction, in pipeline mode: statements whose answer the operation
    does not wait for travel with the next one that it does, or with the COMMIT."""
    conflicts: list[tuple[str, str]] = []
    try:
        with conn.pipeline() as pipeline, conn.transaction(), conn.cursor() as cur:
            return _drive(cur, op, pipeline, conflicts)
    except psycopg.errors.UniqueViolation as exc:  # met by a deferred statement at COMMIT
        mapped = _ops.conflict(exc, conflicts)
        if mapped is None:
            raise
        raise mapped from None


def _once(conn: psycopg.Connection[Any], op: _ops.Op) -> Any:
    with conn.cursor() as cur:
        return _drive(cur, op, None, [])


def _drive(cur: psycopg.Cursor[Any], op: _ops.Op, pipeline: psycopg.Pipeline | None,
           conflicts: list[tuple[str, str]]) -> Any:
    try:
        q = next(op)
        while True:
            try:
                if q.many:
                    cur.executemany(q.sql, q.params)
                else:
                    cur.execute(q.sql, q.params)
                if not q.fetch:
                    if q.conflict is not None:
                        conflicts.append(q.conflict)
                    q = op.send([])
                    continue
                if pipeline is not None:
                    pipeline.sync()
                rows: list[Any] = cur.fetchall() if cur.description is not None else []
            except LOST:
                raise
            except psycopg.errors.UniqueViolation as exc:
                mapped = _ops.conflict(exc, conflicts)
                if mapped is not None:
                    raise mapped from None
                q = op.throw(exc)
                continue
            except psycopg.Error as exc:
                q = op.throw(exc)  # the operation turns it into its own error, or re-raises
                continue
            q = op.send(rows)
    except StopIteration as stop:
        return stop.value
