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


def F(column: str, op: str, value: Any = None) -> Filter:  # noqa: N802 - reads like the SQL it becomes
    return Filter(column, op, value)


NOT_REJECTED = F("rejected", "==", 0)


def _rate(name: str, num: str, den: str) -> Callable[[Values], Figure]:
    def value(v: Values) -> Figure:
        n, d = v[num] or 0, v[den] or 0
        return Figure(name, n / d if d else None, int(d), n, d)
    return value


def _duration(name: str, column: str) -> tuple[Callable[[float], dict[str, Measure]], Callable[[Values], Figure]]:
    """Mean, median and P90 of a duration, in business (``_bs``) and calendar (``_s``) time."""
    def measures(_as_of: float) -> dict[str, Measure]:
        out = {}
        for kind in ("s", "bs"):
            col = f"{column}_{kind}"
            for fn in ("count", "avg", "median", "p90"):
                out[f"{fn}_{kind}"] = Measure(fn, col, (NOT_REJECTED,))
        return out

    def value(v: Values) -> Figure:
        return Figure(name, v["median_bs"], int(v["count_bs"] or 0), extra={
            "mean": v["avg_bs"], "median": v["median_bs"], "p90": v["p90_bs"],
            "mean_calendar": v["avg_s"], "median_calendar": v["median_s"], "p90_calendar": v["p90_s"],
        })
    return measures, value


def _on_time(name: str, clock: str) -> tuple[Callable[[float], dict[str, Measure]], Callable[[Values], Figure]]:
    met, due = f"{clock}_met", f"{clock}_due"

    def measures(as_of: float) -> dict[str, Measure]:
        return {
            "kept": Measure("count", None, (NOT_REJECTED, F(met, "==", 1))),
            "decided": Measure("count", met, (NOT_REJECTED,)),
            # Still running (not kept, not broken yet) past its due time: broken, and counted
            # (Frappe and Zammad drop these). A close stops respond without an answer.
            "open_breached": Measure("count", None, (NOT_REJECTED, F(met, "is null"), F(due, "<", as_of))),
        }

    def value(v: Values) -> Figure:
        den = (v["decided"] or 0) + (v["open_breached"] or 0)
        return Figure(name, v["kept"] / den if den else None, int(den), v["kept"], den,
                      extra={"open_breached": v["open_breached"]})
    return measures, value


def _m(**measures: Measure) -> Callable[[float], dict[str, Measure]]:
    return lambda _as_of: measures


_ack_m, _ack_v = _duration("time_to_acknowledge", "ack")
_resp_m, _resp_v = _duration("first_response_time", "respond")
_res_m, _res_v = _duration("time_to_resolve", "resolve")
_otr_m, _otr_v = _on_time("on_time_respond", "respond")
_otv_m, _otv_v = _on_time("on_time_resolve", "resolve")


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


def _backlog_m(as_of: float) -> dict[str, Measure]:
    day = 86400.0
    out = {"open": Measure("count", None, (F("is_open", "==", 1),))}
    for label, lo, hi in (("0-1d", 0, 1), ("1-3d", 1, 3), ("3-7d", 3, 7), ("7-30d", 7, 30), (">30d", 30, None)):
        conds = [F("is_open", "==", 1), F("reported_at", "<=", as_of - lo * day)]
        if hi is not None:
            conds.append(F("reported_at", ">", as_of - hi * day))
        out[f"age {label}"] = Measure("count", None, tuple(conds))
    return out


def _backlog_v(v: Values) -> Figure:
    return Figure("backlog", v["open"], int(v["open"] or 0),
                  extra={k: v[k] for k in v if k.startswith("age ")})


DEFINITIONS: tuple[KPI, ...] = (
    KPI("first_response_time", "First response time", "首次响应时间", "duration",
        "time from report to the first answer to the customer (Responded)", "incidents answered",
        "report", _resp_m, _resp_v, higher_is_better=False),
    KPI("time_to_acknowledge", "Time to acknowledge", "受理时间", "duration",
        "time from report to acknowledgement (Acknowledged)", "incidents acknowledged",
        "report", _ack_m, _ack_v, higher_is_better=False),
    KPI("time_to_resolve", "Time to resolve", "解决时间", "duration",
        "time from report to the first close (the resolve clock's first run; pauses excluded in business time)", "incidents resolved in the period",
        "resolved", _res_m, _res_v, higher_is_better=False),
    KPI("resolution_rate", "Resolution rate", "解决率", "rate",
        "incidents of the cohort resolved by the report date", "incidents reported in the period, rejected excluded",
        "report", lambda as_of: {"resolved": Measure("count", None, (NOT_REJECTED, F("resolved_at", "<=", as_of))),
                                 "cohort": Measure("count", None, (NOT_REJECTED,))},
        _rate("resolution_rate", "resolved", "cohort")),
    KPI("resolution_within_target", "Resolved within target", "按时解决率", "rate",
        "incidents of the cohort resolved within the resolve commitment",
        "incidents reported in the period, rejected excluded",
        "report", lambda as_of: {
            "kept": Measure("count", None, (NOT_REJECTED, F("resolve_target_met", "==", 1),
                                            F("resolved_at", "<=", as_of))),
            "cohort": Measure("count", None, (NOT_REJECTED,))},
        _rate("resolution_within_target", "kept", "cohort")),
    KPI("on_time_respond", "On-time rate: respond", "响应及时率", "rate",
        "respond clocks stopped on or before their due time",
        "respond clocks stopped, plus those still running past their due time (open breaches stay in)",
        "report", _otr_m, _otr_v),
    KPI("on_time_resolve", "On-time rate: resolve", "解决及时率", "rate",
        "resolve clocks stopped on or before their due time",
        "resolve clocks stopped, plus those still running past their due time (open breaches stay in)",
        "report", _otv_m, _otv_v),
    KPI("first_contact_resolution", "First-contact resolution", "首次解决率", "rate",
        "resolved incidents with one report, at most one answer, no reassignment and no reopening",
        "resolved incidents, rejected excluded", "report",
        _m(fcr=Measure("count", None, (F("fcr", "==", 1),)), resolved=Measure("count", "fcr")),
        _rate("first_contact_resolution", "fcr", "resolved")),
    KPI("reopen_rate", "Reopen rate", "重开率", "rate",
        "resolved incidents reopened at least once", "resolved incidents, rejected excluded", "report",
        _m(reopened=Measure("count", None, (NOT_REJECTED, F("reopened", "==", 1), F("resolved_at", "not null"))),
           resolved=Measure("count", "resolved_at", (NOT_REJECTED,))),
        _rate("reopen_rate", "reopened", "resolved"), higher_is_better=False),
    KPI("recurrence_rate", "Recurrence rate", "再发率", "rate",
        "incidents whose fingerprint (category and place by default) an earlier incident of the period had",
        "incidents reported in the period with every fingerprint value known, rejected excluded", "report",
        _m(incidents=Measure("count", "fingerprint", (NOT_REJECTED,)),
           fingerprints=Measure("count_distinct", "fingerprint", (NOT_REJECTED,))),
        _recurrence, higher_is_better=False),
    KPI("csat", "Customer satisfaction (CSAT)", "客户满意度", "rate",
        "surveys with a score at or above the satisfied mark", "surveys answered by the customer "
        "(self-rated surveys and rejected reports excluded); response rate = resolved incidents surveyed / "
        "resolved incidents", "report",
        # A rejected report is out of the service figures, its survey too (docs/kpis.md).
        _m(satisfied=Measure("count", None, (NOT_REJECTED, F("csat_satisfied", "==", 1))),
           rated=Measure("count", "csat_satisfied", (NOT_REJECTED,)),
           mean_score=Measure("avg", "csat", (NOT_REJECTED,)),
           surveyed=Measure("count", None, (NOT_REJECTED, F("surveyed", "==", 1))),
           # A survey of an incident not yet resolved counts as a response, not towards the rate:
           # the rate is of resolved incidents, so it stays within 0 and 1.
           surveyed_resolved=Measure("count", "resolved_at", (NOT_REJECTED, F("surveyed", "==", 1))),
           resolved=Measure("count", "resolved_at", (NOT_REJECTED,))),
        _csat),
    KPI("nps", "Net promoter score", "净推荐值", "score",
        "promoters (9-10) minus detractors (0-6), times 100", "surveys with a 0-10 answer, rejected reports excluded",
        "report",
        _m(promoters=Measure("count", None, (NOT_REJECTED, F("promoter", "==", 1))),
           detractors=Measure("count", None, (NOT_REJECTED, F("detractor", "==", 1))),
           answered=Measure("count", "nps", (NOT_REJECTED,))),
        _nps),
    KPI("action_on_time", "Action on-time rate", "措施按时完成率", "rate",
        "actions done on or before their due date, of the actions due in the period",
        "actions due in the period that are done, plus those still open past their due date "
        "(cancelled actions excluded)", "due",
        lambda as_of: {
            "on_time": Measure("count", None, (F("on_time", "==", 1),)),
            "done": Measure("count", "done_at"),
            "overdue": Measure("count", None, (F("done_at", "is null"), F("due", "<", as_of))),
        },
        lambda v: Figure("action_on_time",
                         v["on_time"] / (v["done"] + v["overdue"]) if v["done"] + v["overdue"] else None,
                         int(v["done"] + v["overdue"]), v["on_time"], v["done"] + v["overdue"],
                         extra={"overdue": v["overdue"]}),
        projection="action_facts"),
    KPI("verification_effectiveness", "Verification effectiveness", "验证有效率", "rate",
        "incidents whose last verification was effective", "incidents verified", "report",
        _m(effective=Measure("count", None, (F("verified_effective", "==", 1),)),
           verified=Measure("count", None, (F("verified", "==", 1),))),
        _rate("verification_effectiveness", "effective", "verified")),
    KPI("backlog", "Backlog and ageing", "积压与账龄", "count",
        "incidents open now, by age since report", "—", "open", _backlog_m, _backlog_v,
        higher_is_better=False),
)
