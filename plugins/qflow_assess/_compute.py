"""Computing figures for a period, optionally sliced by a dimension.

All the measures of the KPIs that share a projection and a membership go into one
``Store.aggregate`` call, so the work happens in the database and a report over a
million incidents is a handful of grouped scans.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

from qflow import Filter, Measure, Projection, Store
from qflow_assess._facts import ACTIONS, FACTS
from qflow_assess._kpis import KPI, Figure
from qflow_assess._periods import Period

__all__ = ["DIMENSIONS", "Comparison", "Slice", "compute", "compare"]

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


def _filters(kpi: KPI, period: Period) -> tuple[Filter, ...]:
    column = _MEMBERSHIP_COLUMN[kpi.membership]
    if column is None:
        return (Filter("is_open", "==", 1),)  # what is open now: the store reads only those rows
    return (Filter(column, ">=", period.start.timestamp()), Filter(column, "<", period.end.timestamp()))


def compute(store: Store, kpis: Sequence[KPI], period: Period, *, as_of: datetime, by: str | None = None,
            min_n: int = 10, extra_filters: Iterable[Filter] = (), total: Mapping[str, Figure] | None = None) -> Slice:
    """Every KPI of *kpis* over *period*, for the whole and (with *by*) per value of *by*.

    *total* is the whole when it is already known (the same period's figures): the
    slice then only groups, and the database scans the period once less."""
    if by is not None and by not in DIMENSIONS:
        raise ValueError(f"cannot slice by '{by}'; use one of {', '.join(DIMENSIONS)}")
    stamp = as_of.timestamp()
    extra = tuple(extra_filters)
    batches: dict[tuple[str, tuple[Filter, ...]], list[tuple[KPI, dict[str, Measure]]]] = {}
    for kpi in kpis:
        batches.setdefault((kpi.projection, _filters(kpi, period)), []).append((kpi, dict(kpi.measures(stamp))))
    known = total is not None
    total = dict(total or {})
    groups: dict[Any, dict[str, Figure]] = {}
    for (proj_name, where), members in batches.items():
        projection = _PROJECTIONS[proj_name]
        flat: list[Measure] = [m for _, ms in members for m in ms.values()]
        for group_by in ((by,),) if by and known else ((), (by,)) if by else ((),):
            for row in store.aggregate(projection, measures=flat, group_by=group_by, where=where + extra):
                into = groups.setdefault(row[0], {}) if group_by else total
                values = iter(row[len(group_by):])
                for kpi, ms in members:
                    named = {name: next(values) for name in ms}
                    figure = kpi.value(named)
                    into[kpi.name] = attrs.evolve(figure, low_confidence=figure.n < min_n)
    # The backlog reads only the open rows, so a group with none open is not among its
    # answers: it has a backlog of 0, like the whole would.
    for kpi in kpis:
        if kpi.membership == "open" and by is not None:
            empty = {name: 0 if m.fn.startswith("count") else None for name, m in kpi.measures(stamp).items()}
            for figures in groups.values():
                if kpi.name not in figures and any(k.projection == kpi.projection for k in kpis
                                                   if k.name in figures):
                    figure = kpi.value(empty)
                    figures[kpi.name] = attrs.evolve(figure, low_confidence=figure.n < min_n)
    return Slice(period, by, as_of, total, groups)


def compare(store: Store, kpis: Sequence[KPI], period: Period, *, as_of: datetime, by: str | None = None,
            min_n: int = 10) -> Comparison:
    # What is open now has no "then": backlog is compared only where it was measured.
    dated = [k for k in kpis if k.membership != "open"]

    def then(p: Period) -> Slice:
        return compute(store, dated, p, as_of=as_of, by=by, min_n=min_n)

    return Comparison(compute(store, kpis, period, as_of=as_of, by=by, min_n=min_n),
                      then(period.previous()), then(period.last_year()))
