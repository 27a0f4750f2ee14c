"""Escalation ladders: warning, breach, overdue repeats, raise, reassign, jump, skip,
calendars and counts, on a virtual clock."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from qflow_sla.clocks import clock_states
from tests.escalation_helpers import T0, engine, fired, ruleset

H = timedelta(hours=1)
M = timedelta(minutes=1)


def report(eng: qflow.Engine, **fields: object) -> str:
    return eng.report({"category": "complaint", "description": "等了很久", **fields}).id


def test_warning_then_breach_then_escalation_each_notified_once():
    eng, clock, rec = engine()
    iid = report(eng)  # normal: respond 4h
    assert [t.key for t in eng.store.timers(iid)] == [
        "esc:respond:default/warn", "esc:respond:breach", "esc:respond:default/breach",
        "esc:respond:default/late", "esc:resolve:breach"]
    clock.advance(H)
    assert eng.tick().effects == 0
    clock.advance(H)  # 2h: 50% used
    assert eng.tick() == qflow.TickReport(timers=1, incidents=1, effects=1, notifications=1)
    clock.advance(2 * H)  # 4h: breach
    eng.tick()
    clock.advance(H)  # 5h: overdue by 1h
    eng.tick()
    eng.tick()  # nothing left at the same moment
    assert fired(eng, iid) == [
        ("EscalationStepFired", "warn", "occurrence 0, skipped 0", ""),
        ("DeadlineBreached", "respond", "2026-11-20T14:00:00+08:00"),
        ("EscalationStepFired", "breach", "occurrence 0, skipped 0", ""),
        ("EscalationStepFired", "late", "occurrence 0, skipped 0", ""),
    ]
    assert rec.topics() == [
        (iid, "incident.reported", ("front-office",)),
        (iid, "escalation.warning", ("assignee",)),
        (iid, "escalation.breach", ("team.lead",)),
        (iid, "escalation.breach", ("role:quality-manager",)),
    ]
    assert rec.notes[2].subject == f"[normal] {iid} respond breached"
    assert rec.notes[3].data["due"] == "2026-11-20T14:00:00+08:00"
    event = [e for e in eng.events(iid) if e.type == "EscalationStepFired"][0]
    assert (event.source, event.data["ladder"], event.data["level"]) == ("escalation:default/warn", "default", 1)


def test_repeats_every_hour_up_to_the_limit():
    eng, clock, rec = engine()
    iid = report(eng)
    for _ in range(12):
        clock.advance(H)
        eng.tick()
    late = [f for f in fired(eng, iid) if f[1] == "late"]
    assert late == [("EscalationStepFired", "late", f"occurrence {k}, skipped 0", "") for k in range(4)]
    assert [t.key for t in eng.store.timers(iid)] == ["esc:resolve:breach"]


def test_after_downtime_a_repeating_step_fires_once_with_the_missed_count():
    eng, clock, rec = engine()
    iid = report(eng)
    clock.advance(6 * H + 30 * M)  # down the whole time: warn, breach, late x3 due
    report_ = eng.tick()
    assert report_.incidents == 1
    assert fired(eng, iid) == [
        ("DeadlineBreached", "respond", "2026-11-20T14:00:00+08:00"),
        ("EscalationStepFired", "warn", "occurrence 0, skipped 0", ""),
        ("EscalationStepFired", "breach", "occurrence 0, skipped 0", ""),
        ("EscalationStepFired", "late", "occurrence 1, skipped 1", ""),
    ]
    assert rec.notes[-1].subject == f"[normal] {iid} respond overdue by 1h (repeat 1; 1 missed while down)"
    assert [n.topic for n in rec.notes] == ["incident.reported", "escalation.warning", "escalation.breach",
                                            "escalation.breach"]
    clock.advance(M)
    eng.tick()
    assert len(fired(eng, iid)) == 4


RAISE = """\
escalation:
  ladders:
    default:
      - id: late
        at: {clock: respond, overdue: 1h}
        notify: ["role:quality-manager"]
        raise_severity: 1
"""


def test_raise_severity_keeps_the_clock_start_and_the_new_target_counts_from_it():
    eng, clock, _ = engine(RAISE)
    iid = report(eng)
    clock.advance(5 * H)
    eng.tick()
    state = eng.get(iid)
    assert state.decision.severity == "high"
    clocks = clock_states(state, eng.events(iid), eng.ruleset, clock.now())
    assert clocks["resolve"].started_at == T0
    assert clocks["resolve"].target == timedelta(days=1)  # high's resolve, from the report
    assert [t for t in eng.store.timers(iid) if t.key == "esc:resolve:breach"][0].at == T0 + timedelta(days=1)


def test_raise_stops_at_the_most_urgent_severity():
    eng, clock, _ = engine(RAISE)
    iid = report(eng, category="safety")  # critical: respond 15m
    clock.advance(2 * H)
    eng.tick()
    assert eng.get(iid).decision.severity == "critical"
    assert not [f for f in fired(eng, iid) if f[0] == "SeverityChanged"]


REASSIGN_JUMP = """\
escalation:
  ladders:
    standard:
      - id: warn
        at: {clock: respond, used: 50%}
        notify: [assignee]
        jump: manager
      - id: lead
        at: {clock: respond, used: 75%}
        notify: [team.lead]
      - id: manager
        at: {clock: respond, used: 100%}
        notify: ["role:duty-manager"]
        reassign: {team: engineering, owner: 赵工}
  severities:
    normal: standard
"""


def test_jump_goes_past_the_levels_between_and_reassign_moves_the_incident():
    eng, clock, rec = engine(REASSIGN_JUMP)
    iid = report(eng)
    clock.advance(2 * H)
    eng.tick()
    assert fired(eng, iid) == [
        ("EscalationStepFired", "warn", "occurrence 0, skipped 0", ""),
        ("EscalationStepFired", "manager", "occurrence 0, skipped 0", "jump from warn"),
        ("Reassigned", "engineering", "赵工", "escalation standard/manager"),
        ("EscalationStepSkipped", "lead", "jumped over"),
    ]
    d = eng.get(iid).decision
    assert (d.team, d.owner) == ("engineering", "赵工")
    clock.advance(3 * H)
    eng.tick()  # lead and manager never come back; only the breach is recorded
    assert fired(eng, iid)[4:] == [("DeadlineBreached", "respond", "2026-11-20T14:00:00+08:00")]
    assert [n.topic for n in rec.notes] == ["incident.reported", "escalation.warning", "escalation.breach"]


def test_a_step_reached_by_a_jump_says_so_not_its_own_trigger():
    # manager falls due at 100% used; reached from warn at 50%, its message must not
    # claim the breach.
    eng, clock, rec = engine(REASSIGN_JUMP)
    iid = report(eng)
    clock.advance(2 * H)
    eng.tick()
    assert [n.subject for n in rec.notes[1:]] == [
        f"[normal] {iid} 50% of respond used", f"[normal] {iid} 50% of respond used; jumped to manager"]
    assert [e.data["when"] for e in eng.events(iid) if e.type == "EscalationStepFired"] == [
        "50% of respond used", "50% of respond used; jumped to manager"]


class OffDuty:
    def __init__(self, *away: str) -> None:
        self.away = away

    @qflow.hookimpl
    def qflow_available(self, recipient, state, now):
        return False if recipient in self.away else None


SKIP = """\
escalation:
  ladders:
    default:
      - id: lead
        at: {clock: respond, used: 50%}
        notify: [team.lead, assignee]
      - id: manager
        at: {clock: respond, used: 90%}
        notify: ["role:duty-manager"]
"""


def test_an_unavailable_recipient_is_skipped():
    eng, clock, rec = engine(SKIP, OffDuty("team.lead"))
    iid = report(eng)
    clock.advance(2 * H)
    eng.tick()
    event = [e for e in eng.events(iid) if e.type == "EscalationStepFired"][0]
    assert (event.data["recipients"], event.data["unavailable"]) == (("assignee",), ("team.lead",))
    assert rec.notes[-1].recipients == ("assignee",)


def test_when_nobody_of_a_step_is_available_the_next_level_fires_at_once():
    eng, clock, rec = engine(SKIP, OffDuty("team.lead", "assignee"))
    iid = report(eng)
    clock.advance(2 * H)
    eng.tick()
    assert fired(eng, iid) == [
        ("EscalationStepFired", "lead", "occurrence 0, skipped 0", ""),
        ("EscalationStepFired", "manager", "occurrence 0, skipped 0", "nobody available at lead"),
    ]
    assert rec.topics()[1:] == [(iid, "escalation.warning", ("role:duty-manager",))]
    assert rec.notes[-1].subject == (f"[normal] {iid} 50% of respond used; nobody available at lead, "
                                     "passed to manager")


OFFICE = """\
calendars:
  office:
    hours: {mon-fri: ["09:00-18:00"]}
escalation:
  ladders:
    default:
      - id: call-manager
        at: {clock: respond, used: 100%}
        notify: ["role:duty-manager"]
        only_in: office
"""


def test_a_step_only_in_working_hours_waits_for_the_next_opening():
    eng, clock, rec = engine(OFFICE, start=T0.replace(hour=16))  # Friday 16:00, breach at 20:00
    iid = report(eng)
    monday = T0.replace(day=23, hour=9)
    assert [t.at for t in eng.store.timers(iid) if t.key.endswith("call-manager")] == [monday]
    clock.advance(4 * H)
    eng.tick()
    assert fired(eng, iid) == [("DeadlineBreached", "respond", "2026-11-20T20:00:00+08:00")]
    clock.set(monday - M)
    eng.tick()
    assert len(fired(eng, iid)) == 1
    clock.set(monday)
    eng.tick()
    assert fired(eng, iid)[1] == ("EscalationStepFired", "call-manager", "occurrence 0, skipped 0", "")


COUNT = """\
escalation:
  ladders:
    default:
      - id: wave
        at: {clock: respond, used: 50%}
        notify: ["role:quality-manager"]
        count: {more_than: 2, within: 30m, same: [category, place]}
"""


def test_a_count_step_fires_only_when_enough_such_incidents_came_in():
    eng, clock, rec = engine(COUNT)
    wave = [report(eng, place="lobby")]
    for _ in range(2):
        clock.advance(10 * M)
        wave.append(report(eng, place="lobby"))
    spa = report(eng, place="spa")
    clock.advance(3 * H)
    alone = report(eng, place="lobby")  # 2h40m after the wave: not part of it
    clock.advance(2 * H)
    eng.tick()
    for iid in wave:
        assert fired(eng, iid)[-1:] == [("EscalationStepFired", "wave", "occurrence 0, skipped 0", "")]
    assert fired(eng, spa)[-1:] == [("EscalationStepSkipped", "wave", "1 such incident(s) within 30m, not more than 2")]
    assert fired(eng, alone) == [("EscalationStepSkipped", "wave", "1 such incident(s) within 30m, not more than 2")]
    assert [n.incident_id for n in rec.notes if n.topic == "escalation.warning"] == wave


def test_a_stopped_clock_escalates_no_further():
    eng, clock, rec = engine()
    iid = report(eng)
    clock.advance(3 * H)
    eng.tick()
    eng.respond(iid, "we are on it", actor="王芳")
    clock.advance(5 * H)
    eng.tick()
    assert [f[1] for f in fired(eng, iid)] == ["warn"]
    assert [t.key for t in eng.store.timers(iid)] == ["esc:resolve:breach"]


def test_closed_incidents_have_no_escalation_timers():
    eng, clock, rec = engine()
    iid = report(eng)
    eng.transition(iid, "rejected", reason="not an anomaly")
    assert eng.store.timers(iid) == []


def test_a_rejection_undone_by_a_reopening_escalates_from_the_report():
    # Rejected by mistake at 10:10, reopened at 11:00: the guest has waited since 10:00
    # for an answer (normal: respond 4h), so the ladder goes on as if never rejected.
    eng, clock, rec = engine()
    iid = report(eng)
    deadlines = eng.get(iid).decision.deadlines
    clock.advance(10 * M)
    eng.reject(iid, "not ours", actor="王芳")
    assert eng.store.timers(iid) == []
    clock.advance(50 * M)
    eng.reopen(iid, "ours after all", actor="王芳")
    assert [(t.key, t.at) for t in eng.store.timers(iid)] == [
        ("esc:respond:default/warn", T0 + 2 * H), ("esc:respond:breach", T0 + 4 * H),
        ("esc:respond:default/breach", T0 + 4 * H), ("esc:respond:default/late", T0 + 5 * H),
        ("esc:resolve:breach", T0 + timedelta(days=3))]
    clock.advance(H)  # 12:00: half the respond time since the report
    eng.tick()
    clock.advance(2 * H + M)  # 14:01: past the respond target
    eng.tick()
    eng.tick()  # nothing left at the same moment
    assert fired(eng, iid) == [
        ("EscalationStepFired", "warn", "occurrence 0, skipped 0", ""),
        ("DeadlineBreached", "respond", "2026-11-20T14:00:00+08:00"),
        ("EscalationStepFired", "breach", "occurrence 0, skipped 0", ""),
    ]
    assert rec.topics() == [
        (iid, "incident.reported", ("front-office",)),
        (iid, "escalation.warning", ("assignee",)),
        (iid, "escalation.breach", ("team.lead",)),
    ]
    # What show and get say agrees: the report's deadlines, one run of each clock from the report.
    state = eng.get(iid)
    assert state.decision.deadlines == deadlines
    clocks = clock_states(state, eng.events(iid), eng.ruleset, clock.now())
    assert {name: (c.started_at, c.due, c.run) for name, c in clocks.items()} == {
        "respond": (T0, T0 + 4 * H, 1), "resolve": (T0, T0 + timedelta(days=3), 1)}
    assert [(d.clock, d.start, d.due) for d in deadlines] == [
        ("respond", T0, T0 + 4 * H), ("resolve", T0, T0 + timedelta(days=3))]
    # ls --overdue and Engine.due list it too, from the same deadline.
    assert [(d.incident_id, d.clock, d.at) for d in eng.due(clock.now())] == [(iid, "respond", T0 + 4 * H)]
    assert [s.id for s in eng.query(overdue_at=clock.now())] == [iid]


def test_a_breach_while_wrongly_rejected_is_a_breach_once_reopened():
    # Rejected at 10:10, reopened only at 15:00: respond ran out at 14:00, while it stood rejected.
    eng, clock, rec = engine()
    iid = report(eng)
    clock.advance(10 * M)
    eng.reject(iid, "not ours", actor="王芳")
    clock.advance(4 * H + 50 * M)
    assert eng.tick().effects == 0  # a rejection that stands escalates nothing
    eng.reopen(iid, "ours after all", actor="王芳")
    assert [(t.key, t.at) for t in eng.store.timers(iid)] == [
        ("esc:respond:breach", T0 + 5 * H), ("esc:respond:default/breach", T0 + 5 * H),
        ("esc:respond:default/late", T0 + 5 * H), ("esc:respond:default/warn", T0 + 5 * H),
        ("esc:resolve:breach", T0 + timedelta(days=3))]
    eng.tick()
    eng.tick()
    assert fired(eng, iid) == [
        ("DeadlineBreached", "respond", "2026-11-20T14:00:00+08:00"),
        ("EscalationStepFired", "warn", "occurrence 0, skipped 0", ""),
        ("EscalationStepFired", "breach", "occurrence 0, skipped 0", ""),
        ("EscalationStepFired", "late", "occurrence 0, skipped 0", ""),
    ]
    assert [n.topic for n in rec.notes] == ["incident.reported", "escalation.warning", "escalation.breach",
                                            "escalation.breach"]


def test_without_an_escalation_section_nothing_is_scheduled():
    eng, clock, rec = engine("")
    iid = report(eng)
    assert eng.store.timers(iid) == []
    clock.advance(10 * H)
    assert eng.tick() == qflow.TickReport()


# -- located ruleset errors ---------------------------------------------------------

def errors(extra: str, base: str | None = None) -> list[str]:
    with pytest.raises(qflow.RulesetError) as info:
        engine(extra) if base is None else engine(extra, base=base)
    return [str(d) for d in info.value.diagnostics]


def test_every_ladder_mistake_is_located():
    assert errors("""\
escalation:
  ladders:
    default:
      - id: a
        at: {clock: respnd, used: 50%}
        notify: [assignee]
      - id: b
        at: {clock: respond, used: 150%}
        notify: [assignee]
      - id: c
        at: {clock: respond, used: half}
        notify: [assignee]
      - id: d
        at: {clock: respond, used: 50%, remaining: 10m}
        notify: [assignee]
      - id: e
        at: {clock: resolve, remaining: 3d}
        notify: [assignee]
      - id: f
        at: {clock: respond, overdue: 1h}
      - id: g
        at: {clock: respond, overdue: 2h}
        notify: ["role:"]
        jump: a
        repeat: {every: 1h, limit: 0}
        raise_severity: 0
        only_in: offce
        count: {more_than: -1, within: 30m, same: [room]}
    critcal:
      - at: {clock: respond, used: 0%}
        notify: [assignee]
  severities:
    high: standard
""") == [
        "esc.yaml:37:21: QF740 unknown clock 'respnd' (did you mean 'respond'?) @ $.escalation.ladders.default[0].at.clock (rule 'a')",
        "esc.yaml:40:36: QF743 used 150% can never be reached: a clock's use stops at 100% when it breaches (for a step after the breach write overdue: with a duration, e.g. overdue: 2h) @ $.escalation.ladders.default[1].at.used (rule 'b')",
        "esc.yaml:43:36: QF742 'half' is not a percentage (write it like 50%) @ $.escalation.ladders.default[2].at.used (rule 'c')",
        "esc.yaml:46:13: QF741 a step needs exactly one of used, remaining or overdue, not used and remaining (e.g. used: 50%, remaining: 30m or overdue: 2h) @ $.escalation.ladders.default[3].at (rule 'd')",
        "esc.yaml:49:41: QF744 remaining 3d is not shorter than any resolve target it runs against (the longest: 3d, severity normal), so this step can never fire (shorten remaining, or use used: with a percentage) @ $.escalation.ladders.default[4].at.remaining (rule 'e')",
        "esc.yaml:51:9: QF753 the step does nothing (give notify, raise_severity, reassign or jump) @ $.escalation.ladders.default[5] (rule 'f')",
        "esc.yaml:55:18: QF752 recipient 'role:' names nobody (use assignee, team.lead, role:<name>, team:<name> or an address) @ $.escalation.ladders.default[6].notify[0] (rule 'g')",
        "esc.yaml:56:15: QF747 jump to 'a' goes back to level 1 (a jump goes to a later level of the ladder) @ $.escalation.ladders.default[6].jump (rule 'g')",
        "esc.yaml:57:36: QF749 repeat limit 0 repeats nothing (give 1 or more, or leave repeat out) @ $.escalation.ladders.default[6].repeat.limit (rule 'g')",
        "esc.yaml:58:25: QF750 raise_severity 0 raises nothing (give the number of levels to raise, 1 or more) @ $.escalation.ladders.default[6].raise_severity (rule 'g')",
        "esc.yaml:59:18: QF201 unknown calendar 'offce' (define it or use one of: 24x7) @ $.escalation.ladders.default[6].only_in (rule 'g')",
        "esc.yaml:60:28: QF754 more_than -1 is always true (give 0 or more) @ $.escalation.ladders.default[6].count.more_than (rule 'g')",
        "esc.yaml:60:52: QF751 incidents cannot be grouped, counted or compared by 'room' (use category, place, team, severity, owner) @ $.escalation.ladders.default[6].count.same[0] (rule 'g')",
        "esc.yaml:61:5: QF756 ladder 'critcal' is used by no severity (did you mean 'critical'?) @ $.escalation.ladders.critcal",
        "esc.yaml:62:36: QF742 used 0% falls due when the clock starts (use a percentage above 0%, e.g. 50%) @ $.escalation.ladders.critcal[0].at.used (rule 'level-1')",
        "esc.yaml:65:11: QF745 unknown ladder 'standard' (the ladders are: default, critcal) @ $.escalation.severities.high",
    ]


def test_grouping_and_suppression_mistakes_are_located():
    assert errors("""\
escalation:
  ladders:
    empty: []
  severities:
    normal: empty
    urgent: empty
  group: {by: [categry], window: 30m}
  suppress:
    - id: outage
      source: {category: power_outage}
      equal: [building]
""") == [
        "esc.yaml:35:12: QF755 ladder 'empty' has no steps (give at least one step, or remove it) @ $.escalation.ladders.empty",
        "esc.yaml:38:13: QF201 unknown severity 'urgent' (define it or use one of: critical, high, normal) @ $.escalation.severities.urgent",
        "esc.yaml:39:16: QF751 incidents cannot be grouped, counted or compared by 'categry' (did you mean 'category'?) @ $.escalation.group.by[0]",
        "esc.yaml:41:7: QF758 a suppress rule needs a target condition (e.g. source: {category: power_outage}, target: {category: equipment_fault}) @ $.escalation.suppress[0] (rule 'outage')",
        "esc.yaml:43:15: QF751 incidents cannot be grouped, counted or compared by 'building' (use category, place, team, severity, owner) @ $.escalation.suppress[0].equal[0] (rule 'outage')",
    ]


def test_a_bare_number_is_told_how_to_write_a_percentage():
    assert errors("""\
escalation:
  ladders:
    default:
      - {id: a, at: {clock: respond, used: 50}, notify: [assignee]}
      - {id: b, at: {clock: respond, used: 0.8}, notify: [assignee]}
      - {id: c, at: {clock: respond, used: [50%]}, notify: [assignee]}
""") == [
        "esc.yaml:36:44: QF103 expected a percentage, got the number 50 (write 50%) @ $.escalation.ladders.default[0].at.used (rule 'a')",
        "esc.yaml:37:44: QF103 expected a percentage, got the number 0.8 (write 80% for 0.8 of the target) @ $.escalation.ladders.default[1].at.used (rule 'b')",
        "esc.yaml:38:44: QF103 expected a percentage, got a list (write it like 50%) @ $.escalation.ladders.default[2].at.used (rule 'c')",
    ]


def test_a_bare_number_is_told_how_to_write_a_duration():
    assert errors("""\
escalation:
  ladders:
    default:
      - {id: a, at: {clock: respond, remaining: 30}, notify: [assignee]}
      - {id: b, at: {clock: respond, overdue: 2}, notify: [assignee], repeat: {every: 1.5, limit: 2}}
""") == [
        "esc.yaml:36:49: QF105 the number 30 is not a duration (a duration needs its unit: write e.g. 30m or 30h) @ $.escalation.ladders.default[0].at.remaining",
        "esc.yaml:37:47: QF105 the number 2 is not a duration (a duration needs its unit: write e.g. 2m or 2h) @ $.escalation.ladders.default[1].at.overdue",
        "esc.yaml:37:87: QF105 the number 1.5 is not a duration (a duration needs its unit: write e.g. 1.5m or 1.5h) @ $.escalation.ladders.default[1].repeat.every",
    ]


PRIORITISED = """\
qflow: 1
name: prio
timezone: Asia/Shanghai
teams:
  support: {name: Support, lead: 王芳}
severities:
  high: {acknowledge: 10m, respond: 1h, resolve: 8h}
  low: {respond: 4h, resolve: 3d}
priority: {matrix: {2: [P2, P1], 1: [P2, P2]}}
priorities:
  P1: {respond: 30m, confirm: 2h, verify: 1h}
classify:
  - id: default
    set: {severity: low}
route:
  - id: default
    assign: {team: support}
"""


def test_a_step_on_a_clock_its_ladder_never_has_a_target_for_is_an_error():
    # A priority's target counts whatever the severity; a severity's only for its ladder.
    assert errors("""\
escalation:
  severities: {low: slow}
  ladders:
    default:
      - {id: ack, at: {clock: acknowledge, used: 50%}, notify: [assignee]}
    slow:
      - {id: ack, at: {clock: acknowledge, used: 50%}, notify: [assignee]}
      - {id: ver, at: {clock: verify, used: 50%}, notify: [assignee]}
      - {id: rsp, at: {clock: respond, overdue: 1h}, notify: [assignee]}
""", base=PRIORITISED) == [
        "esc.yaml:24:31: QF740 no severity using ladder 'slow' (low) and no priority sets a target for acknowledge, "
        "so this step can never fire (add acknowledge: to severity low, or use a clock it has: respond, resolve) "
        "@ $.escalation.ladders.slow[0].at.clock (rule 'ack')",
    ]


def test_remaining_is_an_error_only_when_not_shorter_than_every_target_it_runs_against():
    assert errors("""\
escalation:
  ladders:
    default:
      - {id: ver, at: {clock: verify, remaining: 2h}, notify: [assignee]}
      - {id: ver-ok, at: {clock: verify, remaining: 30m}, notify: [assignee]}
      - {id: rsp-ok, at: {clock: respond, remaining: 2h}, notify: [assignee]}
      - {id: rsp, at: {clock: respond, remaining: 4h}, notify: [assignee]}
""", base=PRIORITISED) == [
        "esc.yaml:21:50: QF744 remaining 2h is not shorter than the verify target of priority P1 (1h), so this step "
        "can never fire (shorten remaining, or use used: with a percentage) "
        "@ $.escalation.ladders.default[0].at.remaining (rule 'ver')",
        "esc.yaml:24:51: QF744 remaining 4h is not shorter than any respond target it runs against (the longest: 4h, "
        "severity low), so this step can never fire (shorten remaining, or use used: with a percentage) "
        "@ $.escalation.ladders.default[3].at.remaining (rule 'rsp')",
    ]


def test_a_step_on_a_clock_only_a_priority_sets_fires_for_that_priority():
    eng, clock, rec = engine("""\
escalation:
  severities: {low: slow}
  ladders:
    slow:
      - {id: confirm, at: {clock: confirm, used: 50%}, notify: [assignee]}
""", base=PRIORITISED)
    p1 = eng.report({"description": "x", "impact": 2, "urgency": 2}).id
    p2 = eng.report({"description": "y", "impact": 1, "urgency": 1}).id
    assert [t.key for t in eng.store.timers(p1) if t.key.startswith("esc:confirm:slow")] == ["esc:confirm:slow/confirm"]
    assert [t.key for t in eng.store.timers(p2) if t.key.startswith("esc:confirm:slow")] == []
    clock.advance(H)
    eng.tick()
    assert ("EscalationStepFired", "confirm", "occurrence 0, skipped 0", "") in fired(eng, p1)


RECIPIENTS = """\
notify:
  channels:
    duty-log: {backend: log}
  recipients:
    duty-manager: [王芳]
escalation:
  ladders:
    default:
      - id: a
        at: {clock: respond, used: 50%}
        notify: ["role:duty-manager", "role: duty-manager", "team:housekeeping", duty-manager, 王芳]
      - id: b
        at: {clock: respond, used: 100%}
        notify: ["role:duty-manger", "role:nobody", "team:front-offce", "team:nosuch"]
"""


def test_unknown_recipient_roles_and_teams_are_located_at_load():
    assert errors(RECIPIENTS) == [
        "esc.yaml:46:18: QF752 recipient 'role:duty-manger' names a role that notify.recipients does not define "
        "(did you mean 'duty-manager'?) @ $.escalation.ladders.default[1].notify[0] (rule 'b')",
        "esc.yaml:46:38: QF752 recipient 'role:nobody' names a role that notify.recipients does not define "
        "(define it under notify.recipients, or use one of: duty-manager) @ $.escalation.ladders.default[1].notify[1] "
        "(rule 'b')",
        "esc.yaml:46:53: QF201 unknown team 'front-offce' (did you mean 'front-office'?) "
        "@ $.escalation.ladders.default[1].notify[2] (rule 'b')",
        "esc.yaml:46:73: QF201 unknown team 'nosuch' (define it or use one of: front-office, housekeeping, engineering) "
        "@ $.escalation.ladders.default[1].notify[3] (rule 'b')",
    ]


def test_a_channel_named_as_a_recipient_is_an_error():
    assert errors(RECIPIENTS.replace('"team:nosuch"', '"channel:duty-log"'))[-1] == (
        "esc.yaml:46:73: QF752 recipient 'channel:duty-log' is a channel, not a recipient (name who to tell here; "
        "which channels carry the step's topic is set under notify.routes) @ $.escalation.ladders.default[1].notify[3] "
        "(rule 'b')")


def test_an_unknown_role_is_only_a_warning_when_a_plugin_resolves_recipients():
    class Directory:
        @qflow.hookimpl
        def qflow_recipients(self, name):
            return ["oncall@hotel.example"] if name == "role:nobody" else None

    rs, _ = ruleset(RECIPIENTS.replace(', "team:front-offce", "team:nosuch"', ""), Directory())
    assert [str(w) for w in rs.warnings] == [
        "esc.yaml:46:18: QF752 recipient 'role:duty-manger' names a role that notify.recipients does not define "
        "(fine if your qflow_recipients plugin resolves it; otherwise define it under notify.recipients, or did you "
        "mean 'duty-manager'?) @ $.escalation.ladders.default[1].notify[0] (rule 'b')",
        "esc.yaml:46:38: QF752 recipient 'role:nobody' names a role that notify.recipients does not define "
        "(fine if your qflow_recipients plugin resolves it; otherwise define it under notify.recipients) "
        "@ $.escalation.ladders.default[1].notify[1] (rule 'b')",
    ]
    # A team is the ruleset's own vocabulary: no directory makes an unknown one right.
    with pytest.raises(qflow.RulesetError) as info:
        ruleset(RECIPIENTS.replace('"team:front-offce", ', ""), Directory())
    assert [str(d) for d in info.value.diagnostics if d.severity == "error"] == [
        "esc.yaml:46:53: QF201 unknown team 'nosuch' (define it or use one of: front-office, housekeeping, engineering) "
        "@ $.escalation.ladders.default[1].notify[2] (rule 'b')",
    ]


# -- the worked example of docs/escalation.md and the README, as printed there --------

def _doc_block(text: str, after: str, fence: str) -> str:
    start = text.index("\n", text.index(fence, text.index(after))) + 1
    return text[start:text.index("```", start)]


def test_the_worked_example_of_the_docs_reproduces_line_for_line():
    from pathlib import Path

    from tests.conftest import BASE

    root = Path(__file__).resolve().parent.parent
    doc = (root / "docs" / "escalation.md").read_text(encoding="utf-8")
    readme = (root / "README.md").read_text(encoding="utf-8")
    section = _doc_block(doc, "## A worked example", "```yaml")
    office = """\
calendars:
  office:
    timezone: Asia/Shanghai
    hours: {mon-fri: ["09:00-12:00", "13:30-18:00"], sat: ["09:00-12:00"]}
    holidays: CN
notify:
  channels:
    duty-log: {backend: log}
  recipients:
    quality-manager: [林晓燕]
"""
    eng, clock, _ = engine(section, base=BASE + office)
    iid = report(eng, channel="email")
    lines = [f"timer {t.key:<32} {t.at:%a %H:%M}" for t in eng.store.timers(iid)]
    for hour in (12, 14, 15, 21):
        clock.set(T0.replace(hour=hour))
        lines.append(f"{clock.now():%a %H:%M} {eng.tick()!r}")
    for e in eng.events(iid)[2:]:
        d = e.data
        detail = {
            "EscalationStepFired": lambda d: (f"{d['ladder']}/{d['step']} occurrence {d['occurrence']} "
                                              f"skipped {d['skipped']} -> {list(d['recipients'])}"),
            "DeadlineBreached": lambda d: f"{d['clock']} due {d['due']}",
            "SeverityChanged": lambda d: f"{d['from']} -> {d['to']} ({d['reason']})",
        }[e.type](d)
        lines.append(f"{e.seq:2} {e.at:%a %H:%M} {e.type:<20} {detail}")
    assert "\n".join(lines) + "\n" == _doc_block(doc, "## A worked example", "```\ntimer")
    log = "\n".join(line for line in lines if line[:2].strip().isdigit()) + "\n"
    assert log == _doc_block(readme, "nobody answering, the worker down from 15:00 to 21:00", "```")
    assert eng.get(iid).decision.severity == "high"  # raised once, at the step's first firing
