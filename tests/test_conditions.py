"""The condition language: behaviour of every operator, readable texts and reasons, and
every load-time diagnostic as an exact string."""

from __future__ import annotations

import textwrap
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from qflow._view import FIELDS, incident_view
from qflow._yaml import Mark, load_yaml
from qflow.conditions import (
    ALWAYS,
    NEVER,
    OPERATORS,
    Condition,
    ConditionFunction,
    compile_condition,
)
from qflow.diagnostics import CODES, Diagnostic
from qflow.model import Attachment, Customer, Incident

CST = timezone(timedelta(hours=8))


def compile_rule(text: str, *, functions: dict[str, ConditionFunction] | None = None,
                 file: str = "r.yaml") -> tuple[Condition | None, list[str]]:
    """Compile the ``when`` of the first classify rule in a YAML document."""
    doc, problems = load_yaml(textwrap.dedent(text), file)
    assert problems == []
    rule = doc["classify"][0]
    errors: list[Diagnostic] = []
    cond = compile_condition(rule["when"], at=rule.value_marks["when"], path=("classify", 0, "when"),
                             functions=functions or {}, errors=errors, rule=rule.get("id"), file=file)
    return cond, [str(e) for e in errors]


def cond(when: str, **kw: Any) -> Condition:
    """Compile a condition written as the YAML block under ``when:``; it must be valid."""
    body = textwrap.indent(textwrap.dedent(when).strip("\n"), "      ")
    compiled, errors = compile_rule(f"classify:\n  - id: r\n    when:\n{body}\n", **kw)
    assert errors == []
    assert compiled is not None
    return compiled


def errors_of(when: str, **kw: Any) -> list[str]:
    """The diagnostics for a condition under ``when:`` (line 4 is its first line, col 7)."""
    body = textwrap.indent(textwrap.dedent(when).strip("\n"), "      ")
    compiled, errors = compile_rule(f"classify:\n  - id: r\n    when:\n{body}\n", **kw)
    assert compiled is None
    return errors


def view(**fields: Any) -> dict[str, Any]:
    """A complete view of an empty incident, with *fields* replaced."""
    out = incident_view(Incident())
    out.update(fields)
    return out


def check(c: Condition, v: dict[str, Any]) -> tuple[bool, str]:
    """Run both paths; they must agree."""
    ok, reason = c.explain(v)
    assert c.test(v) is ok
    return ok, reason


# ---------------------------------------------------------------------------
# Equality and membership
# ---------------------------------------------------------------------------


def test_a_scalar_means_exact_equality():
    c = cond("category: complaint")
    assert c.text == "category == 'complaint'"
    assert check(c, view(category="complaint")) == (True, "category is 'complaint'")
    assert check(c, view(category="Complaint")) == (False, "category is 'Complaint', not 'complaint'")
    assert check(c, view(category="complaint ")) == (False, "category is 'complaint ', not 'complaint'")
    assert check(c, view(category=None)) == (False, "category is missing, not 'complaint'")
    assert dict(c.equalities) == {"category": frozenset({"complaint"})}
    assert c.always is False


def test_a_list_means_one_of():
    c = cond("channel: [phone, onsite]")
    assert c.text == "channel in ['phone', 'onsite']"
    assert check(c, view(channel="onsite")) == (True, "channel is 'onsite'")
    assert check(c, view(channel="email")) == (False, "channel is 'email', not one of 'phone', 'onsite'")
    assert check(c, view(channel=["phone"])) == (False, "channel is ['phone'], not one of 'phone', 'onsite'")
    assert dict(c.equalities) == {"channel": frozenset({"phone", "onsite"})}


def test_eq_ne_in_not_in_operators():
    eq = cond("category: {eq: 投诉}")
    ne = cond("category: {ne: 投诉}")
    in_ = cond("customer.tier: {in: [gold, platinum]}")
    not_in = cond("customer.tier: {not_in: [gold, platinum]}")
    assert (eq.text, ne.text) == ("category == '投诉'", "category != '投诉'")
    assert (in_.text, not_in.text) == ("customer.tier in ['gold', 'platinum']",
                                       "customer.tier not in ['gold', 'platinum']")
    assert check(eq, view(category="投诉")) == (True, "category is '投诉'")
    assert check(ne, view(category="投诉")) == (False, "category is '投诉'")
    assert check(ne, view(category="卫生")) == (True, "category is '卫生', not '投诉'")
    # the negations are exact negations: a missing value is "not equal"
    assert check(ne, view(category=None)) == (True, "category is missing, not '投诉'")
    gold, silver = view(customer={"tier": "gold"}), view(customer={"tier": "silver"})
    assert check(in_, gold) == (True, "customer.tier is 'gold'")
    assert check(in_, silver) == (False, "customer.tier is 'silver', not one of 'gold', 'platinum'")
    assert check(in_, view(customer=None)) == (False, "customer.tier is missing, not one of 'gold', 'platinum'")
    assert check(not_in, gold) == (False, "customer.tier is 'gold'")
    assert check(not_in, silver) == (True, "customer.tier is 'silver', not one of 'gold', 'platinum'")
    assert check(not_in, view(customer=None)) == (True, "customer.tier is missing, not one of 'gold', 'platinum'")
    assert dict(eq.equalities) == {"category": frozenset({"投诉"})}
    assert dict(ne.equalities) == {} and dict(not_in.equalities) == {}


def test_numbers_never_equal_true_or_false_or_text():
    c = cond("extra.level: 1")
    assert check(c, view(extra={"level": 1}))[0] is True
    assert check(c, view(extra={"level": 1.0}))[0] is True
    assert check(c, view(extra={"level": True})) == (False, "extra.level is true, not 1")
    assert check(c, view(extra={"level": "1"})) == (False, "extra.level is '1', not 1")
    flag = cond("extra.vip: true")
    assert check(flag, view(extra={"vip": True})) == (True, "extra.vip is true")
    assert check(flag, view(extra={"vip": 1})) == (False, "extra.vip is 1, not true")
    mixed = cond("extra.code: [1, A, false, null]")
    assert [mixed.test(view(extra={"code": v})) for v in (1, 1.0, "A", False, None, 0, True, "1")] == [
        True, True, True, True, True, False, False, False]
    assert check(mixed, view(extra={"code": 0})) == (False, "extra.code is 0, not one of 1, 'A', false, null")


def test_null_means_missing():
    c = cond("asset: null")
    assert c.text == "asset == null"
    assert check(c, view(asset=None)) == (True, "asset is missing")
    assert check(c, view(asset="pump-1")) == (False, "asset is 'pump-1', not null")


# ---------------------------------------------------------------------------
# Comparisons
# ---------------------------------------------------------------------------


def test_number_comparisons():
    v = view(impact=3)
    cases = {"lt: 3": False, "le: 3": True, "gt: 2": True, "ge: 4": False, "between: [3, 5]": True,
             "between: [1, 2.5]": False}
    for spec, expected in cases.items():
        assert check(cond(f"impact: {{{spec}}}"), v)[0] is expected, spec
    ge = cond("impact: {ge: 2}")
    assert ge.text == "impact >= 2"
    assert check(ge, view(impact=2)) == (True, "impact is 2, at least 2")
    assert check(ge, view(impact=1)) == (False, "impact is 1, not at least 2")
    assert check(ge, view(impact=None)) == (False, "impact is missing, not at least 2")
    assert check(ge, view(impact=2.5)) == (True, "impact is 2.5, at least 2")
    between = cond("urgency: {between: [2, 4]}")
    assert between.text == "urgency between 2 and 4"
    assert check(between, view(urgency=4)) == (True, "urgency is 4, between 2 and 4")
    assert check(between, view(urgency=5)) == (False, "urgency is 5, not between 2 and 4")
    assert cond("impact: {lt: 3}").text == "impact < 3"
    assert cond("impact: {le: 3}").text == "impact <= 3"
    assert cond("impact: {gt: 3}").text == "impact > 3"


def test_several_operators_on_one_field_all_hold():
    c = cond("impact: {ge: 2, le: 4}")
    assert c.text == "impact >= 2 and impact <= 4"
    assert check(c, view(impact=3)) == (True, "all hold: impact is 3, at least 2; impact is 3, at most 4")
    assert check(c, view(impact=5)) == (False, "impact is 5, not at most 4")


def test_comparisons_of_another_type_do_not_match_and_never_raise():
    gt = cond("extra.score: {gt: 2}")
    for value in (True, "3", None, [3], {"a": 3}, datetime(2026, 1, 1, tzinfo=CST)):
        assert gt.test(view(extra={"score": value})) is False
    assert check(gt, view(extra={"score": True})) == (
        False, "extra.score is true, not a number (needed for more than 2)")
    assert check(gt, view(extra={"score": "3"})) == (
        False, "extra.score is '3', not a number (needed for more than 2)")
    text = cond("extra.code: {ge: B}")
    assert text.test(view(extra={"code": "C"})) is True
    assert text.test(view(extra={"code": "A"})) is False
    assert check(text, view(extra={"code": 7})) == (False, "extra.code is 7, not text (needed for at least 'B')")


def test_date_time_comparisons():
    after_nine = cond("""
        reported_at:
          ge: 2026-11-20T09:00:00+08:00
    """)
    assert after_nine.text == "reported_at >= 2026-11-20T09:00:00+08:00"
    at_ten = datetime(2026, 11, 20, 10, 0, tzinfo=CST)
    assert check(after_nine, view(reported_at=at_ten)) == (
        True, "reported_at is 2026-11-20T10:00:00+08:00, at least 2026-11-20T09:00:00+08:00")
    # the same instant in another zone compares equal
    assert after_nine.test(view(reported_at=datetime(2026, 11, 20, 1, 0, tzinfo=UTC))) is True
    assert after_nine.test(view(reported_at=datetime(2026, 11, 20, 0, 59, tzinfo=UTC))) is False
    quoted = cond('reported_at: {lt: "2026-11-20T09:00:00Z"}')
    assert quoted.text == "reported_at < 2026-11-20T09:00:00+00:00"
    assert quoted.test(view(reported_at=at_ten)) is True
    assert quoted.test(view(reported_at=datetime(2026, 11, 20, 17, 0, tzinfo=CST))) is False
    assert quoted.test(view(reported_at=datetime(2026, 11, 20, 16, 59, tzinfo=CST))) is True
    night = cond("""
        occurred_at:
          between:
            - 2026-11-20T22:00:00+08:00
            - 2026-11-21T06:00:00+08:00
    """)
    assert night.test(view(occurred_at=datetime(2026, 11, 21, 2, 0, tzinfo=CST))) is True
    assert night.test(view(occurred_at=None)) is False
    # values that are not aware date-times simply do not match
    anything = cond('extra.when: {gt: "2026-01-01T00:00:00+08:00"}')
    for value in (datetime(2027, 1, 1), "2027-01-01T00:00:00+08:00", 20270101, None):
        assert anything.test(view(extra={"when": value})) is False
    assert check(anything, view(extra={"when": datetime(2027, 1, 1)}))[0] is False


def test_date_time_equality_accepts_quoted_iso_text():
    c = cond('reported_at: "2026-11-20T09:00:00+08:00"')
    assert c.test(view(reported_at=datetime(2026, 11, 20, 1, 0, tzinfo=UTC))) is True
    assert c.test(view(reported_at=datetime(2026, 11, 20, 9, 0, 1, tzinfo=CST))) is False
    assert datetime(2026, 11, 20, 9, 0, tzinfo=CST) in c.equalities["reported_at"]


# ---------------------------------------------------------------------------
# Text and lists
# ---------------------------------------------------------------------------


def test_matches_with_chinese_and_case_insensitive_alternatives():
    c = cond('description: {matches: "(?i)fire|smoke|火|烟"}')
    assert c.text == "description matches '(?i)fire|smoke|火|烟'"
    assert check(c, view(description="3楼走廊有烟味")) == (
        True, "description is '3楼走廊有烟味', matching '(?i)fire|smoke|火|烟'")
    assert c.test(view(description="SMOKE in room 101")) is True
    assert check(c, view(description="空调不制冷")) == (
        False, "description is '空调不制冷', not matching '(?i)fire|smoke|火|烟'")
    assert c.test(view(description=None)) is False
    assert check(c, view(description=42)) == (
        False, "description is 42, not text (needed for matching '(?i)fire|smoke|火|烟')")
    anchored = cond(r'title: {matches: "^【紧急】\\d+号房"}')
    assert anchored.test(view(title="【紧急】1208号房 漏水")) is True
    assert anchored.test(view(title="1208号房 【紧急】")) is False


def test_contains_on_text_and_on_lists():
    text = cond("description: {contains: 等待}")
    assert text.text == "description contains '等待'"
    assert check(text, view(description="前台办理入住等待超过30分钟")) == (
        True, "description is '前台办理入住等待超过30分钟', containing '等待'")
    assert check(text, view(description="")) == (False, "description is '', not containing '等待'")
    tags = cond("tags: {contains: vip}")
    assert check(tags, view(tags=["repeat", "vip"])) == (True, "tags is ['repeat', 'vip'], containing 'vip'")
    assert check(tags, view(tags=["vipx"])) == (False, "tags is ['vipx'], not containing 'vip'")
    kinds = cond("attachments.kind: {contains: photo}")
    with_photo = incident_view(Incident(attachments=(Attachment("a1", kind="photo"), Attachment("a2"))))
    assert check(kinds, with_photo) == (True, "attachments.kind is ['photo', 'file'], containing 'photo'")
    assert check(kinds, view(attachments=[])) == (False, "attachments.kind is [], not containing 'photo'")
    number = cond("extra.rooms: {contains: 1208}")
    assert number.test(view(extra={"rooms": [1207, 1208]})) is True
    assert number.test(view(extra={"rooms": [True, "1208"]})) is False
    assert number.test(view(extra={"rooms": 1208})) is False  # not a list
    one = cond("extra.flags: {contains: 1}")
    assert one.test(view(extra={"flags": [True]})) is False  # true is not the number 1


def test_not_contains_is_the_exact_negation():
    c = cond("tags: {not_contains: test}")
    assert c.text == "tags does not contain 'test'"
    assert check(c, view(tags=["test"])) == (False, "tags is ['test'], containing 'test'")
    assert check(c, view(tags=[])) == (True, "tags is [], not containing 'test'")
    assert check(cond("description: {not_contains: 噪音}"), view(description=None))[0] is True


def test_icontains_uses_casefold():
    c = cond("description: {icontains: WiFi}")
    assert c.text == "description contains 'WiFi' (ignoring case)"
    assert check(c, view(description="the wifi is down")) == (
        True, "description is 'the wifi is down', containing 'WiFi' (ignoring case)")
    assert c.test(view(description="WIFI 断了")) is True
    assert c.test(view(description="wi-fi")) is False
    assert cond("place: {icontains: STRASSE}").test(view(place="Hauptstraße 1")) is True


def test_startswith_and_endswith():
    starts = cond('place: {startswith: "12"}')
    assert starts.text == "place starts with '12'"
    assert check(starts, view(place="1208")) == (True, "place is '1208', starting with '12'")
    assert starts.test(view(place=1208)) is False
    several = cond("place: {startswith: [大堂, 餐厅]}")
    assert several.text == "place starts with one of '大堂', '餐厅'"
    assert check(several, view(place="餐厅二楼")) == (True, "place is '餐厅二楼', starting with one of '大堂', '餐厅'")
    ends = cond("title: {endswith: 投诉}")
    assert check(ends, view(title="噪音投诉")) == (True, "title is '噪音投诉', ending with '投诉'")
    assert check(ends, view(title="投诉噪音")) == (False, "title is '投诉噪音', not ending with '投诉'")


def test_exists_and_empty():
    exists = cond("customer.tier: {exists: true}")
    missing = cond("customer.tier: {exists: false}")
    assert (exists.text, missing.text) == ("customer.tier exists", "customer.tier is missing")
    gold = view(customer={"tier": "gold"})
    assert check(exists, gold) == (True, "customer.tier is 'gold'")
    assert check(exists, view(customer=None)) == (False, "customer.tier is missing")
    assert check(missing, view(customer=None)) == (True, "customer.tier is missing")
    assert check(missing, gold) == (False, "customer.tier is 'gold', not missing")
    empty = cond("tags: {empty: true}")
    full = cond("tags: {empty: false}")
    assert (empty.text, full.text) == ("tags is empty", "tags is not empty")
    assert check(empty, view(tags=[])) == (True, "tags is [], empty")
    assert check(full, view(tags=[])) == (False, "tags is [], empty")
    assert check(full, view(tags=["x"])) == (True, "tags is ['x'], not empty")
    for value, is_empty in ((None, True), ("", True), ([], True), ({}, True), (0, False), (" ", False)):
        assert cond("extra.note: {empty: true}").test(view(extra={"note": value})) is is_empty


# ---------------------------------------------------------------------------
# Nested fields and combinators
# ---------------------------------------------------------------------------


def test_nested_fields_never_raise_on_missing_parents():
    vip = cond("customer.extra.vip_since: {exists: true}")
    real = incident_view(Incident(customer=Customer(tier="gold", extra={"vip_since": "2019"})))
    assert check(vip, real) == (True, "customer.extra.vip_since is '2019'")
    for customer in (None, {}, {"extra": None}, {"extra": "x"}, "gold", 5):
        assert vip.test(view(customer=customer)) is False
    room = cond("extra.room_type: suite")
    assert room.test(view(extra={"room_type": "suite"})) is True
    assert room.test(view(extra={})) is False
    deep = cond("extra.stay.nights: {gt: 3}")
    assert deep.test(view(extra={"stay": {"nights": 5}})) is True
    assert check(deep, view(extra={"stay": None})) == (False, "extra.stay.nights is missing, not more than 3")


def test_any_all_and_not_mix_with_fields():
    c = cond("""
        channel: [phone, onsite]
        any:
          - category: complaint
          - all:
              - impact: {ge: 3}
              - not: {customer.tier: basic}
    """)
    assert c.text == ("channel in ['phone', 'onsite'] and (category == 'complaint' or "
                      "(impact >= 3 and not (customer.tier == 'basic')))")
    assert check(c, view(channel="phone", category="complaint")) == (
        True, "all hold: channel is 'phone'; category is 'complaint'")
    assert check(c, view(channel="phone", category="x", impact=3, customer={"tier": "gold"})) == (
        True, ("all hold: channel is 'phone'; (all hold: impact is 3, at least 3; "
              "customer.tier is 'gold', not 'basic')"))
    assert check(c, view(channel="phone", category="x", impact=3, customer={"tier": "basic"})) == (
        False, "none hold: category is 'x', not 'complaint'; customer.tier is 'basic', which 'not' excludes")
    assert check(c, view(channel="email", category="complaint")) == (
        False, "channel is 'email', not one of 'phone', 'onsite'")
    assert dict(c.equalities) == {"channel": frozenset({"phone", "onsite"})}


def test_any_over_one_field_still_gives_the_indexer_its_values():
    c = cond("any: [{category: a}, {category: [b, c], impact: 1}]")
    assert dict(c.equalities) == {"category": frozenset({"a", "b", "c"})}
    both = cond("all: [{category: [a, b]}, {category: [b, c]}]")
    assert dict(both.equalities) == {"category": frozenset({"b"})}


def test_not_inverts():
    c = cond("not: {category: complaint}")
    assert c.text == "not (category == 'complaint')"
    assert check(c, view(category="complaint")) == (False, "category is 'complaint', which 'not' excludes")
    assert check(c, view(category="x")) == (True, "category is 'x', not 'complaint'")


def test_empty_condition_is_always_true():
    c = cond("{}")
    assert c is ALWAYS
    assert (c.always, c.text, dict(c.equalities)) == (True, "always", {})
    assert check(c, view()) == (True, "no conditions (always holds)")
    assert compile_condition(None, at=None, path=(), functions={}, errors=[]) is ALWAYS
    assert (NEVER.test(view()), NEVER.explain(view())) == (
        False, (False, "the condition has errors; see the load diagnostics"))
    assert cond("all: [{}]").test(view()) is True


def test_a_condition_on_the_whole_real_view():
    c = cond("{channel: [phone, onsite], category: complaint, customer.tier: {in: [gold, platinum]}}")
    incident = Incident(channel="phone", category="complaint", customer=Customer(tier="gold"),
                        description="前台办理入住等待超过30分钟")
    assert check(c, incident_view(incident)) == (
        True, "all hold: channel is 'phone'; category is 'complaint'; customer.tier is 'gold'")
    assert c.text == "channel in ['phone', 'onsite'] and category == 'complaint' and customer.tier in ['gold', 'platinum']"


def test_long_values_are_shortened_in_reasons():
    c = cond("description: {contains: 漏水}")
    _, reason = check(c, view(description="房间" * 40))
    assert reason == "description is '" + "房间" * 29 + "房'…, not containing '漏水'"


# ---------------------------------------------------------------------------
# Plugin operators and predicates
# ---------------------------------------------------------------------------


def _mentions(arg: Any):
    if not isinstance(arg, list) or not all(isinstance(w, str) for w in arg):
        raise ValueError("give a list of words, e.g. [漏水, 渗水]")
    words = tuple(arg)
    return lambda value: any(w in value for w in words)  # raises on None: counts as no match


def _vip(arg: Any):
    if arg is not None and not isinstance(arg, bool):
        raise ValueError("give true or false")
    want = arg is not False
    return lambda v: ((v.get("customer") or {}).get("tier") in ("gold", "platinum")) is want


def _broken(arg: Any):
    raise KeyError("oops")


def _explodes(arg: Any):
    def pred(v: Any) -> bool:
        raise RuntimeError(f"backend down ({arg})")
    return pred


FUNCTIONS = {
    "mentions": ConditionFunction("mentions", _mentions, doc="mentions: [word, ...]"),
    "vip_guest": ConditionFunction("vip_guest", _vip, whole_incident=True),
    "broken": ConditionFunction("broken", _broken),
    "explodes": ConditionFunction("explodes", _explodes, whole_incident=True),
}


def test_a_plugin_operator():
    c = cond("description: {mentions: [漏水, 渗水]}", functions=FUNCTIONS)
    assert c.text == "description mentions ['漏水', '渗水']"
    assert check(c, view(description="卫生间天花板渗水")) == (
        True, "description is '卫生间天花板渗水'; mentions ['漏水', '渗水'] holds")
    assert check(c, view(description="噪音")) == (False, "description is '噪音'; mentions ['漏水', '渗水'] does not hold")
    assert check(c, view(description=None)) == (
        False, ("description is missing; operator 'mentions' raised TypeError: "
               "argument of type 'NoneType' is not iterable; counted as no match"))


def test_a_plugin_predicate_over_the_whole_incident():
    c = cond("fn: {vip_guest: true}", functions=FUNCTIONS)
    assert c.text == "vip_guest(true)"
    assert check(c, view(customer={"tier": "gold"})) == (True, "vip_guest(true) holds")
    assert check(c, view(customer=None)) == (False, "vip_guest(true) does not hold")
    short = cond("fn: vip_guest", functions=FUNCTIONS)
    assert short.text == "vip_guest()"
    assert short.test(view(customer={"tier": "platinum"})) is True


def test_a_raising_predicate_counts_as_no_match_and_is_named():
    c = cond("any: [{fn: {explodes: 1}}, {category: x}]", functions=FUNCTIONS)
    assert check(c, view(category="y")) == (
        False, ("none hold: function 'explodes' raised RuntimeError: backend down (1); counted as no match; "
               "category is 'y', not 'x'"))
    assert check(c, view(category="x")) == (True, "category is 'x'")
    assert check(cond("not: {fn: {explodes: 2}}", functions=FUNCTIONS), view())[0] is True


def test_plugin_argument_errors_are_diagnostics():
    assert errors_of("description: {mentions: 漏水}", functions=FUNCTIONS) == [
        ("r.yaml:4:31: QF303 operator 'mentions' cannot use the text '漏水': give a list of words, "
         "e.g. [漏水, 渗水] (mentions: [word, ...]) @ $.classify[0].when.description.mentions (rule 'r')")]
    assert errors_of("fn: {vip_guest: maybe}", functions=FUNCTIONS) == [
        ("r.yaml:4:23: QF303 function 'vip_guest' cannot use the text 'maybe': give true or false "
         "@ $.classify[0].when.fn.vip_guest (rule 'r')")]
    assert errors_of("title: {broken: 1}", functions=FUNCTIONS) == [
        ("r.yaml:4:23: QF501 operator 'broken' failed while compiling its argument: KeyError: 'oops' "
         "(this is a bug in the plugin that provides 'broken'; report it to its authors) "
         "@ $.classify[0].when.title.broken (rule 'r')")]


def test_functions_and_operators_in_the_wrong_place():
    assert errors_of("fn: {mentions: [a]}", functions=FUNCTIONS) == [
        ("r.yaml:4:12: QF302 'mentions' is a field operator, not a function of the whole incident "
         "(write it under a field: <field>: {mentions: ...}) @ $.classify[0].when.fn.mentions (rule 'r')")]
    assert errors_of("customer: {vip_guest: true}", functions=FUNCTIONS) == [
        ("r.yaml:4:18: QF302 'vip_guest' is a function of the whole incident, not a field operator "
         "(write it as fn: {vip_guest: ...}) @ $.classify[0].when.customer.vip_guest (rule 'r')")]
    assert errors_of("fn: vip_gest", functions=FUNCTIONS) == [
        ("r.yaml:4:11: QF302 unknown function 'vip_gest' (did you mean 'vip_guest'?) "
         "@ $.classify[0].when.fn (rule 'r')")]
    assert errors_of("fn: {vip: true}") == [
        ("r.yaml:4:12: QF302 unknown function 'vip' (no installed plugin provides functions; "
         "install the plugin that does) @ $.classify[0].when.fn.vip (rule 'r')")]


def test_plugins_cannot_replace_builtin_operators():
    shadow = {"eq": ConditionFunction("eq", lambda arg: (lambda v: True))}
    c = cond("category: {eq: a}", functions=shadow)
    assert c.test(view(category="b")) is False


def test_plugin_operators_are_offered_as_suggestions():
    assert errors_of("description: {mention: [a]}", functions=FUNCTIONS) == [
        ("r.yaml:4:21: QF302 unknown operator 'mention' (did you mean 'mentions'?) "
         "@ $.classify[0].when.description.mention (rule 'r')")]


# ---------------------------------------------------------------------------
# Diagnostics, as full strings
# ---------------------------------------------------------------------------


def test_unknown_operator_example_from_the_brief():
    compiled, errors = compile_rule("""\
        classify:
        - id: safety
          when: {description: {matchs: "(?i)fire"}}
        """)
    assert compiled is None
    assert errors == [
        ("r.yaml:3:24: QF302 unknown operator 'matchs' (did you mean 'matches'?) "
         "@ $.classify[0].when.description.matchs (rule 'safety')")]


def test_unknown_operator_without_a_close_match_lists_them_all():
    assert errors_of("category: {frobnicate: 1}") == [
        "r.yaml:4:18: QF302 unknown operator 'frobnicate' (use one of: " + ", ".join(OPERATORS) + ") "
        "@ $.classify[0].when.category.frobnicate (rule 'r')"]


def test_unknown_operator_that_is_a_nested_field():
    assert errors_of("customer: {tier: gold}") == [
        ("r.yaml:4:18: QF302 unknown operator 'tier' (to test a nested field write 'customer.tier: ...') "
         "@ $.classify[0].when.customer.tier (rule 'r')")]


def test_unknown_fields():
    assert errors_of("catgory: complaint") == [
        ("r.yaml:4:7: QF301 unknown field 'catgory' (did you mean 'category'?) "
         "@ $.classify[0].when.catgory (rule 'r')")]
    assert errors_of("customer.level: gold") == [
        ("r.yaml:4:7: QF301 unknown field 'customer.level' (did you mean 'customer.tier'?) "
         "@ $.classify[0].when['customer.level'] (rule 'r')")]
    assert errors_of("reporter.phone_number_mobile: x") == [
        ("r.yaml:4:7: QF301 unknown field 'reporter.phone_number_mobile' (reporter has: id, name, contact) "
         "@ $.classify[0].when['reporter.phone_number_mobile'] (rule 'r')")]
    assert errors_of("channel.source_system_code: x") == [
        ("r.yaml:4:7: QF301 unknown field 'channel.source_system_code' (channel is text and has no fields "
         "below it) @ $.classify[0].when['channel.source_system_code'] (rule 'r')")]
    top = ", ".join(name for name in FIELDS if "." not in name)  # id, reported_at, ..., extra
    assert errors_of("zzz: 1") == [
        (f"r.yaml:4:7: QF301 unknown field 'zzz' (use one of: {top} (nested: customer.tier, extra.<key> ...)) "
         "@ $.classify[0].when.zzz (rule 'r')")]
    assert errors_of("1: x") == [
        ("r.yaml:4:7: QF301 unknown field 1 (a field name is text, such as category or customer.tier) "
         "@ $.classify[0].when['1'] (rule 'r')")]


def test_unusable_arguments():
    cases = {
        "customer.tier: {in: gold}":
            "r.yaml:4:27: QF303 'in' needs a list of values, not the text 'gold' "
            "(write in: [a, b] or use eq for one value) @ $.classify[0].when['customer.tier'].in (rule 'r')",
        "channel: []":
            "r.yaml:4:16: QF303 the list for 'channel' needs at least one value "
            "(an empty list matches nothing; add values or remove the test) @ $.classify[0].when.channel (rule 'r')",
        "impact: {between: [1]}":
            "r.yaml:4:25: QF303 'between' needs two values [low, high], not 1 value "
            "(for example impact: {between: [2, 4]} (both ends included)) @ $.classify[0].when.impact.between (rule 'r')",
        "impact: {between: [4, 2]}":
            "r.yaml:4:25: QF303 'between' bounds are reversed: 4 is greater than 2 "
            "(write the lower bound first) @ $.classify[0].when.impact.between (rule 'r')",
        "extra.x: {between: [1, b]}":
            "r.yaml:4:26: QF303 'between' needs two values of one kind, not the number 1 and the text 'b' "
            "(give two numbers, two texts or two date-times) @ $.classify[0].when['extra.x'].between (rule 'r')",
        "customer.tier: {exists: yes}":
            "r.yaml:4:31: QF303 'exists' needs true or false, not the text 'yes' "
            "(write exists: true or exists: false) @ $.classify[0].when['customer.tier'].exists (rule 'r')",
        "extra.x: {gt: [1, 2]}":
            "r.yaml:4:21: QF303 'gt' needs a number, text or a date-time with a time zone, not a list "
            "(for example extra.x: {gt: 3}) @ $.classify[0].when['extra.x'].gt (rule 'r')",
        "reported_at: {gt: '2026-11-20T09:00:00'}":
            "r.yaml:4:25: QF303 'gt' needs a time zone on the date-time '2026-11-20T09:00:00' "
            "(add an offset, e.g. 2026-11-20T09:00:00+08:00) @ $.classify[0].when.reported_at.gt (rule 'r')",
        "reported_at: {lt: 2026-12-24}":
            "r.yaml:4:25: QF303 'lt' needs a date-time, not the date 2026-12-24 "
            "(write a time and a zone, e.g. 2026-12-24T00:00:00+08:00) @ $.classify[0].when.reported_at.lt (rule 'r')",
        "impact: {gt: '3'}":
            "r.yaml:4:20: QF303 impact holds a number, so 'gt' with the text '3' can never hold "
            "(give a number without quotes, e.g. 3) @ $.classify[0].when.impact.gt (rule 'r')",
        "place: 1208":
            "r.yaml:4:14: QF303 place holds text, so the number 1208 can never match "
            "(quote it to make it text: '1208') @ $.classify[0].when.place (rule 'r')",
        "tags: vip":
            "r.yaml:4:13: QF303 tags holds a list, so the text 'vip' can never match "
            "(to test for one element write tags: {contains: ...}) @ $.classify[0].when.tags (rule 'r')",
        "customer: gold":
            "r.yaml:4:17: QF303 customer holds a group of fields, so the text 'gold' can never match "
            "(test one of its fields, e.g. customer.id) @ $.classify[0].when.customer (rule 'r')",
        "impact: {matches: '^1'}":
            "r.yaml:4:25: QF303 'matches' works on text, but impact holds a number "
            "(compare numbers with eq, lt, le, gt, ge or between) @ $.classify[0].when.impact.matches (rule 'r')",
        "tags: {contains: [a, b]}":
            "r.yaml:4:24: QF303 'contains' needs one value (text, a number or true/false), not a list "
            "(to test several values use any: with one contains each) @ $.classify[0].when.tags.contains (rule 'r')",
        "description: {matches: 5}":
            "r.yaml:4:30: QF303 'matches' needs a regular expression as text, not the number 5 "
            "(quote it, e.g. matches: \"^VIP\") @ $.classify[0].when.description.matches (rule 'r')",
        "category: {}":
            "r.yaml:4:17: QF303 no operator given for 'category' (give one, e.g. category: {exists: true}) "
            "@ $.classify[0].when.category (rule 'r')",
        "category: {eq: [a]}":
            "r.yaml:4:22: QF303 'eq' must be text, a number, true/false, a date-time or null, not a list "
            "(to combine several conditions use any: or all:) @ $.classify[0].when.category.eq (rule 'r')",
        "any: []":
            "r.yaml:4:12: QF303 'any' needs at least one condition "
            "(add conditions as '- ' items, or remove the empty list) @ $.classify[0].when.any (rule 'r')",
        "all: {category: a}":
            "r.yaml:4:12: QF303 'all' needs a list of conditions, not a mapping "
            "(write one '- ' item per condition) @ $.classify[0].when.all (rule 'r')",
        "not: [{category: a}]":
            "r.yaml:4:12: QF303 'not' needs one condition (a mapping), not a list "
            "(to exclude several cases write not: {any: [...]}) @ $.classify[0].when.not (rule 'r')",
        "fn: [a]":
            "r.yaml:4:11: QF303 'fn' needs a function name or {name: argument}, not a list "
            "(for example fn: {vip_guest: true}) @ $.classify[0].when.fn (rule 'r')",
    }
    for when, expected in cases.items():
        assert errors_of(when) == [expected], when


def test_an_item_of_a_list_is_located_exactly():
    assert errors_of("channel: [phone, {a: 1}, 3]") == [
        ("r.yaml:4:24: QF303 a list item must be text, a number, true/false, a date-time or null, "
         "not a mapping (to combine several conditions use any: or all:) @ $.classify[0].when.channel[1] (rule 'r')"),
        ("r.yaml:4:32: QF303 channel holds text, so the number 3 can never match "
         "(quote it to make it text: '3') @ $.classify[0].when.channel[2] (rule 'r')")]


def test_a_regex_that_does_not_compile():
    assert errors_of('description: {matches: "(fire|smoke"}') == [
        ("r.yaml:4:30: QF304 the regular expression '(fire|smoke' does not compile: missing ), "
         "unterminated subpattern at position 0 (escape characters such as ( ) [ ] . * + ? with a "
         "backslash (\\) when you mean them literally) @ $.classify[0].when.description.matches (rule 'r')")]


@pytest.mark.parametrize("pattern", [
    "(a+)+", "(a*)*", "(a|aa)+", "(.*a)*", "^(\\w+\\s?)+$", "(x+x+)+y", "(?:\\d|\\d\\d)+$", "((ab)*)+",
    "(a{1,20})*b", "([a-z]+[a-z0-9]*)+@",
])
def test_a_regex_that_can_backtrack_catastrophically(pattern: str):
    quoted = pattern.replace("\\", "\\\\")
    assert errors_of(f'description: {{matches: "{quoted}"}}') == [
        (f"r.yaml:4:30: QF305 the regular expression {pattern!r} can backtrack catastrophically "
         "(a repeated part can match the same text in many ways, so a long description could stall "
         "the engine) (rewrite without a repeat inside a repeat, or use an atomic group (?>...) or a "
         "possessive quantifier like a++) @ $.classify[0].when.description.matches (rule 'r')")]


@pytest.mark.parametrize(("pattern", "first", "second"), [
    ("\\s*\\s*\\s*$", "\\s*", "\\s*"),
    (".*.*.*=.*", ".*", ".*"),
    ("a*a*$", "a*", "a*"),
    ("^\\w+\\s?\\w*!", "\\w+", "\\w*"),  # the optional space between them can match nothing
    ("(\\s*)(\\s*)x", "\\s*", "\\s*"),
    ("(?:a*|b)a+c", "a*", "a+"),
    (".*?\\s+$", ".*?", "\\s+"),
    ("[a-z]*[^0-9]+;", "[a-z]*", "[^0-9]+"),
    ("\\d+\\d{2,}\\b", "\\d+", "\\d{2,}"),
    ("x.*\\s*+$", ".*", "\\s*+"),  # a possessive second still retries for every split the first gives back
])
def test_a_regex_with_overlapping_repeats_side_by_side_backtracks_polynomially(pattern: str, first: str, second: str):
    # \s*\s*\s*$ takes over a minute on 600 spaces and an x: each repeat can take any
    # share of the run, and a search tries every start.
    quoted = pattern.replace("\\", "\\\\")
    assert errors_of(f'description: {{matches: "{quoted}"}}') == [
        (f"r.yaml:4:30: QF305 the regular expression {pattern!r} can backtrack catastrophically "
         f"(the repeats {first!r} and {second!r} side by side can split the same text in many ways, so a long "
         "description could stall the engine) (write one repeat instead of the two, or make them match "
         "different characters) @ $.classify[0].when.description.matches (rule 'r')")]


@pytest.mark.parametrize("pattern", [
    "(?i)fire|smoke|火|烟", "^(\\d+\\.)+\\d+$", "(?>a+)+", "(a++)+", "(a+)++", "(\\w+\\s)+", "(ab|ac)+",
    "^[A-Z]{2}\\d{4}$", "(?:[^,]+,)*", "(cat|dog)+", "a+b+c+", "(x(a|aa))+",
    # repeats side by side that cannot share text, are bounded, or have nothing after them that can fail
    ".*=.*", "[^=]*=.*", "\\w+\\s+\\w+$", "(\\d+\\.)+\\d+$", "\\s*\\s*", "fire.*.*", "a*+a*$",
    "(?:工程师|师傅).{0,8}(?:没|未)有?", "\\s{0,3}\\s{0,3}x", "(ab)*(ba)*$", "error.*timeout",
])
def test_safe_regexes_are_accepted(pattern: str):
    c = cond(f"description: {{matches: {pattern!r}}}")
    assert c.test(view(description="x")) in (True, False)


def test_the_wrong_shape_is_qf103():
    compiled, errors = compile_rule("""\
        classify:
          - id: r
            when: 5
        """)
    assert compiled is None
    assert errors == [
        ("r.yaml:3:11: QF103 a condition must be a mapping such as {category: complaint}, not the number 5 "
         "(write field: value pairs (all must hold), or any:/all:/not:) @ $.classify[0].when (rule 'r')")]
    assert errors_of("any: [category: a, complaint]") == [
        ("r.yaml:4:26: QF103 each item of 'any' must be a mapping such as {category: complaint}, not the text "
         "'complaint' (write field: value pairs (all must hold), or any:/all:/not:) "
         "@ $.classify[0].when.any[1] (rule 'r')")]


def test_every_error_in_a_condition_is_reported():
    errors = errors_of("""
        catgory: complaint
        description: {matchs: fire, matches: "(a+)+"}
        any:
          - impact: {gt: high}
          - title: {matches: "[unclosed"}
        not: {customer.tier: {in: gold}}
        fn: {nope: 1}
    """)
    assert errors == [
        "r.yaml:4:7: QF301 unknown field 'catgory' (did you mean 'category'?) @ $.classify[0].when.catgory (rule 'r')",
        ("r.yaml:5:21: QF302 unknown operator 'matchs' (did you mean 'matches'?) "
         "@ $.classify[0].when.description.matchs (rule 'r')"),
        ("r.yaml:5:44: QF305 the regular expression '(a+)+' can backtrack catastrophically (a repeated part can "
         "match the same text in many ways, so a long description could stall the engine) (rewrite without a "
         "repeat inside a repeat, or use an atomic group (?>...) or a possessive quantifier like a++) "
         "@ $.classify[0].when.description.matches (rule 'r')"),
        ("r.yaml:7:24: QF303 impact holds a number, so 'gt' with the text 'high' can never hold "
         "(give a number without quotes, e.g. 3) @ $.classify[0].when.any[0].impact.gt (rule 'r')"),
        ("r.yaml:8:28: QF304 the regular expression '[unclosed' does not compile: unterminated character set "
         "at position 0 (escape characters such as ( ) [ ] . * + ? with a backslash (\\) when you mean them "
         "literally) @ $.classify[0].when.any[1].title.matches (rule 'r')"),
        ("r.yaml:9:33: QF303 'in' needs a list of values, not the text 'gold' (write in: [a, b] or use eq for "
         "one value) @ $.classify[0].when.not['customer.tier'].in (rule 'r')"),
        ("r.yaml:10:12: QF302 unknown function 'nope' (no installed plugin provides functions; install the "
         "plugin that does) @ $.classify[0].when.fn.nope (rule 'r')"),
    ]


def test_plain_data_falls_back_to_the_given_position():
    errors: list[Diagnostic] = []
    assert compile_condition({"catgory": 1}, at=Mark("x.yaml", 9, 4), path=("route", 2, "when"),
                             functions={}, errors=errors, file="x.yaml") is None
    assert [str(e) for e in errors] == [
        "x.yaml:10:5: QF301 unknown field 'catgory' (did you mean 'category'?) @ $.route[2].when.catgory"]
    errors = []
    assert compile_condition({"impact": {"ge": "x"}}, at=None, path=(), functions={}, errors=errors) is None
    assert [str(e) for e in errors] == [
        ("<ruleset>:1:1: QF303 impact holds a number, so 'ge' with the text 'x' can never hold "
         "(give a number without quotes, e.g. 3) @ $.impact.ge")]
    c = compile_condition({"category": "a", "impact": {"ge": 2}}, at=None, path=(), functions={}, errors=errors)
    assert c is not None and c.test({"category": "a", "impact": 2}) is True


def test_codes_used_are_documented():
    for code in ("QF103", "QF301", "QF302", "QF303", "QF304", "QF305", "QF501"):
        assert code in CODES


def test_operators_are_listed():
    assert OPERATORS == ("eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "between", "matches",
                         "contains", "not_contains", "icontains", "startswith", "endswith", "exists", "empty")


def test_a_hand_built_condition_explains_with_its_text():
    c = Condition(lambda v: v.get("category") == "a", "category is a (hand-built)")
    assert c.explain({"category": "a"}) == (True, "category is a (hand-built) holds")
    assert c.explain({}) == (False, "category is a (hand-built) does not hold")
    assert dict(c.equalities) == {} and c.always is False
