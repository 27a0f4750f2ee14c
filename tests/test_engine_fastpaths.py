"""The decide fast paths: remembered classifications and sources, the hook plan's
check, and replay's line parser (orjson with json's behaviour)."""

from __future__ import annotations

import json
from datetime import timedelta

import pytest

import qflow
from qflow import Classification, Engine, Incident, hookimpl
from qflow.cli import _parse_line
from tests.conftest import T0


class OneAnswer:
    """Always the same prebuilt answer, leaving the category open, as a compiled rule does."""

    ANSWER = Classification(severity="high", source="plugin:one", matched=("plugin:one",))

    @hookimpl
    def qflow_classify(self):
        return self.ANSWER


class FreshAnswers:
    """A new object on every call: the memo must neither grow without bound nor confuse them."""

    def __init__(self):
        self.n = 0

    @hookimpl
    def qflow_classify(self):
        self.n += 1
        return Classification(severity="high", source=f"plugin:fresh{self.n}")


def _fresh_engine(base_ruleset, clock):
    return Engine(base_ruleset, plugins=qflow.make_plugin_manager(autoload=False), clock=clock)


def test_the_reported_category_is_kept_per_report_not_per_answer(base_ruleset, clock):
    engine = _fresh_engine(base_ruleset, clock)
    incidents = [Incident(reported_at=T0, description="late", category=c) for c in ("complaint", None, "equipment")]
    first = [engine.decide(i, T0) for i in incidents]
    again = [engine.decide(i, T0) for i in incidents * 2]
    fresh = [_fresh_engine(base_ruleset, clock).decide(i, T0) for i in incidents * 2]
    assert [(d.category, list(d.sources.items()), d.matched) for d in again] == \
        [(d.category, list(d.sources.items()), d.matched) for d in first * 2] == \
        [(d.category, list(d.sources.items()), d.matched) for d in fresh]
    assert [d.trace.steps for d in again] == [d.trace.steps for d in fresh]
    assert first[0].category == "complaint" and first[2].category == "equipment"


def test_a_plugin_answering_fresh_objects_is_decided_each_time(base_ruleset, clock):
    pm = qflow.make_plugin_manager(autoload=False)
    fresh = FreshAnswers()
    pm.register(fresh, name="fresh")
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    n = engine._MEMO_MAX + 10
    severities = {engine.decide(Incident(reported_at=T0, description="late"), T0).sources.get("severity")
                  for _ in range(n)}
    # Either the plugin alone decides (one answer) or it is merged with the rules;
    # whichever, a remembered answer never stands for a new one, and the memo is bounded.
    assert len(engine._classified) <= engine._MEMO_MAX and len(engine._assigned) <= engine._MEMO_MAX
    assert len(severities) in (1, n)


def test_plugins_registered_later_change_the_plan(base_ruleset, clock):
    pm = qflow.make_plugin_manager(autoload=False)
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    incident = Incident(reported_at=T0, description="late", category="complaint")
    before = engine.decide(incident, T0)
    pm.register(OneAnswer(), name="one")
    with_plugin = engine.decide(incident, T0)
    assert with_plugin.sources["severity"] in ("plugin:one", before.sources.get("severity"))
    pm.unregister(name="one")
    after = engine.decide(incident, T0)
    assert (after.severity, list(after.sources.items()), after.matched) == \
        (before.severity, list(before.sources.items()), before.matched)


@pytest.mark.parametrize("line", [
    '{"description": "x", "impact": 123456789012345678901234567890}',
    '{"description": "x", "impact": NaN}',
    '{"description": "x", "impact": 1e400}',
    '{"description": "x", "impact": 18446744073709551617}',
    '{"description": "\\ud800"}',
    '{"description": "x", "extra": {"n": 99999999999999999999}}',
    '{"description": "x"',
    '[1, 2]',
    '"text"',
    'null',
    '{"description": "x", "description": "y"}',
    '{"description": "é 😀", "tags": ["a"], "impact": 2}',
    '{"description": "x"} trailing',
    '\ufeff{"description": "x"}',
    '[' * 5000 + ']' * 5000,
])
def test_replay_lines_parse_as_json_would(line):
    def by_json(text):
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"QF401 not valid JSON: {exc.msg} at column {exc.colno}"
        except RecursionError:
            return "QF401 not valid JSON: nested too deeply"
        if not isinstance(data, dict):
            return "not an object"
        try:
            return qflow.parse_incident(data)
        except qflow.InputError as exc:
            return f"QF402 {exc}"

    got, want = _parse_line(line), by_json(line)
    if want == "not an object":
        assert isinstance(got, str) and got.startswith("QF401 expected a JSON object")
    else:
        assert got == want


def test_every_event_type_apply_folds_is_known_to_its_shortcut():
    """``apply`` moves only seq and updated_at for a type outside ``_FOLDED``: a kind
    of event given a branch of its own must be added there too."""
    import inspect
    import re

    from qflow import events as ev

    branches = set(re.findall(r"event\.type == ([A-Z_]+)", inspect.getsource(ev.apply)))
    branches.discard("INCIDENT_REPORTED")  # the first event, which the shortcut never sees
    assert branches and {getattr(ev, name) for name in branches} <= ev._FOLDED
    assert set(ev.LOOP_EVENTS) <= ev._FOLDED


def test_a_plugin_event_moves_only_seq_and_the_time(base_ruleset, clock):
    engine = Engine(base_ruleset, clock=clock)
    state = engine.report({"category": "complaint"})
    later = T0 + timedelta(hours=1)
    event = qflow.Event(state.id, state.seq + 1, later, "EscalationStepFired", data={"step": "warn"})
    after = qflow.events.apply(state, event)
    assert after == qflow.events._evolve(state, {"seq": state.seq + 1, "updated_at": later})
    assert after.decision == state.decision and after.stage is state.stage


def test_reporting_leaves_the_decisions_trace_unworked(base_ruleset, clock):
    # The DecisionMade event holds the decision without its trace; writing it out must
    # not work the trace out only to drop it (that was most of a report's cost).
    explained = []

    class Counting:
        @hookimpl
        def qflow_explain(self):
            explained.append(1)
            return []

    pm = qflow.make_plugin_manager(autoload=False, plugins=[Counting()])
    engine = Engine(base_ruleset, plugins=pm, clock=clock)
    state = engine.report({"channel": "phone", "category": "complaint", "description": "前台等待超过30分钟"})
    assert explained == []
    made = [e for e in engine.events(state.id) if e.type == "DecisionMade"][0]
    assert "trace" not in made.data and made.data["severity"] == state.decision.severity
    assert state.decision.trace.steps  # asked for, it is worked out
    assert explained == [1]
