"""Holding notifications: a burst of the same anomaly notifies once (grouping), and an
open incident can silence the ones it explains (suppression).

A held notification is not delivered; the incident records a
``NotificationSuppressed`` event naming the incident that holds it, in the same
transaction. Nothing else about the held incident changes: it is decided, timed and
escalated like any other (its escalation notifications are held the same way while
the holder is open).

Grouping is decided when an incident is reported: if an open incident with equal
``by`` fields was reported within ``window`` before it and is not itself grouped,
the new one joins it, and stays joined while that first incident is open. A group
holds before a suppression does, so a burst held by a suppression is released once,
by its first incident.

Once the holder closes, a held incident that is still open is no longer explained
by it: what it held is released as one notification (``incident.released``, to
everyone the held ones were for) with a ``NotificationsReleased`` event. The held
incident learns of the close by looking at its holder every ``release.check``
(a timer ``esc:release``), so a release survives a crash between the holder's
close and the held incident's next step, and needs no write to other incidents.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

from qflow import Effect, Event, IncidentQuery, IncidentState, Notification, Ruleset, Stage, Timer, incident_view

from qflow_escalation._compile import Compiled

__all__ = ["RELEASED", "RELEASE_KEY", "SUPPRESSED", "held", "release_timer", "released"]

SUPPRESSED = "NotificationSuppressed"  #: data: topic, recipients, by, reason (grouped, suppressed), rule
#: data: by, reason, held (how many), topics, holder_stage
RELEASED = "NotificationsReleased"
RELEASE_KEY = "esc:release"
REPORTED_TOPIC = "incident.reported"
RELEASED_TOPIC = "incident.released"

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


def _earliest(store: Any, query: IncidentQuery) -> Iterator[IncidentState]:
    """The incidents *query* finds, earliest reported first, read a few at a time: the
    one looked for is nearly always among the first (a group's leader is its first
    report), and reading them all made each report of a burst read every earlier one."""
    limit, done = 1, 0
    while True:
        found = store.query(attrs.evolve(query, limit=limit))
        yield from found[done:]
        if len(found) < limit:
            return
        done, limit = len(found), limit * 4


def _is_open(store: Any, incident_id: str) -> bool:
    other = store.get(incident_id)
    return other is not None and other.stage not in _CLOSED


def _suppressor(compiled: Compiled, state: IncidentState, store: Any) -> tuple[str, str] | None:
    """The earliest-reported open incident that holds *state* by a suppress rule, and the rule.

    An incident that itself matches a rule's ``source`` could hold others, so it is held
    only by a source reported strictly before it: holding then follows the order of
    reports and two incidents never hold each other (two reports of one outage would
    otherwise silence both). One that matches no source holds nobody and is held by any
    open source, whenever that was reported."""
    view = _view(state) if compiled.suppress else None
    reported = state.incident.reported_at
    is_source = any(rule.source.test(view) for rule in compiled.suppress)
    if is_source and reported is None:
        return None  # no order to hold it by
    for rule in compiled.suppress:
        if not rule.target.test(view):
            continue
        filters = {f: _value(state, f) for f in rule.equal}
        if any(v is None for v in filters.values()):
            continue  # nothing to compare by
        if any(filters.get(f, v) != v for f, v in rule.query.items()):
            continue  # the source would have to differ from this incident where the rule says they are equal
        query = IncidentQuery(open_only=True, reported_until=reported if is_source else None, **filters, **rule.query)
        for other in _earliest(store, query):
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
    for other in _earliest(store, query):
        if other.id != state.id and _grouped_into(store.events(other.id)) is None:
            return other.id
    return None


def held(notifications: Sequence[Notification], state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
         now: datetime, store: Any) -> list[Effect]:
    compiled: Compiled | None = ruleset.compiled("escalation")
    if compiled is None or (compiled.group is None and not compiled.suppress) or store is None:
        return []
    # A member of a burst speaks through its leader even when both are suppressed, so
    # when the suppression ends the leader alone tells of the burst. Held by the very
    # incident that explains it, it is suppressed (the reason says more).
    leader = _leader(compiled, state, events, notifications, store)
    found = _suppressor(compiled, state, store)
    if leader is not None and (found is None or found[0] != leader):
        by, reason, source = leader, "grouped", "escalation:group"
        extra = {"group": {f: _value(state, f) for f in compiled.group.by}} if compiled.group else {}
    elif found is not None:
        by, rule = found
        reason, source, extra = "suppressed", f"escalation:suppress:{rule}", {"rule": rule}
    else:
        return []
    return [Effect(SUPPRESSED, source, {"topic": n.topic, "recipients": list(n.recipients), "by": by,
                                        "reason": reason, **extra}, (n,))
            for n in notifications]


def _unreleased(events: Sequence[Event]) -> dict[str, list[Mapping[str, Any]]]:
    """The data of held notifications not released since, by holder, in the order held."""
    out: dict[str, list[Mapping[str, Any]]] = {}
    for e in events:
        t = e.type
        if t == SUPPRESSED:
            out.setdefault(e.data.get("by"), []).append(e.data)
        elif t == RELEASED:
            out.pop(e.data.get("by"), None)
    return out


def _release_check(state: IncidentState, ruleset: Ruleset) -> timedelta | None:
    compiled: Compiled | None = ruleset.compiled("escalation")
    if compiled is None or state.stage in _CLOSED:
        return None  # a closed incident has nobody left to tell
    return compiled.release_check


def release_timer(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime) -> list[Timer]:
    """While the incident holds back notifications for a holder, look at it again in
    ``release.check``."""
    check = _release_check(state, ruleset)
    if check is None or not _unreleased(events):
        return []
    return [Timer(state.id, RELEASE_KEY, now + check)]


def released(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime,
             store: Any) -> list[Effect]:
    """One release per holder that has closed since it held this incident's notifications."""
    if store is None or _release_check(state, ruleset) is None:
        return []
    pending = _unreleased(events)
    out = []
    for by, held_data in pending.items():
        holder = store.get(by)
        if holder is not None and holder.stage not in _CLOSED:
            continue
        stage = holder.stage.value if holder is not None else "missing"
        topics = list(dict.fromkeys(d.get("topic") for d in held_data))
        recipients = tuple(dict.fromkeys(r for d in held_data for r in d.get("recipients") or ()))
        data = {"by": by, "reason": held_data[-1].get("reason"), "held": len(held_data), "topics": topics,
                "holder_stage": stage}
        d = state.decision
        what = f"{len(held_data)} notification{'' if len(held_data) == 1 else 's'}"
        subject = (f"[{(d.severity if d else None) or '?'}] {state.id} {(d.category if d else None) or ''}".rstrip()
                   + f": still open; {what} held while {by} was open ({', '.join(topics)}), and {by} is {stage}")
        note = Notification(state.id, RELEASED_TOPIC, now, recipients, subject,
                            state.incident.title or state.incident.description,
                            {**data, "severity": d.severity if d else None, "category": d.category if d else None,
                             "team": d.team if d else None, "owner": d.owner if d else None})
        out.append(Effect(RELEASED, "escalation:release", data, (note,)))
    return out
