"""Built-in plugin: assessment — KPIs, satisfaction, scorecards, period reports.

Section ``assessment`` (optional: every figure works with the defaults). The plugin
keeps two projections up to date in every command's transaction (``incident_facts``,
``action_facts``); reports aggregate them in the database. Site metrics come from the
``qflow_site_metrics`` hook and show up in every report and slice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import attrs

from qflow import CompileContext, Event, FrozenDict, IncidentState, Projection, Ruleset, Section, hookimpl
from qflow_assess._facts import ACTIONS, FACTS, action_rows, facts_row
from qflow_assess._kpis import DEFINITIONS, KPI, Figure
from qflow_assess._scores import record_score

__all__ = [
    "ACTIONS", "Assessment", "Criterion", "DEFINITIONS", "FACTS", "KPI", "Figure", "Scorecard", "record_score",
    "settings", "site_kpis",
]

#: Fields a fingerprint may use (what makes two incidents "the same kind of anomaly").
FINGERPRINT_FIELDS = ("category", "place", "team", "channel", "severity")


@attrs.frozen
class Criterion:
    """A qualitative criterion (service attitude, process compliance, hygiene and safety)
    scored by expert reviews, inspections and mystery-shopper audits."""

    name: str | None = None
    description: str | None = None
    scale: tuple[int, int] = (1, 5)
    standard: float | None = None  # a score below this is a finding: it opens an incident
    category: str | None = None  # the category of the incident a finding opens


@attrs.frozen
class Scorecard:
    """How figures combine into one score per team or person: ``weights`` by KPI or
    criterion name; duration KPIs need a ``targets`` entry (full marks at or below it)."""

    weights: dict[str, float] = attrs.field(factory=dict)
    targets: dict[str, timedelta] = attrs.field(factory=dict)


@attrs.frozen
class Assessment:
    timezone: str | None = None  # the organisation's; default the ruleset's
    min_n: int = 10  # a segment with fewer data points is flagged low-confidence
    fingerprint: tuple[str, ...] = ("category", "place")
    csat_scale: int = 5
    csat_satisfied: int = 4  # a score at or above this counts as satisfied
    resolve_target: timedelta | None = None  # "resolved within target"; default the resolve deadline
    criteria: dict[str, Criterion] = attrs.field(factory=dict)
    methods: tuple[str, ...] = ("expert_review", "inspection", "mystery_shopper")
    scorecard: Scorecard | None = None


def _compile(value: Assessment | None, ctx: CompileContext) -> Assessment:
    value = value or Assessment()
    if value.timezone is not None:
        try:
            ZoneInfo(value.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            ctx.error(("assessment", "timezone"), "QF901", f"unknown time zone '{value.timezone}'",
                      hint="use an IANA name such as Asia/Shanghai")
    if value.min_n < 1:
        ctx.error(("assessment", "min_n"), "QF902", "min_n must be at least 1", hint="10 is a sensible default")
    for i, f in enumerate(value.fingerprint):
        if f not in FINGERPRINT_FIELDS:
            ctx.error(("assessment", "fingerprint", i), "QF902", f"unknown fingerprint field '{f}'",
                      hint=f"use some of: {', '.join(FINGERPRINT_FIELDS)}")
    if not 1 <= value.csat_satisfied <= value.csat_scale:
        ctx.error(("assessment", "csat_satisfied"), "QF902",
                  f"csat_satisfied {value.csat_satisfied} is outside the scale 1-{value.csat_scale}",
                  hint="e.g. 4 on a 5-point scale")
    for key, c in value.criteria.items():
        lo, hi = c.scale
        if lo >= hi:
            ctx.error(("assessment", "criteria", key, "scale"), "QF902", f"scale [{lo}, {hi}] is empty",
                      hint="give the lowest and the highest score, e.g. [1, 5]")
        if c.standard is not None and not lo <= c.standard <= hi:
            ctx.error(("assessment", "criteria", key, "standard"), "QF902",
                      f"standard {c.standard} is outside the scale [{lo}, {hi}]")
        if c.category is not None:
            ctx.refer("category", c.category, ("assessment", "criteria", key, "category"))
    if value.scorecard is not None:
        known = {k.name for k in DEFINITIONS} | set(value.criteria)
        for name, weight in value.scorecard.weights.items():
            if name not in known:
                ctx.error(("assessment", "scorecard", "weights", name), "QF903", f"unknown KPI or criterion '{name}'",
                          hint="use a KPI name from docs/kpis.md or a criterion of this section", at="key")
            elif weight < 0:
                ctx.error(("assessment", "scorecard", "weights", name), "QF902", "a weight cannot be negative")
            kpi = next((k for k in DEFINITIONS if k.name == name), None)
            if kpi is not None and kpi.unit == "duration" and name not in value.scorecard.targets:
                ctx.error(("assessment", "scorecard", "weights", name), "QF904",
                          f"duration KPI '{name}' needs a target to be scored",
                          hint=f"add scorecard.targets.{name}, e.g. 1h", at="key")
    return value


def settings(ruleset: Ruleset) -> Assessment:
    """The ruleset's assessment settings (the defaults when it has no section)."""
    return ruleset.compiled("assessment") or Assessment()


@hookimpl
def qflow_ruleset_sections() -> Sequence[Section]:
    return [Section("assessment", Assessment, _compile,
                    doc="how figures are computed and combined: time zone, fingerprint, CSAT scale, criteria, scorecard")]


@hookimpl
def qflow_projections() -> Sequence[Projection]:
    return [FACTS, ACTIONS]


@hookimpl
def qflow_project(state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
                  now: datetime) -> Mapping[str, Any]:
    conf = settings(ruleset)
    return {
        # The row is frozen for the store anyway: a fresh dict of fifty columns, not copied.
        FACTS.name: FrozenDict.adopt(facts_row(state, events, ruleset, conf)),
        ACTIONS.name: action_rows(state, ruleset, conf),
    }


@hookimpl
def qflow_commands(subparsers: Any, common: Any) -> Mapping[str, Any]:
    from qflow_assess._cli import add_commands  # argparse setup only when the command line runs

    return add_commands(subparsers, common)


def site_kpis(pm: Any, ruleset: Ruleset) -> tuple[KPI, ...]:
    """The site metrics every installed plugin adds (``qflow_site_metrics``)."""
    from qflow import PluginError

    seen = {k.name for k in DEFINITIONS}
    out = []
    for found in pm.hook.qflow_site_metrics(ruleset=ruleset):
        for kpi in found or ():
            if kpi.name in seen:
                raise PluginError(f"two KPIs are named '{kpi.name}'; a site metric needs a name of its own")
            seen.add(kpi.name)
            out.append(kpi)
    return tuple(out)
