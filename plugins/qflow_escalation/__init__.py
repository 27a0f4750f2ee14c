"""Built-in plugin: escalation ladders, breaches, grouping and suppression.

Section ``escalation`` (see ``docs/escalation.md``). Hooks: ``qflow_schedule`` (the
next moment each step that has not fired falls due, as timers ``esc:<clock>:...``),
``qflow_due`` (fire what is due, each step once per incident and clock run, record
``DeadlineBreached`` when a clock runs out, and release what a closed holder held)
and ``qflow_hold_notifications`` (grouping and suppression). Whether a recipient is
available is asked through ``qflow_available``.

Uses the public module ``qflow_sla.clocks`` of the built-in ``sla`` plugin for clock
states and business calendars when it is installed; without it, the decision's
deadlines stand in as round-the-clock clocks (``_clocks.py``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from qflow import Effect, Event, IncidentState, Notification, Ruleset, Section, Timer, hookimpl

from qflow_escalation._compile import BREACH_TOPIC, WARNING_TOPIC, Compiled, Step, compile_escalation
from qflow_escalation._grouping import RELEASED, RELEASED_TOPIC, SUPPRESSED, held, release_timer, released
from qflow_escalation._ladder import BREACHED, FIRED, SKIPPED, due_effects, next_timers
from qflow_escalation._spec import EscalationSpec

__all__ = ["BREACHED", "FIRED", "RELEASED", "SKIPPED", "SUPPRESSED", "Compiled", "EscalationSpec", "Step"]


# tryfirst puts this section last in the load order, so the severities, teams and
# calendars it refers to are defined when it compiles.
@hookimpl(tryfirst=True)
def qflow_ruleset_sections() -> Sequence[Section]:
    return [Section("escalation", EscalationSpec, compile_escalation,
                    doc="escalation ladders per severity, grouping and suppression")]


@hookimpl
def qflow_notification_topics(sections: Mapping[str, Any]) -> Sequence[str]:
    spec: EscalationSpec | None = sections.get("escalation")
    chosen = [s.topic for steps in (spec.ladders.values() if spec else ()) for s in steps if s.topic]
    return [WARNING_TOPIC, BREACH_TOPIC, RELEASED_TOPIC, *chosen]


@hookimpl
def qflow_schedule(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime) -> list[Timer]:
    timers = next_timers(state, events, ruleset, now)
    release = release_timer(state, events, ruleset, now)
    return timers + release if release else timers


@hookimpl
def qflow_due(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime,
              store: Any, plugins: Any) -> list[Effect]:
    effects = due_effects(state, events, ruleset, now, store, plugins)
    release = released(state, events, ruleset, now, store)
    return effects + release if release else effects


@hookimpl
def qflow_hold_notifications(notifications: Sequence[Notification], state: IncidentState, events: Sequence[Event],
                             ruleset: Ruleset, now: datetime, store: Any) -> list[Effect]:
    return held(notifications, state, events, ruleset, now, store)
