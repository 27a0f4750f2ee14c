"""Holding notifications: a burst of the same anomaly notifies once (grouping), and an
open incident can silence the ones it explains (suppression).

A held notification is not delivered; the incident records a
``NotificationSuppressed`` event naming the incident that holds it, in the same
transaction. Nothing else about the held incident changes: it is decided, timed and
escalated like any other (its escalation notifications are held the same way while
the holder is open).

Grouping is decided when an incident is reported: if an open incident with equal
``by`` fields was reported within ``window`` before it and is not itself grouped,
the new one joins it, and stays joined while that first incident is open.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from qflow import Effect, Event, IncidentQuery, IncidentState, Notification, Ruleset, Stage, incident_view

from qflow_escalation._compile import Compiled

__all__ = ["SUPPRESSED", "held"]

SUPPRESSED = "NotificationSuppressed"  #: data: topic, recipients, by, reason (grouped, suppressed), rule
REPORTED_TOPIC = "incident.reported"

_CLOSED = (Stage.CLOSED, Stage.REJECTED)
_US = timedelta(microseconds=1)


def _value(state: IncidentState, name: str) -> Any:
    if name == "place":
        return state.incident.place
    return getattr(state.decision, name) if state.decision is not None else None


def _view(state: IncidentState) -> dict[str, Any]:
    view = incident_view(state.incident)
    d = state.decision
    if d is not None:
        # Conditions read what was decided, as route rules do.
        view["category"], view["severity"], view["priority"] = d.category, d.severity, d.priority
    return view


def _grouped_into(events: Sequence[Event]) -> str | None:
    for e in events:
        if e.type == SUPPRESSED and e.data.get("reason") == "grouped":
            return e.data.get("by")
    return None


def _is_open(store: Any, incident_id: str) -> bool:
    other = store.get(incident_id)
    return other is not None and other.stage not in _CLOSED


def _suppressor(compiled: Compiled, state: IncidentState, store: Any) -> tuple[str, str] | None:
    view = None
    for rule in compiled.suppress:
        view = view if view is not None else _view(state)
        if not rule.target.test(view):
            continue
        filters = {f: _value(state, f) for f in rule.equal}
        if any(v is None for v in filters.values()):
            continue  # nothing to compare by
        for other in store.query(IncidentQuery(open_only=True, **filters)):
            if other.id != state.id and rule.source.test(_view(other)):
                return other.id, rule.id
    return None


def _leader(compiled: Compiled, state: IncidentState, events: Sequence[Event], notes: Sequence[Notification],
            store: Any) -> str | None:
    group = compiled.group
    if group is None:
        return None
    joined = _grouped_into(events)
    if joined is not None:
        return joined if _is_open(store, joined) else None
    reported = state.incident.reported_at
    if reported is None or not any(n.topic == REPORTED_TOPIC for n in notes):
        return None
    filters = {f: _value(state, f) for f in group.by}
    if any(v is None for v in filters.values()):
        return None
    query = IncidentQuery(open_only=True, reported_from=reported - group.window, reported_until=reported + _US, **filters)
    for other in store.query(query):
        if other.id != state.id and _grouped_into(store.events(other.id)) is None:
            return other.id
    return None


def held(notifications: Sequence[Notification], state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
         now: datetime, store: Any) -> list[Effect]:
    compiled: Compiled | None = ruleset.compiled("escalation")
    if compiled is None or (compiled.group is None and not compiled.suppress) or store is None:
        return []
    found = _suppressor(compiled, state, store)
    if found is not None:
        by, rule = found
        reason, source, extra = "suppressed", f"escalation:suppress:{rule}", {"rule": rule}
    else:
        leader = _leader(compiled, state, events, notifications, store)
        if leader is None:
            return []
        by, reason, source = leader, "grouped", "escalation:group"
        extra = {"group": {f: _value(state, f) for f in compiled.group.by}} if compiled.group else {}
    return [Effect(SUPPRESSED, source, {"topic": n.topic, "recipients": list(n.recipients), "by": by,
                                        "reason": reason, **extra}, (n,))
            for n in notifications]
