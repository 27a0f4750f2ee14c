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


# ---------------------------------------------------------------------------
# Expression strings and routing modes in random rulesets
# ---------------------------------------------------------------------------

typed_tests = st.one_of(
    st.builds(lambda f, op, v: f"{f} {op} {json.dumps(v, ensure_ascii=False)}",
              st.sampled_from(["category", "channel", "customer.tier", "place"]),
              st.sampled_from(["==", "!=", "startswith", "contains"]), words),
    st.builds(lambda f, op, v: f"{f} {op} {json.dumps(v, ensure_ascii=False)}",
              st.sampled_from(["category", "channel", "description"]), st.sampled_from(["in", "not in"]),
              st.lists(words, min_size=1, max_size=3)),
    st.builds(lambda f, op, v: f"{f} {op} {v}", st.sampled_from(["impact", "urgency"]),
              st.sampled_from(["==", "<", ">=", "!="]), st.integers(-1, 5)),
    st.builds(lambda f: f"exists({f})", fields),
)
expr_atoms = st.one_of(
    typed_tests, typed_tests, typed_tests,
    st.builds(lambda f, op, v: f"{f} {op} {json.dumps(v, ensure_ascii=False)}",
              fields, st.sampled_from(["==", "!=", "<", ">=", "in", "not in", "matches", "contains", "=", "between"]),
              st.one_of(scalars, st.lists(scalars, max_size=3))),
    st.sampled_from(["category == complaint", "(impact > 2", "impact > 2)", "", "not", "3 < impact", "'x' ==",
                     "vip_guest(true)", "category == \"a\" and and"]),
)
expressions = st.recursive(
    expr_atoms,
    lambda inner: st.one_of(st.builds(lambda a, b: f"({a}) and ({b})", inner, inner),
                            st.builds(lambda a, b: f"{a} or {b}", inner, inner),
                            st.builds(lambda a: f"not ({a})", inner)),
    max_leaves=4,
)
whens = st.none() | expressions | expressions | conditions
route_rules = st.lists(
    st.fixed_dictionaries({"id": st.sampled_from(["a", "b", "c", "d"]),
                           "assign": st.fixed_dictionaries({"team": st.sampled_from(["desk", "housekeeping"])},
                                                           optional={"owner": st.sampled_from(["王", "李"])})},
                          optional={"when": whens, "shadow": st.booleans(), "continue": st.booleans()}),
    max_size=6,
)
route_sections = st.one_of(
    route_rules,
    st.fixed_dictionaries({"rules": route_rules, "mode": st.sampled_from(["first", "all", "all", "first", "any"])},
                          optional={
                                    "default": st.fixed_dictionaries({}, optional={
                                        "team": st.sampled_from(["desk", "housekeeping"])})}),
)
classify_rules = st.lists(
    st.fixed_dictionaries({"id": st.sampled_from(["r1", "r2", "r3"]),
                           "set": st.fixed_dictionaries({"severity": st.sampled_from(["critical", "high", "normal"])},
                                                        optional={"category": st.sampled_from(["complaint", "safety"])})},
                          optional={"when": whens, "shadow": st.booleans()}),
    max_size=6,
)


def _unique_ids(rules, prefix):
    return [{**r, "id": f"{prefix}{i}"} for i, r in enumerate(rules)]


def moded_text(classify, route) -> str:
    classify = _unique_ids(classify, "c")
    route = _unique_ids(route, "r") if isinstance(route, list) else {**route, "rules": _unique_ids(route["rules"], "r")}
    head = ruleset_text([(None, "normal", None)]).split("classify:")[0]
    return head + f"classify: {json.dumps(classify, ensure_ascii=False)}\nroute: {json.dumps(route, ensure_ascii=False)}\n"


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(classify_rules, route_sections, st.lists(incidents, min_size=1, max_size=4))
def test_rulesets_with_expressions_and_modes_check_cleanly_and_decide_without_raising(classify, route, raw_incidents):
    from qflow._lint import lint_ruleset

    try:
        ruleset = qflow.load_ruleset_text(moded_text(classify, route), file="gen.yaml", plugins=PM)
    except qflow.RulesetError as err:
        assert err.diagnostics
        assert all(d.code in qflow.diagnostics.CODES and d.line >= 1 and d.col >= 1 for d in err.diagnostics)
        return
    assert all(d.severity == "warning" for d in lint_ruleset(ruleset, PM))
    engine = qflow.Engine(ruleset, plugins=PM)
    for raw in raw_incidents:
        incident = qflow.parse_incident({**raw, "reported_at": T0.isoformat()})
        decision = engine.decide(incident, T0)
        traced = tuple(f"{s.section}:{s.rule}" for s in decision.trace
                       if s.outcome == "matched" and s.section in ("classify", "route"))
        assert traced == decision.matched
