"""Where escalation reads its clocks and calendars from.

The SLA plugin's public module ``qflow_sla.clocks`` rebuilds every clock from the
incident's log (business time, pauses, resets, calendars). Without it (the plugin
blocked, or an older version), the decision's deadlines stand in: round-the-clock
clocks that start at the report and stop at the first answer, the acknowledgement
or the close.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from qflow import Event, IncidentState, Ruleset, Stage

try:  # a plugin may use another plugin's public module; this one is optional
    from qflow_sla import clocks as _sla  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - depends on what is installed
    _sla = None

__all__ = ["AlwaysOpen", "DeadlineClock", "calendar", "clock_states"]

_STOPPED_BY = {"respond": "responded_at", "acknowledge": "acknowledged_at"}
_CLOSED = (Stage.CLOSED, Stage.REJECTED)


@attrs.frozen
class DeadlineClock:
    """A round-the-clock clock read off a decision's deadline (same shape as
    ``qflow_sla.clocks.ClockState``)."""

    name: str
    calendar: str
    target: timedelta
    started_at: datetime | None
    stopped_at: datetime | None
    paused: bool
    elapsed: timedelta
    due: datetime | None
    breached_at: datetime | None

    def moment_at(self, used: timedelta) -> datetime | None:
        if self.started_at is None or self.stopped_at is not None or self.paused:
            return None
        return self.started_at + used


def _fallback(state: IncidentState, now: datetime) -> dict[str, DeadlineClock]:
    out = {}
    d = state.decision
    for dl in d.deadlines if d else ():
        stopped = getattr(state, _STOPPED_BY.get(dl.clock, ""), None)
        if stopped is None and state.stage in _CLOSED:
            stopped = state.updated_at
        end = min(now, stopped) if stopped is not None else now
        elapsed = max(end - dl.start, timedelta(0))
        breached = dl.due if end >= dl.due else None
        out[dl.clock] = DeadlineClock(dl.clock, dl.calendar, dl.business, dl.start, stopped, False, elapsed,
                                      dl.due, breached)
    return out


def clock_states(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime) -> Mapping[str, Any]:
    if _sla is not None and hasattr(_sla, "clock_states"):
        return _sla.clock_states(state, events, ruleset, now)
    return _fallback(state, now)


class AlwaysOpen:
    """The ``24x7`` calendar."""

    def is_open(self, at: datetime) -> bool:
        return True

    def next_open(self, at: datetime) -> datetime | None:
        return at


_ALWAYS = AlwaysOpen()


def calendar(ruleset: Ruleset, name: str) -> Any:
    """The business calendar *name* (``is_open``, ``next_open``)."""
    if _sla is not None and hasattr(_sla, "business_calendar"):
        return _sla.business_calendar(ruleset, name)
    return _ALWAYS
