"""The ``loop:`` section: guards, fishbone branches, evidence kinds, action rules,
reminders, verification metrics and problem detection. Every key has a default, so a
ruleset without the section runs the quality process of DOMAIN.md."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from zoneinfo import ZoneInfo

import attrs

from qflow import CompileContext, format_duration
from qflow.lifecycle import CauseRule, GuardPolicy

__all__ = [
    "ActionsSpec", "GuardsSpec", "LoopSettings", "LoopSpec", "MetricSpec", "ProblemsSpec", "RemindersSpec",
    "VerificationSpec", "compile_loop",
]

#: Fields a fingerprint may use; ``extra.NAME`` reads the incident's extra data.
FINGERPRINT_FIELDS = ("category", "cause", "place", "asset", "channel", "customer", "service")
METRIC_KINDS = ("recurrence", "satisfaction", "kpi")
#: The 6M branches of a fishbone and the default responsibility class of each.
DEFAULT_BRANCHES = {"man": "human", "machine": "equipment", "method": "process", "material": "equipment",
                    "measurement": "process", "environment": "process"}
DEFAULT_EVIDENCE = ("photo", "system_log", "video", "interview", "document")


@attrs.frozen
class GuardsSpec:
    """What each stage needs first (see ``qflow.lifecycle``)."""

    cause_before_acting: str = "confirmed"  # confirmed, any, off
    actions_done_before_verifying: bool = True
    verification_before_closing: bool = True
    close_on_partial: bool = False
    actions_done_before_closing: bool = True


@attrs.frozen
class ActionsSpec:
    """What a planned action must state besides owner and due date."""

    require_target: bool = True
    require_feasibility: bool = False


@attrs.frozen
class RemindersSpec:
    """Reminders to the owner before, at and every ``every`` after the due date;
    ``escalate_to`` is added once an action is ``escalate_after`` overdue."""

    before: tuple[timedelta, ...] = attrs.field(default=(timedelta(days=1),), converter=tuple)
    at_due: bool = True
    every: timedelta | None = timedelta(days=1)
    limit: int = 30
    escalate_after: timedelta | None = timedelta(days=3)
    escalate_to: tuple[str, ...] = attrs.field(default=("team.lead",), converter=tuple)


@attrs.frozen
class MetricSpec:
    """One metric of a verification. ``on: ratio`` judges after / baseline, ``on:
    value`` the value after. ``effective`` and ``partial`` are the thresholds."""

    name: str
    kind: str = "recurrence"  # recurrence, satisfaction, kpi
    better: str | None = None  # lower, higher; recurrence: lower, satisfaction: higher
    on: str | None = None  # ratio, value; recurrence: ratio, others: value
    effective: float | None = None
    partial: float | None = None
    projection: str | None = None  # kpi: the projection (qflow_projections) and its column
    column: str | None = None
    fn: str = "avg"
    time_column: str = "reported_at"
    same: tuple[str, ...] = attrs.field(default=(), converter=tuple)  # kpi: columns equal to the fingerprint's


@attrs.frozen
class VerificationSpec:
    """``observe``: how long after the last action is done the effect is measured; the
    baseline is the equal window before. ``auto`` measures at once; otherwise the
    incident moves to verifying and waits for a verifier (if ``manual``)."""

    auto: bool = True
    manual: bool = True
    observe: timedelta = timedelta(days=14)
    metrics: tuple[MetricSpec, ...] = attrs.field(
        default=(MetricSpec("recurrence"),), converter=tuple)
    notify: tuple[str, ...] = attrs.field(default=("team.lead",), converter=tuple)


@attrs.frozen
class ProblemsSpec:
    """Open a problem when ``threshold`` incidents with one fingerprint arrive within ``window``."""

    threshold: int = 10
    window: timedelta = timedelta(hours=3)
    fingerprint: tuple[str, ...] | None = None  # default: the loop fingerprint without the cause
    notify: tuple[str, ...] = attrs.field(default=("role:quality-manager",), converter=tuple)


@attrs.frozen
class LoopSpec:
    """The ``loop:`` section."""

    fingerprint: tuple[str, ...] = attrs.field(default=("category", "cause", "place"), converter=tuple)
    branches: Mapping[str, str] | None = None
    evidence_kinds: tuple[str, ...] = attrs.field(default=DEFAULT_EVIDENCE, converter=tuple)
    guards: GuardsSpec = GuardsSpec()
    actions: ActionsSpec = ActionsSpec()
    reminders: RemindersSpec = RemindersSpec()
    verification: VerificationSpec = VerificationSpec()
    problems: ProblemsSpec | None = None


@attrs.frozen
class LoopSettings:
    """The compiled section: what the plugin's hooks read per incident."""

    spec: LoopSpec
    policy: GuardPolicy
    branches: Mapping[str, str]
    metrics: tuple[MetricSpec, ...]
    problem_fingerprint: tuple[str, ...]
    tz: ZoneInfo


def _field_ok(name: str) -> bool:
    return name in FINGERPRINT_FIELDS or (name.startswith("extra.") and len(name) > 6)


def compile_loop(spec: LoopSpec | None, ctx: CompileContext) -> LoopSettings:
    spec = spec or LoopSpec()
    at = ("loop",)
    for i, name in enumerate(spec.fingerprint):
        if not _field_ok(name):
            ctx.error(at + ("fingerprint", i), "QF800", f"'{name}' is not a fingerprint field",
                      hint=f"use {', '.join(FINGERPRINT_FIELDS)} or extra.NAME")
    if not spec.fingerprint:
        ctx.error(at + ("fingerprint",), "QF800", "the fingerprint is empty",
                  hint="name at least one field, e.g. [category, cause, place]")
    branches = dict(DEFAULT_BRANCHES if spec.branches is None else spec.branches)
    for branch, responsibility in (spec.branches or {}).items():
        ctx.refer("responsibility", responsibility, at + ("branches", branch))
    if not spec.evidence_kinds:
        ctx.error(at + ("evidence_kinds",), "QF801", "no evidence kind is allowed",
                  hint="list at least one, e.g. [photo, system_log, video, interview]")
    try:
        rule = CauseRule(spec.guards.cause_before_acting)
    except ValueError:
        rule = CauseRule.CONFIRMED
        ctx.error(at + ("guards", "cause_before_acting"), "QF802",
                  f"'{spec.guards.cause_before_acting}' is not one of: confirmed, any, off",
                  hint="confirmed: acting needs a confirmed cause; any: a recorded one; off: none")
    g = spec.guards
    policy = GuardPolicy(rule, g.actions_done_before_verifying, g.verification_before_closing, g.close_on_partial,
                         g.actions_done_before_closing)
    r = spec.reminders
    if r.every is not None and r.limit < 1:
        ctx.error(at + ("reminders", "limit"), "QF803", f"limit {r.limit} sends no reminder after the due date",
                  hint="use a limit of 1 or more, or every: null to send none")
    metrics = tuple(_metric(m, i, ctx) for i, m in enumerate(spec.verification.metrics))
    if not metrics:
        ctx.error(at + ("verification", "metrics"), "QF804", "a verification needs at least one metric",
                  hint="e.g. [{name: recurrence, kind: recurrence}]")
    seen: set[str] = set()
    for i, m in enumerate(metrics):
        if m.name in seen:
            ctx.error(at + ("verification", "metrics", i, "name"), "QF202", f"metric '{m.name}' is defined twice")
        seen.add(m.name)
    problem_fp = tuple(f for f in spec.fingerprint if f != "cause")
    if spec.problems is not None:
        p = spec.problems
        if p.threshold < 2:
            ctx.error(at + ("problems", "threshold"), "QF806", f"threshold {p.threshold} would make every incident a problem",
                      hint="use 2 or more, e.g. 10 (10 in 3 hours at the same place)")
        if p.fingerprint is not None:
            for i, name in enumerate(p.fingerprint):
                if not _field_ok(name) or name == "cause":
                    ctx.error(at + ("problems", "fingerprint", i), "QF800",
                              f"'{name}' is not a fingerprint field for arriving incidents",
                              hint="an arriving incident has no cause yet; use category, place, asset, channel, "
                                   "customer, service or extra.NAME")
            problem_fp = p.fingerprint
        if not problem_fp:
            ctx.error(at + ("problems",), "QF800", "the problem fingerprint is empty",
                      hint="give problems.fingerprint, e.g. [category, place]")
    return LoopSettings(spec, policy, branches, metrics, problem_fp, ctx.timezone)


def _metric(m: MetricSpec, i: int, ctx: CompileContext) -> MetricSpec:
    at = ("loop", "verification", "metrics", i)
    if m.kind not in METRIC_KINDS:
        ctx.error(at + ("kind",), "QF805", f"'{m.kind}' is not a metric kind", hint=f"use {', '.join(METRIC_KINDS)}")
        return m
    better = m.better or ("lower" if m.kind == "recurrence" else "higher")
    on = m.on or ("ratio" if m.kind == "recurrence" else "value")
    if better not in ("lower", "higher"):
        ctx.error(at + ("better",), "QF805", f"'{m.better}' is not lower or higher")
    if on not in ("ratio", "value"):
        ctx.error(at + ("on",), "QF805", f"'{m.on}' is not ratio or value",
                  hint="ratio judges after / baseline; value judges the value after")
    effective, partial = m.effective, m.partial
    if m.kind == "recurrence" and effective is None and partial is None:
        effective, partial = (0.5, 1.0) if on == "ratio" else (0.0, 1.0)
    if effective is None or partial is None:
        ctx.error(at, "QF805", f"metric '{m.name}' needs both thresholds, effective and partial",
                  hint="e.g. effective: 4.5, partial: 4.0 for a satisfaction score")
        return attrs.evolve(m, better=better, on=on)
    if (better == "lower" and effective > partial) or (better == "higher" and effective < partial):
        word = "above" if better == "lower" else "below"
        ctx.error(at + ("effective",), "QF805",
                  f"effective {effective:g} is {word} partial {partial:g}, but {better} is better",
                  hint="effective must be the stricter threshold")
    if m.kind == "kpi" and (not m.projection or not m.column):
        ctx.error(at, "QF805", f"kpi metric '{m.name}' needs projection and column",
                  hint="name a projection a plugin keeps (qflow_projections) and its column")
    if m.fn not in ("count", "sum", "avg", "min", "max", "median", "p90"):
        ctx.error(at + ("fn",), "QF805", f"'{m.fn}' is not an aggregate",
                  hint="use count, sum, avg, min, max, median or p90")
    return attrs.evolve(m, better=better, on=on, effective=effective, partial=partial)


def describe(m: MetricSpec) -> str:
    return f"{m.name} ({m.kind}, {m.better} is better, {m.on}: effective {m.effective:g}, partial {m.partial:g})"


def window_text(span: timedelta) -> str:
    return format_duration(span)
