"""Documents with versions; queries over the state rows; deadlines due; projections."""

from __future__ import annotations

from datetime import timedelta

import pytest

from qflow.errors import ConcurrencyError
from qflow.model import Stage
from qflow.store import StoreError, Filter, IncidentQuery, Measure, Projection, Write

from tests.store.builders import T0, follow, report_write, to_stage

H = timedelta(hours=1)


def test_documents_are_created_and_replaced_version_by_version(store):
    store.save_document("problem", "PRB-2", {"title": "夜间噪音", "incidents": ["INC-1"]}, version=1)
    store.save_document("problem", "PRB-1", {"title": "a"}, version=1)
    store.save_document("problem", "PRB-2", {"title": "夜间噪音", "incidents": ["INC-1", "INC-7"]}, version=2)
    assert store.document("problem", "PRB-2") == (2, {"title": "夜间噪音", "incidents": ["INC-1", "INC-7"]})
    assert [(i, v) for i, v, _ in store.documents("problem")] == [("PRB-1", 1), ("PRB-2", 2)]
    assert store.document("problem", "PRB-3") is None and store.documents("score") == []
    with pytest.raises(ConcurrencyError) as err:
        store.save_document("problem", "PRB-2", {"title": "lost update"}, version=2)
    assert str(err.value) == "problem PRB-2 is at version 2, not 1; reload it and try again"
    with pytest.raises(ConcurrencyError) as err:
        store.save_document("problem", "PRB-9", {}, version=2)
    assert str(err.value) == "problem PRB-9 is at version 0, not 1; reload it and try again"
    assert store.document("problem", "PRB-2")[0] == 2


@pytest.fixture
def site(store):
    """Five incidents: two teams, three severities, one closed, one confirmed."""
    store.write([
        report_write("INC-1", at=T0, team="front-office", severity="high"),
        report_write("INC-2", at=T0 + H, team="housekeeping", severity="normal", respond=4 * H),
        report_write("INC-3", at=T0 + 2 * H, team="front-office", severity="critical", respond=H / 4),
        report_write("INC-10", at=T0 + 3 * H, team="front-office", severity="high"),
        report_write("INC-9", at=T0 + 3 * H, team="engineering", severity="normal"),
    ])
    state = store.get("INC-2")
    more, closed = to_stage(state, Stage.REJECTED, at=T0 + 2 * H)
    store.append(more, closed)
    state = store.get("INC-10")
    more, confirmed = to_stage(state, Stage.CONFIRMED, at=T0 + 4 * H)
    store.append(more, confirmed)
    return store


def _ids(states):
    return [s.id for s in states]


def test_queries_filter_by_team_severity_stage_and_openness(site):
    assert _ids(site.query(IncidentQuery())) == ["INC-1", "INC-2", "INC-3", "INC-9", "INC-10"]
    assert _ids(site.query(IncidentQuery(team="front-office"))) == ["INC-1", "INC-3", "INC-10"]
    assert _ids(site.query(IncidentQuery(team="front-office", severity="high"))) == ["INC-1", "INC-10"]
    assert _ids(site.query(IncidentQuery(stages=(Stage.CONFIRMED, Stage.REJECTED)))) == ["INC-2", "INC-10"]
    assert _ids(site.query(IncidentQuery(open_only=True))) == ["INC-1", "INC-3", "INC-9", "INC-10"]
    assert _ids(site.query(IncidentQuery(open_only=True, limit=2))) == ["INC-1", "INC-3"]
    assert _ids(site.query(IncidentQuery(owner="王芳", place="15楼 1512房", category="complaint"))) == \
        ["INC-1", "INC-2", "INC-3", "INC-9", "INC-10"]
    assert site.query(IncidentQuery(team="nobody")) == []
    assert site.query(IncidentQuery(stages=())) == []


def test_queries_by_report_time_and_overdue(site):
    assert _ids(site.query(IncidentQuery(reported_from=T0 + H, reported_until=T0 + 3 * H))) == ["INC-2", "INC-3"]
    # respond deadlines: INC-1 at +1h, INC-3 at +2h15m, INC-9/10 at +4h; INC-2 rejected (+5h).
    at = T0 + 2 * H + timedelta(minutes=30)
    assert _ids(site.query(IncidentQuery(open_only=True, overdue_at=at))) == ["INC-1", "INC-3"]
    assert _ids(site.query(IncidentQuery(overdue_at=T0 + H))) == []


def test_a_deadline_met_even_late_is_not_overdue_nor_is_a_finished_incident(site):
    at = T0 + 2 * H + timedelta(minutes=30)
    # INC-1's respond was due at +1h: answered at +30m it was met, and +2h30m finds nothing else due.
    more, answered = follow(site.get("INC-1"), ("Responded", {"message": "on our way", "channel": "phone"}),
                            at=T0 + timedelta(minutes=30))
    site.append(more, answered)
    assert _ids(site.query(IncidentQuery(overdue_at=at))) == ["INC-3"]
    # Answered late, at +2h45m: overdue no more; its resolve deadline (+24h) is still ahead.
    more, answered = follow(site.get("INC-3"), ("Responded", {"message": "sorry", "channel": "phone"}),
                            at=T0 + 2 * H + timedelta(minutes=45))
    site.append(more, answered)
    assert _ids(site.query(IncidentQuery(overdue_at=T0 + 3 * H))) == []
    # A day on, every open incident is past its resolve deadline; the rejected INC-2 is not overdue.
    assert _ids(site.query(IncidentQuery(overdue_at=T0 + 30 * H))) == ["INC-1", "INC-3", "INC-9", "INC-10"]
    assert _ids(site.query(IncidentQuery(overdue_at=T0 + 30 * H, limit=2))) == ["INC-1", "INC-3"]
    assert site.count(IncidentQuery(overdue_at=T0 + 30 * H, limit=2)) == 4


def test_counts_agree_with_queries(site):
    for q in (IncidentQuery(), IncidentQuery(open_only=True), IncidentQuery(team="front-office", limit=1),
              IncidentQuery(open_only=True, overdue_at=T0 + 3 * H)):
        assert site.count(q) == len(site.query(q if q.limit is None else IncidentQuery(team=q.team)))


def test_deadlines_due_of_open_incidents(site):
    due = site.due(T0 + 2 * H + timedelta(minutes=15))
    assert [(d.incident_id, d.clock, d.at) for d in due] == [
        ("INC-1", "respond", T0 + H), ("INC-3", "respond", T0 + 2 * H + timedelta(minutes=15))]


def test_deadlines_met_are_not_due_as_they_are_not_overdue(site):
    until = T0 + 2 * H + timedelta(minutes=15)
    # INC-1 answered at +30m: its respond deadline (+1h) was met.
    more, answered = follow(site.get("INC-1"), ("Responded", {"message": "on our way", "channel": "phone"}),
                            at=T0 + timedelta(minutes=30))
    site.append(more, answered)
    assert [(d.incident_id, d.clock, d.at) for d in site.due(until)] == [
        ("INC-3", "respond", T0 + 2 * H + timedelta(minutes=15))]
    # Answered late, at +2h45m: due no more either (the breach stays on the timeline).
    more, answered = follow(site.get("INC-3"), ("Responded", {"message": "sorry", "channel": "phone"}),
                            at=T0 + 2 * H + timedelta(minutes=45))
    site.append(more, answered)
    assert site.due(until) == []
    # A day on: the resolve deadlines of the open incidents and the unanswered ones.
    at = T0 + 30 * H
    due = site.due(at)
    assert [(d.incident_id, d.clock, d.at) for d in due] == [
        ("INC-10", "respond", T0 + 4 * H), ("INC-9", "respond", T0 + 4 * H), ("INC-3", "resolve", T0 + 8 * H),
        ("INC-1", "resolve", T0 + 24 * H), ("INC-10", "resolve", T0 + 27 * H), ("INC-9", "resolve", T0 + 27 * H)]
    assert sorted({d.incident_id for d in due if d.at < at}) == sorted(
        _ids(site.query(IncidentQuery(overdue_at=at))))
    # Closed, an incident has nothing due.
    more, closed = to_stage(site.get("INC-3"), Stage.CLOSED, at=T0 + 3 * H)
    site.append(more, closed)
    assert [d.incident_id for d in site.due(at)] == ["INC-10", "INC-9", "INC-1", "INC-10", "INC-9"]


def test_a_rejection_undone_by_a_reopening_is_due_and_overdue_again_from_its_deadlines(site):
    # INC-2 (respond 4h from +1h) was rejected at +2h; reopened at +3h, the guest still waits
    # for the answer promised at +5h, as the SLA clocks read it (docs/sla.md).
    more, reopened = to_stage(site.get("INC-2"), Stage.REOPENED, at=T0 + 3 * H)
    site.append(more, reopened)
    assert [(d.incident_id, d.clock, d.at) for d in site.due(T0 + 5 * H)] == [
        ("INC-1", "respond", T0 + H), ("INC-3", "respond", T0 + 2 * H + timedelta(minutes=15)),
        ("INC-10", "respond", T0 + 4 * H), ("INC-9", "respond", T0 + 4 * H), ("INC-2", "respond", T0 + 5 * H)]
    assert _ids(site.query(IncidentQuery(overdue_at=T0 + 5 * H + timedelta(minutes=1)))) == [
        "INC-1", "INC-2", "INC-3", "INC-9", "INC-10"]
    assert _ids(site.query(IncidentQuery(overdue_at=T0 + 5 * H))) == ["INC-1", "INC-3", "INC-9", "INC-10"]


def test_projection_rows_replace_each_other_and_aggregate(store):
    p = Projection("response", (("team", "text"), ("minutes", "real")))
    store.declare([p])
    w1, w2 = report_write("INC-1"), report_write("INC-2")
    store.write([Write(w1.events, w1.state, (), (), {"response": {"team": "a", "minutes": 10.0}}),
                 Write(w2.events, w2.state, (), (), {"response": [{"team": "a", "minutes": 30.0},
                                                                  {"team": "b", "minutes": 5.0}]})])
    more, after = follow(w1.state, ("Acknowledged", {"note": ""}))
    store.write([Write(more, after, None, (), {"response": {"team": "b", "minutes": 7.0}})])
    got = store.aggregate(p, measures=[Measure("count"), Measure("sum", "minutes")], group_by=["team"])
    assert got == [("a", 1, 30.0), ("b", 2, 12.0)]
    got = store.aggregate(p, measures=[Measure("max", "minutes")], where=[Filter("team", "==", "b")])
    assert got == [(7.0,)]


def test_projection_rows_that_shrink_repeat_or_come_twice_in_a_batch_end_as_the_last_write_says(store):
    p = Projection("response", (("team", "text"), ("minutes", "real")))
    store.declare([p])
    w = report_write("INC-1")
    store.write([Write(w.events, w.state, (), (), {"response": [{"team": "a", "minutes": 1.0},
                                                              {"team": "b", "minutes": 2.0}]})])

    def rows():
        return store.aggregate(p, measures=[Measure("count"), Measure("sum", "minutes")], group_by=["team"])

    more, after = follow(w.state, ("Acknowledged", {"note": ""}))
    store.write([Write(more, after, None, (), {"response": [{"team": "a", "minutes": 1.0},
                                                           {"team": "b", "minutes": 2.0}]})])  # the same rows
    assert rows() == [("a", 1, 1.0), ("b", 1, 2.0)]
    again, later = follow(after, ("Acknowledged", {"note": ""}))
    store.write([Write(again, later, None, (), {"response": {"team": "a", "minutes": 1.0}})])  # one row fewer
    assert rows() == [("a", 1, 1.0)]
    one, mid = follow(later, ("Acknowledged", {"note": ""}))
    two, last = follow(mid, ("Acknowledged", {"note": ""}))
    store.write([Write(one, mid, None, (), {"response": {"team": "b", "minutes": 5.0}}),
                 Write(two, last, None, (), {"response": {"team": "c", "minutes": 6.0}})])
    assert rows() == [("c", 1, 6.0)]


def test_rows_of_a_projection_never_declared_are_refused_and_nothing_is_written(store):
    w = report_write("INC-1")
    with pytest.raises(StoreError) as err:
        store.write([Write(w.events, w.state, (), (), {"nowhere": {"x": 1}})])
    assert str(err.value) == ("projection 'nowhere' was not declared to this store; a plugin returned rows "
                              "from qflow_project without declaring them in qflow_projections")
    assert store.get("INC-1") is None
