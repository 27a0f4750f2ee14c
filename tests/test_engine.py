"""The engine: pure decisions, recorded reports, the event log, plugin hooks."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

import attrs
import pytest

import qflow
from qflow import Classification, Engine, Incident, Stage, hookimpl
from qflow import events as ev
from qflow.store import StoreError
from tests.conftest import BASE as BASE_TEXT
from tests.conftest import CST, T0


@pytest.fixture
def engine(base_ruleset, pm, clock):
    return Engine(base_ruleset, plugins=pm, clock=clock)


GOLD_CALL = Incident(
    reported_at=T0, channel="phone", category="complaint", place="lobby",
    description="前台办理入住等待超过30分钟", customer=qflow.Customer(tier="gold"),
)


def test_decide_follows_the_rules(engine):
    d = engine.decide(GOLD_CALL, T0)
    assert (d.category, d.severity, d.team, d.owner, d.responsibility) == ("complaint", "high", "front-office", None, None)
    assert d.respond_by == datetime(2026, 11, 21, 0, 10, tzinfo=CST)
    assert d.resolve_by == datetime(2026, 11, 21, 23, 10, tzinfo=CST)
    assert d.matched == ("classify:vip-complaint", "route:default")
    assert d.sources == {"category": "report", "severity": "classify:vip-complaint", "team": "route:default"}
    assert d.ruleset == engine.ruleset.ref


def test_reporter_category_is_kept_and_rules_may_set_it(engine):
    d = engine.decide(Incident(reported_at=T0, description="大堂有烟味 smoke in lobby"), T0)
    assert (d.category, d.severity, d.team) == ("safety", "critical", "front-office")
    assert d.respond_by == T0 + timedelta(minutes=15)


def test_decide_is_pure(engine):
    first = engine.decide(GOLD_CALL, T0)
    second = engine.decide(GOLD_CALL, T0)
    assert first == second
    assert first.trace == second.trace
    assert engine.query() == []


def test_the_trace_says_why_each_rule_matched_or_not(engine):
    d = engine.decide(GOLD_CALL, T0)
    rules = [(s.section, s.rule, s.outcome) for s in d.trace if s.section in ("classify", "route")]
    assert rules == [
        ("classify", "safety", "no match"),
        ("classify", "vip-complaint", "matched"),
        ("classify", "default", "not needed"),
        ("classify", None, "unset"),
        ("route", "cleanliness", "no match"),
        ("route", "broken-equipment", "no match"),
        ("route", "default", "matched"),
        ("route", None, "unset"),
    ]
    matched = [f"{s.section}:{s.rule}" for s in d.trace if s.outcome == "matched"]
    assert tuple(matched) == d.matched


def test_deadlines_start_at_the_report_not_at_the_decision(engine):
    later = T0 + timedelta(hours=5)
    d = engine.decide(GOLD_CALL, later)
    assert d.respond_by == T0 + timedelta(hours=1)
    assert d.decided_at == later
    unstamped = attrs.evolve(GOLD_CALL, reported_at=None)
    assert engine.decide(unstamped, later).respond_by == later + timedelta(hours=1)


def test_report_records_the_incident_and_its_events(engine, clock):
    state = engine.report({"channel": "phone", "category": "complaint", "description": "空调坏了",
                           "customer": {"tier": "gold"}}, actor="前台-王芳")
    assert state.id == "INC-1"
    assert state.stage is Stage.REPORTED
    assert state.incident.reported_at == T0
    log = engine.events("INC-1")
    assert [(e.seq, e.type, e.actor) for e in log] == [(1, ev.INCIDENT_REPORTED, "前台-王芳"), (2, ev.DECISION_MADE, None)]
    assert all(e.ruleset == engine.ruleset.ref for e in log)
    assert log[1].source == "classify:vip-complaint,route:default"
    assert ev.fold(log) == state
    assert engine.get("INC-1") == state


def test_a_deadline_in_an_unpublished_year_is_recorded_with_its_warning(pm, tmp_path):
    import holidays

    ruleset = qflow.load_ruleset_text(
        "qflow: 1\ntimezone: Asia/Shanghai\ncalendars: {office: {hours: {mon-fri: [\"09:00-18:00\"]}, holidays: CN}}\n"
        "severities: {normal: {respond: 1h, resolve: 2d, calendar: office}}\n"
        "classify: [{id: all, set: {severity: normal}}]\n", file="office.yaml", plugins=pm)
    clock = qflow.FakeClock(datetime(2026, 12, 31, 9, tzinfo=CST))
    engine = Engine(ruleset, plugins=pm, clock=clock, store=f"sqlite:///{tmp_path / 'site.sqlite3'}")
    state = engine.report({"description": "x"})
    note = (f"calendar 'office': the CN holiday schedule for 2027 is not published in holidays "
            f"{holidays.__version__}; 2027 is counted on its fixed and lunar holidays without make-up working "
            "days (调休)")
    assert [(d.clock, d.warnings) for d in state.decision.deadlines] == [("respond", ()), ("resolve", (note,))]
    decided = engine.events(state.id)[1].data["deadlines"]
    assert ["warnings" in d for d in decided] == [False, True]  # stored only where there are some
    again = Engine(ruleset, plugins=pm, clock=clock, store=f"sqlite:///{tmp_path / 'site.sqlite3'}")
    assert again.get(state.id) == state


def test_a_retry_with_the_same_external_id_creates_nothing(engine):
    first = engine.report({"description": "x", "external_id": "pms-77"})
    again = engine.report({"description": "x (retry)", "external_id": "pms-77"})
    assert again == first
    assert len(engine.query()) == 1


def test_report_refuses_a_bad_incident_and_records_nothing(engine):
    with pytest.raises(qflow.InputError) as info:
        engine.report({"description": "x", "impact": "high"})
    assert str(info.value) == "expected a whole number, got 'high' @ $.impact"
    assert engine.query() == []


def test_report_refuses_a_deadline_without_working_time_and_records_nothing(pm, clock):
    ruleset = qflow.load_ruleset_text(
        "qflow: 1\ncalendars: {tiny: {hours: {mon: [\"09:00-09:01\"]}}}\n"
        "severities: {slow: {respond: 1000h, calendar: tiny}}\nclassify: [{id: all, set: {severity: slow}}]\n",
        file="short.yaml", plugins=pm)
    engine = Engine(ruleset, plugins=pm, clock=clock)
    with pytest.raises(qflow.DecisionError) as info:
        engine.report({"description": "x"})
    assert str(info.value) == (
        f"calendar 'tiny' has no 41d16h of working time after {T0.isoformat()} within 30 years; check its "
        "hours, intervals and holidays, or shorten the committed time")
    assert engine.query() == []


def test_report_refuses_another_report_under_a_known_id(engine, clock):
    first = engine.report(Incident(id="A-1", description="x"))
    with pytest.raises(qflow.InputError) as info:
        engine.report(Incident(id="A-1", description="y", place="1203"))
    assert str(info.value) == ("incident A-1 is already recorded with another report (place, description differ); "
                               "a retry must repeat the recorded report, and a new incident needs an id of its own "
                               "(or none)")
    # The same report again is a retry, also later and without the time the engine gave it.
    clock.advance(timedelta(minutes=5))
    assert engine.report(Incident(id="A-1", description="x")) == first
    assert engine.report_many([{"id": "A-1", "description": "x"}]) == [first]
    assert engine.events("A-1")[-1].seq == first.seq
    assert engine.store.count(qflow.IncidentQuery()) == 1


def test_a_lone_surrogate_in_any_text_is_refused_where_it_is(engine):
    # JSON can write "\\ud800" alone, UTF-8 cannot: it would fail in the store's write.
    for data, where in (({"description": "噪音 \ud800"}, "$.description"),
                        ({"customer": {"name": "\udfff"}}, "$.customer.name"),
                        ({"tags": ["vip", "\ud83d"]}, "$.tags[1]"),
                        ({"extra": {"notes": [{"text": "x\ud800"}]}}, "$.extra.notes[0].text"),
                        ({"extra": {"k\ud800": 1}}, "$.extra")):
        for report in (engine.report, lambda d: engine.report_many([d])):
            with pytest.raises(qflow.InputError) as info:
                report(data)
            assert str(info.value) == ("a lone surrogate (a \\ud800-\\udfff escape without its pair) is no "
                                       f"character; send the text as UTF-8 @ {where}")
    assert engine.query() == []


def test_a_time_at_the_end_of_the_calendar_is_refused_with_its_field(engine):
    with pytest.raises(qflow.InputError) as info:
        engine.report({"description": "x", "reported_at": "9999-12-31T23:59:59+00:00"})
    assert str(info.value) == ("'9999-12-31T23:59:59+00:00' is out of range (use a time from the year 2 to 9998: "
                               "deadlines and time zones need room before the calendar ends) @ $.reported_at")
    with pytest.raises(qflow.InputError) as info:
        engine.report({"description": "x", "occurred_at": "0001-01-01T00:00:00+08:00"})
    assert str(info.value).endswith("@ $.occurred_at")
    # An Incident built in Python skips that check; with qflow's clock at the calendar's end
    # too (else it is refused as far ahead of the clock), its deadlines overflow the calendar.
    late = Incident(description="x", reported_at=datetime(9999, 12, 31, 23, 0, tzinfo=timezone.utc))
    at_the_end = Engine(engine.ruleset, plugins=engine.plugins,
                        clock=qflow.FakeClock(datetime(9999, 12, 31, 22, 58, tzinfo=timezone.utc)))
    for report in (at_the_end.report, lambda i: at_the_end.report_many([i])):
        with pytest.raises(qflow.InputError) as info:
            report(late)
        assert str(info.value) == (
            "reported_at 9999-12-31T23:00:00+00:00 is too close to the end of the calendar: the deadlines and "
            "escalation steps counted from it fall past the year 9999 (check the sender's clock) @ $.reported_at")
    assert engine.query() == [] and at_the_end.query() == []


def test_a_report_that_keeps_losing_races_gives_up(base_ruleset, pm, clock):
    class Refusing(qflow.MemoryStore):
        writes = 0

        def write(self, writes):
            Refusing.writes += 1
            raise qflow.ConcurrencyError("INC-1: event seq 1 does not follow 2; reload the incident and try again")

    engine = Engine(base_ruleset, plugins=pm, clock=clock, store=Refusing())
    with pytest.raises(qflow.ConcurrencyError):
        engine.report({"description": "x"})
    assert Refusing.writes == 16


def test_queries_and_due(engine, clock):
    engine.report(GOLD_CALL)
    clock.advance(timedelta(minutes=5))
    engine.report(Incident(description="smoke", channel="phone"))
    assert [s.id for s in engine.query(team="front-office")] == ["INC-1", "INC-2"]
    assert [s.id for s in engine.query(severity="critical")] == ["INC-2"]
    due = engine.due(T0 + timedelta(hours=1))
    assert [(d.incident_id, d.clock, d.at) for d in due] == [
        ("INC-2", "respond", T0 + timedelta(minutes=20)),
        ("INC-1", "respond", T0 + timedelta(hours=1)),
    ]


def test_due_lists_only_deadlines_still_outstanding_as_overdue_does(engine, clock):
    gold = engine.report(GOLD_CALL)  # high: respond by +1h, resolve by +1d
    smoke = engine.report(Incident(description="smoke", channel="phone"))  # critical: +15m, +4h
    clock.advance(timedelta(minutes=10))
    engine.respond(gold.id, "值班经理马上到 / the duty manager is coming", actor="王芳")
    # Answered at +10m: gold's respond deadline was met, so it is due no more.
    assert [(d.incident_id, d.clock, d.at) for d in engine.due(T0 + timedelta(hours=5))] == [
        (smoke.id, "respond", T0 + timedelta(minutes=15)), (smoke.id, "resolve", T0 + timedelta(hours=4))]
    clock.advance(timedelta(minutes=20))
    engine.transition(smoke.id, "rejected", actor="王芳", reason="a guest's cigarette, not a fire")
    assert engine.due(T0 + timedelta(hours=5)) == []
    later = T0 + timedelta(days=2)
    assert [(d.incident_id, d.clock) for d in engine.due(later)] == [(gold.id, "resolve")]
    # The same notion as 'qflow ls --overdue': what is due before a moment is what is overdue then.
    assert [s.id for s in engine.query(overdue_at=later)] == [gold.id]


class SiteOverride:
    """A site plugin that makes every lobby incident high, whatever the rules say."""

    @hookimpl(tryfirst=True)
    def qflow_classify(self, incident):
        return Classification(severity="high", source="plugin:site") if incident.place == "lobby" else None


def test_a_plugin_classification_overrides_field_by_field(base_ruleset, clock):
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(SiteOverride(), "site")])
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    d = engine.decide(attrs.evolve(GOLD_CALL, description="smoke!"), T0)
    assert (d.category, d.severity) == ("safety", "high")
    assert d.sources["severity"] == "plugin:site"
    assert d.sources["category"] == "classify:safety"


class Router:
    @hookimpl
    def qflow_route(self, classification):
        if classification.severity == "critical":
            return qflow.Assignment(team="security", owner="值班经理", source="plugin:router")
        return None


def test_route_stops_at_the_first_answer_and_falls_back_to_the_rules(base_ruleset, clock):
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(Router(), "router")])
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    assert engine.decide(Incident(description="fire"), T0).team == "security"
    assert engine.decide(Incident(description="late"), T0).team == "front-office"


class Failing:
    def __init__(self):
        self.seen = []

    @hookimpl
    def qflow_notify(self, notification):
        raise ConnectionError("smtp down")


class Recording:
    def __init__(self):
        self.sent = []

    @hookimpl
    def qflow_notify(self, notification):
        self.sent.append(notification)


def test_a_failing_notifier_is_recorded_and_does_not_stop_the_others(base_ruleset, clock):
    rec = Recording()
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(rec, "rec"), (Failing(), "failing")])
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    state = engine.report(GOLD_CALL)
    assert [(n.topic, n.recipients, n.subject) for n in rec.sent] == [
        ("incident.reported", ("front-office",), "[high] INC-1 complaint")]
    log = engine.events(state.id)
    assert [e.type for e in log] == [ev.INCIDENT_REPORTED, ev.DECISION_MADE, ev.NOTIFICATION_FAILED]
    assert dict(log[2].data) == {"topic": "incident.reported", "plugin": "failing", "error": "ConnectionError: smtp down"}
    assert engine.get(state.id).seq == 3


@pytest.mark.parametrize("batch", [False, True], ids=["report", "report_many"])
def test_a_race_lost_after_the_report_is_written_does_not_record_it_again(base_ruleset, clock, batch):
    # The report is in; recording the failed notification then loses a race (a worker
    # appended to the new incident). That must not run the report again: no duplicate.
    class Busy(qflow.MemoryStore):
        def write(self, writes):
            if any(e.type == ev.NOTIFICATION_FAILED for w in writes for e in w.events):
                raise qflow.ConcurrencyError("INC-1: event seq 3 does not follow 3; reload the incident and try again")
            super().write(writes)

    pm = qflow.make_plugin_manager(autoload=False, plugins=[(Failing(), "failing")])
    engine = Engine(base_ruleset, plugins=pm, clock=clock, store=Busy())
    with pytest.raises(qflow.ConcurrencyError):
        engine.report_many([GOLD_CALL]) if batch else engine.report(GOLD_CALL)
    assert [s.id for s in engine.query()] == ["INC-1"]


def test_engines_do_not_share_state(base_ruleset, pm):
    a = Engine(base_ruleset, plugins=pm, clock=qflow.FakeClock(T0))
    b = Engine(base_ruleset, plugins=pm, clock=qflow.FakeClock(T0))
    a.report(Incident(description="x"))
    assert b.query() == []


def test_unknown_store_scheme(base_ruleset, pm):
    with pytest.raises(StoreError) as info:
        Engine(base_ruleset, plugins=pm, store="redis://localhost")
    assert str(info.value) == ("no installed plugin opens 'redis://' store URLs; use memory://, sqlite:///PATH or "
                               "postgresql://USER@HOST/DB, or install the plugin for redis")


@pytest.mark.parametrize(("given", "url"), [("/var/lib/q.sqlite3", "sqlite:////var/lib/q.sqlite3"),
                                            ("q.sqlite3", "sqlite:///q.sqlite3")])
def test_a_path_without_a_scheme_is_shown_its_sqlite_url(base_ruleset, pm, given, url):
    with pytest.raises(StoreError) as info:
        Engine(base_ruleset, plugins=pm, store=given)
    assert str(info.value) == f"'{given}' is not a store URL (it names no scheme); for an SQLite file write {url}"


def test_from_path(tmp_path):
    from tests.conftest import BASE

    path = tmp_path / "r.yaml"
    path.write_text(BASE, encoding="utf-8")
    engine = Engine.from_path(path, autoload=False, clock=qflow.FakeClock(datetime(2026, 1, 1, tzinfo=timezone.utc)))
    assert engine.ruleset.name == "test-desk"
    assert engine.decide(Incident(description="x")).severity == "normal"


class Timing:
    """A new-style wrapper: the engine must then call through pluggy and honour it."""

    def __init__(self):
        self.calls = 0

    @hookimpl(wrapper=True)
    def qflow_classify(self):
        self.calls += 1
        results = yield
        return [attrs.evolve(c, severity="critical") for c in results]


def test_wrappers_are_honoured_and_plugins_added_later_are_seen(base_ruleset, clock):
    pm = qflow.make_plugin_manager(autoload=False)
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    assert engine.decide(GOLD_CALL, T0).severity == "high"
    timing = Timing()
    pm.register(timing, name="timing")
    assert engine.decide(GOLD_CALL, T0).severity == "critical"
    assert timing.calls == 1
    pm.unregister(name="timing")
    pm.register(SiteOverride(), name="site")
    assert engine.decide(attrs.evolve(GOLD_CALL, category="equipment"), T0).sources["severity"] == "plugin:site"


def test_the_trace_agrees_with_the_decision_on_every_shipped_incident(pm):
    import json
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "rulesets"
    for name in ("hotel-front-desk", "support-centre"):
        engine = Engine(qflow.load_ruleset(root / f"{name}.yaml", plugins=pm), plugins=pm)
        lines = (root / f"{name}.incidents.jsonl").read_text(encoding="utf-8").splitlines()
        for line in filter(None, lines):
            incident = qflow.parse_incident(json.loads(line))
            d = engine.decide(incident, incident.reported_at)
            matched = tuple(f"{s.section}:{s.rule}" for s in d.trace if s.outcome == "matched"
                            and s.section in ("classify", "route"))
            assert matched == d.matched, incident.id


def test_a_severity_a_plugin_decides_must_be_the_rulesets(clock):
    class Urgent:
        @hookimpl(tryfirst=True)
        def qflow_classify(self, incident):
            return Classification(severity="urgent", source="plugin:site")

    pm = qflow.make_plugin_manager(autoload=False, plugins=[Urgent()])
    engine = Engine(qflow.load_ruleset_text(BASE_TEXT, file="base.yaml", plugins=pm), plugins=pm, clock=clock)
    with pytest.raises(qflow.PluginError) as info:
        engine.report({"description": "x"})
    assert str(info.value) == ("plugin:site decided severity 'urgent', which ruleset test-desk does not define (it "
                               "has: critical, high, normal); return one of those, or define 'urgent' in the ruleset")
    assert engine.query() == []


class _Lobby:
    """Decides the severity of lobby incidents ahead of the rules."""

    def __init__(self, severity: str) -> None:
        self.severity = severity

    @hookimpl(tryfirst=True)
    def qflow_classify(self, incident):
        if incident.place == "lobby":
            return Classification(severity=self.severity, source="plugin:lobby")
        return None


class _Router:
    @hookimpl(tryfirst=True)
    def qflow_route(self, incident):
        return qflow.Assignment(team="engineering", source="plugin:router")


def _rule_steps(decision, sections=("classify", "route")):
    return [(s.section, s.rule, s.outcome, s.reason) for s in decision.trace
            if s.section in sections and s.outcome in ("matched", "would have matched")]


def test_the_trace_names_the_plugin_that_decided_a_field_a_matching_rule_also_sets(clock):
    pm = qflow.make_plugin_manager(autoload=False, plugins=[_Lobby("critical"), _Router()])
    engine = Engine(qflow.load_ruleset_text(BASE_TEXT, file="base.yaml", plugins=pm), plugins=pm, clock=clock)
    d = engine.decide(GOLD_CALL, T0)
    assert (d.severity, d.team) == ("critical", "engineering")
    assert d.sources == {"category": "report", "severity": "plugin:lobby", "team": "plugin:router"}
    assert _rule_steps(d) == [
        ("classify", "vip-complaint", "matched",
         "all hold: channel is 'phone'; category is 'complaint'; customer.tier is 'gold'; would set severity=high, "
         "but plugin:lobby decided severity=critical"),
        ("route", "default", "matched",
         "default (no conditions); would set team=front-office, but plugin:router decided team=engineering"),
    ]
    # A rule whose other field stands is credited with that one.
    smoke = attrs.evolve(GOLD_CALL, category=None, description="大堂有烟 smoke in the lobby")
    d = engine.decide(smoke, T0)
    assert (d.category, d.severity) == ("safety", "critical")
    assert _rule_steps(d, ("classify",)) == [
        ("classify", "safety", "matched",
         "description is '大堂有烟 smoke in the lobby', matching '(?i)fire|smoke|火|烟'; sets category=safety, "
         "but plugin:lobby decided severity=critical"),
    ]
    # Where the plugin gives the rule's value, the decision still has it from the plugin,
    # and so does the trace; without the plugin the rule is credited as before.
    same = qflow.make_plugin_manager(autoload=False, plugins=[_Lobby("high")])
    engine = Engine(qflow.load_ruleset_text(BASE_TEXT, file="base.yaml", plugins=same), plugins=same, clock=clock)
    d = engine.decide(GOLD_CALL, T0)
    assert d.sources["severity"] == "plugin:lobby"
    assert [r[3] for r in _rule_steps(d, ("classify",))] == [
        "all hold: channel is 'phone'; category is 'complaint'; customer.tier is 'gold'; would set severity=high, "
        "but plugin:lobby decided severity=high"]
    d = engine.decide(attrs.evolve(GOLD_CALL, place="1203"), T0)
    assert [r[3] for r in _rule_steps(d, ("classify",))] == [
        "all hold: channel is 'phone'; category is 'complaint'; customer.tier is 'gold'; sets severity=high"]


def test_in_a_section_with_a_mode_and_in_a_shadow_rule_the_trace_names_the_plugin_too(clock):
    text = BASE_TEXT.split("route:")[0] + (
        "route:\n  mode: first\n  rules:\n"
        "    - {id: lobby, when: {place: lobby}, assign: {team: front-office}}\n"
        "    - {id: try-hsk, shadow: true, when: {place: lobby}, assign: {team: housekeeping}}\n"
        "  default: {team: front-office}\n")
    pm = qflow.make_plugin_manager(autoload=False, plugins=[_Router()])
    engine = Engine(qflow.load_ruleset_text(text, file="modes.yaml", plugins=pm), plugins=pm, clock=clock)
    d = engine.decide(GOLD_CALL, T0)
    assert _rule_steps(d, ("route",)) == [
        ("route", "lobby", "matched",
         "place is 'lobby'; would set team=front-office, but plugin:router decided team=engineering"),
        ("route", "try-hsk", "would have matched",
         "shadow rule, the decision is unchanged: place is 'lobby'; would set team=housekeeping (decided: engineering)"),
    ]


def test_a_plugin_that_raises_in_a_decision_is_named_with_its_hook(clock):
    class Broken:
        @hookimpl(tryfirst=True)
        def qflow_classify(self, incident):
            raise KeyError("boom")

    pm = qflow.make_plugin_manager(autoload=False, plugins=[(Broken(), "site-rules")])
    engine = Engine(qflow.load_ruleset_text(BASE_TEXT, file="base.yaml", plugins=pm), plugins=pm, clock=clock)
    with pytest.raises(qflow.PluginError) as info:
        engine.report({"description": "x"})
    assert str(info.value) == "plugin site-rules failed in qflow_classify: KeyError: 'boom'"
    assert isinstance(info.value.__cause__, KeyError) and engine.query() == []


# -- a plugin that raises, or returns what its hook does not, is named with its hook -------


def _engine_with(clock, *plugins):
    pm = qflow.make_plugin_manager(autoload=False, plugins=list(plugins))
    return Engine(qflow.load_ruleset_text(BASE_TEXT, file="base.yaml", plugins=pm), plugins=pm, clock=clock)


def _hooks(**functions):
    """A plugin object whose hooks are *functions* (hook name -> function)."""
    import types

    return types.SimpleNamespace(**{name: hookimpl(tryfirst=True)(fn) for name, fn in functions.items()})


@pytest.mark.parametrize(("hook", "returned", "expected"), [
    ("qflow_classify", {"severity": "high"},
     "plugin site returned dict {'severity': 'high'} from qflow_classify; return a qflow.Classification, or None "
     "for no opinion"),
    ("qflow_route", "front-office",
     "plugin site returned str 'front-office' from qflow_route; return a qflow.Assignment, or None to let the next "
     "plugin decide"),
    ("qflow_deadline", [{"clock": "respond"}],
     "plugin site returned list [{'clock': 'respond'}] from qflow_deadline; return a list of qflow.Deadline, or None "
     "to let the next plugin decide"),
    ("qflow_schedule", {"respond": T0},
     "plugin site returned dict {'respond': datetime.datetime(2026, 11, 20, 23, 10, tzinf... from "
     "qflow_schedule; return a list of qflow.Timer (empty for none)"),
])
def test_a_hook_returning_what_it_does_not_return_is_a_plugin_error_naming_plugin_and_hook(
        clock, hook, returned, expected):
    engine = _engine_with(clock, (_hooks(**{hook: lambda incident=None, state=None: returned}), "site"))
    with pytest.raises(qflow.PluginError) as info:
        engine.report({"description": "x"})
    assert str(info.value) == expected
    assert engine.query() == []


def test_the_trace_names_a_plugin_that_fails_to_explain(clock):
    engine = _engine_with(clock, (_hooks(qflow_explain=lambda incident: 1 / 0), "site"))
    decision = engine.decide(GOLD_CALL, T0)
    with pytest.raises(qflow.PluginError) as info:
        list(decision.trace)
    assert str(info.value) == "plugin site failed in qflow_explain: ZeroDivisionError: division by zero"
    one = _engine_with(clock, (_hooks(qflow_explain=lambda incident: qflow.TraceStep("x", None, "info", "y")), "site"))
    with pytest.raises(qflow.PluginError) as info:
        list(one.decide(GOLD_CALL, T0).trace)
    assert str(info.value) == ("plugin site returned TraceStep TraceStep(section='x', rule=None, outcome='info', "
                               "reason=... from qflow_explain; return a list of qflow.TraceStep (empty for nothing "
                               "to say)")


@pytest.mark.parametrize(("guard", "expected"), [
    (lambda state: 1 / 0, "plugin site failed in qflow_transition_guard: ZeroDivisionError: division by zero"),
    (lambda state: True, "plugin site returned bool True from qflow_transition_guard; return None to allow, or a "
                         "sentence (str) saying why not and what to do"),
])
def test_a_transition_guard_that_fails_is_a_plugin_error_and_nothing_moves(clock, guard, expected):
    engine = _engine_with(clock, (_hooks(qflow_transition_guard=guard), "site"))
    state = engine.report({"description": "x"})
    with pytest.raises(qflow.PluginError) as info:
        engine.transition(state.id, Stage.CONFIRMED, actor="mgr")
    assert str(info.value) == expected
    assert engine.get(state.id).stage is Stage.REPORTED


def test_a_command_guard_that_fails_is_a_plugin_error(clock):
    engine = _engine_with(clock, (_hooks(qflow_command_guard=lambda command: 1 / 0), "site"))
    state = engine.report({"description": "x"})
    with pytest.raises(qflow.PluginError) as info:
        engine.confirm(state.id, actor="mgr")
    assert str(info.value) == "plugin site failed in qflow_command_guard: ZeroDivisionError: division by zero"
    assert engine.get(state.id).stage is Stage.REPORTED


def test_a_failure_under_another_plugins_wrapper_is_still_named(clock):
    class Wrapper:
        @hookimpl(wrapper=True)
        def qflow_classify(self):
            return (yield)

    engine = _engine_with(clock, (Wrapper(), "wrap"), (_hooks(qflow_classify=lambda incident: {}["boom"]), "site"))
    with pytest.raises(qflow.PluginError) as info:
        engine.report({"description": "x"})
    assert str(info.value) == "plugin site failed in qflow_classify: KeyError: 'boom'"


@pytest.mark.parametrize(("hook", "returned", "expected"), [
    ("qflow_ruleset_sections", qflow.Section("night", dict),
     "plugin site returned Section Section(name='night', type=<class 'dict'>, compile=None, ... from "
     "qflow_ruleset_sections; return a list of qflow.Section (empty for none)"),
    ("qflow_condition_functions", ["mentions"],
     "plugin site returned list ['mentions'] from qflow_condition_functions; return a list of "
     "qflow.conditions.ConditionFunction (empty for none)"),
])
def test_a_load_time_hook_returning_something_else_is_a_plugin_error(hook, returned, expected):
    pm = qflow.make_plugin_manager(autoload=False, plugins=[(_hooks(**{hook: lambda: returned}), "site")])
    with pytest.raises(qflow.PluginError) as info:
        qflow.load_ruleset_text(BASE_TEXT, plugins=pm)
    assert str(info.value) == expected


# -- what an embedding developer gets wrong first is refused at once, saying what to give ---


def test_an_engine_refuses_a_ruleset_path_a_clock_placeholder_or_a_store_it_cannot_use(base_ruleset):
    with pytest.raises(TypeError) as info:
        Engine("rulesets/hotel-front-desk.yaml")
    assert str(info.value) == ("Engine needs a loaded qflow.Ruleset, got str 'rulesets/hotel-front-desk.yaml'; to "
                               "load a file use Engine.from_path(path), or qflow.load_ruleset(path)")
    with pytest.raises(TypeError) as info:
        Engine(base_ruleset, clock=...)
    assert str(info.value) == ("clock must have a now() that returns an aware datetime (qflow.SystemClock(), "
                               "qflow.FakeClock(start)), got ellipsis Ellipsis")
    with pytest.raises(TypeError) as info:
        Engine(base_ruleset, store=42)
    assert str(info.value) == ("store must be a store URL (memory://, sqlite:///PATH, postgresql://...) or a "
                               "qflow.Store, got int 42")


def test_decide_takes_plain_data_as_report_does(engine):
    data = {"reported_at": "2026-11-20T23:10:00+08:00", "channel": "phone", "category": "complaint",
            "description": "前台办理入住等待超过30分钟", "customer": {"tier": "gold"}}
    assert engine.decide(data, T0) == engine.decide(qflow.parse_incident(data), T0)
    with pytest.raises(qflow.InputError) as info:
        engine.decide({"chanel": "phone"}, T0)
    assert str(info.value) == "unknown key 'chanel' (did you mean 'channel'?) @ $.chanel"


def test_a_time_without_a_zone_is_refused_naming_the_argument(engine):
    naive = datetime(2026, 11, 21, 8, 0)
    expected = ("now 2026-11-21T08:00:00 has no time zone; give an aware datetime, e.g. now=datetime(2026, 11, 21, "
                "8, 0, tzinfo=ZoneInfo('Asia/Shanghai')), or leave it out for the engine's clock")
    for command in (lambda: engine.decide(GOLD_CALL, naive), lambda: engine.tick(naive),
                    lambda: engine.deliver(naive)):
        with pytest.raises(qflow.InputError) as info:
            command()
        assert str(info.value) == expected
    with pytest.raises(qflow.InputError) as info:
        engine.due("2026-11-21")
    assert str(info.value) == "until must be a datetime with a time zone, got str '2026-11-21'"


def test_a_transition_to_a_stage_that_does_not_exist_names_the_stages(engine):
    state = engine.report(GOLD_CALL)
    with pytest.raises(qflow.TransitionError) as info:
        engine.transition(state.id, "confirmd")
    assert str(info.value) == "cannot move INC-1 to 'confirmd': there is no such stage (did you mean 'confirmed'?)"
    with pytest.raises(qflow.TransitionError) as info:
        engine.transition(state.id, "done")
    assert str(info.value) == ("cannot move INC-1 to 'done': there is no such stage (the stages are: reported, "
                               "confirmed, rejected, analysing, acting, verifying, closed, reopened)")
    assert engine.transition(state.id, "confirmed").stage is Stage.CONFIRMED


def test_query_names_a_filter_it_does_not_have(engine):
    engine.report(GOLD_CALL)
    with pytest.raises(TypeError) as info:
        engine.query(open=True)
    assert str(info.value) == "query() has no filter 'open' (did you mean 'open_only'?)"
    assert [s.id for s in engine.query(open_only=True, team="front-office")] == ["INC-1"]
    with pytest.raises(TypeError) as info:
        engine.query(qflow.IncidentQuery(), team="front-office")
    assert str(info.value) == "give query() an IncidentQuery or filters as keywords, not both"


def test_leaving_with_closes_the_store_and_a_closed_sqlite_store_says_so(base_ruleset, pm, clock, tmp_path):
    path = tmp_path / "site.sqlite3"
    with Engine(base_ruleset, plugins=pm, clock=clock, store=f"sqlite:///{path}") as engine:
        state = engine.report(GOLD_CALL)
    with pytest.raises(StoreError) as info:
        engine.get(state.id)
    assert str(info.value) == (f"the store {path} is closed: close() was called on it (by the application, or "
                               "AsyncEngine.aclose()); open the store again (a new Engine) to go on")
    with Engine(base_ruleset, plugins=pm, clock=clock, store=f"sqlite:///{path}") as again:
        assert again.get(state.id).id == state.id


def test_the_errors_an_embedding_application_catches_are_all_exported():
    from pathlib import Path

    from qflow import errors, store

    for name in (*errors.__all__, "StoreError"):
        assert name in qflow.__all__, name
        assert getattr(qflow, name) is getattr(errors, name, None) or getattr(qflow, name) is getattr(store, name)
        assert issubclass(getattr(qflow, name), (qflow.QflowError, qflow.RulesetError))
    with pytest.raises(qflow.StoreError) as info:
        qflow.Engine.from_path(Path(__file__).resolve().parents[1] / "rulesets/hotel-front-desk.yaml",
                               store="site.sqlite3")
    assert str(info.value) == ("'site.sqlite3' is not a store URL (it names no scheme); for an SQLite file write "
                               "sqlite:///site.sqlite3")


def test_a_report_with_text_where_a_list_belongs_is_refused_not_split_into_characters(engine):
    with pytest.raises(qflow.InputError) as info:
        engine.report({"description": "x", "tags": "vip"})
    assert str(info.value) == "expected a list, got 'vip' (write [vip] for a list of one) @ $.tags"
    assert engine.report({"description": "x", "tags": ["vip"]}).incident.tags == ("vip",)


def test_an_engine_given_no_clock_keeps_the_real_time_in_the_rulesets_zone(base_ruleset, pm):
    # What it records then reads in the zone of everything else the ruleset shows (the
    # worker's clock is the same); the repr names the zone, so no wall clock is read here.
    engine = qflow.Engine(base_ruleset, plugins=pm)
    assert repr(engine.clock) == "SystemClock(Asia/Shanghai)"
