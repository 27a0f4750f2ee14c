"""One incident through every stage of the improvement loop, on a virtual clock.

    python examples/improvement_loop.py                       # in memory
    python examples/improvement_loop.py sqlite:///loop.sqlite3  # in an SQLite store

Confirm → 5-Why cause → actions with reminders and a ledger → measured verification
that finds the anomaly came back (ineffective: back to analysing, with the figures)
→ a second cause and a preventive action → verified effective → closed → the root
cause archived as a known error. Prints the incident's timeline.
"""

from __future__ import annotations

import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import qflow
from qflow import Action, ActionKind, Attachment, Cause, Incident, WhyStep

RULESET = Path(__file__).resolve().parents[1] / "rulesets" / "hotel-front-desk.yaml"
TZ = ZoneInfo("Asia/Shanghai")


def main(store: str = "memory://") -> None:
    clock = qflow.FakeClock(datetime(2026, 11, 2, 9, 0, tzinfo=TZ))
    engine = qflow.Engine.from_path(RULESET, clock=clock, store=store, autoload=False)

    def dirty_room() -> str:
        return engine.report(Incident(channel="phone", category="room_not_clean", place="12F",
                                      description="客人入住时房间未打扫")).id

    dirty_room()  # the same anomaly a week before: part of the baseline
    clock.advance(timedelta(days=7))
    iid = dirty_room()
    hour = timedelta(hours=1)

    engine.confirm(iid, actor="值班经理", responsibility="process", note="现场确认: 房间未清洁")
    clock.advance(hour)
    engine.record_cause(iid, Cause(
        "C-1", "排班表漏排房间", method="five_why", code="rota-gap", confirmed=True,
        whys=[WhyStep("为什么房间没打扫?", "排班表上没有这间房"),
              WhyStep("为什么排班表上没有?", "排班表每天手工抄写", root=True)],
        evidence=[Attachment("photos/12F-1203.jpg", kind="photo"), Attachment("pms/rota-11-09.log", kind="system_log")]),
        actor="质检")
    engine.transition(iid, "acting", actor="客房经理")
    engine.plan_action(iid, Action("A-1", "排班表改由系统生成", "李娜", clock.now() + timedelta(days=2),
                                   kind=ActionKind.CORRECTIVE, target="30天内零漏排", feasibility="PMS已有此功能",
                                   expected_effect="不再漏排"), actor="客房经理")
    clock.advance(timedelta(days=1, hours=1))
    engine.tick()  # the reminder a day before the due date
    engine.log_action(iid, "A-1", "progress", "8-12层已切换", actor="李娜", percent=60)
    clock.advance(timedelta(hours=20))
    engine.update_action(iid, "A-1", "done", actor="李娜")

    for _ in range(3):  # it comes back during the observation window
        clock.advance(timedelta(days=3))
        dirty_room()
    clock.advance(timedelta(days=5, minutes=1))
    engine.tick()  # measured: ineffective → back to analysing with the figures

    engine.record_cause(iid, Cause("C-2", "交接班不核对房态", method="fishbone", branch="method", code="handover"),
                        actor="质检")
    engine.confirm_cause(iid, "C-2", actor="质检")
    engine.transition(iid, "acting", actor="客房经理")
    engine.plan_action(iid, Action("A-2", "交接班房态核对清单", "李娜", clock.now() + timedelta(days=1),
                                   kind=ActionKind.PREVENTIVE, target="每班签字"), actor="客房经理")
    clock.advance(timedelta(hours=6))
    engine.update_action(iid, "A-2", "done", actor="李娜")
    clock.advance(timedelta(days=14, minutes=1))
    engine.tick()  # measured again: effective
    engine.close(iid, actor="质检", reason="verified effective")
    known = engine.archive_known_error(iid, workaround="按系统房态表逐间核对", keywords=["未打扫"])

    print(f"{iid} — {engine.get(iid).stage.value}; known error {known.id}: {known.summary}\n")
    for e in engine.events(iid):
        print(f"{e.seq:>3}  {e.at.astimezone(TZ):%m-%d %H:%M}  {e.type:<22} {e.actor or e.source or '':<10} {_what(e)}")


def _what(e: qflow.Event) -> str:
    d = e.data
    if e.type == "StageChanged":
        return f"{d['from']} → {d['to']}" + (f" ({d['reason']})" if d.get("reason") else "")
    if e.type == "CauseRecorded":
        return f"{d['id']} {d['method']}: {d['summary']}"
    if e.type in ("ActionPlanned",):
        return f"{d['id']} {d['kind']}: {d['description']}, owner {d['owner']}"
    if e.type == "ActionReminded":
        return f"{d['id']} reminder {d['step']}"
    if e.type == "ActionLogged":
        return f"{d['id']} {d['entry']['kind']}: {d['entry']['note']}"
    if e.type == "ActionUpdated":
        return f"{d['id']} {d['status']}"
    if e.type == "VerificationRecorded":
        figures = ", ".join(f"{f['metric']} {f['baseline']:g} → {f['after']:g}" for f in d["figures"]
                            if f["after"] is not None)
        return f"{d['result']} ({d['method']}{': ' + figures if figures else ''})"
    if e.type == "CauseConfirmed":
        return f"{d['id']} is the root cause"
    if e.type == "ResponsibilityConfirmed":
        return f"responsibility {d['responsibility']}"
    return ""


if __name__ == "__main__":
    main(*sys.argv[1:2])
