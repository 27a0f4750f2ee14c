""""Overdue" follows the SLA clocks on every store: what ``qflow ls --overdue``
(``IncidentQuery.overdue_at``) and ``Engine.due`` read is each clock's due moment as
the incident's last write recorded it, so a paused clock is not overdue, a reset one
counts from its reset and a changed severity moves it, as escalation reads them."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from qflow import events as ev
from qflow.store import Due, IncidentQuery

from tests.conftest import BASE, T0

H = timedelta(hours=1)
D = timedelta(days=1)
M = timedelta(minutes=1)
# category complaint, no customer tier: severity normal (respond 4h, resolve 3d, round the clock)
GUEST = {"channel": "phone", "category": "complaint", "place": "1512", "description": "隔壁喧哗"}


@pytest.fixture
def engine(store, pm):
    ruleset = qflow.load_ruleset_text(BASE, file="base.yaml", plugins=pm)
    return qflow.Engine(ruleset, plugins=pm, store=store, clock=qflow.FakeClock(T0))


def _overdue(engine: qflow.Engine, at) -> list[str]:
    found = [s.id for s in engine.query(overdue_at=at)]
    assert engine.store.count(IncidentQuery(overdue_at=at)) == len(found)
    return found


def _answered(engine: qflow.Engine) -> str:
    iid = engine.report(GUEST).id
    engine.clock.advance(H)
    engine.respond(iid, "我们马上处理", actor="前台 E1042")
    return iid


def test_a_resolve_clock_paused_waiting_on_the_guest_is_not_overdue_until_its_moved_due_passes(engine):
    iid = _answered(engine)
    engine.clock.advance(23 * H)  # T0 + 1d: one of the three days used
    engine.set_status(iid, "waiting_customer", actor="前台 E1042")
    # The decision's resolve deadline (T0 + 3d) passes while the clock is paused.
    assert _overdue(engine, T0 + 4 * D) == []
    assert engine.due(T0 + 30 * D) == []
    engine.clock.advance(3 * D)  # T0 + 4d: the guest answers; two days are left
    engine.set_status(iid, "working", actor="前台 E1042")
    assert _overdue(engine, T0 + 6 * D) == []
    assert _overdue(engine, T0 + 6 * D + M) == [iid]
    assert engine.due(T0 + 6 * D) == [Due(T0 + 6 * D, iid, "resolve")]
    assert engine.due(T0 + 6 * D - M) == []


def test_after_a_close_and_a_reopening_overdue_follows_the_new_run_of_the_resolve_clock(engine):
    iid = _answered(engine)
    engine.clock.advance(23 * H)
    engine.confirm(iid, actor="值班经理")
    engine.transition(iid, "acting", actor="值班经理")
    engine.transition(iid, "verifying", actor="值班经理")
    engine.close(iid, actor="值班经理")
    assert _overdue(engine, T0 + 10 * D) == []
    engine.clock.advance(D)  # T0 + 2d: the guest complains again; resolve counts three days from here
    engine.reopen(iid, "噪音又出现了", actor="前台 E1042")
    assert _overdue(engine, T0 + 4 * D) == []  # past the first run's deadline (T0 + 3d)
    assert _overdue(engine, T0 + 5 * D + M) == [iid]
    assert engine.due(T0 + 10 * D) == [Due(T0 + 5 * D, iid, "resolve")]


def test_a_severity_change_moves_the_due_moment(engine):
    iid = _answered(engine)
    engine.clock.advance(H)  # T0 + 2h
    state = engine.get(iid)
    engine._record(state, ev.SEVERITY_CHANGED, {"from": "normal", "to": "critical", "reason": "VIP guest"},
                   actor="值班经理")
    # critical resolves in 4h from the same start: due at T0 + 4h, not the decision's T0 + 3d.
    assert engine.due(T0 + 10 * D) == [Due(T0 + 4 * H, iid, "resolve")]
    assert _overdue(engine, T0 + 4 * H) == []
    assert _overdue(engine, T0 + 4 * H + M) == [iid]


def test_without_clock_moments_overdue_reads_the_decisions_deadlines(engine, pm):
    """A write that did not record due moments (before they were recorded, or a caller
    writing alone) is read by its decision's deadlines, and counted as such."""
    iid = _answered(engine)
    engine.set_status(iid, "waiting_customer", actor="前台 E1042")
    state = engine.get(iid)
    assert engine.store.without_dues() == 0
    engine.store.write([qflow.Write((), state, None)])
    assert engine.store.without_dues() == 1
    assert _overdue(engine, T0 + 3 * D + M) == [iid]  # the decision knows no pause
    assert engine.due(T0 + 3 * D) == [Due(T0 + 3 * D, iid, "resolve")]
    assert engine.record_dues() == 1
    assert engine.store.without_dues() == 0
    assert _overdue(engine, T0 + 3 * D + M) == []
    assert engine.due(T0 + 30 * D) == []


def test_a_stage_clock_with_a_target_is_due_from_its_stage(store, pm):
    ruleset = qflow.load_ruleset_text(
        BASE.replace("normal: {respond: 4h, resolve: 3d}", "normal: {respond: 4h, resolve: 3d, cause: 1d}"),
        file="base.yaml", plugins=pm)
    engine = qflow.Engine(ruleset, plugins=pm, store=store, clock=qflow.FakeClock(T0))
    iid = _answered(engine)
    assert engine.due(T0 + 30 * D) == [Due(T0 + 3 * D, iid, "resolve")]
    engine.confirm(iid, actor="值班经理")
    engine.transition(iid, "analysing", actor="值班经理")  # at T0 + 1h: the cause clock starts
    assert engine.due(T0 + 30 * D) == [Due(T0 + D + H, iid, "cause"), Due(T0 + 3 * D, iid, "resolve")]
    assert _overdue(engine, T0 + D + H + M) == [iid]
