"""The SLA clocks of an incident, rebuilt from its event log.

Public API: the escalation plugin (``qflow_escalation``) relies on these names —
:class:`ClockState`, :func:`clock_states` and :func:`business_calendar` — and on
:class:`~qflow_sla._calendar.BusinessCalendar`'s ``add``, ``between``, ``is_open``,
``next_open`` and ``tz``. Change them only by adding.

Every clock is recomputed from the events each time, in the order things happened
(``at``, then ``seq``), so a late event and a changed severity give the same answer
whenever they are read: a changed severity keeps the original start and the pause
history and only changes the target from the moment it changed; a clock that reached
its target stays breached for the rest of that run.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from types import MappingProxyType

import attrs

from qflow import Event, IncidentState, Ruleset
from qflow import events as ev
from qflow_sla._calendar import BusinessCalendar
from qflow_sla._policy import DEFAULT_CLOCKS, ClockRule, Policies, Target

__all__ = ["BusinessCalendar", "ClockState", "business_calendar", "clock_states"]

_ZERO = timedelta(0)
# (start, end, calendar, business time used before start) of one running stretch
_Segment = tuple[datetime, datetime, BusinessCalendar, timedelta]


@attrs.frozen
class ClockState:
    """Where one named clock stands at ``now``.

    ``run`` counts the clock's runs: a reset (or a start after a stop) begins a new
    run with nothing used and nothing breached. ``warnings`` says when the business
    time is an estimate (a year whose national holidays are not published yet).
    """

    name: str
    calendar: str
    target: timedelta  # committed business time now in force
    started_at: datetime | None
    stopped_at: datetime | None
    paused: bool
    elapsed: timedelta  # business time used up to `now`, pauses excluded
    due: datetime | None  # calendar moment the target runs out if nothing else changes
    breached_at: datetime | None  # first moment elapsed reached target; stays set
    run: int = 0
    source: str = ""  # who set the target: "severity high", "priority P1"
    warnings: tuple[str, ...] = ()
    now: datetime | None = attrs.field(default=None, eq=False, repr=False)
    segments: tuple[_Segment, ...] = attrs.field(default=(), eq=False, repr=False)
    business: BusinessCalendar | None = attrs.field(default=None, eq=False, repr=False)

    @property
    def running(self) -> bool:
        return self.started_at is not None and self.stopped_at is None and not self.paused

    @property
    def remaining(self) -> timedelta:
        """Business time left before the target (negative once overdue)."""
        return self.target - self.elapsed

    def moment_at(self, used: timedelta) -> datetime | None:
        """The calendar moment at which this run's elapsed time reaches *used*.

        Moments already passed come from the history (paused or not); a moment still
        ahead is where the clock gets there if it keeps running from ``now`` (None
        while it is paused or stopped, or has not started).
        """
        if self.started_at is None:
            return None
        if used <= _ZERO:
            return self.started_at
        if used <= self.elapsed:
            return _crossing(self.segments, used)
        if not self.running or self.business is None or self.now is None:
            return None
        return self.business.add(self.now, used - self.elapsed)


def _crossing(segments: Sequence[_Segment], used: timedelta) -> datetime | None:
    for start, end, cal, before in segments:
        if before + cal.between(start, end) >= used:
            return cal.add(start, max(used - before, _ZERO))
    return None


def business_calendar(ruleset: Ruleset, name: str) -> BusinessCalendar:
    """The compiled calendar *name* of *ruleset* (``24x7`` is always there)."""
    calendars = ruleset.compiled("calendars")
    if calendars is None or name not in calendars:
        known = ", ".join(calendars or ("24x7",))
        raise KeyError(f"ruleset {ruleset.name} has no calendar '{name}'; it has: {known}")
    return calendars[name]


class _Run:
    """One clock while the log is read (a local working value, never shared)."""

    __slots__ = ("name", "rule", "phase", "run", "started_at", "stopped_at", "closed", "seg_start",
                 "cal", "cal_name", "target", "breached_at", "segments")

    def __init__(self, name: str, rule: ClockRule, cal: BusinessCalendar) -> None:
        self.name, self.rule = name, rule
        self.phase = "idle"  # idle, running, paused, stopped
        self.run = 0
        self.started_at: datetime | None = None
        self.stopped_at: datetime | None = None
        self.closed = _ZERO  # business time of the finished stretches of this run
        self.seg_start: datetime | None = None
        self.cal = cal
        self.cal_name = cal.name
        self.target: Target | None = None
        self.breached_at: datetime | None = None
        self.segments: list[_Segment] = []

    def advance(self, t: datetime) -> None:
        """Count the running stretch up to *t* and start a new stretch there."""
        if self.phase != "running" or self.seg_start is None:
            return
        used = self.closed + self.cal.between(self.seg_start, t)
        self._check(self.seg_start, used)
        self.segments.append((self.seg_start, t, self.cal, self.closed))
        self.closed, self.seg_start = used, t

    def _check(self, seg_start: datetime, used: timedelta) -> None:
        target = self.target
        if target is not None and self.breached_at is None and used >= target.span:
            self.breached_at = self.cal.add(seg_start, max(target.span - self.closed, _ZERO))

    def retarget(self, t: datetime, target: Target | None, cal: BusinessCalendar) -> None:
        self.target, self.cal, self.cal_name = target, cal, cal.name
        if (target is not None and self.breached_at is None and self.phase in ("running", "paused")
                and self.closed >= target.span):
            self.breached_at = t  # a shorter target that is already used up

    def begin(self, t: datetime, paused: bool) -> None:
        self.run += 1
        self.started_at, self.stopped_at = t, None
        self.closed, self.breached_at, self.segments = _ZERO, None, []
        self.phase = "paused" if paused else "running"
        self.seg_start = None if paused else t
        if self.target is not None and self.target.span <= _ZERO:
            self.breached_at = t

    def apply(self, e: Event, status: str | None) -> None:
        rule = self.rule
        waiting = status is not None and status in rule.pause.status
        if rule.reset(e) and self.phase != "idle":
            self.begin(e.at, waiting)
        elif rule.stop(e) and self.phase in ("running", "paused"):
            self.phase, self.stopped_at, self.seg_start = "stopped", e.at, None
        elif rule.start(e) and self.phase in ("idle", "stopped"):
            self.begin(e.at, waiting)
        elif self.phase == "running" and rule.pause(e):
            self.phase, self.seg_start = "paused", None
        elif self.phase == "paused" and rule.resumes(e) and not (rule.resume is None and waiting):
            self.phase, self.seg_start = "running", e.at

    def state(self, now: datetime) -> ClockState | None:
        target = self.target
        if target is None:
            return None
        used, breached, segments = self.closed, self.breached_at, list(self.segments)
        if self.phase == "running" and self.seg_start is not None:
            used = self.closed + self.cal.between(self.seg_start, now)
            if breached is None and used >= target.span:
                breached = self.cal.add(self.seg_start, max(target.span - self.closed, _ZERO))
            segments.append((self.seg_start, now, self.cal, self.closed))
        due: datetime | None = None
        if self.started_at is not None:
            if used >= target.span:
                due = _crossing(segments, target.span) or breached
            elif self.phase == "running":
                due = self.cal.add(now, target.span - used)
        warnings = self.cal.warnings(self.started_at, due or now) if self.started_at is not None else ()
        return ClockState(
            name=self.name, calendar=self.cal_name, target=target.span, started_at=self.started_at,
            stopped_at=self.stopped_at, paused=self.phase == "paused", elapsed=used, due=due,
            breached_at=breached, run=self.run, source=target.source, warnings=warnings, now=now,
            segments=tuple(segments), business=self.cal,
        )


#: The last few answers, by the identity of the log and ruleset asked about. In one
#: command several plugins ask about the same log at the same moment (escalation to
#: fire and to schedule, assessment for its facts); the log tuple is immutable, and
#: the entry keeps it alive, so an identical id means the identical log.
_RECENT: dict[tuple[int, int, int, datetime], tuple[Sequence[Event], Ruleset, Mapping[str, ClockState]]] = {}
_RECENT_SIZE = 64


def clock_states(state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
                 now: datetime) -> Mapping[str, ClockState]:
    """Every clock of the incident that has a target, as it stands at *now*.

    :param state: the incident (its decision is used when the log has none).
    :param events: its event log; events after *now* are not counted.
    :param ruleset: gives the clocks, the targets and the calendars.
    :param now: the moment to report on.
    """
    key = (id(events), id(ruleset), state.seq, now)
    hit = _RECENT.get(key)
    if hit is not None and hit[0] is events and hit[1] is ruleset:
        return hit[2]
    found = _clock_states(state, events, ruleset, now)
    if isinstance(events, tuple):
        found = MappingProxyType(dict(found))  # shared between callers: read-only
        if len(_RECENT) >= _RECENT_SIZE:
            try:
                _RECENT.pop(next(iter(_RECENT)), None)
            except (StopIteration, RuntimeError):  # another thread got there first
                pass
        _RECENT[key] = (events, ruleset, found)
    return found


def _clock_states(state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
                  now: datetime) -> Mapping[str, ClockState]:
    rules: Mapping[str, ClockRule] = ruleset.compiled("clocks") or DEFAULT_CLOCKS
    policies: Policies | None = ruleset.compiled("severities")
    calendars = ruleset.compiled("calendars") or {}
    always = calendars.get("24x7") or BusinessCalendar("24x7", _tz(ruleset))

    decision = state.decision
    severity = decision.severity if decision is not None else None
    priority = decision.priority if decision is not None else None
    if any(e.type == ev.DECISION_MADE for e in events):
        severity = priority = None
    status: str | None = None

    def targets() -> tuple[dict[str, Target], BusinessCalendar]:
        found = policies.targets(severity, priority) if policies is not None else {}
        sev = policies.severities.get(severity) if policies is not None and severity is not None else None
        return found, (calendars.get(sev.calendar, always) if sev is not None else always)

    runs = {name: _Run(name, rule, always) for name, rule in rules.items()}
    found, default_cal = targets()
    for run in runs.values():
        target = found.get(run.name)
        run.retarget(state.updated_at, target, calendars.get(target.calendar, always) if target else default_cal)
    for e in sorted((e for e in events if e.at <= now), key=lambda e: (e.at, e.seq)):
        for run in runs.values():
            run.advance(e.at)
        changed = False
        if e.type == ev.DECISION_MADE:
            severity, priority = e.data.get("severity"), e.data.get("priority")
            changed = True
        elif e.type == ev.SEVERITY_CHANGED:
            severity, changed = e.data.get("to"), True
        elif e.type == ev.STATUS_CHANGED:
            status = e.data.get("to")
        if changed:
            found, default_cal = targets()
            for run in runs.values():
                target = found.get(run.name)
                run.retarget(e.at, target, calendars.get(target.calendar, always) if target else default_cal)
        for run in runs.values():
            run.apply(e, status)
    out = {}
    for name, run in runs.items():
        clock = run.state(now)
        if clock is not None:
            out[name] = clock
    return out


def _tz(ruleset: Ruleset):  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo(ruleset.timezone)
