"""Intake beyond one report: the same anomaly through several channels, and batches.

Mixed into :class:`qflow.Engine`. A report is recognised as already known in three ways:

- its ``external_id`` (the id the sending system gave it) is recorded: it is a retry,
  and nothing new is written;
- its ``id`` is recorded and it repeats that incident's report (the same facts): a
  retry too; another report under a taken id is refused (``InputError``);
- its ``dedup_key`` matches an open incident reported within the ruleset's
  ``intake.dedup_window`` before it: it is the same anomaly through another channel,
  and it is attached to that incident as a further report (``ReportAttached``),
  never dropped. A repeat of an attached report with the same ``external_id`` (or
  ``id``) attaches nothing more.

A blank key ("" or spaces, as many senders write a field they have no value for) is
no key (``Incident`` turns it into None). Several workers may take the same retry or
the same anomaly at once: the store refuses the write of a second incident for a
recorded external id, or for a dedup key an open incident took meanwhile
(``DuplicateReportError``), and the engine runs the report again, which then finds it.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Iterable, Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from qflow import events as ev
from qflow._convert import format_duration
from qflow.errors import InputError, PluginError
from qflow.model import Event, Incident, IncidentState, Notification, Stage
from qflow.store import Write

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["ATTACHED", "NEW", "RETRY", "Intake", "report_differences", "within_calendar"]

_DEFAULT_WINDOW = timedelta(hours=2)
_DEFAULT_SKEW = timedelta(minutes=5)


class Intake(_Base):
    def dedup_window(self) -> timedelta:
        """How far back a ``dedup_key`` finds an open incident (``intake.dedup_window``)."""
        intake = self.ruleset.compiled("intake")
        return getattr(intake, "dedup_window", _DEFAULT_WINDOW)

    def clock_skew(self) -> timedelta:
        """How far a report's ``reported_at`` may be ahead of qflow's clock (``intake.clock_skew``)."""
        intake = self.ruleset.compiled("intake")
        return getattr(intake, "clock_skew", _DEFAULT_SKEW)

    def _not_ahead(self, incident: Incident, now: datetime) -> None:
        """Refuse a new report whose ``reported_at`` is further ahead of *now* than the
        clock skew: its deadlines would count from a moment that has not come (or, counted
        from now, fall before the report). Within the skew they count from reported_at."""
        at = incident.reported_at
        if at is None or at <= now:
            return
        skew = self.clock_skew()  # read only for a report ahead of the clock: rare
        if at - now <= skew:
            return
        ahead = timedelta(seconds=math.ceil((at - now).total_seconds()))  # 5m0.5s is not "5m ahead"
        raise InputError(f"reported_at {at.isoformat()} is {format_duration(ahead)} ahead of qflow's clock "
                         f"({now.astimezone(at.tzinfo).isoformat()}), more than the {format_duration(skew)} a "
                         "sender's clock may be ahead (intake.clock_skew); correct the sender's clock, or leave "
                         "reported_at out to report the incident as of now @ $.reported_at")

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

    def _dedup_since(self, incident: Incident) -> datetime | None:
        """For a new incident: the window's start for its dedup key, which the store
        checks again as it writes (``Write.dedup_since``), or None."""
        if incident.dedup_key is None:
            return None
        window = self.dedup_window()
        if window <= timedelta(0):
            return None
        assert incident.reported_at is not None
        return incident.reported_at - window

    def report_many(self, incidents: Iterable[Incident | Mapping[str, Any]], *,
                    actor: str | None = None) -> list[IncidentState]:
        """Record a batch of reports in one store transaction, all or nothing.

        Each report is handled as :meth:`report` would (retries by ``external_id`` or
        by a recorded ``id`` return the recorded incident, ``dedup_key`` attaches to an
        open one, also to one earlier in the same batch); returns one state per report,
        in order. A batch that loses a race with another writer runs again, whole.
        """
        return [state for state, _ in self.report_batch(incidents, actor=actor)]

    def report_batch(self, incidents: Iterable[Incident | Mapping[str, Any]], *,
                     actor: str | None = None) -> list[tuple[IncidentState, str]]:
        """:meth:`report_many`, with what each report turned out to be: ``NEW`` (it
        opened the incident), ``ATTACHED`` (a further report of an open incident) or
        ``RETRY`` (a repeat of a recorded report: nothing was written for it). Counts
        made from these are this batch's own, whatever other writers do meanwhile."""
        from qflow.engine import parse_incident

        given = [i if isinstance(i, Incident) else parse_incident(i, converter=self._conv) for i in incidents]
        outcomes, writes, now = self._again_after_races(lambda: self._report_batch(given, actor))
        # Observers hear of the written reports once, after any rerun of the batch.
        for w, notes in writes:
            for note in notes:
                self._broadcast(w.state, note, now)
        return outcomes

    def _report_batch(self, given: Sequence[Incident], actor: str | None) -> tuple[
            list[tuple[IncidentState, str]], list[tuple[Write, Sequence[Notification]]], datetime]:
        """The outcomes, the writes made with their notifications, and the time."""
        now = self.clock.now()
        window = self.dedup_window()
        by_external: dict[str, str] = {}
        by_key: dict[str, list[str]] = {}
        # incident id -> [state, history, new events, notifications, dedup since]; one write per incident
        touched: dict[str, list[Any]] = {}
        order: list[str] = []
        out: list[tuple[str, str]] = []
        fresh = iter(self.store.next_ids(sum(1 for i in given if i.id is None)))
        known_errors = self.known_errors()  # one read for the whole batch
        for incident in given:
            if incident.external_id is not None:
                known = by_external.get(incident.external_id) or self.store.find_external(incident.external_id)
                if known is not None:
                    out.append((known, RETRY))
                    continue
            if incident.id is not None:
                recorded = touched[incident.id][0] if incident.id in touched else self.store.get(incident.id)
                if recorded is not None:
                    self._same_report(incident, recorded)  # a different report under the id is refused
                    out.append((recorded.id, RETRY))
                    continue
            self._not_ahead(incident, now)
            if incident.reported_at is None:
                incident = attrs.evolve(incident, reported_at=now)
            assert incident.reported_at is not None
            target = None
            since: datetime | None = None  # a new incident's Write.dedup_since
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
                    touched[target] = [stored, self.store.events(target), [], [], None]
                    order.append(target)
                entry = touched[target]
                outcome = RETRY
                if not _already_attached(tuple(entry[1]) + tuple(entry[2]), incident):
                    event = Event(target, entry[0].seq + 1, now, ev.REPORT_ATTACHED, actor=actor, source="report",
                                  ruleset=self.ruleset.ref, data=_attached_data(self, incident))
                    entry[0] = ev.apply(entry[0], event, self._conv)
                    entry[2].append(event)
                    outcome = ATTACHED
                if incident.external_id is not None:
                    by_external[incident.external_id] = target
                out.append((target, outcome))
                continue
            if incident.id is None:
                incident = attrs.evolve(incident, id=next(fresh))
            iid = incident.id
            assert iid is not None
            with within_calendar(incident):
                decision = self.decide(incident, now)
                events = self._arrival(incident, decision, now, actor, known_errors)
            state = ev.fold(events, self._conv) if len(events) > 2 else IncidentState(
                incident=incident, stage=Stage.REPORTED, seq=2, updated_at=now, decision=decision)
            touched[iid] = [state, (), events, [self._notification(state, "incident.reported", now)], since]
            order.append(iid)
            if incident.external_id is not None:
                by_external[incident.external_id] = iid
            if incident.dedup_key is not None:
                by_key.setdefault(incident.dedup_key, []).append(iid)
            out.append((iid, NEW))
        writes: list[Write] = []
        for iid in order:
            state, history, new, notes, since = touched[iid]
            if new:
                with within_calendar(state.incident):
                    writes.append(self._write(tuple(history) + tuple(new), tuple(new), state,
                                              tuple(notes), now, dedup_since=since))
        if writes:
            self.store.write(writes)
        final = {w.state.id: w.state for w in writes}
        outcomes = [(final.get(iid) or self.store.get(iid), outcome) for iid, outcome in out]
        return outcomes, [(w, touched[w.state.id][3]) for w in writes], now  # type: ignore[return-value]


#: What a report turned out to be (``Engine.report_batch``).
NEW, ATTACHED, RETRY = "new", "attached", "retry"


def report_differences(given: Incident, recorded: Incident) -> list[str]:
    """The fields in which a report under a recorded incident's id differs from the
    recorded report; none for a retry. A retry that leaves ``reported_at`` out
    stands for the time the engine gave the first report."""
    if given.reported_at is None:
        given = attrs.evolve(given, reported_at=recorded.reported_at)
    return [f.name for f in attrs.fields(Incident) if getattr(given, f.name) != getattr(recorded, f.name)]


@contextlib.contextmanager
def within_calendar(incident: Incident) -> Iterator[None]:
    """Deciding and scheduling *incident*: a time past the calendar's end, raised by the
    kernel or by a plugin (which the engine reports as a PluginError caused by it), is
    the report's own mistake, said as an InputError on its ``reported_at``."""
    try:
        yield
    except (OverflowError, PluginError) as exc:
        if not (isinstance(exc, OverflowError) or isinstance(exc.__cause__, OverflowError)):
            raise
        at = incident.reported_at.isoformat() if incident.reported_at is not None else "?"
        raise InputError(f"reported_at {at} is too close to the end of the calendar: the deadlines and escalation "
                         "steps counted from it fall past the year 9999 (check the sender's clock) "
                         "@ $.reported_at") from None


def _attached_data(engine: Any, incident: Incident) -> dict[str, Any]:
    return {"report": engine._conv.unstructure(incident), "channel": incident.channel,
            "dedup_key": incident.dedup_key}


def _already_attached(history: Sequence[Event], incident: Incident) -> bool:
    """A retry of a report that was attached before (same external id, or same id)."""
    if incident.external_id is not None:
        key, value = "external_id", incident.external_id
    elif incident.id is not None:
        key, value = "id", incident.id
    else:
        return False
    return any(e.type == ev.REPORT_ATTACHED and (e.data.get("report") or {}).get(key) == value for e in history)
