"""Every store operation, written once for the sync and the async connection.

An operation is a generator: it yields :class:`Q` (a statement and its parameters)
and is sent back the rows. ``_sync`` and ``_async`` drive the same generators with
psycopg's blocking and asyncio APIs, inside one transaction each, so the two stores
cannot drift apart. A driver retries an operation from a fresh generator after a
lost connection; ``retry=True`` tells a write that its first try may have committed.
"""

from __future__ import annotations

import json
from collections.abc import Generator, Iterable, Mapping, Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs
import psycopg.errors

from qflow import ConcurrencyError, DeliveryAttempt, IncidentQuery, IncidentState, OutboxMessage, Timer, Write
from qflow import projection_sql
from qflow.store import (Due, Filter, Measure, Projection, dedup_conflict, external_conflict, new_with_key,
                         outstanding, undeclared)

from qflow_postgres import _schema
from qflow_postgres._codec import CLOSED, Codec, local, offset
from qflow_postgres._errors import SchemaVersionError, StoreError

__all__ = ["Op", "Q"]


@attrs.frozen
class Q:
    """One statement. With ``fetch=False`` the operation does not wait for its answer:
    the driver sends it on in the same pipeline as what follows (a write's statements
    and its COMMIT reach the server together), and a unique violation it meets on
    *conflict* (constraint name, message) becomes that :class:`ConcurrencyError`."""

    sql: str
    params: Any = None
    many: bool = False
    fetch: bool = True
    conflict: tuple[str, str] | None = None


Op = Generator[Q, list[tuple[Any, ...]], Any]


def conflict(exc: psycopg.errors.UniqueViolation, conflicts: Sequence[tuple[str, str]]) -> ConcurrencyError | None:
    """The :class:`ConcurrencyError` a deferred statement asked for on this violation."""
    for constraint, message in conflicts:
        if exc.diag.constraint_name == constraint:
            return ConcurrencyError(message)
    return None


# -- schema ------------------------------------------------------------------------------


def bootstrap(where: str, *, upgrade: bool, create: bool = True) -> Op:
    """Create the tables in an empty schema (unless *create* is False: then there is
    no store to open), or with *upgrade* migrate them forward; return ``(version
    found, version now)``. A newer schema is refused."""
    yield Q("SELECT pg_advisory_xact_lock(%s)", (_schema.LOCK_KEY,))
    rows = yield Q("SELECT to_regclass('qflow_meta') IS NOT NULL, to_regclass('qflow_incidents') IS NOT NULL")
    has_meta, has_tables = rows[0]
    if not has_meta:
        if has_tables:
            raise StoreError(
                f"{where} has a qflow_incidents table but no qflow schema version: it is not a qflow "
                "store; give ?schema=NAME of a qflow store or of a new schema")
        if not create:
            raise StoreError(f"no store at {where} (no qflow tables there); check ?schema=, or create the store "
                             "with 'qflow import' (or 'qflow demo')")
        yield Q("CREATE TABLE qflow_meta (key text PRIMARY KEY, value text NOT NULL)")
        yield Q("INSERT INTO qflow_meta VALUES ('schema_version', '0')")
        version = 0
        upgrade = True  # an empty schema is created at the current version
    else:
        rows = yield Q("SELECT value FROM qflow_meta WHERE key = 'schema_version'")
        version = int(rows[0][0]) if rows else 0
    if version > _schema.CURRENT:
        raise SchemaVersionError(
            f"the store {where} has schema version {version}, newer than the {_schema.CURRENT} this qflow "
            "knows; upgrade qflow (pip install -U qflow) or open a backup made before the newer qflow touched it")
    if version == _schema.CURRENT or not upgrade:
        return (version, version)
    try:
        for step in range(version + 1, _schema.CURRENT + 1):
            for ddl in _schema.MIGRATIONS[step]:
                yield Q(ddl)
    except psycopg.Error as exc:
        raise migration_failed(where, version, exc) from None
    yield Q("UPDATE qflow_meta SET value = %s WHERE key = 'schema_version'", (str(_schema.CURRENT),))
    return (version, _schema.CURRENT)


#: Errors of a migration step that mean the tables are not what the recorded version says.
_MISMATCH = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn, psycopg.errors.UndefinedObject,
             psycopg.errors.DuplicateTable, psycopg.errors.DuplicateColumn, psycopg.errors.DuplicateObject)


def migration_failed(where: str, version: int, exc: psycopg.Error) -> StoreError:
    """One line for a failed migration (its transaction is rolled back by the driver)."""
    reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    what = "creating the tables" if version == 0 else f"the upgrade from schema version {version} to {_schema.CURRENT}"
    if isinstance(exc, psycopg.errors.InsufficientPrivilege):
        todo = "connect as a role that may create tables in the schema (its owner, say)"
    elif isinstance(exc, _MISMATCH):
        todo = ("the tables do not match the schema version qflow_meta records (edited by hand, or restored in "
                "part): restore the pg_dump taken before, or ask the person who changed them")
    else:
        todo = "fix the cause and try again"
    return StoreError(f"{what} of {where} failed ({reason}); it was rolled back and nothing changed; {todo}")


def nothing() -> Op:
    """No statement: a store runs it to do only what precedes every operation."""
    return None
    yield  # a generator, like every operation


def older(where: str, version: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"the store {where} has schema version {version}, older than the {_schema.CURRENT} this qflow needs; "
        f"run 'qflow db upgrade --store {where}' (after a pg_dump of the database)")


def schema_version() -> Op:
    rows = yield Q("SELECT value FROM qflow_meta WHERE key = 'schema_version'")
    return int(rows[0][0]) if rows else 0


# -- writing -----------------------------------------------------------------------------

# Many rows go in as one statement over arrays (unnest): one parse, one plan and one
# message however many incidents a batch holds, instead of a statement per row.
_EVENT_TYPES = ("text", "integer", "timestamptz", "text", "json")
_INCIDENT_COLUMNS = ("id", "seq", "stage", "open", "team", "severity", "category", "owner", "place", "reported_at",
                     "updated_at", "sort_at", "sort_n", "min_due", "clock_dues", "external_id", "dedup_key", "body")
_INCIDENT_TYPES = ("text", "integer", "text", "boolean", "text", "text", "text", "text", "text", "timestamptz",
                   "timestamptz", "timestamptz", "bigint", "timestamptz", "boolean", "text", "text", "json")
_CLOCK_TYPES = ("text", "text", "timestamptz", "integer")
_OUTBOX_COLUMNS = ("id", "incident_id", "channel", "backend", "created_at", "next_attempt_at", "status", "attempts",
                   "body")
_OUTBOX_TYPES = ("text", "text", "text", "text", "timestamptz", "timestamptz", "text", "integer", "json")


def _unnest(types: Sequence[str]) -> str:
    return f"SELECT * FROM unnest({', '.join(f'%b::{t}[]' for t in types)})"


def _columns(rows: Sequence[Any], columns: int | Sequence[str]) -> list[list[Any]]:
    """Rows as one list per column: tuples by position, mappings by the column names."""
    if isinstance(columns, int):
        return [[r[i] for r in rows] for i in range(columns)]
    return [[r[c] for r in rows] for c in columns]


_UPSERT_INCIDENTS = (
    f"INSERT INTO qflow_incidents ({', '.join(_INCIDENT_COLUMNS)}) {_unnest(_INCIDENT_TYPES)} "
    "ON CONFLICT (id) DO UPDATE SET "
    + ", ".join(f"{c} = EXCLUDED.{c}" for c in _INCIDENT_COLUMNS[1:]))
# Rows the write holds locked are updated in place. The upsert would first try an
# insert of each: a speculative index insertion, and a number drawn from the shared
# ord sequence (the column default), both thrown away on the conflict.
_UPDATE_INCIDENTS = (
    f"UPDATE qflow_incidents i SET {', '.join(f'{c} = u.{c}' for c in _INCIDENT_COLUMNS[1:])} "
    f"FROM ({_unnest(_INCIDENT_TYPES)}) AS u ({', '.join(_INCIDENT_COLUMNS)}) WHERE i.id = u.id")


def next_id() -> Op:
    while True:
        rows = yield Q("SELECT n, EXISTS (SELECT 1 FROM qflow_incidents WHERE id = 'INC-' || n) "
                       "FROM (SELECT nextval('qflow_incident_ids') AS n) s")
        n, taken = rows[0]
        if not taken:
            return f"INC-{n}"


def write(codec: Codec, writes: Sequence[Write], projections: Mapping[str, Projection], *,
          retry: bool = False) -> Op:
    if not writes:
        return None
    ids = sorted({w.state.id for w in writes})
    for w in writes:  # refused before anything is sent
        for name in w.rows:
            if name not in projections:
                raise StoreError(undeclared(name))
    # Every row the write looks up is found by incident id, the first column of each
    # table's primary key. Without statistics (a fresh table, autovacuum not yet round
    # or off) the planner guesses that `= ANY(50 ids)` matches a quarter of a table and
    # reads all of it for each DELETE, a cost growing with the store; with seq scans off
    # it takes the index it takes anyway once the table is analyzed.
    yield Q("SET LOCAL enable_seqscan TO off", fetch=False)
    # Row locks in id order: two batches over the same incidents queue instead of deadlocking.
    # This is the one statement whose answer the write waits for; everything after it goes
    # to the server in one pipeline with the COMMIT.
    projected: dict[str, dict[str, Any]] = {}
    for w in writes:
        for name, value in w.rows.items():
            projected.setdefault(name, {})[w.state.id] = value
    names = sorted(projected)
    # The projection rows stored for these incidents come back with their seqs, in the
    # same answer: rows equal to them are left as they are (a tick's step changes no
    # fact), which spares their deletion, their insertion and every index entry.
    # So are the due moments stored (see _due_keys), for writes that record them.
    rows = yield Q("SELECT id, seq, clock_dues, " + (_STORED_DUES if any(w.dues is not None for w in writes)
                                                     else "NULL")
                   + "".join(f", ({_stored_rows(projections[n])})" for n in names)
                   + " FROM qflow_incidents i WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,))
    stored = {r[0]: r[1] for r in rows}
    # incident -> its deadline rows as _due_keys gives them, where they are due moments
    stored_dues = {r[0]: r[3] or [] for r in rows if r[2]}
    stored_rows = {name: {r[0]: r[4 + k] or [] for r in rows} for k, name in enumerate(names)}
    pending: dict[str, int] = {}
    problem = None
    for w in writes:
        iid = w.state.id
        last = pending.get(iid, stored.get(iid, 0))
        for i, event in enumerate(w.events):
            if problem is None and (event.incident_id != iid or event.seq != last + 1 + i):
                problem = (f"{iid}: event seq {event.seq} does not follow {last + i}; "
                           "reload the incident and try again")
        if problem is None and not w.events and w.state.seq != last:
            # A write of timers alone must not put back a state someone has moved on from.
            problem = (f"{iid}: state at seq {w.state.seq} is stale (the log is at {last}); "
                       "reload the incident and try again")
        pending[iid] = last + len(w.events)
    if problem is not None:
        if retry and (yield from _already_written(codec, writes)):
            return None  # the first try committed; its answer was lost with the connection
        raise ConcurrencyError(problem)
    keyed = sorted({(key, w.state.id, w.dedup_since) for w in writes
                    if w.state.id not in stored and (key := new_with_key(w)) is not None})
    if keyed:
        yield from _check_dedup(keyed)

    events = [codec.event_row(e) for w in writes for e in w.events]
    if events:
        yield Q(f"INSERT INTO qflow_events (incident_id, seq, at, type, body) {_unnest(_EVENT_TYPES)}",
                _columns(events, len(_EVENT_TYPES)), fetch=False,
                conflict=("qflow_events_pkey", f"{events[0][0]}: another writer recorded it first; "
                          "reload the incident and try again"))
    last_state = {w.state.id: w.state for w in writes}
    last_dues = {w.state.id: w.dues for w in writes}
    fresh = [codec.state_row(s, last_dues[iid]) for iid, s in last_state.items() if iid not in stored]
    if fresh:
        yield Q(_UPSERT_INCIDENTS, _columns(fresh, _INCIDENT_COLUMNS), fetch=False)
    known = [codec.state_row(s, last_dues[iid]) for iid, s in last_state.items() if iid in stored]
    if known:
        yield Q(_UPDATE_INCIDENTS, _columns(known, _INCIDENT_COLUMNS), fetch=False)
    yield from _claim_external(writes)
    # A write with due moments (Write.dues) replaces the rows with them. Without them the
    # rows are the decision's deadlines: a state that keeps the decision it was read
    # with, as open or closed as it was, has the rows it was read with, unless those
    # were due moments; due moments equal to those stored leave them as they are.
    moved = []
    deadlines = []
    for iid, s in last_state.items():
        dues = last_dues[iid]
        if dues is None:
            if iid in stored_dues or not codec.same_clocks(s, stored.get(iid)):
                moved.append(s)
                if s.decision is not None and s.stage.value not in CLOSED:
                    deadlines += [(iid, d.clock, d.due, offset(d.due))
                                  for d in {d.clock: d for d in reversed(s.decision.deadlines)}.values()]
            continue
        unique = {d.clock: d for d in reversed(dues)}.values()
        if iid in stored_dues and stored_dues[iid] == _due_keys(unique):  # none stored for a new incident
            continue
        moved.append(s)
        deadlines += [(iid, d.clock, d.at, offset(d.at)) for d in unique]
    if moved:
        yield Q("DELETE FROM qflow_deadlines WHERE incident_id = ANY(%s)", ([s.id for s in moved],), fetch=False)
    if deadlines:
        yield Q(f"INSERT INTO qflow_deadlines (incident_id, clock, due, due_offset) {_unnest(_CLOCK_TYPES)}",
                _columns(deadlines, 4), fetch=False)
    timers: dict[str, Sequence[Timer]] = {w.state.id: w.timers for w in writes if w.timers is not None}
    if timers:
        # Replacing an incident's timers drops their claims with them.
        yield Q("DELETE FROM qflow_timers WHERE incident_id = ANY(%s)", (sorted(timers),), fetch=False)
        rows_t = []
        for iid, ts in timers.items():
            earliest: dict[str, Timer] = {}
            for t in ts:
                if t.key not in earliest or t.at < earliest[t.key].at:
                    earliest[t.key] = t
            rows_t.extend((iid, t.key, t.at, offset(t.at)) for t in earliest.values())
        if rows_t:
            yield Q(f"INSERT INTO qflow_timers (incident_id, key, at, at_offset) {_unnest(_CLOCK_TYPES)}",
                    _columns(rows_t, 4), fetch=False)
    for name in names:
        p = projections[name]
        had = stored_rows[name]
        gone, values = [], []
        for iid, given in projected[name].items():
            rows_now = projection_sql.row_values(p, iid, given)
            before = had.get(iid)
            if before:
                if _same_rows(p, before, rows_now):
                    continue
                gone.append(iid)
            values.extend(rows_now)
        if gone:
            yield Q(f"DELETE FROM {projection_sql.table(p)} WHERE qf_incident = ANY(%s)", (sorted(gone),),
                    fetch=False)
        if values:
            yield Q(projection_sql.insert_many_statement(p, "postgresql"),
                    projection_sql.many_values(p, values, "postgresql"), fetch=False)
    outbox = [codec.outbox_row(m) for w in writes for m in w.outbox]
    if outbox:
        yield Q(f"""INSERT INTO qflow_outbox (id, incident_id, channel, backend, created_at, next_attempt_at,
                                             status, attempts, body) {_unnest(_OUTBOX_TYPES)}
                    ON CONFLICT (id) DO NOTHING""", _columns(outbox, _OUTBOX_COLUMNS), fetch=False)
    return None


#: An incident's deadline rows as _due_keys gives them (NULL for none).
_STORED_DUES = ("(SELECT array_agg(d.clock || ' ' || (extract(epoch FROM d.due) * 1000000)::bigint || ' '"
                " || d.due_offset ORDER BY d.clock) FROM qflow_deadlines d WHERE d.incident_id = i.id)")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_MICROSECOND = timedelta(microseconds=1)


def _due_keys(dues: Iterable[Due]) -> list[str]:
    """Due moments as _STORED_DUES reads their rows: ``clock microseconds offset``, by clock."""
    return sorted(f"{d.clock} {(d.at - _EPOCH) // _MICROSECOND} {offset(d.at)}" for d in dues)


def _stored_rows(p: Projection) -> str:
    """A subquery giving an incident's rows of *p* as a JSON array of arrays, in order."""
    cols = ", ".join(f'p."{c}"' for c in p.column_names())
    return (f"SELECT json_agg(json_build_array(p.qf_n, {cols}) ORDER BY p.qf_n) "
            f"FROM {projection_sql.table(p)} p WHERE p.qf_incident = i.id")


def _same_rows(p: Projection, stored: Sequence[Sequence[Any]], rows: Sequence[tuple[Any, ...]]) -> bool:
    """Whether *rows* (``row_values``) are what is stored: each new value cast as
    ``many_values`` casts it for its column, then compared with the value read back
    (PostgreSQL writes a double so that it reads back the same). Anything unsure
    counts as changed, which only costs the rewrite."""
    if len(stored) != len(rows):
        return False
    casts = [projection_sql.COLUMN_CAST[t] for _, t in p.columns]
    for have, row in zip(stored, rows, strict=True):
        if have[0] != row[1] or len(have) != len(row) - 1:
            return False
        for cast, old, new in zip(casts, have[1:], row[2:], strict=True):
            if new is None or old is None:
                if new is not old:
                    return False
                continue
            try:
                if cast(new) != old:
                    return False
            except (TypeError, ValueError):
                return False
    return True


def _claim_external(writes: Sequence[Write]) -> Op:
    """Record each external id for its incident; one already held by another incident
    (in this batch, or committed by anyone, even a moment ago) refuses the batch."""
    wanted: dict[str, str] = {}
    for w in writes:
        ext, iid = w.state.incident.external_id, w.state.id
        if ext is None:
            continue
        holder = wanted.setdefault(ext, iid)
        if holder != iid:
            raise external_conflict(iid, ext, holder)
    if not wanted:
        return None
    yield Q("INSERT INTO qflow_external (external_id, incident_id) SELECT * FROM unnest(%s::text[], %s::text[]) "
            "ON CONFLICT DO NOTHING", (list(wanted), list(wanted.values())), fetch=False)
    # A fresh statement sees what a concurrent writer committed while we waited on it.
    rows = yield Q("SELECT external_id, incident_id FROM qflow_external WHERE external_id = ANY(%s)",
                   (sorted(wanted),))
    for ext, holder in sorted(rows):
        if holder != wanted[ext]:
            raise external_conflict(wanted[ext], ext, holder)
    return None


def _check_dedup(keyed: Sequence[tuple[str, str, datetime]]) -> Op:
    """Refuse new incidents (``(dedup key, id, window start)``, sorted) for whose key
    an open incident within the window was committed after the engine looked.

    The look-up is serialised per key with an advisory lock held to the end of the
    transaction: a second writer of the same key waits here until the first commits,
    and its look-up, a statement of its own (READ COMMITTED takes a fresh snapshot for
    each), then sees that incident. The keys are locked in sorted order (a plain scan
    of the array evaluates the lock row by row, in order), so two batches over the
    same keys queue instead of deadlocking."""
    keys = sorted({key for key, _, _ in keyed})
    yield Q("SELECT pg_advisory_xact_lock(%s, hashtext(current_schema() || ':' || k)) FROM unnest(%s::text[]) k",
            (_schema.DEDUP_LOCK, keys), fetch=False)
    rows = yield Q("SELECT k.id, found.id FROM unnest(%s::text[], %s::text[], %s::timestamptz[]) AS k (key, id, since)"
                   " CROSS JOIN LATERAL (SELECT id FROM qflow_incidents WHERE dedup_key = k.key AND open"
                   " AND reported_at >= k.since ORDER BY sort_at DESC, sort_n DESC, id DESC LIMIT 1) found",
                   ([k for k, _, _ in keyed], [i for _, i, _ in keyed], [s for _, _, s in keyed]))
    owners = dict(rows)
    for key, iid, _ in keyed:
        if iid in owners:
            raise dedup_conflict(iid, key, owners[iid])
    return None


def _already_written(codec: Codec, writes: Sequence[Write]) -> Op:
    wanted = [e for w in writes for e in w.events]
    if not wanted:
        return False
    rows = yield Q("SELECT body FROM qflow_events WHERE (incident_id, seq) IN "
                   "(SELECT * FROM unnest(%s::text[], %s::int[]))",
                   ([e.incident_id for e in wanted], [e.seq for e in wanted]))
    have = {(e.incident_id, e.seq): e for e in (codec.event(r[0]) for r in rows)}
    return all(have.get((e.incident_id, e.seq)) == e for e in wanted)


# -- reading -----------------------------------------------------------------------------


def get(codec: Codec, incident_id: str) -> Op:
    rows = yield Q("SELECT body FROM qflow_incidents WHERE id = %s", (incident_id,))
    return codec.read_state(rows[0][0]) if rows else None


def events(codec: Codec, incident_id: str) -> Op:
    rows = yield Q("SELECT body FROM qflow_events WHERE incident_id = %s ORDER BY seq", (incident_id,))
    return tuple(codec.event(r[0]) for r in rows)


def read_many(codec: Codec, incident_ids: Sequence[str]) -> Op:
    """The states and logs of *incident_ids* (a tick's batch) in one statement: one
    round trip instead of two per incident, and one snapshot for states and logs."""
    ids = list(dict.fromkeys(incident_ids))
    if not ids:
        return {}
    rows = yield Q("SELECT i.id, i.body, (SELECT json_agg(e.body ORDER BY e.seq) FROM qflow_events e"
                   " WHERE e.incident_id = i.id) FROM qflow_incidents i WHERE i.id = ANY(%s)", (ids,))
    found = {r[0]: (codec.read_state(r[1]), tuple(codec.event(b) for b in _loaded_list(r[2]))) for r in rows}
    return {iid: found[iid] for iid in ids if iid in found}


def _loaded_list(body: Any) -> list[Any]:
    if body is None:
        return []
    return json.loads(body) if isinstance(body, (str, bytes)) else body


def find_dedup(dedup_key: str, since: datetime) -> Op:
    rows = yield Q("SELECT id FROM qflow_incidents WHERE dedup_key = %s AND open AND reported_at >= %s "
                   "ORDER BY sort_at DESC, sort_n DESC, id DESC LIMIT 1", (dedup_key, since))
    return rows[0][0] if rows else None


def count(codec: Codec, q: IncidentQuery) -> Op:
    if q.overdue_at is not None:  # decided on the states (see query)
        found = yield from query(codec, attrs.evolve(q, limit=None))
        return len(found)
    where, params = _where(attrs.evolve(q, limit=None))
    rows = yield Q(f"SELECT count(*) FROM qflow_incidents WHERE {where}", params)
    return rows[0][0]


def aggregate(projection: Projection, measures: Sequence[Measure], group_by: Sequence[Any],
              where: Sequence[Filter]) -> Op:
    """``projection_sql.aggregate`` in PostgreSQL. Which statements it runs does not
    depend on their answers, so a first pass collects them, they are sent together in
    one snapshot (a percentile agrees with the counts beside it), and a second pass
    builds the result from the answers."""
    asked: list[tuple[str, Any]] = []
    projection_sql.aggregate(lambda sql, params: asked.append((sql, params)) or [], projection, measures,
                             group_by, where, "postgresql")
    if len(asked) > 1:
        yield Q("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY", fetch=False)
    answers = []
    for sql, params in asked:
        answers.append((yield Q(sql, params)))
    replay = iter(answers)
    return projection_sql.aggregate(lambda sql, params: next(replay), projection, measures, group_by, where,
                                    "postgresql")


def declare(projections: Sequence[Projection]) -> Op:
    """Create the tables of *projections* (idempotent), add the columns a newer
    declaration has, and move in the rows an older qflow kept as JSON."""
    yield Q("SELECT pg_advisory_xact_lock(%s)", (_schema.LOCK_KEY,))
    rows = yield Q("SELECT to_regclass('qflow_projection_rows') IS NOT NULL")
    legacy = rows[0][0]
    for p in projections:
        for ddl in projection_sql.create_statements(p, "postgresql"):
            yield Q(ddl)
        table = projection_sql.table(p)
        rows = yield Q("SELECT column_name, data_type FROM information_schema.columns "
                       "WHERE table_schema = current_schema() AND table_name = %s", (table,))
        have = dict(rows)
        for column, kind in p.columns:
            wanted = projection_sql.column_type(kind, "postgresql")
            if column not in have:
                yield Q(f'ALTER TABLE {table} ADD COLUMN "{column}" {wanted}')
            elif have[column] != wanted.lower():
                raise StoreError(
                    f"projection {p.name}: column {column} is {have[column]} in the database but declared "
                    f"{kind}; drop the table {table} (its rows are rebuilt as incidents change) or keep the type")
        if legacy:
            cols = ", ".join(f'"{c}"' for c in p.column_names())
            values = ", ".join(f"(body->>'{c}')::{projection_sql.column_type(k, 'postgresql')}" for c, k in p.columns)
            yield Q(f"INSERT INTO {table} (qf_incident, qf_n, {cols}) SELECT incident_id, n, {values} "
                    "FROM qflow_projection_rows WHERE projection = %s ON CONFLICT DO NOTHING", (p.name,))
            yield Q("DELETE FROM qflow_projection_rows WHERE projection = %s", (p.name,))


def without_dues() -> Op:
    rows = yield Q("SELECT count(*) FROM qflow_incidents WHERE open AND NOT clock_dues")
    return rows[0][0]


def find_external(external_id: str) -> Op:
    rows = yield Q("SELECT incident_id FROM qflow_external WHERE external_id = %s", (external_id,))
    return rows[0][0] if rows else None


def query(codec: Codec, q: IncidentQuery) -> Op:
    where, params = _where(q)
    sql = f"SELECT body FROM qflow_incidents WHERE {where} ORDER BY sort_at, sort_n, id"
    if q.overdue_at is not None:
        # A row with due moments (clock_dues) is overdue by min_due, their earliest (the
        # SQL); one without them is read by its decision's deadlines (see Write.dues).
        rows = yield Q(sql.replace("SELECT body", "SELECT body, clock_dues", 1), params)
        return [s for s, exact in ((codec.state(r[0]), r[1]) for r in rows) if exact or q.matches(s)][:q.limit]
    if q.limit is not None:
        sql += " LIMIT %s"
        params.append(q.limit)
    rows = yield Q(sql, params)
    return [codec.state(r[0]) for r in rows]


def _where(q: IncidentQuery) -> tuple[str, list[Any]]:
    where, params = ["TRUE"], []
    if q.open_only:
        where.append("open")
    if q.stages is not None:
        where.append("stage = ANY(%s)")
        params.append([s.value for s in q.stages])
    for name in ("team", "severity", "category", "owner", "place"):
        value = getattr(q, name)
        if value is not None:
            where.append(f"{name} = %s")
            params.append(value)
    if q.reported_from is not None:
        where.append("reported_at >= %s")
        params.append(q.reported_from)
    if q.reported_until is not None:
        where.append("reported_at < %s")
        params.append(q.reported_until)
    if q.overdue_at is not None:
        where.append("open AND min_due < %s")
        params.append(q.overdue_at)
    return " AND ".join(where), params


def due(codec: Codec, until: datetime) -> Op:
    # Due moments (clock_dues) are due as they are; a decision's deadline while it is
    # still outstanding (not met, even late), which is read off the state.
    rows = yield Q("SELECT d.due, d.incident_id, d.clock, d.due_offset, "
                   "CASE WHEN i.clock_dues THEN NULL ELSE i.body END FROM qflow_deadlines d "
                   "JOIN qflow_incidents i ON i.id = d.incident_id WHERE d.due <= %s "
                   "ORDER BY d.due, d.incident_id, d.clock", (until,))
    states: dict[str, IncidentState] = {}
    out = []
    for at, iid, clock, at_offset, body in rows:
        if body is None:
            out.append(Due(local(at, at_offset), iid, clock))
            continue
        state = states.get(iid)
        if state is None:
            state = states[iid] = codec.state(body)
        if outstanding(state, clock):
            out.append(Due(local(at, at_offset), iid, clock))
    return out


# -- timers ------------------------------------------------------------------------------

# SKIP LOCKED: a worker never waits for rows another worker is claiming right now, and
# never gets them; the lease hands a crashed worker's timers on once it has passed.
_FREE = "(claimed_by IS NULL OR claimed_by = %(worker)s OR lease_until <= %(now)s)"


def claim_timers(codec: Codec, until: datetime, worker: str, limit: int, lease_until: datetime | None) -> Op:
    # The update finds the locked rows by ctid (a TID scan): joined on the key, the
    # planner hashed the whole table for every claim.
    rows = yield Q(f"""WITH c AS (
                          SELECT ctid FROM qflow_timers
                          WHERE at <= %(now)s AND {_FREE}
                          ORDER BY at, incident_id, key LIMIT %(limit)s
                          FOR UPDATE SKIP LOCKED)
                       UPDATE qflow_timers t SET claimed_by = %(worker)s, lease_until = %(lease)s
                       WHERE t.ctid = ANY(ARRAY(SELECT ctid FROM c))
                       RETURNING t.incident_id, t.key, t.at, t.at_offset""",
                   {"now": until, "worker": worker, "limit": limit, "lease": lease_until})
    return sorted((codec.timer(r) for r in rows), key=lambda t: (t.at, t.incident_id, t.key))


def release(worker: str) -> Op:
    yield Q("UPDATE qflow_timers SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = %s", (worker,),
            fetch=False)
    yield Q("UPDATE qflow_outbox SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = %s", (worker,),
            fetch=False)


def timers(codec: Codec, incident_id: str | None) -> Op:
    if incident_id is None:
        rows = yield Q("SELECT incident_id, key, at, at_offset FROM qflow_timers ORDER BY at, incident_id, key")
    else:
        rows = yield Q("SELECT incident_id, key, at, at_offset FROM qflow_timers WHERE incident_id = %s "
                       "ORDER BY at, key",
                       (incident_id,))
    return [codec.timer(r) for r in rows]


# -- outbox ------------------------------------------------------------------------------


def claim_outbox(codec: Codec, now: datetime, worker: str, limit: int, lease_until: datetime | None) -> Op:
    rows = yield Q(f"""WITH c AS (
                          SELECT ctid FROM qflow_outbox
                          WHERE status = 'pending' AND next_attempt_at <= %(now)s AND {_FREE}
                          ORDER BY next_attempt_at, created_at, id LIMIT %(limit)s
                          FOR UPDATE SKIP LOCKED)
                       UPDATE qflow_outbox o SET claimed_by = %(worker)s, lease_until = %(lease)s
                       WHERE o.ctid = ANY(ARRAY(SELECT ctid FROM c))
                       RETURNING o.body""",
                   {"now": now, "worker": worker, "limit": limit, "lease": lease_until})
    found = [codec.outbox(r[0]) for r in rows]
    return sorted(found, key=lambda m: (m.next_attempt_at, m.created_at, m.id))


def record_delivery(codec: Codec, message: OutboxMessage, attempt: DeliveryAttempt, w: Write | None,
                    projections: Mapping[str, Projection], *, retry: bool = False) -> Op:
    if retry:  # the first try may have committed; then its attempt is stored
        rows = yield Q("SELECT body FROM qflow_attempts WHERE message_id = %s", (message.id,))
        for a in (codec.attempt(r[0]) for r in rows):
            if (a.at, a.worker, a.ok, a.error) == (attempt.at, attempt.worker, attempt.ok, attempt.error):
                return not a.stale
    # The row lock orders two workers recording the same message.
    rows = yield Q("SELECT status, claimed_by FROM qflow_outbox WHERE id = %s FOR UPDATE", (message.id,))
    held = not rows or (rows[0][0] == "pending" and rows[0][1] == attempt.worker)
    if held:
        if w is not None:
            yield from write(codec, [w], projections, retry=retry)
        row = codec.outbox_row(message)
        yield Q("""INSERT INTO qflow_outbox (id, incident_id, channel, backend, created_at, next_attempt_at,
                                            status, attempts, body)
                   VALUES (%(id)s, %(incident_id)s, %(channel)s, %(backend)s, %(created_at)s,
                           %(next_attempt_at)s, %(status)s, %(attempts)s, %(body)s)
                   ON CONFLICT (id) DO UPDATE SET next_attempt_at = EXCLUDED.next_attempt_at,
                     status = EXCLUDED.status, attempts = EXCLUDED.attempts, body = EXCLUDED.body,
                     claimed_by = NULL, lease_until = NULL""", row, fetch=False)
    last = yield Q("SELECT COALESCE(MAX(number), 0) FROM qflow_attempts WHERE message_id = %s", (message.id,))
    stored = attrs.evolve(attempt, number=max(attempt.number, last[0][0] + 1), stale=not held)
    yield Q("INSERT INTO qflow_attempts (message_id, number, at, ok, body) VALUES (%s, %s, %s, %s, %s)",
            codec.attempt_row(stored), fetch=False)
    return held


def outbox(codec: Codec, incident_id: str | None, status: str | None) -> Op:
    where, params = ["TRUE"], []
    if incident_id is not None:
        where.append("incident_id = %s")
        params.append(incident_id)
    if status is not None:
        where.append("status = %s")
        params.append(status)
    rows = yield Q(f"SELECT body FROM qflow_outbox WHERE {' AND '.join(where)} ORDER BY created_at, id", params)
    return [codec.outbox(r[0]) for r in rows]


def attempts(codec: Codec, message_id: str) -> Op:
    rows = yield Q("SELECT body FROM qflow_attempts WHERE message_id = %s ORDER BY number", (message_id,))
    return [codec.attempt(r[0]) for r in rows]


# -- documents ---------------------------------------------------------------------------


def save_document(codec: Codec, kind: str, doc_id: str, data: Mapping[str, Any], version: int) -> Op:
    rows = yield Q("SELECT version FROM qflow_documents WHERE kind = %s AND id = %s FOR UPDATE", (kind, doc_id))
    have = rows[0][0] if rows else 0
    if have != version - 1:
        raise ConcurrencyError(f"{kind} {doc_id} is at version {have}, not {version - 1}; reload it and try again")
    body = codec.dumps(codec.conv.unstructure(dict(data)))
    if have == 0:
        try:
            yield Q("INSERT INTO qflow_documents (kind, id, version, body) VALUES (%s, %s, %s, %s)",
                    (kind, doc_id, version, body))
        except psycopg.errors.UniqueViolation:
            raise ConcurrencyError(f"{kind} {doc_id} is at version 1, not 0; reload it and try again") from None
    else:
        yield Q("UPDATE qflow_documents SET version = %s, body = %s WHERE kind = %s AND id = %s",
                (version, body, kind, doc_id))


def document(kind: str, doc_id: str) -> Op:
    rows = yield Q("SELECT version, body FROM qflow_documents WHERE kind = %s AND id = %s", (kind, doc_id))
    return (rows[0][0], rows[0][1]) if rows else None


def documents(kind: str) -> Op:
    rows = yield Q("SELECT id, version, body FROM qflow_documents WHERE kind = %s ORDER BY id", (kind,))
    return [(r[0], r[1], r[2]) for r in rows]
