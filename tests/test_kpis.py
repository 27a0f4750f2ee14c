"""Every KPI of docs/kpis.md against a small history whose answers were worked out by
hand: a dozen incidents in October 2026 at a London desk (DST ends on 25 October, a
holiday on the 20th, an office calendar with a lunch break and a 24x7 one), with
reopened, paused, rejected and still-open incidents, surveys, actions and
verifications, and one incident whose month depends on the time zone.

``HISTORY`` and ``build`` are imported by the other assessment tests, which need the
same figures in other shapes (slices, renderers, the command line)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

import qflow
from qflow import Action, Cause, Engine, FakeClock, Incident, MemoryStore, Verification, VerificationResult
from qflow_assess import DEFINITIONS, settings
from qflow_assess._compute import compare, compute
from qflow_assess._facts import facts_row
from qflow_assess._periods import parse_period

pytest_plugins = ("pgtools",)  # the pg_url fixture, for the report on PostgreSQL

UTC = timezone.utc
LONDON = "Europe/London"

# Office: 09:00-12:30 and 13:30-17:30 London time on weekdays (7.5 h a day), closed on
# Tuesday 20 October 2026. Before 25 October London is UTC+1 (the windows are
# 08:00-11:30Z and 12:30-16:30Z), from 25 October UTC+0 (09:00-12:30Z, 13:30-17:30Z).
RULES = """\
qflow: 1
name: kpi-desk
description: KPI fixture desk
timezone: Europe/London
teams:
  front-office: {name: Front office}
  housekeeping: {name: Housekeeping}
  engineering: {name: Engineering}
calendars:
  office:
    hours: {mon-fri: ["09:00-12:30", "13:30-17:30"]}
    extra_holidays: [2026-10-20]
  always: {hours: 24x7}
severities:
  high: {acknowledge: 15m, respond: 1h, resolve: 8h, calendar: always}
  normal: {acknowledge: 2h, respond: 4h, resolve: 15h, calendar: office}
classify:
  - id: urgent
    when: {tags: {contains: urgent}}
    set: {severity: high}
  - id: default
    set: {severity: normal}
route:
  - id: rooms
    when: {category: [room, amenities]}
    assign: {team: housekeeping, owner: Lina}
  - id: equipment
    when: {category: equipment}
    assign: {team: engineering, owner: Zheng}
  - id: default
    assign: {team: front-office, owner: Chen}
loop:
  # Quick closes need no cause, action or verification here; the incidents that go
  # through the whole loop record them anyway.
  guards: {cause_before_acting: "off", actions_done_before_verifying: false, verification_before_closing: false}
assessment:
  min_n: 3
"""


def at(month: int, day: int, hour: int, minute: int = 0, year: int = 2026) -> datetime:
    return datetime(year, month, day, hour, minute, tzinfo=UTC)


AS_OF = at(11, 3, 12)  # Tuesday 3 November 2026, 12:00 GMT


def _report(category: str, place: str | None, *tags: str, channel: str = "phone"):
    return lambda e, ids, key: ids.__setitem__(key, e.report(Incident(
        description=f"{category} at {place}", category=category, place=place, channel=channel, tags=tags)).id)


def _quick_close(e: Engine, iid: str) -> None:
    state = e.get(iid)
    if state.stage.value == "reopened":
        e.transition(iid, "confirmed")
    else:
        e.confirm(iid, actor="supervisor")
    e.transition(iid, "acting")
    e.transition(iid, "verifying")
    e.close(iid, actor="supervisor")


def _do(fn):
    return lambda e, ids, key: fn(e, ids[key])


def _cause(branch: str):
    return Cause("C-1", f"{branch} cause", method="fishbone", branch=branch, confirmed=True)


def _action(aid: str, due: datetime) -> Action:
    return Action(aid, f"fix {aid}", "Owner", due, target="no repeat in 30 days")


def _verify(result: VerificationResult):
    return _do(lambda e, i: e.record_verification(
        i, Verification(result, e.clock.now(), verifier="quality", metrics={"repeats": 0})))


def _loop_start(*actions: Action):
    def run(e: Engine, i: str) -> None:
        e.confirm(i, actor="supervisor")
        e.record_cause(i, _cause({"I3": "machine", "I8": "method", "I12": "material"}[_label(e, i)]))
        e.transition(i, "acting")
        for a in actions:
            e.plan_action(i, a)
    return _do(run)


def _label(e: Engine, iid: str) -> str:
    return e.get(iid).incident.title or ""


def _titled(key: str, category: str, place: str, *tags: str):
    return lambda e, ids, k: ids.__setitem__(k, e.report(Incident(
        title=key, description=f"{category} at {place}", category=category, place=place, channel="onsite",
        tags=tags)).id)


#: (when, incident, what happens). Every duration below is worked out in the test.
HISTORY = [
    # A year earlier, for the "same period last year" comparison.
    (at(10, 14, 9, year=2025), "L1", _report("room", "1203")),
    (at(10, 14, 9, 30, year=2025), "L1", _do(lambda e, i: e.respond(i, "on our way", actor="desk"))),
    (at(10, 14, 10, year=2025), "L1", _do(_quick_close)),
    # September 2026, the previous period.
    (at(9, 15, 9), "P1", _report("billing", "desk")),
    (at(9, 15, 9, 30), "P1", _do(lambda e, i: e.respond(i, "checking the bill", actor="desk"))),
    (at(9, 15, 12), "P1", _do(_quick_close)),
    (at(9, 16, 10), "P2", _report("room", "1203")),
    (at(9, 17, 10), "P2", _do(lambda e, i: e.respond(i, "sorry", actor="desk"))),
    (at(9, 17, 11), "P2", _do(_quick_close)),
    # October 2026 (London).
    # I1: 23:30 UTC on 30 September is 00:30 on 1 October in London: October's.
    (at(9, 30, 23, 30), "I1", _report("billing", "desk")),
    (at(10, 1, 8, 10), "I1", _do(lambda e, i: e.acknowledge(i, actor="desk"))),
    (at(10, 1, 8, 30), "I1", _do(lambda e, i: e.respond(i, "refund on its way", actor="desk"))),
    (at(10, 1, 14, 30), "I1", _do(_quick_close)),
    (at(10, 2, 9), "I1", _do(lambda e, i: e.record_survey(i, score=5, nps=10, channel="sms"))),
    # I2: paused while waiting on the guest, closed, reopened, closed again; self-rated survey.
    (at(10, 1, 15), "I2", _report("room", "1203")),
    (at(10, 2, 9), "I2", _do(lambda e, i: e.respond(i, "housekeeping is coming", actor="desk"))),
    (at(10, 2, 10), "I2", _do(lambda e, i: e.set_status(i, "waiting_customer", actor="desk"))),
    (at(10, 5, 10), "I2", _do(lambda e, i: e.set_status(i, "working", actor="desk"))),
    (at(10, 5, 14), "I2", _do(_quick_close)),
    (at(10, 6, 9), "I2", _do(lambda e, i: e.reopen(i, "still dirty"))),
    (at(10, 6, 12), "I2", _do(_quick_close)),
    (at(10, 6, 13), "I2", _do(lambda e, i: e.record_survey(i, score=1, self_rated=True, actor="desk"))),
    # I3: urgent lift fault on 24x7, resolved late; its action done late; verified effective.
    (at(10, 5, 8, 30), "I3", _titled("I3", "equipment", "lift", "urgent")),
    (at(10, 5, 8, 40), "I3", _do(lambda e, i: e.acknowledge(i, actor="engineer"))),
    (at(10, 5, 9), "I3", _do(lambda e, i: e.respond(i, "engineer on site", actor="engineer"))),
    (at(10, 5, 9, 30), "I3", _loop_start(_action("A-1", at(10, 5, 17)))),
    (at(10, 5, 18), "I3", _do(lambda e, i: e.update_action(i, "A-1", "done"))),
    (at(10, 5, 18, 30), "I3", _verify(VerificationResult.EFFECTIVE)),
    (at(10, 5, 18, 30), "I3", _do(lambda e, i: e.close(i))),
    # I4: rejected: not an anomaly.
    (at(10, 6, 10), "I4", _report("billing", "desk")),
    (at(10, 6, 11), "I4", _do(lambda e, i: e.reject(i, "the charge was right"))),
    # I5: acknowledged, never answered: open past both due times.
    (at(10, 8, 16), "I5", _report("room", "1203")),
    (at(10, 9, 8, 15), "I5", _do(lambda e, i: e.acknowledge(i, actor="desk"))),
    # I6: reported on a Saturday, answered and resolved on Monday morning.
    (at(10, 10, 10), "I6", _report("noise", "lobby")),
    (at(10, 12, 8, 30), "I6", _do(lambda e, i: e.respond(i, "we moved the party", actor="desk"))),
    (at(10, 12, 10), "I6", _do(_quick_close)),
    (at(10, 12, 11), "I6", _do(lambda e, i: e.record_survey(i, score=3, nps=6, channel="phone"))),
    # I12: three actions: one open past due, one due in November, one cancelled.
    (at(10, 16, 11), "I12", _titled("I12", "amenities", "1501")),
    (at(10, 16, 11, 30), "I12", _do(lambda e, i: e.respond(i, "towels sent", actor="desk"))),
    (at(10, 16, 12), "I12", _loop_start(_action("A-1", at(10, 19, 16)), _action("A-2", at(11, 10, 12)),
                                        _action("A-3", at(10, 23, 12)))),
    (at(10, 17, 9), "I12", _do(lambda e, i: e.update_action(i, "A-3", "cancelled", note="A-1 covers it"))),
    # I9: reported on the holiday, answered exactly at its due time, resolved next day.
    (at(10, 20, 10), "I9", _report("room", "1501")),
    (at(10, 21, 13), "I9", _do(lambda e, i: e.respond(i, "room cleaned again", actor="desk"))),
    (at(10, 21, 15), "I9", _do(lambda e, i: (e.confirm(i), e.record_cause(i, _cause("man")),
                                            e.transition(i, "acting"), e.transition(i, "verifying"),
                                            e.close(i)))),
    (at(10, 22, 9), "I9", _do(lambda e, i: e.record_survey(i, score=4, nps=9, channel="online"))),
    # I7: across the end of DST (01:00 UTC on 25 October), urgent, reassigned; survey on a 10-point scale.
    (at(10, 24, 23, 30), "I7", _report("noise", "lobby", "urgent")),
    (at(10, 25, 1, 45), "I7", _do(lambda e, i: e.respond(i, "security is on the way", actor="desk"))),
    (at(10, 25, 2), "I7", _do(lambda e, i: e.reassign(i, owner="Wang", reason="night manager"))),
    (at(10, 25, 5, 30), "I7", _do(_quick_close)),
    (at(10, 25, 9), "I7", _do(lambda e, i: e.record_survey(i, score=8, scale=10))),
    # I8: answered late; its action done on time; the verification ineffective: back to analysing.
    (at(10, 26, 9), "I8", _titled("I8", "equipment", "lift")),
    (at(10, 26, 9, 30), "I8", _do(lambda e, i: e.acknowledge(i, actor="engineer"))),
    (at(10, 26, 10), "I8", _loop_start(_action("A-1", at(10, 28, 17)))),
    (at(10, 26, 15), "I8", _do(lambda e, i: e.respond(i, "part ordered", actor="engineer"))),
    (at(10, 28, 12), "I8", _do(lambda e, i: e.update_action(i, "A-1", "done"))),
    (at(10, 28, 13), "I8", _verify(VerificationResult.INEFFECTIVE)),
    # I10: answered twice (not a first-contact resolution).
    (at(10, 29, 14), "I10", _report("billing", "desk")),
    (at(10, 29, 14, 20), "I10", _do(lambda e, i: e.respond(i, "looking into it", actor="desk"))),
    (at(10, 30, 9), "I10", _do(lambda e, i: e.respond(i, "refunded", actor="desk"))),
    (at(10, 30, 10), "I10", _do(_quick_close)),
    # I11: urgent, reported late on 31 October, nothing done yet.
    (at(10, 31, 23, 30), "I11", _report("equipment", "boiler", "urgent")),
]


def ruleset(text: str = RULES, pm=None):
    pm = pm or qflow.make_plugin_manager()
    return qflow.load_ruleset_text(text, file="kpi.yaml", plugins=pm), pm


def build(store=None, history=HISTORY, rules: str = RULES):
    """Play *history* on a fake clock into *store*; the engine and the incident ids by label."""
    rs, pm = ruleset(rules)
    steps = sorted(history, key=lambda s: s[0])
    clock = FakeClock(steps[0][0])
    engine = Engine(rs, plugins=pm, clock=clock, store=store if store is not None else MemoryStore())
    ids: dict[str, str] = {}
    for when, key, step in steps:
        clock.set(when)
        step(engine, ids, key)
    return engine, ids


@pytest.fixture(scope="module")
def history():
    return build()


def _tz():
    from zoneinfo import ZoneInfo

    return ZoneInfo(LONDON)


def whole(engine, period="2026-10", by=None):
    p = parse_period(period, _tz(), AS_OF)
    return compute(engine.store, DEFINITIONS, p, as_of=AS_OF, by=by, min_n=3)


# -- the periods -----------------------------------------------------------------------


def test_october_in_london_is_745_hours_and_holds_the_incident_reported_at_2330_utc_on_30_september(history):
    engine, ids = history
    p = parse_period("2026-10", _tz(), AS_OF)
    assert (p.start.astimezone(UTC), p.end.astimezone(UTC)) == (at(9, 30, 23), at(11, 1, 0))
    assert p.end - p.start == timedelta(days=31)  # wall clock ...
    assert (p.end.timestamp() - p.start.timestamp()) / 3600 == 745  # ... but 745 real hours (DST ends)
    assert p.previous().label == "2026-09" and p.last_year().label == "2025-10"
    reported = engine.get(ids["I1"]).incident.reported_at
    assert p.contains(reported) and not p.previous().contains(reported)
    # Bucketed in UTC (as Zammad does), I1 would be September's.
    assert reported.strftime("%Y-%m") == "2026-09"
    sl = whole(engine)
    assert sl.whole()["resolution_rate"].denominator == 11  # I1-I12 less the rejected I4
    assert whole(engine, "2026-09").whole()["resolution_rate"].denominator == 2  # P1, P2 and not I1


# -- durations -------------------------------------------------------------------------


def test_first_response_time_business_and_calendar(history):
    engine, _ = history
    fig = whole(engine).whole()["first_response_time"]
    # Answered incidents reported in October (I5, I11 never answered; I4 rejected):
    #   business (office 08:00-11:30Z/12:30-16:30Z before 25 Oct, 09:00-12:30Z/13:30-17:30Z after)
    #   I1  23:30 -> 08:30   calendar 9h = 32400   business 08:00-08:30 = 1800
    #   I2  15:00 -> 09:00   calendar 18h = 64800  business 1.5h + 1h = 9000
    #   I3  08:30 -> 09:00   24x7: 1800 / 1800
    #   I6  Sat 10:00 -> Mon 08:30  calendar 46.5h = 167400  business 1800
    #   I7  23:30 -> 01:45 across the DST end: 2h15m = 8100 (the wall clock says 1h15m) / 8100
    #   I8  09:00 -> 15:00 (GMT)  calendar 21600  business 3.5h + 1.5h = 18000
    #   I9  holiday 10:00 -> Wed 13:00  calendar 27h = 97200  business 3.5h + 0.5h = 14400 (= its 4h target)
    #   I10 14:00 -> 14:20  1200 / 1200
    #   I12 11:00 -> 11:30  1800 / 1800
    # business sorted: 1200 1800 1800 1800 1800 8100 9000 14400 18000 -> sum 57900
    # median = 5th of 9 (ceil 4.5) = 1800; P90 = 9th (ceil 8.1) = 18000
    # calendar sorted: 1200 1800 1800 8100 21600 32400 64800 97200 167400 -> sum 396300
    assert fig.n == 9 and fig.value == 1800
    assert fig.extra == {"mean": 57900 / 9, "median": 1800, "p90": 18000,
                         "mean_calendar": 396300 / 9, "median_calendar": 21600, "p90_calendar": 167400}
    assert not fig.low_confidence


def test_time_to_acknowledge(history):
    engine, _ = history
    fig = whole(engine).whole()["time_to_acknowledge"]
    # I1 23:30 -> 08:10: calendar 8h40m = 31200, business 10m = 600
    # I3 08:30 -> 08:40 (24x7): 600 / 600
    # I5 Thu 16:00 -> Fri 08:15: calendar 16h15m = 58500, business 30m + 15m = 2700
    # I8 09:00 -> 09:30: 1800 / 1800
    # business 600 600 1800 2700: mean 1425, median 2nd = 600, P90 4th = 2700
    # calendar 600 1800 31200 58500: mean 23025, median 1800, P90 58500
    assert fig.n == 4
    assert fig.extra == {"mean": 1425, "median": 600, "p90": 2700,
                         "mean_calendar": 23025, "median_calendar": 1800, "p90_calendar": 58500}


def test_time_to_resolve_counts_the_first_close_in_business_time_without_the_pause(history):
    engine, _ = history
    fig = whole(engine).whole()["time_to_resolve"]
    # Resolved (first close) in October:
    #   I1  23:30 -> 14:30          calendar 15h = 54000    business 3.5h + 2h = 19800
    #   I2  Thu 15:00 -> Mon 14:00  calendar 95h = 342000   business 1.5h + 2h (paused Fri 10:00 until
    #       Mon 10:00) + 1.5h + 1.5h = 6.5h = 23400; the reopened run does not count
    #   I3  08:30 -> 18:30 (24x7)   36000 / 36000
    #   I6  Sat 10:00 -> Mon 10:00  calendar 48h = 172800   business 2h = 7200
    #   I7  23:30 -> 05:30 across the DST end: 6h = 21600 / 21600 (the wall clock says 5h)
    #   I9  holiday 10:00 -> Wed 15:00  calendar 29h = 104400  business 3.5h + 2.5h = 21600
    #   I10 Thu 14:00 -> Fri 10:00 (GMT)  calendar 20h = 72000  business 3.5h + 1h = 16200
    # business sorted 7200 16200 19800 21600 21600 23400 36000: sum 145800, median 4th 21600, P90 7th 36000
    # calendar sorted 21600 36000 54000 72000 104400 172800 342000: sum 802800, median 72000, P90 342000
    assert fig.n == 7 and fig.value == 21600
    assert fig.extra == {"mean": 145800 / 7, "median": 21600, "p90": 36000,
                         "mean_calendar": 802800 / 7, "median_calendar": 72000, "p90_calendar": 342000}


# -- rates -----------------------------------------------------------------------------


def test_resolution_rates(history):
    engine, _ = history
    w = whole(engine).whole()
    # cohort: 11 (I1-I12 less the rejected I4); resolved: I1 I2 I3 I6 I7 I9 I10
    assert (w["resolution_rate"].numerator, w["resolution_rate"].denominator) == (7, 11)
    assert w["resolution_rate"].value == 7 / 11
    # within the resolve deadline: all resolved but I3 (10h on a 8h target)
    assert (w["resolution_within_target"].numerator, w["resolution_within_target"].denominator) == (6, 11)


def test_resolution_rate_counts_what_was_resolved_by_the_as_of_time(history):
    engine, _ = history
    p = parse_period("2026-10", _tz(), AS_OF)
    w = compute(engine.store, DEFINITIONS, p, as_of=at(10, 6, 0), min_n=3).whole()
    # by 6 Oct 00:00Z only I1, I2 and I3 were reported, and resolved: I1 (1 Oct), I2 (5 Oct 14:00)
    # and I3 (5 Oct 18:30, late). The incidents reported later are not yet in the cohort.
    assert (w["resolution_rate"].numerator, w["resolution_rate"].denominator) == (3, 3)
    assert w["resolution_within_target"].numerator == 2


def test_on_time_rates_and_actions_as_of_a_past_time(history):
    engine, _ = history
    p = parse_period("2026-10", _tz(), AS_OF)
    w = compute(engine.store, DEFINITIONS, p, as_of=at(10, 26, 14, 30), min_n=3).whole()
    # Reported by Monday 26 Oct 14:30Z: all of October but I10, I11 (and the rejected I4).
    # respond: I1 I2 I3 I6 I9 I12 kept, I7 late; I8 (due 14:00Z) was answered at 15:00Z, so it was
    # still running then, and already late: an open breach as of then, like I5 -> 6 of 9
    otr = w["on_time_respond"]
    assert (otr.numerator, otr.denominator, otr.extra) == (6, 9, {"open_breached": 2})
    # resolve: I1 I2 I6 I7 I9 kept, I3 late; running past due: I5 (12 Oct), I12 (21 Oct) -> 5 of 8
    otv = w["on_time_resolve"]
    assert (otv.numerator, otv.denominator, otv.extra) == (5, 8, {"open_breached": 2})
    # actions due in October: I3 A-1 done late; I12 A-1 open past its due date; I8 A-1 (due on the
    # 28th, done on the 28th) neither done nor due yet -> 0 of 2
    act = w["action_on_time"]
    assert (act.numerator, act.denominator, act.extra) == (0, 2, {"overdue": 1})


def test_a_close_after_the_as_of_time_leaves_the_respond_clock_running_then():
    # 10:00 BST on Monday 5 Oct: 4 office hours run out at 15:00 BST (14:00Z); closed at 16:00 BST
    # without an answer. As of 14:30Z the clock was still running, and late.
    engine, _ = build(history=[(at(10, 5, 9), "Q", _report("billing", "desk")),
                               (at(10, 5, 15), "Q", _do(_quick_close))])
    p = parse_period("2026-10", _tz(), AS_OF)
    then = compute(engine.store, DEFINITIONS, p, as_of=at(10, 5, 14, 30)).whole()["on_time_respond"]
    now = compute(engine.store, DEFINITIONS, p, as_of=AS_OF).whole()["on_time_respond"]
    assert (then.numerator, then.denominator, then.extra) == (0, 1, {"open_breached": 1})
    assert (now.numerator, now.denominator, now.extra) == (0, 1, {"open_breached": 0})


def test_on_time_rates_keep_open_breaches_in_the_denominator(history):
    engine, _ = history
    w = whole(engine).whole()
    # respond, stopped: I1 I2 I3 I6 I9 (exactly at its due time: on time) I10 I12 kept; I7 (2h15m on 1h)
    # and I8 (5h on 4h) late -> 7 of 9; still running past due: I5 (due Fri 9 Oct 11:30Z) and I11
    # (due 1 Nov 00:30Z) -> 7 of 11
    otr = w["on_time_respond"]
    assert (otr.numerator, otr.denominator, otr.extra["open_breached"]) == (7, 11, 2)
    # resolve, stopped: I1 I2 I6 I7 I9 I10 kept, I3 late -> 6 of 7; running past due: I5 (12 Oct 16:00Z),
    # I8 (27 Oct 17:30Z), I11 (1 Nov 07:30Z), I12 (21 Oct 11:00Z: the holiday is skipped) -> 6 of 11
    otv = w["on_time_resolve"]
    assert (otv.numerator, otv.denominator, otv.extra["open_breached"]) == (6, 11, 4)


def test_an_answer_exactly_at_the_due_time_is_on_time(history):
    engine, ids = history
    row = _row(engine, ids["I9"])
    # 4h of office time from the holiday (Tue 20 Oct) runs out at Wed 21 Oct 13:00Z: answered then.
    assert (row["respond_bs"], row["respond_due"], row["respond_met"]) == (14400, at(10, 21, 13).timestamp(), 1)


def test_a_close_without_an_answer_stops_the_respond_clock_but_is_no_response():
    engine, ids = build(history=[
        (at(10, 5, 9), "Q1", _report("billing", "desk")),
        (at(10, 5, 10), "Q1", _do(_quick_close)),  # 1h of office time: within the 4h commitment
        (at(10, 5, 9, 30), "Q2", _report("billing", "desk")),
    ])
    row = _row(engine, ids["Q1"])
    assert (row["responded_at"], row["respond_s"], row["respond_bs"], row["respond_met"]) == (None, None, None, 1)
    assert (row["acknowledged_at"], row["ack_bs"]) == (None, None)
    w = compute(engine.store, DEFINITIONS, parse_period("2026-10", _tz(), AS_OF), as_of=AS_OF).whole()
    # Q1 kept (closed in time), Q2 still running past its due time (5 Oct 13:30Z): 1 of 2, each counted once
    assert (w["on_time_respond"].numerator, w["on_time_respond"].denominator) == (1, 2)
    assert w["on_time_respond"].extra["open_breached"] == 1
    assert (w["first_response_time"].n, w["time_to_acknowledge"].n, w["time_to_resolve"].n) == (0, 0, 1)


def test_first_contact_reopen_and_recurrence(history):
    engine, _ = history
    w = whole(engine).whole()
    # resolved: I1 I2 I3 I6 I7 I9 I10; I2 was reopened, I7 reassigned, I10 answered twice
    assert (w["first_contact_resolution"].numerator, w["first_contact_resolution"].denominator) == (4, 7)
    assert (w["reopen_rate"].numerator, w["reopen_rate"].denominator) == (1, 7)
    # fingerprints (category|place) of the 11: billing|desk x2 (I1 I10; I4 is rejected), room|1203 x2,
    # equipment|lift x2, noise|lobby x2, room|1501, equipment|boiler, amenities|1501 -> 7 distinct
    rec = w["recurrence_rate"]
    assert (rec.numerator, rec.denominator, rec.value) == (4, 11, 4 / 11)


def test_an_incident_without_a_place_is_no_recurrence_of_another_without_one():
    # The fingerprint is category and place: the two billing reports at the desk are one
    # kind. Four with no place (none, '', blank) are of no known kind, not one kind "at no
    # place": no repeats among them, and out of the rate (its n is the incidents of a kind).
    from qflow_assess._report import build_report

    engine, ids = build(history=[
        (at(10, 5, 9), "D1", _report("billing", "desk")),
        (at(10, 5, 10), "D2", _report("billing", "desk")),
        (at(10, 6, 9), "N1", _report("billing", None)),
        (at(10, 6, 10), "N2", _report("billing", None)),
        (at(10, 6, 11), "N3", _report("billing", "")),
        (at(10, 6, 12), "N4", _report("billing", "  ")),
    ])
    assert [_row(engine, ids[k])["fingerprint"] for k in ("D1", "N1", "N3", "N4")] == ["billing|desk", None, None, None]
    rec = whole(engine).whole()["recurrence_rate"]
    assert (rec.numerator, rec.denominator, rec.value) == (1, 2, 0.5)
    rep = build_report(engine.store, engine.ruleset, "2026-10", as_of=AS_OF, now=AS_OF, dimensions=("team",))
    assert [(place, n, repeats) for place, n, repeats in rep.recurrence_by_place if repeats] == [("desk", 2, 1)]


def test_a_survey_before_the_resolution_is_a_response_and_the_rate_stays_of_resolved_incidents():
    engine, ids = build()
    engine.record_survey(ids["I5"], score=5, channel="sms")  # I5 is not resolved
    csat = whole(engine).whole()["csat"]
    # I1 5, I6 3, I9 4, I7 8 of 10 (4.11 of 5) and I5's 5
    assert csat.extra == {"mean_score": pytest.approx((5 + 3 + 4 + 1 + 7 * 4 / 9 + 5) / 5, rel=1e-12),
                          "responses": 5, "response_rate": 4 / 7}


def test_csat_and_nps_leave_self_rated_surveys_out(history):
    engine, _ = history
    w = whole(engine).whole()
    # I1 5/5, I6 3/5, I9 4/5, I7 8/10 = 1 + 7 x 4/9 = 4.11/5 (mapped end to end); I2's self-rated 1 is left out
    csat = w["csat"]
    assert (csat.numerator, csat.denominator, csat.value) == (3, 4, 0.75)
    assert csat.extra == {"mean_score": pytest.approx((5 + 3 + 4 + 1 + 7 * 4 / 9) / 4, rel=1e-12), "responses": 4,
                          "response_rate": 4 / 7}
    # NPS answers: I1 10 (promoter), I9 9 (promoter), I6 6 (detractor) -> 100 * (2 - 1) / 3
    nps = w["nps"]
    assert (nps.numerator, nps.denominator, nps.value) == (1, 3, 100 / 3)
    assert nps.extra == {"promoters": 2, "detractors": 1}


def test_action_on_time_and_verification_effectiveness(history):
    engine, _ = history
    w = whole(engine).whole()
    # due in October: I3 A-1 (done 1h late), I8 A-1 (done 5h early), I12 A-1 (open since 19 Oct);
    # I12 A-2 is due in November, I12 A-3 was cancelled
    act = w["action_on_time"]
    assert (act.numerator, act.denominator, act.extra["overdue"]) == (1, 3, 1)
    assert not act.low_confidence
    # verified: I3 (effective), I8 (ineffective, back to analysing)
    ver = w["verification_effectiveness"]
    assert (ver.numerator, ver.denominator, ver.value) == (1, 2, 0.5)
    assert ver.low_confidence  # 2 < min_n 3


def test_backlog_by_age_as_of_the_report(history):
    engine, _ = history
    fig = whole(engine).whole()["backlog"]
    # open on 3 Nov 12:00Z: I5 (25d20h), I8 (8d3h), I11 (2d12h30m), I12 (18d1h)
    assert fig.value == 4
    assert fig.extra == {"age 0-1d": 0, "age 1-3d": 1, "age 3-7d": 0, "age 7-30d": 3, "age >30d": 0}


def test_every_kpi_has_a_hand_computed_figure_above():
    tested = set(re.findall(r'w\["(\w+)"\]|\)\["(\w+)"\]', Path(__file__).read_text(encoding="utf-8")))
    names = {a or b for a, b in tested}
    assert {k.name for k in DEFINITIONS} <= names


# -- slices and comparisons ------------------------------------------------------------


def test_slice_by_team(history):
    engine, _ = history
    sl = whole(engine, by="team")
    fo, hk, en = (sl.groups[t] for t in ("front-office", "housekeeping", "engineering"))
    assert set(sl.groups) == {"front-office", "housekeeping", "engineering"}
    # front office: I1 I6 I7 I10 (I4 rejected); housekeeping: I2 I5 I9 I12; engineering: I3 I8 I11
    assert [g["resolution_rate"].denominator for g in (fo, hk, en)] == [4, 4, 3]
    assert [(g["resolution_rate"].numerator) for g in (fo, hk, en)] == [4, 2, 1]
    # respond: FO I7 late; HK I5 open past due; EN I8 late, I11 open past due
    assert [(g["on_time_respond"].numerator, g["on_time_respond"].denominator) for g in (fo, hk, en)] == [
        (3, 4), (3, 4), (1, 3)]
    # resolve: FO all 4 kept; HK I2 I9 kept, I5 I12 open past due; EN I3 late, I8 I11 open past due
    assert [(g["on_time_resolve"].numerator, g["on_time_resolve"].denominator) for g in (fo, hk, en)] == [
        (4, 4), (2, 4), (0, 3)]
    # FO: billing|desk x2, noise|lobby x2; HK: room|1203 x2, room|1501, amenities|1501; EN: lift x2, boiler
    assert [g["recurrence_rate"].numerator for g in (fo, hk, en)] == [2, 1, 1]
    assert [(g["first_contact_resolution"].numerator, g["first_contact_resolution"].denominator)
            for g in (fo, hk, en)] == [(2, 4), (1, 2), (1, 1)]
    # FO surveys I1 5, I6 3, I7 8/10; HK I9 4; EN none
    assert (fo["csat"].numerator, fo["csat"].denominator) == (2, 3)
    assert (hk["csat"].numerator, hk["csat"].denominator) == (1, 1) and hk["csat"].low_confidence
    assert en["csat"].value is None and en["csat"].n == 0
    assert (fo["nps"].value, hk["nps"].value) == (0, 100)  # FO: I1 promoter, I6 detractor
    # first response (business): FO 1200 1800 1800 8100 -> median 2nd = 1800; HK 1800 9000 14400 -> 9000
    assert (fo["first_response_time"].value, hk["first_response_time"].value) == (1800, 9000)
    # resolved in October: FO 7200 16200 19800 21600 -> median 16200; HK 21600 23400 -> 21600; EN 36000
    assert [g["time_to_resolve"].value for g in (fo, hk, en)] == [16200, 21600, 36000]
    # actions due in October: EN I3 late + I8 on time; HK I12 open past due; FO has none
    assert (en["action_on_time"].numerator, en["action_on_time"].denominator) == (1, 2)
    assert (hk["action_on_time"].numerator, hk["action_on_time"].denominator) == (0, 1)
    assert "action_on_time" not in fo
    assert [g["backlog"].value for g in (fo, hk, en)] == [0, 2, 2]
    # the whole is the same as without the slice
    assert sl.whole() == whole(engine).whole()


def test_comparison_with_the_previous_period_and_last_year(history):
    engine, _ = history
    p = parse_period("2026-10", _tz(), AS_OF)
    c = compare(engine.store, DEFINITIONS, p, as_of=AS_OF, min_n=3)
    prev, ly = c.previous.whole(), c.last_year.whole()
    assert (c.previous.period.label, c.last_year.period.label) == ("2026-09", "2025-10")
    # September: P1 answered in 30m (kept), P2 in 7.5h of office time (late on 4h)
    assert (prev["on_time_respond"].numerator, prev["on_time_respond"].denominator) == (1, 2)
    # first response P1 1800, P2 27000 -> median 1st of 2 = 1800; calendar P1 1800, P2 86400
    assert prev["first_response_time"].extra["median"] == 1800
    assert prev["first_response_time"].extra["p90_calendar"] == 86400
    # resolved: P1 2.5h = 9000 (closed in the lunch break), P2 7.5h + 1h = 30600
    assert (prev["time_to_resolve"].extra["mean"], prev["time_to_resolve"].n) == ((9000 + 30600) / 2, 2)
    assert prev["resolution_rate"].value == 1.0 and prev["resolution_rate"].low_confidence
    # a year earlier: L1 answered in 30 min, resolved in an hour
    assert (ly["first_response_time"].value, ly["time_to_resolve"].value) == (1800, 3600)
    assert ly["on_time_respond"].value == 1.0
    assert "backlog" not in prev  # what is open now has no "then"
    from qflow_assess._format import delta

    kpi = next(k for k in DEFINITIONS if k.name == "on_time_respond")
    assert delta(kpi, c.current.whole()["on_time_respond"], prev["on_time_respond"]) == ("+13.6 pt", 1)
    ttr = next(k for k in DEFINITIONS if k.name == "time_to_resolve")
    # 21600 now against (9000, 30600) -> median 9000 then: 12600 s = 3h30m longer, worse
    assert delta(ttr, c.current.whole()["time_to_resolve"], prev["time_to_resolve"]) == ("+3h30m", -1)


def test_rolling_window_ends_at_the_midnight_after_as_of(history):
    engine, _ = history
    p = parse_period("30d", _tz(), AS_OF)
    assert (p.start.astimezone(UTC), p.end.astimezone(UTC)) == (at(10, 4, 23), at(11, 4, 0))
    # the label names the last day the window holds, not the midnight it ends at
    assert (p.label, p.previous().label, p.last_year().label) == (
        "30 days to 2026-11-03", "30 days to 2026-10-04", "30 days to 2025-11-03")
    # 5 Oct 00:00 BST .. 4 Nov 00:00 GMT: I1 and I2 (1 Oct) fall out, the rest of October stays
    assert whole(engine, "30d").whole()["resolution_rate"].denominator == 9


def test_site_metric_from_the_hook_shows_up_in_slices():
    from qflow_assess import KPI, Figure, site_kpis

    class Site:
        @qflow.hookimpl
        def qflow_site_metrics(self, ruleset):
            return [KPI("night_share", "Night share", "夜间占比", "rate", "urgent incidents", "incidents", "report",
                        lambda _as_of: {"urgent": qflow.Measure("count", None, [qflow.Filter("severity", "==", "high")]),
                                        "all": qflow.Measure("count")},
                        lambda v: Figure("night_share", v["urgent"] / v["all"] if v["all"] else None, v["all"],
                                         v["urgent"], v["all"]))]

    engine, _ = build()
    engine.plugins.register(Site(), name="site")
    kpis = site_kpis(engine.plugins, engine.ruleset)
    assert [k.name for k in kpis] == ["night_share"]
    sl = compute(engine.store, DEFINITIONS + kpis, parse_period("2026-10", _tz(), AS_OF), as_of=AS_OF, by="team")
    # urgent: I3 I7 I11 of the 12 reported (the rejected I4 included: the site metric has no filter)
    assert (sl.whole()["night_share"].numerator, sl.whole()["night_share"].denominator) == (3, 12)
    assert sl.groups["engineering"]["night_share"].numerator == 2


def test_the_site_metric_example_of_the_definitions_page_works_as_a_plugin():
    import types

    from qflow_assess import site_kpis

    text = (Path(__file__).parent.parent / "docs" / "kpis.md").read_text(encoding="utf-8")
    [code] = re.findall(r"^```python\n(.*?)^```", text.split("## Site metrics", 1)[1], flags=re.S | re.M)
    module = types.ModuleType("qflow_site_metric_example")
    exec(compile(code, "kpis.md", "exec"), module.__dict__)  # noqa: S102 - our own docs
    engine, _ = build()
    engine.plugins.register(module, name="site")
    kpis = site_kpis(engine.plugins, engine.ruleset)
    sl = compute(engine.store, DEFINITIONS + kpis, parse_period("2026-10", _tz(), AS_OF), as_of=AS_OF)
    figure = sl.whole()["high_share"]
    # high: I3 I7 I11 of the 12 reported in October, the rejected I4 left out
    assert (figure.numerator, figure.denominator, figure.value) == (3, 11, 3 / 11)
    assert [k.name for k in kpis] == ["high_share"] and not kpis[0].higher_is_better


# -- the definitions page --------------------------------------------------------------


def test_docs_table_lists_every_kpi_with_its_version_and_membership():
    text = (Path(__file__).parent.parent / "docs" / "kpis.md").read_text(encoding="utf-8")
    table = {m[1]: (int(m[2]), m[3].strip()) for m in re.finditer(
        r"^\| `(\w+)` \| (\d+) \|.*\| (\w+) \|$", text, re.M)}
    assert table == {k.name: (k.version, k.membership) for k in DEFINITIONS}


def _row(engine, iid):
    return facts_row(engine.get(iid), engine.events(iid), engine.ruleset, settings(engine.ruleset))


# -- one scan for many figures ---------------------------------------------------------


def _report_figures(rep):
    from qflow_assess._render import rows

    return (list(rows(rep)), [(sl.period.label, sl.total) for sl in rep.trend], rep.histogram, rep.pareto,
            rep.recurrence_by_place, rep.problem_counts, [(p.incident_id, p.status) for p in rep.problems])


@pytest.fixture(scope="module")
def on_sqlite(tmp_path_factory):
    return build(store=f"sqlite:///{tmp_path_factory.mktemp('kpis') / 'q.sqlite3'}")


@pytest.mark.parametrize("scan", [False, True], ids=["planner", "scanned"])
def test_a_report_on_sqlite_has_the_figures_of_the_memory_store(history, on_sqlite, monkeypatch, scan):
    """Grouping sets, rolled-up slices, figures computed by two threads on read
    connections of their own and (with the table counted as big) period ranges read
    by scanning: the same figures as the Python reference."""
    from qflow import projection_sql
    from qflow_assess._report import build_report

    if scan:
        monkeypatch.setattr(projection_sql, "SMALL_TABLE", 0)
        monkeypatch.setattr(projection_sql, "SCAN_SHARE", 0.0)
    dims = ("team", "category", "severity", "owner", "channel", "place")
    # as of when the report is made, and as of an earlier time (what was open then, closed since)
    for period, as_of in (("2026-10", AS_OF), ("2026-Q4", AS_OF), ("30d", AS_OF), ("2026-10", at(10, 20, 12))):
        mem = build_report(history[0].store, history[0].ruleset, period, as_of=as_of, now=AS_OF, dimensions=dims)
        sql = build_report(on_sqlite[0].store, on_sqlite[0].ruleset, period, as_of=as_of, now=AS_OF, dimensions=dims,
                           workers=2)
        assert _report_figures(sql) == _report_figures(mem), (period, as_of)


def test_a_report_on_postgresql_has_the_figures_of_the_memory_store(history, pg_url):
    from qflow_assess._report import build_report

    engine, _ = build(store=pg_url)
    try:
        dims = ("team", "category", "severity", "owner")
        for period in ("2026-10", "2026-Q4"):
            mem = build_report(history[0].store, history[0].ruleset, period, as_of=AS_OF, now=AS_OF, dimensions=dims)
            pg = build_report(engine.store, engine.ruleset, period, as_of=AS_OF, now=AS_OF, dimensions=dims, workers=2)
            assert _report_figures(pg) == _report_figures(mem), period
    finally:
        engine.store.close()


def test_slices_from_one_call_are_the_slices_one_at_a_time(history):
    from qflow_assess._compute import compute_slices

    engine, _ = history
    p = parse_period("2026-10", _tz(), AS_OF)
    whole_, *slices = compute_slices(engine.store, DEFINITIONS, p, as_of=AS_OF, dims=("team", "severity", "team"),
                                     min_n=3)
    assert whole_.total == whole(engine).total and whole_.groups == {}
    for sl, by in zip(slices, ("team", "severity", "team"), strict=True):
        alone = whole(engine, by=by)
        assert (sl.by, sl.total, sl.groups) == (by, alone.total, alone.groups)


def test_the_progress_callback_hears_every_step_in_order_and_the_end(history):
    from qflow_assess._report import STEPS, build_report

    seen = []
    for workers in (1, 2):
        seen.clear()
        build_report(history[0].store, history[0].ruleset, "2026-10", as_of=AS_OF, now=AS_OF, workers=workers,
                     progress=lambda what, done, total: seen.append((what, done, total)))
        assert seen == [*((s, i, len(STEPS)) for i, s in enumerate(STEPS)), ("done", len(STEPS), len(STEPS))]
