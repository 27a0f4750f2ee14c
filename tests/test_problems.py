"""Recurrence and problems: a problem opens when N incidents with one fingerprint
arrive within a window; known errors are suggested for new incidents; risk points."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from qflow import Cause, Engine, Incident, InputError, RiskPoint, Suggestion, WhyStep
from qflow import events as ev
from tests.conftest import BASE

PROBLEMS = BASE + """\
loop:
  problems: {threshold: 10, window: 3h, fingerprint: [category, place]}
"""


@pytest.fixture
def engine(pm, clock):
    ruleset = qflow.load_ruleset_text(PROBLEMS, file="p.yaml", plugins=pm)
    return Engine(ruleset, plugins=pm, clock=clock)


def report(engine, place="大堂", category="service_delay"):
    return engine.report(Incident(description="前台排队超过30分钟", category=category, place=place)).id


def test_ten_in_three_hours_at_one_place_open_a_problem(engine, clock):
    ids = []
    for _ in range(9):
        ids.append(report(engine))
        report(engine, place="餐厅")  # another place: another fingerprint
        clock.advance(timedelta(minutes=15))
    engine.tick()
    assert engine.problems() == []
    checked = [e for e in engine.events(ids[-1]) if e.type == ev.RECURRENCE_CHECKED][0]
    assert dict(checked.data) == {"fingerprint": {"category": "service_delay", "place": "大堂"}, "count": 9,
                                  "window": "3h", "problem": None, "opened": False}
    ids.append(report(engine))
    engine.tick()
    [problem] = engine.problems()
    assert problem.id == "PRB-1" and problem.incidents == tuple(ids)
    assert dict(problem.fingerprint) == {"category": "service_delay", "place": "大堂"}
    assert problem.reason == "10 incidents with category service_delay, place 大堂 within 3h"
    assert engine.get(ids[-1]).problem == "PRB-1"
    later = report(engine)  # joins the open problem
    engine.tick()
    assert engine.problems()[0].incidents == (*ids, later)
    assert engine.get(later).problem == "PRB-1"
    engine.tick()  # each incident is checked once
    assert sum(e.type == ev.RECURRENCE_CHECKED for e in engine.events(later)) == 1


def test_incidents_without_a_place_are_not_ten_at_the_same_place(engine, clock):
    # No place (none, '' or blank) is no place they share: each is of no known kind,
    # counted alone, and no problem opens for "place None".
    ids = [report(engine, place=place) for place in [None] * 10 + ["", "  "]]
    engine.tick()
    assert engine.problems() == []
    for iid in (ids[-3], ids[-2], ids[-1]):
        checked = [e for e in engine.events(iid) if e.type == ev.RECURRENCE_CHECKED][0]
        assert dict(checked.data) == {"fingerprint": {"category": "service_delay", "place": None}, "count": 1,
                                      "window": "3h", "problem": None, "opened": False}


def test_outside_the_window_nothing_opens(engine, clock):
    for _ in range(10):
        report(engine)
        clock.advance(timedelta(minutes=25))  # 10 over 3h45m: never 10 within 3h
        engine.tick()
    assert engine.problems() == []


def test_known_errors_are_archived_and_suggested_when_a_new_incident_arrives(pm, clock):
    engine = Engine(qflow.load_ruleset_text(BASE, file="b.yaml", plugins=pm), plugins=pm, clock=clock)
    first = engine.report(Incident(description="1203 空调不制冷", category="equipment", place="1203", asset="AC-1203")).id
    engine.confirm(first)
    with pytest.raises(InputError) as info:
        engine.archive_known_error(first, workaround="reset")
    assert str(info.value) == "cannot archive a known error from INC-1: it has no confirmed cause; confirm one first"
    engine.record_cause(first, Cause("C-1", "滤网堵塞", method="five_why", code="ac-filter", confirmed=True,
                                     whys=[WhyStep("为什么不制冷", "风量小"), WhyStep("为什么风量小", "滤网堵塞", root=True)]))
    ke = engine.archive_known_error(first, workaround="清洗滤网, 30分钟内恢复", keywords=["空调", "不制冷"])
    assert (ke.id, ke.summary, ke.cause_code, ke.incidents) == ("KE-1", "滤网堵塞", "ac-filter", ("INC-1",))

    second = engine.report(Incident(description="空调不制冷, 很热", category="equipment", place="1508")).id
    assert engine.suggest_known_errors(second) == [
        Suggestion("KE-1", 0.6, "same category 'equipment'; mentions '空调', '不制冷'", "清洗滤网, 30分钟内恢复",
                   "plugin:loop")]
    # Searched as it arrived, in the report's own transaction:
    recorded = [e for e in engine.events(second) if e.type == ev.KNOWN_ERRORS_SUGGESTED]
    assert [(e.seq, e.data["suggestions"][0]["known_error"]) for e in recorded] == [(3, "KE-1")]
    engine.confirm(second)  # nothing new in the archive: not suggested twice
    assert sum(e.type == ev.KNOWN_ERRORS_SUGGESTED for e in engine.events(second)) == 1
    other = engine.report(Incident(description="地毯有污渍", category="hygiene")).id
    assert engine.suggest_known_errors(other) == []


class ExactAsset:
    """A site's own matcher: the same asset is a certain match."""

    @qflow.hookimpl
    def qflow_suggest_known_errors(self, incident, candidates):
        return [Suggestion(k.id, 1.0, f"asset {k.asset}", k.workaround, "site") for k in candidates
                if k.asset and k.asset == incident.asset]


def test_a_site_plugs_in_its_own_matcher(clock):
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(ExactAsset(), "site")])
    engine = Engine(qflow.load_ruleset_text(BASE, file="b.yaml", plugins=pm), plugins=pm, clock=clock)
    iid = engine.report(Incident(description="x", category="equipment", asset="LIFT-2")).id
    engine.confirm(iid)
    engine.record_cause(iid, Cause("C-1", "门机皮带老化", confirmed=True, code="lift-belt"))
    engine.archive_known_error(iid, workaround="换皮带")
    new = engine.report(Incident(description="电梯门关不上", category="equipment", asset="LIFT-2")).id
    assert engine.suggest_known_errors(new) == [Suggestion("KE-1", 1.0, "asset LIFT-2", "换皮带", "site")]


def test_risk_points_are_what_is_rising(pm, clock):
    engine = Engine(qflow.load_ruleset_text(BASE, file="b.yaml", plugins=pm), plugins=pm, clock=clock)
    report(engine, place="餐厅")
    report(engine, place="餐厅")
    report(engine, place="大堂")
    clock.advance(timedelta(days=30))
    for _ in range(3):
        report(engine, place="大堂")
    report(engine, place="餐厅")
    clock.advance(timedelta(hours=1))
    assert engine.risk_points(window=timedelta(days=30)) == [
        RiskPoint("place", "大堂", 3, 1), RiskPoint("category", "service_delay", 4, 3)]
    assert engine.risk_points(window=timedelta(days=30), min_count=4) == [RiskPoint("category", "service_delay", 4, 3)]
