"""Built-in plugin: calendars, business-time arithmetic, deadline policies and the
named SLA clocks.

Sections ``calendars`` (working hours, holidays, time zones; ``24x7`` is built in),
``severities`` (ordered, most urgent first, each with committed times and the
calendar they count on), ``priorities`` (targets that override a severity's for a
priority of the impact x urgency matrix) and ``clocks`` (when each clock starts,
pauses, resumes, stops and resets). The clocks of an incident are rebuilt from its
event log by :func:`qflow_sla.clocks.clock_states`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any
from datetime import datetime

from qflow import (
    Classification, Deadline, Event, Incident, IncidentState, Ruleset, Section, TraceStep, format_duration, hookimpl,
)
from qflow import events as ev
from qflow_sla._calendar import BusinessCalendar, NoWorkingTimeError
from qflow_sla._policy import (
    CLOCKS,
    DEFAULT_CLOCKS,
    ClockRule,
    ClockSpec,
    Policies,
    PriorityPolicy,
    SeverityPolicy,
    compile_clocks,
    compile_priorities,
    compile_severities,
)
from qflow_sla._spec import ROUND_THE_CLOCK, CalendarSpec, Calendars, Interval, compile_calendars
from qflow_sla.clocks import ClockState, business_calendar, clock_states

__all__ = [
    "CLOCKS", "BusinessCalendar", "CalendarSpec", "ClockSpec", "ClockState", "Interval",
    "NoWorkingTimeError", "PriorityPolicy", "SeverityPolicy", "business_calendar", "clock_states",
]


@hookimpl
def qflow_ruleset_sections() -> Sequence[Section]:
    return [
        Section("calendars", dict[str, CalendarSpec], compile_calendars,
                doc="when the clocks run: working windows, time zone, holidays; '24x7' is built in"),
        Section("priorities", dict[str, PriorityPolicy], compile_priorities,
                doc="committed times per priority (impact x urgency); they override the severity's"),
        Section("severities", dict[str, SeverityPolicy], compile_severities,
                doc="severities, most urgent first, with their committed times and calendar"),
        Section("clocks", dict[str, ClockSpec], compile_clocks,
                doc="when each clock starts, pauses, resumes, stops and resets"),
    ]


def _reported_clocks(ruleset: Ruleset) -> Mapping[str, ClockRule]:
    rules: Mapping[str, ClockRule] = ruleset.compiled("clocks") or DEFAULT_CLOCKS
    return {name: rule for name, rule in rules.items() if ev.INCIDENT_REPORTED in rule.start.event}


def _plan(ruleset: Ruleset, severity: str | None, priority: str | None) -> tuple[tuple[Any, ...], ...]:
    """The deadlines a severity and priority commit to, ready to be counted from a
    start: (clock, span, calendar, calendar name, source) in clock order. Worked out
    once per pair and ruleset: deciding only adds the spans on the calendars."""
    policies: Policies = ruleset.compiled("severities")
    key = (severity, priority)
    plan = policies.plans.get(key)
    if plan is None:
        calendars: Calendars = ruleset.compiled("calendars")
        targets = policies.targets(severity, priority)
        order = {c: i for i, c in enumerate(CLOCKS)}
        found = []
        for name in _reported_clocks(ruleset):
            target = targets.get(name)
            if target is None:
                continue
            cal = calendars.get(target.calendar) or calendars[ROUND_THE_CLOCK]
            found.append((name, target.span, cal, target.calendar, target.source))
        found.sort(key=lambda d: order.get(d[0], len(order)))
        plan = policies.plans[key] = tuple(found)
    return plan


def _start(incident: Incident, now: datetime) -> datetime:
    """Deadlines count from when the incident was reported, so none comes before it: a
    reported_at ahead of qflow's clock (the sender's clock a little fast; intake refuses
    one further ahead than ``intake.clock_skew``) counts from reported_at, as the clocks do."""
    reported = incident.reported_at
    return now if reported is None else reported


def _deadline(name: str, start: datetime, span: Any, cal: BusinessCalendar, calname: str) -> Deadline:
    due = cal.add(start, span)
    return Deadline(name, start, due, span, calname, cal.warnings(start, due))


def _deadlines(classification: Classification, ruleset: Ruleset, start: datetime) -> list[tuple[Deadline, str]]:
    return [(_deadline(name, start, span, cal, calname), source)
            for name, span, cal, calname, source in _plan(ruleset, classification.severity, classification.priority)]


@hookimpl(trylast=True)
def qflow_deadline(incident: Incident, classification: Classification, ruleset: Ruleset,
                   now: datetime) -> Sequence[Deadline] | None:
    if classification.severity is None and classification.priority is None:
        return None
    start = _start(incident, now)
    plan = _plan(ruleset, classification.severity, classification.priority)
    # The hot path: inlined (see _deadline).
    return tuple([Deadline(name, start, due := cal.add(start, span), span, calname, cal.warnings(start, due))
                  for name, span, cal, calname, _ in plan]) or None


@hookimpl(trylast=True)
def qflow_clock_dues(state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
                     now: datetime) -> Mapping[str, datetime | None] | None:
    # Read from the clocks escalation reads (the read is kept per log: the schedule's
    # read of this same log answers it). A clock running towards its target is due
    # when the target runs out (a moment passed once breached); one paused, stopped
    # (met, also late) or not started yet is not due. No clocks: the decision's say.
    clocks = clock_states(state, events, ruleset, now)
    if not clocks:
        return None
    return {name: c.due if c.running else None for name, c in clocks.items()}


@hookimpl(trylast=True)
def qflow_explain(incident: Incident, classification: Classification, ruleset: Ruleset,
                  now: datetime) -> list[TraceStep]:
    # The severity is the classify rules' business; say what it means for the clocks.
    severity = classification.severity
    start = _start(incident, now)
    if severity is None and classification.priority is None:
        return [TraceStep("severities", None, "unset", "no severity was decided, so no deadlines", "plugin:sla")]
    found = _deadlines(classification, ruleset, start)
    if not found:
        return [TraceStep("severities", severity, "info", f"severity {severity} has no respond or resolve time",
                          "plugin:sla")]
    parts = []
    for d, source in found:
        text = f"{d.clock} {format_duration(d.business)} (due {d.due.isoformat()}"
        if d.due - d.start != d.business:
            text += f", {format_duration(d.due - d.start)} calendar time"
        if source != f"severity {severity}":
            text += f", from {source}"
        parts.append(text + ")")
    calendars = sorted({d.calendar for d, _ in found})
    steps = [TraceStep("severities", severity, "info",
                       f"{', '.join(parts)}; counted on {' and '.join(calendars)} from {start.isoformat()}",
                       "plugin:sla")]
    notes: list[str] = []
    for d, _ in found:
        for note in d.warnings:
            if note not in notes:
                notes.append(note)
    steps += [TraceStep("calendars", None, "warning", note, "plugin:sla") for note in notes]
    return steps
