"""Built-in plugin: classification and responsibility routing from ruleset rules.

Sections ``classify``, ``priority`` and ``route``. Registered through the ``qflow``
entry-point group as ``rules``, exactly as a third-party plugin would be.

A rule section is either a plain list (first match per field, rules without
``when`` last: :mod:`qflow_rules._chain`) or a mapping that states its mode,
``{mode: first|all, rules: [...], default: {...}}`` (:mod:`qflow_rules._modes`). A
rule marked ``shadow: true`` never changes a decision; ``explain`` and the trace say
whether it would have matched.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from typing import Any

import attrs

from qflow import Assignment, Classification, CompileContext, Diagnostic, Ruleset, Section, TraceStep, hookimpl
from qflow.conditions import ConditionSpec
from qflow.diagnostics import json_path
from qflow_rules._chain import Chain, Rule, decided_fields
from qflow_rules._lint import lint_section
from qflow_rules._modes import ModeChain

__all__ = ["Assign", "ClassifyRule", "ClassifySection", "Mode", "Priority", "RouteRule", "RouteSection", "SetValues"]


@attrs.frozen
class SetValues:
    """What a classify rule sets."""

    category: str | None = attrs.field(default=None, metadata={"doc": "the category to set"})
    severity: str | None = attrs.field(default=None, metadata={"doc": "a severity defined under severities:"})


@attrs.frozen
class Assign:
    """What a route rule assigns."""

    team: str | None = attrs.field(default=None, metadata={"doc": "a team defined under teams:"})
    owner: str | None = attrs.field(default=None, metadata={"doc": "the person who owns the incident"})
    responsibility: str | None = attrs.field(
        default=None, metadata={"doc": "human, equipment, process, customer (or the ruleset's responsibilities:)"})


class Mode(enum.Enum):
    """How the rules of a section combine."""

    FIRST = "first"
    ALL = "all"


def _rule_class(name: str, target: str, target_type: type, doc: str) -> Any:
    # `continue` is a Python keyword, so the class is made with attrs.make_class:
    # the attribute is named `continue` (the YAML key), the __init__ argument `continue_`.
    cls = attrs.make_class(name, {
        "id": attrs.field(type=str, metadata={"doc": "a name for the rule, unique in its section; "
                                                   "explain and the decision name it"}),
        target: attrs.field(type=target_type),
        "when": attrs.field(type=ConditionSpec, default=None,
                            metadata={"doc": "the condition (a mapping, or an expression string); "
                                             "none: always"}),
        "note": attrs.field(type=str | None, default=None, metadata={"doc": "free text for people"}),
        "shadow": attrs.field(type=bool, default=False,
                              metadata={"doc": "true: never changes a decision, the trace says whether "
                                               "it would have matched"}),
        "continue": attrs.field(type=bool | None, default=None, alias="continue_", eq=False, repr=False,
                                metadata={"doc": "mode first: true goes on to later rules; "
                                                 "mode all: false stops after this rule"}),
    }, frozen=True)
    cls.__doc__ = doc
    cls.__module__ = __name__
    return cls


ClassifyRule = _rule_class("ClassifyRule", "set", SetValues, "A classify rule: when the condition holds, set these.")
RouteRule = _rule_class("RouteRule", "assign", Assign, "A route rule: when the condition holds, assign these.")


@attrs.frozen
class ClassifySection:
    """The classify section with its mode stated: ``{mode: first|all, rules: [...], default: {...}}``."""

    mode: Mode = attrs.field(metadata={"doc": "first: the first matching rule decides; "
                                              "all: every matching rule applies, later ones override"})
    rules: list[ClassifyRule] = attrs.field(factory=list)  # type: ignore[valid-type]
    default: SetValues | None = attrs.field(default=None, metadata={"doc": "what is set when no rule set it"})


@attrs.frozen
class RouteSection:
    """The route section with its mode stated: ``{mode: first|all, rules: [...], default: {...}}``."""

    mode: Mode = attrs.field(metadata={"doc": "first: the first matching rule decides; "
                                              "all: every matching rule applies, later ones override"})
    rules: list[RouteRule] = attrs.field(factory=list)  # type: ignore[valid-type]
    default: Assign | None = attrs.field(default=None, metadata={"doc": "what is assigned when no rule assigned it"})


@attrs.frozen
class Priority:
    """Impact x urgency: ``matrix[impact][urgency - 1]`` is the priority; ``severity``
    maps a priority to the severity used when no classify rule set one."""

    matrix: dict[int, list[str]]
    severity: dict[str, str] = attrs.field(factory=dict)


_REFERENCES = {"category": "category", "severity": "severity", "team": "team", "responsibility": "responsibility"}


def _rules(section: str, rules: Sequence[Any] | None, ctx: CompileContext, target: str, fields: Sequence[str],
           *, listed: bool = True) -> tuple[list[Rule], list[Rule]]:
    """Compile the rules of *section* (a plain list when *listed*, else ``rules:`` of
    the mapping form): the rules that decide, and the shadow rules."""
    out, shadows = [], []
    for i, rule in enumerate(rules or ()):
        path = (section, ctx.index(section, i)) if listed else (section, "rules", i)
        ctx.define(f"{section} rule", rule.id, path + ("id",))
        values = _values(getattr(rule, target), fields)
        if not values:
            ctx.error(path + (target,), "QF102", "the rule sets nothing",
                      hint=f"give at least one of: {', '.join(fields)}", rule=rule.id)
        for f, v in values:
            if f in _REFERENCES:
                ctx.refer(_REFERENCES[f], v, path + (target, f), rule=rule.id)
        cont = getattr(rule, "continue")
        if listed and cont is not None:
            ctx.warn(path + ("continue",), "QF657", "'continue' has no effect in a plain list of rules",
                     hint="a plain list already considers every rule (first match per field); write the "
                          "section as {mode: first, rules: [...]} to stop at the first match", rule=rule.id)
        condition = ctx.condition(path + ("when",), rule=rule.id)
        m = ctx.mark(path)
        where = (m.file, m.line + 1, m.col + 1, json_path(path))
        compiled = Rule(rule.id, section, condition, tuple(values), rule.shadow, cont, where)
        (shadows if rule.shadow else out).append(compiled)
    return out, shadows


def _values(target: Any, fields: Sequence[str]) -> list[tuple[str, Any]]:
    return [(f, getattr(target, f)) for f in fields if getattr(target, f) is not None]


def _default(section: str, default: Any, ctx: CompileContext, target: str, fields: Sequence[str]) -> list[tuple[str, Any]]:
    if default is None:
        return []
    values = _values(default, fields)
    if not values:
        ctx.error((section, "default"), "QF102", "the default sets nothing",
                  hint=f"give at least one of: {', '.join(fields)}, or remove 'default'")
    for f, v in values:
        if f in _REFERENCES:
            ctx.refer(_REFERENCES[f], v, (section, "default", f), rule="default")
    return values


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


_CLASSIFY_FIELDS = ("category", "severity")
_ROUTE_FIELDS = ("team", "owner", "responsibility")


def _where(ctx: CompileContext, section: str) -> tuple[str, int, int, str]:
    m = ctx.mark((section,), at="key")
    return (m.file, m.line + 1, m.col + 1, json_path((section,)))


def _compile_classify(value: Sequence[Any] | ClassifySection | None, ctx: CompileContext) -> Chain | ModeChain:
    chain = _classify_chain(value, ctx)
    chain.where = _where(ctx, "classify")
    return chain


def _compile_route(value: Sequence[Any] | RouteSection | None, ctx: CompileContext) -> Chain | ModeChain:
    chain = _route_chain(value, ctx)
    chain.where = _where(ctx, "route")
    return chain


def _classify_chain(value: Sequence[Any] | ClassifySection | None, ctx: CompileContext) -> Chain | ModeChain:
    priority = ctx.section("priority")
    extra = None if priority is None else _matrix(priority)
    fields = _CLASSIFY_FIELDS if priority is None else (*_CLASSIFY_FIELDS, "priority")
    if isinstance(value, ClassifySection):
        rules, shadows = _rules("classify", value.rules, ctx, "set", _CLASSIFY_FIELDS, listed=False)
        default = _default("classify", value.default, ctx, "set", _CLASSIFY_FIELDS)
        return ModeChain("classify", value.mode.value, rules, fields, _classification, default, extra, shadows)
    rules, shadows = _rules("classify", value, ctx, "set", _CLASSIFY_FIELDS)
    return Chain("classify", rules, fields, _classification, extra, shadows)


def _route_chain(value: Sequence[Any] | RouteSection | None, ctx: CompileContext) -> Chain | ModeChain:
    if isinstance(value, RouteSection):
        rules, shadows = _rules("route", value.rules, ctx, "assign", _ROUTE_FIELDS, listed=False)
        default = _default("route", value.default, ctx, "assign", _ROUTE_FIELDS)
        return ModeChain("route", value.mode.value, rules, _ROUTE_FIELDS, _assignment, default, None, shadows)
    rules, shadows = _rules("route", value, ctx, "assign", _ROUTE_FIELDS)
    return Chain("route", rules, _ROUTE_FIELDS, _assignment, None, shadows)


@hookimpl
def qflow_ruleset_sections() -> Sequence[Section]:
    return [
        Section("classify", list[ClassifyRule] | ClassifySection, _compile_classify, default=list,  # type: ignore[valid-type]
                doc="rules that set category and severity: a list (first match per field, rules without "
                    "'when' last), or {mode: first|all, rules: [...], default: {...}}"),
        Section("priority", Priority, _compile_priority,
                doc="impact x urgency matrix giving a priority (and a severity when no rule set one)"),
        Section("route", list[RouteRule] | RouteSection, _compile_route, default=list,  # type: ignore[valid-type]
                doc="rules that assign team, owner and responsibility: a list (first match per field, rules "
                    "without 'when' last), or {mode: first|all, rules: [...], default: {...}}"),
    ]


@hookimpl
def qflow_lint(ruleset: Ruleset) -> list[Diagnostic]:
    found: list[Diagnostic] = []
    for name in ("classify", "route"):
        chain = ruleset.compiled(name)
        if chain is not None:
            found += lint_section(chain)
    return found


@hookimpl(trylast=True)
def qflow_classify(view: Mapping[str, Any], ruleset: Ruleset) -> Classification | None:
    return ruleset.compiled("classify").run(view)


@hookimpl(trylast=True)
def qflow_route(view: Mapping[str, Any], ruleset: Ruleset) -> Assignment | None:
    return ruleset.compiled("route").run(view)


@hookimpl
def qflow_explain(view: Mapping[str, Any], classification: Classification, assignment: Assignment,
                  ruleset: Ruleset) -> list[TraceStep]:
    # What the decision took, with its sources: where a plugin decided a field a rule
    # also sets, the rule's step names the plugin instead of claiming the field.
    steps = ruleset.compiled("classify").explain(view, decided_fields(classification, _CLASSIFIED))
    routed = {**view, "category": classification.category, "severity": classification.severity,
              "priority": classification.priority}
    steps += ruleset.compiled("route").explain(routed, decided_fields(assignment, _ROUTE_FIELDS))
    return [attrs.evolve(s, source="plugin:rules") for s in steps]


_CLASSIFIED = ("category", "severity", "priority")
