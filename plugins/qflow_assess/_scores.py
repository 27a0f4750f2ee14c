"""Qualitative scores (expert reviews, inspections, mystery-shopper audits) and the
weighted scorecards that combine them with the KPIs.

A score is a store document (kind ``assessment_score``), so it survives restarts and
is shared by every worker. A score below its criterion's standard is a finding and
opens an incident through the ``inspection`` channel, linked both ways.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from qflow import ConcurrencyError, Engine, InputError, Ruleset, Store
from qflow.diagnostics import did_you_mean
from qflow_assess._compute import compute_slices
from qflow_assess._kpis import KPI, Figure
from qflow_assess._periods import Period

__all__ = ["Component", "Score", "Scorecard", "record_score", "scorecards", "scores_in"]

KIND = "assessment_score"


@attrs.frozen
class Score:
    id: str
    subject: str
    subject_kind: str  # team or person
    criterion: str
    score: float
    method: str
    at: datetime
    period: str | None = None
    assessor: str | None = None
    note: str | None = None
    place: str | None = None
    incident_id: str | None = None  # the incident a finding opened


@attrs.frozen
class Component:
    """One weighted part of a scorecard and where its figure came from."""

    name: str
    kind: str  # kpi or criterion
    value: float | None  # the KPI's value, or the mean criterion score
    score: float | None  # 0-100
    weight: float
    inputs: str  # what the value was computed from
    low_confidence: bool = False


@attrs.frozen
class Scorecard:
    subject: str
    subject_kind: str
    period: str
    total: float | None
    components: tuple[Component, ...]

    @property
    def low_confidence(self) -> bool:
        return any(c.low_confidence for c in self.components)


def _settings(ruleset: Ruleset) -> Any:
    from qflow_assess import settings  # the package imports this module

    return settings(ruleset)


def record_score(engine: Engine, *, subject: str, criterion: str, score: float, method: str,
                 subject_kind: str = "team", period: str | None = None, assessor: str | None = None,
                 note: str | None = None, place: str | None = None, actor: str | None = None) -> Score:
    """Record one qualitative score; a score below the criterion's standard also opens
    an incident through the ``inspection`` channel. Nothing is written when any input
    is wrong."""
    conf = _settings(engine.ruleset)
    crit = conf.criteria.get(criterion)
    if crit is None:
        hint = did_you_mean(criterion, conf.criteria) or (
            f"the criteria are: {', '.join(conf.criteria)}" if conf.criteria else "define criteria under assessment.criteria")
        raise InputError(f"unknown criterion '{criterion}' ({hint})")
    lo, hi = crit.scale
    if not lo <= score <= hi:
        raise InputError(f"score {score:g} for {criterion} is outside its scale {lo}-{hi}")
    if method not in conf.methods:
        raise InputError(f"unknown method '{method}' (the methods are: {', '.join(conf.methods)})")
    if subject_kind not in ("team", "person"):
        raise InputError(f"a score is for a team or a person, not a {subject_kind}")
    if period is not None:
        from zoneinfo import ZoneInfo

        from qflow_assess._periods import parse_period

        try:  # the score counts in every report whose period holds this one
            scored = parse_period(period, ZoneInfo(conf.timezone or engine.ruleset.timezone), engine.clock.now())
        except ValueError as exc:
            raise InputError(f"the score's period: {exc}") from None
        if scored.kind == "rolling":
            raise InputError(f"a score is for a month, a quarter or a year, not a rolling window like '{period}'")
        period = scored.label
    teams = engine.ruleset.names("team")
    if subject_kind == "team" and subject not in teams:
        hint = did_you_mean(subject, teams) or f"the teams are: {', '.join(teams)}"
        raise InputError(f"unknown team '{subject}' ({hint})")
    now = engine.clock.now()
    store = engine.store
    for _attempt in range(5):
        n = len(store.documents(KIND)) + 1
        found = Score(f"S-{n}", subject, subject_kind, criterion, float(score), method, now, period, assessor, note, place)
        try:
            store.save_document(KIND, found.id, _data(found), version=1)
            break
        except ConcurrencyError:
            continue  # another writer took that number
    else:
        raise ConcurrencyError("could not number the score after 5 tries; try again")
    if crit.standard is not None and score < crit.standard:
        title = crit.name or criterion
        state = engine.report({
            "channel": "inspection", "category": crit.category, "place": place,
            "title": f"{title}: {score:g} below standard {crit.standard:g}",
            "description": f"{title} scored {score:g} (standard {crit.standard:g}, scale {lo}-{hi}) "
                           f"by {method}{f' ({assessor})' if assessor else ''}{f': {note}' if note else ''}",
            "extra": {"score_id": found.id, "subject": subject},
        }, actor=actor or assessor)
        found = attrs.evolve(found, incident_id=state.id)
        store.save_document(KIND, found.id, _data(found), version=2)
    return found


def _data(score: Score) -> dict[str, Any]:
    return {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in attrs.asdict(score).items()}


def scores_in(store: Store, period: Period, as_of: datetime | None = None) -> list[Score]:
    """The scores for *period*: those recorded for a period inside it, and those
    recorded without one at a moment inside it; with *as_of*, only those recorded by
    then."""
    from qflow_assess._periods import parse_period

    out = []
    for _id, _version, data in store.documents(KIND):
        at = datetime.fromisoformat(data["at"])
        if as_of is not None and at > as_of:
            continue  # not yet recorded then
        if data.get("period"):
            scored = parse_period(data["period"], period.start.tzinfo, at)  # type: ignore[arg-type]
            inside = period.start <= scored.start and scored.end <= period.end
        else:
            inside = period.contains(at)
        if inside:
            out.append(Score(**{**data, "at": at}))
    return out


def _kpi_score(kpi: KPI, figure: Figure, target: Any) -> float | None:
    v = figure.value
    if v is None:
        return None
    if kpi.unit == "rate":
        return 100 * (v if kpi.higher_is_better else 1 - v)
    if kpi.unit == "score":  # NPS runs from -100 to 100
        return (v + 100) / 2
    if kpi.unit == "duration":
        t = target.total_seconds()
        return 100.0 if v <= t else 100 * t / v
    return None


def _inputs(figure: Figure) -> str:
    if figure.numerator is not None and figure.denominator is not None:
        return f"{figure.numerator:g} of {figure.denominator:g}"
    return f"median of {figure.n}"


def scorecards(store: Store, ruleset: Ruleset, period: Period, *, as_of: datetime, now: datetime | None = None,
               kpis: Sequence[KPI]) -> list[Scorecard]:
    """One scorecard per team (and per person with scores), weights from the ruleset, as
    of *as_of* (the KPIs as :func:`compute_slices` gives them, the scores recorded by then)."""
    conf = _settings(ruleset)
    card = conf.scorecard
    if card is None:
        return []
    weighted = [k for k in kpis if k.name in card.weights]
    by_team: Mapping[Any, Any] = {}
    by_owner: Mapping[Any, Any] = {}
    if weighted:  # both groupings from one scan
        teams, owners = compute_slices(store, weighted, period, as_of=as_of, now=now, dims=("team", "owner"),
                                       whole=False, min_n=conf.min_n)
        by_team, by_owner = teams.groups, owners.groups
    scores = scores_in(store, period, as_of)
    subjects = [("team", t) for t in ruleset.names("team")]
    subjects += sorted({("person", s.subject) for s in scores if s.subject_kind == "person"})
    out = []
    for kind, subject in subjects:
        figures = (by_team if kind == "team" else by_owner).get(subject, {})
        comps = []
        for kpi in weighted:
            fig = figures.get(kpi.name)
            comps.append(Component(kpi.name, "kpi", fig.value if fig else None,
                                   _kpi_score(kpi, fig, card.targets.get(kpi.name)) if fig else None,
                                   card.weights[kpi.name], _inputs(fig) if fig else "no data",
                                   fig.low_confidence if fig else True))
        for name, crit in conf.criteria.items():
            if name not in card.weights:
                continue
            mine = [s for s in scores if s.criterion == name and s.subject == subject and s.subject_kind == kind]
            lo, hi = crit.scale
            mean = sum(s.score for s in mine) / len(mine) if mine else None
            comps.append(Component(name, "criterion", mean,
                                   100 * (mean - lo) / (hi - lo) if mean is not None else None, card.weights[name],
                                   ", ".join(s.id for s in mine) or "no scores", len(mine) < 1))
        scored = [c for c in comps if c.score is not None]
        total_weight = sum(c.weight for c in scored)
        total = sum(c.score * c.weight for c in scored) / total_weight if total_weight else None  # type: ignore[operator]
        out.append(Scorecard(subject, kind, period.label, total, tuple(comps)))
    return out
