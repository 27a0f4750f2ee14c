"""Shared pieces of the escalation, tick and grouping tests."""

from __future__ import annotations

import textwrap
from datetime import datetime, timedelta, timezone

import qflow
from tests.conftest import BASE

CST = timezone(timedelta(hours=8))
#: A Friday morning in Shanghai.
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=CST)

LADDER = """\
escalation:
  ladders:
    default:
      - id: warn
        at: {clock: respond, used: 50%}
        notify: [assignee]
      - id: breach
        at: {clock: respond, used: 100%}
        notify: [team.lead]
      - id: late
        at: {clock: respond, overdue: 1h}
        notify: ["role:quality-manager"]
        repeat: {every: 1h, limit: 3}
"""


class Recorder:
    """Records every notification the engine plans to deliver (in the write's transaction)."""

    def __init__(self) -> None:
        self.notes: list[qflow.Notification] = []

    @qflow.hookimpl
    def qflow_plan_delivery(self, notification: qflow.Notification) -> list[qflow.OutboxMessage]:
        self.notes.append(notification)
        return []

    def topics(self) -> list[tuple[str, str, tuple[str, ...]]]:
        return [(n.incident_id, n.topic, n.recipients) for n in self.notes]


def ruleset(extra: str, *plugins: object, base: str = BASE) -> tuple[qflow.Ruleset, object]:
    pm = qflow.make_plugin_manager(autoload=False, plugins=plugins)
    return qflow.load_ruleset_text(base + textwrap.dedent(extra), file="esc.yaml", plugins=pm), pm


def engine(extra: str = LADDER, *plugins: object, start: datetime = T0, store: object = None,
           base: str = BASE) -> tuple[qflow.Engine, qflow.FakeClock, Recorder]:
    rec = Recorder()
    rs, pm = ruleset(extra, rec, *plugins, base=base)
    clock = qflow.FakeClock(start)
    return qflow.Engine(rs, plugins=pm, clock=clock, store=store), clock, rec


def fired(eng: qflow.Engine, incident_id: str) -> list[tuple[str, ...]]:
    """The escalation events of an incident, as (type, step or clock, detail)."""
    out = []
    for e in eng.events(incident_id):
        d = e.data
        if e.type == "EscalationStepFired":
            out.append((e.type, d["step"], f"occurrence {d['occurrence']}, skipped {d['skipped']}", d["via"] or ""))
        elif e.type == "EscalationStepSkipped":
            out.append((e.type, d["step"], d["reason"]))
        elif e.type == "DeadlineBreached":
            out.append((e.type, d["clock"], d["breached_at"]))
        elif e.type in ("SeverityChanged", "Reassigned", "NotificationSuppressed"):
            out.append((e.type, *(str(v) for v in d.values())))
    return out


def one_step_desk(name: str) -> str:
    """A front desk whose normal incidents have one escalation step (the team lead
    hears at half the respond time), for tests that add their own sections after it."""
    return f"""\
qflow: 1
name: {name}
timezone: Asia/Shanghai
teams:
  front-office: {{name: 前厅部 Front office, lead: 王芳}}
severities:
  normal: {{respond: 4h, resolve: 3d}}
classify:
  - id: default
    set: {{severity: normal}}
route:
  - id: default
    assign: {{team: front-office}}
escalation:
  ladders:
    standard:
      - id: warn
        at: {{clock: respond, used: 50%}}
        notify: [team.lead]
  severities: {{normal: standard}}
"""
