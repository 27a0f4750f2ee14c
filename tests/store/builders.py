"""Incidents, logs and states for the store contract: real events folded with
``qflow.events.fold``, so every state written is the fold of its log."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta, timezone

import qflow
from qflow import events as ev
from qflow.model import Deadline, Decision, Event, Incident, IncidentState, Stage
from qflow.store import Timer, Write

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 20, 23, 10, tzinfo=CST)
CONV = qflow.make_converter()


def incident(iid: str, *, at: datetime = T0, external_id: str | None = None, dedup_key: str | None = None,
             place: str | None = "15楼 1512房", description: str = "邻房深夜喧哗，无法入睡") -> Incident:
    return Incident(id=iid, reported_at=at, channel="phone", category="complaint", place=place,
                    description=description, external_id=external_id, dedup_key=dedup_key,
                    extra={"room": "1512", "nested": {"list": [1, 2, {"deep": None}]}})


def decision(iid: str, *, at: datetime = T0, team: str = "front-office", severity: str = "high",
             respond: timedelta = timedelta(hours=1)) -> Decision:
    return Decision(incident_id=iid, decided_at=at, ruleset="test@abc", category="complaint", severity=severity,
                    team=team, owner="王芳", responsibility="human",
                    deadlines=(Deadline("respond", at, at + respond, respond),
                               Deadline("resolve", at, at + 24 * respond, 24 * respond)),
                    matched=("vip-complaint",), sources={"severity": "classify:vip-complaint"})


def reported(iid: str, *, at: datetime = T0, team: str = "front-office", severity: str = "high",
             external_id: str | None = None, dedup_key: str | None = None,
             respond: timedelta = timedelta(hours=1)) -> tuple[tuple[Event, ...], IncidentState]:
    inc = incident(iid, at=at, external_id=external_id, dedup_key=dedup_key)
    d = decision(iid, at=at, team=team, severity=severity, respond=respond)
    events = (
        Event(iid, 1, at, ev.INCIDENT_REPORTED, actor="前台 E1042", source="report", ruleset="test@abc",
              data=CONV.unstructure(inc)),
        Event(iid, 2, at, ev.DECISION_MADE, source="vip-complaint", ruleset="test@abc",
              data=ev.decision_data(CONV, d)),
    )
    return events, ev.fold(events)


def report_write(iid: str, *, timers: Sequence[Timer] | None = (), **kw: object) -> Write:
    events, state = reported(iid, **kw)  # type: ignore[arg-type]
    return Write(events, state, None if timers is None else tuple(timers))


def follow(state: IncidentState, *items: tuple[str, dict], at: datetime | None = None,
           actor: str | None = "王芳") -> tuple[tuple[Event, ...], IncidentState]:
    """Events after *state* and the state they fold to."""
    at = at or state.updated_at + timedelta(minutes=5)
    new = tuple(Event(state.id, state.seq + i + 1, at, t, actor=actor, source="test", ruleset="test@abc", data=d)
                for i, (t, d) in enumerate(items))
    after = state
    for e in new:
        after = ev.apply(after, e, CONV)
    return new, after


def to_stage(state: IncidentState, stage: Stage, at: datetime | None = None) -> tuple[tuple[Event, ...], IncidentState]:
    return follow(state, (ev.STAGE_CHANGED, {"from": state.stage.value, "to": stage.value, "reason": "test"}), at=at)
