"""The KPI definitions: what each figure counts, over which incidents, and how.

Each KPI names the measures it needs over the facts projection; a slice (a period, and
optionally a dimension to group by) runs every measure of every KPI in one aggregate
query per membership, so a quarterly report is a handful of queries, not one per
figure. The written definitions are in docs/kpis.md; ``DEFINITIONS`` is what a test
keeps in step with that page.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import attrs

from qflow import Filter, Measure

__all__ = ["DEFINITIONS", "KPI", "Figure", "Values"]

Values = Mapping[str, Any]


@attrs.frozen
class Figure:
    """One computed figure, with what it was computed from."""

    kpi: str
    value: float | None
    n: int  # data points behind the value
    numerator: float | None = None
    denominator: float | None = None
    extra: Mapping[str, Any] = attrs.field(factory=dict)  # median, p90, business/calendar …
    low_confidence: bool = False


@attrs.frozen
class KPI:
    """A figure with an exact definition. ``membership`` says which incidents a period
    holds: ``report`` (reported in it) or ``resolved`` (resolved in it)."""

    name: str
    title: str
    title_zh: str
    unit: str  # rate, duration, score, count
    numerator: str
    denominator: str
    membership: str
    measures: Callable[[float], Mapping[str, Measure]]  # as_of (epoch) -> named measures
    value: Callable[[Values], Figure]
    version: int = 1
    higher_is_better: bool = True
    projection: str = "incident_facts"
    #: What the figure counts that the facts keep no time of (keys of ``UNDATED``): in a
    #: report as of an earlier time it counts as it stood when the report was made, and
    #: every format says so. A site metric names its own.
    undated: tuple[str, ...] = ()


#: What the facts keep no time of, so that a report as of an earlier time counts it as
#: it stands when the report is made (docs/kpis.md). They date the report, the first
#: acknowledgement, answer and close, the last close, and an action's due and done times.
UNDATED = ("rejections", "reopenings", "contacts", "surveys", "verifications", "actions")


def F(column: str, op: str, value: Any = None) -> Filter:  # noqa: N802 - reads like the SQL it becomes
    return Filter(column, op, value)


NOT_REJECTED = F("rejected", "==", 0)


def _rate(name: str, num: str, den: str) -> Callable[[Values], Figure]:
    def value(v: Values) -> Figure:
        n, d = v[num] or 0, v[den] or 0
        return Figure(name, n / d if d else None, int(d), n, d)
    return value


def _duration(name: str, column: str,
              at: str) -> tuple[Callable[[float], dict[str, Measure]], Callable[[Values], Figure]]:
    """Mean, median and P90 of a duration, in business (``_bs``) and calendar (``_s``) time,
    of the clocks stopped (at the moment *at*) by the as-of time."""
    def measures(as_of: float) -> dict[str, Measure]:
        out = {}
        for kind in ("s", "bs"):
            col = f"{column}_{kind}"
            for fn in ("count", "avg", "median", "p90"):
                out[f"{fn}_{kind}"] = Measure(fn, col, (NOT_REJECTED, F(at, "<=", as_of)))
        return out

    def value(v: Values) -> Figure:
        return Figure(name, v["median_bs"], int(v["count_bs"] or 0), extra={
            "mean": v["avg_bs"], "median": v["median_bs"], "p90": v["p90_bs"],
            "mean_calendar": v["avg_s"], "median_calendar": v["median_s"], "p90_calendar": v["p90_s"],
        })
    return measures, value


def _on_time(name: str, clock: str,
             stops: tuple[str, ...]) -> tuple[Callable[[float], dict[str, Measure]], Callable[[Values], Figure]]:
    """Kept of decided, open breaches counted. *stops* are the columns of the moments that
    stop the clock, in the order they can: the first of them that is there is when it
    stopped (respond stops at the answer, or at the first close when there was none).
    A clock that stopped after the as-of time was still running then."""
    met, due = f"{clock}_met", f"{clock}_due"

    def measures(as_of: float) -> dict[str, Measure]:
        out = {}
        for k, at in enumerate(stops):
            first = (*(F(c, "is null") for c in stops[:k]), F(at, "not null"))  # it stopped at *at*
            out[f"kept {k}"] = Measure("count", None, (NOT_REJECTED, F(met, "==", 1), *first, F(at, "<=", as_of)))
            out[f"decided {k}"] = Measure("count", met, (NOT_REJECTED, *first, F(at, "<=", as_of)))
            # Stopped later, but already past its due time then: an open breach as of then.
            out[f"later {k}"] = Measure("count", None, (NOT_REJECTED, F(met, "not null"), *first, F(at, ">", as_of),
                                                       F(due, "<", as_of)))
        # Still running (not kept, not broken yet) past its due time: broken, and counted
        # (Frappe and Zammad drop these). A close stops respond without an answer.
        out["running"] = Measure("count", None, (NOT_REJECTED, F(met, "is null"), F(due, "<", as_of)))
        return out

    def value(v: Values) -> Figure:
        kept = sum(v[f"kept {k}"] or 0 for k in range(len(stops)))
        decided = sum(v[f"decided {k}"] or 0 for k in range(len(stops)))
        breached = (v["running"] or 0) + sum(v[f"later {k}"] or 0 for k in range(len(stops)))
        den = decided + breached
        return Figure(name, kept / den if den else None, int(den), kept, den, extra={"open_breached": breached})
    return measures, value


def _m(**measures: Measure) -> Callable[[float], dict[str, Measure]]:
    return lambda _as_of: measures


_ack_m, _ack_v = _duration("time_to_acknowledge", "ack", "acknowledged_at")
_resp_m, _resp_v = _duration("first_response_time", "respond", "responded_at")
_res_m, _res_v = _duration("time_to_resolve", "resolve", "resolved_at")
_otr_m, _otr_v = _on_time("on_time_respond", "respond", ("responded_at", "resolved_at"))
_otv_m, _otv_v = _on_time("on_time_resolve", "resolve", ("resolved_at",))


def _recurrence(v: Values) -> Figure:
    n, distinct = v["incidents"] or 0, v["fingerprints"] or 0
    return Figure("recurrence_rate", (n - distinct) / n if n else None, int(n), n - distinct, n)


def _csat(v: Values) -> Figure:
    rated, satisfied, resolved = v["rated"] or 0, v["satisfied"] or 0, v["resolved"] or 0
    return Figure("csat", satisfied / rated if rated else None, int(rated), satisfied, rated, extra={
        "mean_score": v["mean_score"], "responses": v["surveyed"],
        "response_rate": (v["surveyed_resolved"] or 0) / resolved if resolved else None})


def _nps(v: Values) -> Figure:
    answered = v["answered"] or 0
    score = 100 * ((v["promoters"] or 0) - (v["detractors"] or 0)) / answered if answered else None
    return Figure("nps", score, int(answered), (v["promoters"] or 0) - (v["detractors"] or 0), answered,
                  extra={"promoters": v["promoters"], "detractors": v["detractors"]})


def _action_on_time(v: Values) -> Figure:
    on_time, done = v["on_time"] or 0, v["done"] or 0
    overdue = (v["open"] or 0) + (v["later"] or 0)
    den = done + overdue
    return Figure("action_on_time", on_time / den if den else None, int(den), on_time, den,
                  extra={"overdue": overdue})


_AGES = (("0-1d", 0, 1), ("1-3d", 1, 3), ("3-7d", 3, 7), ("7-30d", 7, 30), (">30d", 30, None))
_OPEN_THEN = ("never closed", "closed later", "reopened")


def _open_then(as_of: float, *more: Filter) -> dict[str, Measure]:
    """The incidents open at *as_of*, whatever they are now, in three parts: never closed,
    first closed after it, or reopened and not closed again since. When a reopening came
    is not kept, so one reopened after a close before *as_of* counts as it stands now
    (docs/kpis.md). Rejected ones are out, as everywhere."""
    return dict(zip(_OPEN_THEN, (
        Measure("count", None, (NOT_REJECTED, F("resolved_at", "is null"), *more)),
        Measure("count", None, (NOT_REJECTED, F("resolved_at", ">", as_of), *more)),
        Measure("count", None, (NOT_REJECTED, F("reopened", "==", 1), F("resolved_at", "<=", as_of),
                                F("closed_at", "is null"), *more)),
    ), strict=True))


def _backlog_m(as_of: float) -> dict[str, Measure]:
    day = 86400.0
    out = {f"open, {part}": m for part, m in _open_then(as_of, F("reported_at", "<=", as_of)).items()}
    for label, lo, hi in _AGES:
        conds = [F("reported_at", "<=", as_of - lo * day)]
        if hi is not None:
            conds.append(F("reported_at", ">", as_of - hi * day))
        out.update({f"age {label}, {part}": m for part, m in _open_then(as_of, *conds).items()})
    return out


def _backlog_v(v: Values) -> Figure:
    def total(name: str) -> int:
        return sum(int(v[f"{name}, {part}"] or 0) for part in _OPEN_THEN)

    n = total("open")
    return Figure("backlog", n, n, extra={f"age {label}": total(f"age {label}") for label, _, _ in _AGES})


DEFINITIONS: tuple[KPI, ...] = (
    KPI("first_response_time", "First response time", "首次响应时间", "duration",
        "time from report to the first answer to the customer (Responded)", "incidents answered",
        "report", _resp_m, _resp_v, higher_is_better=False,
        undated=("rejections",)),
    KPI("time_to_acknowledge", "Time to acknowledge", "受理时间", "duration",
        "time from report to acknowledgement (Acknowledged)", "incidents acknowledged",
        "report", _ack_m, _ack_v, higher_is_better=False,
        undated=("rejections",)),
    KPI("time_to_resolve", "Time to resolve", "解决时间", "duration",
        "time from report to the first close (the resolve clock's first run; pauses excluded in business time)", "incidents resolved in the period",
        "resolved", _res_m, _res_v, higher_is_better=False,
        undated=("rejections",)),
    KPI("resolution_rate", "Resolution rate", "解决率", "rate",
        "incidents of the cohort resolved by the report date", "incidents reported in the period, rejected excluded",
        "report", lambda as_of: {"resolved": Measure("count", None, (NOT_REJECTED, F("resolved_at", "<=", as_of))),
                                 "cohort": Measure("count", None, (NOT_REJECTED,))},
        _rate("resolution_rate", "resolved", "cohort"),
        undated=("rejections",)),
    KPI("resolution_within_target", "Resolved within target", "按时解决率", "rate",
        "incidents of the cohort resolved within the resolve commitment",
        "incidents reported in the period, rejected excluded",
        "report", lambda as_of: {
            "kept": Measure("count", None, (NOT_REJECTED, F("resolve_target_met", "==", 1),
                                            F("resolved_at", "<=", as_of))),
            "cohort": Measure("count", None, (NOT_REJECTED,))},
        _rate("resolution_within_target", "kept", "cohort"),
        undated=("rejections",)),
    KPI("on_time_respond", "On-time rate: respond", "响应及时率", "rate",
        "respond clocks stopped on or before their due time",
        "respond clocks stopped, plus those still running past their due time (open breaches stay in)",
        "report", _otr_m, _otr_v,
        undated=("rejections",)),
    KPI("on_time_resolve", "On-time rate: resolve", "解决及时率", "rate",
        "resolve clocks stopped on or before their due time",
        "resolve clocks stopped, plus those still running past their due time (open breaches stay in)",
        "report", _otv_m, _otv_v,
        undated=("rejections",)),
    KPI("first_contact_resolution", "First-contact resolution", "首次解决率", "rate",
        "resolved incidents with one report, at most one answer, no reassignment and no reopening",
        "resolved incidents, rejected excluded", "report",
        lambda as_of: {"fcr": Measure("count", None, (F("fcr", "==", 1), F("resolved_at", "<=", as_of))),
                       "resolved": Measure("count", "fcr", (F("resolved_at", "<=", as_of),))},
        _rate("first_contact_resolution", "fcr", "resolved"),
        undated=("rejections", "reopenings", "contacts")),
    KPI("reopen_rate", "Reopen rate", "重开率", "rate",
        "resolved incidents reopened at least once", "resolved incidents, rejected excluded", "report",
        lambda as_of: {
            "reopened": Measure("count", None, (NOT_REJECTED, F("reopened", "==", 1), F("resolved_at", "<=", as_of))),
            "resolved": Measure("count", None, (NOT_REJECTED, F("resolved_at", "<=", as_of)))},
        _rate("reopen_rate", "reopened", "resolved"), higher_is_better=False,
        undated=("rejections", "reopenings")),
    KPI("recurrence_rate", "Recurrence rate", "再发率", "rate",
        "incidents whose fingerprint (category and place by default) an earlier incident of the period had",
        "incidents reported in the period with every fingerprint value known, rejected excluded", "report",
        _m(incidents=Measure("count", "fingerprint", (NOT_REJECTED,)),
           fingerprints=Measure("count_distinct", "fingerprint", (NOT_REJECTED,))),
        _recurrence, higher_is_better=False,
        undated=("rejections",)),
    KPI("csat", "Customer satisfaction (CSAT)", "客户满意度", "rate",
        "incidents whose score is at or above the satisfied mark (other scales mapped end to end)",
        "incidents with a score the customer gave, the latest per incident (self-rated surveys and rejected "
        "reports excluded); response rate = resolved incidents surveyed / resolved incidents", "report",
        # A rejected report is out of the service figures, its survey too (docs/kpis.md).
        lambda as_of: {
            "satisfied": Measure("count", None, (NOT_REJECTED, F("csat_satisfied", "==", 1))),
            "rated": Measure("count", "csat_satisfied", (NOT_REJECTED,)),
            "mean_score": Measure("avg", "csat", (NOT_REJECTED,)),
            "surveyed": Measure("count", None, (NOT_REJECTED, F("surveyed", "==", 1))),
            # A survey of an incident not yet resolved counts as a response, not towards the rate:
            # the rate is of resolved incidents, so it stays within 0 and 1.
            "surveyed_resolved": Measure("count", None, (NOT_REJECTED, F("surveyed", "==", 1),
                                                         F("resolved_at", "<=", as_of))),
            "resolved": Measure("count", None, (NOT_REJECTED, F("resolved_at", "<=", as_of)))},
        _csat, version=2,
        undated=("rejections", "surveys")),
    KPI("nps", "Net promoter score", "净推荐值", "score",
        "promoters (9-10) minus detractors (0-6), times 100",
        "incidents with a 0-10 answer the customer gave, the latest per incident (rejected reports excluded)",
        "report",
        _m(promoters=Measure("count", None, (NOT_REJECTED, F("promoter", "==", 1))),
           detractors=Measure("count", None, (NOT_REJECTED, F("detractor", "==", 1))),
           answered=Measure("count", "nps", (NOT_REJECTED,))),
        _nps, version=2,
        undated=("rejections", "surveys")),
    KPI("action_on_time", "Action on-time rate", "措施按时完成率", "rate",
        "actions done on or before their due date, of the actions due in the period",
        "actions due in the period that are done, plus those still open past their due date "
        "(cancelled actions excluded)", "due",
        lambda as_of: {
            "on_time": Measure("count", None, (F("on_time", "==", 1), F("done_at", "<=", as_of))),
            "done": Measure("count", None, (F("done_at", "<=", as_of),)),
            # not done by the as-of time (not yet, or done later) and past its due date then
            "open": Measure("count", None, (F("done_at", "is null"), F("due", "<", as_of))),
            "later": Measure("count", None, (F("done_at", ">", as_of), F("due", "<", as_of))),
        },
        _action_on_time, projection="action_facts",
        undated=("actions",)),
    KPI("verification_effectiveness", "Verification effectiveness", "验证有效率", "rate",
        "incidents whose last verification was effective", "incidents verified", "report",
        _m(effective=Measure("count", None, (F("verified_effective", "==", 1),)),
           verified=Measure("count", None, (F("verified", "==", 1),))),
        _rate("verification_effectiveness", "effective", "verified"),
        undated=("verifications",)),
    KPI("backlog", "Backlog and ageing", "积压与账龄", "count",
        "incidents open at the report's as-of time, by age since report", "—", "open", _backlog_m, _backlog_v,
        higher_is_better=False,
        undated=("rejections", "reopenings")),
)
