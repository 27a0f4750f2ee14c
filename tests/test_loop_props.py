"""Random sequences of loop commands never reach a state the guards forbid and never
lose an event: the stored state is always the fold of the log, seq grows by one, and
a refused command changes nothing."""

from __future__ import annotations

from datetime import timedelta

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule

import qflow
from qflow import (
    Action,
    ActionKind,
    Cause,
    Engine,
    Incident,
    QflowError,
    Stage,
    Verification,
    VerificationResult,
    WhyStep,
)
from qflow import events as ev
from tests.conftest import BASE, T0

RULESET = BASE + """\
loop:
  verification: {observe: 2d}
  reminders: {before: [12h], every: 1d, limit: 3}
"""
PM = qflow.make_plugin_manager(autoload=False)
LOADED = qflow.load_ruleset_text(RULESET, file="props.yaml", plugins=PM)

stages = st.sampled_from(list(Stage))
results = st.sampled_from(list(VerificationResult))
ids = st.sampled_from(["C-1", "C-2", "C-3"])
action_ids = st.sampled_from(["A-1", "A-2", "A-3"])


class Loop(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.clock = qflow.FakeClock(T0)
        self.engine = Engine(LOADED, plugins=PM, clock=self.clock)
        self.iid = self.engine.report(Incident(description="房间没有打扫", category="room_not_clean", place="1203")).id
        self.rejected_with: int | None = None

    def attempt(self, call) -> None:
        before = self.engine.events(self.iid)
        try:
            call()
        except QflowError:
            assert self.engine.events(self.iid) == before, "a refused command recorded something"
        state = self.engine.get(self.iid)
        if state.stage is Stage.REJECTED and self.rejected_with is None:
            self.rejected_with = len(state.actions)
        elif state.stage is not Stage.REJECTED:
            self.rejected_with = None

    @rule()
    def confirm(self):
        self.attempt(lambda: self.engine.confirm(self.iid, responsibility="human"))

    @rule(reason=st.sampled_from(["", "误报"]))
    def reject(self, reason):
        self.attempt(lambda: self.engine.reject(self.iid, reason))

    @rule(stage=stages, reason=st.sampled_from([None, "因为"]))
    def move(self, stage, reason):
        self.attempt(lambda: self.engine.transition(self.iid, stage, reason=reason))

    @rule(cid=ids, confirmed=st.booleans(), rooted=st.booleans())
    def cause(self, cid, confirmed, rooted):
        cause = Cause(cid, "排班漏排", method="five_why", confirmed=confirmed, code=cid,
                      whys=[WhyStep("为什么", "排班", root=rooted)])
        self.attempt(lambda: self.engine.record_cause(self.iid, cause))

    @rule(cid=ids)
    def confirm_cause(self, cid):
        self.attempt(lambda: self.engine.confirm_cause(self.iid, cid))

    @rule(aid=action_ids, hours=st.integers(-2, 72), kind=st.sampled_from(list(ActionKind)))
    def plan(self, aid, hours, kind):
        action = Action(aid, "修排班", "李娜", self.clock.now() + timedelta(hours=hours), kind=kind, target="零漏排")
        self.attempt(lambda: self.engine.plan_action(self.iid, action))

    @rule(aid=action_ids, status=st.sampled_from(["in_progress", "done", "cancelled", "planned"]),
          note=st.sampled_from([None, "不需要了"]))
    def update(self, aid, status, note):
        self.attempt(lambda: self.engine.update_action(self.iid, aid, status, note=note))

    @rule(aid=action_ids, kind=st.sampled_from(["progress", "deviation", "adjustment"]), days=st.none() | st.integers(-1, 5))
    def log(self, aid, kind, days):
        due = None if days is None else self.clock.now() + timedelta(days=days)
        self.attempt(lambda: self.engine.log_action(self.iid, aid, kind, "进展", due=due))

    @rule(result=results, measured=st.booleans())
    def verify(self, result, measured):
        metrics = {"repeats": 0} if measured else {}
        v = Verification(result, self.clock.now(), verifier="质检", metrics=metrics)
        self.attempt(lambda: self.engine.record_verification(self.iid, v))

    @rule()
    def close(self):
        self.attempt(lambda: self.engine.close(self.iid))

    @rule(reason=st.sampled_from(["", "又投诉了"]))
    def reopen(self, reason):
        self.attempt(lambda: self.engine.reopen(self.iid, reason))

    @rule(hours=st.integers(1, 80), repeat=st.booleans())
    def time_passes(self, hours, repeat):
        self.clock.advance(timedelta(hours=hours))
        if repeat:
            self.engine.report(Incident(description="又没打扫", category="room_not_clean", place="1203"))
        self.attempt(lambda: self.engine.tick())

    @rule(result=results)
    def step_forward(self, result):
        # The natural next step, so that random runs reach the deep stages too.
        e, iid = self.engine, self.iid
        state = e.get(iid)
        stage = state.stage
        n = len(state.causes) + 1
        if stage in (Stage.REPORTED, Stage.REOPENED):
            call = (lambda: e.confirm(iid)) if stage is Stage.REPORTED else (lambda: e.transition(iid, "analysing"))
        elif stage in (Stage.CONFIRMED, Stage.ANALYSING) and not any(c.confirmed for c in state.causes):
            cause = Cause(f"C-{n}", "根因", method="five_why", confirmed=True, whys=[WhyStep("为什么", "因为", root=True)])
            call = lambda: e.record_cause(iid, cause)  # noqa: E731
        elif stage in (Stage.CONFIRMED, Stage.ANALYSING):
            call = lambda: e.transition(iid, "acting")  # noqa: E731
        elif stage is Stage.ACTING and not state.actions or all(not a.open for a in state.actions) and \
                stage is Stage.ACTING and len(state.actions) < 3 and not state.verifications:
            aid = f"A-{len(state.actions) + 1}"
            call = lambda: e.plan_action(iid, Action(aid, "修", "李娜", self.clock.now() + timedelta(days=1),  # noqa: E731
                                                     target="零漏排"))
        elif stage is Stage.ACTING:
            opened = [a for a in state.actions if a.open]
            call = (lambda: e.update_action(iid, opened[0].id, "done")) if opened else (  # noqa: E731
                lambda: e.record_verification(iid, Verification(result, self.clock.now(), verifier="质检",
                                                                metrics={"repeats": 0})))
        elif stage is Stage.VERIFYING:
            call = (lambda: e.close(iid)) if state.verifications and \
                state.verifications[-1].result is VerificationResult.EFFECTIVE else (
                lambda: e.record_verification(iid, Verification(result, self.clock.now(), verifier="质检",
                                                                metrics={"repeats": 0})))
        else:
            call = lambda: e.reopen(iid, "again")  # noqa: E731
        self.attempt(call)

    @invariant()
    def the_log_is_whole(self):
        log = self.engine.events(self.iid)
        assert [e.seq for e in log] == list(range(1, len(log) + 1))
        assert ev.fold(log) == self.engine.get(self.iid)

    @invariant()
    def the_guards_hold(self):
        state = self.engine.get(self.iid)
        if state.stage in (Stage.ACTING, Stage.VERIFYING, Stage.CLOSED):
            assert any(c.confirmed for c in state.causes), "acting without a confirmed cause"
        if state.stage in (Stage.VERIFYING, Stage.CLOSED):
            assert state.actions and not any(a.open for a in state.actions), "verifying with open actions"
        if state.stage is Stage.CLOSED:
            assert state.verifications[-1].result is VerificationResult.EFFECTIVE
        if state.stage is Stage.REJECTED:
            assert len(state.actions) == self.rejected_with, "a rejected incident gathered actions"
        for c in state.causes:
            if c.method == "five_why":
                assert c.whys and c.whys[-1].root
        assert sum(c.confirmed for c in state.causes) <= 1


TestLoop = Loop.TestCase
TestLoop.settings = settings(max_examples=40, stateful_step_count=30, deadline=None,
                             suppress_health_check=[HealthCheck.too_slow])


@pytest.mark.slow
def test_long_random_runs():
    run = Loop.TestCase("runTest")
    run.settings = settings(max_examples=400, stateful_step_count=60, deadline=None,
                            suppress_health_check=[HealthCheck.too_slow])
    run.runTest()
