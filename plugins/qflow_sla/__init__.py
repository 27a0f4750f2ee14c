"""Built-in plugin: severities with their committed times, and the calendars they
count on.

Sections ``severities`` (ordered, most urgent first) and ``calendars``. This version
counts on round-the-clock calendars (``hours: 24x7``); working hours and holidays
come through the same hook and sections.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

import attrs

from qflow import Classification, CompileContext, Deadline, Incident, Ruleset, Section, TraceStep, format_duration, hookimpl

__all__ = ["CalendarSpec", "SeverityPolicy"]

ROUND_THE_CLOCK = "24x7"


@attrs.frozen
class CalendarSpec:
    """When the clocks run. ``hours: 24x7`` runs them always."""

    hours: str = ROUND_THE_CLOCK
    name: str | None = None


@attrs.frozen
class SeverityPolicy:
    """A severity and its committed times; ``calendar`` names what they count on."""

    name: str | None = None
    respond: timedelta | None = None
    resolve: timedelta | None = None
    calendar: str = ROUND_THE_CLOCK


@attrs.frozen
class _Policies:
    order: tuple[str, ...]
    clocks: Mapping[str, tuple[tuple[str, timedelta, str], ...]]  # severity -> (clock, span, calendar)


def _compile_calendars(calendars: Mapping[str, CalendarSpec] | None, ctx: CompileContext) -> Mapping[str, CalendarSpec]:
    ctx.define("calendar", ROUND_THE_CLOCK, ())
    for key, cal in (calendars or {}).items():
        if key == ROUND_THE_CLOCK:
            ctx.error(("calendars", key), "QF202", f"calendar '{key}' is built in",
                      hint="choose another name, or use '24x7' without defining it", at="key")
            continue
        ctx.define("calendar", key, ("calendars", key))
        if cal.hours != ROUND_THE_CLOCK:
            ctx.error(("calendars", key, "hours"), "QF104",
                      f"hours '{cal.hours}' is not supported by this version",
                      hint="use hours: 24x7; working-hour calendars come with the SLA calendar plugin")
    return {ROUND_THE_CLOCK: CalendarSpec(), **(calendars or {})}


def _compile_severities(severities: Mapping[str, SeverityPolicy] | None, ctx: CompileContext) -> _Policies:
    ctx.declare("severity")
    clocks = {}
    for key, policy in (severities or {}).items():
        ctx.define("severity", key, ("severities", key))
        ctx.refer("calendar", policy.calendar, ("severities", key, "calendar"))
        if policy.respond and policy.resolve and policy.respond > policy.resolve:
            ctx.error(("severities", key, "respond"), "QF104",
                      f"respond ({format_duration(policy.respond)}) is longer than resolve ({format_duration(policy.resolve)})",
                      hint="an answer cannot come after the fix; shorten respond or lengthen resolve")
        clocks[key] = tuple((name, span, policy.calendar)
                            for name, span in (("respond", policy.respond), ("resolve", policy.resolve)) if span)
    return _Policies(tuple(severities or ()), clocks)


@hookimpl
def qflow_ruleset_sections() -> Sequence[Section]:
    return [
        Section("calendars", dict[str, CalendarSpec], _compile_calendars,
                doc="when the clocks run; '24x7' is built in"),
        Section("severities", dict[str, SeverityPolicy], _compile_severities,
                doc="severities, most urgent first, with respond and resolve times and their calendar"),
    ]


@hookimpl(trylast=True)
def qflow_deadline(incident: Incident, classification: Classification, ruleset: Ruleset, now: datetime) -> Sequence[Deadline] | None:
    policies: _Policies = ruleset.compiled("severities")
    spans = policies.clocks.get(classification.severity) if classification.severity else None
    if not spans:
        return None
    start = incident.reported_at or now
    return tuple(Deadline(name, start, start + span, span, cal) for name, span, cal in spans)


@hookimpl(trylast=True)
def qflow_explain(incident: Incident, classification: Classification, ruleset: Ruleset, now: datetime) -> list[TraceStep]:
    # The severity is the classify rules' business; say what it means for the clocks.
    policies: _Policies = ruleset.compiled("severities")
    severity = classification.severity
    start = incident.reported_at or now
    if severity is None:
        return [TraceStep("severities", None, "unset", "no severity was decided, so no deadlines", "plugin:sla")]
    spans = policies.clocks.get(severity, ())
    if not spans:
        return [TraceStep("severities", severity, "info", f"severity {severity} has no respond or resolve time", "plugin:sla")]
    parts = ", ".join(f"{name} {format_duration(span)} (due {(start + span).isoformat()})" for name, span, _ in spans)
    return [TraceStep("severities", severity, "info",
                      f"{parts}; counted on {spans[0][2]} from {start.isoformat()}", "plugin:sla")]
