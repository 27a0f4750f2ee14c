"""Time-driven work: ``tick(now)`` fires what is due. Mixed into :class:`qflow.Engine`.

The store hands out due timers (indexed by time, claimed with a lease so several
workers share the work); plugins say what to record through ``qflow_due``. A tick
asks each incident once, however many ticks were missed: plugins work out from the
log what is due at *now*, so after downtime a step fires once (not once per missed
tick) and a lost race re-reads the incident and asks again, so a step recorded by
the other worker is not recorded twice. An incident whose write left a timer due at
*now* (a raised severity puts its resolve breach in the past) is asked again in the
same tick, up to ``_ASKS`` asks in all, so a cascade settles without waiting a tick.

The writes of one batch of incidents go to the store in one transaction (one
commit instead of one per incident); if any of them lost a race, each incident of
the batch is written on its own, re-reading those that changed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import attrs

from qflow import events as ev
from qflow.clock import given_time
from qflow.errors import ConcurrencyError
from qflow.model import Effect, Event, IncidentState, Notification
from qflow.store import Timer, Write

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["Scheduling", "TickReport"]

log = logging.getLogger("qflow.tick")

_RETRIES = 3
#: How often one tick may ask an incident: what a tick records can make a timer due at
#: once (a raised severity puts a breach in the past), and asking again settles it in
#: the same tick; the bound keeps a plugin that always finds more from looping.
_ASKS = 3


@attrs.frozen
class TickReport:
    """What one tick did.

    ``timers`` claimed, for ``incidents`` incidents; ``effects`` events recorded with
    ``notifications`` for the outbox; ``conflicts`` races lost to another writer (and
    retried); ``failed`` incidents whose plugins raised (their timers come back once
    the lease runs out, or at the next tick of this worker).
    """

    timers: int = 0
    incidents: int = 0
    effects: int = 0
    notifications: int = 0
    conflicts: int = 0
    failed: int = 0

    def __add__(self, other: TickReport) -> TickReport:
        return TickReport(*(a + b for a, b in zip(attrs.astuple(self), attrs.astuple(other), strict=True)))


@attrs.frozen
class _Plan:
    write: Write
    effects: int
    notifications: int
    before: IncidentState

    def announce(self, hooks: Any, conv: Any, now: datetime) -> None:
        """Stages the tick moved (an automatic verification, and back to analysing
        when it was ineffective) are entered and left like any other: the stage hooks
        run for each move, once the change is stored."""
        if self.write.state.stage is self.before.stage and not any(
                e.type == ev.STAGE_CHANGED for e in self.write.events):
            return
        state = self.before
        for event in self.write.events:
            after = ev.apply(state, event, conv)
            if event.type == ev.STAGE_CHANGED:
                hooks.stage_changed(state, after, now)
            state = after


def _due_by(write: Write, now: datetime) -> bool:
    return write.timers is not None and any(t.at <= now for t in write.timers)


class Scheduling(_Base):
    def tick(self, now: datetime | None = None, *, worker: str | None = None, limit: int = 500,
             lease: timedelta = timedelta(minutes=5), drain: bool = True,
             stop: Callable[[], bool] | None = None) -> TickReport:
        """Fire what is due at *now* (default: the clock's now).

        Claims up to *limit* timers at a time; with *drain* it goes on claiming until
        nothing due at *now* is left (catching up after downtime in one call), each
        incident asked once, and again (up to three asks in all) when what it recorded
        left a timer due at *now*. *stop* is asked after each batch: when it returns
        True the tick ends there and leaves the rest for the next one (a worker asked
        to stop).
        """
        now = self.clock.now() if now is None else given_time(now)
        if worker is None:
            worker = self.worker_name
        report = TickReport()
        asks: dict[str, int] = {}
        again: set[str] = set()  # their last ask recorded something: they may be due again
        try:
            while True:
                timers = self.store.claim_timers(now, worker=worker, limit=limit, lease_until=now + lease)
                fresh: dict[str, list[Timer]] = {}
                for t in timers:
                    n = asks.get(t.incident_id, 0)
                    if (n == 0 and (drain or not asks)) or (t.incident_id in again and n < _ASKS):
                        fresh.setdefault(t.incident_id, []).append(t)
                if not fresh:
                    break
                new = sum(1 for iid in fresh if iid not in asks)
                for iid in fresh:
                    asks[iid] = asks.get(iid, 0) + 1
                done, changed = self._batch(fresh, now)
                again = (again - fresh.keys()) | changed
                report += done + TickReport(timers=sum(len(ts) for ts in fresh.values()), incidents=new)
                if stop is not None and stop():
                    break
                if not changed and (not drain or len(timers) < limit):
                    break
        finally:
            self.store.release_timers(worker)
        return report

    def _batch(self, due: dict[str, list[Timer]], now: datetime) -> tuple[TickReport, set[str]]:
        """Ask and write one batch; also the incidents that recorded something."""
        plans: dict[str, _Plan] = {}
        failed = 0
        try:
            read: dict[str, Any] | None = self.store.read_many(list(due))  # one read for the batch
        except Exception:
            read = None  # each incident is read on its own then, and fails on its own
        for iid, timers in due.items():
            try:
                if read is None:
                    plan = self._plan(iid, timers, now)
                else:
                    found = read.get(iid)
                    plan = self._plan(iid, timers, now, found) if found is not None else None
            except Exception:
                # One incident's broken plugin must not stop the others' escalations.
                log.exception("tick: plugins failed on %s; its timers come back after the lease", iid)
                failed += 1
                continue
            if plan is not None:
                plans[iid] = plan
        if not plans:
            return TickReport(failed=failed), set()
        try:
            self.store.write([p.write for p in plans.values()])
            for p in plans.values():
                p.announce(self._hooks, self._conv, now)
            # Only an incident whose write left a timer due now is asked again: the
            # common tick, whose steps schedule what comes later, claims no second time.
            return (TickReport(effects=sum(p.effects for p in plans.values()),
                               notifications=sum(p.notifications for p in plans.values()), failed=failed),
                    {iid for iid, p in plans.items() if p.effects and _due_by(p.write, now)})
        except ConcurrencyError:
            log.info("tick: a batch of %d lost a race; writing its incidents one by one", len(plans))
        report = TickReport(failed=failed, conflicts=1)
        changed = set()
        for iid, plan in plans.items():
            one = self._one(iid, due[iid], plan, now)
            if one.effects:
                changed.add(iid)
            report += one
        return report, changed

    def _one(self, iid: str, timers: Sequence[Timer], plan: _Plan | None, now: datetime) -> TickReport:
        conflicts = 0
        for _attempt in range(_RETRIES):
            try:
                if plan is None:
                    plan = self._plan(iid, timers, now)
                if plan is None:
                    return TickReport(conflicts=conflicts)
                self.store.write([plan.write])
                plan.announce(self._hooks, self._conv, now)
                return TickReport(effects=plan.effects, notifications=plan.notifications, conflicts=conflicts)
            except ConcurrencyError:
                conflicts += 1
                plan = None
                log.info("tick: %s changed under us; reading it again", iid)
            except Exception:
                log.exception("tick: plugins failed on %s; its timers come back after the lease", iid)
                return TickReport(conflicts=conflicts, failed=1)
        log.warning("tick: %s kept changing under us; its timers come back after the lease", iid)
        return TickReport(conflicts=conflicts, failed=1)

    def _plan(self, incident_id: str, due: Sequence[Timer], now: datetime,
              read: tuple[IncidentState, tuple[Event, ...]] | None = None, *, lang: str | None = None) -> _Plan | None:
        """What to write for one incident: its effects as events (or, when nothing
        fired, only its timers scheduled anew so the same ones are not handed out
        again). *read* is its state and log when the batch read them already; *lang*
        asks every notification for that language (``qflow notify preview --lang``)."""
        if read is None:
            stored = self.store.get(incident_id)
            if stored is None:
                return None
            read = (stored, self.store.events(incident_id))
        state, history = read
        found: list[Effect] = [e for effects in self._hooks.due(state, history, due, self.ruleset, now)
                               for e in effects]
        notes: list[Notification] = [n for e in found for n in e.notifications]
        if lang is not None:
            notes = [attrs.evolve(n, data={**n.data, "lang": lang}) for n in notes]
        new = [Event(state.id, state.seq + i + 1, now, e.type, source=e.source, ruleset=self.ruleset.ref,
                     data=e.data) for i, e in enumerate(found)]
        after = state
        for event in new:
            after = ev.apply(after, event, self._conv)
        write = self._write(tuple(history) + tuple(new), new, after, notes, now)
        held = len(write.events) - len(new)  # one NotificationSuppressed per held notification
        return _Plan(write, len(found), len(notes) - held, state)
