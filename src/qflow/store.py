"""Where incidents and their events live. The kernel defines the interface; stores
other than the in-memory one come from plugins through ``qflow_open_store``."""

from __future__ import annotations

import abc
import threading
from collections.abc import Iterable, Sequence
from datetime import datetime

import attrs

from qflow.errors import ConcurrencyError
from qflow.model import Event, IncidentState, Stage

__all__ = ["CLOSED_STAGES", "Due", "IncidentQuery", "MemoryStore", "Store"]

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
    open_only: bool = False
    limit: int | None = None

    def matches(self, state: IncidentState) -> bool:
        if self.open_only and state.stage in CLOSED_STAGES:
            return False
        if self.stages is not None and state.stage not in self.stages:
            return False
        d = state.decision
        if self.team is not None and (d is None or d.team != self.team):
            return False
        return not (self.severity is not None and (d is None or d.severity != self.severity))


class Store(abc.ABC):
    """The store interface. Each method is one transaction.

    ``append`` is the only write: it adds events to one incident's log and replaces
    that incident's state row together, or does neither.
    """

    @abc.abstractmethod
    def next_id(self) -> str:
        """A new incident id, unique in this store (``INC-1``, ``INC-2`` ...)."""

    @abc.abstractmethod
    def append(self, events: Sequence[Event], state: IncidentState) -> None:
        """Append *events* (one incident, consecutive ``seq``) and store *state*.

        :raises ConcurrencyError: the first event's ``seq`` is not the stored last + 1.
        """

    @abc.abstractmethod
    def get(self, incident_id: str) -> IncidentState | None:
        """The current state of an incident, or None."""

    @abc.abstractmethod
    def events(self, incident_id: str) -> tuple[Event, ...]:
        """An incident's log in ``seq`` order (empty when unknown)."""

    @abc.abstractmethod
    def find_external(self, external_id: str) -> str | None:
        """The id of the incident reported with *external_id*, if any."""

    @abc.abstractmethod
    def query(self, query: IncidentQuery) -> list[IncidentState]:
        """Incidents matching *query*, oldest report first."""

    @abc.abstractmethod
    def due(self, until: datetime) -> list[Due]:
        """Deadlines of open incidents falling at or before *until*, earliest first."""

    def close(self) -> None:  # noqa: B027 - optional for stores with nothing to release
        """Release connections and files."""


class MemoryStore(Store):
    """Everything in dicts; gone when the process ends. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: dict[str, IncidentState] = {}
        self._events: dict[str, list[Event]] = {}
        self._external: dict[str, str] = {}
        self._counter = 0

    def next_id(self) -> str:
        with self._lock:
            self._counter += 1
            while f"INC-{self._counter}" in self._states:
                self._counter += 1
            return f"INC-{self._counter}"

    def append(self, events: Sequence[Event], state: IncidentState) -> None:
        if not events:
            return
        iid = state.id
        with self._lock:
            log = self._events.get(iid, [])
            expected = (log[-1].seq if log else 0) + 1
            for i, event in enumerate(events):
                if event.incident_id != iid or event.seq != expected + i:
                    raise ConcurrencyError(
                        f"{iid}: event seq {event.seq} does not follow {expected + i - 1}; "
                        "reload the incident and try again")
            self._events[iid] = log + list(events)
            self._states[iid] = state
            ext = state.incident.external_id
            if ext is not None:
                self._external.setdefault(ext, iid)

    def get(self, incident_id: str) -> IncidentState | None:
        return self._states.get(incident_id)

    def events(self, incident_id: str) -> tuple[Event, ...]:
        return tuple(self._events.get(incident_id, ()))

    def find_external(self, external_id: str) -> str | None:
        return self._external.get(external_id)

    def query(self, query: IncidentQuery) -> list[IncidentState]:
        with self._lock:
            states: Iterable[IncidentState] = list(self._states.values())
        out = [s for s in states if query.matches(s)]
        return out[: query.limit] if query.limit is not None else out

    def due(self, until: datetime) -> list[Due]:
        found = []
        with self._lock:
            states = list(self._states.values())
        for s in states:
            if s.stage in CLOSED_STAGES or s.decision is None:
                continue
            for d in s.decision.deadlines:
                if d.due <= until:
                    found.append(Due(d.due, s.id, d.clock))
        found.sort(key=lambda d: (d.at, d.incident_id, d.clock))
        return found
