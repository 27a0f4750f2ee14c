"""Built-in plugin: classification and responsibility routing from ruleset rules.

Sections ``classify``, ``priority`` and ``route``. Registered through the ``qflow``
entry-point group as ``rules``, exactly as a third-party plugin would be.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from qflow import Assignment, Classification, CompileContext, Ruleset, Section, TraceStep, hookimpl
from qflow_rules._chain import Chain, Rule

__all__ = ["Assign", "ClassifyRule", "Priority", "RouteRule", "SetValues"]


@attrs.frozen
class SetValues:
    """What a classify rule sets."""

    category: str | None = None
    severity: str | None = None


@attrs.frozen
class ClassifyRule:
    id: str
    set: SetValues
    when: Any = None
    note: str | None = None


@attrs.frozen
class Assign:
    """What a route rule assigns."""

    team: str | None = None
    owner: str | None = None
    responsibility: str | None = None


@attrs.frozen
class RouteRule:
    id: str
    assign: Assign
    when: Any = None
    note: str | None = None


@attrs.frozen
class Priority:
    """Impact x urgency: ``matrix[impact][urgency - 1]`` is the priority; ``severity``
    maps a priority to the severity used when no classify rule set one."""

    matrix: dict[int, list[str]]
    severity: dict[str, str] = attrs.field(factory=dict)


_REFERENCES = {"category": "category", "severity": "severity", "team": "team", "responsibility": "responsibility"}


def _rules(section: str, rules: Sequence[Any] | None, ctx: CompileContext, target: str, fields: Sequence[str]) -> list[Rule]:
    out = []
    for i, rule in enumerate(rules or ()):
        path = (section, ctx.index(section, i))
        ctx.define(f"{section} rule", rule.id, path + ("id",))
        values = [(f, getattr(getattr(rule, target), f)) for f in fields if getattr(getattr(rule, target), f) is not None]
        if not values:
            ctx.error(path + (target,), "QF102", "the rule sets nothing",
                      hint=f"give at least one of: {', '.join(fields)}", rule=rule.id)
        for f, v in values:
            if f in _REFERENCES:
                ctx.refer(_REFERENCES[f], v, path + (target, f), rule=rule.id)
        condition = ctx.condition(path + ("when",), rule=rule.id)
        out.append(Rule(rule.id, section, condition, tuple(values)))
    return out


def _matrix(priority: Priority) -> Any:
    """The impact x urgency matrix as a pseudo-rule of the classify chain."""
    table = {impact: tuple(row) for impact, row in priority.matrix.items()}
    to_severity = dict(priority.severity)

    def run(view: Mapping[str, Any]) -> tuple[tuple[tuple[str, Any], ...], str] | None:
        impact, urgency = view.get("impact"), view.get("urgency")
        row = table.get(impact) if type(impact) is int else None
        if row is None or type(urgency) is not int or not 1 <= urgency <= len(row):
            return None
        name = row[urgency - 1]
        values: tuple[tuple[str, Any], ...] = (("priority", name),)
        if name in to_severity:
            values += (("severity", to_severity[name]),)
        return values, f"priority:matrix[{impact}][{urgency}]"

    def why(view: Mapping[str, Any]) -> str:
        impact, urgency = view.get("impact"), view.get("urgency")
        if impact is None or urgency is None:
            return "impact x urgency matrix: the incident has no impact and urgency"
        found = run(view)
        if found is None:
            return f"impact x urgency matrix has no cell for impact {impact}, urgency {urgency}"
        return f"impact x urgency matrix: impact {impact}, urgency {urgency} gives priority {found[0][0][1]}"

    return ("priority-matrix", run, why)


def _compile_priority(priority: Priority | None, ctx: CompileContext) -> Priority | None:
    if priority is None:
        return None
    if not priority.matrix:
        ctx.error(("priority", "matrix"), "QF104", "the matrix is empty",
                  hint="give one row per impact level, one priority per urgency level")
    widths = {len(row) for row in priority.matrix.values()}
    if len(widths) > 1:
        ctx.error(("priority", "matrix"), "QF104", "every row of the matrix needs the same number of priorities",
                  hint="one priority per urgency level, lowest urgency first")
    for impact, row in priority.matrix.items():
        for u, name in enumerate(row):
            if name not in ctx.defined("priority"):
                ctx.define("priority", name, ("priority", "matrix", impact, u))
    for name, severity in priority.severity.items():
        ctx.refer("priority", name, ("priority", "severity", name))
        ctx.refer("severity", severity, ("priority", "severity", name))
    return priority


def _classification(out: dict[str, tuple[Any, str]], matched: list[str]) -> Classification:
    get = out.get
    return Classification(
        category=get("category", (None,))[0], severity=get("severity", (None,))[0],
        priority=get("priority", (None,))[0], matched=matched,
        sources={f: src for f, (_, src) in out.items()},
    )


def _assignment(out: dict[str, tuple[Any, str]], matched: list[str]) -> Assignment:
    get = out.get
    return Assignment(
        team=get("team", (None,))[0], owner=get("owner", (None,))[0],
        responsibility=get("responsibility", (None,))[0], matched=matched,
        sources={f: src for f, (_, src) in out.items()},
    )


def _compile_classify(rules: Sequence[ClassifyRule] | None, ctx: CompileContext) -> Chain:
    compiled = _rules("classify", rules, ctx, "set", ("category", "severity"))
    priority = ctx.section("priority")
    if priority is None:
        return Chain("classify", compiled, ("category", "severity"), _classification)
    return Chain("classify", compiled, ("category", "severity", "priority"), _classification, _matrix(priority))


def _compile_route(rules: Sequence[RouteRule] | None, ctx: CompileContext) -> Chain:
    return Chain("route", _rules("route", rules, ctx, "assign", ("team", "owner", "responsibility")),
                 ("team", "owner", "responsibility"), _assignment)


@hookimpl
def qflow_ruleset_sections() -> Sequence[Section]:
    return [
        Section("classify", list[ClassifyRule], _compile_classify, default=list,
                doc="rules that set category and severity; first match wins per field"),
        Section("priority", Priority, _compile_priority,
                doc="impact x urgency matrix giving a priority (and a severity when no rule set one)"),
        Section("route", list[RouteRule], _compile_route, default=list,
                doc="rules that assign team, owner and responsibility; first match wins per field"),
    ]


@hookimpl(trylast=True)
def qflow_classify(view: Mapping[str, Any], ruleset: Ruleset) -> Classification | None:
    return ruleset.compiled("classify").run(view)


@hookimpl(trylast=True)
def qflow_route(view: Mapping[str, Any], ruleset: Ruleset) -> Assignment | None:
    return ruleset.compiled("route").run(view)


@hookimpl
def qflow_explain(view: Mapping[str, Any], classification: Classification, ruleset: Ruleset) -> list[TraceStep]:
    steps = ruleset.compiled("classify").explain(view)
    routed = {**view, "category": classification.category, "severity": classification.severity,
              "priority": classification.priority}
    steps += ruleset.compiled("route").explain(routed)
    return [attrs.evolve(s, source="plugin:rules") for s in steps]
