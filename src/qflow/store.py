"""Where incidents and their events live. The kernel defines the interface; stores
other than the in-memory one come from plugins through ``qflow_open_store``."""

from __future__ import annotations

import abc
import heapq
import threading
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from qflow._frozen import FrozenDict, frozen_map
from qflow.errors import ConcurrencyError, DuplicateReportError, QflowError, StoreUnavailableError
from qflow.model import Event, IncidentState, Stage



__all__ = [
    "CLOSED_STAGES", "SchemaError", "StoreError", "DeliveryAttempt", "Due", "Filter", "IncidentQuery", "Measure", "MemoryStore",
    "OutboxMessage", "Projection", "Store", "Timer", "TransientStoreError", "Write",
]

class StoreError(QflowError):
    """The store cannot be opened or used (not a qflow store, unreadable, read-only,
    disk full); the message says which file or server and what to do."""


class SchemaError(StoreError):
    """The stored schema is newer than this qflow knows, or older and not upgraded."""


class TransientStoreError(StoreError, StoreUnavailableError):
    """The store is there but cannot take the command now: another process holds its
    write lock for longer than the store waits, or its disk is full. Nothing was
    written; a long-running worker waits and tries again, as for a database that went
    away."""


#: Stages in which an incident no longer runs any clock.
CLOSED_STAGES = frozenset({Stage.CLOSED, Stage.REJECTED})


@attrs.frozen
class Due:
    """A deadline of an open incident."""

    at: datetime
    incident_id: str
    clock: str


@attrs.frozen
class IncidentQuery:
    """A filter over incidents; None means any."""

    stages: tuple[Stage, ...] | None = None
    team: str | None = None
    severity: str | None = None
    category: str | None = None  # the decided category
    owner: str | None = None
    place: str | None = None
    open_only: bool = False
    reported_from: datetime | None = None  # reported_at >= this
    reported_until: datetime | None = None  # reported_at < this
    overdue_at: datetime | None = None  # open, with a deadline before this still outstanding (see overdue)
    limit: int | None = None

    def matches(self, state: IncidentState, dues: Sequence[Due] | None = None) -> bool:
        """Whether *state* is one this query asks for; *dues* are its clocks' due
        moments as its last write recorded them (``Write.dues``), None for a state
        written without them (then ``overdue_at`` reads its decision's deadlines)."""
        if self.open_only and state.stage in CLOSED_STAGES:
            return False
        if self.stages is not None and state.stage not in self.stages:
            return False
        d = state.decision
        for name in ("team", "severity", "category", "owner"):
            wanted = getattr(self, name)
            if wanted is not None and (d is None or getattr(d, name) != wanted):
                return False
        inc = state.incident
        if self.place is not None and inc.place != self.place:
            return False
        at = inc.reported_at
        if self.reported_from is not None and (at is None or at < self.reported_from):
            return False
        if self.reported_until is not None and (at is None or at >= self.reported_until):
            return False
        if self.overdue_at is None:
            return True
        if dues is None:
            return overdue(state, self.overdue_at)
        return state.stage not in CLOSED_STAGES and any(d.at < self.overdue_at for d in dues)


def clock_dues(state: IncidentState, moments: Mapping[str, datetime | None] | None) -> tuple[Due, ...]:
    """What a write records as *state*'s due moments (``Write.dues``), earliest first:
    each clock's moment from *moments* (what ``qflow_clock_dues`` gave: None for a
    clock paused, stopped or met), and for a clock *moments* leaves out (all of them
    when it is None: no plugin runs clocks) the decision's deadline while it waits for
    what it promises (see :func:`overdue`). Nothing for a closed or rejected incident."""
    if state.stage in CLOSED_STAGES:
        return ()
    iid = state.id
    found = [] if moments is None else [Due(at, iid, clock) for clock, at in moments.items() if at is not None]
    d = state.decision
    if d is not None and d.deadlines:
        left = [dl for dl in d.deadlines if moments is None or dl.clock not in moments]
        if left:  # the first deadline of a clock counts
            found += [Due(dl.due, iid, dl.clock) for dl in {dl.clock: dl for dl in reversed(left)}.values()
                      if _outstanding(state, dl.clock)]
    if len(found) > 1:
        found.sort(key=_due_order)
    return tuple(found)


def _due_order(d: Due) -> tuple[datetime, str, str]:
    return (d.at, d.incident_id, d.clock)


def overdue(state: IncidentState, at: datetime) -> bool:
    """Whether *state* is overdue at *at* by its decision's deadlines alone: open, with a
    deadline of its decision before *at* for what has still not happened. This is what
    a state written without due moments (``Write.dues`` None: written before qflow
    recorded them, or by a caller that did not ask the plugins) is read by; an engine's
    write records the clocks' own due moments (see :func:`clock_dues`), which count
    pauses, resets and severity changes. A deadline met late is no longer overdue (its
    breach stays on the timeline), and a closed or rejected incident is overdue for
    nothing. What each deadline waits for is read off the incident as the default
    clocks stop: acknowledge on an acknowledgement, respond on a response, confirm on
    leaving ``reported``, resolve on the close."""
    if state.stage in CLOSED_STAGES or state.decision is None:
        return False
    return any(dl.due < at and _outstanding(state, dl.clock) for dl in state.decision.deadlines)


def still_due(state: IncidentState, until: datetime, dues: Sequence[Due] | None = None) -> list[Due]:
    """The due moments of *state* at or before *until* (what ``Store.due`` lists): of
    *dues*, as its last write recorded them, or without them of its decision's
    deadlines that still wait for what they promise, as :func:`overdue` reads them.
    None of a closed or rejected incident, none met (also late)."""
    if state.stage in CLOSED_STAGES:
        return []
    if dues is not None:
        return [d for d in dues if d.at <= until]
    if state.decision is None:
        return []
    return [Due(dl.due, state.id, dl.clock) for dl in state.decision.deadlines
            if dl.due <= until and _outstanding(state, dl.clock)]


def outstanding(state: IncidentState, clock: str) -> bool:
    """Whether *state*'s deadline for *clock* still waits (see :func:`overdue`)."""
    return state.stage not in CLOSED_STAGES and _outstanding(state, clock)


def _outstanding(state: IncidentState, clock: str) -> bool:
    if clock == "acknowledge":
        return state.acknowledged_at is None
    if clock == "respond":
        return state.responded_at is None
    if clock == "confirm":
        return state.stage is Stage.REPORTED
    return clock == "resolve"  # until the close, and the incident is open here


@attrs.frozen
class Timer:
    """A moment at which something is due for an incident: the next escalation step of
    a clock, an action reminder, a scheduled verification. ``key`` names it within the
    incident (``clock:respond``, ``action:A-1``, ``verify``); plugins return timers from
    ``qflow_schedule`` and the store keeps them indexed by ``at``, so ``tick`` never
    scans open incidents."""

    incident_id: str
    key: str
    at: datetime


@attrs.frozen
class OutboxMessage:
    """A notification waiting to be delivered, written in the same transaction as the
    event that caused it. ``id`` is the idempotency key: a message with a known id is
    never stored twice, and backends pass it on so receivers can drop repeats."""

    id: str
    incident_id: str
    channel: str
    backend: str
    created_at: datetime
    next_attempt_at: datetime
    payload: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)
    status: str = "pending"  # pending, delivered, dead
    attempts: int = 0
    last_error: str | None = None
    fallback: str | None = None  # channel to try once this one is dead


@attrs.frozen
class DeliveryAttempt:
    """One try at delivering an outbox message."""

    message_id: str
    number: int
    at: datetime
    ok: bool
    error: str | None = None
    worker: str | None = None
    #: The worker had lost its claim when it recorded this try (its lease ran out and
    #: another worker took the message, or delivered it): the try is kept, the
    #: message's status is not changed by it.
    stale: bool = False


#: Column types of a projection: text, integer, real (times are real epoch seconds).
COLUMN_TYPES = ("text", "int", "real")


@attrs.frozen
class Projection:
    """A table of one row per incident that a plugin keeps up to date through
    ``qflow_project``, so figures over many incidents are aggregated in the database
    (``Store.aggregate``) instead of loading incidents. Declared by ``qflow_projections``.
    """

    name: str
    columns: tuple[tuple[str, str], ...] = attrs.field(converter=tuple)  # (name, type in COLUMN_TYPES)
    doc: str = ""

    def column_names(self) -> tuple[str, ...]:
        return tuple(c for c, _ in self.columns)


@attrs.frozen
class Filter:
    """``column op value``; op is one of == != < <= > >= in "is null" "not null"."""

    column: str
    op: str
    value: Any = None


@attrs.frozen
class Measure:
    """One aggregate over a projection column: ``count`` (rows, or non-null values of
    *column*), ``count_distinct``, ``sum``, ``avg``, ``min``, ``max``, ``median`` or ``p90`` (nearest rank:
    the smallest value with at least 90% of the values at or below it)."""

    fn: str
    column: str | None = None
    where: tuple[Filter, ...] = attrs.field(default=(), converter=tuple)  # only rows where all hold


@attrs.frozen
class Write:
    """Everything one command writes for one incident, in one transaction.

    ``timers=None`` leaves the incident's timers as they are; a tuple replaces them all
    (empty clears them)."""

    events: tuple[Event, ...] = attrs.field(converter=tuple)
    state: IncidentState
    timers: tuple[Timer, ...] | None = None
    outbox: tuple[OutboxMessage, ...] = attrs.field(default=(), converter=tuple)
    #: projection name -> the incident's rows there: one mapping, a list of them, or None
    #: (no rows); they replace the incident's previous rows in that projection.
    rows: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)
    #: For a new incident with a dedup key: the earliest report time an open incident
    #: with that key may have to take this report as a further one. The store refuses
    #: the write (:class:`DuplicateReportError`) when such an incident was recorded
    #: after the engine looked, so two workers cannot both open one for one anomaly.
    dedup_since: datetime | None = None
    #: The incident's due moments after this write, earliest first (see
    #: :func:`clock_dues`): what ``IncidentQuery.overdue_at`` and ``Store.due`` read
    #: until its next write. None (a write that did not ask the plugins) leaves them to
    #: be read off the state's decision, as :func:`overdue` does.
    dues: tuple[Due, ...] | None = attrs.field(default=None, converter=attrs.converters.optional(tuple))


class Store(abc.ABC):
    """The store interface. Each method is one transaction.

    ``append`` is the only write: it adds events to one incident's log and replaces
    that incident's state row together, or does neither.
    """

    @abc.abstractmethod
    def next_id(self) -> str:
        """A new incident id, unique in this store (``INC-1``, ``INC-2`` ...)."""

    def append(self, events: Sequence[Event], state: IncidentState, *,
               timers: Sequence[Timer] | None = None, outbox: Sequence[OutboxMessage] = ()) -> None:
        """Append *events* (one incident, consecutive ``seq``), store *state*, replace
        the incident's timers (unless None) and add *outbox* messages, all or nothing.

        :raises ConcurrencyError: the first event's ``seq`` is not the stored last + 1.
        """
        self.write([Write(tuple(events), state, None if timers is None else tuple(timers), tuple(outbox))])

    @abc.abstractmethod
    def write(self, writes: Sequence[Write]) -> None:
        """Apply *writes* (any number of incidents) in one transaction, all or nothing.

        :raises ConcurrencyError: a write's first ``seq`` is not its incident's last + 1.
        """

    # -- timers ------------------------------------------------------------------------

    @abc.abstractmethod
    def claim_timers(self, until: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[Timer]:
        """Claim up to *limit* timers due at or before *until*, earliest first.

        A claimed timer is not handed to another worker until *lease_until* passes (or
        the claim is released); replacing an incident's timers through ``write`` drops
        its claims. Several workers never get the same timer while a lease holds.
        A store may hold an incident's other due timers with the ones it hands out
        (SQLite keeps an incident's timers in one row and claims them together): the
        claimer gets those later (claiming again as the same worker), others after the
        lease.
        """

    @abc.abstractmethod
    def release_timers(self, worker: str) -> None:
        """Give back every claim *worker* holds (graceful shutdown)."""

    @abc.abstractmethod
    def timers(self, incident_id: str | None = None) -> list[Timer]:
        """Pending timers (of one incident, or all), earliest first."""

    # -- documents ---------------------------------------------------------------------

    @abc.abstractmethod
    def save_document(self, kind: str, doc_id: str, data: Mapping[str, Any], *, version: int) -> None:
        """Store a document that is not an incident (a problem record, a known error,
        an assessment score) as JSON data. *version* is the new version: 1 creates it,
        N replaces version N - 1.

        :raises ConcurrencyError: the stored version is not *version* - 1.
        """

    @abc.abstractmethod
    def document(self, kind: str, doc_id: str) -> tuple[int, Mapping[str, Any]] | None:
        """``(version, data)`` of one document, or None."""

    @abc.abstractmethod
    def documents(self, kind: str) -> list[tuple[str, int, Mapping[str, Any]]]:
        """Every document of *kind* as ``(id, version, data)``, in id order."""

    # -- outbox --------------------------------------------------------------------------

    @abc.abstractmethod
    def claim_outbox(self, now: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[OutboxMessage]:
        """Claim up to *limit* pending messages whose ``next_attempt_at`` has come."""

    @abc.abstractmethod
    def record_delivery(self, message: OutboxMessage, attempt: DeliveryAttempt,
                        write: Write | None = None) -> bool:
        """Record *attempt* and, while ``attempt.worker`` still holds the message's claim
        and the message is pending, store *message* as it now stands (status, attempts,
        next_attempt_at, error) and apply *write* (e.g. a dead-letter event on the
        incident), in one transaction; the message's claim is released.

        A worker whose claim is gone (its lease ran out and another worker claimed the
        message, or delivered it) changes nothing: its try is recorded with
        ``stale=True`` and False is returned, so a late failure never undoes another
        worker's delivery. Every try is kept, numbered after the ones stored before it.
        """

    @abc.abstractmethod
    def outbox(self, *, incident_id: str | None = None, status: str | None = None) -> list[OutboxMessage]:
        """Outbox messages, oldest first."""

    @abc.abstractmethod
    def attempts(self, message_id: str) -> list[DeliveryAttempt]:
        """Every attempt at delivering one message, in order."""

    @abc.abstractmethod
    def get(self, incident_id: str) -> IncidentState | None:
        """The current state of an incident, or None."""

    @abc.abstractmethod
    def events(self, incident_id: str) -> tuple[Event, ...]:
        """An incident's log in ``seq`` order (empty when unknown)."""

    def read_many(self, incident_ids: Sequence[str]) -> dict[str, tuple[IncidentState, tuple[Event, ...]]]:
        """The state and the log of each of *incident_ids* that is recorded (unknown ones
        are left out): what ``tick`` reads for a batch of due incidents. A store that
        can read them in one go (one query for the states, one for the logs) overrides
        this; each state and its log must be read in one transaction, as one."""
        out = {}
        for iid in incident_ids:
            state = self.get(iid)
            if state is not None:
                out[iid] = (state, self.events(iid))
        return out

    @abc.abstractmethod
    def find_external(self, external_id: str) -> str | None:
        """The id of the incident reported with *external_id*, if any."""

    def find_dedup(self, dedup_key: str, since: datetime) -> str | None:
        """The id of the open incident reported with *dedup_key* at or after *since*
        (the latest such report when there are several), or None."""
        raise NotImplementedError(f"{type(self).__name__} does not look up dedup keys yet")

    def next_ids(self, count: int) -> list[str]:
        """*count* new incident ids at once (batch intake)."""
        return [self.next_id() for _ in range(count)]

    def count(self, query: IncidentQuery) -> int:
        """How many incidents match *query* (its ``limit`` aside)."""
        return len(self.query(attrs.evolve(query, limit=None)))

    def schema_version(self) -> int:
        """The schema version this store's data is at (0 for a store without a schema)."""
        return 0

    def upgrade(self) -> tuple[int, int]:
        """Migrate the stored data forward to the schema this qflow knows, in one
        transaction; return ``(from, to)``. A store at the current version is left alone."""
        version = self.schema_version()
        return (version, version)

    @abc.abstractmethod
    def query(self, query: IncidentQuery) -> list[IncidentState]:
        """Incidents matching *query*, oldest report first."""

    @abc.abstractmethod
    def due(self, until: datetime) -> list[Due]:
        """Due moments of open incidents at or before *until*, earliest first: those
        each incident's last write recorded (``Write.dues``: the clocks', so a paused
        clock is not due and a met one, even late, neither), or for an incident written
        without them its decision's deadlines still outstanding (see :func:`still_due`)."""

    def without_dues(self) -> int:
        """How many open incidents were last written without due moments (``Write.dues``
        None: before this qflow recorded them, or by a caller that did not ask the
        plugins), so that their ``overdue_at`` and ``due`` read their decision's
        deadlines, which know no pause, reset or severity change. ``qflow db upgrade``
        with a ruleset records them (``Engine.record_dues``)."""
        return 0

    # -- projections -------------------------------------------------------------------

    def declare(self, projections: Sequence[Projection]) -> None:  # noqa: B027 - nothing to prepare in memory
        """Get ready to keep *projections* (SQL stores create their tables and indexes).
        The engine calls this once, with what ``qflow_projections`` declares."""

    def aggregate(self, projection: Projection, *, measures: Sequence[Measure], group_by: Sequence[Any] = (),
                  where: Sequence[Filter] = ()) -> list[Any]:
        """Aggregate the rows of *projection*: one tuple per group, the group values
        first, then one value per measure; groups sorted by their values.

        *group_by* is one grouping (column names) or grouping sets (a sequence of
        column-name sequences, e.g. ``[(), ("team",), ("category",)]``): then the answer
        is one such list per set, each what that set alone as *group_by* gives, from
        one pass over the rows where the store can (``aggregate_rows`` is the
        reference)."""
        raise NotImplementedError(f"{type(self).__name__} cannot aggregate projections yet")

    def close(self) -> None:  # noqa: B027 - optional for stores with nothing to release
        """Release connections and files. Every call after it raises the
        :class:`StoreError` of :func:`closed_error`, in every store; closing again
        does nothing."""


def closed_error(store: str) -> StoreError:
    """The error every store gives for a call after its ``close()``; *store* names it
    (its file, its URL without the password, ``memory://``)."""
    return StoreError(f"the store {store} is closed: close() was called on it (by the application, "
                      "or AsyncEngine.aclose()); open the store again (a new Engine) to go on")


def external_conflict(incident_id: str, external_id: str, owner: str) -> DuplicateReportError:
    """The error every store gives when a second incident claims a known external id."""
    return DuplicateReportError(f"{incident_id}: external id '{external_id}' is already recorded for {owner}; "
                                f"the report is a retry of {owner}: read that incident instead of writing a new one")


def dedup_conflict(incident_id: str, dedup_key: str, owner: str) -> DuplicateReportError:
    """The error every store gives when an open incident with a new one's dedup key
    was recorded within the window after the engine looked (``Write.dedup_since``)."""
    return DuplicateReportError(f"{incident_id}: {owner} with dedup key '{dedup_key}' was recorded meanwhile; "
                                f"the report is a further report of {owner}: attach it there instead of "
                                "writing a new incident")


def new_with_key(write: Write) -> str | None:
    """The dedup key a store must check *write* against (``Write.dedup_since``):
    that of a new incident whose write asks for the check, else None."""
    if write.dedup_since is None or not write.events or write.events[0].seq != 1:
        return None
    return write.state.incident.dedup_key


def _timer_order(t: Timer) -> tuple[datetime, str]:
    return (t.at, t.key)


def _report_order(state: IncidentState) -> tuple[datetime, int, str]:
    # Oldest report first; ids of one store compare by their number (INC-9 < INC-10).
    at = state.incident.reported_at or state.updated_at
    tail = state.id.rsplit("-", 1)[-1]
    return (at, int(tail) if tail.isdigit() else 0, state.id)


class MemoryStore(Store):
    """Everything in dicts; gone when the process ends. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.RLock()  # record_delivery writes under it
        self._states: dict[str, IncidentState] = {}
        self._events: dict[str, list[Event]] = {}
        self._external: dict[str, str] = {}
        self._dedup: dict[str, list[str]] = {}
        self._timers: dict[str, tuple[Timer, ...]] = {}
        self._timer_claims: dict[tuple[str, str], tuple[str, datetime | None]] = {}
        # (at, incident, key) of every timer ever set; entries whose timer was replaced
        # are dropped when they surface, so claiming never looks at timers not due.
        self._timer_heap: list[tuple[datetime, str, str]] = []
        self._timer_count = 0
        self._outbox: dict[str, OutboxMessage] = {}
        self._outbox_claims: dict[str, tuple[str, datetime | None]] = {}
        self._attempts: dict[str, list[DeliveryAttempt]] = {}
        self._documents: dict[tuple[str, str], tuple[int, dict[str, Any]]] = {}
        self._rows: dict[str, dict[str, list[Mapping[str, Any]]]] = {}
        self._dues: dict[str, tuple[Due, ...]] = {}  # as the last write recorded them, if it did
        self._counter = 0
        self._closed = False

    def _ensure_open(self) -> None:
        if self._closed:
            raise closed_error("memory://")

    def close(self) -> None:
        """Refuse every call from now on, as the stores on a database do."""
        self._closed = True

    def schema_version(self) -> int:
        self._ensure_open()
        return 0

    def next_id(self) -> str:
        self._ensure_open()
        with self._lock:
            self._counter += 1
            while f"INC-{self._counter}" in self._states:
                self._counter += 1
            return f"INC-{self._counter}"

    def _check(self, write: Write, pending: dict[str, int]) -> None:
        iid = write.state.id
        last = pending.get(iid)
        if last is None:
            log = self._events.get(iid)
            last = log[-1].seq if log else 0
        for i, event in enumerate(write.events):
            if event.incident_id != iid or event.seq != last + 1 + i:
                raise ConcurrencyError(
                    f"{iid}: event seq {event.seq} does not follow {last + i}; "
                    "reload the incident and try again")
        if not write.events and write.state.seq != last:
            # A write of timers alone must not put back a state someone has moved on from.
            raise ConcurrencyError(f"{iid}: state at seq {write.state.seq} is stale (the log is at {last}); "
                                   "reload the incident and try again")
        pending[iid] = last + len(write.events)
        ext = write.state.incident.external_id
        if ext is not None:
            owner = self._external.get(ext) or pending.get(("external", ext))  # type: ignore[call-overload]
            if owner is not None and owner != iid:
                raise external_conflict(iid, ext, owner)
            pending[("external", ext)] = iid  # type: ignore[index]
        key = new_with_key(write)
        if key is not None:
            assert write.dedup_since is not None
            owner = self._open_with_key(key, write.dedup_since)
            if owner is not None:
                raise dedup_conflict(iid, key, owner)

    def write(self, writes: Sequence[Write]) -> None:
        self._ensure_open()
        with self._lock:
            pending: dict[str, int] = {}
            for w in writes:  # check everything before changing anything
                self._check(w, pending)
                for name in w.rows:
                    if name not in self._rows:
                        raise StoreError(undeclared(name))
            for w in writes:
                iid = w.state.id
                if w.events:
                    self._events.setdefault(iid, []).extend(w.events)
                self._states[iid] = w.state
                if w.dues is not None:
                    self._dues[iid] = w.dues
                else:
                    self._dues.pop(iid, None)
                ext = w.state.incident.external_id
                if ext is not None:
                    self._external.setdefault(ext, iid)
                key = w.state.incident.dedup_key
                if key is not None and iid not in self._dedup.get(key, ()):
                    self._dedup.setdefault(key, []).append(iid)
                if w.timers is not None:
                    old = self._timers.get(iid, ())
                    self._timer_count += len(w.timers) - len(old)
                    self._timers[iid] = tuple(sorted(w.timers, key=_timer_order))
                    for t in w.timers:
                        heapq.heappush(self._timer_heap, (t.at, iid, t.key))
                    if len(self._timer_heap) > 2 * self._timer_count + 1024:
                        self._timer_heap = [(t.at, t.incident_id, t.key) for ts in self._timers.values() for t in ts]
                        heapq.heapify(self._timer_heap)
                    if self._timer_claims:
                        # Claims are only ever made on the incident's timers as they stand.
                        for t in old:
                            self._timer_claims.pop((iid, t.key), None)
                for m in w.outbox:
                    self._outbox.setdefault(m.id, m)
                for name, rows in w.rows.items():
                    self._rows.setdefault(name, {})[iid] = projection_rows(rows)

    def get(self, incident_id: str) -> IncidentState | None:
        self._ensure_open()
        return self._states.get(incident_id)

    def events(self, incident_id: str) -> tuple[Event, ...]:
        self._ensure_open()
        return tuple(self._events.get(incident_id, ()))

    def find_external(self, external_id: str) -> str | None:
        self._ensure_open()
        return self._external.get(external_id)

    def find_dedup(self, dedup_key: str, since: datetime) -> str | None:
        self._ensure_open()
        with self._lock:
            return self._open_with_key(dedup_key, since)

    def _open_with_key(self, dedup_key: str, since: datetime) -> str | None:
        found = [s for s in (self._states[i] for i in self._dedup.get(dedup_key, ()))
                 if s.stage not in CLOSED_STAGES and s.incident.reported_at is not None
                 and s.incident.reported_at >= since]
        found.sort(key=_report_order)
        return found[-1].id if found else None

    def query(self, query: IncidentQuery) -> list[IncidentState]:
        self._ensure_open()
        with self._lock:
            states: Iterable[IncidentState] = list(self._states.values())
            dues = dict(self._dues) if query.overdue_at is not None else {}  # only overdue_at reads them
        out = sorted((s for s in states if query.matches(s, dues.get(s.id))), key=_report_order)
        return out[: query.limit] if query.limit is not None else out

    def due(self, until: datetime) -> list[Due]:
        self._ensure_open()
        with self._lock:
            states = list(self._states.values())
            dues = dict(self._dues)
        found = [d for s in states for d in still_due(s, until, dues.get(s.id))]
        found.sort(key=_due_order)
        return found

    def without_dues(self) -> int:
        with self._lock:
            return sum(1 for iid, s in self._states.items() if s.stage not in CLOSED_STAGES and iid not in self._dues)

    # -- timers ------------------------------------------------------------------------

    @staticmethod
    def _free(claim: tuple[str, datetime | None] | None, worker: str, now: datetime) -> bool:
        if claim is None:
            return True
        holder, until = claim
        return holder == worker or (until is not None and until <= now)

    def claim_timers(self, until: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[Timer]:
        self._ensure_open()
        with self._lock:
            heap = self._timer_heap
            out: list[Timer] = []
            pending: list[tuple[datetime, str, str]] = []
            seen: set[tuple[datetime, str, str]] = set()
            while heap and heap[0][0] <= until and len(out) < limit:
                entry = heapq.heappop(heap)
                at, iid, key = entry
                if entry in seen:
                    continue  # a repeat
                timer = next((t for t in self._timers.get(iid, ()) if t.key == key and t.at == at), None)
                if timer is None:
                    continue  # a timer replaced since
                seen.add(entry)
                pending.append(entry)  # claimed or not, it stays until its incident is written
                k = (iid, key)
                if self._free(self._timer_claims.get(k), worker, until):
                    self._timer_claims[k] = (worker, lease_until)
                    out.append(timer)  # the stored one: timers are frozen
            for entry in pending:
                heapq.heappush(heap, entry)
            return out

    def release_timers(self, worker: str) -> None:
        self._ensure_open()
        with self._lock:
            for k in [k for k, (w, _) in self._timer_claims.items() if w == worker]:
                del self._timer_claims[k]
            for k in [k for k, (w, _) in self._outbox_claims.items() if w == worker]:
                del self._outbox_claims[k]

    def timers(self, incident_id: str | None = None) -> list[Timer]:
        self._ensure_open()
        with self._lock:
            if incident_id is not None:
                return list(self._timers.get(incident_id, ()))
            return sorted((t for ts in self._timers.values() for t in ts), key=lambda t: (t.at, t.incident_id, t.key))

    # -- outbox --------------------------------------------------------------------------

    def claim_outbox(self, now: datetime, *, worker: str, limit: int = 100,
                     lease_until: datetime | None = None) -> list[OutboxMessage]:
        self._ensure_open()
        with self._lock:
            ready = sorted((m for m in self._outbox.values() if m.status == "pending" and m.next_attempt_at <= now),
                           key=lambda m: (m.next_attempt_at, m.created_at, m.id))
            out = []
            for m in ready:
                if self._free(self._outbox_claims.get(m.id), worker, now):
                    self._outbox_claims[m.id] = (worker, lease_until)
                    out.append(m)
                    if len(out) >= limit:
                        break
            return out

    def record_delivery(self, message: OutboxMessage, attempt: DeliveryAttempt, write: Write | None = None) -> bool:
        self._ensure_open()
        with self._lock:
            stored = self._outbox.get(message.id)
            holder = self._outbox_claims.get(message.id, (None, None))[0]
            held = stored is None or (stored.status == "pending" and holder == attempt.worker)
            if held and write is not None:
                self.write([write])  # may raise ConcurrencyError: then nothing is recorded
            tries = self._attempts.setdefault(message.id, [])
            number = max(attempt.number, tries[-1].number + 1 if tries else 1)
            tries.append(attrs.evolve(attempt, number=number, stale=not held))
            if held:
                self._outbox[message.id] = message
                self._outbox_claims.pop(message.id, None)
            return held

    def declare(self, projections: Sequence[Projection]) -> None:
        self._ensure_open()
        with self._lock:
            for p in projections:
                self._rows.setdefault(p.name, {})

    def aggregate(self, projection: Projection, *, measures: Sequence[Measure], group_by: Sequence[Any] = (),
                  where: Sequence[Filter] = ()) -> list[Any]:
        self._ensure_open()
        with self._lock:
            rows = [r for per_incident in self._rows.get(projection.name, {}).values() for r in per_incident]
        return aggregate_rows(rows, projection, measures, group_by, where)

    def save_document(self, kind: str, doc_id: str, data: Mapping[str, Any], *, version: int) -> None:
        self._ensure_open()
        with self._lock:
            have = self._documents.get((kind, doc_id), (0, {}))[0]
            if have != version - 1:
                raise ConcurrencyError(f"{kind} {doc_id} is at version {have}, not {version - 1}; reload it and try again")
            self._documents[(kind, doc_id)] = (version, dict(data))

    def document(self, kind: str, doc_id: str) -> tuple[int, Mapping[str, Any]] | None:
        self._ensure_open()
        return self._documents.get((kind, doc_id))

    def documents(self, kind: str) -> list[tuple[str, int, Mapping[str, Any]]]:
        self._ensure_open()
        with self._lock:
            return sorted((i, v, d) for (k, i), (v, d) in self._documents.items() if k == kind)

    def outbox(self, *, incident_id: str | None = None, status: str | None = None) -> list[OutboxMessage]:
        self._ensure_open()
        with self._lock:
            found = [m for m in self._outbox.values()
                     if (incident_id is None or m.incident_id == incident_id) and (status is None or m.status == status)]
        return sorted(found, key=lambda m: (m.created_at, m.id))

    def attempts(self, message_id: str) -> list[DeliveryAttempt]:
        self._ensure_open()
        with self._lock:
            return list(self._attempts.get(message_id, ()))


# -- aggregation in Python (the memory store; the reference the SQL stores are tested against)

_OPS: Mapping[str, Any] = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b,
    "<": lambda a, b: a is not None and a < b, "<=": lambda a, b: a is not None and a <= b,
    ">": lambda a, b: a is not None and a > b, ">=": lambda a, b: a is not None and a >= b,
    "in": lambda a, b: a in b, "is null": lambda a, _b: a is None, "not null": lambda a, _b: a is not None,
}
MEASURES = ("count", "count_distinct", "sum", "avg", "min", "max", "median", "p90")


def undeclared(name: str) -> str:
    return (f"projection '{name}' was not declared to this store; a plugin returned rows from qflow_project "
            "without declaring them in qflow_projections")


def projection_rows(value: Any) -> list[Mapping[str, Any]]:
    """The rows of one incident in a projection, however ``qflow_project`` gave them."""
    if value is None:
        return []
    if type(value) is FrozenDict or isinstance(value, Mapping):  # the exact type first: an ABC check is slow
        return [value]
    return list(value)


def check_query(projection: Projection, measures: Sequence[Measure], group_by: Sequence[str],
                where: Sequence[Filter]) -> None:
    """Refuse unknown columns, functions and operators before any SQL is built."""
    names = set(projection.column_names())
    conditions = [*where, *(f for m in measures for f in m.where)]
    for col in [*group_by, *(f.column for f in conditions), *(m.column for m in measures if m.column is not None)]:
        if col not in names:
            raise ValueError(f"projection {projection.name} has no column '{col}'; it has: {', '.join(sorted(names))}")
    for m in measures:
        if m.fn not in MEASURES or (m.column is None and m.fn != "count"):
            raise ValueError(f"unknown measure {m.fn}({m.column or ''}); use one of {', '.join(MEASURES)}")
    for f in conditions:
        if f.op not in _OPS:
            raise ValueError(f"unknown operator '{f.op}'; use one of {', '.join(_OPS)}")


def nearest_rank(values: Sequence[Any], fraction: float) -> Any:
    """The smallest value with at least *fraction* of *values* at or below it (sorted input)."""
    if not values:
        return None
    k = round(fraction * 100)  # in whole percent, so the rank is exact integer arithmetic
    return values[max(1, (len(values) * k + 99) // 100) - 1]


def aggregate_rows(rows: Iterable[Mapping[str, Any]], projection: Projection, measures: Sequence[Measure],
                   group_by: Sequence[Any], where: Sequence[Filter]) -> list[Any]:
    """The reference aggregate. *group_by* is one grouping (column names), or grouping
    sets (a sequence of column-name sequences): then one result per set, each what that
    set alone as *group_by* gives."""
    if group_by and not isinstance(group_by[0], str):
        rows = list(rows)
        check_query(projection, measures, [c for g in group_by for c in g], where)
        return [aggregate_rows(rows, projection, measures, tuple(g), where) for g in group_by]
    check_query(projection, measures, group_by, where)
    groups: dict[tuple[Any, ...], list[Mapping[str, Any]]] = {}
    for row in rows:
        if all(_OPS[f.op](row.get(f.column), f.value) for f in where):
            groups.setdefault(tuple(row.get(c) for c in group_by), []).append(row)
    if not group_by and not groups:
        groups[()] = []  # like SQL: an aggregate without GROUP BY is one row, even over nothing
    out = []
    for key in sorted(groups, key=lambda k: tuple((v is not None, v) for v in k)):
        members = groups[key]
        values = []
        for m in measures:
            rows_m = [r for r in members if all(_OPS[f.op](r.get(f.column), f.value) for f in m.where)]
            if m.column is None:
                values.append(len(rows_m))
                continue
            col = [r.get(m.column) for r in rows_m]
            present = sorted(v for v in col if v is not None)
            if m.fn == "count":
                values.append(len(present))
            elif m.fn == "count_distinct":
                values.append(len(set(present)))
            elif m.fn == "sum":
                values.append(sum(present) if present else None)
            elif m.fn == "avg":
                values.append(sum(present) / len(present) if present else None)
            elif m.fn == "min":
                values.append(present[0] if present else None)
            elif m.fn == "max":
                values.append(present[-1] if present else None)
            elif m.fn == "median":
                values.append(nearest_rank(present, 0.5))
            else:
                values.append(nearest_rank(present, 0.9))
        out.append(key + tuple(values))
    return out
