"""Expression strings: the one-line form compiles to what the structured form compiles
to, and every mistake points at the character inside the string."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import qflow
from qflow._view import incident_view
from qflow.conditions import compile_condition
from qflow.diagnostics import CODES, Diagnostic
from qflow.model import Customer, Incident

PM = qflow.make_plugin_manager(autoload=False)

HEAD = """\
qflow: 1
teams: {desk: {}}
severities:
  high: {respond: 1h, resolve: 1d}
  normal: {respond: 4h, resolve: 3d}
classify:
"""
TAIL = """\
  - {id: d, set: {severity: normal}}
route:
  - {id: d, assign: {team: desk}}
"""


def compile_both(expression: str, structured: Any) -> tuple[Any, Any]:
    out = []
    for node in (expression, structured):
        errors: list[Diagnostic] = []
        c = compile_condition(node, at=None, path=("when",), functions={}, errors=errors)
        assert errors == [], [str(e) for e in errors]
        out.append(c)
    return out[0], out[1]


def view(**kw: Any) -> dict[str, Any]:
    out = incident_view(Incident())
    out.update(kw)
    return out


def load_errors(tmp_path, when: str) -> list[str]:
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + f"  - id: r\n    when: {when}\n    set: {{severity: high}}\n" + TAIL, encoding="utf-8")
    with pytest.raises(qflow.RulesetError) as err:
        qflow.load_ruleset(path, plugins=PM)
    return [str(d).replace(str(tmp_path), "T") for d in err.value.diagnostics]


def test_the_example_from_the_issue_compiles_like_the_structured_form():
    e, s = compile_both('category == "complaint" and customer.tier in ["gold", "platinum"] and impact >= 3',
                        {"category": {"eq": "complaint"}, "customer.tier": {"in": ["gold", "platinum"]},
                         "impact": {"ge": 3}})
    assert e.text == s.text == "category == 'complaint' and customer.tier in ['gold', 'platinum'] and impact >= 3"
    assert dict(e.equalities) == dict(s.equalities) == {
        "category": frozenset({"complaint"}), "customer.tier": frozenset({"gold", "platinum"})}
    gold = view(category="complaint", impact=3, customer={"tier": "gold"})
    silver = view(category="complaint", impact=3, customer={"tier": "silver"})
    assert e.test(gold) and not e.test(silver)
    assert e.explain(gold) == s.explain(gold) == (
        True, "all hold: category is 'complaint'; customer.tier is 'gold'; impact is 3, at least 3")
    assert e.explain(silver) == s.explain(silver) == (
        False, "customer.tier is 'silver', not one of 'gold', 'platinum'")


@pytest.mark.parametrize(("expression", "structured"), [
    ('not (channel == "phone" or channel == "onsite")',
     {"not": {"any": [{"channel": {"eq": "phone"}}, {"channel": {"eq": "onsite"}}]}}),
    ('channel not in ["phone"] and place != "lobby"', {"channel": {"not_in": ["phone"]}, "place": {"ne": "lobby"}}),
    ('description matches "(?i)fire|火" or tags contains "vip"',
     {"any": [{"description": {"matches": "(?i)fire|火"}}, {"tags": {"contains": "vip"}}]}),
    ("exists(customer.tier) and not empty(tags)", {"customer.tier": {"exists": True}, "not": {"tags": {"empty": True}}}),
    ("impact between [2, 4] and urgency < 3", {"impact": {"between": [2, 4]}, "urgency": {"lt": 3}}),
    ('tags not contains "spam"', {"tags": {"not_contains": "spam"}}),
    ('description startswith ["VIP", "贵宾"]', {"description": {"startswith": ["VIP", "贵宾"]}}),
    ("extra.floor > -1.5", {"extra.floor": {"gt": -1.5}}),
    ("extra.vip == true and extra.note == null", {"extra.vip": {"eq": True}, "extra.note": {"eq": None}}),
])
def test_each_construct_matches_its_structured_twin(expression, structured):
    e, s = compile_both(expression, structured)
    for v in (view(channel="phone", place="lobby", tags=["vip"], impact=3, urgency=2, description="VIP fire"),
              view(channel="email", customer={"tier": "gold"}, tags=["x"], extra={"floor": 2, "vip": True}),
              view(description="贵宾 room", tags=[], extra={"floor": -2}), view()):
        assert e.test(v) == s.test(v)
        assert e.explain(v) == s.explain(v)


def test_a_plugin_predicate_is_a_function_call():
    calls = []
    fn = qflow.conditions.ConditionFunction("vip_guest", lambda arg: (calls.append(arg), lambda v: arg)[1],
                                            whole_incident=True)
    errors: list[Diagnostic] = []
    c = compile_condition("vip_guest(true) and category == 'x'", at=None, path=("when",),
                          functions={"vip_guest": fn}, errors=errors)
    assert errors == [] and calls == [True]
    assert c.test(view(category="x")) and not c.test(view(category="y"))
    assert c.text == "vip_guest(true) and category == 'x'"


@pytest.mark.parametrize(("when", "expected"), [
    ("''",
     "T/r.yaml:8:12: QF310 the expression is empty (write a test such as category == \"complaint\", or remove "
     "'when') @ $.classify[0].when (rule 'r')"),
    ("'   '",
     "T/r.yaml:8:12: QF310 the expression is empty (write a test such as category == \"complaint\", or remove "
     "'when') @ $.classify[0].when (rule 'r')"),
    ("'category == complaint'",
     "T/r.yaml:8:24: QF307 expected a value, found the name 'complaint' (write text in quotes: \"complaint\") "
     "@ $.classify[0].when (rule 'r')"),
    ("'category = \"complaint\"'",
     "T/r.yaml:8:21: QF306 '=' is not an operator (compare with '==') @ $.classify[0].when (rule 'r')"),
    ("'(impact > 2 and urgency < 3'",
     "T/r.yaml:8:12: QF309 '(' is never closed (add ')') @ $.classify[0].when (rule 'r')"),
    ("'impact > 2)'",
     "T/r.yaml:8:22: QF309 ')' has no matching '(' (remove it or add the '(') @ $.classify[0].when (rule 'r')"),
    ("'3 < impact'",
     "T/r.yaml:8:12: QF308 a test starts with a field, not the value 3 (put the field first, e.g. impact >= 3) "
     "@ $.classify[0].when (rule 'r')"),
    ("'category == \"complaint'",
     "T/r.yaml:8:24: QF306 the text has no closing quote (end it with \") @ $.classify[0].when (rule 'r')"),
    ("'impact >= 3 and'",
     "T/r.yaml:8:27: QF307 expected a field or a test such as category == \"complaint\", found the end of the "
     "expression @ $.classify[0].when (rule 'r')"),
    ("'tier in [[\"a\"]]'",
     "T/r.yaml:8:21: QF311 a list cannot hold another list (list plain values: [\"gold\", \"platinum\"]) "
     "@ $.classify[0].when (rule 'r')"),
    ("'category && impact'",
     "T/r.yaml:8:21: QF306 '&&' is not an operator (write 'and') @ $.classify[0].when (rule 'r')"),
    ('"impact >= 3 and categry == \'x\'"',
     "T/r.yaml:8:28: QF301 unknown field 'categry' (did you mean 'category'?) @ $.classify[0].when (rule 'r')"),
    ("'impact > \"3\"'",
     "T/r.yaml:8:21: QF303 impact holds a number, so 'gt' with the text '3' can never hold "
     "(give a number without quotes, e.g. 3) @ $.classify[0].when (rule 'r')"),
    ("'description matches \"(a+)+$\"'",
     "T/r.yaml:8:32: QF305 the regular expression '(a+)+$' can backtrack catastrophically (a repeated part can "
     "match the same text in many ways, so a long description could stall the engine) (rewrite without a repeat "
     "inside a repeat, or use an atomic group (?>...) or a possessive quantifier like a++) "
     "@ $.classify[0].when (rule 'r')"),
    ("'impact mentions 3'",
     "T/r.yaml:8:19: QF302 unknown operator 'mentions' (use one of: eq, ne, in, not_in, lt, le, gt, ge, between, "
     "matches, contains, not_contains, icontains, startswith, endswith, exists, empty) "
     "@ $.classify[0].when (rule 'r')"),
])
def test_mistakes_point_at_the_character(tmp_path, when, expected):
    assert load_errors(tmp_path, when) == [expected]


def test_an_empty_when_is_one_empty_expression_and_a_bare_word_is_still_a_shape_mistake(tmp_path):
    # '' is a text, and a text under 'when' is an expression: one mistake, QF310, the
    # same from the loader, compile_condition and inside any:, never QF103 elsewhere.
    errors: list[Diagnostic] = []
    assert compile_condition("", at=None, path=("when",), functions={}, errors=errors, file="gen.yaml") is None
    assert [str(e) for e in errors] == [
        "gen.yaml:1:1: QF310 the expression is empty (write a test such as category == \"complaint\", or remove "
        "'when') @ $.when"]
    assert load_errors(tmp_path, "{any: [{category: a}, '']}") == [
        "T/r.yaml:8:34: QF310 the expression is empty (write a test such as category == \"complaint\", or remove "
        "'when') @ $.classify[0].when.any[1] (rule 'r')"]
    assert load_errors(tmp_path, "complaint") == [
        "T/r.yaml:8:11: QF103 a condition must be a mapping such as {category: complaint}, not the text "
        "'complaint' (write field: value pairs (all must hold), or any:/all:/not:) @ $.classify[0].when (rule 'r')"]


def test_a_plain_scalar_and_an_expression_inside_any_are_located_too(tmp_path):
    assert load_errors(tmp_path, "impact >= x") == [
        "T/r.yaml:8:21: QF307 expected a value, found the name 'x' (write text in quotes: \"x\") "
        "@ $.classify[0].when (rule 'r')"]
    assert load_errors(tmp_path, "{any: [{category: a}, 'impact >> 2']}") == [
        "T/r.yaml:8:42: QF307 expected a value (quoted text, a number, true, false, null or a [list]), "
        "found '>' @ $.classify[0].when.any[1] (rule 'r')"]


def test_where_the_source_does_not_show_the_text_the_character_is_named():
    errors: list[Diagnostic] = []
    assert compile_condition("impact >= x", at=None, path=("when",), functions={}, errors=errors,
                             file="gen.yaml") is None
    assert [str(e) for e in errors] == [
        "gen.yaml:1:1: QF307 expected a value, found the name 'x' (at character 11 of the expression) "
        "(write text in quotes: \"x\") @ $.when"]


def test_every_expression_code_is_documented():
    for code in ("QF306", "QF307", "QF308", "QF309", "QF310", "QF311"):
        assert code in CODES


def test_a_ruleset_with_expressions_decides_like_its_structured_twin(tmp_path):
    exp = tmp_path / "e.yaml"
    exp.write_text(HEAD + "  - id: vip\n    when: 'category == \"complaint\" and customer.tier in [\"gold\"]'\n"
                   "    set: {severity: high}\n" + TAIL, encoding="utf-8")
    structured = tmp_path / "s.yaml"
    structured.write_text(HEAD + "  - id: vip\n    when: {category: complaint, customer.tier: [gold]}\n"
                          "    set: {severity: high}\n" + TAIL, encoding="utf-8")
    a = qflow.Engine(qflow.load_ruleset(exp, plugins=PM), plugins=PM)
    b = qflow.Engine(qflow.load_ruleset(structured, plugins=PM), plugins=PM)
    for inc in (Incident(category="complaint", customer=Customer(tier="gold")), Incident(category="complaint")):
        now = datetime(2026, 11, 20, tzinfo=UTC)
        da, db = a.decide(inc, now), b.decide(inc, now)
        assert (da.severity, da.matched) == (db.severity, db.matched)
        assert [(s.rule, s.outcome, s.reason) for s in da.trace] == [(s.rule, s.outcome, s.reason) for s in db.trace]


# ---------------------------------------------------------------------------
# Property: both forms agree on random incidents
# ---------------------------------------------------------------------------

TEXT_FIELDS = ["category", "channel", "place", "customer.tier", "description", "extra.room"]
NUM_FIELDS = ["impact", "urgency"]
words = st.sampled_from(["complaint", "phone", "gold", "lobby", "火", "", "a b", 'quote"d'])
numbers = st.integers(-3, 6) | st.sampled_from([2.5, -0.5])


def _lit(v: Any) -> str:
    return json.dumps(v, ensure_ascii=False)


@st.composite
def leaves(draw):
    if draw(st.booleans()):
        field = draw(st.sampled_from(TEXT_FIELDS))
        op = draw(st.sampled_from(["==", "!=", "in", "not in", "matches", "contains", "startswith", "exists"]))
        if op in ("in", "not in"):
            vals = draw(st.lists(words, min_size=1, max_size=3))
            name = {"in": "in", "not in": "not_in"}[op]
            return f"{field} {op} [{', '.join(map(_lit, vals))}]", {field: {name: vals}}
        if op == "exists":
            return f"exists({field})", {field: {"exists": True}}
        v = draw(words)
        if op == "matches":
            v = draw(st.sampled_from(["^a", "(?i)PHONE", "火|fire", "o"]))
        name = {"==": "eq", "!=": "ne", "matches": "matches", "contains": "contains", "startswith": "startswith"}[op]
        return f"{field} {op} {_lit(v)}", {field: {name: v}}
    field = draw(st.sampled_from(NUM_FIELDS))
    op = draw(st.sampled_from(["==", "!=", "<", "<=", ">", ">=", "between"]))
    if op == "between":
        lo, hi = sorted(draw(st.lists(numbers, min_size=2, max_size=2)))
        return f"{field} between [{lo}, {hi}]", {field: {"between": [lo, hi]}}
    v = draw(numbers)
    name = {"==": "eq", "!=": "ne", "<": "lt", "<=": "le", ">": "gt", ">=": "ge"}[op]
    return f"{field} {op} {v}", {field: {name: v}}


def _combine(inner):
    pair = st.lists(inner, min_size=2, max_size=3)
    return st.one_of(
        pair.map(lambda xs: ("(" + " and ".join(x[0] for x in xs) + ")", {"all": [x[1] for x in xs]})),
        pair.map(lambda xs: ("(" + " or ".join(x[0] for x in xs) + ")", {"any": [x[1] for x in xs]})),
        inner.map(lambda x: (f"not {x[0]}" if x[0].startswith("(") else f"not ({x[0]})", {"not": x[1]})),
    )


pairs = st.recursive(leaves(), _combine, max_leaves=6)
incidents = st.fixed_dictionaries({}, optional={
    "category": words, "channel": words, "place": words, "description": words,
    "impact": numbers, "urgency": numbers, "customer": st.fixed_dictionaries({}, optional={"tier": words}),
    "extra": st.fixed_dictionaries({}, optional={"room": words | numbers}),
})


@settings(max_examples=200, deadline=None)
@given(pairs, st.lists(incidents, min_size=1, max_size=6))
def test_expression_and_structured_forms_agree_on_random_incidents(pair, raw_incidents):
    expression, structured = pair
    e, s = compile_both(expression, structured)
    assert e.text == s.text
    for raw in raw_incidents:
        v = view(**raw)
        assert e.test(v) == s.test(v)
        assert e.explain(v) == s.explain(v)
