"""The kernel's own ruleset sections: the organisation's vocabulary.

Teams, categories and responsibility classes are names every plugin refers to, so
the kernel owns them; plugins own the policies built on them. Registered by the
plugin manager like any plugin, under the name ``qflow.vocabulary``.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import timedelta

import attrs

from qflow.hookimpl import hookimpl
from qflow.ruleset import CompileContext, Section

__all__ = ["Category", "Intake", "Label", "Team"]

#: The notification topics the kernel raises: a report, an action planned.
TOPICS = ("incident.reported", "action.planned")

#: Responsibility classes when a ruleset names none (DOMAIN.md, step 2).
DEFAULT_RESPONSIBILITIES = ("human", "equipment", "process", "customer")


@attrs.frozen
class Team:
    """A team that incidents are routed to; ``lead`` is who escalations reach first."""

    name: str | None = None
    lead: str | None = None
    members: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    contact: str | None = None


@attrs.frozen
class Category:
    """A kind of anomaly (complaint, hygiene, equipment ...) with a display name."""

    name: str | None = None
    description: str | None = None


@attrs.frozen
class Label:
    """A named value with a display name (responsibility classes)."""

    name: str | None = None
    description: str | None = None


@attrs.frozen
class Intake:
    """How reports come in: a report whose ``dedup_key`` matches an open incident
    reported within ``dedup_window`` before it attaches to that incident as a further
    report (``ReportAttached``) instead of opening a new one. A ``reported_at`` at most
    ``clock_skew`` ahead of qflow's clock is the sender's clock running a little fast:
    the deadlines count from it; further ahead, the report is refused."""

    dedup_window: timedelta = timedelta(hours=2)
    clock_skew: timedelta = timedelta(minutes=5)


def _compile_intake(intake: Intake | None, ctx: CompileContext) -> Intake:
    # The loader refuses durations that are not positive, so every window is usable.
    return intake if intake is not None else Intake()


def _compile_teams(teams: Mapping[str, Team] | None, ctx: CompileContext) -> Mapping[str, Team]:
    ctx.declare("team")
    for key in teams or {}:
        ctx.define("team", key, ("teams", key))
    return dict(teams or {})


def _compile_categories(cats: Mapping[str, Category] | None, ctx: CompileContext) -> Mapping[str, Category] | None:
    # Categories are an open vocabulary until a ruleset lists them; then they are checked.
    if cats is None:
        return None
    for key in cats:
        ctx.define("category", key, ("categories", key))
    return dict(cats)


def _compile_responsibilities(labels: Mapping[str, Label] | None, ctx: CompileContext) -> Mapping[str, Label]:
    ctx.declare("responsibility")
    if labels is None:
        for name in DEFAULT_RESPONSIBILITIES:
            ctx.define("responsibility", name, ())
        return {name: Label() for name in DEFAULT_RESPONSIBILITIES}
    for key in labels:
        ctx.define("responsibility", key, ("responsibilities", key))
    return dict(labels)


class VocabularyPlugin:
    """Registers the kernel's sections and declares the kernel's notification topics."""

    @hookimpl
    def qflow_notification_topics(self) -> Sequence[str]:
        return TOPICS

    @hookimpl
    def qflow_ruleset_sections(self) -> Sequence[Section]:
        return [
            Section("teams", dict[str, Team], _compile_teams,
                    doc="teams incidents can be routed to: name, lead, members, contact"),
            Section("categories", dict[str, Category], _compile_categories,
                    doc="kinds of anomaly; when listed, every category a rule sets must be one of them"),
            Section("responsibilities", dict[str, Label], _compile_responsibilities,
                    doc="responsibility classes; default human, equipment, process, customer"),
            Section("intake", Intake, _compile_intake, default=Intake,
                    doc="how reports come in: dedup_window (default 2h) for reports with a dedup_key, "
                        "clock_skew (default 5m): how far a reported_at may be ahead of qflow's clock"),
        ]


