"""Running a ladder: when each step next falls due, and what firing it records.

Everything is computed from the clocks and the log at *now*, never from counters
kept elsewhere: a step's firings are ``EscalationStepFired`` events, so the same log
never fires a step twice, and after downtime the latest due repetition fires once
(with the number of repetitions it stands for) instead of one per missed tick.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from qflow import Effect, Event, FrozenDict, IncidentQuery, IncidentState, Notification, Ruleset, Stage, Timer, format_duration
from qflow import events as ev

from qflow_escalation._clocks import calendar, clock_states
from qflow_escalation._compile import Compiled, Step

__all__ = ["BREACHED", "FIRED", "SKIPPED", "due_effects", "next_timers"]

FIRED = "EscalationStepFired"  #: data: ladder, step, level, clock, occurrence, skipped, recipients ...
SKIPPED = "EscalationStepSkipped"  #: data: ladder, step, level, clock, reason
BREACHED = "DeadlineBreached"  #: data: clock, due, breached_at, target, calendar, clock_started

_CLOSED = (Stage.CLOSED, Stage.REJECTED)
_DONE = 1 << 30  # a skipped step counts as fired for good
_US = timedelta(microseconds=1)


def _started(clock: Any) -> str:
    return clock.started_at.isoformat() if clock.started_at is not None else ""


_Key = tuple[str, str, str, str]  # (ladder, step, clock, clock start)


_Last = dict[_Key, tuple[datetime, Any]]


def _history(events: Sequence[Event]) -> tuple[dict[_Key, int], _Last, set[tuple[str, str]]]:
    """What the log says has fired: (ladder, step, clock, clock start) -> latest
    occurrence, and -> when it last fired and at which severity; and the (clock, clock
    start) pairs already recorded as breached."""
    fired: dict[_Key, int] = {}
    last: _Last = {}
    breached: set[tuple[str, str]] = set()
    for e in events:
        if e.type == FIRED or e.type == SKIPPED:
            d = e.data
            k = (d["ladder"], d["step"], d["clock"], d.get("clock_started", ""))
            occ = d.get("occurrence", 0) if e.type == FIRED else _DONE
            if occ > fired.get(k, -1):
                fired[k] = occ
            last[k] = (e.at, d.get("severity"))
        elif e.type == BREACHED:
            breached.add((e.data["clock"], e.data.get("clock_started", "")))
    return fired, last, breached


def _not_before(step: Step, key: _Key, last: _Last, severity: str | None) -> datetime | None:
    """The earliest a repeat of *step* may fire when its previous firing was at another
    severity: ``every`` after that firing. A raise can put every repeat counted against
    the new target in the past at once; they then fire once, a full ``every`` later,
    not straight after the first. (At one severity the clock alone says when.)"""
    found = last.get(key)
    if found is None or step.every is None or found[1] == severity:
        return None
    return found[0] + step.every


def _running(clock: Any) -> bool:
    return clock.started_at is not None and clock.stopped_at is None and not clock.paused


def _reached(step: Step, clock: Any, now: datetime) -> int | None:
    """The latest occurrence of *step* (0 the first firing, 1.. the repeats) whose
    moment has come, or None."""
    if clock is None or clock.started_at is None:
        return None
    threshold = step.threshold(clock.target)
    if threshold is None:
        return None
    if clock.elapsed < threshold:
        if not _running(clock):
            return None
        # Business-time rounding must not leave a due step one microsecond short.
        moment = clock.moment_at(threshold)
        if moment is None or moment > now:
            return None
        return 0
    if step.every is None:
        return 0
    return min(step.limit, int((clock.elapsed - threshold) / step.every))


def _moment(step: Step, clock: Any, occurrence: int, ruleset: Ruleset, now: datetime) -> datetime | None:
    """When occurrence *occurrence* of *step* falls due (deferred to the next opening
    of its ``only_in`` calendar)."""
    if clock is None or not _running(clock) or occurrence > step.limit:
        return None
    threshold = step.threshold(clock.target)
    if threshold is None or (occurrence and step.every is None):
        return None
    used = threshold + step.every * occurrence if occurrence else threshold
    at = now if used <= clock.elapsed else clock.moment_at(used)
    if at is None:
        return None
    if step.only_in is not None:
        cal = calendar(ruleset, step.only_in)
        if not cal.is_open(at):
            at = cal.next_open(at)
    return at


def _ladder(compiled: Compiled, state: IncidentState) -> tuple[str, tuple[Step, ...]] | None:
    return compiled.ladder_for(state.decision.severity if state.decision else None)


def _starts(clocks: Mapping[str, Any]) -> dict[str, str]:
    """Each clock's start as the log records it (which run a firing belongs to)."""
    return {name: clock.started_at.isoformat() if clock.started_at is not None else ""
            for name, clock in clocks.items()}


def next_timers(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime) -> list[Timer]:
    compiled: Compiled | None = ruleset.compiled("escalation")
    if compiled is None or state.stage in _CLOSED or state.decision is None:
        return []
    clocks = clock_states(state, events, ruleset, now)
    fired, last, breached = _history(events)
    starts = _starts(clocks)
    iid = state.id
    timers = []
    for name, clock in clocks.items():
        if clock.started_at is None or (name, starts[name]) in breached:
            continue
        if clock.breached_at is not None:
            timers.append(Timer(iid, f"esc:{name}:breach", max(clock.breached_at, now)))
        elif _running(clock):
            at = now if clock.elapsed >= clock.target else clock.moment_at(clock.target)
            if at is not None:
                timers.append(Timer(iid, f"esc:{name}:breach", at))
    found = _ladder(compiled, state)
    for step in found[1] if found else ():
        clock = clocks.get(step.clock)
        if clock is None:
            continue
        key = (step.ladder, step.id, step.clock, starts[step.clock])
        done = fired.get(key, -1)
        at = _moment(step, clock, done + 1, ruleset, now)
        if at is not None:
            floor = _not_before(step, key, last, state.decision.severity)
            timers.append(Timer(iid, step.key, max(at, floor) if floor is not None else at))
    return timers


def _view_value(state: IncidentState, name: str) -> Any:
    if name == "place":
        return state.incident.place
    return getattr(state.decision, name) if state.decision is not None else None


def _count(step: Step, state: IncidentState, store: Any, now: datetime) -> int:
    assert step.count is not None
    filters = {f: _view_value(state, f) for f in step.count.same}
    if any(v is None for v in filters.values()):
        return 1  # nothing to compare by: this incident alone
    # Around this incident's report, so the count does not depend on when the tick runs.
    reported = state.incident.reported_at or now
    within = step.count.within
    found = store.query(IncidentQuery(reported_from=reported - within, reported_until=min(reported + within, now) + _US,
                                      **filters))
    return len(found) if any(s.id == state.id for s in found) else len(found) + 1


def _raise(severity: str | None, by: int, order: Sequence[str]) -> str | None:
    """The severity *by* levels more urgent (``order`` is most urgent first)."""
    if severity not in order:
        return None
    return order[max(order.index(severity) - by, 0)]


def due_effects(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime,
                store: Any = None, plugins: Any = None) -> list[Effect]:
    compiled: Compiled | None = ruleset.compiled("escalation")
    decision = state.decision
    if compiled is None or state.stage in _CLOSED or decision is None:
        return []
    clocks = clock_states(state, events, ruleset, now)
    fired, last, breached = _history(events)
    starts = _starts(clocks)
    effects: list[Effect] = []
    for name, clock in clocks.items():
        if clock.started_at is None or (name, starts[name]) in breached:
            continue
        if clock.breached_at is not None or clock.elapsed >= clock.target:
            effects.append(Effect(BREACHED, "escalation", {
                "clock": name, "due": clock.due.isoformat() if clock.due else None,
                "breached_at": (clock.breached_at or now).isoformat(), "target": format_duration(clock.target),
                "calendar": clock.calendar, "clock_started": starts[name]}))
    found = _ladder(compiled, state)
    if found is None:
        return effects
    ladder, steps = found
    severity = decision.severity
    order: Sequence[str] | None = None  # the severities, most urgent first (read when raising)
    forced: dict[str, str] = {}  # step id -> why it fires now
    arrivals: dict[str, _Reached] = {}  # step id -> how a forced step was reached
    by_id: dict[str, Step] | None = None
    available: Any = None  # the qflow_available hook, False when no plugin implements it
    for step in steps:
        clock = clocks.get(step.clock)
        if clock is None:
            continue
        start = starts[step.clock]
        key = (ladder, step.id, step.clock, start)
        done = fired.get(key, -1)
        via = forced.get(step.id)
        if via == "":
            continue  # a jump went past it
        if via and done < 0:
            occurrence = 0
        else:
            via = None
            reached = _reached(step, clock, now)
            if reached is None or reached <= done:
                continue
            floor = _not_before(step, key, last, severity)
            if floor is not None and now < floor:
                continue  # too soon after its previous firing: the timer waits for it
            if step.only_in is not None and not calendar(ruleset, step.only_in).is_open(now):
                continue  # deferred: the timer waits for the next opening
            occurrence = reached
        source = step.source
        if step.count is not None:
            n = _count(step, state, store, now)
            if n <= step.count.more_than:
                effects.append(Effect(SKIPPED, source, {
                    "ladder": ladder, "step": step.id, "level": step.level, "clock": step.clock,
                    "clock_started": start, "reason": (
                    f"{n} such incident(s) within {format_duration(step.count.within)}, "
                    f"not more than {step.count.more_than}")}))
                continue
        recipients: list[str] = []
        away: list[str] = []
        if step.notify and available is None:
            # Nobody answering qflow_available means everyone is: no call per recipient then.
            caller = plugins.hook.qflow_available if plugins is not None else None
            impls = getattr(caller, "get_hookimpls", None)
            available = caller if caller is not None and (impls is None or impls()) else False
        for who in step.notify:
            ok = available(recipient=who, state=state, now=now) if available else None
            (away if ok is False and step.skip_unavailable else recipients).append(who)
        skipped = occurrence - max(done, -1) - 1 if via is None else 0
        by = arrivals.get(step.id) if via else None
        when = by.when if by else step.describe()
        # Frozen once, from a dict made for it: the notification's data is the event's plus five fields
        # (``trigger`` lets templates say the step's moment in the channel's language).
        data = FrozenDict.adopt({
            "ladder": ladder, "step": step.id, "level": step.level, "clock": step.clock, "clock_started": start,
            "occurrence": occurrence, "skipped": skipped, "when": when, "severity": severity,
            "recipients": tuple(recipients), "unavailable": tuple(away), "via": via})
        notes: tuple[Notification, ...] = ()
        if recipients:
            due = clock.due.isoformat() if clock.due else None
            subject = f"[{severity}] {state.id} {when}"
            if skipped:
                subject += f" (repeat {occurrence}; {skipped} missed while down)"
            notes = (Notification(state.id, step.topic, now, data["recipients"], subject,
                                  state.incident.title or state.incident.description,
                                  data | {"due": due, "category": decision.category,
                                          "team": decision.team, "owner": decision.owner,
                                          **({"trigger": by.trigger, "reached": by.how} if by
                                             else {"trigger": step.trigger})}),)
        effects.append(Effect(FIRED, source, data, notes))
        if step.raise_severity and done < 0:
            # Once per clock run, on the step's first firing: its repeats remind, and a
            # raise on each would climb past every ladder (critical has none of its own).
            if order is None:
                order = ruleset.names("severity")
            to = _raise(severity, step.raise_severity, order)
            if to is not None and to != severity:
                effects.append(Effect(ev.SEVERITY_CHANGED, source,
                                      {"from": severity, "to": to, "reason": f"escalation {ladder}/{step.id}"}))
                severity = to
        if step.team is not None or step.owner is not None:
            effects.append(Effect(ev.REASSIGNED, source, {"team": step.team, "owner": step.owner,
                                                          "reason": f"escalation {ladder}/{step.id}"}))
        if step.jump is not None:
            if by_id is None:
                by_id = {s.id: s for s in steps}
            if step.jump in by_id:
                target = by_id[step.jump]
                for other in steps[step.level:target.level - 1]:
                    if other.id not in forced:
                        forced[other.id] = ""  # marks "jumped over"
                forced[target.id] = f"jump from {step.id}"
                arrivals[target.id] = _Reached(f"{when}; jumped to {target.id}", by.trigger if by else step.trigger,
                                               {"kind": "jump", "from": step.id})
        if step.notify and not recipients and step.level < len(steps):
            nxt = steps[step.level].id
            if nxt not in forced:
                forced[nxt] = f"nobody available at {step.id}"
                arrivals[nxt] = _Reached(f"{when}; nobody available at {step.id}, passed to {nxt}",
                                         by.trigger if by else step.trigger, {"kind": "passed", "from": step.id})
    if "" not in forced.values():
        return effects  # no jump went past a step: nothing to record as skipped
    return _jumped_over(effects, forced, steps, ladder, fired, clocks)


class _Reached(NamedTuple):
    """How a step that fires before its own moment was reached: what it is announced
    with, the trigger of the moment that reached it, and how (``kind`` jump or
    passed, ``from`` which step), so templates say it in the channel's language."""

    when: str
    trigger: Any
    how: dict[str, str]


def _jumped_over(effects: list[Effect], forced: Mapping[str, str], steps: Sequence[Step], ladder: str,
                 fired: Mapping[_Key, int], clocks: Mapping[str, Any]) -> list[Effect]:
    """Steps a jump went past never fire: record them as skipped (the loop above
    treats the empty reason as "not forced" and fires nothing for them)."""
    fired_now = {e.data["step"] for e in effects if e.type in (FIRED, SKIPPED)}
    for step in steps:
        if forced.get(step.id) != "" or step.id in fired_now:
            continue
        clock = clocks.get(step.clock)
        start = _started(clock) if clock is not None else ""
        if fired.get((ladder, step.id, step.clock, start), -1) >= 0:
            continue
        effects.append(Effect(SKIPPED, f"escalation:{ladder}/{step.id}", {
            "ladder": ladder, "step": step.id, "level": step.level, "clock": step.clock,
            "clock_started": start, "reason": "jumped over"}))
    return effects
