"""A month of a Shanghai desk, every figure of the report worked out by hand from
docs/kpis.md, and the edges a real month has that tests/test_kpis.py (a London desk)
does not: a report at local midnight on the 1st (October's in UTC), an incident
rejected by mistake and reopened, a survey on a rejected report, a second report
attached to an open incident, a month resolved in the next one, and an
acknowledgement on office hours for a severity that commits no acknowledgement time.

Office: Monday to Friday 09:00-12:00 and 13:00-18:00 Shanghai time (UTC+8, no DST).
1 November 2026 is a Sunday."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

import qflow
from qflow import Engine, FakeClock, Incident, MemoryStore
from qflow_assess import DEFINITIONS, settings
from qflow_assess._compute import compute
from qflow_assess._facts import facts_row
from qflow_assess._periods import parse_period

CST = timezone(timedelta(hours=8))
SHANGHAI = ZoneInfo("Asia/Shanghai")

RULES = """\
qflow: 1
name: kpi-audit
description: KPI audit desk
timezone: Asia/Shanghai
teams:
  desk: {name: Desk}
  rooms: {name: Rooms}
calendars:
  office:
    hours: {mon-fri: ["09:00-12:00", "13:00-18:00"]}
  always: {hours: 24x7}
severities:
  high: {respond: 1h, resolve: 8h, calendar: always}
  normal: {acknowledge: 1h, respond: 4h, resolve: 16h, calendar: office}
intake: {dedup_window: 2h}
classify:
  - id: urgent
    when: {tags: {contains: urgent}}
    set: {severity: high}
  - id: default
    set: {severity: normal}
route:
  - id: rooms
    when: {category: room}
    assign: {team: rooms, owner: Lina}
  - id: default
    assign: {team: desk, owner: Chen}
loop:
  guards: {cause_before_acting: "off", actions_done_before_verifying: false, verification_before_closing: false}
assessment:
  min_n: 3
"""


def t(month: int, day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=CST)


AS_OF = t(12, 5, 12)


def _report(category: str, place: str, *tags: str, key: str | None = None):
    def run(e: Engine, ids: dict[str, str], label: str) -> None:
        ids[label] = e.report(Incident(description=f"{category} at {place}", category=category, place=place,
                                       channel="phone", tags=tags, dedup_key=key)).id
    return run


def _do(fn):
    return lambda e, ids, label: fn(e, ids[label])


def _close(e: Engine, iid: str) -> None:
    if e.get(iid).stage.value == "reopened":
        e.transition(iid, "confirmed")
    else:
        e.confirm(iid, actor="supervisor")
    e.transition(iid, "acting")
    e.transition(iid, "verifying")
    e.close(iid, actor="supervisor")


def _answer(e: Engine, iid: str) -> None:
    e.respond(iid, "we are on it", actor="desk")


def _status(status: str):
    return _do(lambda e, i: e.set_status(i, status, actor="desk"))


def _survey(**kw):
    return _do(lambda e, i: e.record_survey(i, **kw))


HISTORY = [
    # A1: Saturday 31 October 23:50: October's; answered and resolved on Monday 2 November.
    (t(10, 31, 23, 50), "A1", _report("billing", "desk")),
    (t(11, 2, 9, 30), "A1", _do(_answer)),
    (t(11, 2, 11), "A1", _do(_close)),
    # A2: 00:10 on Sunday 1 November: November's here, October's in UTC (16:10Z on 31 October).
    (t(11, 1, 0, 10), "A2", _report("noise", "lobby")),
    (t(11, 2, 9, 20), "A2", _do(_answer)),
    (t(11, 2, 10), "A2", _do(_close)),
    # A3: acknowledged, answered, waiting on the guest from Monday 11:30 to Tuesday 14:00.
    (t(11, 2, 10), "A3", _report("room", "1203")),
    (t(11, 2, 10, 30), "A3", _do(lambda e, i: e.acknowledge(i, actor="desk"))),
    (t(11, 2, 11), "A3", _do(_answer)),
    (t(11, 2, 11, 30), "A3", _status("waiting_customer")),
    (t(11, 3, 14), "A3", _status("working")),
    (t(11, 3, 15), "A3", _do(_close)),
    (t(11, 3, 16), "A3", _survey(score=5, nps=10)),
    # A4: urgent (24x7), closed, reopened, closed again.
    (t(11, 2, 17), "A4", _report("noise", "lobby", "urgent")),
    (t(11, 2, 17, 30), "A4", _do(_answer)),
    (t(11, 2, 19), "A4", _do(_close)),
    (t(11, 3, 9), "A4", _do(lambda e, i: e.reopen(i, "noisy again"))),
    (t(11, 3, 12), "A4", _do(_close)),
    (t(11, 3, 13), "A4", _survey(score=2, nps=3)),
    # A5: a second report of the same thing 40 minutes later attaches to it.
    (t(11, 3, 9), "A5", _report("room", "1501", key="k5")),
    (t(11, 3, 9, 40), "A5b", _report("room", "1501", key="k5")),
    (t(11, 3, 10), "A5", _do(_answer)),
    (t(11, 3, 12), "A5", _do(_close)),
    (t(11, 3, 13), "A5", _survey(score=4, nps=8)),
    # A6: rejected (the charge was right); the guest answers the survey anyway.
    (t(11, 4, 16), "A6", _report("billing", "desk")),
    (t(11, 4, 16, 30), "A6", _do(lambda e, i: e.reject(i, "the charge was right"))),
    (t(11, 4, 17), "A6", _survey(score=1, nps=0)),
    # A7: answered late (4.5 office hours on 4h), reassigned, resolved within 16h.
    (t(11, 5, 11), "A7", _report("billing", "desk")),
    (t(11, 5, 16, 30), "A7", _do(_answer)),
    (t(11, 5, 16, 40), "A7", _do(lambda e, i: e.reassign(i, owner="Wang", reason="manager"))),
    (t(11, 6, 11), "A7", _do(_close)),
    # A8: reported on 30 November, resolved on 1 December.
    (t(11, 30, 17), "A8", _report("room", "1203")),
    (t(11, 30, 17, 30), "A8", _do(_answer)),
    (t(12, 1, 10), "A8", _do(_close)),
    # A9: never answered: open past both due times.
    (t(11, 6, 9), "A9", _report("noise", "bar")),
    # A10: urgent, waiting on the guest for an hour; rated 8 on a 10-point scale.
    (t(11, 9, 9), "A10", _report("room", "1501", "urgent")),
    (t(11, 9, 9, 10), "A10", _do(_answer)),
    (t(11, 9, 9, 30), "A10", _status("waiting_customer")),
    (t(11, 9, 10, 30), "A10", _status("working")),
    (t(11, 9, 11), "A10", _do(_close)),
    (t(11, 9, 12), "A10", _survey(score=8, scale=10)),
    # A11: closed across the lunch break; a self-rated survey.
    (t(11, 10, 10), "A11", _report("billing", "bar")),
    (t(11, 10, 10, 15), "A11", _do(_answer)),
    (t(11, 10, 12, 30), "A11", _do(_close)),
    (t(11, 10, 13), "A11", _survey(score=5, self_rated=True, actor="desk")),
    # A12: rejected by mistake, reopened half an hour later, answered and resolved.
    (t(11, 11, 9), "A12", _report("noise", "bar")),
    (t(11, 11, 9, 30), "A12", _do(lambda e, i: e.reject(i, "not ours"))),
    (t(11, 11, 10), "A12", _do(lambda e, i: e.reopen(i, "it was ours after all"))),
    (t(11, 11, 10, 30), "A12", _do(_answer)),
    (t(11, 11, 11), "A12", _do(_close)),
]


def build(history=HISTORY, rules: str = RULES, store=None):
    pm = qflow.make_plugin_manager()
    rs = qflow.load_ruleset_text(rules, file="audit.yaml", plugins=pm)
    steps = sorted(history, key=lambda s: s[0])
    clock = FakeClock(steps[0][0])
    engine = Engine(rs, plugins=pm, clock=clock, store=store if store is not None else MemoryStore())
    ids: dict[str, str] = {}
    for when, label, step in steps:
        clock.set(when)
        step(engine, ids, label)
    return engine, ids


@pytest.fixture(scope="module")
def history():
    return build()


def figures(engine, period="2026-11", by=None, as_of=AS_OF):
    return compute(engine.store, DEFINITIONS, parse_period(period, SHANGHAI, as_of), as_of=as_of, by=by, min_n=3)


def _row(engine, iid):
    return facts_row(engine.get(iid), engine.events(iid), engine.ruleset, settings(engine.ruleset))


def test_a_report_at_local_midnight_on_the_first_is_the_new_months(history):
    engine, ids = history
    assert engine.get(ids["A2"]).incident.reported_at.astimezone(timezone.utc).strftime("%Y-%m") == "2026-10"
    nov, octo = figures(engine).whole(), figures(engine, "2026-10").whole()
    # November: A2-A12 less the rejected A6 (A5b is A5); October: A1 alone
    assert (nov["resolution_rate"].denominator, octo["resolution_rate"].denominator) == (10, 1)


def test_a_rejection_undone_by_a_reopening_does_not_end_the_clocks(history):
    engine, ids = history
    row = _row(engine, ids["A12"])
    # Wed 11 Nov 09:00, answered 10:30, closed 11:00, all in office hours: the half hour it
    # stood rejected is time the guest waited. Not a reopening of something resolved.
    assert (row["rejected"], row["respond_s"], row["respond_bs"], row["respond_met"]) == (0, 5400, 5400, 1)
    assert (row["resolved_at"], row["resolve_s"], row["resolve_bs"], row["resolve_met"]) == (
        t(11, 11, 11).timestamp(), 7200, 7200, 1)
    assert (row["reopens"], row["reopened"], row["fcr"]) == (0, 0, 1)


def test_a_rejection_that_stands_still_leaves_the_incident_out(history):
    engine, ids = history
    row = _row(engine, ids["A6"])
    assert (row["rejected"], row["resolved_at"], row["respond_s"], row["respond_met"], row["fcr"]) == (
        1, None, None, None, None)


def test_durations(history):
    engine, _ = history
    w = figures(engine).whole()
    # First answers of November's cohort, business (office for normal, 24x7 for high) / calendar:
    #   A2 Sun 00:10 -> Mon 09:20   1200 / 119400      A3 10:00 -> 11:00    3600 / 3600
    #   A4 17:00 -> 17:30 (24x7)    1800 / 1800        A5 09:00 -> 10:00    3600 / 3600
    #   A7 11:00 -> 16:30           1h + 3.5h = 16200 / 19800
    #   A8 17:00 -> 17:30           1800 / 1800        A10 09:00 -> 09:10   600 / 600
    #   A11 10:00 -> 10:15          900 / 900          A12 09:00 -> 10:30   5400 / 5400
    # business 600 900 1200 1800 1800 3600 3600 5400 16200: sum 35100, median 5th, P90 9th (ceil 8.1)
    # calendar 600 900 1800 1800 3600 3600 5400 19800 119400: sum 156900
    frt = w["first_response_time"]
    assert (frt.n, frt.value) == (9, 1800)
    assert frt.extra == {"mean": 3900, "median": 1800, "p90": 16200,
                         "mean_calendar": 156900 / 9, "median_calendar": 3600, "p90_calendar": 119400}
    # First closes in November (A8's is in December; A1 is October's report):
    #   A1 Sat 23:50 -> Mon 11:00   7200 / 126600      A2 Sun 00:10 -> Mon 10:00  3600 / 121800
    #   A3 Mon 10:00 -> Tue 15:00, waiting 11:30 -> 14:00 next day: 1.5h + 1h = 9000 / 104400
    #   A4 17:00 -> 19:00 (the first close) 7200 / 7200   A5 09:00 -> 12:00  10800 / 10800
    #   A7 Thu 11:00 -> Fri 11:00   1h + 5h + 2h = 28800 / 86400
    #   A10 09:00 -> 11:00 less the hour waiting  3600 / 7200
    #   A11 10:00 -> 12:30, lunch from 12:00  7200 / 9000    A12 09:00 -> 11:00  7200 / 7200
    # business 3600 3600 7200 7200 7200 7200 9000 10800 28800: sum 84600
    # calendar 7200 7200 7200 9000 10800 86400 104400 121800 126600: sum 480600
    ttr = w["time_to_resolve"]
    assert (ttr.n, ttr.value) == (9, 7200)
    assert ttr.extra == {"mean": 9400, "median": 7200, "p90": 28800,
                         "mean_calendar": 53400, "median_calendar": 10800, "p90_calendar": 126600}
    ack = w["time_to_acknowledge"]
    assert (ack.n, ack.value, ack.extra["mean_calendar"]) == (1, 1800, 1800)


def test_rates(history):
    engine, _ = history
    w = figures(engine).whole()

    def nd(kpi):
        return (w[kpi].numerator, w[kpi].denominator)

    # resolved by 5 Dec: all but A9 (A8 on 1 Dec, A12 after its wrong rejection)
    assert nd("resolution_rate") == (9, 10)
    assert nd("resolution_within_target") == (9, 10)
    # respond: A7 late (4.5h on 4h), A9 open past its due time (Fri 6 Nov 13:00 + 1h = 14:00)
    assert nd("on_time_respond") == (8, 10) and w["on_time_respond"].extra["open_breached"] == 1
    # resolve: every close within its time; A9 open past its due time (Mon 9 Nov 18:00)
    assert nd("on_time_resolve") == (9, 10) and w["on_time_resolve"].extra["open_breached"] == 1
    # resolved 9; not first-contact: A4 (reopened), A5 (two reports), A7 (reassigned)
    assert nd("first_contact_resolution") == (6, 9)
    assert nd("reopen_rate") == (1, 9)  # A4 alone: A12 came back from a rejection, not a resolution
    # fingerprints: noise|lobby x2, room|1203 x2, room|1501 x2, noise|bar x2, billing|desk, billing|bar
    assert nd("recurrence_rate") == (4, 10)
    assert w["backlog"].value == 1 and w["backlog"].extra["age 7-30d"] == 1  # A9, 29 days


def test_csat_and_nps_leave_the_rejected_report_out(history):
    engine, _ = history
    w = figures(engine).whole()
    # customer surveys of November's non-rejected incidents: A3 5, A4 2, A5 4, A10 8 of 10 =
    # 1 + 7 x 4/9 = 4.11 of 5; A6 (rejected) 1 and A11's self-rated 5 are left out
    csat = w["csat"]
    assert (csat.numerator, csat.denominator, csat.value) == (3, 4, 0.75)
    assert csat.extra == {"mean_score": pytest.approx((5 + 2 + 4 + 1 + 7 * 4 / 9) / 4, rel=1e-12), "responses": 4,
                          "response_rate": 4 / 9}
    # NPS: A3 10 promoter, A4 3 detractor, A5 8 passive -> 100 * (1 - 1) / 3
    nps = w["nps"]
    assert (nps.numerator, nps.denominator, nps.value) == (0, 3, 0)
    assert nps.extra == {"promoters": 1, "detractors": 1}


def test_the_terminal_report_prints_the_hand_computed_figures(history):
    import io

    from qflow_assess._render import render_text
    from qflow_assess._report import build_report

    engine, _ = history
    rep = build_report(engine.store, engine.ruleset, "2026-11", as_of=AS_OF, now=AS_OF, dimensions=())
    out = io.StringIO()
    render_text(rep, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == ("KPI audit desk — Period 2026-11 (as of 2026-12-05T12:00+08:00, "
                        "time zone Asia/Shanghai)")
    table = {line.split("│")[0].strip(): [c.strip() for c in line.split("│")[1:]] for line in lines if "│" in line}
    # value, n, previous (October: A1 answered in 30 office minutes, resolved in November), Δ
    assert table["First response time"][:4] == ["30m", "9", "30m", "+0s"]
    assert table["Time to resolve"][:4] == ["2h", "9", "—", "—"]
    assert table["Resolution rate"][:4] == ["90.0%", "10", "100.0%", "-10.0 pt"]
    assert table["On-time rate: respond"][:2] == ["80.0%", "10"]
    assert table["On-time rate: resolve"][:2] == ["90.0%", "10"]
    assert table["First-contact resolution"][:2] == ["66.7%", "9"]
    assert table["Reopen rate"][:2] == ["11.1%", "9"]
    assert table["Recurrence rate"][:2] == ["40.0%", "10"]
    assert table["Customer satisfaction (CSAT)"][:2] == ["75.0%", "4"]
    assert table["Net promoter score"][:2] == ["+0", "3"]
    assert lines[-1] == "Problem list: resolved 9, in progress 0, pending 1"


def test_time_to_acknowledge_without_a_committed_time_is_still_business_time():
    # The same desk with no acknowledgement time for normal incidents: a report on Friday
    # 17:00 acknowledged on Monday 09:30 waited 1h + 30m of office time (64.5 calendar hours).
    engine, ids = build([
        (t(11, 6, 17), "X", _report("billing", "desk")),
        (t(11, 9, 9, 30), "X", _do(lambda e, i: e.acknowledge(i, actor="desk"))),
        (t(11, 9, 10), "X", _do(_answer)),
    ], rules=RULES.replace("normal: {acknowledge: 1h, respond: 4h", "normal: {respond: 4h"))
    row = _row(engine, ids["X"])
    assert (row["ack_s"], row["ack_bs"]) == (232200, 5400)
    assert (row["respond_s"], row["respond_bs"]) == (234000, 7200)


def test_calendar_time_across_the_start_of_dst_is_real_time_whatever_the_clock_zone():
    # Europe/Berlin springs forward at 02:00 on Sunday 29 March 2026. Times read off a clock
    # in that zone share one tzinfo, and Python then subtracts them as wall-clock times: the
    # figures must count real seconds, as they do on a store that keeps UTC offsets.
    berlin = ZoneInfo("Europe/Berlin")

    def b(month: int, day: int, hour: int, minute: int = 0) -> datetime:
        return datetime(2026, month, day, hour, minute, tzinfo=berlin)

    engine, ids = build([
        # urgent (24x7): 23:30 CET -> 03:30 CEST is 3h (the wall clock says 4h); closed at 04:00
        (b(3, 28, 23, 30), "D1", _report("noise", "lobby", "urgent")),
        (b(3, 29, 3, 30), "D1", _do(_answer)),
        (b(3, 29, 4), "D1", _do(_close)),
        # normal (office): Friday 17:30 CET -> Monday 09:30 CEST is 63h (the wall clock says 64h)
        (b(3, 27, 17, 30), "D2", _report("room", "1203")),
        (b(3, 30, 9, 30), "D2", _do(_answer)),
    ], rules=RULES.replace("Asia/Shanghai", "Europe/Berlin"))
    d1, d2 = _row(engine, ids["D1"]), _row(engine, ids["D2"])
    assert (d1["respond_s"], d1["respond_bs"], d1["resolve_s"], d1["resolve_bs"]) == (10800, 10800, 12600, 12600)
    assert (d2["respond_s"], d2["respond_bs"]) == (226800, 3600)  # Fri 17:30-18:00, Mon 09:00-09:30


def test_an_answer_before_a_report_that_arrived_ahead_of_the_clock_waited_nothing():
    # The sender's clock runs 3 minutes ahead (within intake.clock_skew): the report says
    # 10:03, qflow's clock reads 10:00, and the desk answers at 10:01 by qflow's clock.
    def ahead(e: Engine, ids: dict[str, str], label: str) -> None:
        ids[label] = e.report(Incident(description="noise at lobby", category="noise", place="lobby",
                                       channel="phone", reported_at=t(11, 2, 10, 3))).id
    engine, ids = build([(t(11, 2, 10), "X", ahead), (t(11, 2, 10, 1), "X", _do(_answer))])
    row = _row(engine, ids["X"])
    assert (row["respond_s"], row["respond_bs"]) == (0.0, 0.0)


def test_a_count_is_exact_and_never_marked_low_confidence(history):
    engine, _ = history
    sl = figures(engine, by="team")
    backlog = sl.whole()["backlog"]
    # A9 alone is open: one incident is an exact count, not a small sample (min_n 3)
    assert (backlog.value, backlog.n, backlog.low_confidence) == (1, 1, False)
    assert {team: (g["backlog"].value, g["backlog"].low_confidence) for team, g in sl.groups.items()} == {
        "desk": (1, False), "rooms": (0, False)}
    # a duration over one acknowledgement is a small sample
    ack = sl.whole()["time_to_acknowledge"]
    assert (ack.n, ack.low_confidence) == (1, True)


def test_a_later_survey_of_another_kind_keeps_the_earlier_answer():
    engine, ids = build([
        (t(11, 2, 10), "S1", _report("room", "1203")),
        (t(11, 2, 11), "S1", _do(_close)),
        (t(11, 2, 12), "S1", _survey(score=2)),  # CSAT only ...
        (t(11, 3, 9), "S1", _survey(nps=9)),  # ... then NPS only: the score 2 still counts
        (t(11, 2, 10, 5), "S2", _report("room", "1501")),
        (t(11, 2, 11, 5), "S2", _do(_close)),
        (t(11, 2, 12, 5), "S2", _survey(score=5, nps=2)),
        (t(11, 3, 9, 5), "S2", _survey(score=3)),  # a later score replaces the 5; the NPS 2 stays
        (t(11, 3, 10), "S2", _survey(nps=10, self_rated=True, actor="desk")),  # staff's: left out
    ])
    got = {k: {c: _row(engine, ids[k])[c] for c in ("surveyed", "csat", "csat_satisfied", "nps", "promoter",
                                                       "detractor")} for k in ("S1", "S2")}
    assert got == {"S1": {"surveyed": 1, "csat": 2.0, "csat_satisfied": 0, "nps": 9, "promoter": 1, "detractor": 0},
                   "S2": {"surveyed": 1, "csat": 3.0, "csat_satisfied": 0, "nps": 2, "promoter": 0, "detractor": 1}}
    w = figures(engine).whole()
    assert (w["csat"].numerator, w["csat"].denominator, w["csat"].extra["mean_score"]) == (0, 2, 2.5)
    assert (w["nps"].numerator, w["nps"].denominator, w["nps"].value) == (0, 2, 0)


def test_a_score_on_another_scale_is_mapped_lowest_to_lowest_and_highest_to_highest():
    # 1..10 onto 1..5: 1 + (s - 1) * 4 / 9. Satisfied (4 of 5) is 7.75 of 10 and up.
    scores = [(1, 10), (7, 10), (7.75, 10), (8, 10), (10, 10), (2, 3), (5, 5)]
    engine, ids = build([step for i, (score, scale) in enumerate(scores) for step in (
        (t(11, 2, 10, i), f"R{i}", _report("room", str(i))),
        (t(11, 2, 11, i), f"R{i}", _survey(score=score, scale=scale)))])
    got = [(_row(engine, ids[f"R{i}"])["csat"], _row(engine, ids[f"R{i}"])["csat_satisfied"])
           for i in range(len(scores))]
    assert got == [(1.0, 0), (1 + 6 * 4 / 9, 0), (4.0, 1), (1 + 7 * 4 / 9, 1), (5.0, 1), (3.0, 0), (5.0, 1)]


def test_every_figure_is_as_of_the_report_time(history):
    # November as it stood on Thursday 5 November at 12:00. Reported by then: A2 A3 A4 A5 A7
    # (A6 rejected; A8-A12 come later). A7 (11:00) is the only one not closed by then.
    engine, _ = history
    w = figures(engine, as_of=t(11, 5, 12)).whole()

    def nd(kpi):
        return (w[kpi].numerator, w[kpi].denominator)

    assert nd("resolution_rate") == (4, 5) and nd("resolution_within_target") == (4, 5)
    # A7's answer (16:30) and close (Friday) come later, and its due times (16:00, Monday 11:00) too
    assert nd("on_time_respond") == (4, 4) and w["on_time_respond"].extra["open_breached"] == 0
    assert nd("on_time_resolve") == (4, 4) and w["on_time_resolve"].extra["open_breached"] == 0
    # answered by then: A2 1200 / 119400, A3 3600 / 3600, A4 1800 / 1800, A5 3600 / 3600
    frt = w["first_response_time"]
    assert (frt.n, frt.value) == (4, 1800)
    assert frt.extra == {"mean": 2550, "median": 1800, "p90": 3600,
                         "mean_calendar": 32100, "median_calendar": 3600, "p90_calendar": 119400}
    assert (w["time_to_acknowledge"].n, w["time_to_acknowledge"].value) == (1, 1800)  # A3
    # first closes in November by then: A1 7200 / 126600, A2 3600 / 121800, A3 9000 / 104400,
    # A4 7200 / 7200, A5 10800 / 10800
    ttr = w["time_to_resolve"]
    assert (ttr.n, ttr.value) == (5, 7200)
    assert ttr.extra == {"mean": 7560, "median": 7200, "p90": 10800,
                         "mean_calendar": 74160, "median_calendar": 104400, "p90_calendar": 126600}
    # resolved by then A2 A3 A4 A5: A4 reopened (and closed again on the 3rd), A5 reported twice
    assert nd("first_contact_resolution") == (2, 4) and nd("reopen_rate") == (1, 4)
    assert nd("recurrence_rate") == (1, 5)  # A2 and A4 at the lobby
    # surveys: A3 5, A4 2, A5 4; all three of the four resolved were surveyed
    csat = w["csat"]
    assert (csat.numerator, csat.denominator) == (2, 3)
    assert csat.extra == {"mean_score": 11 / 3, "responses": 3, "response_rate": 3 / 4}
    assert (w["nps"].numerator, w["nps"].denominator, w["nps"].extra) == (0, 3, {"promoters": 1, "detractors": 1})
    # open then: A7, an hour old (A9, open now, was reported on the 6th)
    assert (w["backlog"].value, w["backlog"].extra) == (1, {"age 0-1d": 1, "age 1-3d": 0, "age 3-7d": 0,
                                                            "age 7-30d": 0, "age >30d": 0})


def test_a_past_report_says_in_every_format_what_it_counts_as_it_stands(history, tmp_path):
    import io
    import json

    import openpyxl

    from qflow_assess._render import render_html, render_text, render_xlsx, rows
    from qflow_assess._report import build_report

    engine, ids = history
    # November as of 5 November 12:00, made on 5 December: the figures of
    # test_every_figure_is_as_of_the_report_time, and what the facts cannot date is said
    rep = build_report(engine.store, engine.ruleset, "2026-11", as_of=t(11, 5, 12), now=AS_OF, dimensions=("team",))
    out = io.StringIO()
    render_text(rep, out)
    lines = out.getvalue().splitlines()
    assert lines[0] == "KPI audit desk — Period 2026-11 (as of 2026-11-05T12:00+08:00, time zone Asia/Shanghai)"
    table = {line.split("│")[0].strip(): [c.strip() for c in line.split("│")[1:]] for line in lines if "│" in line}
    # October as of then: A1, answered in 30 office minutes and resolved on 2 November
    assert table["First response time"][:4] == ["30m", "4", "30m", "+0s"]
    assert table["Resolution rate"][:4] == ["80.0%", "5", "100.0%", "-20.0 pt"]
    assert table["First-contact resolution †"][:2] == ["50.0%", "4"]
    assert table["Reopen rate †"][:2] == ["25.0%", "4"]
    assert table["Customer satisfaction (CSAT) †"][:2] == ["66.7%", "3"]
    assert table["Net promoter score †"][:2] == ["+0", "3"]
    assert table["Backlog and ageing †"][:2] == ["1", "1"]
    assert lines[lines.index("* low confidence: n < 3") + 1:lines.index("* low confidence: n < 3") + 3] == [
        "† counted as the facts stood at 2026-12-05T12:00+08:00, not as of 2026-11-05T12:00+08:00: they keep no "
        "time of reopenings after a close; further answers, reports and hand-overs; surveys; verifications; "
        "actions planned, cancelled or rescheduled.",
        "Rejections, and the team, owner, category and severity an incident is grouped by, are as they stood at "
        "2026-12-05T12:00+08:00 in every figure."]
    # the problem list as it stood: A2-A5 closed, A7 reported an hour before
    assert lines[-1] == "Problem list: resolved 4, open 1"
    assert (rep.problems[0].incident_id, rep.problems[0].status) == (ids["A7"], "pending")
    assert sorted((p.incident_id, p.status) for p in rep.problems[1:]) == sorted(
        (ids[k], "resolved") for k in ("A2", "A3", "A4", "A5"))
    records = {(r["view"], r["group"], r["kpi"]): r for r in json.loads(json.dumps(list(rows(rep))))}
    assert {k: records[("period", "", k)]["not_as_of"] for k in ("resolution_rate", "csat", "reopen_rate",
                                                                 "first_contact_resolution", "action_on_time",
                                                                 "verification_effectiveness", "backlog")} == {
        "resolution_rate": "rejections", "csat": "rejections, surveys", "reopen_rate": "rejections, reopenings",
        "first_contact_resolution": "rejections, reopenings, contacts", "action_on_time": "actions",
        "verification_effectiveness": "verifications", "backlog": "rejections, reopenings"}
    assert records[("by team", "desk", "csat")]["not_as_of"] == "rejections, surveys"
    html = render_html(rep)
    assert "<tr><td>Customer satisfaction (CSAT) †</td><td>66.7%</td>" in html
    assert "<figcaption>Causes by 6M branch (Pareto) †</figcaption>" in html
    assert ('<p class="note">† counted as the facts stood at 2026-12-05T12:00+08:00, not as of '
            "2026-11-05T12:00+08:00: they keep no time of reopenings after a close; further answers, reports and "
            "hand-overs; surveys; verifications; actions planned, cancelled or rescheduled; cause analyses.</p>") in html
    assert "resolved 4 · open 1" in html
    path = tmp_path / "r.xlsx"
    render_xlsx(rep, str(path))
    wb = openpyxl.load_workbook(path)
    about = [(r[0].value, r[1].value) for r in wb["Report"].iter_rows(min_row=2)]
    assert about[-2:] == [("not as of", lines[lines.index("* low confidence: n < 3") + 1]),
                          ("not as of", lines[lines.index("* low confidence: n < 3") + 2])]
    figures = {r[0].value: r[9].value for r in wb["Figures"].iter_rows(min_row=2)}
    assert (figures["Resolution rate"], figures["Customer satisfaction (CSAT) †"], figures["Reopen rate †"]) == (
        None, "surveys", "reopenings after a close")
    # made when it is as of: nothing to say
    now = build_report(engine.store, engine.ruleset, "2026-11", as_of=AS_OF, now=AS_OF, dimensions=())
    assert {r["not_as_of"] for r in rows(now)} == {None}
    assert "†" not in render_html(now)


def test_a_reopening_the_facts_cannot_date_counts_as_it_stands():
    # The facts keep the first close and the last one, not when a reopening came. As of Monday
    # 2 November 12:00: R1 was closed (reopened on the 3rd), R2 was open again (reopened at 11:00,
    # closed again on the 3rd), R3 was open (first closed on the 3rd). R1 counts as open and
    # reopened, R2 as closed and reopened, as they stand: docs/kpis.md, and the report says so.
    def reopen(e, i):
        e.reopen(i, "again")

    engine, _ = build([
        (t(11, 2, 9), "R1", _report("room", "1")), (t(11, 2, 10), "R1", _do(_close)),
        (t(11, 3, 9), "R1", _do(reopen)),
        (t(11, 2, 9, 1), "R2", _report("room", "2")), (t(11, 2, 10, 1), "R2", _do(_close)),
        (t(11, 2, 11), "R2", _do(reopen)), (t(11, 3, 10), "R2", _do(_close)),
        (t(11, 2, 9, 2), "R3", _report("room", "3")), (t(11, 3, 10, 2), "R3", _do(_close)),
    ])
    w = figures(engine, as_of=t(11, 2, 12)).whole()
    assert (w["backlog"].value, w["backlog"].extra["age 0-1d"]) == (2, 2)  # R1 and R3
    assert (w["reopen_rate"].numerator, w["reopen_rate"].denominator) == (2, 2)  # R1 and R2 of R1 and R2
    assert (w["resolution_rate"].numerator, w["resolution_rate"].denominator) == (2, 3)  # first closes: exact
