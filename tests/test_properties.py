"""Whole-pipeline properties: a ruleset that loads never fails at decide, and the
trace always agrees with the decision."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import qflow

PM = qflow.make_plugin_manager(autoload=False)
T0 = datetime(2026, 11, 20, 12, 0, tzinfo=timezone(timedelta(hours=8)))

words = st.sampled_from(["complaint", "hygiene", "equipment", "phone", "gold", "火", "smoke", "", "x"])
fields = st.sampled_from(["category", "channel", "customer.tier", "description", "impact", "place", "tags",
                          "extra.room", "severity"])
scalars = st.one_of(words, st.integers(-2, 6), st.booleans(), st.none())
op_specs = st.one_of(
    scalars,
    st.lists(words, max_size=3),
    st.builds(lambda op, v: {op: v}, st.sampled_from(["eq", "ne", "in", "not_in", "gt", "le", "contains",
                                                       "icontains", "startswith", "matches", "exists",
                                                       "empty", "between"]),
              st.one_of(scalars, st.lists(scalars, max_size=3))),
)
leaf = st.dictionaries(fields, op_specs, min_size=1, max_size=3)
conditions = st.recursive(
    leaf,
    lambda inner: st.one_of(st.builds(lambda xs: {"any": xs}, st.lists(inner, min_size=1, max_size=3)),
                            st.builds(lambda x: {"not": x}, inner),
                            st.builds(lambda xs: {"all": xs}, st.lists(inner, min_size=1, max_size=3))),
    max_leaves=6,
)
rules = st.lists(
    st.tuples(st.none() | conditions, st.sampled_from(["critical", "high", "normal"]),
              st.none() | st.sampled_from(["complaint", "safety"])),
    min_size=1, max_size=12,
)
incidents = st.fixed_dictionaries(
    {},
    optional={
        "category": words, "channel": words, "description": st.text(max_size=20), "impact": st.integers(0, 6),
        "urgency": st.integers(0, 4), "place": words, "tags": st.lists(words, max_size=2),
        "customer": st.fixed_dictionaries({}, optional={"tier": words}),
        "extra": st.dictionaries(st.sampled_from(["room", "floor"]), scalars, max_size=2),
    },
)


def ruleset_text(rule_list) -> str:
    lines = ["qflow: 1", "teams: {desk: {}, housekeeping: {}}", "severities:",
             "  critical: {respond: 15m, resolve: 4h}", "  high: {respond: 1h, resolve: 1d}",
             "  normal: {respond: 4h, resolve: 3d}",
             "priority:", "  matrix: {1: [P3, P2], 2: [P2, P1]}", "  severity: {P1: critical, P2: high}",
             "classify:"]
    for i, (when, severity, category) in enumerate(rule_list):
        sets = {"severity": severity} | ({"category": category} if category else {})
        lines.append(f"  - id: r{i}")
        if when is not None:
            lines.append(f"    when: {json.dumps(when, ensure_ascii=False)}")
        lines.append(f"    set: {json.dumps(sets)}")
    lines += ["route:", "  - {id: clean, when: {category: hygiene}, assign: {team: housekeeping}}",
              "  - {id: sev, when: {severity: critical}, assign: {team: desk, owner: 值班经理}}",
              "  - {id: default, assign: {team: desk}}"]
    return "\n".join(lines) + "\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(rules, st.lists(incidents, min_size=1, max_size=5))
def test_a_ruleset_that_loads_decides_without_raising_and_explains_itself(rule_list, raw_incidents):
    try:
        ruleset = qflow.load_ruleset_text(ruleset_text(rule_list), file="gen.yaml", plugins=PM)
    except qflow.RulesetError as err:
        assert all(d.code.startswith("QF") and d.line >= 1 for d in err.diagnostics)
        return
    engine = qflow.Engine(ruleset, plugins=PM)
    for raw in raw_incidents:
        incident = qflow.parse_incident({**raw, "reported_at": T0.isoformat()})
        decision = engine.decide(incident, T0)
        assert decision.severity in ("critical", "high", "normal", None)
        traced = tuple(f"{s.section}:{s.rule}" for s in decision.trace
                       if s.outcome == "matched" and s.section in ("classify", "route"))
        assert traced == decision.matched
        assert decision.team in ("desk", "housekeeping")
