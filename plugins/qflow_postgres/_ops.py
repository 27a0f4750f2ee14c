"""Every store operation, written once for the sync and the async connection.

An operation is a generator: it yields :class:`Q` (a statement and its parameters)
and is sent back the rows. ``_sync`` and ``_async`` drive the same generators with
psycopg's blocking and asyncio APIs, inside one transaction each, so the two stores
cannot drift apart. A driver retries an operation from a fresh generator after a
lost connection; ``retry=True`` tells a write that its first try may have committed.
"""

from __future__ import annotations

from collections.abc import Generator, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs
import psycopg.errors

from qflow import ConcurrencyError, DeliveryAttempt, IncidentQuery, OutboxMessage, Timer, Write
from qflow.store import Due, projection_rows

from qflow_postgres import _schema
from qflow_postgres._codec import Codec, local, offset
from qflow_postgres._errors import SchemaVersionError, StoreError

__all__ = ["Op", "Q"]


@attrs.frozen
class Q:
    sql: str
    params: Any = None
    many: bool = False


Op = Generator[Q, list[tuple[Any, ...]], Any]


# -- schema ------------------------------------------------------------------------------


def bootstrap(where: str, *, upgrade: bool) -> Op:
    """Create the tables in an empty schema, or with *upgrade* migrate them forward;
    return ``(version found, version now)``. A newer schema is refused."""
    yield Q("SELECT pg_advisory_xact_lock(%s)", (_schema.LOCK_KEY,))
    rows = yield Q("SELECT to_regclass('qflow_meta') IS NOT NULL, to_regclass('qflow_incidents') IS NOT NULL")
    has_meta, has_tables = rows[0]
    if not has_meta:
        if has_tables:
            raise StoreError(
                f"{where} has a qflow_incidents table but no qflow schema version: it is not a qflow "
                "store; give ?schema=NAME of a qflow store or of a new schema")
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
    for step in range(version + 1, _schema.CURRENT + 1):
        for ddl in _schema.MIGRATIONS[step]:
            yield Q(ddl)
    yield Q("UPDATE qflow_meta SET value = %s WHERE key = 'schema_version'", (str(_schema.CURRENT),))
    return (version, _schema.CURRENT)


def older(where: str, version: int) -> SchemaVersionError:
    return SchemaVersionError(
        f"the store {where} has schema version {version}, older than the {_schema.CURRENT} this qflow needs; "
        f"run 'qflow db upgrade --store {where}' (after a pg_dump of the database)")


def schema_version() -> Op:
    rows = yield Q("SELECT value FROM qflow_meta WHERE key = 'schema_version'")
    return int(rows[0][0]) if rows else 0


# -- writing -----------------------------------------------------------------------------


def next_id() -> Op:
    while True:
        rows = yield Q("SELECT n, EXISTS (SELECT 1 FROM qflow_incidents WHERE id = 'INC-' || n) "
                       "FROM (SELECT nextval('qflow_incident_ids') AS n) s")
        n, taken = rows[0]
        if not taken:
            return f"INC-{n}"


def write(codec: Codec, writes: Sequence[Write], *, retry: bool = False) -> Op:
    if not writes:
        return None
    ids = sorted({w.state.id for w in writes})
    # Row locks in id order: two batches over the same incidents queue instead of deadlocking.
    rows = yield Q("SELECT id, seq FROM qflow_incidents WHERE id = ANY(%s) ORDER BY id FOR UPDATE", (ids,))
    stored = {r[0]: r[1] for r in rows}
    pending: dict[str, int] = {}
    problem = None
    for w in writes:
        iid = w.state.id
        last = pending.get(iid, stored.get(iid, 0))
        for i, event in enumerate(w.events):
            if problem is None and (event.incident_id != iid or event.seq != last + 1 + i):
                problem = (f"{iid}: event seq {event.seq} does not follow {last + i}; "
                           "reload the incident and try again")
        pending[iid] = last + len(w.events)
    if problem is not None:
        if retry and (yield from _already_written(codec, writes)):
            return None  # the first try committed; its answer was lost with the connection
        raise ConcurrencyError(problem)

    events = [codec.event_row(e) for w in writes for e in w.events]
    if events:
        try:
            yield Q("INSERT INTO qflow_events (incident_id, seq, at, type, body) VALUES (%s, %s, %s, %s, %s)",
                    events, many=True)
        except psycopg.errors.UniqueViolation:
            # Another worker created the same new incident in the meantime.
            raise ConcurrencyError(f"{events[0][0]}: another writer recorded it first; "
                                   "reload the incident and try again") from None
    last_state = {w.state.id: w.state for w in writes}
    state_rows = [codec.state_row(s) for s in last_state.values()]
    yield Q("""INSERT INTO qflow_incidents
               (id, seq, stage, open, team, severity, category, owner, place, reported_at, updated_at,
                sort_at, sort_n, min_due, external_id, dedup_key, body)
               VALUES (%(id)s, %(seq)s, %(stage)s, %(open)s, %(team)s, %(severity)s, %(category)s, %(owner)s,
                       %(place)s, %(reported_at)s, %(updated_at)s, %(sort_at)s, %(sort_n)s, %(min_due)s,
                       %(external_id)s, %(dedup_key)s, %(body)s)
               ON CONFLICT (id) DO UPDATE SET seq = EXCLUDED.seq, stage = EXCLUDED.stage, open = EXCLUDED.open,
                 team = EXCLUDED.team, severity = EXCLUDED.severity, category = EXCLUDED.category,
                 owner = EXCLUDED.owner, place = EXCLUDED.place, reported_at = EXCLUDED.reported_at,
                 updated_at = EXCLUDED.updated_at, sort_at = EXCLUDED.sort_at, sort_n = EXCLUDED.sort_n,
                 min_due = EXCLUDED.min_due, external_id = EXCLUDED.external_id,
                 dedup_key = EXCLUDED.dedup_key, body = EXCLUDED.body""", state_rows, many=True)
    yield from _claim_external(writes)
    yield Q("DELETE FROM qflow_deadlines WHERE incident_id = ANY(%s)", (ids,))
    deadlines = [(s.id, d.clock, d.due, offset(d.due)) for s in last_state.values()
                 if s.decision is not None and s.stage.value not in ("closed", "rejected")
                 for d in {d.clock: d for d in reversed(s.decision.deadlines)}.values()]
    if deadlines:
        yield Q("INSERT INTO qflow_deadlines (incident_id, clock, due, due_offset) VALUES (%s, %s, %s, %s)", deadlines, many=True)
    timers: dict[str, Sequence[Timer]] = {w.state.id: w.timers for w in writes if w.timers is not None}
    if timers:
        # Replacing an incident's timers drops their claims with them.
        yield Q("DELETE FROM qflow_timers WHERE incident_id = ANY(%s)", (sorted(timers),))
        rows_t = []
        for iid, ts in timers.items():
            earliest: dict[str, Timer] = {}
            for t in ts:
                if t.key not in earliest or t.at < earliest[t.key].at:
                    earliest[t.key] = t
            rows_t.extend((iid, t.key, t.at, offset(t.at)) for t in earliest.values())
        if rows_t:
            yield Q("INSERT INTO qflow_timers (incident_id, key, at, at_offset) VALUES (%s, %s, %s, %s)",
                    rows_t, many=True)
    projected: dict[tuple[str, str], list[Any]] = {}
    for w in writes:
        for name, value in w.rows.items():
            projected[(name, w.state.id)] = projection_rows(value)
    if projected:
        names = sorted({n for n, _ in projected})
        for name in names:
            yield Q("DELETE FROM qflow_projection_rows WHERE projection = %s AND incident_id = ANY(%s)",
                    (name, sorted(i for n, i in projected if n == name)))
        rows_p = [(name, iid, n, codec.dumps(codec.conv.unstructure(dict(row))))
                  for (name, iid), rows in projected.items() for n, row in enumerate(rows)]
        if rows_p:
            yield Q("INSERT INTO qflow_projection_rows (projection, incident_id, n, body) VALUES (%s, %s, %s, %s)",
                    rows_p, many=True)
    outbox = [codec.outbox_row(m) for w in writes for m in w.outbox]
    if outbox:
        yield Q("""INSERT INTO qflow_outbox (id, incident_id, channel, backend, created_at, next_attempt_at,
                                            status, attempts, body)
                   VALUES (%(id)s, %(incident_id)s, %(channel)s, %(backend)s, %(created_at)s,
                           %(next_attempt_at)s, %(status)s, %(attempts)s, %(body)s)
                   ON CONFLICT (id) DO NOTHING""", outbox, many=True)
    return None


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
            raise _external_taken(iid, ext, holder)
    if not wanted:
        return None
    yield Q("INSERT INTO qflow_external (external_id, incident_id) VALUES (%s, %s) ON CONFLICT DO NOTHING",
            list(wanted.items()), many=True)
    # A fresh statement sees what a concurrent writer committed while we waited on it.
    rows = yield Q("SELECT external_id, incident_id FROM qflow_external WHERE external_id = ANY(%s)",
                   (sorted(wanted),))
    for ext, holder in sorted(rows):
        if holder != wanted[ext]:
            raise _external_taken(wanted[ext], ext, holder)
    return None


def _external_taken(iid: str, ext: str, holder: str) -> ConcurrencyError:
    return ConcurrencyError(f"{iid}: external id '{ext}' is already recorded for {holder}; "
                            "report it without an id to get that incident back")


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
    return codec.state(rows[0][0]) if rows else None


def events(codec: Codec, incident_id: str) -> Op:
    rows = yield Q("SELECT body FROM qflow_events WHERE incident_id = %s ORDER BY seq", (incident_id,))
    return tuple(codec.event(r[0]) for r in rows)


def find_dedup(dedup_key: str, since: datetime) -> Op:
    rows = yield Q("SELECT id FROM qflow_incidents WHERE dedup_key = %s AND open AND reported_at >= %s "
                   "ORDER BY sort_at DESC, sort_n DESC, id DESC LIMIT 1", (dedup_key, since))
    return rows[0][0] if rows else None


def count(q: IncidentQuery) -> Op:
    where, params = _where(attrs.evolve(q, limit=None))
    rows = yield Q(f"SELECT count(*) FROM qflow_incidents WHERE {where}", params)
    return rows[0][0]


def projection(name: str) -> Op:
    rows = yield Q("SELECT body FROM qflow_projection_rows WHERE projection = %s", (name,))
    return [r[0] for r in rows]


def find_external(external_id: str) -> Op:
    rows = yield Q("SELECT incident_id FROM qflow_external WHERE external_id = %s", (external_id,))
    return rows[0][0] if rows else None


def query(codec: Codec, q: IncidentQuery) -> Op:
    where, params = _where(q)
    sql = f"SELECT body FROM qflow_incidents WHERE {where} ORDER BY sort_at, sort_n, id"
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
        where.append("min_due < %s")
        params.append(q.overdue_at)
    return " AND ".join(where), params


def due(until: datetime) -> Op:
    rows = yield Q("SELECT due, incident_id, clock, due_offset FROM qflow_deadlines WHERE due <= %s "
                   "ORDER BY due, incident_id, clock", (until,))
    return [Due(local(r[0], r[3]), r[1], r[2]) for r in rows]


# -- timers ------------------------------------------------------------------------------

# SKIP LOCKED: a worker never waits for rows another worker is claiming right now, and
# never gets them; the lease hands a crashed worker's timers on once it has passed.
_FREE = "(claimed_by IS NULL OR claimed_by = %(worker)s OR lease_until <= %(now)s)"


def claim_timers(codec: Codec, until: datetime, worker: str, limit: int, lease_until: datetime | None) -> Op:
    rows = yield Q(f"""WITH c AS (
                          SELECT incident_id, key FROM qflow_timers
                          WHERE at <= %(now)s AND {_FREE}
                          ORDER BY at, incident_id, key LIMIT %(limit)s
                          FOR UPDATE SKIP LOCKED)
                       UPDATE qflow_timers t SET claimed_by = %(worker)s, lease_until = %(lease)s
                       FROM c WHERE t.incident_id = c.incident_id AND t.key = c.key
                       RETURNING t.incident_id, t.key, t.at, t.at_offset""",
                   {"now": until, "worker": worker, "limit": limit, "lease": lease_until})
    return sorted((codec.timer(r) for r in rows), key=lambda t: (t.at, t.incident_id, t.key))


def release(worker: str) -> Op:
    yield Q("UPDATE qflow_timers SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = %s", (worker,))
    yield Q("UPDATE qflow_outbox SET claimed_by = NULL, lease_until = NULL WHERE claimed_by = %s", (worker,))


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
                          SELECT id FROM qflow_outbox
                          WHERE status = 'pending' AND next_attempt_at <= %(now)s AND {_FREE}
                          ORDER BY next_attempt_at, created_at, id LIMIT %(limit)s
                          FOR UPDATE SKIP LOCKED)
                       UPDATE qflow_outbox o SET claimed_by = %(worker)s, lease_until = %(lease)s
                       FROM c WHERE o.id = c.id
                       RETURNING o.body""",
                   {"now": now, "worker": worker, "limit": limit, "lease": lease_until})
    found = [codec.outbox(r[0]) for r in rows]
    return sorted(found, key=lambda m: (m.next_attempt_at, m.created_at, m.id))


def record_delivery(codec: Codec, message: OutboxMessage, attempt: DeliveryAttempt, w: Write | None, *,
                    retry: bool = False) -> Op:
    if w is not None:
        yield from write(codec, [w], retry=retry)
    row = codec.outbox_row(message)
    yield Q("""INSERT INTO qflow_outbox (id, incident_id, channel, backend, created_at, next_attempt_at,
                                        status, attempts, body)
               VALUES (%(id)s, %(incident_id)s, %(channel)s, %(backend)s, %(created_at)s,
                       %(next_attempt_at)s, %(status)s, %(attempts)s, %(body)s)
               ON CONFLICT (id) DO UPDATE SET next_attempt_at = EXCLUDED.next_attempt_at,
                 status = EXCLUDED.status, attempts = EXCLUDED.attempts, body = EXCLUDED.body,
                 claimed_by = NULL, lease_until = NULL""", row)
    # A retried transaction may find its attempt already recorded.
    yield Q("INSERT INTO qflow_attempts (message_id, number, at, ok, body) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT DO NOTHING", codec.attempt_row(attempt))


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
