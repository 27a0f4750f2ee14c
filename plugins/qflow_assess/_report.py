"""A period report as data: the figures, the slices, the charts' series, the problem
list and the scorecards. Renderers (terminal, CSV, XLSX, HTML) only lay it out."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import attrs

from qflow import Filter, IncidentQuery, IncidentState, Measure, Ruleset, Stage, Store
from qflow import events as ev
from qflow_assess._compute import Comparison, Plan, Slice, plan_slices, until_as_of
from qflow_assess._facts import FACTS
from qflow_assess._kpis import DEFINITIONS, KPI
from qflow_assess._periods import Period, parse_period
from qflow_assess._scores import Scorecard, scorecards

__all__ = ["STEPS", "Report", "build_report"]

#: Resolution-time histogram buckets, in business hours.
HISTOGRAM_HOURS = (1, 4, 8, 24, 72, 168)
SIX_M = ("man", "machine", "method", "material", "measurement", "environment")


@attrs.frozen
class ProblemLine:
    incident_id: str
    status: str  # resolved, in progress, pending
    stage: str
    category: str | None
    severity: str | None
    team: str | None
    owner: str | None
    reported_at: datetime
    due: datetime | None
    summary: str


@attrs.frozen
class Report:
    ruleset: str
    title: str
    period: Period
    as_of: datetime
    timezone: str
    kpis: tuple[KPI, ...]
    comparison: Comparison
    slices: tuple[Slice, ...]
    trend: tuple[Slice, ...]  # one per month, oldest first
    histogram: tuple[tuple[str, int], ...]  # (bucket label, incidents resolved)
    pareto: tuple[tuple[str, int], ...]  # (6M branch, incidents), most first
    recurrence_by_place: tuple[tuple[str, int, int], ...]  # (place, incidents, repeats), most repeats first
    problems: tuple[ProblemLine, ...]
    problem_counts: tuple[tuple[str, int], ...]
    scorecards: tuple[Scorecard, ...]
    min_n: int
    #: Slice dimension -> id -> the display name the ruleset gives it (teams,
    #: categories, severities), for the renderers people read.
    names: Mapping[str, Mapping[str, str]] = attrs.field(factory=dict)
    #: When the report was made; with ``as_of`` before it, what the facts keep no time
    #: of counts as it stood then, and every format says so (:meth:`undated`).
    made_at: datetime | None = None

    @property
    def past(self) -> bool:
        """The report is as of a time before it was made."""
        return self.made_at is not None and self.as_of < self.made_at

    def undated(self, kpi: KPI) -> tuple[str, ...]:
        """What *kpi*'s figures here count as it stood when the report was made, not as
        of its as-of time, for the facts keep no time of it (empty when not past)."""
        return kpi.undated if self.past else ()


def _histogram(store: Store, period: Period, as_of: datetime) -> tuple[tuple[str, int], ...]:
    where = (*until_as_of("resolved_at", period, as_of), Filter("rejected", "==", 0))
    edges = (0, *HISTOGRAM_HOURS, None)
    measures, labels = [], []
    for lo, hi in zip(edges, edges[1:], strict=False):
        conds = [Filter("resolve_bs", ">=", lo * 3600.0)]
        if hi is not None:
            conds.append(Filter("resolve_bs", "<", hi * 3600.0))
        measures.append(Measure("count", None, tuple(conds)))
        labels.append(f"{lo}-{hi}h" if hi is not None else f">{lo}h")
    row = store.aggregate(FACTS, measures=measures, where=where)[0]
    return tuple(zip(labels, (int(v or 0) for v in row), strict=True))


def _reported_in(period: Period, as_of: datetime) -> tuple[Filter, ...]:
    """The incidents reported in *period* by *as_of*, rejected ones left out."""
    return (*until_as_of("reported_at", period, as_of), Filter("rejected", "==", 0))


def _grouped_counts(store: Store, period: Period, as_of: datetime,
                    columns: Sequence[str]) -> list[list[tuple[Any, ...]]]:
    """Incidents, distinct fingerprints and incidents with a fingerprint (a known kind)
    per value of each of *columns* (one scan)."""
    where = _reported_in(period, as_of)
    return store.aggregate(FACTS, measures=[Measure("count"), Measure("count_distinct", "fingerprint"),
                                            Measure("count", "fingerprint")],
                           group_by=[(c,) for c in columns], where=where)


def _closed_then(store: Store, period: Period, as_of: datetime) -> tuple[int, int]:
    """Of the incidents reported in *period* by *as_of*: how many, and how many were closed
    then: closed by then and never reopened, or reopened and closed again (the last close
    is kept: one reopened after it, or still open after a reopening, counts as it stands)."""
    row = store.aggregate(FACTS, measures=[
        Measure("count"),
        Measure("count", None, (Filter("resolved_at", "<=", as_of.timestamp()), Filter("reopened", "==", 0))),
        Measure("count", None, (Filter("resolved_at", "<=", as_of.timestamp()), Filter("reopened", "==", 1),
                                Filter("closed_at", "not null"))),
    ], where=_reported_in(period, as_of))[0]
    return int(row[0] or 0), int(row[1] or 0) + int(row[2] or 0)


_STATUS = {Stage.CLOSED.value: "resolved", Stage.REPORTED.value: "pending",
           Stage.REOPENED.value: "pending"}


def _problems(store: Store, period: Period, limit: int, by_stage: Sequence[tuple[Any, ...]], *,
              as_of: datetime, closed_then: tuple[int, int] | None,
              ) -> tuple[tuple[ProblemLine, ...], tuple[tuple[str, int], ...]]:
    """The regular problem list: counts by status from the database (*by_stage*: the
    incidents of the period per stage), and the lines themselves (open ones first,
    oldest first) up to *limit*.

    As of a past time (*closed_then*: the incidents and how many were closed then), the
    lines are the incidents reported by then as they stood then (their logs read up to
    then), and the counts are resolved and open: the facts do not date the steps
    between, so pending and in progress are not told apart."""
    if closed_then is None:
        counts = {"resolved": 0, "in progress": 0, "pending": 0}
        for stage, n, *_ in by_stage:
            counts[_STATUS.get(stage, "in progress")] += int(n)
        until = period.end
    else:
        total, closed = closed_then
        counts = {"resolved": closed, "open": total - closed}
        until = min(period.end, as_of + timedelta(microseconds=1))
    open_states = store.query(IncidentQuery(reported_from=period.start, reported_until=until, open_only=True,
                                            limit=limit))
    done_states = store.query(IncidentQuery(reported_from=period.start, reported_until=until,
                                            stages=(Stage.CLOSED,), limit=limit))
    states: list[IncidentState] = [*open_states, *done_states]
    if closed_then is not None:
        # Each as it stood then: its log up to then (a report entered later, dated before
        # then, as it was entered).
        logs = [store.events(s.id) for s in states]
        states = [ev.fold([e for e in log if e.at <= as_of] or log[:1]) for log in logs]
    lines = []
    for s in states:
        d = s.decision
        due = d.resolve_by if d is not None else None
        owner = d.owner if d is not None else None
        open_actions = [a for a in s.actions if a.done_at is None and getattr(a.status, "value", a.status) != "cancelled"]
        if open_actions:
            first = min(open_actions, key=lambda a: a.due)
            owner, due = first.owner, first.due
        lines.append(ProblemLine(s.id, _STATUS.get(s.stage.value, "in progress"), s.stage.value,
                                 d.category if d else s.incident.category, d.severity if d else None,
                                 d.team if d else None, owner, s.incident.reported_at or s.updated_at, due,
                                 (s.incident.title or s.incident.description or "")[:80]))
    order = {"pending": 0, "in progress": 1, "resolved": 2}
    lines.sort(key=lambda p: (order[p.status], p.due is None, p.due or p.reported_at, p.incident_id))
    return tuple(lines[:limit]), tuple(counts.items())


#: What a report does, in order (the progress callback hears each as it is waited for).
STEPS = ("figures", "previous periods", "trend", "charts", "problem list", "scorecards")


def build_report(store: Store, ruleset: Ruleset, period_text: str, *, as_of: datetime, now: datetime,
                 dimensions: Sequence[str] = ("team", "category", "severity"), site_kpis: Sequence[KPI] = (),
                 problem_limit: int = 200, trend_months: int = 6,
                 progress: Callable[[str, int, int], None] | None = None, workers: int = 1) -> Report:
    """The report of *period_text* as of *as_of*, made at *now* (the clock's time): every
    figure as of *as_of* as far as the facts date it, and, with *as_of* before *now*,
    each figure that counts something they do not date says so (docs/kpis.md).

    Its figures are independent aggregates; with
    ``workers=2`` two threads compute them side by side (``qflow report`` does: a
    store that reads without holding Python's lock, like SQLite's, then uses two
    cores; the store must be safe to call from several threads, as qflow's are).
    *progress* is told ``(step, done, total)`` as each step of ``STEPS`` is waited
    for (``done`` of ``total`` finished), and ``("done", total, total)`` at the end."""
    from qflow_assess import settings  # the package imports this module

    conf = settings(ruleset)
    tzname = conf.timezone or ruleset.timezone
    tz = ZoneInfo(tzname)
    period = parse_period(period_text, tz, as_of)
    kpis = tuple(DEFINITIONS) + tuple(site_kpis)
    done = iter(range(len(STEPS) + 1))

    def step(what: str) -> None:
        if progress is not None:
            progress(what, next(done), len(STEPS))

    # What is open now has no "then": backlog is compared only where it was measured.
    dated = [k for k in kpis if k.membership != "open"]
    on_time = tuple(k for k in kpis if k.name in ("on_time_respond", "on_time_resolve", "csat"))
    months = []
    cursor = parse_period(f"{(period.end - timedelta(days=1)).astimezone(tz):%Y-%m}", tz, as_of)
    for _ in range(trend_months):
        months.append(cursor)
        cursor = cursor.previous()
    # Every aggregate of the figures, the comparisons and the trend is planned first,
    # the biggest first (the period's, with its slices), so that with two workers
    # neither waits for the other at the end.
    plans = [plan_slices(kpis, period, as_of=as_of, now=now, dims=dimensions, min_n=conf.min_n),
             *(plan_slices(dated, p, as_of=as_of, now=now, dims=(), min_n=conf.min_n)
               for p in (period.previous(), period.last_year())),
             *(plan_slices(on_time, m, as_of=as_of, now=now, dims=(), min_n=conf.min_n) for m in reversed(months))]
    past = as_of < now
    with ThreadPoolExecutor(max_workers=max(1, workers), thread_name_prefix="qflow-report") as pool:
        answers = [[pool.submit(job.run, store) for job in plan.jobs] for plan in plans]
        grouped = pool.submit(_grouped_counts, store, period, as_of, ("cause_branch", "place", "stage"))
        histogram = pool.submit(_histogram, store, period, as_of)
        closed_then = pool.submit(_closed_then, store, period, as_of) if past else None
        cards = (pool.submit(scorecards, store, ruleset, period, as_of=as_of, now=now, kpis=kpis)
                 if conf.scorecard else None)

        def finished(plan: Plan, futures: Sequence[Future[Any]]) -> list[Slice]:
            return plan.finish([f.result() for f in futures])

        step("figures")
        current, *slices = finished(plans[0], answers[0])
        step("previous periods")
        comparison = Comparison(current, *(finished(p, a)[0] for p, a in zip(plans[1:3], answers[1:3], strict=True)))
        step("trend")
        trend_slices = tuple(finished(p, a)[0] for p, a in zip(plans[3:], answers[3:], strict=True))
        step("charts")
        by_branch, by_place, by_stage = grouped.result()
        pareto_rows = [(b or "unknown", int(n)) for b, n, *_ in by_branch if b is not None]
        pareto_rows.sort(key=lambda r: (-r[1], SIX_M.index(r[0]) if r[0] in SIX_M else 99, r[0]))
        # repeats: the incidents of a known kind beyond the first of each kind
        places = [(p or "—", int(n), int(known) - int(distinct)) for p, n, distinct, known in by_place]
        places.sort(key=lambda r: (-r[2], -r[1], r[0]))
        step("problem list")
        problems, counts = _problems(store, period, problem_limit, by_stage, as_of=as_of,
                                     closed_then=closed_then.result() if closed_then is not None else None)
        step("scorecards")
        card_list = tuple(cards.result()) if cards is not None else ()
    step("done")
    return Report(ruleset.name, ruleset.description or ruleset.name, period, as_of, tzname, kpis, comparison,
                  tuple(slices), trend_slices, histogram.result(), tuple(pareto_rows), tuple(places[:15]),
                  problems, counts, card_list, conf.min_n, display_names(ruleset), now)


def display_names(ruleset: Ruleset) -> dict[str, dict[str, str]]:
    """The names teams, categories and severities are given in *ruleset*, by slice dimension."""
    out: dict[str, dict[str, str]] = {}
    for dim, section in (("team", "teams"), ("category", "categories"), ("severity", "severities")):
        named = {key: str(name) for key, value in (ruleset.sections.get(section) or {}).items()
                 if (name := getattr(value, "name", None))}
        if named:
            out[dim] = named
    return out
