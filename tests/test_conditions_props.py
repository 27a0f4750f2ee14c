"""Properties of the condition compiler: the fast and the slow path agree, the
combinators mean what they say, and nothing raises on any data."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from qflow.conditions import Condition, ConditionFunction, compile_condition
from qflow.diagnostics import CODES, Diagnostic

CST = timezone(timedelta(hours=8))
SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def _len_at_least(arg: Any):
    if not isinstance(arg, int) or isinstance(arg, bool):
        raise ValueError("give a whole number")  # noqa: TRY004 - the plugin contract says ValueError
    return lambda value: len(value) >= arg  # raises on None and numbers: no match


def _has_tag(arg: Any):
    return lambda view: arg in view["tags"]  # raises when tags is not a container


FUNCTIONS = {
    "len_at_least": ConditionFunction("len_at_least", _len_at_least),
    "has_tag": ConditionFunction("has_tag", _has_tag, whole_incident=True),
}


def compile_ok(node: Any) -> Condition:
    errors: list[Diagnostic] = []
    c = compile_condition(node, at=None, path=("when",), functions=FUNCTIONS, errors=errors)
    assert errors == [], [str(e) for e in errors]
    assert c is not None
    return c


# ---------------------------------------------------------------------------
# Values
# ---------------------------------------------------------------------------

texts = st.sampled_from(["", "a", "b", "B", "phone", "gold", "投诉", "火灾报警", "Fire", "ß", "SS", "ab", "1208",
                         "2026-11-20T09:00:00+08:00"])
plain_texts = texts.filter(lambda t: not t.startswith("20"))
numbers = st.one_of(st.integers(-3, 3), st.floats(allow_nan=True, allow_infinity=True, width=32))
aware = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31),
                     timezones=st.sampled_from([UTC, CST]))
naive = st.datetimes(min_value=datetime(2026, 1, 1), max_value=datetime(2026, 12, 31))
scalars = st.one_of(st.none(), st.booleans(), numbers, texts, st.text(max_size=4), aware, naive,
                    st.just(date(2026, 6, 1)))
keys = st.sampled_from(["tier", "extra", "x", "a", "b", "c", "kind", "vip_since", "name", "ref"])
junk = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(keys, inner, max_size=3)), max_leaves=8)


def field_value(typed: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """Mostly the right type, sometimes anything at all."""
    return st.one_of(typed, typed, st.none(), junk)


_views = st.fixed_dictionaries({
    "id": field_value(texts),
    "reported_at": field_value(aware),
    "occurred_at": field_value(aware),
    "channel": field_value(texts),
    "category": field_value(texts),
    "place": field_value(texts),
    "asset": field_value(texts),
    "title": field_value(texts),
    "description": field_value(texts),
    "scope": field_value(texts),
    "impact": field_value(st.integers(-3, 5)),
    "urgency": field_value(st.integers(-3, 5)),
    "reporter": field_value(st.fixed_dictionaries({"id": texts, "name": texts, "contact": st.none()})),
    "customer": field_value(st.fixed_dictionaries({
        "tier": field_value(texts), "extra": field_value(st.dictionaries(keys, junk, max_size=3))})),
    "attachments": field_value(st.lists(st.fixed_dictionaries({"kind": texts, "ref": texts}), max_size=3)),
    "tags": field_value(st.lists(texts, max_size=3)),
    "external_id": field_value(texts),
    "extra": field_value(st.fixed_dictionaries({"a": junk, "b": field_value(st.fixed_dictionaries({"c": junk}))})),
})

# Views with keys missing and anything anywhere.
_wild_views = st.dictionaries(st.sampled_from(["category", "channel", "impact", "customer", "extra", "tags",
                                              "attachments", "reported_at", "description", "other"]),
                             junk, max_size=8)


# ---------------------------------------------------------------------------
# Conditions
# ---------------------------------------------------------------------------

REGEXES = ["(?i)fire|smoke|火|烟", "^a", "b$", "投诉", "^\\d+$", "(?:ab)+", "[A-Z]"]


def one_op(name: str, arg: st.SearchStrategy[Any]) -> st.SearchStrategy[dict[str, Any]]:
    return arg.map(lambda a: {name: a})


def pair(values: st.SearchStrategy[Any]) -> st.SearchStrategy[list[Any]]:
    """Two values of one kind, low first (NaN stays where it falls: nothing is above it)."""
    return st.tuples(values, values).map(lambda t: sorted(t) if not any(
        isinstance(v, float) and math.isnan(v) for v in t) else list(t))


# ISO text compares as a date-time on time fields: order by the instant, not the text
iso_pairs = st.tuples(aware, aware).map(lambda t: [v.isoformat() for v in sorted(t)])


def operators(values: st.SearchStrategy[Any], *, text: bool,
              ordered: tuple[st.SearchStrategy[Any], ...] = (), time: bool = False) -> st.SearchStrategy[Any]:
    ops = [
        one_op("eq", values), one_op("ne", values),
        one_op("in", st.lists(values, min_size=1, max_size=3)),
        one_op("not_in", st.lists(values, min_size=1, max_size=3)),
        one_op("exists", st.booleans()), one_op("empty", st.booleans()),
    ]
    if ordered:
        ops += [one_op(op, st.one_of(*ordered)) for op in ("lt", "le", "gt", "ge")]
        ops += [one_op("between", st.one_of(*(pair(kind) for kind in ordered)))]
        if time:
            ops += [one_op(op, aware.map(datetime.isoformat)) for op in ("lt", "le", "gt", "ge")]
            ops += [one_op("between", iso_pairs)]
    if text:
        ops += [
            one_op("matches", st.sampled_from(REGEXES)), one_op("contains", texts),
            one_op("not_contains", texts), one_op("icontains", texts),
            one_op("startswith", st.one_of(texts, st.lists(texts, min_size=1, max_size=2))),
            one_op("endswith", texts), one_op("len_at_least", st.integers(0, 3)),
        ]
    single = st.one_of(*ops)
    several = st.lists(single, min_size=1, max_size=3).map(lambda ds: {k: v for d in ds for k, v in d.items()})
    return st.one_of(values, st.lists(values, min_size=1, max_size=3), several)


text_values = st.one_of(texts, st.none())
small_numbers = st.one_of(st.integers(-3, 5), st.floats(-3, 5))
specs = {
    "category": operators(text_values, text=True, ordered=(texts,)),
    "channel": operators(text_values, text=True),
    "description": operators(text_values, text=True, ordered=(texts,)),
    "customer.tier": operators(text_values, text=True, ordered=(texts,)),
    "reporter.name": operators(text_values, text=True),
    "impact": operators(st.one_of(small_numbers, st.none()), text=False, ordered=(small_numbers,)),
    "urgency": operators(st.integers(-3, 5), text=False, ordered=(numbers,)),
    "reported_at": operators(aware, text=False, ordered=(aware,), time=True),
    "tags": st.one_of(
        one_op("contains", texts), one_op("not_contains", st.one_of(texts, st.integers(0, 2))),
        one_op("exists", st.booleans()), one_op("empty", st.booleans()), one_op("len_at_least", st.integers(0, 3))),
    "attachments.kind": one_op("contains", texts),
    "extra.a": operators(st.one_of(texts, st.integers(-3, 3), st.booleans(), st.none()), text=True,
                         ordered=(plain_texts, numbers, aware)),
    "extra.b.c": operators(st.integers(-3, 3), text=False, ordered=(st.integers(-3, 3),)),
    "customer.extra.x": operators(texts, text=True),
}

field_conditions = st.lists(
    st.sampled_from(sorted(specs)).flatmap(lambda f: specs[f].map(lambda s: (f, s))), min_size=1, max_size=3,
).map(dict)
predicates = texts.map(lambda t: {"fn": {"has_tag": t}})
leaves = st.one_of(field_conditions, field_conditions, predicates, st.just({}))
_conditions = st.recursive(leaves, lambda inner: st.one_of(
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
    st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
    inner.map(lambda x: {"not": x}),
    st.tuples(field_conditions, st.lists(inner, min_size=1, max_size=2)).map(lambda t: {**t[0], "any": t[1]}),
), max_leaves=8)


def lookup(view: Any, path: str) -> Any:
    """An independent reader: dict steps only (enough for equality constraints)."""
    value = view
    for key in path.split("."):
        value = value.get(key) if isinstance(value, dict) else None
    return value


def _named(strategy: st.SearchStrategy[Any], name: str) -> st.SearchStrategy[Any]:
    """The same strategy with a short repr (hypothesis warns about 32 kB ones)."""
    @st.composite
    def draw_one(draw: st.DrawFn) -> Any:
        return draw(strategy)
    draw_one.__name__ = draw_one.__qualname__ = name
    return draw_one()


views = _named(_views, "views")
wild_views = _named(_wild_views, "wild_views")
conditions = _named(_conditions, "conditions")


# ---------------------------------------------------------------------------
# Properties
# ---------------------------------------------------------------------------


@SETTINGS
@given(conditions, views)
def test_explain_agrees_with_test(node: Any, view: dict[str, Any]):
    c = compile_ok(node)
    ok, reason = c.explain(view)
    assert ok is c.test(view)
    assert isinstance(reason, str) and reason
    assert isinstance(c.text, str) and c.text


@SETTINGS
@given(conditions, views)
def test_not_inverts(node: Any, view: dict[str, Any]):
    c = compile_ok(node)
    negated = compile_ok({"not": node})
    assert negated.test(view) is (not c.test(view))
    assert negated.explain(view)[0] is (not c.explain(view)[0])


@SETTINGS
@given(st.lists(conditions, min_size=1, max_size=4), views)
def test_any_and_all_agree_with_python(parts: list[Any], view: dict[str, Any]):
    results = [compile_ok(p).test(view) for p in parts]
    assert compile_ok({"any": parts}).test(view) is any(results)
    assert compile_ok({"all": parts}).test(view) is all(results)
    assert compile_ok({"any": parts}).explain(view)[0] is any(results)
    assert compile_ok({"all": parts}).explain(view)[0] is all(results)


@SETTINGS
@given(conditions, views)
def test_equalities_never_exclude_a_match(node: Any, view: dict[str, Any]):
    """What rule indexers rely on: a matching view's value is among the listed values."""
    c = compile_ok(node)
    if c.test(view):
        for path, values in c.equalities.items():
            assert lookup(view, path) in values


@SETTINGS
@given(conditions, wild_views)
def test_test_never_raises_on_any_view(node: Any, view: dict[str, Any]):
    c = compile_ok(node)
    assert c.test(view) is c.explain(view)[0]


names = st.sampled_from(["category", "channel", "customer.tier", "impact", "reported_at", "tags", "extra.a",
                         "any", "all", "not", "fn", "eq", "in", "between", "matches", "exists", "has_tag",
                         "len_at_least", "catgory", "customer.", ".x", "", "火"])
junk_keys = st.one_of(names, st.text(max_size=5), st.integers(-2, 2), st.none(), st.booleans())
junk_regex = st.sampled_from(["(a+)+", "[", "(?i)火", "(?P<x>a)(?P=x)+", "(a|ab)*c", "\\", "a{2,1}"])
_junk_conditions = st.recursive(
    st.one_of(scalars, junk_regex),
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(junk_keys, inner, max_size=4)),
    max_leaves=12,
)

junk_conditions = _named(_junk_conditions, "junk_conditions")


@SETTINGS
@given(junk_conditions)
def test_compiling_junk_never_raises(node: Any):
    errors: list[Diagnostic] = []
    c = compile_condition(node, at=None, path=("classify", 0, "when"), functions=FUNCTIONS, errors=errors,
                          rule="r")
    if c is None:
        assert errors
    else:
        assert errors == []
        assert c.test({}) in (True, False)
    for e in errors:
        assert e.code in CODES
        assert str(e).startswith("<ruleset>:1:1: QF")
