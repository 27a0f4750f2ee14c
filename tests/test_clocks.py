"""The named SLA clocks, rebuilt from the event log: pauses, severity changes, late
events, resets, priorities overriding severities, and the contact commands."""

from __future__ import annotations

import random
from datetime import datetime, timedelta, timezone

import attrs
import pytest

import qflow
from qflow import Event, FakeClock, InputError, TransitionError
from qflow import events as ev
from qflow_sla import ClockState, clock_states

CST = timezone(timedelta(hours=8))
T0 = datetime(2026, 11, 20, 10, 0, tzinfo=CST)  # a Friday
M = timedelta(minutes=1)
H = timedelta(hours=1)

RULESET = """\
qflow: 1
timezone: Asia/Shanghai
calendars:
  office:
    hours: {mon-fri: ["09:00-12:00", "13:30-18:00"]}
    holidays: CN
severities:
  critical: {acknowledge: 5m, respond: 15m, resolve: 4h, calendar: 24x7}
  high: {acknowledge: 15m, respond: 1h, resolve: 8h, cause: 1d, action: 3d, calendar: 24x7}
  normal: {respond: 4h, resolve: 3d, confirm: 8h, calendar: office}
priorities:
  P1: {respond: 10m}
priority:
  matrix: {3: [P2, P1, P1], 2: [P3, P2, P1], 1: [P4, P3, P2]}
  severity: {P1: critical, P2: high, P3: normal, P4: normal}
classify:
  - id: fire
    when: {description: {matches: fire}}
    set: {severity: high}
  - id: default
    set: {severity: normal}
"""


@pytest.fixture(scope="module")
def ruleset():
    return qflow.load_ruleset_text(RULESET, file="clocks.yaml", plugins=qflow.make_plugin_manager(autoload=False))


@pytest.fixture
def engine(ruleset):
    return qflow.Engine(ruleset, plugins=qflow.make_plugin_manager(autoload=False), clock=FakeClock(T0))


def decision(severity: str, priority: str | None = None) -> dict:
    return {"incident_id": "INC-1", "decided_at": T0.isoformat(), "ruleset": "x", "severity": severity,
            "priority": priority}


def log(*items: tuple[timedelta, str, dict]) -> tuple[Event, ...]:
    """An incident's events: (time after T0, type, data); reported and decided first."""
    out = [Event("INC-1", 1, T0, ev.INCIDENT_REPORTED, data={"id": "INC-1", "reported_at": T0.isoformat()})]
    for offset, type_, data in items:
        out.append(Event("INC-1", len(out) + 1, T0 + offset, type_, data=data))
    return tuple(out)


def states(ruleset, events, now):
    return clock_states(qflow.events.fold(events), events, ruleset, now)


def status(to: str, frm: str | None = None) -> dict:
    return {"from": frm, "to": to, "reason": None}


def test_waiting_customer_pauses_resolve_but_not_respond(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (30 * M, ev.STATUS_CHANGED, status("waiting_customer")),
                 (150 * M, ev.STATUS_CHANGED, status("working", "waiting_customer")))
    clocks = states(ruleset, events, T0 + 3 * H)
    respond, resolve = clocks["respond"], clocks["resolve"]
    assert (respond.elapsed, respond.paused, respond.breached_at) == (3 * H, False, T0 + H)
    assert (resolve.elapsed, resolve.paused, resolve.breached_at) == (H, False, None)
    assert resolve.due == T0 + 3 * H + 7 * H
    assert resolve.started_at == T0 and resolve.calendar == "24x7" and resolve.source == "severity high"
    # While waiting, the resolve clock is paused and has no due time.
    paused = states(ruleset, events, T0 + 2 * H)["resolve"]
    assert (paused.paused, paused.elapsed, paused.due) == (True, 30 * M, None)
    assert paused.moment_at(15 * M) == T0 + 15 * M  # the past is known while paused
    assert paused.moment_at(H) is None  # the future is not


def test_a_changed_severity_keeps_the_start_and_the_pauses(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (20 * M, ev.STATUS_CHANGED, status("waiting_vendor")),
                 (80 * M, ev.STATUS_CHANGED, status("working", "waiting_vendor")),
                 (90 * M, ev.SEVERITY_CHANGED, {"from": "high", "to": "critical", "reason": "escalation"}))
    resolve = states(ruleset, events, T0 + 2 * H)["resolve"]
    assert resolve.started_at == T0
    assert resolve.target == 4 * H and resolve.source == "severity critical"
    assert resolve.elapsed == 20 * M + 40 * M
    assert resolve.due == T0 + 2 * H + 3 * H
    # respond had used 90 minutes of critical's 15: breached at the change, and stays so
    respond = states(ruleset, events, T0 + 2 * H)["respond"]
    assert respond.breached_at == T0 + H  # high's 1h had already run out


def test_a_breached_clock_stays_breached_when_the_severity_is_lowered(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("critical")),
                 (20 * M, ev.SEVERITY_CHANGED, {"from": "critical", "to": "high", "reason": "a person"}))
    respond = states(ruleset, events, T0 + 30 * M)["respond"]
    assert respond.target == H
    assert respond.breached_at == T0 + 15 * M
    assert respond.elapsed < respond.target and respond.due == T0 + H


def test_a_shorter_target_already_used_up_breaches_at_the_change(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (12 * M, ev.SEVERITY_CHANGED, {"from": "high", "to": "critical", "reason": "x"}))
    ack = states(ruleset, events, T0 + 20 * M)["acknowledge"]
    assert (ack.target, ack.breached_at, ack.due) == (5 * M, T0 + 12 * M, T0 + 5 * M)


def test_a_late_event_recomputes_the_same_way_whatever_the_order(ruleset):
    base = log((0 * M, ev.DECISION_MADE, decision("high")),
               (60 * M, ev.STATUS_CHANGED, status("working", "waiting_customer")),
               (20 * M, ev.STATUS_CHANGED, status("waiting_customer")))  # arrived late
    expected = states(ruleset, base, T0 + 2 * H)
    assert expected["resolve"].elapsed == 20 * M + 60 * M
    shuffled = list(base)
    for seed in range(5):
        random.Random(seed).shuffle(shuffled)
        assert clock_states(qflow.events.fold(base), shuffled, ruleset, T0 + 2 * H) == expected


def test_events_after_now_are_not_counted(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")), (3 * H, ev.RESPONDED, {"message": "hi"}))
    before = states(ruleset, events, T0 + 30 * M)["respond"]
    assert (before.stopped_at, before.elapsed, before.due) == (None, 30 * M, T0 + H)
    after = states(ruleset, events, T0 + 4 * H)["respond"]
    assert (after.stopped_at, after.elapsed, after.breached_at, after.due) == (T0 + 3 * H, 3 * H, T0 + H, T0 + H)


def test_a_priority_overrides_the_severitys_target(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high", "P1")))
    clocks = states(ruleset, events, T0)
    assert (clocks["respond"].target, clocks["respond"].source) == (10 * M, "priority P1")
    assert (clocks["resolve"].target, clocks["resolve"].source) == (8 * H, "severity high")


def test_reopening_resets_resolve_into_a_new_run(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("critical")),
                 (5 * H, ev.STAGE_CHANGED, {"from": "verifying", "to": "closed"}),
                 (6 * H, ev.STAGE_CHANGED, {"from": "closed", "to": "reopened"}))
    closed = states(ruleset, events, T0 + 5 * H + 30 * M)["resolve"]
    assert (closed.run, closed.stopped_at, closed.breached_at, closed.due) == (1, T0 + 5 * H, T0 + 4 * H, T0 + 4 * H)
    again = states(ruleset, events, T0 + 7 * H)["resolve"]
    assert (again.run, again.started_at, again.elapsed, again.breached_at, again.due) == (
        2, T0 + 6 * H, H, None, T0 + 10 * H)


def stage(frm: str, to: str) -> dict:
    return {"from": frm, "to": to, "reason": "x"}


def test_a_rejection_a_reopening_undoes_ends_no_clock(ruleset):
    # Rejected by mistake 10 minutes in, reopened at 2h: the guest has waited since the
    # report. acknowledge (15m) and respond (1h) ran out while it stood rejected.
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (10 * M, ev.STAGE_CHANGED, stage("reported", "rejected")),
                 (2 * H, ev.STAGE_CHANGED, stage("rejected", "reopened")))
    high = "severity high"
    assert dict(states(ruleset, events, T0 + 3 * H)) == {
        "acknowledge": ClockState("acknowledge", "24x7", 15 * M, T0, None, False, 3 * H, T0 + 15 * M, T0 + 15 * M,
                                  1, high),
        "respond": ClockState("respond", "24x7", H, T0, None, False, 3 * H, T0 + H, T0 + H, 1, high),
        # Not reset by that reopening: one run, counted from the report.
        "resolve": ClockState("resolve", "24x7", 8 * H, T0, None, False, 3 * H, T0 + 8 * H, None, 1, high),
        "cause": ClockState("cause", "24x7", timedelta(days=1), None, None, False, timedelta(0), None, None, 0, high),
        "action": ClockState("action", "24x7", timedelta(days=3), None, None, False, timedelta(0), None, None, 0,
                             high),
    }
    respond = states(ruleset, events, T0 + 3 * H)["respond"]
    assert (respond.moment_at(30 * M), respond.moment_at(H), respond.moment_at(4 * H)) == (
        T0 + 30 * M, T0 + H, T0 + 4 * H)
    # Asked while it stood rejected, nothing had undone the rejection yet: stopped there.
    then = states(ruleset, events, T0 + 90 * M)
    assert then["respond"] == ClockState("respond", "24x7", H, T0, T0 + 10 * M, False, 10 * M, None, None, 1, high)
    assert then["resolve"] == ClockState("resolve", "24x7", 8 * H, T0, T0 + 10 * M, False, 10 * M, None, None, 1,
                                         high)


def test_an_undone_rejection_keeps_the_pauses(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (5 * M, ev.STATUS_CHANGED, status("waiting_customer")),
                 (10 * M, ev.STAGE_CHANGED, stage("reported", "rejected")),
                 (H, ev.STAGE_CHANGED, stage("rejected", "reopened")),
                 (2 * H, ev.STATUS_CHANGED, status("working", "waiting_customer")))
    high = "severity high"
    waiting = states(ruleset, events, T0 + 90 * M)["resolve"]
    assert waiting == ClockState("resolve", "24x7", 8 * H, T0, None, True, 5 * M, None, None, 1, high)
    clocks = states(ruleset, events, T0 + 3 * H)
    assert clocks["resolve"] == ClockState("resolve", "24x7", 8 * H, T0, None, False, H + 5 * M,
                                           T0 + 3 * H + 8 * H - (H + 5 * M), None, 1, high)
    assert clocks["respond"] == ClockState("respond", "24x7", H, T0, None, False, 3 * H, T0 + H, T0 + H, 1, high)


def test_a_rejection_that_stands_ends_every_clock_until_a_reopening_undoes_it(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (10 * M, ev.STAGE_CHANGED, stage("reported", "rejected")))
    high = "severity high"
    clocks = states(ruleset, events, T0 + 3 * H)
    assert clocks["respond"] == ClockState("respond", "24x7", H, T0, T0 + 10 * M, False, 10 * M, None, None, 1,
                                           high)
    assert clocks["resolve"] == ClockState("resolve", "24x7", 8 * H, T0, T0 + 10 * M, False, 10 * M, None, None,
                                           1, high)
    # Undone at 4h, the next morning's shift finds the mistake: every clock runs on from the report.
    again = events + (Event("INC-1", len(events) + 1, T0 + 4 * H, ev.STAGE_CHANGED,
                            data=stage("rejected", "reopened")),)
    clocks = states(ruleset, again, T0 + 5 * H)
    assert clocks["respond"] == ClockState("respond", "24x7", H, T0, None, False, 5 * H, T0 + H, T0 + H, 1, high)
    assert clocks["resolve"] == ClockState("resolve", "24x7", 8 * H, T0, None, False, 5 * H, T0 + 8 * H, None, 1,
                                           high)


def test_a_close_then_a_reopening_still_resets_resolve_after_an_undone_rejection(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (10 * M, ev.STAGE_CHANGED, stage("reported", "rejected")),
                 (30 * M, ev.STAGE_CHANGED, stage("rejected", "reopened")),
                 (40 * M, ev.RESPONDED, {"message": "sorry, it is ours"}),
                 (5 * H, ev.STAGE_CHANGED, stage("verifying", "closed")),
                 (6 * H, ev.STAGE_CHANGED, stage("closed", "reopened")))
    high = "severity high"
    clocks = states(ruleset, events, T0 + 7 * H)
    assert clocks["respond"] == ClockState("respond", "24x7", H, T0, T0 + 40 * M, False, 40 * M, None, None, 1,
                                           high)
    assert clocks["resolve"] == ClockState("resolve", "24x7", 8 * H, T0 + 6 * H, None, False, H, T0 + 14 * H,
                                           None, 2, high)


def test_stage_clocks_count_the_stay_in_a_stage(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("high")),
                 (H, ev.STAGE_CHANGED, {"from": "reported", "to": "confirmed"}),
                 (2 * H, ev.STAGE_CHANGED, {"from": "confirmed", "to": "analysing"}),
                 (5 * H, ev.STAGE_CHANGED, {"from": "analysing", "to": "acting"}))
    clocks = states(ruleset, events, T0 + 6 * H)
    cause, action = clocks["cause"], clocks["action"]
    assert (cause.started_at, cause.stopped_at, cause.elapsed) == (T0 + 2 * H, T0 + 5 * H, 3 * H)
    assert (action.started_at, action.elapsed, action.due) == (T0 + 5 * H, H, T0 + 5 * H + timedelta(days=3))
    assert "verify" not in clocks  # high has no verify target


def test_office_hours_clock_reports_business_and_calendar_time(ruleset):
    events = log((0 * M, ev.DECISION_MADE, decision("normal")))
    respond = states(ruleset, events, T0 + 3 * H)["respond"]  # Friday 13:00: lunch
    assert (respond.calendar, respond.elapsed) == ("office", 2 * H)
    assert respond.due == datetime(2026, 11, 20, 15, 30, tzinfo=CST)
    assert respond.moment_at(3 * H) == datetime(2026, 11, 20, 14, 30, tzinfo=CST)
    assert respond.moment_at(H) == T0 + H
    assert respond.remaining == 2 * H


def test_commands_record_the_events_the_clocks_read(engine, ruleset):
    state = engine.report({"description": "fire alarm in room 1203"})
    engine.clock.advance(10 * M)
    engine.acknowledge(state.id, actor="王芳", note="on my way")
    engine.clock.advance(20 * M)
    engine.respond(state.id, "工程部已出发 / engineering is on the way", actor="王芳", channel="phone")
    engine.set_status(state.id, "waiting_vendor", actor="王芳", reason="spare part")
    engine.clock.advance(2 * H)
    after = engine.set_status(state.id, "working", actor="王芳")
    assert (after.acknowledged_at, after.responded_at, after.status) == (T0 + 10 * M, T0 + 30 * M, "working")
    types = [e.type for e in engine.events(state.id)]
    assert types[2:] == [ev.ACKNOWLEDGED, ev.RESPONDED, ev.STATUS_CHANGED, ev.STATUS_CHANGED]
    engine.clock.advance(H)
    clocks = clock_states(engine.get(state.id), engine.events(state.id), ruleset, engine.clock.now())
    assert (clocks["acknowledge"].stopped_at, clocks["acknowledge"].breached_at) == (T0 + 10 * M, None)
    assert clocks["respond"].stopped_at == T0 + 30 * M
    assert clocks["resolve"].elapsed == 30 * M + H


def test_command_mistakes_say_what_to_do(engine):
    state = engine.report({"description": "x"})
    with pytest.raises(InputError) as info:
        engine.respond(state.id, "  ", actor="a")
    assert str(info.value) == "a response to INC-1 needs a message; say what the customer was told"
    engine.set_status(state.id, "waiting_customer", actor="a")
    with pytest.raises(InputError) as info:
        engine.set_status(state.id, "waiting_customer", actor="a")
    assert str(info.value) == "INC-1 is already waiting_customer; nothing to change"
    engine.transition(state.id, "rejected", actor="a", reason="not an anomaly")
    with pytest.raises(TransitionError) as info:
        engine.acknowledge(state.id, actor="a")
    assert str(info.value) == "cannot acknowledge INC-1: it is rejected; reopen it first"


def test_the_decision_deadlines_count_on_the_office_calendar(engine):
    engine.clock.advance(timedelta(hours=7))  # Friday 17:00
    state = engine.report({"description": "wifi slow"})
    respond = state.decision.deadline("respond")
    assert (respond.business, respond.calendar) == (4 * H, "office")
    assert respond.due == datetime(2026, 11, 23, 12, 0, tzinfo=CST)
    assert respond.due - respond.start == timedelta(days=2, hours=19)
    steps = [s.reason for s in state.decision.trace if s.section == "severities"]
    # 3d of business time on 7.5-hour days: nine working days and three and a half hours.
    assert steps == ["respond 4h (due 2026-11-23T12:00:00+08:00, 2d19h calendar time), resolve 3d "
                     "(due 2026-12-04T14:00:00+08:00, 13d21h calendar time), confirm 8h (due "
                     "2026-11-23T17:30:00+08:00, 3d30m calendar time); counted on office from "
                     "2026-11-20T17:00:00+08:00"]


def test_a_back_dated_report_counts_its_clocks_from_reported_at_as_its_deadlines(engine, ruleset):
    # An import a day late: the promise was made when the guest reported, not when qflow heard of it.
    engine.clock.advance(timedelta(days=1))
    state = engine.report({"description": "fire alarm in room 1203", "reported_at": T0.isoformat()})
    clocks = clock_states(state, engine.events(state.id), ruleset, engine.clock.now())
    for name in ("acknowledge", "respond", "resolve"):
        deadline = state.decision.deadline(name)
        assert (clocks[name].started_at, clocks[name].due) == (T0, deadline.due), name
    assert clocks["respond"].breached_at == T0 + H
    assert clocks["resolve"].elapsed == timedelta(days=1)


def test_a_report_ahead_of_the_clock_within_the_skew_counts_from_reported_at(engine, ruleset):
    # The sender's clock is 4 minutes ahead of qflow's: no deadline may come before the report.
    ahead = T0 + 4 * M
    state = engine.report({"description": "fire alarm in room 1203", "reported_at": ahead.isoformat()})
    deadlines = state.decision.deadlines
    assert [(d.clock, d.start, d.due) for d in deadlines if d.clock in ("acknowledge", "respond")] == [
        ("acknowledge", ahead, ahead + 15 * M), ("respond", ahead, ahead + H)]
    assert all(d.start == ahead and d.due >= ahead for d in deadlines)
    # The clocks agree with the deadlines, also asked before the report's own time.
    for now in (T0, T0 + 30 * M):
        clocks = clock_states(state, engine.events(state.id), ruleset, now)
        for d in deadlines:
            assert (clocks[d.clock].started_at, clocks[d.clock].due) == (ahead, d.due), (now, d.clock)
    assert clock_states(state, engine.events(state.id), ruleset, T0)["respond"].elapsed == timedelta(0)
    assert clock_states(state, engine.events(state.id), ruleset, T0 + 30 * M)["respond"].elapsed == 26 * M


def test_an_answer_before_a_report_ahead_of_the_clock_stops_its_clock_at_the_report(engine, ruleset):
    ahead = T0 + 4 * M
    state = engine.report({"description": "fire alarm in room 1203", "reported_at": ahead.isoformat()})
    engine.clock.advance(M)
    engine.acknowledge(state.id, actor="王芳")  # at T0 + 1m, by qflow's clock before reported_at
    engine.clock.advance(H)
    clocks = clock_states(engine.get(state.id), engine.events(state.id), ruleset, engine.clock.now())
    ack = clocks["acknowledge"]
    assert (ack.started_at, ack.stopped_at, ack.elapsed, ack.breached_at) == (ahead, ahead, timedelta(0), None)
    assert clocks["respond"].elapsed == H - 3 * M


def test_a_report_further_ahead_of_the_clock_than_the_skew_is_refused(engine):
    # Its respond deadline (1h from qflow's clock) would have come before its own reported_at.
    with pytest.raises(InputError) as info:
        engine.report({"description": "fire alarm in room 1203", "reported_at": "2026-11-20T12:00:00+08:00"})
    assert str(info.value) == (
        "reported_at 2026-11-20T12:00:00+08:00 is 2h ahead of qflow's clock (2026-11-20T10:00:00+08:00), more "
        "than the 5m a sender's clock may be ahead (intake.clock_skew); correct the sender's clock, or leave "
        "reported_at out to report the incident as of now @ $.reported_at")
    assert engine.query() == []
    # Just past the skew, in another zone: the two times are shown in the report's own zone.
    with pytest.raises(InputError) as info:
        engine.report({"description": "x", "reported_at": "2026-11-20T02:05:01Z"})
    assert str(info.value).startswith(
        "reported_at 2026-11-20T02:05:01+00:00 is 5m1s ahead of qflow's clock (2026-11-20T02:00:00+00:00), ")
    # At the skew itself it is taken.
    state = engine.report({"description": "x", "reported_at": "2026-11-20T02:05:00Z"})
    assert state.decision.deadline("respond").start == T0 + 5 * M


def test_the_skew_is_the_rulesets_intake_clock_skew():
    ruleset = qflow.load_ruleset_text(RULESET + "intake: {clock_skew: 1h}\n", file="clocks.yaml",
                                      plugins=qflow.make_plugin_manager(autoload=False))
    engine = qflow.Engine(ruleset, plugins=qflow.make_plugin_manager(autoload=False), clock=FakeClock(T0))
    state = engine.report({"description": "fire alarm", "reported_at": (T0 + 50 * M).isoformat()})
    assert state.decision.deadline("respond").due == T0 + 50 * M + H
    with pytest.raises(InputError) as info:
        engine.report({"description": "fire alarm", "reported_at": (T0 + 61 * M).isoformat()})
    assert str(info.value) == (
        "reported_at 2026-11-20T11:01:00+08:00 is 1h1m ahead of qflow's clock (2026-11-20T10:00:00+08:00), more "
        "than the 1h a sender's clock may be ahead (intake.clock_skew); correct the sender's clock, or leave "
        "reported_at out to report the incident as of now @ $.reported_at")


def test_a_batch_with_a_report_too_far_ahead_records_nothing(engine):
    with pytest.raises(InputError) as info:
        engine.report_batch([{"description": "fire alarm"},
                             {"description": "wifi slow", "reported_at": (T0 + 3 * H).isoformat()}])
    assert str(info.value).startswith("reported_at 2026-11-20T13:00:00+08:00 is 3h ahead of qflow's clock ")
    assert engine.query() == []
    # A retry of a recorded report is no new report: it is not looked at again.
    state = engine.report({"description": "fire alarm", "external_id": "pms-1", "reported_at": T0.isoformat()})
    again = engine.report_batch([{"description": "fire alarm", "external_id": "pms-1",
                                  "reported_at": (T0 + 3 * H).isoformat()}])
    assert again == [(state, "retry")]


def test_clock_mistakes_are_located():
    text = """\
qflow: 1
clocks:
  resolve: {pause: {stage: [waiting]}}
  respnd: {start: {event: [Reported]}}
  respond: {start: {event: [Reported]}, stop: [Responded]}
"""
    with pytest.raises(qflow.RulesetError) as info:
        qflow.load_ruleset_text(text, file="r.yaml", plugins=qflow.make_plugin_manager(autoload=False))
    assert [str(d) for d in info.value.diagnostics] == [
        "r.yaml:3:20: QF711 clock 'resolve' pauses on an event or stage but never resumes (add resume, e.g. "
        "{status: [working]}) @ $.clocks.resolve.pause",
        "r.yaml:3:29: QF712 unknown stage 'waiting' (did you mean 'acting'?) @ $.clocks.resolve.pause.stage[0]",
        "r.yaml:4:3: QF710 unknown clock 'respnd' (did you mean 'respond'?) @ $.clocks.respnd",
        "r.yaml:5:29: QF713 no built-in event is called 'Reported' (did you mean 'ReportAttached'?) "
        "@ $.clocks.respond.start.event[0]",
        "r.yaml:5:47: QF711 a clock trigger must be a mapping of event, stage and status lists (write e.g. "
        "{status: [waiting_customer]} or {event: [Responded], stage: [closed]}) @ $.clocks.respond.stop",
    ]


# -- reading a longer log goes on from the shorter one ------------------------------------

_KINDS = [
    (ev.STATUS_CHANGED, status("waiting_customer")), (ev.STATUS_CHANGED, status("working")),
    (ev.STATUS_CHANGED, status("waiting_vendor")), (ev.ACKNOWLEDGED, {"note": None}),
    (ev.RESPONDED, {"message": "hi"}), (ev.STAGE_CHANGED, {"from": None, "to": "closed"}),
    (ev.STAGE_CHANGED, {"from": None, "to": "reopened"}), (ev.STAGE_CHANGED, {"from": None, "to": "analysing"}),
    (ev.STAGE_CHANGED, {"from": None, "to": "acting"}), (ev.STAGE_CHANGED, {"from": None, "to": "verifying"}),
    (ev.SEVERITY_CHANGED, {"from": None, "to": "critical"}), (ev.SEVERITY_CHANGED, {"from": None, "to": "normal"}),
    (ev.DECISION_MADE, decision("high")), ("EscalationStepFired", {"step": "warn"}),
    (ev.STAGE_CHANGED, {"from": None, "to": "rejected"}),
]
_REJECT, _REOPEN = len(_KINDS) - 1, 6
#: Any kind, a rejection and a reopening more often: a rejection that the next stage
#: change undoes (or not), read on from a read that stopped in the rejected stretch.
_CHOICES = list(range(len(_KINDS))) + [_REJECT, _REOPEN] * 3


def _fresh(ruleset, events, now):
    # A list is read afresh: only an immutable log is kept to be read on from.
    return dict(clock_states(qflow.events.fold(events), list(events), ruleset, now))


def _shown(t):
    return t.isoformat() if t is not None else None  # the offset too: it is what an event records


def _same(a, b):
    assert a == b
    for name, clock in a.items():
        other = b[name]
        for field in ("started_at", "stopped_at", "due", "breached_at"):
            assert _shown(getattr(clock, field)) == _shown(getattr(other, field)), (name, field)
        for used in (clock.target / 3, clock.target, clock.elapsed):
            assert _shown(clock.moment_at(used)) == _shown(other.moment_at(used))


def test_a_longer_log_gives_what_reading_it_afresh_gives(ruleset):
    """Within a command the same log comes back longer (escalation reads the log, then
    the log with what it recorded): the clocks go on from the shorter read, and must
    agree with a fresh read of the whole log, late events and events after now included."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    steps = st.lists(st.tuples(st.sampled_from(_CHOICES), st.integers(-90, 600), st.booleans()),
                     min_size=1, max_size=8)

    @settings(max_examples=300, deadline=None)
    @given(st.sampled_from(["high", "normal", "critical"]), steps, st.integers(1, 8), st.integers(0, 3000),
           st.integers(0, 3000), st.sampled_from([0, 0, -600, -7, 3, 5]))
    def check(severity, items, cut, ahead, later, shift):
        at = 0
        events = log((0 * M, ev.DECISION_MADE, decision(severity)))
        # Reported before its arrival (an import) or, by a sender's clock a little fast, after it.
        reported = {"id": "INC-1", "reported_at": (T0 + shift * M).isoformat()}
        events = (attrs.evolve(events[0], data=reported),) + events[1:]
        for kind, gap, utc in items:
            at = max(at + gap, 0)
            when = T0 + at * M
            # Some recorded in another offset: the same moments, shown otherwise.
            events += (Event("INC-1", len(events) + 1, when.astimezone(timezone.utc) if utc else when,
                             _KINDS[kind][0], data=_KINDS[kind][1]),)
        head = events[:max(len(events) - cut, 2)]
        now = T0 + max(e.at - T0 for e in head) + ahead * M
        short = clock_states(qflow.events.fold(head), head, ruleset, now)
        long_now = now + later * M
        long = dict(clock_states(qflow.events.fold(events), events, ruleset, long_now))
        _same(long, _fresh(ruleset, events, long_now))
        _same(dict(short), _fresh(ruleset, head, now))
        # Once more after every event: it goes on from the read kept last (the short one
        # when the long one had events after its now), which no read since may have changed.
        end = max(long_now, max(e.at for e in events)) + M
        _same(dict(clock_states(qflow.events.fold(events), events, ruleset, end)), _fresh(ruleset, events, end))

    check()


def test_a_read_on_from_a_rejected_stretch_leaves_the_kept_read_as_it_was(ruleset):
    """A read kept while the incident stood rejected goes on with the reopening; a read
    that stops short of the log's end (an answer after its now) is not kept, and the
    next read goes on from the kept one again, as if that read never happened."""
    head = log((0 * M, ev.DECISION_MADE, decision("high")),
               (10 * M, ev.STAGE_CHANGED, stage("reported", "rejected")))
    rejected = states(ruleset, head, T0 + 20 * M)
    assert rejected["respond"].stopped_at == T0 + 10 * M
    events = head
    for offset, kind, data in ((30 * M, ev.STATUS_CHANGED, status("waiting_customer")),
                               (60 * M, ev.STAGE_CHANGED, stage("rejected", "reopened")),
                               (90 * M, ev.STATUS_CHANGED, status("working", "waiting_customer")),
                               (200 * M, ev.RESPONDED, {"message": "sorry, it is ours"})):
        events += (Event("INC-1", len(events) + 1, T0 + offset, kind, data=data),)
    short = dict(states(ruleset, events, T0 + 100 * M))
    _same(short, _fresh(ruleset, events, T0 + 100 * M))
    assert (short["respond"].elapsed, short["resolve"].elapsed) == (100 * M, 40 * M)
    later = dict(states(ruleset, events, T0 + 300 * M))
    _same(later, _fresh(ruleset, events, T0 + 300 * M))
    assert (later["respond"].stopped_at, later["respond"].elapsed, later["resolve"].elapsed) == (
        T0 + 200 * M, 200 * M, 240 * M)


def test_what_escalation_records_at_now_changes_no_clock_and_the_log_reads_on(ruleset):
    """The tick's case: the log is read at now, what fires is recorded at now (events no
    clock reacts to), the log with them is read at now again; later commands read on."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    steps = st.lists(st.tuples(st.sampled_from(_CHOICES), st.integers(0, 600)), min_size=0, max_size=6)

    @settings(max_examples=200, deadline=None)
    @given(st.sampled_from(["high", "normal", "critical"]), steps, st.integers(0, 600), st.integers(1, 3), steps)
    def check(severity, items, ahead, fired, more):
        at = 0
        rows = [(0 * M, ev.DECISION_MADE, decision(severity))]
        for kind, gap in items:
            at += gap
            rows.append((at * M, *_KINDS[kind]))
        events = log(*rows)
        now = T0 + (at + ahead) * M
        first = clock_states(qflow.events.fold(events), events, ruleset, now)
        for _ in range(fired):
            # Recorded in another offset: the same moment, which a later breach may be counted from.
            events += (Event("INC-1", len(events) + 1, now.astimezone(timezone.utc), "EscalationStepFired",
                             data={"step": "warn"}),)
            again = dict(clock_states(qflow.events.fold(events), events, ruleset, now))
            _same(again, dict(first))
            _same(again, _fresh(ruleset, events, now))
        at += ahead
        for kind, gap in more:
            at += gap
            events += (Event("INC-1", len(events) + 1, T0 + at * M, _KINDS[kind][0], data=_KINDS[kind][1]),)
            later = T0 + at * M
            found = dict(clock_states(qflow.events.fold(events), events, ruleset, later))
            _same(found, _fresh(ruleset, events, later))

    check()


def test_the_answer_is_shared_read_only_and_a_changed_log_gets_its_own(ruleset):
    """The tick's three asks: the log, then the log with a fired step (no clock moves:
    the same answer, shared as it is), then the log with an answer, which stops respond."""
    from types import MappingProxyType

    events = log((0 * M, ev.DECISION_MADE, decision("high")))
    now = T0 + 10 * M
    first = states(ruleset, events, now)
    assert type(first) is MappingProxyType
    with pytest.raises(TypeError):
        first["respond"] = None  # type: ignore[index]
    fired = events + (Event("INC-1", len(events) + 1, now, "EscalationStepFired", data={"step": "warn"}),)
    assert states(ruleset, fired, now) is first
    answered = fired + (Event("INC-1", len(fired) + 1, now, ev.RESPONDED, data={"message": "hi"}),)
    after = states(ruleset, answered, now)
    assert after is not first and after["respond"].stopped_at == now and first["respond"].stopped_at is None
    _same(dict(after), _fresh(ruleset, answered, now))
    later = answered + (Event("INC-1", len(answered) + 1, now + H, ev.ACKNOWLEDGED, data={"note": None}),)
    _same(dict(states(ruleset, later, now + H)), _fresh(ruleset, later, now + H))
