"""Intake beyond one report: the same anomaly through several channels, and batches.

Mixed into :class:`qflow.Engine`. A report is recognised as already known in two ways:

- its ``external_id`` (the id the sending system gave it) is recorded: it is a retry,
  and nothing new is written;
- its ``dedup_key`` matches an open incident reported within the ruleset's
  ``intake.dedup_window`` before it: it is the same anomaly through another channel,
  and it is attached to that incident as a further report (``ReportAttached``),
  never dropped. A repeat of an attached report with the same ``external_id``
  attaches nothing more.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from qflow import events as ev
from qflow.model import Event, Incident, IncidentState, Notification, Stage
from qflow.store import Write

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["Intake"]

_DEFAULT_WINDOW = timedelta(hours=2)


class Intake(_Base):
    def dedup_window(self) -> timedelta:
        """How far back a ``dedup_key`` finds an open incident (``intake.dedup_window``)."""
        intake = self.ruleset.compiled("intake")
        return getattr(intake, "dedup_window", _DEFAULT_WINDOW)

    def _attach_duplicate(self, incident: Incident, now: datetime, actor: str | None) -> IncidentState | None:
        """Attach *incident* to the open incident its dedup key names, if any."""
        assert incident.dedup_key is not None
        window = self.dedup_window()
        if window <= timedelta(0):
            return None
        target = self.store.find_dedup(incident.dedup_key, (incident.reported_at or now) - window)
        if target is None:
            return None
        state = self.store.get(target)
        assert state is not None
        history = self.store.events(target)
        if _already_attached(history, incident):
            return state
        return self._record_many(state, [(ev.REPORT_ATTACHED, _attached_data(self, incident), "report")],
                                 actor=actor, now=now)

    def report_many(self, incidents: Iterable[Incident | Mapping[str, Any]], *,
                    actor: str | None = None) -> list[IncidentState]:
        """Record a batch of reports in one store transaction, all or nothing.

        Each report is handled as :meth:`report` would (retries by ``external_id``
        return the recorded incident, ``dedup_key`` attaches to an open one, also to
        one earlier in the same batch); returns one state per report, in order.
        """
        from qflow.engine import parse_incident

        now = self.clock.now()
        given = [i if isinstance(i, Incident) else parse_incident(i, converter=self._conv) for i in incidents]
        window = self.dedup_window()
        by_external: dict[str, str] = {}
        by_key: dict[str, list[str]] = {}
        # incident id -> [state, history, new events, notifications]; one write per incident
        touched: dict[str, list[Any]] = {}
        order: list[str] = []
        out: list[str] = []
        fresh = iter(self.store.next_ids(sum(1 for i in given if i.id is None)))
        known_errors = self.known_errors()  # one read for the whole batch
        for incident in given:
            if incident.external_id is not None:
                known = by_external.get(incident.external_id) or self.store.find_external(incident.external_id)
                if known is not None:
                    out.append(known)
                    continue
            if incident.reported_at is None:
                incident = attrs.evolve(incident, reported_at=now)
            assert incident.reported_at is not None
            target = None
            if incident.dedup_key is not None and window > timedelta(0):
                since = incident.reported_at - window
                for iid in reversed(by_key.get(incident.dedup_key, ())):
                    s = touched[iid][0]
                    if s.incident.reported_at >= since and s.stage not in (Stage.CLOSED, Stage.REJECTED):
                        target = iid
                        break
                if target is None:
                    target = self.store.find_dedup(incident.dedup_key, since)
            if target is not None:
                if target not in touched:
                    stored = self.store.get(target)
                    assert stored is not None
                    touched[target] = [stored, self.store.events(target), [], []]
                    order.append(target)
                entry = touched[target]
                if not _already_attached(tuple(entry[1]) + tuple(entry[2]), incident):
                    event = Event(target, entry[0].seq + 1, now, ev.REPORT_ATTACHED, actor=actor, source="report",
                                  ruleset=self.ruleset.ref, data=_attached_data(self, incident))
                    entry[0] = ev.apply(entry[0], event, self._conv)
                    entry[2].append(event)
                if incident.external_id is not None:
                    by_external[incident.external_id] = target
                out.append(target)
                continue
            if incident.id is None:
                incident = attrs.evolve(incident, id=next(fresh))
            elif incident.id in touched or self.store.get(incident.id) is not None:
                from qflow.errors import InputError

                raise InputError(f"incident {incident.id} is already recorded; report without an id to get a new one")
            iid = incident.id
            assert iid is not None
            decision = self.decide(incident, now)
            events = self._arrival(incident, decision, now, actor, known_errors)
            state = ev.fold(events, self._conv) if len(events) > 2 else IncidentState(
                incident=incident, stage=Stage.REPORTED, seq=2, updated_at=now, decision=decision)
            touched[iid] = [state, (), events, [self._notification(state, "incident.reported", now)]]
            order.append(iid)
            if incident.external_id is not None:
                by_external[incident.external_id] = iid
            if incident.dedup_key is not None:
                by_key.setdefault(incident.dedup_key, []).append(iid)
            out.append(iid)
        writes: list[Write] = []
        for iid in order:
            state, history, new, notes = touched[iid]
            if new:
                writes.append(self._write(tuple(history) + tuple(new), tuple(new), state,
                                          tuple(notes), now))
        if writes:
            self.store.write(writes)
        final = {w.state.id: w.state for w in writes}
        for w in writes:
            notes: Sequence[Notification] = touched[w.state.id][3]
            for note in notes:
                self._broadcast(w.state, note, now)
        return [final.get(iid) or self.store.get(iid) for iid in out]  # type: ignore[misc]


def _attached_data(engine: Any, incident: Incident) -> dict[str, Any]:
    return {"report": engine._conv.unstructure(incident), "channel": incident.channel,
            "dedup_key": incident.dedup_key}


def _already_attached(history: Sequence[Event], incident: Incident) -> bool:
    """A retry of a report that was attached before (same external id)."""
    if incident.external_id is None:
        return False
    return any(e.type == ev.REPORT_ATTACHED and (e.data.get("report") or {}).get("external_id") == incident.external_id
               for e in history)
