"""An ordered list of rules, evaluated "first match wins, field by field".

Each field a section sets (category, severity / team, owner, responsibility) takes
the value of the first rule that matches and sets it. Rules without ``when`` are the
defaults: they apply last, whatever their place in the file.

Speed: rules are bucketed once by the field most of them test for equality
(usually ``category`` or ``channel``). Per incident only the bucket for the
incident's value is walked, so the cost grows with the rules that could match,
not with the whole list.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import attrs

from qflow import TraceStep

__all__ = ["Chain", "Decided", "Rule", "decided_fields", "sets"]


@attrs.frozen
class Rule:
    """One compiled rule: its condition and the values it sets."""

    id: str
    section: str
    condition: Any  # qflow.conditions.Condition
    values: tuple[tuple[str, Any], ...]
    shadow: bool = False
    cont: bool | None = None  # the rule's `continue`, None when not written
    #: where the rule stands: (file, line, col, json path), for lint
    where: tuple[str, int, int, str] | None = attrs.field(default=None, eq=False)

    @property
    def source(self) -> str:
        return f"{self.section}:{self.id}"


Extra = Callable[[Mapping[str, Any]], "tuple[tuple[tuple[str, Any], ...], str] | None"]


Build = Callable[[dict[str, tuple[Any, str]], list[str]], Any]


class Chain:
    """The compiled form of a rule section.

    ``run`` returns what *build* makes of the fields set and the rules that set them
    (or None when nothing is set). When every conditional rule sets the same fields
    and nothing depends on the incident beyond which rule matched, each possible
    result is built once at load and ``run`` is a bucket lookup plus a scan.
    """

    mode = "first-per-field"

    def __init__(self, section: str, rules: Sequence[Rule], fields: Sequence[str], build: Build,
                 extra: tuple[str, Extra, Callable[[Mapping[str, Any]], str]] | None = None,
                 shadows: Sequence[Rule] = ()) -> None:
        self.section = section
        self.rules = tuple(rules)
        # Shadow rules never take part in run(); explain() evaluates them, so a
        # decision pays nothing for them.
        self.shadows = tuple(shadows)
        self.fields = tuple(fields)
        self._build = build
        self._conditional = tuple(r for r in rules if not r.condition.always)
        self._defaults = tuple(r for r in rules if r.condition.always)
        # *extra* is a pseudo-rule between the conditional rules and the defaults
        # (the impact x urgency matrix): (name, run, explain).
        self._extra = extra
        self._key, buckets = _index(self._conditional)
        # The walk over conditional rules may stop once every field they can set is set.
        settable = {f for r in self._conditional for f, _ in r.values}
        self._settable = len(settable)
        self._fixed = extra is None and all({f for f, _ in r.values} == settable for r in self._conditional)
        if self._fixed:
            made = {r.source: self._finish(*self._first(r)) for r in self._conditional}
            self._nothing = self._finish({}, [])
            self._buckets = {k: tuple((r.condition.test, made[r.source]) for r in rs) for k, rs in buckets.items()}
            self.run = _fixed_run(self._key, self._buckets, self._nothing)  # type: ignore[method-assign]
        else:
            self._buckets = {k: tuple((r.condition.test, r) for r in rs) for k, rs in buckets.items()}

    @staticmethod
    def _first(rule: Rule) -> tuple[dict[str, tuple[Any, str]], list[str]]:
        out: dict[str, tuple[Any, str]] = {}
        matched: list[str] = []
        _take(rule, out, matched)
        return out, matched

    def _finish(self, out: dict[str, tuple[Any, str]], matched: list[str]) -> Any:
        """Fill what is still unset from the defaults, and build (no matrix: see _fixed)."""
        want = len(self.fields)
        for rule in self._defaults:
            if len(out) >= want:
                break
            _take(rule, out, matched)
        return self._build(out, matched) if out else None

    def candidates(self, view: Mapping[str, Any]) -> tuple[tuple[Callable[[Any], bool], Any], ...]:
        return bucket_of(self._buckets, self._key, view)

    def run(self, view: Mapping[str, Any]) -> Any:
        """What the section decides for *view*: ``build``'s result, or None.

        When every result is prebuilt, ``__init__`` replaces this method on the
        instance with a closure that does only the bucket lookup and the scan.
        """
        out: dict[str, tuple[Any, str]] = {}
        matched: list[str] = []
        settable = self._settable
        for test, rule in self.candidates(view):
            if test(view):
                _take(rule, out, matched)
                if len(out) >= settable:
                    break
        want = len(self.fields)
        if self._extra is not None and len(out) < want:
            found = self._extra[1](view)
            if found is not None:
                values, source = found
                before = len(out)
                for f, v in values:
                    if f not in out:
                        out[f] = (v, source)
                if len(out) > before:
                    matched.append(f"{self.section}:{self._extra[0]}")
        for rule in self._defaults:
            if len(out) >= want:
                break
            _take(rule, out, matched)
        return self._build(out, matched) if out else None

    def explain(self, view: Mapping[str, Any], decided: Decided | None = None) -> list[TraceStep]:
        """The same walk as :meth:`run`, over every rule in file order, with reasons.

        *decided* is what the decision took for each field, with its source: a rule
        whose value another source (a plugin) overrode is not credited with it."""
        steps: list[TraceStep] = []
        out: dict[str, tuple[Any, str]] = {}
        want = len(self.fields)
        pending = list(self._conditional)
        pending.reverse()
        while pending and len(out) < self._settable:
            rule = pending.pop()
            ok, why = rule.condition.explain(view)
            if not ok:
                steps.append(TraceStep(self.section, rule.id, "no match", why))
                continue
            took = [(f, v) for f, v in rule.values if f not in out]
            _take(rule, out, [])
            if took:
                steps.append(TraceStep(self.section, rule.id, "matched", sets(why, took, rule.source, decided)))
            else:
                steps.append(TraceStep(self.section, rule.id, "no effect",
                                       f"{why}; but earlier rules already set {', '.join(f for f, _ in rule.values)}"))
        if pending:
            steps.append(TraceStep(self.section, None, "not reached",
                                   f"{len(pending)} later rule(s) not considered: every field is set (first match wins)"))
        if self._extra is not None and len(out) < want:
            name, run, why = self._extra
            found = run(view)
            if found is None:
                steps.append(TraceStep(self.section, name, "no match", why(view)))
            else:
                values, source = found
                took = [(f, v) for f, v in values if f not in out]
                for f, v in values:
                    out.setdefault(f, (v, name))
                steps.append(TraceStep(self.section, name, "matched" if took else "no effect",
                                       sets(why(view), took, source, decided) if took
                                       else f"{why(view)}; but earlier rules already set what it gives"))
        for rule in self._defaults:
            if len(out) >= want:
                steps.append(TraceStep(self.section, rule.id, "not reached", "default not needed: every field is set"))
                continue
            took = [(f, v) for f, v in rule.values if f not in out]
            _take(rule, out, [])
            if took:
                steps.append(TraceStep(self.section, rule.id, "matched",
                                       sets("default (no conditions)", took, rule.source, decided)))
            else:
                steps.append(TraceStep(self.section, rule.id, "not needed",
                                       "default (no conditions); every field it sets is already set"))
        # Only the matrix sets priority; it has said why it did not.
        missing = [f for f in self.fields if f not in out and f != "priority"]
        if missing:
            steps.append(TraceStep(self.section, None, "unset",
                                   f"no rule set {', '.join(missing)}; add a default rule (one without 'when') to set it"))
        steps += shadow_steps(self.section, self.shadows, view, out if decided is None else decided)
        return steps


#: What a decision took for each field it has: field -> (value, the rule or plugin
#: that set it).
Decided = Mapping[str, tuple[Any, str]]


def sets(why: str, took: Sequence[tuple[str, Any]], source: str, decided: Decided | None) -> str:
    """The reason of a step whose rule (*source*) sets the fields *took* in its
    section's answer: ``WHY; sets f=v``, or, where the decision took another value or
    another source's (a plugin's), ``...; would set f=v, but plugin:x decided f=w``."""
    kept, overruled = [], []
    for f, v in took:
        got = decided.get(f) if decided is not None else (v, source)
        if got is not None and got[1] == source and got[0] == v:
            kept.append(f"{f}={v}")
        else:
            overruled.append((f, got))
    if not overruled:
        return f"{why}; sets {', '.join(kept)}"
    by: dict[str, list[str]] = {}
    for f, got in overruled:
        if got is None:
            by.setdefault("the decision leaves", []).append(f"{f} unset")
        elif got[1] == source:  # the value changed, the source did not say who changed it
            by.setdefault("the decision has", []).append(f"{f}={got[0]}")
        else:
            by.setdefault(f"{got[1]} decided", []).append(f"{f}={got[0]}")
    instead = " and ".join(f"{who} {', '.join(fields)}" for who, fields in by.items())
    if kept:
        return f"{why}; sets {', '.join(kept)}, but {instead}"
    return f"{why}; would set {', '.join(f'{f}={v}' for f, v in took)}, but {instead}"


def decided_fields(result: Any, fields: Sequence[str]) -> dict[str, tuple[Any, str]]:
    """What a merged Classification or an Assignment took per field, with its source."""
    own, default = result.sources, result.source or "?"
    return {f: (getattr(result, f), own.get(f) or default) for f in fields if getattr(result, f) is not None}


def bucket_of(buckets: Mapping[Any, Any], key: str | None, view: Mapping[str, Any]) -> Any:
    """The rules an incident can meet: the bucket of its value for the chain's key field."""
    if key is None:
        return buckets[_ANY]
    try:
        return buckets.get(view.get(key), buckets[_ANY])
    except TypeError:  # an unhashable value (a list) can only match the unkeyed rules
        return buckets[_ANY]


def shadow_steps(section: str, shadows: Sequence[Rule], view: Mapping[str, Any],
                 out: Mapping[str, tuple[Any, str]]) -> list[TraceStep]:
    """What each shadow rule would have done; the decision (*out*) is not touched."""
    steps = []
    for rule in shadows:
        ok, why = rule.condition.explain(view)
        if not ok:
            steps.append(TraceStep(section, rule.id, "no match", f"shadow rule: {why}"))
            continue
        changes = [f"{f}={v}" + (f" (decided: {out[f][0]})" if f in out else " (decided: unset)")
                   for f, v in rule.values if f not in out or out[f][0] != v]
        effect = (f"would set {', '.join(changes)}" if changes
                  else "would set nothing new (the decision already has these values)")
        steps.append(TraceStep(section, rule.id, "would have matched",
                               f"shadow rule, the decision is unchanged: {why}; {effect}"))
    return steps


def _fixed_run(key: str | None, buckets: dict[Any, tuple[tuple[Callable[[Any], bool], Any], ...]],
               nothing: Any) -> Callable[[Mapping[str, Any]], Any]:
    """The scan when each rule's result is prebuilt: locals only, no attribute lookups."""
    unkeyed = buckets[_ANY]
    if key is None:
        def run_all(view: Mapping[str, Any]) -> Any:
            for test, made in unkeyed:
                if test(view):
                    return made
            return nothing
        return run_all
    bucket = buckets.get

    def run_bucket(view: Mapping[str, Any]) -> Any:
        try:
            candidates = bucket(view.get(key), unkeyed)
        except TypeError:  # an unhashable value (a list) can only match the unkeyed rules
            candidates = unkeyed
        for test, made in candidates:
            if test(view):
                return made
        return nothing
    return run_bucket


def _take(rule: Rule, out: dict[str, tuple[Any, str]], matched: list[str]) -> None:
    new = False
    for f, v in rule.values:
        if f not in out:
            out[f] = (v, rule.source)
            new = True
    if new:
        matched.append(rule.source)


_ANY = object()


def _index(rules: Sequence[Rule]) -> tuple[str | None, dict[Any, tuple[Rule, ...]]]:
    """Pick the top-level field most rules test for equality and bucket by its value."""
    counts: Counter[str] = Counter()
    for r in rules:
        for path in r.condition.equalities:
            if "." not in path:
                counts[path] += 1
    if not counts or len(rules) < 8:
        return None, {_ANY: tuple(rules)}
    key, n = counts.most_common(1)[0]
    if n < len(rules) // 4:
        return None, {_ANY: tuple(rules)}
    # One pass in file order: a rule that tests the key joins the buckets of its values,
    # one that does not joins every bucket (those made later start with the ones so far).
    lists: dict[Any, list[Rule]] = {}
    unkeyed: list[Rule] = []
    for r in rules:
        wanted = r.condition.equalities.get(key)
        if wanted is None:
            unkeyed.append(r)
            for found in lists.values():
                found.append(r)
            continue
        for value in wanted:
            found = lists.get(value)
            if found is None:
                found = lists[value] = list(unkeyed)
            found.append(r)
    buckets: dict[Any, tuple[Rule, ...]] = {value: tuple(found) for value, found in lists.items()}
    buckets[_ANY] = tuple(unkeyed)
    return key, buckets
