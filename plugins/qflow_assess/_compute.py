"""Computing figures for a period, optionally sliced by a dimension.

All the measures of the KPIs that share a projection and a membership go into one
``Store.aggregate`` call, with one grouping set per slice (the whole, by team, by
category …), so the work happens in the database and a report over a million
incidents is a handful of scans.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from qflow import Filter, Measure, Projection, Store
from qflow_assess._facts import ACTIONS, FACTS
from qflow_assess._kpis import KPI, Figure
from qflow_assess._periods import Period

__all__ = ["DIMENSIONS", "Comparison", "Job", "Plan", "Slice", "compare", "compute", "compute_slices", "plan_slices",
           "until_as_of"]

#: What a report may slice by (columns of both projections, except ``owner``, which
#: is the incident's owner in one and the action's owner in the other).
DIMENSIONS = ("team", "owner", "category", "severity", "channel", "place")

_PROJECTIONS: Mapping[str, Projection] = {FACTS.name: FACTS, ACTIONS.name: ACTIONS}
_MEMBERSHIP_COLUMN = {"report": "reported_at", "resolved": "resolved_at", "due": "due", "open": None}


@attrs.frozen
class Slice:
    """The figures of one period: ``total[kpi]`` for the whole, and with *by*
    ``groups[value][kpi]`` per value — ``None`` is a group too (the incidents without
    a team, say), so the groups always add up to the whole."""

    period: Period
    by: str | None
    as_of: datetime
    total: Mapping[str, Figure]
    groups: Mapping[Any, Mapping[str, Figure]]

    def whole(self) -> Mapping[str, Figure]:
        return self.total


@attrs.frozen
class Comparison:
    """A period next to the one before it and the same period a year earlier."""

    current: Slice
    previous: Slice
    last_year: Slice


def _filters(kpi: KPI, period: Period, as_of: datetime, now: datetime | None) -> tuple[Filter, ...]:
    """The rows of *kpi*'s membership in *period* as of *as_of*: an incident reported (or
    resolved) after it was not yet there. An action due after it is, and counts once it
    is done or late."""
    column = _MEMBERSHIP_COLUMN[kpi.membership]
    if column is None:
        if now is not None and as_of >= now:
            return (Filter("is_open", "==", 1),)  # what is open now: the store reads only those rows
        # Open then may be closed now: every incident reported by then, the measures pick.
        return (Filter("reported_at", "<=", as_of.timestamp()),)
    if kpi.membership == "due":
        return (Filter(column, ">=", period.start.timestamp()), Filter(column, "<", period.end.timestamp()))
    return until_as_of(column, period, as_of)


def until_as_of(column: str, period: Period, as_of: datetime) -> tuple[Filter, ...]:
    """*column* in *period*, and not after *as_of* (what came later had not happened)."""
    if as_of < period.end:
        return Filter(column, ">=", period.start.timestamp()), Filter(column, "<=", as_of.timestamp())
    return Filter(column, ">=", period.start.timestamp()), Filter(column, "<", period.end.timestamp())


def compute(store: Store, kpis: Sequence[KPI], period: Period, *, as_of: datetime, now: datetime | None = None,
            by: str | None = None, min_n: int = 10, extra_filters: Iterable[Filter] = (),
            total: Mapping[str, Figure] | None = None) -> Slice:
    """Every KPI of *kpis* over *period* as of *as_of*, for the whole and (with *by*) per
    value of *by*. *now* is when the figures are computed (see :func:`plan_slices`).

    *total* is the whole when it is already known (the same period's figures): the
    slice then only groups."""
    if total is not None and by is not None:
        found = compute_slices(store, kpis, period, as_of=as_of, now=now, dims=(by,), whole=False, min_n=min_n,
                               extra_filters=extra_filters)[0]
        return attrs.evolve(found, total=dict(total))
    if by is None:
        return compute_slices(store, kpis, period, as_of=as_of, now=now, dims=(), min_n=min_n,
                              extra_filters=extra_filters)[0]
    whole, found = compute_slices(store, kpis, period, as_of=as_of, now=now, dims=(by,), min_n=min_n,
                                  extra_filters=extra_filters)
    return attrs.evolve(found, total=whole.total)


@attrs.frozen
class Job:
    """One ``Store.aggregate`` call a computation needs."""

    projection: Projection
    measures: tuple[Measure, ...]
    group_by: tuple[tuple[str, ...], ...]
    where: tuple[Filter, ...]

    def run(self, store: Store) -> list[Any]:
        return store.aggregate(self.projection, measures=self.measures, group_by=self.group_by, where=self.where)


@attrs.frozen
class Plan:
    """The aggregates behind some figures (``jobs``, independent of each other, so
    they may run side by side) and how their answers become the figures
    (``finish``, given one answer per job, in order)."""

    jobs: tuple[Job, ...]
    finish: Callable[[Sequence[Any]], list[Slice]]

    def run(self, store: Store) -> list[Slice]:
        return self.finish([job.run(store) for job in self.jobs])


def compute_slices(store: Store, kpis: Sequence[KPI], period: Period, *, as_of: datetime,
                   now: datetime | None = None, dims: Sequence[str], whole: bool = True, min_n: int = 10,
                   extra_filters: Iterable[Filter] = ()) -> list[Slice]:
    """The whole of *period* (unless ``whole=False``) and one slice per dimension of
    *dims*, each slice's ``total`` the whole: every KPI sharing a projection and a
    membership is one ``Store.aggregate`` call with a grouping set per slice, so the
    store scans the period once for all of them."""
    return plan_slices(kpis, period, as_of=as_of, now=now, dims=dims, whole=whole, min_n=min_n,
                       extra_filters=extra_filters).run(store)


def plan_slices(kpis: Sequence[KPI], period: Period, *, as_of: datetime, now: datetime | None = None,
                dims: Sequence[str], whole: bool = True, min_n: int = 10,
                extra_filters: Iterable[Filter] = ()) -> Plan:
    """:func:`compute_slices` as a :class:`Plan`.

    Every figure is as of *as_of*, as far as the facts date what it counts (docs/kpis.md).
    *now* is when they are computed: with *as_of* at or after it, the backlog reads only
    the incidents open now; without it, or with *as_of* before it, the backlog reads every
    incident reported by *as_of* (open then, it may be closed now)."""
    for by in dims:
        if by not in DIMENSIONS:
            raise ValueError(f"cannot slice by '{by}'; use one of {', '.join(DIMENSIONS)}")
    stamp = as_of.timestamp()
    extra = tuple(extra_filters)
    batches: dict[tuple[str, tuple[Filter, ...]], list[tuple[KPI, dict[str, Measure]]]] = {}
    for kpi in kpis:
        batches.setdefault((kpi.projection, _filters(kpi, period, as_of, now)), []).append(
            (kpi, dict(kpi.measures(stamp))))
    sets = tuple(([()] if whole else []) + [(d,) for d in dims])
    jobs = tuple(Job(_PROJECTIONS[proj_name], tuple(m for _, ms in members for m in ms.values()), sets, where + extra)
                 for (proj_name, where), members in batches.items()) if sets else ()

    def finish(answers: Sequence[Any]) -> list[Slice]:
        total: dict[str, Figure] = {}
        groups: list[dict[Any, dict[str, Figure]]] = [{} for _ in dims]
        for members, results in zip(batches.values() if jobs else (), answers, strict=True):
            for at, (group_by, rows) in enumerate(zip(sets, results, strict=True)):
                for row in rows:
                    into = groups[at - int(whole)].setdefault(row[0], {}) if group_by else total
                    values = iter(row[len(group_by):])
                    for kpi, ms in members:
                        named = {name: next(values) for name in ms}
                        into[kpi.name] = _flagged(kpi, kpi.value(named), min_n)
        # The backlog reads only the open rows, so a group with none open is not among its
        # answers: it has a backlog of 0, like the whole would.
        for kpi in kpis:
            if kpi.membership != "open":
                continue
            empty = {name: 0 if m.fn.startswith("count") else None for name, m in kpi.measures(stamp).items()}
            for found in groups:
                for figures in found.values():
                    if kpi.name not in figures and any(k.projection == kpi.projection for k in kpis
                                                       if k.name in figures):
                        figures[kpi.name] = _flagged(kpi, kpi.value(empty), min_n)
        out = [Slice(period, None, as_of, total, {})] if whole else []
        return out + [Slice(period, by, as_of, total, found) for by, found in zip(dims, groups, strict=True)]

    return Plan(jobs, finish)


def _flagged(kpi: KPI, figure: Figure, min_n: int) -> Figure:
    """*figure* flagged low confidence when it is a rate, a duration or a score over
    fewer than *min_n* data points. A count (the backlog) is exact however small."""
    return attrs.evolve(figure, low_confidence=kpi.unit != "count" and figure.n < min_n)


def compare(store: Store, kpis: Sequence[KPI], period: Period, *, as_of: datetime, now: datetime | None = None,
            by: str | None = None, min_n: int = 10) -> Comparison:
    # The backlog is of the as-of time, not of a period: it is compared only where it was measured.
    dated = [k for k in kpis if k.membership != "open"]

    def then(p: Period) -> Slice:
        return compute(store, dated, p, as_of=as_of, now=now, by=by, min_n=min_n)

    return Comparison(compute(store, kpis, period, as_of=as_of, now=now, by=by, min_n=min_n),
                      then(period.previous()), then(period.last_year()))
