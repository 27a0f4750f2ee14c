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

A rejection that a reopening undoes (the next stage change after it) was a mistake, not
an end: from that reopening on, every clock reads as if neither had happened. It ran
through the rejected stretch from its own start (a breach that fell in it is a breach),
its pauses and history kept, and resolve is not reset by that reopening. A rejection
that stands ends the clocks, and so does one not undone yet at ``now``.

Within one command the same log is asked about again, longer by what the command
records (a tick's escalation reads the log, then the log with the steps it fired):
the read of the shorter log is kept and read on from, which gives what reading the
whole log afresh gives (``tests/test_clocks.py`` checks it on random logs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from operator import attrgetter, is_
from types import MappingProxyType

import attrs

from qflow import Event, IncidentState, Ruleset, Stage
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
    """One clock while the log is read (a working value: once kept to read on from, it
    is never changed again; reading on copies it)."""

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

    def copy(self) -> _Run:
        other = _Run.__new__(_Run)
        for name in _Run.__slots__:
            setattr(other, name, getattr(self, name))
        other.segments = list(self.segments)
        return other

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

    def apply(self, at: datetime, status: str | None, hits: tuple[bool, bool, bool, bool, bool]) -> None:
        """*hits*: whether the event at *at* matches the rule's reset, stop, start, pause and resume."""
        rule = self.rule
        reset, stop, start, pause, resumes = hits
        waiting = status is not None and status in rule.pause.status
        if reset and self.phase != "idle":
            self.begin(at, waiting)
        elif stop and self.phase in ("running", "paused"):
            self.phase, self.stopped_at, self.seg_start = "stopped", at, None
        elif start and self.phase in ("idle", "stopped"):
            self.begin(at, waiting)
        elif self.phase == "running" and pause:
            self.phase, self.seg_start = "paused", None
        elif self.phase == "paused" and resumes and not (rule.resume is None and waiting):
            self.phase, self.seg_start = "running", at

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
        # name, calendar, target, started_at, stopped_at, paused, elapsed, due, breached_at,
        # run, source, warnings, now, segments, business (by position: one per clock and read)
        return ClockState(self.name, self.cal_name, target.span, self.started_at, self.stopped_at,
                          self.phase == "paused", used, due, breached, self.run, target.source, warnings, now,
                          tuple(segments), self.cal)


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
        if type(found) is not MappingProxyType:
            found = MappingProxyType(found)  # shared between callers: read-only
        if len(_RECENT) >= _RECENT_SIZE:
            try:
                _RECENT.pop(next(iter(_RECENT)), None)
            except (StopIteration, RuntimeError):  # another thread got there first
                pass
        _RECENT[key] = (events, ruleset, found)
    return found


class _Context:
    """What a ruleset gives the clocks, worked out once per ruleset: the rules of the
    clocks that can ever have a target (a clock no severity or priority sets a time
    for never shows, so it is not run at all), per (severity, priority) the target and
    calendar of each, and the event types that can move a clock at all."""

    __slots__ = ("ruleset", "names", "rules", "policies", "calendars", "always", "plans", "moving", "hits")

    def __init__(self, ruleset: Ruleset) -> None:
        rules: Mapping[str, ClockRule] = ruleset.compiled("clocks") or DEFAULT_CLOCKS
        policies: Policies | None = ruleset.compiled("severities")
        calendars = ruleset.compiled("calendars") or {}
        self.ruleset = ruleset
        self.policies = policies
        self.calendars = calendars
        self.always = calendars.get("24x7") or BusinessCalendar("24x7", _tz(ruleset))
        live = policies.clocks if policies is not None else frozenset()
        self.names = tuple(name for name in rules if name in live)
        self.rules = tuple(rules[name] for name in self.names)
        self.plans: dict[tuple[str | None, str | None], tuple[tuple[Target | None, BusinessCalendar], ...]] = {}
        # A trigger matches an event by its type, or a stage or status change by where
        # it goes; the targets change with a decision or a severity.
        moving = {ev.DECISION_MADE, ev.SEVERITY_CHANGED, ev.STAGE_CHANGED, ev.STATUS_CHANGED}
        for rule in self.rules:
            for trigger in (rule.start, rule.stop, rule.pause, rule.resume, rule.reset):
                if trigger is not None:
                    moving |= trigger.event
        self.moving = frozenset(moving)
        #: (event type, where a stage or status change goes) -> per clock, which of its
        #: triggers match; None when none of any clock does (see :meth:`matches`).
        self.hits: dict[tuple[str, object], tuple[tuple[bool, bool, bool, bool, bool], ...] | None] = {}

    def matches(self, e: Event) -> tuple[tuple[bool, bool, bool, bool, bool], ...] | None:
        """Which triggers of each clock *e* matches (reset, stop, start, pause, resume),
        or None when it matches none. A trigger reads an event's type and, for a stage
        or status change, where it goes: the answer is kept per type and target."""
        t = e.type
        to = e.data.get("to") if t == ev.STAGE_CHANGED or t == ev.STATUS_CHANGED else None
        key = (t, to)
        try:
            return self.hits[key]
        except KeyError:
            pass
        except TypeError:  # a target that cannot be a key: ask the triggers
            return self._matches(e)
        found = self._matches(e)
        if len(self.hits) < 1024:
            self.hits[key] = found
        return found

    def _matches(self, e: Event) -> tuple[tuple[bool, bool, bool, bool, bool], ...] | None:
        if e.type not in self.moving:
            return None
        out = tuple((bool(r.reset(e)), bool(r.stop(e)), bool(r.start(e)), bool(r.pause(e)), bool(r.resumes(e)))
                    for r in self.rules)
        return out if any(any(h) for h in out) else None

    def plan(self, severity: str | None, priority: str | None) -> tuple[tuple[Target | None, BusinessCalendar], ...]:
        """(target, calendar) of each clock for *severity* and *priority*."""
        key = (severity, priority)
        found = self.plans.get(key)
        if found is None:
            policies, calendars, always = self.policies, self.calendars, self.always
            targets = policies.targets(severity, priority) if policies is not None else {}
            sev = policies.severities.get(severity) if policies is not None and severity is not None else None
            default_cal = calendars.get(sev.calendar, always) if sev is not None else always
            out = []
            for name in self.names:
                target = targets.get(name)
                out.append((target, calendars.get(target.calendar, always) if target else default_cal))
            found = tuple(out)
            if len(self.plans) < 4096:  # severity x priority pairs: few, but never unbounded
                self.plans[key] = found
        return found


_CONTEXTS: dict[int, _Context] = {}


def _context(ruleset: Ruleset) -> _Context:
    ctx = _CONTEXTS.get(id(ruleset))
    if ctx is None or ctx.ruleset is not ruleset:
        ctx = _Context(ruleset)
        if len(_CONTEXTS) >= 32:
            try:
                _CONTEXTS.pop(next(iter(_CONTEXTS)), None)
            except (StopIteration, RuntimeError):  # another thread got there first
                pass
        _CONTEXTS[id(ruleset)] = ctx
    return ctx


class _Read:
    """The clocks after reading a whole log (every event at or before ``now``): enough
    to go on reading when the same log comes back longer, as it does within one
    command (escalation asks about the log, then about the log with what it recorded).

    ``runs`` are the clocks after every event; ``answer`` is what the log gave at
    ``now``. Never changed once kept; going on copies the runs.
    """

    __slots__ = ("events", "ctx", "initial", "last", "runs", "severity", "priority", "status", "now", "answer",
                 "reported", "undone")

    def __init__(self, events: tuple[Event, ...], ctx: _Context, initial: tuple[str | None, str | None],
                 last: tuple[datetime, int] | None, runs: list[_Run], severity: str | None, priority: str | None,
                 status: str | None, now: datetime, answer: Mapping[str, ClockState],
                 reported: datetime | None, undone: list[_Run] | None) -> None:
        self.events, self.ctx, self.initial, self.last, self.runs = events, ctx, initial, last, runs
        self.severity, self.priority, self.status, self.now, self.answer = severity, priority, status, now, answer
        self.reported = reported  # see _reported: the events read on from count as these did
        self.undone = undone  # see _clock_states: the clocks as if the standing rejection never happened


#: The last log read per (ruleset, incident), to go on from (see :class:`_Read`).
_READS: dict[tuple[int, str | None], _Read] = {}
_READS_SIZE = 256


def _resume(key: tuple[int, str | None], ctx: _Context, events: Sequence[Event],
            initial: tuple[str | None, str | None], now: datetime) -> tuple[_Read, int] | None:
    """A kept read of a first part of *events* that the rest sorts after, or None."""
    read = _READS.get(key)
    if read is None or read.ctx is not ctx or read.initial != initial:
        return None
    n = len(read.events)
    last = read.last
    if n > len(events) or (last is not None and last[0] > now):
        return None
    # The very same Event objects: equal ones may show their moments in other offsets.
    if not all(map(is_, read.events, events)):
        return None
    if last is not None:
        for e in events[n:]:
            if (e.at, e.seq) <= last:
                return None  # a late event: it belongs among what was read
    return read, n


def _keep(key: tuple[int, str | None], read: _Read) -> None:
    if len(_READS) >= _READS_SIZE:
        try:
            _READS.pop(next(iter(_READS)), None)
        except (StopIteration, RuntimeError):  # another thread got there first
            pass
    _READS[key] = read


def _clock_states(state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
                  now: datetime) -> Mapping[str, ClockState]:
    ctx = _context(ruleset)
    if not ctx.names:
        return {}
    decision = state.decision
    if ev.DECISION_MADE in map(_TYPE, events):
        initial: tuple[str | None, str | None] = (None, None)
    else:
        initial = (decision.severity, decision.priority) if decision is not None else (None, None)
    key = (id(ruleset), state.id)
    keep = isinstance(events, tuple)
    found = _resume(key, ctx, events, initial, now) if keep else None
    if found is not None:
        read, n = found
        rest: Sequence[Event] = events[n:]
        if now == read.now and now.tzinfo is read.now.tzinfo and all(
                e.at == now and e.type not in ctx.moving for e in rest):
            # Only events no clock reacts to, at the moment already answered: they
            # split the running stretches there and change nothing else, so the
            # answer stands. The shorter read stays the one kept: a later, longer
            # log reads these events on from there as it would from a read of them.
            return read.answer
        runs = [run.copy() for run in read.runs]
        undone = [run.copy() for run in read.undone] if read.undone is not None else None
        severity, priority, status = read.severity, read.priority, read.status
        last = read.last
        # The arrival (seq 1), first in the log, was among the events read: what it says
        # is kept, and the events read on from cannot hold it.
        reported = read.reported
    else:
        severity, priority = initial
        status = None
        runs = [_Run(name, rule, ctx.always) for name, rule in zip(ctx.names, ctx.rules, strict=True)]
        for run, (target, cal) in zip(runs, ctx.plan(severity, priority), strict=True):
            run.retarget(state.updated_at, target, cal)
        last = None
        rest = events
        reported = None
        undone = None
    pending = [e for e in rest if e.at <= now]
    complete = len(pending) == len(rest)
    if found is None or not found[1]:
        reported = _reported(state, pending)
    if len(pending) > 1:
        pending.sort(key=_ORDER if reported is None else lambda e: (_moment(e, reported), e.seq))
    # A rejection that a reopening follows was a mistake, not an end. While one stands,
    # `undone` reads the log on as if it had never happened; the next stage change says
    # which reading is right: a reopening, `undone` (and that reopening never happened
    # either), any other, `runs`. Read before then, the rejection stands.
    for e in pending:
        at = e.at if reported is None else _moment(e, reported)
        for run in runs:
            run.advance(at)
        if undone is not None:
            for run in undone:
                run.advance(at)
        t = e.type
        if t == ev.DECISION_MADE or t == ev.SEVERITY_CHANGED:
            if t == ev.DECISION_MADE:
                severity, priority = e.data.get("severity"), e.data.get("priority")
            else:
                severity = e.data.get("to")
            plan = ctx.plan(severity, priority)
            for run, (target, cal) in zip(runs, plan, strict=True):
                run.retarget(at, target, cal)
            if undone is not None:
                for run, (target, cal) in zip(undone, plan, strict=True):
                    run.retarget(at, target, cal)
        elif t == ev.STATUS_CHANGED:
            status = e.data.get("to")
        elif t == ev.STAGE_CHANGED:
            to = e.data.get("to")
            if undone is not None:
                if to == _REOPENED:
                    runs, undone = undone, None
                    continue  # that reopening never happened either
                undone = None  # any other stage change: the rejection stood
            if to == _REJECTED:
                undone = [run.copy() for run in runs]  # the clocks without it: copied before it counts
                _apply(runs, ctx.matches(e), at, status)
                continue
        hits = ctx.matches(e)
        if hits is not None:
            for run, hit in zip(runs, hits, strict=True):
                run.apply(at, status, hit)
            if undone is not None:
                _apply(undone, hits, at, status)
    if pending:
        # The latest event read by its own time (what a later read and now compare with):
        # counted at the report's time, it need not be the last one read.
        top = pending[-1] if reported is None else max(pending, key=_ORDER)
        if last is None or (top.at, top.seq) > last:
            last = (top.at, top.seq)
    # Nothing counts before the report: asked before a reported_at ahead of qflow's
    # clock, the clocks stand as they do at the report (started, nothing used).
    upto = now if reported is None or reported <= now else reported
    out = {}
    for run in runs:
        clock = run.state(upto)
        if clock is not None:
            out[run.name] = clock
    if keep and complete:
        # The runs are not changed again: state() only read them, going on copies them.
        # The answer is handed to every caller that asks again: read-only, never copied.
        answer = MappingProxyType(out)
        _keep(key, _Read(events, ctx, initial, last, runs, severity, priority, status, now,  # type: ignore[arg-type]
                         answer, reported, undone))
        return answer
    return out


def _apply(runs: list[_Run], hits: tuple[tuple[bool, bool, bool, bool, bool], ...] | None, at: datetime,
           status: str | None) -> None:
    if hits is not None:
        for run, hit in zip(runs, hits, strict=True):
            run.apply(at, status, hit)


def _reported(state: IncidentState, events: Sequence[Event]) -> datetime | None:
    """The incident's ``reported_at`` when its arrival is among *events* and was
    recorded at another moment, else None: after it (an import, a report a queue held
    back) or before it (the sender's clock a little ahead of qflow's, within the
    ``intake.clock_skew`` intake allows)."""
    reported = state.incident.reported_at
    for e in events:
        if e.seq == 1 and e.type == ev.INCIDENT_REPORTED:
            return reported if reported is not None and reported != e.at else None
    return None


def _moment(e: Event, reported: datetime) -> datetime:
    """When *e* counts for the clocks. The report and the decision made on it (seq 1
    and 2, recorded together) count from when the incident was reported, as the
    decision's deadlines do: a clock started at the import would give a second,
    later deadline for the same promise. Nothing counts before the report: an event
    recorded between qflow's clock and a reported_at ahead of it (an answer within
    seconds of the report) counts at the report."""
    if e.seq <= 2 and (e.type == ev.INCIDENT_REPORTED or e.type == ev.DECISION_MADE):
        return reported
    at = e.at
    return at if at >= reported else reported


_TYPE = attrgetter("type")
_REJECTED, _REOPENED = Stage.REJECTED.value, Stage.REOPENED.value
#: The order things happened in: (at, seq), picked in C (a log is sorted on every read).
_ORDER = attrgetter("at", "seq")


def _tz(ruleset: Ruleset):  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo(ruleset.timezone)
