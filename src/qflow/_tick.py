"""Time-driven work: ``tick(now)`` fires what is due. Mixed into :class:`qflow.Engine`.

The store hands out due timers (indexed by time, claimed with a lease so several
workers share the work); plugins say what to record through ``qflow_due``. Each
incident's effects are one transaction; a lost race (another worker appended first)
re-reads the incident and asks again, so a step recorded by the winner is not
recorded twice.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import attrs

from qflow.errors import ConcurrencyError
from qflow.model import Effect
from qflow.store import Timer

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["Scheduling", "TickReport"]

log = logging.getLogger("qflow.tick")


@attrs.frozen
class TickReport:
    """What one tick did."""

    incidents: int = 0
    effects: int = 0
    conflicts: int = 0


class Scheduling(_Base):
    def tick(self, now: datetime | None = None, *, worker: str = "engine", limit: int = 500,
             lease: timedelta = timedelta(minutes=5)) -> TickReport:
        """Fire what is due at *now* (default: the clock's now)."""
        if now is None:
            now = self.clock.now()
        timers = self.store.claim_timers(now, worker=worker, limit=limit, lease_until=now + lease)
        by_incident: dict[str, list[Timer]] = {}
        for t in timers:
            by_incident.setdefault(t.incident_id, []).append(t)
        effects = conflicts = 0
        for iid, due in by_incident.items():
            for _attempt in range(3):
                try:
                    effects += self._fire(iid, due, now)
                    break
                except ConcurrencyError:
                    conflicts += 1
                    log.info("tick: %s changed under us; reading it again", iid)
        self.store.release_timers(worker)
        return TickReport(len(by_incident), effects, conflicts)

    def _fire(self, incident_id: str, due: Sequence[Timer], now: datetime) -> int:
        state = self.store.get(incident_id)
        if state is None:
            return 0
        history = self.store.events(incident_id)
        found: list[Effect] = []
        for effects in self._hooks.due(state, history, due, self.ruleset, now):
            found.extend(effects)
        if not found:
            # Nothing to record: schedule anew so the same timers are not handed out again.
            self.store.write([self._write(history, (), state, (), now)])
            return 0
        notes = [n for e in found for n in e.notifications]
        self._record_many(state, [(e.type, e.data, e.source) for e in found], notifications=notes, now=now)
        return len(found)
