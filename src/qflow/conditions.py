"""The safe condition language: rule conditions are YAML data compiled once into closures.

Why our own compiler (see ARCHITECTURE.md, "Dependencies"): the rule libraries we
measured ran 20-700x slower than hand-written lambdas, and two of them let a rule
mutate the incident or walk into a live object's globals. Here a condition is data,
never code: nothing is passed to ``eval``, ``exec`` or ``compile()``. When a ruleset
loads, each condition becomes a tree of small closures specialised to its shape (one
``view.get(name)`` for a top-level field, pre-split paths for nested ones, frozensets
for membership, fused checks for the common "a few fields equal a few values" case).
Per incident only those closures run, on the plain-data view of
:func:`qflow._view.incident_view`.

Each compiled condition has two paths that must agree (a property test checks it):
``test(view)``, the fast one, and ``explain(view)``, the slow one that also says why,
for ``qflow explain`` and the decision trace.

The language (a mapping means "all of these hold")::

    channel: [phone, onsite]            # membership
    category: complaint                 # equality (exact for text)
    customer.tier: {in: [gold, platinum]}
    impact: {ge: 2, le: 4}              # several operators: all hold
    description: {matches: "(?i)fire|smoke|火|烟"}
    any: [...]  all: [...]  not: {...}  # combinators, mixed freely with fields
    fn: {vip_guest: true}               # a plugin predicate over the whole incident

Rules of evaluation: a missing value (or one below a missing parent) is None; a path
through a list reads every item (``attachments.kind`` is the list of kinds); a value
of another type than the argument never matches and never raises (a number argument
matches only numbers, and true/false are not numbers); ``ne``, ``not_in`` and
``not_contains`` are exactly the negation of ``eq``, ``in`` and ``contains``, so they
hold for a missing value. A date-time argument (a YAML timestamp, or ISO text with a
zone where the field is not text) compares with date-time values; in a flow mapping
``{ge: ...}`` quote it, as YAML does not allow the colons there unquoted. A plugin
predicate that raises counts as "no match".

At load, the field types in :data:`qflow._view.FIELDS` catch tests that could never
hold (``impact: "3"``, ``tags: vip``), and regexes that can backtrack catastrophically
are refused (see :mod:`qflow._regex_safety`). The only strings ever compiled are
regular expressions, by :func:`re.compile`.
"""

from __future__ import annotations

import linecache
import operator
import re
import types
from collections.abc import Callable, Mapping, Sequence
from datetime import date, datetime
from typing import Annotated, Any

import attrs

from qflow._expr import ExpressionError, parse_expression
from qflow._regex_safety import can_backtrack_catastrophically, overlapping_neighbours
from qflow._view import FIELDS
from qflow._yaml import Mark
from qflow.diagnostics import Diagnostic, did_you_mean, json_path

__all__ = [
    "ALWAYS",
    "CONDITION",
    "NEVER",
    "OPERATORS",
    "Condition",
    "ConditionFunction",
    "ConditionSpec",
    "compile_condition",
    "implies",
    "never_holds",
]


class _ConditionMarker:
    """Marks a section field as holding a condition (``qflow schema`` writes
    ``$ref: #/$defs/condition`` for it; the loader passes the data through)."""

    def __repr__(self) -> str:
        return "qflow.conditions.CONDITION"


#: The marker inside :data:`ConditionSpec`.
CONDITION = _ConditionMarker()

#: The type of a section field that holds a condition, e.g. ``when: ConditionSpec = None``;
#: compile it with ``ctx.condition(path)``.
ConditionSpec = Annotated[Any, CONDITION]

Path = tuple[str | int, ...]
Test = Callable[[Mapping[str, Any]], bool]
# The slow path of a node: (holds, reason, reason is compound and needs brackets in a list)
Why = Callable[[Mapping[str, Any]], tuple[bool, str, bool]]

#: Built-in field operators, in the order the docs list them.
OPERATORS: tuple[str, ...] = (
    "eq", "ne", "in", "not_in", "lt", "le", "gt", "ge", "between",
    "matches", "contains", "not_contains", "icontains", "startswith", "endswith",
    "exists", "empty",
)


@attrs.frozen
class ConditionFunction:
    """A plugin-supplied operator or predicate.

    ``compile(arg)`` runs once at load with the argument as plain data; it raises
    ``ValueError(message)`` for an argument it cannot use (reported as QF303 with that
    message) and otherwise returns the predicate run per incident. With
    ``whole_incident=False`` it is a field operator (``description: {mentions: [..]}``)
    and the predicate gets the field's value; with ``True`` it is used as
    ``fn: {name: arg}`` and gets the whole view. A predicate that raises counts as no
    match.
    """

    name: str
    compile: Callable[[Any], Callable[[Any], bool]]
    doc: str = ""
    whole_incident: bool = False


def _readonly(value: Mapping[str, frozenset[Any]]) -> Mapping[str, frozenset[Any]]:
    return types.MappingProxyType(dict(value))


@attrs.frozen(eq=False)
class Condition:
    """A compiled condition. Compare by identity: it holds closures.

    ``test`` is the fast path. ``equalities`` lists the constraints "field is one of
    these values" that the whole condition requires (ANDed at the top level), for
    rule indexers: a view whose value is not among them cannot match. ``always`` is
    True for the empty condition.
    """

    test: Test = attrs.field(repr=False)
    text: str
    equalities: Mapping[str, frozenset[Any]] = attrs.field(factory=dict, converter=_readonly)
    always: bool = False
    _why: Why | None = attrs.field(default=None, repr=False, alias="why")
    #: the condition as written (YAML nodes, or the expression string), for ``qflow lint``
    spec: Any = attrs.field(default=None, repr=False)
    #: where it was written: (file, line, col, json path, rule id), 1-based
    where: tuple[str, int, int, str, str | None] | None = attrs.field(default=None, repr=False)

    def explain(self, view: Mapping[str, Any]) -> tuple[bool, str]:
        """The slow path: the same truth value as ``test(view)`` and a readable reason."""
        if self._why is None:
            ok = bool(self.test(view))
            return ok, f"{self.text} {'holds' if ok else 'does not hold'}"
        ok, reason, _ = self._why(view)
        return ok, reason


def _always_test(view: Mapping[str, Any]) -> bool:
    return True


def _never_test(view: Mapping[str, Any]) -> bool:
    return False


#: The empty condition: matches every incident (a rule without ``when``).
ALWAYS = Condition(_always_test, "always", {}, True,
                   why=lambda view: (True, "no conditions (always holds)", False))

#: What a condition with load errors becomes, so the rest of a ruleset can still be
#: compiled and checked; a ruleset with errors is never run.
NEVER = Condition(_never_test, "never (the condition has errors)", {}, False,
                  why=lambda view: (False, "the condition has errors; see the load diagnostics", False))


# ---------------------------------------------------------------------------
# Showing values
# ---------------------------------------------------------------------------


def _show(value: Any, limit: int = 60) -> str:
    """A short, readable rendering: text quoted, true/false/null as in YAML."""
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        if len(value) > limit:
            return repr(value[: limit - 1]) + "…"
        return repr(value)
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple)):
        inner = ", ".join(_show(v, limit) for v in value[:10])
        return f"[{inner}{', …' if len(value) > 10 else ''}]"
    if isinstance(value, dict):
        items = list(value.items())
        inner = ", ".join(f"{_show(k, limit)}: {_show(v, limit)}" for k, v in items[:10])
        return f"{{{inner}{', …' if len(items) > 10 else ''}}}"
    if isinstance(value, (int, float)):
        return repr(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _show_choices(values: Sequence[Any]) -> str:
    if len(values) == 1:
        return _show(values[0])
    return "one of " + ", ".join(_show(v) for v in values)


def _kind_name(value: Any) -> str:
    """What an argument is, for messages: 'a list', 'the number 3' ..."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return _show(value)
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    if isinstance(value, str):
        return f"the text {_show(value)}"
    if isinstance(value, datetime):
        return f"the date-time {value.isoformat()}"
    if isinstance(value, date):
        return f"the date {value.isoformat()}"
    return f"a {type(value).__name__}"


# ---------------------------------------------------------------------------
# Argument kinds
# ---------------------------------------------------------------------------

_ISO_DATETIME = re.compile(r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}")
_NUMBER_TYPES = frozenset((int, float))
_SIZED_TYPES = frozenset((str, list, dict, tuple))


def _iso(text: str) -> datetime | None:
    """A date-time written as ISO-8601 text (aware or naive), else None."""
    if not _ISO_DATETIME.match(text):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def _arg_kind(value: Any) -> str:
    """number | text | time | naive (a date-time without zone) | date | bool | null | other."""
    if value is None:
        return "null"
    if value is True or value is False:
        return "bool"
    if type(value) in _NUMBER_TYPES:
        return "number"
    if isinstance(value, str):
        parsed = _iso(value)
        if parsed is not None:
            return "time" if parsed.tzinfo is not None else "naive"
        return "text"
    if isinstance(value, datetime):
        return "time" if value.tzinfo is not None else "naive"
    if isinstance(value, date):
        return "date"
    return "other"


def _value_kind(value: Any) -> str:
    """The kind of a value read from a view: number, text, time or other."""
    cls = value.__class__
    if cls in _NUMBER_TYPES:
        return "number"
    if cls is str:
        return "text"
    if cls is datetime:
        return "time"
    return "other"


def _as_time(value: Any) -> datetime:
    return _iso(value) if isinstance(value, str) else value  # type: ignore[return-value]


def _is_scalar(value: Any) -> bool:
    return value is None or isinstance(value, (str, bool, int, float, date))


def _plain(value: Any) -> Any:
    """YMap/YSeq (and nested ones) as plain dicts and lists, for plugins."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


# ---------------------------------------------------------------------------
# Fields: checking at load, reading at run time
# ---------------------------------------------------------------------------


def _field_type(name: Any) -> str | None:
    """The type of field path *name* per FIELDS ('text', 'number', 'any' ...), or None."""
    if not isinstance(name, str):
        return None
    known = FIELDS.get(name)
    if known is not None:
        return known
    parts = name.split(".")
    if "" in parts or len(parts) < 2:
        return None
    for i in range(len(parts) - 1, 0, -1):
        wildcard = FIELDS.get(".".join(parts[:i]) + ".*")
        if wildcard is not None:
            return wildcard
    return None


def _children(prefix: str) -> list[str]:
    start = prefix + "."
    out = []
    for name in FIELDS:
        if name.startswith(start):
            rest = name[len(start):]
            if "." not in rest:
                out.append("<any key>" if rest == "*" else rest)
    return out


_TOP_FIELDS = [name for name in FIELDS if "." not in name]
_FIELD_NAMES = [name for name in FIELDS if not name.endswith("*")]


def _unknown_field_hint(name: Any) -> str:
    if not isinstance(name, str):
        return "a field name is text, such as category or customer.tier"
    hint = did_you_mean(name, _FIELD_NAMES)
    if hint:
        return hint
    parts = name.split(".")
    for i in range(len(parts) - 1, 0, -1):
        prefix = ".".join(parts[:i])
        kind = FIELDS.get(prefix)
        if kind is None:
            continue
        below = _children(prefix)
        if below:
            return f"{prefix} has: {', '.join(below)}"
        return f"{prefix} is {_TYPE_PHRASE.get(kind, kind)} and has no fields below it"
    return f"use one of: {', '.join(_TOP_FIELDS)} (nested: customer.tier, extra.<key> ...)"


def _step(value: Any, key: str) -> Any:
    """One step down a path: a mapping's entry, a list's entries (``attachments.kind``
    is the list of kinds), or None for anything else."""
    if isinstance(value, dict):
        return value.get(key)
    if isinstance(value, (list, tuple)):
        return [item.get(key) for item in value if isinstance(item, dict)]
    return None


def _getter(parts: tuple[str, ...]) -> Callable[[Mapping[str, Any]], Any]:
    """A reader for a pre-split path; never raises on plain data."""
    first = parts[0]
    if len(parts) == 1:
        return lambda view: view.get(first)
    if len(parts) == 2:
        second = parts[1]

        def get2(view: Mapping[str, Any]) -> Any:
            x = view.get(first)
            if x.__class__ is dict:
                return x.get(second)
            return _step(x, second)

        return get2
    rest = parts[1:]

    def get(view: Mapping[str, Any]) -> Any:
        x = view.get(first)
        for key in rest:
            x = x.get(key) if x.__class__ is dict else _step(x, key)
        return x

    return get


def _describe(path: str, value: Any) -> str:
    return f"{path} is missing" if value is None else f"{path} is {_show(value)}"


# ---------------------------------------------------------------------------
# Typed sets of values (eq, in, and their negations)
# ---------------------------------------------------------------------------


class _Values:
    """Scalars compared with typed equality: 1 matches 1.0 but never true; text
    matches only text; ISO text with a time zone also matches the equal date-time."""

    def __init__(self, values: Sequence[Any]) -> None:
        self.shown = tuple(values)
        strs: set[str] = set()
        nums: set[Any] = set()
        bools: set[bool] = set()
        times: set[Any] = set()
        none = False
        for v in values:
            if v is None:
                none = True
            elif v is True or v is False:
                bools.add(v)
            elif isinstance(v, str):
                strs.add(v)
                parsed = _iso(v)
                if parsed is not None and parsed.tzinfo is not None:
                    times.add(parsed)
            elif isinstance(v, (int, float)):
                nums.add(v)
            else:  # date or aware datetime (checked before)
                times.add(v)
        #: every value the predicate accepts, for rule indexers
        self.index = frozenset(strs) | frozenset(nums) | frozenset(bools) | frozenset(times)
        if none:
            self.index |= {None}
        #: text-only sets take one hash lookup
        self.fast: frozenset[Any] | None = None
        if not (nums or bools or times):
            self.fast = frozenset(strs) | ({None} if none else frozenset())
        self.single = values[0] if len(values) == 1 and isinstance(values[0], str) and self.fast else None
        self.pred = self._predicate(frozenset(strs), frozenset(nums), frozenset(bools),
                                    frozenset(times), none)

    def _predicate(self, strs: frozenset[str], nums: frozenset[Any], bools: frozenset[bool],
                   times: frozenset[Any], none: bool) -> Callable[[Any], bool]:
        if self.fast is not None:
            fast = self.fast

            def member_fast(x: Any) -> bool:
                try:
                    return x in fast
                except TypeError:  # an unhashable value (a list) is never one of them
                    return False

            return member_fast
        number_types = _NUMBER_TYPES

        def member(x: Any) -> bool:
            cls = x.__class__
            if cls is str:
                return x in strs
            if cls in number_types:
                return x in nums
            if cls is bool:
                return x in bools
            if x is None:
                return none
            if cls is datetime or cls is date:
                return x in times
            return False

        return member

    def phrase(self) -> str:
        return _show_choices(self.shown)


def _member_test(parts: tuple[str, ...], values: _Values) -> Test:
    pred = values.pred
    fast = values.fast
    if len(parts) == 1:
        key = parts[0]
        if values.single is not None:
            single = values.single
            return lambda view: view.get(key) == single
        if fast is not None:

            def member1(view: Mapping[str, Any]) -> bool:
                try:
                    return view.get(key) in fast
                except TypeError:
                    return False

            return member1
        return lambda view: pred(view.get(key))
    if len(parts) == 2 and fast is not None:
        first, second = parts

        def member2(view: Mapping[str, Any]) -> bool:
            x = view.get(first)
            if x.__class__ is dict:
                try:
                    return x.get(second) in fast
                except TypeError:
                    return False
            return pred(_step(x, second))

        return member2
    get = _getter(parts)
    return lambda view: pred(get(view))


# ---------------------------------------------------------------------------
# Compiled nodes and their combination
# ---------------------------------------------------------------------------

_ATOM, _AND, _OR = 0, 1, 2
# Cost ranks: cheaper parts run first in an AND or OR (the truth value is the same).
_SIMPLE, _LEAF, _REGEX, _COMPOUND, _PLUGIN = range(5)


class _Node:
    __slots__ = ("cost", "empty", "eqs", "prec", "simple", "test", "text", "why")

    def __init__(self, test: Test, why: Why, text: str, *, prec: int = _ATOM, cost: int = _LEAF,
                 simple: tuple[str, frozenset[Any]] | None = None,
                 eqs: dict[str, frozenset[Any]] | None = None, empty: bool = False) -> None:
        self.test = test
        self.why = why
        self.text = text
        self.prec = prec
        self.cost = cost
        self.simple = simple  # (top-level key, text set): fusable into one check
        self.eqs = eqs or {}
        self.empty = empty


def _bracket(reason: str, compound: bool) -> str:
    return f"({reason})" if compound else reason


def _all_of(tests: Sequence[Test]) -> Test | None:
    n = len(tests)
    if n == 0:
        return None
    if n == 1:
        return tests[0]
    if n == 2:
        a, b = tests
        return lambda view: a(view) and b(view)
    if n == 3:
        a, b, c = tests
        return lambda view: a(view) and b(view) and c(view)
    chain = tuple(tests)

    def all_of(view: Mapping[str, Any]) -> bool:
        for t in chain:
            if not t(view):
                return False
        return True

    return all_of


def _any_of(tests: Sequence[Test]) -> Test:
    n = len(tests)
    if n == 1:
        return tests[0]
    if n == 2:
        a, b = tests
        return lambda view: a(view) or b(view)
    if n == 3:
        a, b, c = tests
        return lambda view: a(view) or b(view) or c(view)
    chain = tuple(tests)

    def any_of(view: Mapping[str, Any]) -> bool:
        for t in chain:
            if t(view):
                return True
        return False

    return any_of


def _fused(simple: Sequence[tuple[str, frozenset[Any]]], rest: Test | None) -> Test:
    """Up to three top-level membership checks in one closure, then *rest*."""
    if len(simple) == 1:
        (k1, s1), = simple
        if rest is None:

            def f1(view: Mapping[str, Any]) -> bool:
                try:
                    return view.get(k1) in s1
                except TypeError:
                    return False

            return f1

        def f1r(view: Mapping[str, Any]) -> bool:
            try:
                if view.get(k1) not in s1:
                    return False
            except TypeError:
                return False
            return rest(view)

        return f1r
    if len(simple) == 2:
        (k1, s1), (k2, s2) = simple
        if rest is None:

            def f2(view: Mapping[str, Any]) -> bool:
                try:
                    return view.get(k1) in s1 and view.get(k2) in s2
                except TypeError:
                    return False

            return f2

        def f2r(view: Mapping[str, Any]) -> bool:
            try:
                if view.get(k1) not in s1 or view.get(k2) not in s2:
                    return False
            except TypeError:
                return False
            return rest(view)

        return f2r
    (k1, s1), (k2, s2), (k3, s3) = simple
    if rest is None:

        def f3(view: Mapping[str, Any]) -> bool:
            try:
                return view.get(k1) in s1 and view.get(k2) in s2 and view.get(k3) in s3
            except TypeError:
                return False

        return f3

    def f3r(view: Mapping[str, Any]) -> bool:
        try:
            if view.get(k1) not in s1 or view.get(k2) not in s2 or view.get(k3) not in s3:
                return False
        except TypeError:
            return False
        return rest(view)

    return f3r


def _merge_eqs(parts: Sequence[_Node]) -> dict[str, frozenset[Any]]:
    out: dict[str, frozenset[Any]] = {}
    for part in parts:
        for path, values in part.eqs.items():
            out[path] = out[path] & values if path in out else values
    return out


def _and(parts: Sequence[_Node]) -> _Node:
    if len(parts) == 1:
        return parts[0]
    ordered = sorted(parts, key=lambda p: p.cost)
    simple = [p.simple for p in ordered if p.simple is not None][:3]
    fused = {id(p) for p in ordered if p.simple is not None and p.simple in simple}
    rest = _all_of([p.test for p in ordered if id(p) not in fused])
    test = _fused(simple, rest) if simple else rest
    assert test is not None
    whys = tuple(p.why for p in parts)

    def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
        reasons = []
        for w in whys:
            ok, reason, compound = w(view)
            if not ok:
                return False, reason, compound
            reasons.append(_bracket(reason, compound))
        return True, "all hold: " + "; ".join(reasons), True

    text = " and ".join(f"({p.text})" if p.prec == _OR else p.text for p in parts)
    return _Node(test, why, text, prec=_AND, cost=max(p.cost for p in parts),
                 eqs=_merge_eqs(parts))


def _or(parts: Sequence[_Node]) -> _Node:
    if len(parts) == 1:
        return parts[0]
    test = _any_of([p.test for p in sorted(parts, key=lambda p: p.cost)])
    whys = tuple(p.why for p in parts)

    def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
        reasons = []
        for w in whys:
            ok, reason, compound = w(view)
            if ok:
                return True, reason, compound
            reasons.append(_bracket(reason, compound))
        return False, "none hold: " + "; ".join(reasons), True

    # "any of a, b" still pins a field when every part pins it
    eqs: dict[str, frozenset[Any]] = {}
    common = set(parts[0].eqs).intersection(*(p.eqs for p in parts[1:]))
    for path in common:
        eqs[path] = frozenset().union(*(p.eqs[path] for p in parts))
    text = " or ".join(f"({p.text})" if p.prec == _AND else p.text for p in parts)
    return _Node(test, why, text, prec=_OR, cost=_COMPOUND, eqs=eqs)


def _not(part: _Node) -> _Node:
    inner = part.test
    inner_why = part.why

    def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
        ok, reason, compound = inner_why(view)
        if ok:
            return False, f"{_bracket(reason, compound)}, which 'not' excludes", False
        return True, reason, compound

    return _Node(lambda view: not inner(view), why, f"not ({part.text})", cost=_COMPOUND)


def _empty_node() -> _Node:
    return _Node(_always_test, lambda view: (True, "no conditions (always holds)", False),
                 "always", empty=True, cost=_SIMPLE)


# ---------------------------------------------------------------------------
# Field type checks: a value of the wrong type can never match, so say so at load
# ---------------------------------------------------------------------------

_TYPE_PHRASE = {
    "text": "text", "number": "a number", "time": "a date-time", "list": "a list",
    "object": "a group of fields",
}
_VALUE_KINDS = {"text": {"text"}, "number": {"number"}, "time": {"time"}}


def _type_hint(field: str, ftype: str, arg: Any = None) -> str:
    if ftype == "text":
        if isinstance(arg, (bool, int, float)) and arg is not None:
            return f"quote it to make it text: '{_show(arg)}'"
        return "give text, quoted if it looks like a number or a date"
    if ftype == "number":
        return "give a number without quotes, e.g. 3"
    if ftype == "time":
        return "give a date-time with a time zone, e.g. 2026-11-20T09:00:00+08:00"
    if ftype == "list":
        return f"to test for one element write {field}: {{contains: ...}}"
    below = [c for c in _children(field) if c != "<any key>"]
    example = f"{field}.{below[0]}" if below else f"{field}.<key>"
    return f"test one of its fields, e.g. {example}"


# ---------------------------------------------------------------------------
# Where the characters of an expression string stand
# ---------------------------------------------------------------------------


#: One word and nothing else (``when: complaint``): a mapping was meant, not an
#: expression. An empty or blank text is no word: it is an empty expression (QF310).
_BARE_WORD = re.compile(r"\s*[\w.-]+\s*")


def _expression_marks(text: str, at: Mark) -> tuple[Callable[[int], Mark], bool]:
    """``mark(offset)`` for the characters of *text*, a scalar that starts at *at*.

    The YAML node's mark is where the scalar starts, quote included; the source
    line tells whether it is quoted and whether the text stands there as written
    (no escapes, one line). Otherwise every character maps to the scalar's start
    and the message names the character instead (*exact* is False).
    """
    linecache.checkcache(at.file)
    line = linecache.getline(at.file, at.line + 1)
    for skip in (1, 0):
        start = at.col + skip
        if (skip == 0 or line[at.col:at.col + 1] in ("'", '"')) and line[start:start + len(text)] == text:
            return (lambda offset, start=start: Mark(at.file, at.line, start + offset)), True
    return (lambda offset: at), False


# ---------------------------------------------------------------------------
# The compiler
# ---------------------------------------------------------------------------


@attrs.frozen
class _Field:
    path: str
    parts: tuple[str, ...]
    type: str  # FIELDS type: text, number, time, list, object, any


class _Compiler:
    def __init__(self, functions: Mapping[str, Any], errors: list[Diagnostic], rule: str | None,
                 file: str, prefix: Path, at: Mark | None) -> None:
        self.errors = errors
        self.rule = rule
        self.file = file
        self.prefix = prefix
        self.root_mark = at if at is not None else Mark(file, 0, 0)
        self._pin: Path | None = None  # inside an expression string: its JSON path
        self.field_ops = {n: f for n, f in functions.items()
                          if not getattr(f, "whole_incident", False) and n not in OPERATORS}
        self.predicates = {n: f for n, f in functions.items() if getattr(f, "whole_incident", False)}
        self.ops: dict[str, Callable[..., _Node | None]] = {
            "eq": self._eq, "ne": self._eq, "in": self._in, "not_in": self._in,
            "lt": self._compare, "le": self._compare, "gt": self._compare, "ge": self._compare,
            "between": self._between, "matches": self._matches,
            "contains": self._contains, "not_contains": self._contains,
            "icontains": self._icontains, "startswith": self._affix, "endswith": self._affix,
            "exists": self._flag, "empty": self._flag,
        }

    # -- reporting -------------------------------------------------------------

    def error(self, code: str, message: str, at: Mark, rel: Path, hint: str | None = None) -> None:
        path = self._pin if self._pin is not None else self.prefix + rel
        self.errors.append(Diagnostic(at.file, at.line + 1, at.col + 1, code, message,
                                      json_path(path), hint, self.rule))

    # -- expression strings -------------------------------------------------------

    def _expression(self, text: str, at: Mark, rel: Path) -> _Node | None:
        """Translate the string to the structured form and compile that: one compiler,
        one set of callables and reasons. Errors keep the string's JSON path and point
        at the character inside it."""
        mark, exact = _expression_marks(text, at)
        try:
            tree = parse_expression(text, mark)
        except ExpressionError as exc:
            where = "" if exact else f" (at character {exc.pos + 1} of the expression)"
            self.error(exc.code, f"{exc.message}{where}", mark(exc.pos), rel, hint=exc.hint)
            return None
        self._pin = self.prefix + rel
        try:
            return self.condition(tree, mark(0), rel)
        finally:
            self._pin = None

    @staticmethod
    def key_mark(node: Any, key: Any, fallback: Mark) -> Mark:
        marks = getattr(node, "key_marks", None)
        return marks.get(key, fallback) if marks else fallback

    @staticmethod
    def value_mark(node: Any, key: Any, fallback: Mark) -> Mark:
        marks = getattr(node, "value_marks", None)
        return marks.get(key, fallback) if marks else fallback

    @staticmethod
    def item_mark(node: Any, index: int, fallback: Mark) -> Mark:
        marks = getattr(node, "item_marks", None)
        return marks[index] if marks and index < len(marks) else fallback

    # -- conditions ------------------------------------------------------------

    def condition(self, node: Any, at: Mark, rel: Path, what: str = "a condition") -> _Node | None:
        # A bare word is a mistaken shape, not an expression: say so in those words.
        if isinstance(node, str) and self._pin is None and not _BARE_WORD.fullmatch(node):
            return self._expression(node, at, rel)
        if not isinstance(node, dict):
            self.error("QF103", f"{what} must be a mapping such as {{category: complaint}}, "
                       f"not {_kind_name(node)}", at, rel,
                       hint="write field: value pairs (all must hold), or any:/all:/not:")
            return None
        if not node:
            return _empty_node()
        parts: list[_Node] = []
        ok = True
        for key, spec in node.items():
            key_at = self.key_mark(node, key, at)
            value_at = self.value_mark(node, key, at)
            sub = rel + (str(key),)
            if key in ("any", "all"):
                part = self._group(key, spec, value_at, sub)
            elif key == "not":
                part = self._negation(spec, value_at, sub)
            elif key == "fn":
                part = self._functions(spec, value_at, sub)
            else:
                part = self._field_spec(key, spec, key_at, value_at, sub)
            if part is None:
                ok = False
            else:
                parts.append(part)
        if not ok:
            return None
        return _and(parts)

    def _group(self, key: str, spec: Any, at: Mark, rel: Path) -> _Node | None:
        if not isinstance(spec, list):
            self.error("QF303", f"'{key}' needs a list of conditions, not {_kind_name(spec)}", at, rel,
                       hint="write one '- ' item per condition")
            return None
        if not spec:
            self.error("QF303", f"'{key}' needs at least one condition", at, rel,
                       hint="add conditions as '- ' items, or remove the empty list")
            return None
        parts = [self.condition(item, self.item_mark(spec, i, at), rel + (i,),
                                what=f"each item of '{key}'")
                 for i, item in enumerate(spec)]
        if any(p is None for p in parts):
            return None
        done = [p for p in parts if p is not None]
        return _or(done) if key == "any" else _and(done)

    def _negation(self, spec: Any, at: Mark, rel: Path) -> _Node | None:
        if not isinstance(spec, dict):
            self.error("QF303", f"'not' needs one condition (a mapping), not {_kind_name(spec)}", at, rel,
                       hint="to exclude several cases write not: {any: [...]}")
            return None
        part = self.condition(spec, at, rel)
        return None if part is None else _not(part)

    # -- fn: plugin predicates over the whole incident --------------------------

    def _functions(self, spec: Any, at: Mark, rel: Path) -> _Node | None:
        if isinstance(spec, str):
            return self._predicate(spec, None, at, at, rel)
        if not isinstance(spec, dict) or not spec:
            self.error("QF303", f"'fn' needs a function name or {{name: argument}}, not {_kind_name(spec)}",
                       at, rel, hint="for example fn: {vip_guest: true}")
            return None
        parts = [self._predicate(name, arg, self.key_mark(spec, name, at), self.value_mark(spec, name, at),
                                 rel + (str(name),))
                 for name, arg in spec.items()]
        if any(p is None for p in parts):
            return None
        return _and([p for p in parts if p is not None])

    def _predicate(self, name: Any, arg: Any, name_at: Mark, arg_at: Mark, rel: Path) -> _Node | None:
        fn = self.predicates.get(name) if isinstance(name, str) else None
        if fn is None:
            if name in OPERATORS or name in self.field_ops:
                self.error("QF302", f"'{name}' is a field operator, not a function of the whole incident",
                           name_at, rel, hint=f"write it under a field: <field>: {{{name}: ...}}")
                return None
            hint = did_you_mean(name, self.predicates) or (
                f"functions available: {', '.join(sorted(self.predicates))}" if self.predicates
                else "no installed plugin provides functions; install the plugin that does")
            self.error("QF302", f"unknown function {_show(name)}", name_at, rel, hint=hint)
            return None
        pred = self._plugin_compile(fn, "function", arg, arg_at, rel)
        if pred is None:
            return None
        label = f"{name}({'' if arg is None else _show(arg)})"

        def test(view: Mapping[str, Any]) -> bool:
            try:
                return bool(pred(view))
            except Exception:  # noqa: BLE001 - a plugin's failure is "no match"
                return False

        def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
            try:
                ok = bool(pred(view))
            except Exception as exc:  # noqa: BLE001 - reported in the reason
                return False, f"function '{name}' raised {type(exc).__name__}: {exc}; counted as no match", False
            return ok, f"{label} {'holds' if ok else 'does not hold'}", False

        return _Node(test, why, label, cost=_PLUGIN)

    def _plugin_compile(self, fn: Any, kind: str, arg: Any, at: Mark, rel: Path) -> Callable[[Any], Any] | None:
        try:
            pred: Callable[[Any], Any] = fn.compile(_plain(arg))
        except ValueError as exc:
            self.error("QF303", f"{kind} '{fn.name}' cannot use {_kind_name(arg)}: {exc}", at, rel,
                       hint=fn.doc or None)
            return None
        except Exception as exc:  # noqa: BLE001 - a bug in the plugin: report it, do not crash the load
            self.error("QF501", f"{kind} '{fn.name}' failed while compiling its argument: "
                       f"{type(exc).__name__}: {exc}", at, rel,
                       hint=f"this is a bug in the plugin that provides '{fn.name}'; report it to its authors")
            return None
        if not callable(pred):
            self.error("QF501", f"{kind} '{fn.name}' returned {_kind_name(pred)} instead of a predicate",
                       at, rel, hint=f"this is a bug in the plugin that provides '{fn.name}'")
            return None
        return pred

    # -- fields ------------------------------------------------------------------

    def _field_spec(self, key: Any, spec: Any, key_at: Mark, value_at: Mark, rel: Path) -> _Node | None:
        ftype = _field_type(key)
        if ftype is None:
            self.error("QF301", f"unknown field {_show(key)}", key_at, rel, hint=_unknown_field_hint(key))
            return None
        field = _Field(key, tuple(key.split(".")), ftype)
        if isinstance(spec, dict):
            if not spec:
                self.error("QF303", f"no operator given for '{key}'", value_at, rel,
                           hint=f"give one, e.g. {key}: {{exists: true}}")
                return None
            parts = [self._operator(field, op, arg, self.key_mark(spec, op, value_at),
                                    self.value_mark(spec, op, value_at), rel + (str(op),))
                     for op, arg in spec.items()]
            if any(p is None for p in parts):
                return None
            return _and([p for p in parts if p is not None])
        if isinstance(spec, list):
            return self._in(field, "in", spec, value_at, rel, shorthand=True)
        return self._eq(field, "eq", spec, value_at, rel, shorthand=True)

    def _operator(self, field: _Field, op: Any, arg: Any, op_at: Mark, arg_at: Mark,
                  rel: Path) -> _Node | None:
        build = self.ops.get(op) if isinstance(op, str) else None
        if build is not None:
            return build(field, op, arg, arg_at, rel)
        plugin = self.field_ops.get(op) if isinstance(op, str) else None
        if plugin is not None:
            return self._plugin_operator(field, plugin, arg, arg_at, rel)
        if op in self.predicates:
            self.error("QF302", f"'{op}' is a function of the whole incident, not a field operator",
                       op_at, rel, hint=f"write it as fn: {{{op}: ...}}")
            return None
        known = list(OPERATORS) + sorted(self.field_ops)
        hint = did_you_mean(op, known)
        if hint is None and isinstance(op, str) and _field_type(f"{field.path}.{op}") is not None:
            hint = f"to test a nested field write '{field.path}.{op}: ...'"
        if hint is None:
            hint = f"use one of: {', '.join(known)}"
        self.error("QF302", f"unknown operator {_show(op)}", op_at, rel, hint=hint)
        return None

    def _type_error(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path,
                    shorthand: bool = False) -> None:
        how = f"{_kind_name(arg)} can never match" if shorthand else (
            f"'{op}' with {_kind_name(arg)} can never hold")
        self.error("QF303", f"{field.path} holds {_TYPE_PHRASE[field.type]}, so {how}", at, rel,
                   hint=_type_hint(field.path, field.type, arg))

    def _fits(self, field: _Field, kind: str) -> bool:
        """Can a value of *field* ever equal or be compared with an argument of *kind*?"""
        if field.type == "any" or kind == "null":
            return True
        allowed = _VALUE_KINDS.get(field.type)
        return allowed is not None and kind in allowed

    # -- eq, ne, in, not_in ------------------------------------------------------

    def _check_value(self, field: _Field, op: str, value: Any, at: Mark, rel: Path,
                     shorthand: bool) -> bool:
        if isinstance(value, (dict, list)) or not _is_scalar(value):
            what = "a list item" if op in ("in", "not_in") else (
                f"the value of '{field.path}'" if shorthand else f"'{op}'")
            self.error("QF303", f"{what} must be text, a number, true/false, a date-time or null, "
                       f"not {_kind_name(value)}", at, rel,
                       hint="to combine several conditions use any: or all:")
            return False
        kind = _arg_kind(value)
        if isinstance(value, str) and field.type == "text":
            kind = "text"  # ISO-looking text is still text where the field holds text
        if kind == "naive":
            self.error("QF303", f"the date-time {_show(value)} has no time zone", at, rel,
                       hint="add an offset such as +08:00 or Z")
            return False
        if kind == "date" and field.type not in ("any",):
            self.error("QF303", f"{field.path} holds {_TYPE_PHRASE.get(field.type, 'values')}, "
                       f"so the date {value.isoformat()} can never match", at, rel,
                       hint="give a date-time with a time zone, or compare with between")
            return False
        if not self._fits(field, kind):
            self._type_error(field, op, value, at, rel, shorthand)
            return False
        return True

    def _eq(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path,
            shorthand: bool = False) -> _Node | None:
        if not self._check_value(field, op, arg, at, rel, shorthand):
            return None
        return self._membership(field, op, _Values([arg]))

    def _in(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path,
            shorthand: bool = False) -> _Node | None:
        if not isinstance(arg, list):
            self.error("QF303", f"'{op}' needs a list of values, not {_kind_name(arg)}", at, rel,
                       hint=f"write {op}: [a, b]" + ("" if op == "not_in" else " or use eq for one value"))
            return None
        if not arg:
            what = f"the list for '{field.path}'" if shorthand else f"'{op}'"
            self.error("QF303", f"{what} needs at least one value", at, rel,
                       hint="an empty list matches nothing; add values or remove the test")
            return None
        if field.type in ("list", "object"):  # one mistake, one message
            wrong = next((v for v in arg if v is not None), None)
            if wrong is not None:
                self._type_error(field, op, wrong, at, rel, shorthand)
                return None
        # check every item (not all() over a generator: every mistake is reported)
        checked = [self._check_value(field, op, v, self.item_mark(arg, i, at), rel + (i,), shorthand)
                   for i, v in enumerate(arg)]
        if False in checked:
            return None
        return self._membership(field, op, _Values(list(arg)))

    def _membership(self, field: _Field, op: str, values: _Values) -> _Node:
        path, parts = field.path, field.parts
        positive = op in ("eq", "in")
        test = _member_test(parts, values)
        pred, get = values.pred, _getter(parts)
        phrase = values.phrase()
        single = op in ("eq", "ne")
        if single:
            text = f"{path} {'==' if positive else '!='} {_show(values.shown[0])}"
        else:
            text = f"{path} {'in' if positive else 'not in'} {_show(list(values.shown))}"

        if positive:

            def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
                x = get(view)
                if pred(x):
                    return True, _describe(path, x), False
                return False, f"{_describe(path, x)}, not {phrase}", False

            simple = None
            if len(parts) == 1 and values.fast is not None:
                simple = (parts[0], values.fast)
            return _Node(test, why, text, cost=_SIMPLE if simple else _LEAF, simple=simple,
                         eqs={path: values.index})

        def why_not(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
            x = get(view)
            if pred(x):
                return False, _describe(path, x), False
            return True, f"{_describe(path, x)}, not {phrase}", False

        return _Node(lambda view: not test(view), why_not, text)

    # -- lt, le, gt, ge, between ---------------------------------------------------

    def _bound(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> str | None:
        """Check one comparison argument; return its kind (number, text, time) or None."""
        kind = _arg_kind(arg)
        if isinstance(arg, str) and field.type == "text":
            kind = "text"  # compare ISO-looking text as text where the field holds text
        if kind == "naive":
            self.error("QF303", f"'{op}' needs a time zone on the date-time {_show(arg)}", at, rel,
                       hint="add an offset, e.g. 2026-11-20T09:00:00+08:00")
            return None
        if kind == "date":
            self.error("QF303", f"'{op}' needs a date-time, not the date {arg.isoformat()}", at, rel,
                       hint=f"write a time and a zone, e.g. {arg.isoformat()}T00:00:00+08:00")
            return None
        if kind not in ("number", "text", "time"):
            example = {"time": "2026-11-20T09:00:00+08:00", "text": "M"}.get(field.type, "3")
            self.error("QF303", f"'{op}' needs a number, text or a date-time with a time zone, "
                       f"not {_kind_name(arg)}", at, rel,
                       hint=f"for example {field.path}: {{{op}: {example}}}")
            return None
        if not self._fits(field, kind):
            self._type_error(field, op, arg, at, rel)
            return None
        return kind

    def _compare(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> _Node | None:
        kind = self._bound(field, op, arg, at, rel)
        if kind is None:
            return None
        bound = _as_time(arg) if kind == "time" else arg
        fn: Callable[[Any, Any], Any] = {
            "lt": operator.lt, "le": operator.le, "gt": operator.gt, "ge": operator.ge}[op]
        pred = _comparison(kind, lambda x: fn(x, bound))
        symbol = {"lt": "<", "le": "<=", "gt": ">", "ge": ">="}[op]
        words = {"lt": "less than", "le": "at most", "gt": "more than", "ge": "at least"}[op]
        phrase = f"{words} {_show(bound)}"
        text = f"{field.path} {symbol} {_show(bound)}"
        test = None
        if kind == "number" and len(field.parts) == 1:
            key, number_types = field.parts[0], _NUMBER_TYPES

            def test(view: Mapping[str, Any]) -> bool:
                x = view.get(key)
                return x.__class__ in number_types and bool(fn(x, bound))

        return self._leaf(field, pred, text, phrase, kind, test)

    def _between(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> _Node | None:
        if not isinstance(arg, list) or len(arg) != 2:
            got = (f"{len(arg)} value{'' if len(arg) == 1 else 's'}" if isinstance(arg, list)
                   else _kind_name(arg))
            self.error("QF303", f"'between' needs two values [low, high], not {got}", at, rel,
                       hint=f"for example {field.path}: {{between: [2, 4]}} (both ends included)")
            return None
        kind, other = (self._bound(field, op, v, self.item_mark(arg, i, at), rel + (i,))
                       for i, v in enumerate(arg))
        if kind is None or other is None:
            return None
        if kind != other:
            self.error("QF303", f"'between' needs two values of one kind, not {_kind_name(arg[0])} "
                       f"and {_kind_name(arg[1])}", at, rel,
                       hint="give two numbers, two texts or two date-times")
            return None
        low, high = (_as_time(v) if kind == "time" else v for v in arg)
        if low > high:
            self.error("QF303", f"'between' bounds are reversed: {_show(low)} is greater than {_show(high)}",
                       at, rel, hint="write the lower bound first")
            return None
        pred = _comparison(kind, lambda x: low <= x <= high)
        phrase = f"between {_show(low)} and {_show(high)}"
        return self._leaf(field, pred, f"{field.path} {phrase}", phrase, kind)

    def _leaf(self, field: _Field, pred: Callable[[Any], bool], text: str, phrase: str,
              kind: str | None = None, test: Test | None = None, cost: int = _LEAF) -> _Node:
        """A test of one field's value with *pred*; reasons read '<field> is X, <phrase>'."""
        path = field.path
        get = _getter(field.parts)
        if test is None:
            if len(field.parts) == 1:
                key = field.parts[0]
                test = lambda view: pred(view.get(key))
            else:
                test = lambda view: pred(get(view))
        need = {"number": "a number", "text": "text", "time": "a date-time"}.get(kind or "")

        def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
            x = get(view)
            if pred(x):
                return True, f"{_describe(path, x)}, {phrase}", False
            if need and x is not None and _value_kind(x) != kind:
                return False, f"{_describe(path, x)}, not {need} (needed for {phrase})", False
            return False, f"{_describe(path, x)}, not {phrase}", False

        return _Node(test, why, text, cost=cost)

    # -- text operators ------------------------------------------------------------

    def _text_only(self, field: _Field, op: str, at: Mark, rel: Path) -> bool:
        if field.type in ("text", "any"):
            return True
        self.error("QF303", f"'{op}' works on text, but {field.path} holds {_TYPE_PHRASE[field.type]}",
                   at, rel, hint=_TEXT_OP_HINT.get(field.type) or _type_hint(field.path, field.type))
        return False

    def _matches(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> _Node | None:
        if not isinstance(arg, str):
            self.error("QF303", f"'matches' needs a regular expression as text, not {_kind_name(arg)}",
                       at, rel, hint='quote it, e.g. matches: "^VIP"')
            return None
        if not self._text_only(field, op, at, rel):
            return None
        try:
            pattern = re.compile(arg)
        except (re.error, OverflowError, RecursionError) as exc:
            self.error("QF304", f"the regular expression {_show(arg)} does not compile: {exc}", at, rel,
                       hint=r"escape characters such as ( ) [ ] . * + ? with a backslash (\) "
                            "when you mean them literally")
            return None
        if can_backtrack_catastrophically(arg):
            self.error("QF305", f"the regular expression {_show(arg)} can backtrack catastrophically "
                       "(a repeated part can match the same text in many ways, so a long "
                       "description could stall the engine)", at, rel,
                       hint="rewrite without a repeat inside a repeat, or use an atomic group "
                            "(?>...) or a possessive quantifier like a++")
            return None
        pair = overlapping_neighbours(arg)
        if pair is not None:
            self.error("QF305", f"the regular expression {_show(arg)} can backtrack catastrophically (the repeats "
                       f"{_show(pair[0])} and {_show(pair[1])} side by side can split the same text in many ways, "
                       "so a long description could stall the engine)", at, rel,
                       hint="write one repeat instead of the two, or make them match different characters")
            return None
        search = pattern.search
        pred = lambda x: x.__class__ is str and search(x) is not None
        test = None
        if len(field.parts) == 1:
            key = field.parts[0]

            def test(view: Mapping[str, Any]) -> bool:
                x = view.get(key)
                return x.__class__ is str and search(x) is not None

        return self._leaf(field, pred, f"{field.path} matches {_show(arg)}", f"matching {_show(arg)}",
                          "text", test, cost=_REGEX)

    def _contains(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> _Node | None:
        if not _is_scalar(arg) or _arg_kind(arg) == "naive":
            self.error("QF303", f"'{op}' needs one value (text, a number or true/false), not {_kind_name(arg)}",
                       at, rel, hint="to test several values use any: with one contains each")
            return None
        if field.type in ("number", "time", "object"):
            self.error("QF303", f"'{op}' works on text and lists, but {field.path} holds "
                       f"{_TYPE_PHRASE[field.type]}", at, rel,
                       hint=_TEXT_OP_HINT.get(field.type) or _type_hint(field.path, field.type))
            return None
        if field.type == "text" and not isinstance(arg, str):
            self._type_error(field, op, arg, at, rel)
            return None
        if isinstance(arg, str):
            needle = arg

            def pred(x: Any) -> bool:
                cls = x.__class__
                return (cls is str or cls is list or cls is tuple) and needle in x
        else:
            member = _Values([arg]).pred

            def pred(x: Any) -> bool:
                cls = x.__class__
                if cls is list or cls is tuple:
                    for item in x:
                        if member(item):
                            return True
                return False

        phrase = f"containing {_show(arg)}"
        node = self._leaf(field, pred, f"{field.path} contains {_show(arg)}", phrase)
        if op == "contains":
            return node
        return self._negated_leaf(field, node, pred, f"{field.path} does not contain {_show(arg)}", phrase)

    def _negated_leaf(self, field: _Field, node: _Node, pred: Callable[[Any], bool], text: str,
                      phrase: str) -> _Node:
        inner, path, get = node.test, field.path, _getter(field.parts)

        def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
            x = get(view)
            if pred(x):
                return False, f"{_describe(path, x)}, {phrase}", False
            return True, f"{_describe(path, x)}, not {phrase}", False

        return _Node(lambda view: not inner(view), why, text)

    def _icontains(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> _Node | None:
        if not isinstance(arg, str):
            self.error("QF303", f"'icontains' needs text, not {_kind_name(arg)}", at, rel,
                       hint="quote it, e.g. icontains: \"wifi\"")
            return None
        if not self._text_only(field, op, at, rel):
            return None
        folded = arg.casefold()
        pred = lambda x: x.__class__ is str and folded in x.casefold()
        return self._leaf(field, pred, f"{field.path} contains {_show(arg)} (ignoring case)",
                          f"containing {_show(arg)} (ignoring case)", "text")

    def _affix(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> _Node | None:
        if isinstance(arg, str):
            affixes: tuple[str, ...] = (arg,)
        elif isinstance(arg, list) and arg and all(isinstance(a, str) for a in arg):
            affixes = tuple(arg)
        else:
            self.error("QF303", f"'{op}' needs text or a list of texts, not {_kind_name(arg)}", at, rel,
                       hint=f"for example {op}: \"VIP\" or {op}: [A, B]")
            return None
        if not self._text_only(field, op, at, rel):
            return None
        if op == "startswith":
            pred = lambda x: x.__class__ is str and x.startswith(affixes)
            words = "starts with", "starting with"
        else:
            pred = lambda x: x.__class__ is str and x.endswith(affixes)
            words = "ends with", "ending with"
        shown = _show(arg) if isinstance(arg, str) else _show_choices(affixes)
        return self._leaf(field, pred, f"{field.path} {words[0]} {shown}", f"{words[1]} {shown}", "text")

    # -- exists, empty ---------------------------------------------------------------

    def _flag(self, field: _Field, op: str, arg: Any, at: Mark, rel: Path) -> _Node | None:
        if arg is not True and arg is not False:
            self.error("QF303", f"'{op}' needs true or false, not {_kind_name(arg)}", at, rel,
                       hint=f"write {op}: true or {op}: false")
            return None
        path, parts = field.path, field.parts
        get = _getter(parts)
        want = arg
        if op == "exists":
            text = f"{path} exists" if want else f"{path} is missing"
            if len(parts) == 1:
                key = parts[0]
                test = ((lambda view: view.get(key) is not None) if want
                        else (lambda view: view.get(key) is None))
            else:
                test = (lambda view: get(view) is not None) if want else (lambda view: get(view) is None)

            def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
                x = get(view)
                ok = (x is not None) is want
                if x is not None and not want:
                    return ok, f"{_describe(path, x)}, not missing", False
                return ok, _describe(path, x), False

            return _Node(test, why, text)

        sized = _SIZED_TYPES

        def is_empty(x: Any) -> bool:
            return x is None or (x.__class__ in sized and not x)

        text = f"{path} is empty" if want else f"{path} is not empty"
        if want:
            test = lambda view: is_empty(get(view))
        else:
            test = lambda view: not is_empty(get(view))

        def why_empty(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
            x = get(view)
            empty = is_empty(x)
            return empty is want, f"{_describe(path, x)}, {'' if empty else 'not '}empty", False

        return _Node(test, why_empty, text)

    # -- plugin field operators ------------------------------------------------------

    def _plugin_operator(self, field: _Field, fn: Any, arg: Any, at: Mark, rel: Path) -> _Node | None:
        pred = self._plugin_compile(fn, "operator", arg, at, rel)
        if pred is None:
            return None
        path, name, get = field.path, fn.name, _getter(field.parts)
        label = f"{name} {_show(arg)}"

        def test(view: Mapping[str, Any]) -> bool:
            try:
                return bool(pred(get(view)))
            except Exception:  # noqa: BLE001 - a plugin's failure is "no match"
                return False

        def why(view: Mapping[str, Any]) -> tuple[bool, str, bool]:
            x = get(view)
            try:
                ok = bool(pred(x))
            except Exception as exc:  # noqa: BLE001 - reported in the reason
                return (False, (f"{_describe(path, x)}; operator '{name}' raised {type(exc).__name__}: "
                        f"{exc}; counted as no match"), False)
            return ok, f"{_describe(path, x)}; {label} {'holds' if ok else 'does not hold'}", False

        return _Node(test, why, f"{path} {label}", cost=_PLUGIN)


_TEXT_OP_HINT = {
    "number": "compare numbers with eq, lt, le, gt, ge or between",
    "time": "compare date-times with lt, le, gt, ge or between",
    "list": "use contains to test for one element",
}


def _comparison(kind: str, check: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Run *check* only on values of the argument's kind; others never match."""
    if kind == "number":
        number_types = _NUMBER_TYPES
        return lambda x: x.__class__ in number_types and check(x)
    if kind == "text":
        return lambda x: x.__class__ is str and check(x)

    def time_check(x: Any) -> bool:
        if x.__class__ is not datetime:
            return False
        try:
            return check(x)
        except TypeError:  # a date-time without a zone cannot be ordered against one with
            return False

    return time_check


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def implies(b: Condition, a: Condition) -> bool:
    """True when every incident for which *b* holds also satisfies *a*, for lint
    (``qflow_lint``): sound but not complete, so False means "not shown", not "no"."""
    from qflow._lint import implies as _implies, logic_of

    return _implies(logic_of(b), logic_of(a))


def never_holds(condition: Condition) -> str | None:
    """Why *condition* can never hold (for lint), or None when it may."""
    from qflow._lint import logic_of, never_holds as _never

    return _never(logic_of(condition))


def compile_condition(
    node: Any,
    *,
    at: Mark | None,
    path: Path,
    functions: Mapping[str, ConditionFunction],
    errors: list[Diagnostic],
    rule: str | None = None,
    file: str = "<ruleset>",
) -> Condition | None:
    """Compile the condition *node* (YMap/YSeq/scalars, or plain dicts and lists).

    *at* is where the node itself stands (positions of nodes without marks fall back
    to it, or to ``file:1:1``); *path* is the node's place in the document, prefixed
    to every diagnostic's JSON path. Every problem is appended to *errors*; the
    result is None if there were any. Never raises on any data.
    """
    if node is None:
        return ALWAYS
    before = len(errors)
    start = at if at is not None else getattr(node, "start", None)
    compiler = _Compiler(functions or {}, errors, rule, file, tuple(path), start)
    try:
        root = compiler.condition(node, compiler.root_mark, ())
    except RecursionError:
        compiler.error("QF103", "the condition is nested too deeply", compiler.root_mark, (),
                       hint="flatten it: any:/all: take lists")
        return None
    if root is None or len(errors) > before:
        return None
    if root.empty:
        return ALWAYS
    where = compiler.root_mark
    return Condition(root.test, root.text, root.eqs, False, why=root.why, spec=node,
                     where=(where.file, where.line + 1, where.col + 1, json_path(tuple(path)), rule))
