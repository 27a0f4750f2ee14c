"""Escalation and release messages in the channel's language: the built-in templates
say a step's moment, its repeats and what a holder held from the data the
notification carries, in zh and en (the en text is the plugin's own subject)."""

from __future__ import annotations

from datetime import timedelta

import qflow
from qflow_notify import RecordingBackend
from tests.conftest import BASE
from tests.escalation_helpers import T0

H = timedelta(hours=1)
M = timedelta(minutes=1)

RULES = BASE.replace("normal: {respond: 4h, resolve: 3d}", "normal: {name: 一般 Normal, respond: 4h, resolve: 3d}") + """\
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
        notify: [team.lead]
        repeat: {every: 1h, limit: 3}
      - id: last-day
        at: {clock: resolve, remaining: 1d2h30m}
        notify: [team.lead]
  suppress:
    - id: outage
      source: {category: power_outage}
      target: {category: equipment_fault}
      equal: [place]
notify:
  channels:
    chat: {backend: rec, lang: zh}
    mail: {backend: rec, lang: en}
"""


def _engine():
    rec = RecordingBackend("rec")
    pm = qflow.make_plugin_manager(autoload=False, plugins=[rec.plugin()])
    clock = qflow.FakeClock(T0)
    return qflow.Engine(qflow.load_ruleset_text(RULES, file="esc.yaml", plugins=pm), plugins=pm, clock=clock), clock, rec


def _subjects(eng, rec, incident_id, topics):
    eng.deliver()
    sent = [m for m in rec.sent if m.incident_id == incident_id and m.payload["topic"] in topics]
    for m in sent:
        if m.payload["lang"] == "en":  # word for word what the plugin wrote
            assert m.payload["subject"] == m.payload["context"]["subject"]
    return ([m.payload["subject"] for m in sent if m.payload["lang"] == "zh"],
            [m.payload["subject"] for m in sent if m.payload["lang"] == "en"])


def test_escalation_subjects_are_said_in_the_channels_language():
    eng, clock, rec = _engine()
    i = eng.report({"category": "complaint", "description": "等待超过30分钟"}).id
    for at in (2 * H, 4 * H, 5 * H, 6 * H, 11 * H, 45 * H + 30 * M):  # down from 16:00 to 21:00
        clock.set(T0 + at)
        eng.tick()
    zh, en = _subjects(eng, rec, i, ("escalation.warning", "escalation.breach"))
    assert zh == [f"【一般 Normal】{i} 响应时限已用 50%", f"【一般 Normal】{i} 响应已超时",
                  f"【一般 Normal】{i} 响应已超时 1小时", f"【一般 Normal】{i} 响应已超时 1小时（第1次重复提醒）",
                  f"【一般 Normal】{i} 响应已超时 1小时（第3次重复提醒；停机期间漏发1次）",
                  f"【一般 Normal】{i} 距解决期限还剩 1天2小时30分钟"]
    assert en == [f"[normal] {i} 50% of respond used", f"[normal] {i} respond breached",
                  f"[normal] {i} respond overdue by 1h", f"[normal] {i} respond overdue by 1h",
                  f"[normal] {i} respond overdue by 1h (repeat 3; 1 missed while down)",
                  f"[normal] {i} 1d2h30m left on resolve"]


def test_a_release_is_said_in_the_channels_language():
    eng, clock, rec = _engine()
    outage = eng.report({"category": "power_outage", "place": "A座"}).id
    fault = eng.report({"category": "equipment_fault", "place": "A座", "title": "空调不制冷"}).id
    clock.advance(2 * H + 5 * M)
    eng.tick()  # the fault's warning is held too
    eng.transition(outage, "rejected", reason="power is back")
    clock.advance(5 * M)
    eng.tick()
    zh, en = _subjects(eng, rec, fault, ("incident.released",))
    assert zh == [f"【一般 Normal】{fault} equipment_fault：仍未关闭；{outage} 未关闭期间暂缓了 2 条通知"
                  f"（事件报告、升级预警），{outage} 现已驳回"]
    assert en == [f"[normal] {fault} equipment_fault: still open; 2 notifications held while {outage} was open "
                  f"(incident.reported, escalation.warning), and {outage} is rejected"]


def test_the_duration_filter_says_a_duration_in_either_language():
    from qflow_notify._templates import duration

    assert [duration(s, "zh") for s in (0, 45, 5400, 93784)] == ["0秒", "45秒", "1小时30分钟", "1天2小时3分钟4秒"]
    assert [duration(s, "en") for s in (0, 5400, 93784)] == ["0s", "1h30m", "1d2h3m4s"]
    assert duration(None, "zh") == ""


def test_a_step_reached_by_a_jump_says_the_moment_that_reached_it():
    rules = RULES.replace("""      - id: warn
        at: {clock: respond, used: 50%}
        notify: [assignee]
""", """      - id: warn
        at: {clock: respond, used: 50%}
        notify: [assignee]
        jump: late
""")
    rec = RecordingBackend("rec")
    pm = qflow.make_plugin_manager(autoload=False, plugins=[rec.plugin()])
    clock = qflow.FakeClock(T0)
    eng = qflow.Engine(qflow.load_ruleset_text(rules, file="esc.yaml", plugins=pm), plugins=pm, clock=clock)
    i = eng.report({"category": "complaint", "description": "等待超过30分钟"}).id
    clock.set(T0 + 2 * H)
    eng.tick()
    zh, en = _subjects(eng, rec, i, ("escalation.warning", "escalation.breach"))
    # warn jumps to late, whose own moment (1h overdue) has not come: it says what reached it.
    assert zh == [f"【一般 Normal】{i} 响应时限已用 50%", f"【一般 Normal】{i} 响应时限已用 50%，跳级至 late"]
    assert en == [f"[normal] {i} 50% of respond used", f"[normal] {i} 50% of respond used; jumped to late"]
