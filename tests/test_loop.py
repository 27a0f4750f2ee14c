"""The improvement loop end to end on a virtual clock: reminders, measured
verification that loops back, a second round that passes; and every refused command
leaves the incident as it was."""

from __future__ import annotations

from datetime import timedelta

import pytest

import qflow
from qflow import (
    Action,
    ActionKind,
    Attachment,
    Cause,
    Engine,
    Incident,
    InputError,
    Stage,
    TransitionError,
    Verification,
    VerificationResult,
    WhyStep,
)
from qflow import events as ev
import qflow_loop
from tests.conftest import BASE, T0

LOOP = BASE + """\
loop:
  fingerprint: [category, cause, place]
  verification:
    observe: 7d
    metrics:
      - {name: recurrence, kind: recurrence}
      - {name: satisfaction, kind: satisfaction, effective: 4.5, partial: 4.0}
  reminders: {before: [1d], every: 1d, escalate_after: 2d}
"""

WHYS = [WhyStep("为什么房间没打扫", "排班表漏了1203"), WhyStep("为什么漏排", "排班表手工维护, 没有核对", root=True)]


@pytest.fixture
def ruleset(pm):
    return qflow.load_ruleset_text(LOOP, file="loop.yaml", plugins=pm)


@pytest.fixture
def engine(ruleset, pm, clock):
    return Engine(ruleset, plugins=pm, clock=clock)


def dirty(engine, place="1203") -> str:
    return engine.report(Incident(description="房间没有打扫", category="room_not_clean", place=place)).id


def types(engine, iid):
    return [e.type for e in engine.events(iid)]


def test_full_loop_with_an_ineffective_round_and_a_second_that_passes(engine, clock):
    earlier = [dirty(engine) for _ in range(2)]  # the baseline: the same anomaly before the measures
    clock.advance(timedelta(hours=1))
    iid = dirty(engine)
    engine.confirm(iid, actor="值班经理", responsibility="human", team="housekeeping", owner="李娜",
                   note="checked on site")
    engine.record_cause(iid, Cause("C-1", "排班漏排", method="five_why", whys=WHYS, code="rota-gap", confirmed=True,
                                   evidence=[Attachment("photo://1203-bed.jpg", kind="photo")]), actor="质检")
    engine.transition(iid, "acting", actor="李娜")
    due = clock.now() + timedelta(days=2)
    engine.plan_action(iid, Action("A-1", "排班表改为系统生成", "李娜", due, kind=ActionKind.CORRECTIVE,
                                   target="30天内零漏排", feasibility="IT已确认", expected_effect="不再漏排"),
                       actor="李娜")
    assert [t.key for t in engine.store.timers(iid) if t.key.startswith("action:")] == ["action:A-1:before:1d"]

    clock.advance(timedelta(days=1, hours=1))  # past the reminder a day before the due date
    engine.tick()
    reminded = [e for e in engine.events(iid) if e.type == ev.ACTION_REMINDED]
    assert [e.data["step"] for e in reminded] == ["before:1d"]
    engine.tick()  # the same step never fires twice
    assert len([e for e in engine.events(iid) if e.type == ev.ACTION_REMINDED]) == 1

    engine.log_action(iid, "A-1", "progress", "系统排班上线一半", actor="李娜", percent=50)
    engine.update_action(iid, "A-1", "done", actor="李娜")
    done_at = clock.now()
    assert [t.key for t in engine.store.timers(iid)] == ["verify"]
    assert engine.store.timers(iid)[0].at == done_at + timedelta(days=7)

    for _ in range(4):  # it comes back more often than before
        clock.advance(timedelta(days=1))
        dirty(engine)
    clock.advance(timedelta(days=3, minutes=1))
    engine.tick()
    state = engine.get(iid)
    assert state.stage is Stage.ANALYSING
    v = state.verifications[-1]
    assert v.method == "measured" and v.result is VerificationResult.INEFFECTIVE
    assert [(f.metric, f.baseline, f.after, f.result) for f in v.figures] == [
        ("recurrence", 3.0, 4.0, VerificationResult.INEFFECTIVE), ("satisfaction", None, None, None)]
    back = engine.events(iid)[-1]
    assert back.type == ev.STAGE_CHANGED and back.data["to"] == "analysing"
    assert back.data["reason"] == "verification ineffective: recurrence 3 → 4 (ineffective); satisfaction - → - (no data)"
    assert back.data["figures"][0]["after"] == 4.0

    # Round two: another cause, confirmed; a preventive action; nothing comes back.
    engine.record_cause(iid, Cause("C-2", "交接班没有核对清单", method="fishbone", branch="method", code="handover"),
                        actor="质检")
    engine.confirm_cause(iid, "C-2", actor="质检")
    assert [c.confirmed for c in engine.get(iid).causes] == [False, True]
    engine.transition(iid, "acting")
    engine.plan_action(iid, Action("A-2", "交接班核对清单", "李娜", clock.now() + timedelta(days=1),
                                   kind=ActionKind.PREVENTIVE, target="每班签字"))
    clock.advance(timedelta(hours=5))
    engine.update_action(iid, "A-2", "done")
    clock.advance(timedelta(days=7))
    engine.tick()
    state = engine.get(iid)
    assert state.stage is Stage.VERIFYING
    assert state.verifications[-1].result is VerificationResult.EFFECTIVE
    assert [(f.metric, f.baseline, f.after) for f in state.verifications[-1].figures][0] == ("recurrence", 4.0, 0.0)
    state = engine.close(iid, actor="质检", reason="verified effective")
    assert state.stage is Stage.CLOSED
    assert engine.store.timers(iid) == []

    log = engine.events(iid)
    assert [e.seq for e in log] == list(range(1, len(log) + 1))
    assert ev.fold(log) == engine.get(iid)
    stages = [(e.data["from"], e.data["to"]) for e in log if e.type == ev.STAGE_CHANGED]
    assert stages == [("reported", "confirmed"), ("confirmed", "analysing"), ("analysing", "acting"),
                      ("acting", "verifying"), ("verifying", "analysing"), ("analysing", "acting"),
                      ("acting", "verifying"), ("verifying", "closed")]
    d = state.decision
    assert (d.responsibility, d.team, d.owner) == ("human", "housekeeping", "李娜")
    assert state.actions[0].ledger[0].percent == 50 and state.actions[0].ledger[0].by == "李娜"
    assert state.causes[0].evidence[0].added_by == "质检"
    assert earlier == ["INC-1", "INC-2"]


def _done_a_day_later(engine, clock) -> str:
    """An incident whose one action is done a day after it was reported."""
    iid = dirty(engine)
    engine.confirm(iid)
    engine.record_cause(iid, Cause("C-1", "排班漏排", code="rota-gap", confirmed=True))
    engine.transition(iid, "acting")
    engine.plan_action(iid, Action("A-1", "系统排班", "李娜", clock.now() + timedelta(days=2), target="零漏排"))
    clock.advance(timedelta(days=1))
    engine.update_action(iid, "A-1", "done")
    return iid


def test_measuring_too_early_says_there_is_not_enough_data_yet(engine, clock):
    iid = _done_a_day_later(engine, clock)
    # At the moment the action is done nothing has been observed after it: no window yet.
    now = engine.measure_effect(iid)
    assert [(f.metric, f.baseline, f.after, f.result, f.note) for f in now.figures] == [
        ("recurrence", None, None, None, "nothing observed after the last action yet"),
        ("satisfaction", None, None, None, "nothing observed after the last action yet")]
    # An hour later both hour-long windows hold no incident of the kind (the incident itself
    # is a day older): 0 -> 0 says nothing about the action, it is not "effective".
    clock.advance(timedelta(hours=1))
    early = engine.measure_effect(iid)
    assert [(f.metric, f.baseline, f.after, f.result, f.note) for f in early.figures] == [
        ("recurrence", 0.0, 0.0, None, "0 in both windows, nothing to compare yet"),
        ("satisfaction", None, None, None, "no data in a window")]
    for measured in (now, early):
        assert measured.result is VerificationResult.PARTIAL
        assert measured.note == ("not enough data yet: no metric had data in both windows; measure again later, "
                                 "or verify by hand")
    # Once the window holds the anomaly, the same metric judges.
    clock.advance(timedelta(days=1))
    later = engine.measure_effect(iid)
    assert [(f.metric, f.baseline, f.after, f.result) for f in later.figures][0] == (
        "recurrence", 1.0, 0.0, VerificationResult.EFFECTIVE)


def test_an_incident_without_a_place_has_no_kind_to_count_recurrences_of(engine, clock):
    # The fingerprint is category, cause and place: without a place the incident's kind is
    # unknown, and the other reports without one (or with a blank one) are not its kind.
    before = [dirty(engine, place=None), dirty(engine, place="")]
    clock.advance(timedelta(hours=1))
    iid = dirty(engine, place=None)
    engine.confirm(iid)
    engine.record_cause(iid, Cause("C-1", "排班漏排", code="rota-gap", confirmed=True))
    engine.transition(iid, "acting")
    engine.plan_action(iid, Action("A-1", "系统排班", "李娜", clock.now() + timedelta(days=2), target="零漏排"))
    engine.update_action(iid, "A-1", "done")
    clock.advance(timedelta(days=7))
    measured = engine.measure_effect(iid)
    note = "the incident has no place, which the fingerprint needs to count incidents of its kind; verify by hand"
    assert [(f.metric, f.baseline, f.after, f.result, f.note) for f in measured.figures] == [
        ("recurrence", None, None, None, note), ("satisfaction", None, None, None, note)]
    assert (measured.result, measured.note) == (VerificationResult.PARTIAL, note)
    assert before == ["INC-1", "INC-2"]
    # With a place the same counts work as before: the incident itself is in the baseline.
    other = dirty(engine, place="1203")
    assert qflow_loop.recurrences(engine.store, qflow_loop.fingerprint(engine.get(other), ["category", "place"]),
                                  clock.now() - timedelta(days=1), clock.now() + timedelta(seconds=1)) == [
        engine.get(other)]


def test_reminders_at_due_and_overdue_escalate(engine, clock):
    iid = dirty(engine)
    engine.confirm(iid)
    engine.plan_action(iid, Action("A-1", "containment: 换床单", "王强", clock.now() + timedelta(hours=2),
                                   kind=ActionKind.CORRECTION, target="今晚完成"))
    assert [t.key for t in engine.store.timers(iid) if t.key.startswith("action:")] == ["action:A-1:due"]
    clock.advance(timedelta(hours=2))
    engine.tick()
    clock.advance(timedelta(days=3))  # after a pause: one overdue reminder, not three
    engine.tick()
    reminded = [e for e in engine.events(iid) if e.type == ev.ACTION_REMINDED]
    assert [e.data["step"] for e in reminded] == ["due", "overdue:3"]
    assert reminded[1].data["overdue"] == "3d"
    messages = engine.store.outbox(incident_id=iid)
    assert messages == [] or all(m.incident_id == iid for m in messages)
    # The adjustment moves the due date: reminders start over for the new date.
    engine.log_action(iid, "A-1", "adjustment", "床单缺货, 延期", due=clock.now() + timedelta(days=2))
    assert [t.key for t in engine.store.timers(iid) if t.key.startswith("action:")] == ["action:A-1:before:1d"]


def test_the_overdue_notification_reaches_the_escalation_recipients(ruleset, pm, clock):
    engine = Engine(ruleset, plugins=pm, clock=clock)
    iid = dirty(engine)
    engine.confirm(iid, owner="李娜")
    engine.plan_action(iid, Action("A-1", "x", "王强", clock.now() + timedelta(hours=1), target="t"))
    clock.advance(timedelta(days=2, hours=1))
    from qflow_loop import qflow_due as loop_due

    state = engine.get(iid)
    effects = loop_due(state=state, events=engine.events(iid), timers=engine.store.timers(iid), ruleset=ruleset,
                       now=clock.now(), store=engine.store)
    seen = [(e.type, e.notifications[0].topic, e.notifications[0].recipients) for e in effects]
    assert seen == [(ev.ACTION_REMINDED, "action.overdue", ("王强", "team.lead"))]
    assert effects[0].notifications[0].subject == "INC-1 action A-1 overdue by 2d: x"


def refused(engine, iid, call, message, error=InputError):
    before = engine.events(iid)
    with pytest.raises(error) as info:
        call()
    assert str(info.value) == message
    assert engine.events(iid) == before


def test_bad_input_is_refused_and_changes_nothing(engine, clock):
    iid = dirty(engine)
    refused(engine, iid, lambda: engine.confirm(iid, responsibility="humn", team="housekeeper"),
            "cannot confirm INC-1: unknown responsibility 'humn' (did you mean 'human'? the ruleset has: human, "
            "equipment, process, customer); unknown team 'housekeeper' (did you mean 'housekeeping'? the ruleset "
            "has: front-office, housekeeping, engineering)")
    refused(engine, iid, lambda: engine.reject(iid, ""), "cannot reject INC-1: give the reason for rejecting it",
            TransitionError)
    refused(engine, iid, lambda: engine.record_cause(iid, Cause("C-1", "x")),
            "cannot record a cause on INC-1: it is reported, not analysing", TransitionError)
    engine.confirm(iid)
    refused(engine, iid, lambda: engine.record_cause(iid, Cause("C-1", "排班漏排", method="five_why",
                                                                whys=[WhyStep("why", "because")])),
            "cannot record a cause on INC-1: cause C-1: the 5-Why chain has no root cause; mark its last step as "
            "the root (root: true)")
    refused(engine, iid, lambda: engine.record_cause(iid, Cause("C-1", "x", method="five_why")),
            "cannot record a cause on INC-1: cause C-1: a 5-Why chain needs at least one why → because step")
    refused(engine, iid, lambda: engine.record_cause(iid, Cause("C-1", "x", method="fishbone", branch="machin")),
            "cannot record a cause on INC-1: cause C-1: 'machin' is not a fishbone branch (did you mean 'machine'? "
            "the branches are: man, machine, method, material, measurement, environment)", TransitionError)
    refused(engine, iid, lambda: engine.record_cause(iid, Cause("C-1", "x", evidence=[Attachment("a.mp4", "vidoe")])),
            "cannot record a cause on INC-1: evidence 'a.mp4' is of kind 'vidoe' (did you mean 'video'? the kinds "
            "are: photo, system_log, video, interview, document)", TransitionError)
    past = clock.now() - timedelta(hours=1)
    refused(engine, iid, lambda: engine.plan_action(iid, Action("A-1", "clean", " ", past)),
            "cannot plan an action on INC-1: action A-1 needs an owner; action A-1 is due 2026-11-20 22:10, which "
            "is already past; give a due date after 2026-11-20 23:10")
    refused(engine, iid, lambda: engine.plan_action(iid, Action("A-1", "clean", "李娜", clock.now() + timedelta(1))),
            "cannot plan an action on INC-1: action A-1 needs a measurable target (e.g. 'no repeat in 30 days')",
            TransitionError)
    refused(engine, iid, lambda: engine.update_action(iid, "A-9", "done"),
            "cannot update action A-9 of INC-1: INC-1 has no action A-9; its actions: none")
    refused(engine, iid, lambda: engine.transition(iid, "closed"),
            "cannot move INC-1 to closed: confirmed cannot move to closed; from confirmed it can move to: "
            "acting, analysing", TransitionError)
    engine.plan_action(iid, Action("A-1", "clean", "李娜", clock.now() + timedelta(days=1), target="today"))
    refused(engine, iid, lambda: engine.update_action(iid, "A-1", "cancelled"),
            "cannot update action A-1 of INC-1: give the reason for cancelling it")
    refused(engine, iid, lambda: engine.log_action(iid, "A-1", "progres", "x"),
            "cannot log on action A-1 of INC-1: 'progres' is not one of: progress, deviation, adjustment")
    refused(engine, iid, lambda: engine.record_verification(iid, Verification(VerificationResult.EFFECTIVE, T0)),
            "cannot verify INC-1: it is confirmed, not verifying", TransitionError)


def test_closing_with_an_open_action_names_it(engine, clock):
    iid = dirty(engine)
    engine.confirm(iid)
    engine.record_cause(iid, Cause("C-1", "x", code="c", confirmed=True))
    engine.transition(iid, "acting")
    engine.plan_action(iid, Action("A-1", "a", "李娜", clock.now() + timedelta(days=1), target="t"))
    engine.plan_action(iid, Action("A-3", "b", "李娜", clock.now() + timedelta(days=11), target="t"))
    engine.update_action(iid, "A-1", "done")
    refused(engine, iid, lambda: engine.record_verification(iid, Verification(
        VerificationResult.EFFECTIVE, clock.now(), verifier="质检", metrics={"repeats": 0})),
        "cannot verify INC-1: action A-3 is still open, due 2026-12-01", TransitionError)
    refused(engine, iid, lambda: engine.record_verification(iid, Verification(
        VerificationResult.EFFECTIVE, clock.now(), verifier="质检")),
        "cannot verify INC-1: action A-3 is still open, due 2026-12-01", TransitionError)
    engine.update_action(iid, "A-3", "done")
    refused(engine, iid, lambda: engine.record_verification(iid, Verification(
        VerificationResult.EFFECTIVE, clock.now(), verifier="质检")),
        "cannot verify INC-1: a verification needs at least one metric; say what was measured "
        "(e.g. repeats=0, satisfaction=4.6)")
    refused(engine, iid, lambda: engine.close(iid), "cannot close INC-1: acting cannot move to closed; from acting "
            "it can move to: analysing, verifying", TransitionError)


def test_rejected_incidents_gather_nothing_and_stay_in_the_archive(engine):
    iid = dirty(engine)
    engine.reject(iid, "客人误报", actor="主管")
    refused(engine, iid, lambda: engine.plan_action(iid, Action("A-1", "x", "y", T0 + timedelta(days=1), target="t")),
            "cannot plan an action on INC-1: it is rejected", TransitionError)
    refused(engine, iid, lambda: engine.reassign(iid, team="engineering", reason="wrong team"),
            "cannot reassign INC-1: it is rejected")
    assert [s.stage for s in engine.query()] == [Stage.REJECTED]


def test_reassignment_is_an_event_with_a_reason(engine):
    iid = dirty(engine)
    refused(engine, iid, lambda: engine.reassign(iid, team="engineering"),
            "cannot reassign INC-1: give the reason for reassigning it")
    state = engine.reassign(iid, team="engineering", owner="赵工", reason="空调滴水, not housekeeping", actor="主管")
    last = engine.events(iid)[-1]
    assert last.type == ev.REASSIGNED
    assert dict(last.data) == {"team": "engineering", "owner": "赵工", "reason": "空调滴水, not housekeeping",
                               "from_team": "housekeeping", "from_owner": None}
    assert (state.decision.team, state.decision.owner) == ("engineering", "赵工")


def test_manual_verification_only_where_the_ruleset_allows(pm, clock):
    ruleset = qflow.load_ruleset_text(BASE + "loop:\n  verification: {manual: false}\n", file="m.yaml", plugins=pm)
    engine = Engine(ruleset, plugins=pm, clock=clock)
    iid = dirty(engine)
    engine.confirm(iid)
    engine.record_cause(iid, Cause("C-1", "x", confirmed=True))
    engine.transition(iid, "acting")
    engine.plan_action(iid, Action("A-1", "a", "李娜", clock.now() + timedelta(days=1), target="t"))
    engine.update_action(iid, "A-1", "done")
    refused(engine, iid, lambda: engine.record_verification(iid, Verification(
        VerificationResult.EFFECTIVE, clock.now(), verifier="质检", metrics={"repeats": 0},
        evidence=[Attachment("photo://ok.jpg", "photo")])),
        "cannot verify INC-1: this ruleset verifies by measurement only (loop.verification.manual is false)",
        TransitionError)
    measured = engine.measure_effect(iid)
    assert measured is not None and measured.method == "measured"
    assert [f.metric for f in measured.figures] == ["recurrence"]


def test_guards_are_configurable(pm, clock):
    ruleset = qflow.load_ruleset_text(BASE + "loop:\n  guards: {cause_before_acting: any, close_on_partial: true}\n",
                                      file="g.yaml", plugins=pm)
    engine = Engine(ruleset, plugins=pm, clock=clock)
    iid = dirty(engine)
    engine.confirm(iid)
    engine.record_cause(iid, Cause("C-1", "a candidate, not confirmed"))
    engine.transition(iid, "acting")  # any recorded cause is enough here
    engine.plan_action(iid, Action("A-1", "a", "李娜", clock.now() + timedelta(days=1), target="t"))
    engine.update_action(iid, "A-1", "done")
    engine.record_verification(iid, Verification(VerificationResult.PARTIAL, clock.now(), verifier="质检",
                                                 metrics={"repeats": 1}))
    assert engine.close(iid).stage is Stage.CLOSED


def test_loop_section_mistakes_are_located(pm):
    text = BASE + """\
loop:
  fingerprint: [category, colour]
  guards: {cause_before_acting: sometimes}
  branches: {man: humn}
  verification:
    metrics:
      - {name: csat, kind: satisfaction, effective: 4.0, partial: 4.5}
      - {name: handling, kind: kpi, effective: 1, partial: 2, better: lower}
  problems: {threshold: 1}
"""
    with pytest.raises(qflow.RulesetError) as info:
        qflow.load_ruleset_text(text, file="bad.yaml", plugins=pm)
    assert [str(d) for d in info.value.diagnostics] == [
        "bad.yaml:34:27: QF800 'colour' is not a fingerprint field "
        "(use category, cause, place, asset, channel, customer, service or extra.NAME) @ $.loop.fingerprint[1]",
        "bad.yaml:35:33: QF802 'sometimes' is not one of: confirmed, any, off "
        "(confirmed: acting needs a confirmed cause; any: a recorded one; off: none) @ $.loop.guards.cause_before_acting",
        "bad.yaml:36:19: QF201 unknown responsibility 'humn' (did you mean 'human'?) @ $.loop.branches.man",
        "bad.yaml:39:53: QF805 effective 4 is below partial 4.5, but higher is better "
        "(effective must be the stricter threshold) @ $.loop.verification.metrics[0].effective",
        "bad.yaml:40:9: QF805 kpi metric 'handling' needs projection and column "
        "(name a projection a plugin keeps (qflow_projections) and its column) @ $.loop.verification.metrics[1]",
        "bad.yaml:41:25: QF806 threshold 1 would make every incident a problem "
        "(use 2 or more, e.g. 10 (10 in 3 hours at the same place)) @ $.loop.problems.threshold",
    ]


class SiteRules:
    """A site plugin: hygiene incidents need a photo before closing; an equipment
    action opens a maintenance ticket in the site's own system."""

    def __init__(self):
        self.tickets = []

    @qflow.hookimpl
    def qflow_transition_guard(self, state, target):
        if target is Stage.CLOSED and state.incident.category == "hygiene":
            photos = [e for c in state.causes for e in c.evidence if e.kind == "photo"]
            photos += [e for v in state.verifications for e in v.evidence if e.kind == "photo"]
            if not photos:
                return "hygiene incidents need a photo before closing; attach one"
        return None

    @qflow.hookimpl
    def qflow_action_planned(self, state, action):
        if state.decision.responsibility == "equipment" or action.description.startswith("维修"):
            self.tickets.append((state.id, action.id, action.owner, action.due))

    @qflow.hookimpl
    def qflow_command_guard(self, command):
        if command.name == "record_cause" and command.actor == "intern":
            return "only quality staff record causes"
        return None


def test_a_site_plugin_guards_closing_and_opens_tickets(ruleset, clock):
    site = SiteRules()
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(site, "site")])
    engine = Engine(ruleset, plugins=pm, clock=clock)
    iid = engine.report(Incident(description="餐厅地面油污", category="hygiene", place="餐厅")).id
    engine.confirm(iid, responsibility="process")
    refused(engine, iid, lambda: engine.record_cause(iid, Cause("C-1", "x"), actor="intern"),
            "cannot record a cause on INC-1: only quality staff record causes", TransitionError)
    engine.record_cause(iid, Cause("C-1", "清洁频次不够", confirmed=True), actor="质检")
    engine.transition(iid, "acting")
    engine.plan_action(iid, Action("A-1", "维修洗地机", "赵工", clock.now() + timedelta(days=1), target="明早可用"))
    assert site.tickets == [(iid, "A-1", "赵工", clock.now() + timedelta(days=1))]
    engine.update_action(iid, "A-1", "done")
    engine.record_verification(iid, Verification(VerificationResult.EFFECTIVE, clock.now(), verifier="质检",
                                                 metrics={"spot checks": "5/5"}))
    refused(engine, iid, lambda: engine.close(iid),
            "cannot close INC-1: hygiene incidents need a photo before closing; attach one", TransitionError)
    engine.add_evidence(iid, "C-1", Attachment("photo://floor.jpg", kind="photo"), actor="质检")
    assert engine.close(iid).stage is Stage.CLOSED


class StageLog:
    """Records every stage entered and left, as a site plugin would."""

    def __init__(self):
        self.seen = []

    @qflow.hookimpl
    def qflow_stage_exit(self, state, target):
        self.seen.append(("exit", state.id, state.stage.value, target.value))

    @qflow.hookimpl
    def qflow_stage_enter(self, state, previous):
        self.seen.append(("enter", state.id, previous.value, state.stage.value))


def test_stages_the_tick_moves_run_the_stage_hooks_too(ruleset, clock):
    pm = qflow.make_plugin_manager(autoload=False)
    spy = StageLog()
    pm.register(spy, name="stage-log")
    engine = Engine(ruleset, plugins=pm, clock=clock)
    iid = dirty(engine)
    engine.confirm(iid, actor="值班经理", responsibility="human", team="housekeeping", owner="李娜")
    engine.record_cause(iid, Cause("C-1", "排班漏排", method="five_why", whys=WHYS, code="rota-gap", confirmed=True))
    engine.transition(iid, "acting")
    engine.plan_action(iid, Action("A-1", "排班表改为系统生成", "李娜", clock.now() + timedelta(days=1),
                                   target="30天内零漏排"))
    engine.update_action(iid, "A-1", "done")
    spy.seen.clear()
    clock.advance(timedelta(days=8))
    engine.tick()  # the window is over: the tick verifies, finds it ineffective, and goes back
    assert engine.get(iid).stage is Stage.ANALYSING
    assert spy.seen == [("exit", iid, "acting", "verifying"), ("enter", iid, "acting", "verifying"),
                        ("exit", iid, "verifying", "analysing"), ("enter", iid, "verifying", "analysing")]


def test_loop_values_may_be_given_as_plain_data_as_a_report_is(engine, clock):
    iid = dirty(engine)
    engine.confirm(iid, actor="值班经理")
    state = engine.record_cause(iid, {"id": "C-1", "summary": "排班漏排", "method": "five_why", "confirmed": True,
                                      "whys": [{"why": "为什么漏排", "because": "手工维护", "root": True}]}, actor="质检")
    assert state.causes[0] == Cause("C-1", "排班漏排", method="five_why", whys=[WhyStep("为什么漏排", "手工维护", root=True)],
                                    confirmed=True, recorded_by="质检")
    due = (clock.now() + timedelta(days=2)).isoformat()
    state = engine.plan_action(iid, {"id": "A-1", "description": "排班表加核对", "owner": "李娜", "due": due,
                                     "kind": "preventive", "target": "no repeat in 30 days"}, actor="质检")
    assert (state.actions[0].kind, state.actions[0].due) == (qflow.ActionKind.PREVENTIVE, clock.now() + timedelta(days=2))
    with pytest.raises(qflow.InputError) as info:
        engine.plan_action(iid, {"id": "A-2", "description": "x", "owner": "李娜", "due": "tomorrow", "kind": "fix"})
    assert str(info.value) == ("action is not a qflow.Action: 'tomorrow' is not a date and time (use ISO 8601 such "
                               "as 2026-11-20T23:10:00+08:00) @ $.due; 'fix' is not one of: correction, corrective, "
                               "preventive @ $.kind")
    with pytest.raises(TypeError) as info:
        engine.record_cause(iid, "rota gap")
    assert str(info.value) == "cause must be a qflow.Cause or a mapping of its fields, got str 'rota gap'"
    assert [a.id for a in engine.get(iid).actions] == ["A-1"]
