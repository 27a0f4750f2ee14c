"""``qflow lint``: what ``check`` cannot call an error but an ops person wants to know.

The kernel finds what is generic over sections: a name defined and never referred
to (teams, calendars, templates, severities — whatever sections declare through
``ctx.define`` / ``ctx.refer``), conditions that can never hold or always hold, and
regular expressions that match the empty text. Plugins add what only they can know
through the ``qflow_lint`` hook (the rules plugin: shadowed rules, no default).

Conditions are analysed as written (``Condition.spec``), after turning expression
strings into the structured form, as a small logic tree. The analysis is sound but
not complete: what it reports is true; what it misses stays silent.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import attrs

from qflow._expr import ExpressionError, parse_expression
from qflow._yaml import Mark
from qflow.diagnostics import Diagnostic, sort_diagnostics

__all__ = ["UNUSED_KINDS", "Logic", "conditions_of", "implies", "lint_ruleset", "logic", "logic_of", "never_holds"]

#: The kinds of name reported when defined and never used.
UNUSED_KINDS: tuple[str, ...] = ("team", "calendar", "template", "severity")

_POSITIVE = {"eq": "in", "in": "in"}
_NEGATIVE = {"ne": "not_in", "not_in": "not_in"}
_BOUNDS = ("lt", "le", "gt", "ge", "between")
# operators that never hold for a missing value
_NEEDS_VALUE = frozenset(("lt", "le", "gt", "ge", "between", "matches", "contains", "icontains",
                          "startswith", "endswith"))


@attrs.frozen
class Logic:
    """A node of the analysed condition: and / or / not / atom / fn / true."""

    kind: str
    parts: tuple[Logic, ...] = ()
    field: str | None = None
    op: str | None = None
    arg: Any = None
    mark: Mark | None = attrs.field(default=None, eq=False)


_TRUE = Logic("true")


# ---------------------------------------------------------------------------
# From the written condition to the logic tree
# ---------------------------------------------------------------------------


def logic(spec: Any, at: Mark | None = None) -> Logic:
    """The logic tree of a condition as written (mapping, or expression string)."""
    if spec is None:
        return _TRUE
    if isinstance(spec, str):
        from qflow.conditions import _expression_marks

        where = at or Mark("<expression>", 0, 0)
        mark, _ = _expression_marks(spec, where)
        try:
            spec = parse_expression(spec, mark)
        except ExpressionError:
            return Logic("fn", op="<unreadable>", arg=spec)
    if not isinstance(spec, Mapping):
        return Logic("fn", op="<unreadable>", arg=spec)
    parts = []
    values = getattr(spec, "value_marks", {})
    for key, value in spec.items():
        vm = values.get(key, at)
        if key in ("any", "all") and isinstance(value, list):
            items = [logic(item, _item_mark(value, i, vm)) for i, item in enumerate(value)]
            parts.append(Logic("or" if key == "any" else "and", tuple(items), mark=vm))
        elif key == "not":
            parts.append(Logic("not", (logic(value, vm),), mark=vm))
        elif key == "fn":
            names = value.items() if isinstance(value, Mapping) else [(value, None)]
            parts.extend(Logic("fn", op=str(n), arg=_plain(a), mark=vm) for n, a in names)
        elif isinstance(value, Mapping):
            inner = getattr(value, "value_marks", {})
            for op, arg in value.items():
                parts.append(_atom(str(key), str(op), arg, inner.get(op, vm)))
        elif isinstance(value, list):
            parts.append(_atom(str(key), "in", value, vm))
        else:
            parts.append(_atom(str(key), "eq", value, vm))
    if len(parts) == 1:
        return parts[0]
    return Logic("and", tuple(parts), mark=at)


def _item_mark(seq: Any, i: int, fallback: Mark | None) -> Mark | None:
    marks = getattr(seq, "item_marks", None)
    return marks[i] if marks and i < len(marks) else fallback


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return tuple(_plain(v) for v in value)
    return value


def _atom(field: str, op: str, arg: Any, mark: Mark | None) -> Logic:
    if op in _POSITIVE or op in _NEGATIVE:
        values = arg if op in ("in", "not_in") else [arg]
        if isinstance(values, list):
            keys = frozenset(_key(v) for v in values)
            return Logic("atom", field=field, op=_POSITIVE.get(op) or _NEGATIVE[op], arg=keys, mark=mark)
    return Logic("atom", field=field, op=op, arg=_plain(arg), mark=mark)


def _key(value: Any) -> tuple[str, Any]:
    """A value with its kind, so true and 1 stay apart as the compiler keeps them."""
    if value is None:
        return ("null", None)
    if value is True or value is False:
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", value)
    if isinstance(value, str):
        return ("text", value)
    return ("other", repr(value))


def _show_key(key: tuple[str, Any]) -> str:
    kind, value = key
    if kind == "null":
        return "null"
    if kind == "bool":
        return "true" if value else "false"
    if kind == "text":
        return repr(value)
    return str(value)


def _flat_and(node: Logic) -> list[Logic]:
    if node.kind == "and":
        return [p for part in node.parts for p in _flat_and(part)]
    return [node]


# ---------------------------------------------------------------------------
# Numbers: the interval a set of bounds allows
# ---------------------------------------------------------------------------


@attrs.frozen
class _Interval:
    lo: float = float("-inf")
    lo_open: bool = False
    hi: float = float("inf")
    hi_open: bool = False

    def meet(self, other: _Interval) -> _Interval:
        lo, lo_open = max((self.lo, self.lo_open), (other.lo, other.lo_open))
        hi, hi_open = min((self.hi, not self.hi_open), (other.hi, not other.hi_open))
        return _Interval(lo, lo_open, hi, not hi_open)

    @property
    def empty(self) -> bool:
        return self.lo > self.hi or (self.lo == self.hi and (self.lo_open or self.hi_open))

    def holds(self, x: float) -> bool:
        above = x > self.lo or (x == self.lo and not self.lo_open)
        below = x < self.hi or (x == self.hi and not self.hi_open)
        return above and below

    def within(self, other: _Interval) -> bool:
        lo_ok = self.lo > other.lo or (self.lo == other.lo and (self.lo_open or not other.lo_open))
        hi_ok = self.hi < other.hi or (self.hi == other.hi and (self.hi_open or not other.hi_open))
        return lo_ok and hi_ok


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def _interval(atom: Logic) -> _Interval | None:
    op, arg = atom.op, atom.arg
    if op == "between":
        if isinstance(arg, tuple) and len(arg) == 2 and all(_is_number(v) for v in arg):
            return _Interval(arg[0], False, arg[1], False)
        return None
    if op not in _BOUNDS or not _is_number(arg):
        return None
    return {"lt": _Interval(hi=arg, hi_open=True), "le": _Interval(hi=arg),
            "gt": _Interval(lo=arg, lo_open=True), "ge": _Interval(lo=arg)}[op]


def _bound_text(atom: Logic) -> str:
    if atom.op == "between":
        return f"between {atom.arg[0]} and {atom.arg[1]}"
    words = {"lt": "less than", "le": "at most", "gt": "more than", "ge": "at least"}
    return f"{words[atom.op or '']} {atom.arg}"


# ---------------------------------------------------------------------------
# Never / always
# ---------------------------------------------------------------------------


def never_holds(node: Logic) -> str | None:
    """Why *node* can never hold, or None when it may."""
    if node.kind == "and":
        for part in node.parts:
            why = never_holds(part)
            if why:
                return why
        return _contradiction(_flat_and(node))
    if node.kind == "or":
        if node.parts and all(never_holds(p) for p in node.parts):
            return "none of the alternatives under 'any' can hold"
        return None
    if node.kind == "not":
        why = always_holds(node.parts[0])
        return f"'not' excludes a condition that always holds ({why})" if why else None
    if node.kind == "atom":
        if node.op == "in" and not node.arg:
            return f"{node.field} is tested against an empty list"
        iv = _interval(node)
        if iv is not None and iv.empty:
            return f"{node.field} cannot be {_bound_text(node)}"
    return None


def always_holds(node: Logic) -> str | None:
    """Why *node* always holds, or None when it may not."""
    if node.kind == "true":
        return "no conditions"
    if node.kind == "and":
        whys = [always_holds(p) for p in node.parts]
        return "every part always holds" if whys and all(whys) else None
    if node.kind == "not":
        why = never_holds(node.parts[0])
        return f"'not' excludes a condition that can never hold ({why})" if why else None
    if node.kind == "or":
        for part in node.parts:
            why = always_holds(part)
            if why:
                return f"one alternative under 'any' always holds ({why})"
        atoms = [p for p in node.parts if p.kind == "atom"]
        for a in atoms:
            for b in atoms:
                if a.field != b.field:
                    continue
                if a.op == "in" and b.op == "not_in" and b.arg <= a.arg:
                    return f"{a.field} is either one of the values or not one of them"
                if a.op == b.op == "exists" and a.arg is True and b.arg is False:
                    return f"{a.field} either exists or is missing"
    return None


def _contradiction(atoms: Sequence[Logic]) -> str | None:
    by_field: dict[str, list[Logic]] = {}
    for a in atoms:
        if a.kind == "atom" and a.field is not None:
            by_field.setdefault(a.field, []).append(a)
    for field, group in by_field.items():
        allowed: frozenset[Any] | None = None
        first_in: Logic | None = None
        for a in group:
            if a.op == "in":
                if allowed is not None and not (allowed & a.arg) and first_in is not None:
                    return (f"{field} cannot be {_choices(first_in.arg)} and {_choices(a.arg)} at once")
                allowed = a.arg if allowed is None else allowed & a.arg
                first_in = first_in or a
        excluded = frozenset().union(*(a.arg for a in group if a.op == "not_in"))
        if allowed is not None and allowed and allowed <= excluded:
            return f"{field} must be {_choices(allowed)} and also must not be"
        exists = {a.arg for a in group if a.op == "exists" and isinstance(a.arg, bool)}
        if exists == {True, False}:
            return f"{field} must exist and be missing at once"
        missing = False in exists or (allowed is not None and allowed == {("null", None)})
        needs = [a for a in group if a.op in _NEEDS_VALUE or (a.op == "exists" and a.arg is True)
                 or (a.op == "in" and ("null", None) not in a.arg)]
        if missing and needs:
            return f"{field} must be missing, yet another test needs a value"
        interval = _Interval()
        bounds = []
        for a in group:
            iv = _interval(a)
            if iv is not None:
                interval = interval.meet(iv)
                bounds.append(a)
        if bounds and interval.empty:
            return f"{field} cannot be {' and '.join(_bound_text(b) for b in bounds)}"
        if bounds and allowed is not None:
            numbers = [v for k, v in allowed if k == "number"]
            if len(numbers) == len(allowed) and not any(interval.holds(v) for v in numbers):
                return (f"{field} must be {_choices(allowed)}, and "
                        f"{' and '.join(_bound_text(b) for b in bounds)}")
    return None


def _choices(keys: Iterable[tuple[str, Any]]) -> str:
    items = sorted(keys, key=repr)
    if len(items) == 1:
        return _show_key(items[0])
    return "one of " + ", ".join(_show_key(k) for k in items)


# ---------------------------------------------------------------------------
# Implication: "whenever b holds, a holds"
# ---------------------------------------------------------------------------


def implies(b: Logic, a: Logic) -> bool:
    """True when every incident that satisfies *b* satisfies *a* (sound, not complete)."""
    if a.kind == "true" or a == b:
        return True
    if b.kind == "true":
        return always_holds(a) is not None
    if a.kind == "and":
        return all(implies(b, part) for part in a.parts)
    if b.kind == "or":
        return all(implies(part, a) for part in b.parts)
    if b.kind == "and":
        parts = _flat_and(b)
        if any(implies(part, a) for part in parts):
            return True
        if a.kind == "atom":
            return _atoms_imply([p for p in parts if p.kind == "atom" and p.field == a.field], a)
    if a.kind == "or":
        return any(implies(b, part) for part in a.parts)
    if a.kind == "atom" and b.kind == "atom" and a.field == b.field:
        return _atoms_imply([b], a)
    return False


def _atoms_imply(group: Sequence[Logic], a: Logic) -> bool:
    """Do these tests of one field together imply the test *a* of that field?"""
    if not group:
        return False
    allowed: frozenset[Any] | None = None
    interval = _Interval()
    has_bound = False
    for b in group:
        if b == a:
            return True
        if b.op == "in":
            allowed = b.arg if allowed is None else allowed & b.arg
        iv = _interval(b)
        if iv is not None:
            interval, has_bound = interval.meet(iv), True
    if a.op == "in":
        return allowed is not None and allowed <= a.arg
    if a.op == "not_in":
        if allowed is not None and not (allowed & a.arg):
            return True
        excluded = frozenset().union(*(b.arg for b in group if b.op == "not_in"))
        return a.arg <= excluded
    if a.op == "exists":
        if a.arg is True:
            return any(b.op in _NEEDS_VALUE or (b.op == "exists" and b.arg is True) for b in group) or (
                allowed is not None and ("null", None) not in allowed)
        return any(b.op == "exists" and b.arg is False for b in group) or allowed == {("null", None)}
    want = _interval(a)
    if want is not None:
        if has_bound and interval.within(want):
            return True
        if allowed is not None:
            numbers = [v for k, v in allowed if k == "number"]
            return len(numbers) == len(allowed) and all(want.holds(v) for v in numbers)
    return False


# ---------------------------------------------------------------------------
# Finding the conditions of a ruleset
# ---------------------------------------------------------------------------


def conditions_of(ruleset: Any) -> list[Any]:
    """Every compiled condition that knows where it was written, in file order.

    Generic over sections: walks each section's compiled value (attrs values,
    objects, containers), so a plugin's conditions are found without it saying so.
    """
    from qflow.conditions import Condition

    found: dict[int, Any] = {}
    seen: set[int] = set()
    stack = list(ruleset.compiled_sections.values())
    while stack:
        obj = stack.pop()
        if obj is None or isinstance(obj, (str, bytes, int, float, bool)) or callable(obj) and not hasattr(obj, "__dict__"):
            continue
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        if isinstance(obj, Condition):
            if obj.where is not None:
                found[id(obj)] = obj
            continue
        if isinstance(obj, Mapping):
            stack.extend(obj.values())
        elif isinstance(obj, (list, tuple, set, frozenset)):
            stack.extend(obj)
        elif attrs.has(type(obj)):
            stack.extend(getattr(obj, a.name, None) for a in attrs.fields(type(obj)))
        elif hasattr(obj, "__dict__") and not isinstance(obj, type):
            stack.extend(vars(obj).values())
    return sorted(found.values(), key=lambda c: c.where[:3])


# ---------------------------------------------------------------------------
# The kernel's findings
# ---------------------------------------------------------------------------


def _unused(ruleset: Any) -> Iterator[Diagnostic]:
    for kind in UNUSED_KINDS:
        used = set(ruleset.used.get(kind, ()))
        for name, (file, line, col, path) in ruleset.definitions.get(kind, {}).items():
            if name in used or path == "$":  # "$": built in, not written in the ruleset
                continue
            yield Diagnostic(file, line, col, "QF652", f"{kind} '{name}' is defined and never used",
                             path, "nothing refers to it; remove it, or use it in a rule", severity="warning")


def _regexes(node: Logic) -> Iterator[Logic]:
    if node.kind == "atom" and node.op == "matches" and isinstance(node.arg, str):
        yield node
    for part in node.parts:
        yield from _regexes(part)


def _condition_findings(condition: Any) -> Iterator[Diagnostic]:
    file, line, col, path, rule = condition.where
    at = Mark(file, line - 1, col - 1)
    tree = logic(condition.spec, at)
    why = never_holds(tree)
    if why:
        yield Diagnostic(file, line, col, "QF653", f"the condition can never hold: {why}", path,
                         "the rule never applies; correct the values or remove the rule", rule, "warning")
    else:
        always = always_holds(tree)
        if always:
            yield Diagnostic(file, line, col, "QF654", f"the condition always holds: {always}", path,
                             "remove 'when' to make the rule a default, or narrow the condition", rule, "warning")
    for atom in _regexes(tree):
        try:
            empty = re.compile(atom.arg).search("") is not None
        except re.error:
            continue
        if empty:
            m = atom.mark or at
            yield Diagnostic(m.file, m.line + 1, m.col + 1, "QF655",
                             f"the regular expression {atom.arg!r} can match the empty text, so it matches "
                             f"every text of {atom.field}", path,
                             "remove the empty alternative (a trailing '|') or use + instead of *", rule, "warning")


def lint_ruleset(ruleset: Any, plugins: Any) -> tuple[Diagnostic, ...]:
    """Every warning about a loaded *ruleset*: its load warnings, the kernel's
    findings and every plugin's (``qflow_lint``), sorted and without repeats."""
    found: list[Diagnostic] = list(ruleset.warnings)
    found += _unused(ruleset)
    for condition in conditions_of(ruleset):
        found += _condition_findings(condition)
    for result in plugins.hook.qflow_lint(ruleset=ruleset):
        found += result or ()
    return sort_diagnostics(found)


def logic_of(condition: Any) -> Logic:
    """The logic tree of a compiled condition (a rule without ``when``: true)."""
    if condition.always:
        return _TRUE
    if condition.spec is None or condition.where is None:
        return Logic("fn", op=f"<condition {id(condition)}>")
    file, line, col = condition.where[:3]
    return logic(condition.spec, Mark(file, line - 1, col - 1))
