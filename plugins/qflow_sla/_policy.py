"""Deadline policies: the committed times per severity and per priority, and the
definitions of the named clocks (when each starts, pauses, resumes, stops, resets).

Severity and priority are distinct: the severity says how urgent and harmful an
incident is, the priority (impact x urgency, the rules plugin's ``priority``
section) which queue position it has. A ``priorities`` entry overrides, clock by
clock, the targets of the severity.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import attrs

from qflow import CompileContext, Event, Stage, format_duration
from qflow import events as ev
from qflow.diagnostics import did_you_mean
from qflow_sla._salvage import salvaged

__all__ = ["CLOCKS", "ClockRule", "Policies", "PriorityPolicy", "SeverityPolicy", "Target", "Trigger"]

#: The named clocks, in the order of the loop: acknowledge, first response, resolve,
#: and the stage clocks (responsibility confirmed, cause found, action, verification).
CLOCKS = ("acknowledge", "respond", "resolve", "confirm", "cause", "action", "verify")


@attrs.frozen
class SeverityPolicy:
    """A severity and its committed times; ``calendar`` names what they count on."""

    name: str | None = None
    acknowledge: timedelta | None = None
    respond: timedelta | None = None
    resolve: timedelta | None = None
    confirm: timedelta | None = None
    cause: timedelta | None = None
    action: timedelta | None = None
    verify: timedelta | None = None
    calendar: str = "24x7"


@attrs.frozen
class PriorityPolicy:
    """Targets that override the severity's for incidents of this priority; without a
    ``calendar`` they count on the severity's calendar."""

    acknowledge: timedelta | None = None
    respond: timedelta | None = None
    resolve: timedelta | None = None
    confirm: timedelta | None = None
    cause: timedelta | None = None
    action: timedelta | None = None
    verify: timedelta | None = None
    calendar: str | None = None


@attrs.frozen
class Target:
    """The committed time of one clock, the calendar it counts on and who set it."""

    span: timedelta
    calendar: str
    source: str  # "severity high", "priority P1"


@attrs.frozen
class Trigger:
    """Matches an event: of one of the ``event`` types, a move to one of the
    ``stage`` values, or a status change to one of the ``status`` values."""

    event: frozenset[str] = frozenset()
    stage: frozenset[str] = frozenset()
    status: frozenset[str] = frozenset()

    def __call__(self, event: Event) -> bool:
        if event.type in self.event:
            return True
        if event.type == ev.STAGE_CHANGED:
            return event.data.get("to") in self.stage
        if event.type == ev.STATUS_CHANGED:
            return event.data.get("to") in self.status
        return False

    def __bool__(self) -> bool:
        return bool(self.event or self.stage or self.status)


@attrs.frozen
class ClockRule:
    """When a clock starts (a new run), pauses, resumes, stops and resets (a new run
    even while it runs). A pause on statuses is a state: the clock stays paused while
    the status is one of them, and without ``resume`` it resumes on any other status."""

    start: Trigger
    stop: Trigger = Trigger()
    pause: Trigger = Trigger()
    resume: Trigger | None = None
    reset: Trigger = Trigger()

    def resumes(self, event: Event) -> bool:
        if self.resume is not None:
            return self.resume(event)
        return event.type == ev.STATUS_CHANGED and event.data.get("to") not in self.pause.status


_REPORTED = Trigger(event=frozenset({ev.INCIDENT_REPORTED}))
_ENDED = frozenset({Stage.CLOSED.value, Stage.REJECTED.value})
_WAITING = frozenset({"waiting_customer", "waiting_vendor"})

#: The clocks a ruleset gets without a ``clocks`` section (and for clocks it leaves out).
DEFAULT_CLOCKS: Mapping[str, ClockRule] = {
    "acknowledge": ClockRule(_REPORTED, Trigger(event=frozenset({ev.ACKNOWLEDGED}), stage=_ENDED)),
    "respond": ClockRule(_REPORTED, Trigger(event=frozenset({ev.RESPONDED}), stage=_ENDED)),
    "resolve": ClockRule(_REPORTED, Trigger(stage=_ENDED), pause=Trigger(status=_WAITING),
                         reset=Trigger(stage=frozenset({Stage.REOPENED.value}))),
    "confirm": ClockRule(_REPORTED, Trigger(stage=frozenset({Stage.CONFIRMED.value}) | _ENDED)),
    "cause": ClockRule(Trigger(stage=frozenset({Stage.ANALYSING.value})),
                       Trigger(stage=frozenset({Stage.ACTING.value}) | _ENDED), pause=Trigger(status=_WAITING)),
    "action": ClockRule(Trigger(stage=frozenset({Stage.ACTING.value})),
                        Trigger(stage=frozenset({Stage.VERIFYING.value, Stage.ANALYSING.value}) | _ENDED),
                        pause=Trigger(status=_WAITING)),
    "verify": ClockRule(Trigger(stage=frozenset({Stage.VERIFYING.value})),
                        Trigger(stage=frozenset({Stage.ANALYSING.value}) | _ENDED)),
}


@attrs.frozen
class ClockSpec:
    """A clock as written in the ``clocks`` section; each key a trigger mapping
    ``{event: [...], stage: [...], status: [...]}``. Keys left out keep the default."""

    start: Any = None
    stop: Any = None
    pause: Any = None
    resume: Any = None
    reset: Any = None


_KNOWN_EVENTS = tuple(v for n in ev.__all__ if n.isupper() and isinstance(v := getattr(ev, n), str))


def _trigger(raw: Any, ctx: CompileContext, path: tuple[str | int, ...]) -> Trigger | None:
    if not isinstance(raw, Mapping):
        ctx.error(path, "QF711", "a clock trigger must be a mapping of event, stage and status lists",
                  hint="write e.g. {status: [waiting_customer]} or {event: [Responded], stage: [closed]}")
        return None
    found: dict[str, frozenset[str]] = {}
    for key, value in raw.items():
        if key not in ("event", "stage", "status"):
            ctx.error(path + (key,), "QF101", f"unknown key '{key}'",
                      hint=did_you_mean(key, ["event", "stage", "status"]) or "use event, stage or status", at="key")
            continue
        items = [value] if isinstance(value, str) else value
        if not isinstance(items, list) or not items or not all(isinstance(v, str) and v for v in items):
            ctx.error(path + (key,), "QF711", f"{key} must be a name or a list of names",
                      hint=f"write {key}: [a, b]")
            continue
        for i, name in enumerate(items):
            at = path + (key, i) if isinstance(value, list) else path + (key,)
            if key == "stage" and name not in {s.value for s in Stage}:
                ctx.error(at, "QF712", f"unknown stage '{name}'",
                          hint=did_you_mean(name, [s.value for s in Stage])
                          or "use one of: " + ", ".join(s.value for s in Stage))
            if key == "event" and name not in _KNOWN_EVENTS:
                ctx.warn(at, "QF713", f"no built-in event is called '{name}'",
                         hint=did_you_mean(name, _KNOWN_EVENTS) or "fine if a plugin records it; check the spelling")
        found[key] = frozenset(items)
    return Trigger(**found)


def compile_clocks(specs: Mapping[str, ClockSpec] | None, ctx: CompileContext) -> Mapping[str, ClockRule]:
    out = dict(DEFAULT_CLOCKS)
    for name, spec in (specs or {}).items():
        path = ("clocks", name)
        if name not in CLOCKS:
            ctx.error(path, "QF710", f"unknown clock '{name}'",
                      hint=did_you_mean(name, CLOCKS) or "the clocks are: " + ", ".join(CLOCKS), at="key")
            continue
        rule = out[name]
        changes: dict[str, Any] = {}
        for key in ("start", "stop", "pause", "resume", "reset"):
            raw = getattr(spec, key)
            if raw is None:
                continue
            trig = _trigger(raw, ctx, path + (key,))
            if trig is not None:
                changes[key] = trig
        rule = attrs.evolve(rule, **changes)
        if not rule.start:
            ctx.error(path + ("start",), "QF711", f"clock '{name}' never starts",
                      hint="give start, e.g. {event: [IncidentReported]}")
        if (rule.pause.event or rule.pause.stage) and rule.resume is None:
            ctx.error(path + ("pause",), "QF711", f"clock '{name}' pauses on an event or stage but never resumes",
                      hint="add resume, e.g. {status: [working]}")
        out[name] = rule
    return out


@attrs.frozen
class Policies:
    """The compiled ``severities`` and ``priorities`` sections."""

    order: tuple[str, ...]
    severities: Mapping[str, SeverityPolicy]
    priorities: Mapping[str, PriorityPolicy]
    #: (severity, priority) -> the deadline plan (see ``qflow_sla._plan``); filled on use.
    plans: dict[tuple[str | None, str | None], Any] = attrs.field(factory=dict, eq=False, repr=False)
    #: The clocks some severity or priority sets a time for (the others never have a target).
    clocks: frozenset[str] = attrs.field(init=False, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        found = {clock for policy in (*self.severities.values(), *self.priorities.values())
                 for clock in CLOCKS if getattr(policy, clock, None) is not None}
        object.__setattr__(self, "clocks", frozenset(found))

    def targets(self, severity: str | None, priority: str | None) -> dict[str, Target]:
        """The target of every clock that has one for this severity and priority."""
        out: dict[str, Target] = {}
        sev = self.severities.get(severity) if severity is not None else None
        calendar = sev.calendar if sev is not None else "24x7"
        if sev is not None:
            for clock in CLOCKS:
                span = getattr(sev, clock)
                if span is not None:
                    out[clock] = Target(span, sev.calendar, f"severity {severity}")
        prio = self.priorities.get(priority) if priority is not None else None
        if prio is not None:
            for clock in CLOCKS:
                span = getattr(prio, clock)
                if span is not None:
                    out[clock] = Target(span, prio.calendar or calendar, f"priority {priority}")
        return out


def _check_order(key: str, policy: Any, ctx: CompileContext, section: str) -> None:
    if policy.respond and policy.resolve and policy.respond > policy.resolve:
        ctx.error((section, key, "respond"), "QF104",
                  f"respond ({format_duration(policy.respond)}) is longer than resolve ({format_duration(policy.resolve)})",
                  hint="an answer cannot come after the fix; shorten respond or lengthen resolve")


def compile_severities(severities: Mapping[str, SeverityPolicy] | None, ctx: CompileContext) -> Policies:
    ctx.declare("severity")
    for key, policy in (severities or {}).items():
        ctx.define("severity", key, ("severities", key))
        ctx.refer("calendar", policy.calendar, ("severities", key, "calendar"))
        _check_order(key, policy, ctx, "severities")
    # An entry with a mistake is not a severity, but its other keys are still checked.
    for key, (policy, _) in salvaged("severities", severities or {}, SeverityPolicy, ctx).items():
        ctx.refer("calendar", policy.calendar, ("severities", key, "calendar"))
        _check_order(key, policy, ctx, "severities")
    priorities = ctx.section("priorities") or {}
    return Policies(tuple(severities or ()), dict(severities or {}), dict(priorities))


def compile_priorities(priorities: Mapping[str, PriorityPolicy] | None, ctx: CompileContext) -> Mapping[str, PriorityPolicy]:
    for key, policy in (priorities or {}).items():
        ctx.refer("priority", key, ("priorities", key))
        if policy.calendar is not None:
            ctx.refer("calendar", policy.calendar, ("priorities", key, "calendar"))
        _check_order(key, policy, ctx, "priorities")
    for key, (policy, _) in salvaged("priorities", priorities or {}, PriorityPolicy, ctx).items():
        if policy.calendar is not None:
            ctx.refer("calendar", policy.calendar, ("priorities", key, "calendar"))
        _check_order(key, policy, ctx, "priorities")
    return dict(priorities or {})
