"""The closed loop: allowed moves, guards, hooks at stage entry and exit."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from qflow import Action, Cause, Engine, Incident, Stage, TransitionError, Verification, VerificationResult, hookimpl
from qflow import events as ev
from qflow.lifecycle import TRANSITIONS, allowed
from tests.conftest import T0


@pytest.fixture
def engine(base_ruleset, pm, clock):
    return Engine(base_ruleset, plugins=pm, clock=clock)


def new(engine) -> str:
    return engine.report(Incident(description="房间没有打扫", category="room_not_clean")).id


def test_every_stage_has_its_moves_and_closed_is_reachable():
    assert set(TRANSITIONS) == set(Stage)
    seen, todo = {Stage.REPORTED}, [Stage.REPORTED]
    while todo:
        for nxt in TRANSITIONS[todo.pop()]:
            if nxt not in seen:
                seen.add(nxt)
                todo.append(nxt)
    assert seen == set(Stage)
    assert allowed(Stage.VERIFYING, Stage.ANALYSING)
    assert not allowed(Stage.REPORTED, Stage.CLOSED)


def test_an_illegal_move_says_what_is_possible(engine):
    iid = new(engine)
    with pytest.raises(TransitionError) as info:
        engine.transition(iid, "closed")
    assert str(info.value) == "cannot move INC-1 to closed: reported cannot move to closed; from reported it can move to: confirmed, rejected"
    assert engine.get(iid).stage is Stage.REPORTED
    assert len(engine.events(iid)) == 2


def test_reject_needs_a_reason_and_stays_in_the_archive(engine):
    iid = new(engine)
    with pytest.raises(TransitionError) as info:
        engine.transition(iid, Stage.REJECTED)
    assert str(info.value) == "cannot move INC-1 to rejected: give the reason for rejecting it"
    state = engine.transition(iid, Stage.REJECTED, reason="客人误报 not an anomaly", actor="主管")
    assert state.stage is Stage.REJECTED and state.rejected_reason == "客人误报 not an anomaly"
    assert engine.query(open_only=True) == []
    assert [s.id for s in engine.query()] == [iid]
    with pytest.raises(TransitionError) as info:
        engine.plan_action(iid, Action("A-1", "clean", "李娜", T0 + timedelta(days=1)))
    assert str(info.value) == "cannot plan an action on INC-1: it is rejected"


def test_the_whole_loop_with_its_guards(engine, clock):
    iid = new(engine)
    engine.transition(iid, "confirmed")
    engine.transition(iid, "analysing")
    with pytest.raises(TransitionError) as info:
        engine.transition(iid, "acting")
    assert str(info.value) == "cannot move INC-1 to acting: record a cause first (no acting without a confirmed cause)"
    engine.record_cause(iid, Cause("C-1", "清洁排班漏排 rota gap", method="five_why",
                                   whys=[qflow.WhyStep("为什么没打扫", "排班漏了", root=True)]))
    with pytest.raises(TransitionError) as info:
        engine.transition(iid, "acting")
    assert str(info.value) == ("cannot move INC-1 to acting: confirm one of the causes first (C-1): "
                               "no acting without a confirmed cause")
    engine.confirm_cause(iid, "C-1")
    engine.transition(iid, "acting")
    with pytest.raises(TransitionError) as info:
        engine.transition(iid, "verifying")
    assert str(info.value) == "cannot move INC-1 to verifying: plan at least one action first"
    engine.plan_action(iid, Action("A-1", "fix the rota", "李娜", T0 + timedelta(days=2), target="no gap in 30 days"))
    engine.plan_action(iid, Action("A-2", "train staff", "李娜", T0 + timedelta(days=3), target="every cleaner"))
    engine.update_action(iid, "A-1", "done")
    with pytest.raises(TransitionError) as info:
        engine.transition(iid, "verifying")
    assert str(info.value) == "cannot move INC-1 to verifying: action A-2 is still open, due 2026-11-23"
    clock.advance(timedelta(hours=1))
    engine.update_action(iid, "A-2", "done")
    engine.transition(iid, "verifying")
    state = engine.record_verification(iid, Verification(VerificationResult.INEFFECTIVE, clock.now(), verifier="质检",
                                                         metrics={"repeats": 3}))
    assert state.stage is Stage.ANALYSING  # ineffective goes back by itself, with the figures
    assert engine.events(iid)[-1].data["reason"] == "verification ineffective: repeats=3"
    engine.transition(iid, "acting")
    engine.transition(iid, "verifying")
    with pytest.raises(TransitionError) as info:
        engine.close(iid)
    assert str(info.value) == "cannot close INC-1: the last verification was ineffective; verify again or go back to analysing"
    engine.record_verification(iid, Verification(VerificationResult.EFFECTIVE, clock.now(), verifier="质检",
                                                 metrics={"repeats": 0}))
    state = engine.close(iid)
    assert state.stage is Stage.CLOSED
    assert state.actions[1].done_at == T0 + timedelta(hours=1)
    log = engine.events(iid)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert ev.fold(log) == state
    assert [e.data["to"] for e in log if e.type == ev.STAGE_CHANGED] == [
        "confirmed", "analysing", "acting", "verifying", "analysing", "acting", "verifying", "closed"]
    engine.reopen(iid, "guest complained again")
    assert engine.get(iid).stage is Stage.REOPENED


class PhotoRequired:
    """A site rule: hygiene incidents need a photo before closing."""

    def __init__(self):
        self.entered, self.left = [], []

    @hookimpl
    def qflow_transition_guard(self, state, target):
        if target is Stage.CONFIRMED and not state.incident.attachments:
            return "attach a photo first"
        return None

    @hookimpl
    def qflow_stage_enter(self, state, previous):
        self.entered.append((previous.value, state.stage.value))

    @hookimpl
    def qflow_stage_exit(self, state, target):
        self.left.append((state.stage.value, target.value))
        raise RuntimeError("an observer failing must not undo the change")


def test_plugin_guards_and_stage_hooks(base_ruleset, clock):
    plugin = PhotoRequired()
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(plugin, "photo")])
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    iid = new(engine)
    with pytest.raises(TransitionError) as info:
        engine.transition(iid, "confirmed")
    assert str(info.value) == "cannot move INC-1 to confirmed: attach a photo first"
    assert plugin.entered == []
    other = engine.report(Incident(description="x", attachments=[qflow.Attachment("photo://1", kind="photo")])).id
    engine.transition(other, "confirmed")
    assert plugin.left == [("reported", "confirmed")]
    assert plugin.entered == [("reported", "confirmed")]
    assert engine.get(other).stage is Stage.CONFIRMED


def test_unknown_incident(engine):
    with pytest.raises(qflow.IncidentNotFoundError) as info:
        engine.transition("INC-404", "confirmed")
    assert str(info.value) == "no incident 'INC-404' in this store"


def test_the_log_refuses_gaps():
    e1 = qflow.Event("X", 1, T0, ev.INCIDENT_REPORTED, data={"description": "x", "id": "X"})
    e3 = qflow.Event("X", 3, T0, ev.STAGE_CHANGED, data={"from": "reported", "to": "confirmed"})
    with pytest.raises(ev.AuditSequenceError) as info:
        ev.fold([e1, e3])
    assert str(info.value) == "event seq 3 does not follow the log; expected 2"
