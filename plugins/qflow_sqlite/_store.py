"""The SQLite store: one file, WAL, every command one ``BEGIN IMMEDIATE`` transaction.

Several processes may share the file (SQLite serialises writers; claims on timers
and outbox messages carry a worker and a lease). Within a process the connection is
guarded by a lock, so threads may share one store.
"""

from __future__ import annotations

import os
import re
import sqlite3
import threading
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from datetime import datetime
from operator import attrgetter
from pathlib import Path
from typing import Any

import attrs
from qflow import FrozenDict, projection_sql
from qflow.store import closed_error, undeclared
from qflow.errors import ConcurrencyError, DuplicateReportError
from qflow.events import DECISION_MADE, REASSIGNED, RESPONSIBILITY_CONFIRMED, SEVERITY_CHANGED
from qflow.model import Event, IncidentState
from qflow.store import (
    CLOSED_STAGES,
    DeliveryAttempt,
    Due,
    Filter,
    IncidentQuery,
    Measure,
    OutboxMessage,
    Projection,
    SchemaError,
    Store,
    StoreError,
    Timer,
    TransientStoreError,
    Write,
    dedup_conflict,
    external_conflict,
    overdue,
    still_due,
)

from qflow_sqlite import _codec
from qflow_sqlite._codec import dues_from, dues_json, dumps, incident_order, loads
from qflow_sqlite._schema import MIGRATIONS, SCHEMA_VERSION

__all__ = ["SQLiteStore"]

SYNCHRONOUS = ("off", "normal", "full", "extra")
_INCIDENT_REPORTED = "IncidentReported"
_CLOSED = tuple(s.value for s in CLOSED_STAGES)
#: IncidentQuery fields the SQL filters on; any other field set is checked in Python.
#: (overdue_at only narrows for a row without due moments: it is read by its decision.)
_PUSHED = {"stages", "team", "severity", "category", "owner", "place", "open_only", "reported_from",
           "reported_until", "limit", "overdue_at"}

_DECISION_MADE = DECISION_MADE
#: The events after which the fold's decision is not the DecisionMade data as it is.
_DECISION_EVENTS = frozenset({DECISION_MADE, SEVERITY_CHANGED, REASSIGNED, RESPONSIBILITY_CONFIRMED})
_DUE = attrgetter("due")
_EVENT_COLUMNS = "incident_id, seq, at, type, actor, source, ruleset, data"
#: How many incidents one IN (...) names: well under SQLite's parameter limit (999
#: before 3.32).
_CHUNK = 500
#: How many read decisions and incidents a store remembers (see ``_remember``).
_REMEMBERED = 4096
#: How many decoded states a store keeps by their rows (see ``_state``): a few
#: megabytes, more than the open incidents of a place that a report looks through.
_DECODED = 1024
_INSERT_EVENT = "INSERT INTO events (incident_id, seq, at, type, source, ruleset, data) VALUES (?,?,?,?,?,?,?)"
_INSERT_EVENT_FULL = ("INSERT INTO events (incident_id, seq, at, type, actor, source, ruleset, data)"
                      " VALUES (?,?,?,?,?,?,?,?)")
_INCIDENT_COLUMNS = ("id, ord, seq, stage, open, team, severity, category, owner, place, reported_ts, "
                     "first_due_ts, dues, decision_seq, state")
_INSERT_INCIDENT = f"INSERT INTO incidents ({_INCIDENT_COLUMNS}) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
_INSERT_INCIDENT_FULL = (f"INSERT INTO incidents ({_INCIDENT_COLUMNS}, external_id, dedup_key, incident)"
                         " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)")
_UPSERT_INCIDENT = _INSERT_INCIDENT_FULL + (
    " ON CONFLICT (id) DO UPDATE SET seq=excluded.seq, stage=excluded.stage, open=excluded.open,"
    " team=excluded.team, severity=excluded.severity, category=excluded.category, owner=excluded.owner,"
    " place=excluded.place, reported_ts=excluded.reported_ts, first_due_ts=excluded.first_due_ts, dues=excluded.dues,"
    " decision_seq=excluded.decision_seq, state=excluded.state, external_id=excluded.external_id,"
    " dedup_key=excluded.dedup_key, incident=COALESCE(excluded.incident, incidents.incident)")
_UPSERT_TIMERS = ("INSERT INTO timers (incident_id, next_ts, timers) VALUES (?,?,?) ON CONFLICT (incident_id)"
                  " DO UPDATE SET next_ts = excluded.next_ts, timers = excluded.timers, worker = NULL, lease_ts = NULL")
_UPDATE_FOLLOWING = (
    "UPDATE incidents SET seq=?, stage=?, open=?, team=?, severity=?, category=?, owner=?, place=?, reported_ts=?,"
    " first_due_ts=?, dues=?, decision_seq=?, state=?, external_id=?, dedup_key=?, incident=COALESCE(?, incident)"
    " WHERE id = ? AND seq = ?")
_QUERY_FIELDS = attrs.fields(IncidentQuery)
#: A state row alone (read_many takes its incident and decision from the log).
_READ_STATES = "SELECT state, incident, stage, seq, decision_seq, id FROM incidents"
#: A state row with its incident (its own, else the first event's) and the decision
#: of the DecisionMade event it names (decision_seq), if it names one.
_READ_STATE = ("SELECT i.state, COALESCE(i.incident, e.data), i.stage, i.seq, d.data, i.decision_seq, i.id"
               " FROM incidents i"
               " LEFT JOIN events e ON e.incident_id = i.id AND e.seq = 1"
               " LEFT JOIN events d ON d.incident_id = i.id AND d.seq = i.decision_seq")
#: _READ_STATE with the row's due moments last (NULL: to be read off the decision).
_READ_STATE_DUES = _READ_STATE.replace(", i.id FROM", ", i.id, i.dues FROM", 1)


def _select_in(con: sqlite3.Connection, sql: str, keys: Sequence[Any]) -> Iterator[Any]:
    """The rows of *sql* for every key, ``{marks}`` in it standing for one ``IN``
    list, _CHUNK keys a statement (under SQLite's parameter limit)."""
    for start in range(0, len(keys), _CHUNK):
        chunk = keys[start:start + _CHUNK]
        yield from con.execute(sql.format(marks=",".join("?" * len(chunk))), chunk)


def _stored_seqs(con: sqlite3.Connection, ids: Sequence[str]) -> dict[str, int]:
    """The seq each of *ids* that is stored is at."""
    return dict(_select_in(con, "SELECT id, seq FROM incidents WHERE id IN ({marks})", ids))


#: The table or index a ``CREATE ... IF NOT EXISTS`` statement makes.
_CREATED = re.compile(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\S+)")
#: How to put a backup in place of a damaged store.
_RESTORE = ("stop every qflow process using it, move it away with its -wal and -shm files, and copy a backup "
            "made by 'qflow db backup' to its path")


def _transient(exc: sqlite3.DatabaseError) -> str | None:
    """What to do about an error that passes by itself (the write lock held by another
    process for longer than the timeout, a full disk), or None for any other."""
    name = getattr(exc, "sqlite_errorname", "")
    if name.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
        return "another process holds the store for too long; retry"
    if name == "SQLITE_FULL":
        return "free space on the disk and retry; what was committed before is kept"
    return None


def _missing(path: str, why: str) -> str:
    return (f"no store at {path} ({why}); check the path, or create the store with 'qflow import' "
            "(or 'qflow demo')")


def _ts(value: datetime | None) -> float | None:
    return None if value is None else value.timestamp()


def _time(text: str | None) -> datetime | None:
    return None if text is None else datetime.fromisoformat(text)


class SQLiteStore(Store):
    """A qflow store in the SQLite file *path*.

    :param synchronous: SQLite's ``synchronous`` setting: ``normal`` (the default with
        WAL: a commit survives a crash of the process, a power cut may lose the last
        ones) or ``full`` (every commit reaches the disk before it returns).
    :param timeout: seconds to wait for another process's write to finish.
    :param create: make a new store when the file does not exist or is empty (False:
        refuse it, for commands that only read or look after a store).
    """

    def __init__(self, path: str | os.PathLike[str], *, synchronous: str = "normal", timeout: float = 10.0,
                 create: bool = True) -> None:
        self.path = os.fspath(path)
        self.create = create
        if synchronous not in SYNCHRONOUS:
            raise StoreError(f"unknown synchronous setting '{synchronous}' for {self.path}; "
                             f"use one of {', '.join(SYNCHRONOUS)}")
        self.synchronous = synchronous
        self._lock = threading.RLock()
        self._projections: dict[str, Projection] = {}
        self._statements: dict[str, _Statements] = {}  # a declared projection's SQL, made once
        self._stored_version = 0
        # What get and read_many handed out, by identity: id(decision) -> (decision,
        # incident id, decision_seq) and id(incident) -> (incident, incident id). A
        # state written back with the very decision it was read with names the same
        # DecisionMade event again instead of a copy of its own, and one with the
        # very incident keeps the row's incident (nothing to encode). The values are
        # held, so an id is not reused while it is remembered.
        self._read_decisions: dict[int, tuple[Any, str, int]] = {}
        self._read_incidents: dict[int, tuple[Any, str]] = {}
        # States decoded from rows, by the row itself: a row's bytes say everything the
        # state is made of (its incident and decision come from events, which never
        # change), so the same row gives the same state, shared as it is immutable.
        # Queries asked again and again (the escalation plugin looks for a suppressing
        # incident among the open ones of a place at every report) decode once.
        self._decoded: dict[tuple[Any, ...], IncidentState] = {}
        self._closed = False
        self._con = self._connect(timeout)

    # -- opening -----------------------------------------------------------------------

    def _connect(self, timeout: float) -> sqlite3.Connection:
        path = self.path
        if path != ":memory:":
            p = Path(path)
            if p.is_dir():
                raise StoreError(f"cannot open the store {path}: it is a directory; give the path of a file")
            if not p.parent.is_dir():
                raise StoreError(f"cannot open the store {path}: the directory {p.parent} does not exist; "
                                 "create it or give another path")
            if not _writable(p.parent):
                raise StoreError(f"cannot open the store {path}: the directory {p.parent} is read-only "
                                 "(SQLite keeps its journal next to the file); give a path in a writable directory")
            if p.exists() and not _writable(p):
                raise StoreError(f"cannot open the store {path}: the file is read-only; "
                                 "make it writable or give another path")
            if not self.create and not p.exists():
                raise StoreError(_missing(path, "the file does not exist"))
        try:
            con = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=timeout)
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the store {path}: {exc}; check the path and its permissions") from None
        try:
            # Read first: a foreign file is refused before anything (WAL mode) is written to it.
            version = self._read_version(con)
            if version is None and not self.create:
                raise StoreError(_missing(path, "the file is empty"))
            mode = con.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            con.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
            self._prepare(con, version)
        except sqlite3.DatabaseError as exc:
            con.close()
            transient = _transient(exc)
            if transient is not None:
                raise TransientStoreError(f"cannot open the store {path}: {exc}; {transient}") from None
            if isinstance(exc, sqlite3.OperationalError) and "readonly" in str(exc):
                raise StoreError(f"cannot open the store {path}: it is read-only ({exc}); "
                                 "give a path in a writable directory") from None
            raise StoreError(f"{path} is damaged or not a qflow store: {exc}; give the path of a qflow store "
                             f"or of a new file; to restore a damaged store, {_RESTORE}") from None
        except BaseException:
            con.close()
            raise
        if path != ":memory:" and mode != "wal":
            con.close()
            raise StoreError(f"cannot open the store {path} in WAL mode (got '{mode}'); "
                             "put it on a local file system")
        return con

    def _prepare(self, con: sqlite3.Connection, version: int | None) -> None:
        if version is None:
            con.execute("BEGIN IMMEDIATE")
            try:
                version = self._read_version(con)  # another process may have created it meanwhile
                if version is None:
                    self._migrate(con, 0)
                    version = SCHEMA_VERSION
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
        if version > SCHEMA_VERSION:
            raise SchemaError(f"the store {self.path} has schema version {version}, newer than the "
                              f"{SCHEMA_VERSION} this qflow knows; upgrade qflow (pip install -U qflow) "
                              "or open a backup made before the newer qflow touched it")
        self._stored_version = version

    def _read_version(self, con: sqlite3.Connection) -> int | None:
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")]
        if not tables:
            return None
        if "qflow_schema" not in tables:
            shown = ", ".join(tables[:5]) + (" ..." if len(tables) > 5 else "")
            raise StoreError(f"{self.path} is an SQLite database but not a qflow store (it has tables {shown}); "
                             "give the path of a qflow store or of a new file")
        row = con.execute("SELECT MAX(version) FROM qflow_schema").fetchone()
        return int(row[0] or 0)

    def _migrate(self, con: sqlite3.Connection, start: int) -> None:
        for version, script in MIGRATIONS:
            if version <= start:
                continue
            for statement in script.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute("INSERT INTO qflow_schema VALUES (?, datetime('now'))", (version,))

    def schema_version(self) -> int:
        self._ensure_open()
        return self._stored_version

    def upgrade(self) -> tuple[int, int]:
        with self._lock:
            con = self._con
            with self._errors():
                con.execute("BEGIN IMMEDIATE")
                try:
                    start = self._read_version(con) or 0
                    if start > SCHEMA_VERSION:
                        raise SchemaError(f"the store {self.path} has schema version {start}, newer than the "
                                          f"{SCHEMA_VERSION} this qflow knows; upgrade qflow (pip install -U qflow)")
                    try:
                        self._migrate(con, start)
                    except sqlite3.DatabaseError as exc:
                        if _transient(exc) is not None:
                            raise
                        raise StoreError(
                            f"the upgrade from schema version {start} to {SCHEMA_VERSION} of the store {self.path} "
                            f"failed ({exc}); it was rolled back and nothing changed; the tables do not match the "
                            "schema version qflow_schema records (edited by hand, or restored in part): restore the "
                            "backup taken before, or ask the person who changed them") from None
                    con.execute("COMMIT")
                except BaseException:
                    con.execute("ROLLBACK")
                    raise
            self._stored_version = SCHEMA_VERSION
            return (start, SCHEMA_VERSION)

    def backup(self, dest: str | os.PathLike[str]) -> None:
        """Copy the store to *dest* while it stays in use (SQLite's online backup)."""
        target = Path(dest)
        if target.exists():
            raise StoreError(f"cannot back up to {target}: the file exists; give a new path")
        if not target.parent.is_dir():
            raise StoreError(f"cannot back up to {target}: the directory {target.parent} does not exist")
        with self._lock:
            try:
                out = sqlite3.connect(target)
            except sqlite3.Error as exc:
                raise StoreError(f"cannot back up to {target}: {exc}") from None
            try:
                with self._errors():
                    self._con.backup(out)
                out.execute("PRAGMA journal_mode=WAL")
            finally:
                out.close()

    def close(self) -> None:
        with self._lock:
            self._con.close()
            self._closed = True

    # -- plumbing ------------------------------------------------------------------------

    def _ensure_open(self) -> None:
        """For a call that reads without the store's connection (whose use says so)."""
        if self._closed:
            raise closed_error(self.path)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        """SQLite's errors as StoreError, with the file and what to do."""
        try:
            yield
        except sqlite3.IntegrityError:
            raise
        except sqlite3.DatabaseError as exc:
            if self._closed and isinstance(exc, sqlite3.ProgrammingError):
                # Not a damaged file: the application (or AsyncEngine.aclose) closed it.
                raise closed_error(self.path) from None
            text = str(exc)
            transient = _transient(exc)
            if transient is not None:
                raise TransientStoreError(f"the store {self.path} failed: {text}; {transient}") from None
            if "readonly" in text:
                hint = "the file or its directory became read-only; make them writable and retry"
            else:
                hint = f"the file may be damaged; to restore a backup, {_RESTORE}"
            raise StoreError(f"the store {self.path} failed: {text}; {hint}") from None

    def _ready(self) -> None:
        if self._stored_version < SCHEMA_VERSION:
            raise SchemaError(f"the store {self.path} has schema version {self._stored_version}, older than "
                              f"the {SCHEMA_VERSION} this qflow needs; run 'qflow db upgrade --store "
                              f"sqlite:///{self.path}' (after 'qflow db backup')")

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        with self._lock, self._errors():
            self._ready()
            con = self._con
            con.execute("BEGIN IMMEDIATE")
            try:
                yield con
                con.execute("COMMIT")
            except BaseException:
                if con.in_transaction:
                    con.execute("ROLLBACK")
                raise

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        with self._lock, self._errors():
            self._ready()
            return self._con.execute(sql, params).fetchall()

    # -- writing -------------------------------------------------------------------------

    def next_id(self) -> str:
        return self.next_ids(1)[0]

    def next_ids(self, count: int) -> list[str]:
        out: list[str] = []
        with self._lock, self._errors():
            # The counter need not reach the disk before the report that uses its id:
            # that report's write, which does, takes the counter's page in the same log
            # with it; and an id handed out again after a crash before then was never
            # written, or is skipped as taken (below). One wait on the disk a report,
            # not two, with synchronous=full.
            relaxed = self.synchronous in ("full", "extra")
            if relaxed:
                self._con.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._tx() as con:
                    while len(out) < count:
                        need = count - len(out)
                        top = con.execute("UPDATE counters SET value = value + ? WHERE name = 'incident' "
                                          "RETURNING value", (need,)).fetchone()[0]
                        ids = [f"INC-{n}" for n in range(top - need + 1, top + 1)]
                        taken = {r[0] for r in _select_in(con, "SELECT id FROM incidents WHERE id IN ({marks})",
                                                          ids)}
                        out.extend(i for i in ids if i not in taken)
            finally:
                if relaxed:
                    self._con.execute(f"PRAGMA synchronous={self.synchronous.upper()}")
        return out

    def write(self, writes: Sequence[Write]) -> None:
        if not writes:
            return
        with self._tx() as con:
            self._write(con, writes)

    def _write(self, con: sqlite3.Connection, writes: Sequence[Write]) -> None:
        # Intake runs through here many thousand times a second, so the loop keeps to
        # plain operations; rows whose usual NULLs are NULL go to statements that leave
        # those columns out (sqlite3 binds None through a slow adapter look-up).
        events: list[tuple[Any, ...]] = []  # without an actor
        events_full: list[tuple[Any, ...]] = []
        created: list[tuple[Any, ...]] = []  # without external id, dedup key, own incident
        created_full: list[tuple[Any, ...]] = []
        updated: list[tuple[Any, ...]] = []  # upserted: no events, or a later write in the batch
        following: list[tuple[Any, ...]] = []  # updated where the stored seq is the one followed
        unmoved: dict[str, int] = {}  # incident written without events -> the seq its state is at
        batch_last: dict[str, int] = {}
        externals: dict[str, str] = {}  # external id -> incident in this batch
        keyed: list[tuple[str, str, float]] = []  # new incident, its dedup key, the window's start
        # incident -> (new incident?, its timers); a later write of the same incident
        # in the batch replaces an earlier one's timers.
        timer_sets: dict[str, tuple[bool, Sequence[Timer]]] = {}
        outbox: list[tuple[Any, ...]] = []
        # projection -> incident -> (new incident?, its rows as parameter tuples); a later
        # write of the same incident in the batch replaces an earlier one's rows.
        projected: dict[str, dict[str, tuple[bool, list[tuple[Any, ...]]]]] = {}
        statements = self._statements
        event_json, state_json, timestamp = _codec.event_json, _codec.state_json, _codec.timestamp
        open_of, stage_text = _codec.OPEN, _codec.STAGE_TEXT
        read_decisions, read_incidents = self._read_decisions, self._read_incidents
        last_at: datetime | None = None
        at_text = ""
        for w in writes:
            state = w.state
            inc = state.incident
            iid = inc.id
            evs = w.events
            new = False
            expect = None
            decision_seq = None
            if evs:
                first = evs[0].seq
                seq = first
                for e in evs:
                    if e.seq != seq or e.incident_id != iid:
                        raise ConcurrencyError(f"{iid}: event seq {e.seq} of {e.incident_id} does not follow "
                                               f"{seq - 1}; reload the incident and try again")
                    seq += 1
                last = batch_last.get(iid)
                if last is not None:
                    if first != last + 1:
                        raise ConcurrencyError(f"{iid}: event seq {first} does not follow {last}; "
                                               "reload the incident and try again")
                elif first == 1:
                    new = True
                else:
                    expect = first - 1  # the seq its first event in this batch follows
                batch_last[iid] = seq - 1
                for e in evs:
                    at = e.at
                    if at is not last_at:  # the events of one command mostly share one time
                        last_at, at_text = at, at.isoformat()
                    etype = e.type
                    if e.actor is None:
                        events.append((iid, e.seq, at_text, etype, e.source, e.ruleset, event_json(e.data)))
                    else:
                        events_full.append((iid, e.seq, at_text, etype, e.actor, e.source, e.ruleset,
                                            event_json(e.data)))
                    if etype in _DECISION_EVENTS:
                        # The fold takes the decision from DecisionMade as it is; a later
                        # change in the same write makes the state's own copy the one to keep.
                        decision_seq = e.seq if etype == _DECISION_MADE else None
            elif iid not in batch_last:
                unmoved[iid] = state.seq
            external_id, dedup_key = inc.external_id, inc.dedup_key
            if external_id is not None:
                owner = externals.setdefault(external_id, iid)
                if owner != iid:
                    raise external_conflict(iid, external_id, owner)
            if new and dedup_key is not None and w.dedup_since is not None:
                keyed.append((iid, dedup_key, timestamp(w.dedup_since)))
            d = state.decision
            reported = inc.reported_at
            reported_ts = None if reported is None else timestamp(reported)
            dues = w.dues
            if dues is not None:
                first_due, dues_text = dues_json(dues)
            else:  # read by the decision's deadlines (see Write.dues)
                dues_text = None
                first_due = timestamp(min(map(_DUE, d.deadlines))) if d is not None and d.deadlines else None
            if d is not None:
                team, severity, category, owner_name = d.team, d.severity, d.category, d.owner
                if decision_seq is None and not new:
                    known = read_decisions.get(id(d))
                    if known is not None and known[0] is d and known[1] == iid:
                        decision_seq = known[2]  # the decision as read: its DecisionMade event holds it
            else:
                team = severity = category = owner_name = None
                decision_seq = None
            if new:
                own_incident = None if evs[0].type == _INCIDENT_REPORTED else _codec.incident_json(state)
            else:
                known_inc = read_incidents.get(id(inc))
                # The incident as read: NULL keeps the row's (COALESCE in the upsert).
                own_incident = (None if known_inc is not None and known_inc[0] is inc and known_inc[1] == iid
                                else _codec.incident_json(state))
            stage = state.stage
            updated_at = state.updated_at
            if updated_at is not last_at:
                last_at, at_text = updated_at, updated_at.isoformat()
            state_text = state_json(state, decision_seq is not None, at_text)
            if new and external_id is None and dedup_key is None and own_incident is None:
                created.append((iid, incident_order(iid), state.seq, stage_text[stage], open_of[stage], team, severity,
                                category, owner_name, inc.place, reported_ts, first_due, dues_text, decision_seq, state_text))
            elif expect is not None:
                following.append((state.seq, stage_text[stage], open_of[stage], team, severity, category, owner_name,
                                  inc.place, reported_ts, first_due, dues_text, decision_seq, state_text, external_id, dedup_key,
                                  own_incident, iid, expect))
            else:
                (created_full if new else updated).append(
                    (iid, incident_order(iid), state.seq, stage_text[stage], open_of[stage], team, severity, category,
                     owner_name, inc.place, reported_ts, first_due, dues_text, decision_seq, state_text, external_id,
                     dedup_key, own_incident))
            if w.timers is not None:
                timer_sets[iid] = (new, w.timers)
            for m in w.outbox:
                outbox.append(_outbox_row(m))
            for name, given in w.rows.as_dict().items() if w.rows else ():
                projection = self._projections.get(name)
                if projection is None:
                    raise StoreError(undeclared(name))
                projected.setdefault(name, {})[iid] = (
                    new, projection_sql.row_values(projection, iid, given, statements[name].names))
        if unmoved:
            self._check_unmoved(con, unmoved)
        if externals:
            self._check_externals(con, externals)
        if keyed:
            self._check_dedup(con, keyed)
        try:
            # An incident moved on by another writer is not updated: the row count
            # says so (instead of reading every seq first), and its events are not
            # inserted yet, so the error names the seq that was missed.
            if following and con.executemany(_UPDATE_FOLLOWING, following).rowcount != len(following):
                raise self._moved_on(con, {row[-2]: row[-1] for row in following})
            if events:
                con.executemany(_INSERT_EVENT, events)
            if events_full:
                con.executemany(_INSERT_EVENT_FULL, events_full)
            if created:
                con.executemany(_INSERT_INCIDENT, created)
            if created_full:
                con.executemany(_INSERT_INCIDENT_FULL, created_full)
            if updated:
                con.executemany(_UPSERT_INCIDENT, updated)
        except sqlite3.IntegrityError as exc:
            raise self._conflict(con, exc, created + created_full) from None
        if timer_sets:
            self._write_timers(con, timer_sets)
        if outbox:
            con.executemany("INSERT OR IGNORE INTO outbox VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL)", outbox)
        for name, by_incident in projected.items():
            self._write_rows(con, self._statements[name], by_incident)

    @staticmethod
    def _write_timers(con: sqlite3.Connection, timer_sets: Mapping[str, tuple[bool, Sequence[Timer]]]) -> None:
        """Make the incidents' timers what *timer_sets* says: one row each, written
        whole (which drops its claim), or deleted when none are left."""
        put: list[tuple[Any, ...]] = []
        gone: list[tuple[str]] = []
        encode = _codec.timers_json
        for iid, (new, timers) in timer_sets.items():
            if timers:
                put.append((iid, *encode(timers)))
            elif not new:
                gone.append((iid,))
        if gone:
            con.executemany("DELETE FROM timers WHERE incident_id = ?", gone)
        if put:
            con.executemany(_UPSERT_TIMERS, put)

    @staticmethod
    def _write_rows(con: sqlite3.Connection, projection: _Statements,
                    by_incident: Mapping[str, tuple[bool, list[tuple[Any, ...]]]]) -> None:
        """Replace the incidents' rows of *projection*, leaving alone those that are
        the same as stored. Most commands change a row little or not at all (a tick's
        escalation step changes no fact), and reading a batch's rows is several times
        cheaper than deleting and inserting them again with every index entry."""
        known = [iid for iid, (new, _) in by_incident.items() if not new]
        stored: dict[str, list[tuple[Any, ...]]] = {}
        for row in _select_in(con, projection.select, known):
            stored.setdefault(row[0], []).append(row)
        gone: list[tuple[str]] = []
        put: list[tuple[Any, ...]] = []
        for iid, (new, rows) in by_incident.items():
            if not new:
                if stored.get(iid, []) == rows:
                    continue
                gone.append((iid,))
            put.extend(rows)
        if gone:
            con.executemany(projection.delete, gone)
        if put:
            con.executemany(projection.insert, put)

    @staticmethod
    def _moved_on(con: sqlite3.Connection, follows: Mapping[str, int]) -> ConcurrencyError:
        # The batch's other incidents were updated already: undone first, so what is
        # read is what each incident is at, and the one that moved on is the one named.
        con.execute("ROLLBACK")
        stored = _stored_seqs(con, list(follows))
        for iid, after in follows.items():
            have = stored.get(iid, 0)
            if have != after:
                return ConcurrencyError(f"{iid}: event seq {after + 1} does not follow {have}; "
                                        "reload the incident and try again")
        return ConcurrencyError("an incident changed while it was written; reload the incidents and try again")

    @staticmethod
    def _check_unmoved(con: sqlite3.Connection, unmoved: Mapping[str, int]) -> None:
        # A write of timers alone must not put back a state someone has moved on from.
        stored = _stored_seqs(con, list(unmoved))
        for iid, seq in unmoved.items():
            last = stored.get(iid, 0)
            if seq != last:
                raise ConcurrencyError(f"{iid}: state at seq {seq} is stale (the log is at {last}); "
                                       "reload the incident and try again")

    def _check_externals(self, con: sqlite3.Connection, externals: Mapping[str, str]) -> None:
        for ext, owner in _select_in(con, "SELECT external_id, id FROM incidents WHERE external_id IN ({marks})",
                                     list(externals)):
            if owner != externals[ext]:
                raise external_conflict(externals[ext], ext, owner)

    @staticmethod
    def _check_dedup(con: sqlite3.Connection, keyed: Sequence[tuple[str, str, float]]) -> None:
        # The engine looked for an open incident with the key before this transaction;
        # another process may have recorded one since. The write lock (BEGIN IMMEDIATE)
        # is held now and the batch's own rows are not inserted yet, so what is found
        # here was committed by someone else.
        for iid, key, since in keyed:
            row = con.execute("SELECT id FROM incidents WHERE dedup_key = ? AND open AND reported_ts >= ?"
                              " ORDER BY reported_ts DESC, ord DESC LIMIT 1", (key, since)).fetchone()
            if row is not None:
                raise dedup_conflict(iid, key, row[0])

    def _conflict(self, con: sqlite3.Connection, exc: sqlite3.IntegrityError,
                  created: Sequence[tuple[Any, ...]]) -> ConcurrencyError:
        text = str(exc)
        if "external_id" in text:
            return DuplicateReportError(f"an incident with the same external id is already recorded ({text}); "
                                        "the report is a retry: read that incident (find_external) instead")
        ids = [r[0] for r in created]
        known = _stored_seqs(con, ids)
        for iid in ids:
            if iid in known:
                return ConcurrencyError(f"{iid}: event seq 1 does not follow {known[iid]}; "
                                        "reload the incident and try again")
        return ConcurrencyError(f"conflicting write ({text}); reload the incidents and try again")

    # -- reading incidents ----------------------------------------------------------------

    def get(self, incident_id: str) -> IncidentState | None:
        rows = self._read(_READ_STATE + " WHERE i.id = ?", (incident_id,))
        return self._remember(self._state(rows[0]), rows[0]) if rows else None

    def events(self, incident_id: str) -> tuple[Event, ...]:
        rows = self._read(f"SELECT {_EVENT_COLUMNS} FROM events WHERE incident_id = ? ORDER BY seq", (incident_id,))
        return tuple(map(_event, rows))

    def read_many(self, incident_ids: Sequence[str]) -> dict[str, tuple[IncidentState, tuple[Event, ...]]]:
        # One deferred transaction: the states and the logs are one snapshot (WAL).
        ids = list(dict.fromkeys(incident_ids))
        with self._lock, self._errors():
            self._ready()
            con = self._con
            con.execute("BEGIN")
            try:
                states = list(_select_in(con, _READ_STATES + " WHERE id IN ({marks})", ids))
                logs = list(_select_in(con, f"SELECT {_EVENT_COLUMNS} FROM events WHERE incident_id IN ({{marks}})"
                                       " ORDER BY incident_id, seq", ids))
            finally:
                con.execute("COMMIT")
        # The incident (when the row has none of its own) and the decision named by
        # decision_seq are the data of events read here already: no join, no second
        # decoding.
        event_data = _codec.event_data
        data_of: dict[tuple[str, int], Any] = {(r[0], r[1]): event_data(r[7]) for r in logs}
        found = {}
        for text, own, stage, seq, decision_seq, iid in states:
            incident = None if own is not None else data_of.get((iid, 1))
            decision = None if decision_seq is None else data_of.get((iid, decision_seq))
            if (own is None and incident is None) or (decision_seq is not None and decision is None):
                state = self.get(iid)  # not as written (no log to take them from): as get reads it
                if state is None:
                    continue
            else:
                state = _codec.state_from_fast(text, own, stage, seq, None, incident=incident, decision=decision)
                self._remember(state, (None, None, None, None, decision, decision_seq, iid))
            found[iid] = state
        # Only now are the events' data frozen, in place: the states above were built
        # from the plain data (and hold copies of it, not the data itself).
        by_id: dict[str, list[Event]] = {}
        adopt_plain = FrozenDict.adopt_plain
        for r in logs:
            data = data_of[r[0], r[1]]
            by_id.setdefault(r[0], []).append(Event(r[0], r[1], datetime.fromisoformat(r[2]), r[3], actor=r[4],
                                                    source=r[5], ruleset=r[6],
                                                    data=adopt_plain(data) if data.__class__ is dict else data))
        return {iid: (found[iid], tuple(by_id.get(iid, ()))) for iid in ids if iid in found}

    def _state(self, row: tuple[Any, ...]) -> IncidentState:
        """An IncidentState from a _READ_STATE row."""
        state = self._decoded.get(row)
        if state is None:
            state = _codec.state_from_fast(row[0], row[1], row[2], row[3], row[4])
            if len(self._decoded) >= _DECODED:
                self._decoded.clear()
            self._decoded[row] = state
        return state

    def _remember(self, state: IncidentState, row: Sequence[Any]) -> IncidentState:
        """Note *state*'s decision (when its row names the DecisionMade event holding
        it) and incident by identity, for ``_write``."""
        decisions, incidents = self._read_decisions, self._read_incidents
        if len(incidents) >= _REMEMBERED:
            decisions.clear()
            incidents.clear()
        iid = row[6]
        if row[4] is not None and state.decision is not None:
            decisions[id(state.decision)] = (state.decision, iid, row[5])
        incidents[id(state.incident)] = (state.incident, iid)
        return state

    def find_external(self, external_id: str) -> str | None:
        rows = self._read("SELECT id FROM incidents WHERE external_id = ?", (external_id,))
        return rows[0][0] if rows else None

    def find_dedup(self, dedup_key: str, since: datetime) -> str | None:
        rows = self._read("SELECT id FROM incidents WHERE dedup_key = ? AND open AND reported_ts >= ?"
                          " ORDER BY reported_ts DESC, ord DESC LIMIT 1", (dedup_key, since.timestamp()))
        return rows[0][0] if rows else None

    def _where(self, query: IncidentQuery) -> tuple[str, list[Any], bool]:
        """SQL conditions for *query*, and whether they say everything it asks."""
        sql: list[str] = []
        params: list[Any] = []
        if query.open_only:
            sql.append("i.open")
        if query.stages is not None:
            sql.append(f"i.stage IN ({','.join('?' * len(query.stages))})" if query.stages else "0")
            params.extend(s.value for s in query.stages)
        for name in ("team", "severity", "category", "owner", "place"):
            value = getattr(query, name)
            if value is not None:
                sql.append(f"i.{name} = ?")
                params.append(value)
        if query.reported_from is not None:
            sql.append("i.reported_ts >= ?")
            params.append(query.reported_from.timestamp())
        if query.reported_until is not None:
            sql.append("i.reported_ts < ?")
            params.append(query.reported_until.timestamp())
        if query.overdue_at is not None:
            sql.append("i.open AND i.first_due_ts < ?")
            params.append(query.overdue_at.timestamp())
        complete = all(getattr(query, f.name) == f.default for f in _QUERY_FIELDS if f.name not in _PUSHED)
        return (" WHERE " + " AND ".join(sql) if sql else ""), params, complete

    def query(self, query: IncidentQuery) -> list[IncidentState]:
        where, params, complete = self._where(query)
        if query.overdue_at is not None:
            # A row with due moments is overdue by first_due_ts, their earliest (the SQL);
            # one without them is read by its decision's deadlines (see Write.dues).
            sql = _READ_STATE_DUES + where + " ORDER BY i.reported_ts, i.ord, i.id"
            rest = attrs.evolve(query, overdue_at=None, limit=None)
            out = []
            for row in self._read(sql, params):
                state = self._state(row)
                if ((row[7] is not None or overdue(state, query.overdue_at))
                        and (complete or rest.matches(state))):
                    out.append(state)
                    if query.limit is not None and len(out) >= query.limit:
                        break
            return out
        sql = _READ_STATE + where + " ORDER BY i.reported_ts, i.ord, i.id"
        if complete and query.limit is not None:
            sql += f" LIMIT {int(query.limit)}"
        out = []
        for row in self._read(sql, params):
            state = self._state(row)
            if complete or query.matches(state):
                out.append(state)
                if query.limit is not None and len(out) >= query.limit:
                    break
        return out

    def count(self, query: IncidentQuery) -> int:
        where, params, complete = self._where(query)
        if not complete or query.overdue_at is not None:
            return super().count(query)
        return int(self._read("SELECT COUNT(*) FROM incidents i" + where, params)[0][0])

    def due(self, until: datetime) -> list[Due]:
        ts = until.timestamp()
        found = [d for iid, text in self._read("SELECT id, dues FROM incidents WHERE open AND first_due_ts <= ?"
                                               " AND dues IS NOT NULL", (ts,))
                 for d in dues_from(iid, text, until)]
        # A row without due moments: its decision's deadlines still outstanding (see still_due).
        found += [d for row in self._read(_READ_STATE + " WHERE i.open AND i.first_due_ts <= ? AND i.dues IS NULL",
                                          (ts,))
                  for d in still_due(self._state(row), until)]
        found.sort(key=lambda d: (d.at, d.incident_id, d.clock))
        return found

    def without_dues(self) -> int:
        return int(self._read("SELECT COUNT(*) FROM incidents WHERE open AND dues IS NULL")[0][0])

    # -- timers ------------------------------------------------------------------------

    def claim_timers(self, until: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[Timer]:
        # The first *limit* incidents by their earliest time hold the first *limit*
        # due timers; past the limit, incidents none of whose timers are handed out
        # are let go again in the same transaction.
        now = until.timestamp()
        with self._tx() as con:
            rows = con.execute(
                "UPDATE timers SET worker = ?, lease_ts = ? WHERE rowid IN ("
                " SELECT rowid FROM timers WHERE next_ts <= ?"
                " AND (worker IS NULL OR worker = ? OR lease_ts <= ?)"
                " ORDER BY next_ts, incident_id LIMIT ?)"
                " RETURNING incident_id, timers",
                (worker, _ts(lease_until), now, worker, now, limit)).fetchall()
            due = [t for iid, text in rows for t in _codec.due_timers_from(iid, text, until)]
            due.sort(key=_claim_order)
            del due[limit:]
            kept = {t.incident_id for t in due}
            if len(kept) < len(rows):
                con.executemany("UPDATE timers SET worker = NULL, lease_ts = NULL WHERE incident_id = ?",
                                [(iid,) for iid, _ in rows if iid not in kept])
        return due

    def release_timers(self, worker: str) -> None:
        with self._tx() as con:
            con.execute("UPDATE timers SET worker = NULL, lease_ts = NULL WHERE worker = ?", (worker,))
            con.execute("UPDATE outbox SET worker = NULL, lease_ts = NULL WHERE worker = ?", (worker,))

    def timers(self, incident_id: str | None = None) -> list[Timer]:
        if incident_id is not None:
            rows = self._read("SELECT incident_id, timers FROM timers WHERE incident_id = ?", (incident_id,))
            return _codec.timers_from(incident_id, rows[0][1]) if rows else []
        out = [t for iid, text in self._read("SELECT incident_id, timers FROM timers")
               for t in _codec.timers_from(iid, text)]
        out.sort(key=_claim_order)
        return out

    # -- outbox ------------------------------------------------------------------------

    def claim_outbox(self, now: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[OutboxMessage]:
        ts = now.timestamp()
        with self._tx() as con:
            rows = con.execute(
                "UPDATE outbox SET worker = ?, lease_ts = ? WHERE id IN ("
                " SELECT id FROM outbox WHERE status = 'pending' AND next_ts <= ?"
                " AND (worker IS NULL OR worker = ? OR lease_ts <= ?)"
                " ORDER BY next_ts, created_ts, id LIMIT ?)"
                f" RETURNING {_OUTBOX_COLUMNS}",
                (worker, _ts(lease_until), ts, worker, ts, limit)).fetchall()
        rows.sort(key=lambda r: (r[7], r[5], r[0]))
        return [_message(r) for r in rows]

    def record_delivery(self, message: OutboxMessage, attempt: DeliveryAttempt, write: Write | None = None) -> bool:
        with self._tx() as con:
            row = con.execute("SELECT status, worker FROM outbox WHERE id = ?", (message.id,)).fetchone()
            held = row is None or (row[0] == "pending" and row[1] == attempt.worker)
            if held:
                if write is not None:
                    self._write(con, [write])
                con.execute("INSERT INTO outbox VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,NULL,NULL) ON CONFLICT (id)"
                            " DO UPDATE SET next_at=excluded.next_at, next_ts=excluded.next_ts,"
                            " payload=excluded.payload, status=excluded.status, attempts=excluded.attempts,"
                            " last_error=excluded.last_error, fallback=excluded.fallback, worker=NULL, lease_ts=NULL",
                            _outbox_row(message))
            last = con.execute("SELECT MAX(number) FROM attempts WHERE message_id = ?", (message.id,)).fetchone()[0]
            # ok holds 1 or 0, plus 2 for a stale try: no schema change for one flag.
            con.execute("INSERT INTO attempts VALUES (?,?,?,?,?,?)",
                        (attempt.message_id, max(attempt.number, (last or 0) + 1), attempt.at.isoformat(),
                         int(attempt.ok) + (0 if held else 2), attempt.error, attempt.worker))
        return held

    def outbox(self, *, incident_id: str | None = None, status: str | None = None) -> list[OutboxMessage]:
        sql, params = [], []
        if incident_id is not None:
            sql.append("incident_id = ?")
            params.append(incident_id)
        if status is not None:
            sql.append("status = ?")
            params.append(status)
        where = " WHERE " + " AND ".join(sql) if sql else ""
        rows = self._read(f"SELECT {_OUTBOX_COLUMNS} FROM outbox{where} ORDER BY created_ts, id", params)
        return [_message(r) for r in rows]

    def attempts(self, message_id: str) -> list[DeliveryAttempt]:
        rows = self._read("SELECT message_id, number, at, ok, error, worker FROM attempts"
                          " WHERE message_id = ? ORDER BY rowid", (message_id,))
        return [DeliveryAttempt(r[0], r[1], datetime.fromisoformat(r[2]), bool(r[3] & 1), r[4], r[5], bool(r[3] & 2))
                for r in rows]

    # -- documents ---------------------------------------------------------------------

    def save_document(self, kind: str, doc_id: str, data: Mapping[str, Any], *, version: int) -> None:
        text = dumps(data)
        with self._tx() as con:
            row = con.execute("SELECT version FROM documents WHERE kind = ? AND id = ?", (kind, doc_id)).fetchone()
            have = row[0] if row else 0
            if have != version - 1:
                raise ConcurrencyError(f"{kind} {doc_id} is at version {have}, not {version - 1}; "
                                       "reload it and try again")
            con.execute("INSERT OR REPLACE INTO documents VALUES (?,?,?,?)", (kind, doc_id, version, text))

    def document(self, kind: str, doc_id: str) -> tuple[int, Mapping[str, Any]] | None:
        rows = self._read("SELECT version, data FROM documents WHERE kind = ? AND id = ?", (kind, doc_id))
        return (rows[0][0], loads(rows[0][1])) if rows else None

    def documents(self, kind: str) -> list[tuple[str, int, Mapping[str, Any]]]:
        rows = self._read("SELECT id, version, data FROM documents WHERE kind = ? ORDER BY id", (kind,))
        return [(r[0], r[1], loads(r[2])) for r in rows]

    # -- projections -------------------------------------------------------------------

    def declare(self, projections: Sequence[Projection]) -> None:
        # Tables and indexes already there are not made again, without a write
        # transaction: a worker starts while a long import holds the write lock.
        made = {name for (name,) in self._read("SELECT name FROM sqlite_master")}
        missing = [sql for projection in projections for sql in projection_sql.create_statements(projection, "sqlite")
                   if _CREATED.match(sql).group(1) not in made]  # type: ignore[union-attr]
        if missing:
            with self._tx() as con:
                for sql in missing:
                    con.execute(sql)
        for projection in projections:
            self._projections[projection.name] = projection
            self._statements[projection.name] = _Statements(
                projection.column_names(), projection_sql.select_rows_statement(projection),
                projection_sql.delete_statement(projection, "sqlite"),
                projection_sql.insert_statement(projection, "sqlite"))

    def aggregate(self, projection: Projection, *, measures: Sequence[Measure], group_by: Sequence[Any] = (),
                  where: Sequence[Filter] = ()) -> list[Any]:
        self._ensure_open()  # the read connections below are its own, not the closed one
        if projection.name not in self._projections:
            self.declare([projection])
        if self.path == ":memory:":  # one connection sees that database: it reads in turn
            return projection_sql.aggregate(self._read, projection, measures, group_by, where, "sqlite")
        with self._lock:
            self._ready()
        # A report's aggregates read on connections of their own, not under the store's
        # lock: SQLite steps a statement without Python's lock, so several aggregates
        # (a report runs some side by side) and, within one, the grouped scan and the
        # percentiles' read share the cores. WAL lets them read while others write.
        uri = f"{Path(self.path).resolve().as_uri()}?mode=ro"

        def reader() -> sqlite3.Connection:
            with self._errors():
                return sqlite3.connect(uri, uri=True, check_same_thread=False)

        def read(con: sqlite3.Connection, statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
            with self._errors():
                return [con.execute(sql, params).fetchall() for sql, params in statements]

        def run_all(statements: Sequence[tuple[str, Sequence[Any]]]) -> list[Any]:
            if len(statements) < 2:
                return read(con, statements)
            others: list[Any] = []
            failed: list[BaseException] = []

            def read_others() -> None:
                try:
                    other = reader()
                    try:
                        others.extend(read(other, statements[1:]))
                    finally:
                        other.close()
                except BaseException as exc:  # raised in the caller's thread below
                    failed.append(exc)

            worker = threading.Thread(target=read_others, name="qflow-aggregate-read", daemon=True)
            worker.start()
            try:
                first = read(con, statements[:1])
            finally:
                worker.join()
            if failed:
                raise failed[0]
            return [*first, *others]

        con = reader()
        try:
            return projection_sql.aggregate(lambda sql, params: read(con, [(sql, params)])[0], projection, measures,
                                            group_by, where, "sqlite", run_all=run_all)
        finally:
            con.close()


_OUTBOX_COLUMNS = ("id, incident_id, channel, backend, created_at, created_ts, next_at, next_ts, payload, status,"
                   " attempts, last_error, fallback")


@attrs.frozen
class _Statements:
    """A declared projection's column names and the SQL its writes run."""

    names: tuple[str, ...]
    select: str
    delete: str
    insert: str


def _claim_order(t: Timer) -> tuple[datetime, str, str]:
    return (t.at, t.incident_id, t.key)


def _event(r: Sequence[Any]) -> Event:
    return Event(r[0], r[1], datetime.fromisoformat(r[2]), r[3], actor=r[4], source=r[5], ruleset=r[6],
                 data=_codec.event_data(r[7]))


def _outbox_row(m: OutboxMessage) -> tuple[Any, ...]:
    return (m.id, m.incident_id, m.channel, m.backend, m.created_at.isoformat(), m.created_at.timestamp(),
            m.next_attempt_at.isoformat(), m.next_attempt_at.timestamp(), dumps(m.payload), m.status, m.attempts,
            m.last_error, m.fallback)


def _message(r: Sequence[Any]) -> OutboxMessage:
    return OutboxMessage(id=r[0], incident_id=r[1], channel=r[2], backend=r[3],
                         created_at=datetime.fromisoformat(r[4]), next_attempt_at=datetime.fromisoformat(r[6]),
                         payload=loads(r[8]), status=r[9], attempts=r[10], last_error=r[11], fallback=r[12])


def _writable(path: Path) -> bool:
    return os.access(path, os.W_OK)
