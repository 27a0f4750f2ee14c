"""Fingerprints, recurrence counts and the metrics of a verification."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from qflow import IncidentQuery, IncidentState, Store, Verification, VerificationResult
from qflow.events import SURVEY_RECORDED
from qflow.model import MetricFigure
from qflow.store import Filter, Measure, Projection

from qflow_loop._spec import LoopSettings, MetricSpec

__all__ = ["figures_text", "fingerprint", "latest_done", "matches", "measure", "recurrences", "unknown"]

R = VerificationResult
_ORDER = {R.EFFECTIVE: 0, R.PARTIAL: 1, R.INEFFECTIVE: 2}


def _value(state: IncidentState, name: str) -> Any:
    inc = state.incident
    if name == "category":
        return (state.decision.category if state.decision else None) or inc.category
    if name == "cause":
        return next((c.code or c.summary for c in reversed(state.causes) if c.confirmed), None)
    if name == "customer":
        return inc.customer.id if inc.customer else None
    if name == "service":
        return inc.extra.get("service")
    if name.startswith("extra."):
        return inc.extra.get(name[6:])
    return getattr(inc, name)


def _known(value: Any) -> Any:
    """*value*, or None when it says nothing: no value, or blank text (as many senders
    write a field they have no value for)."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def fingerprint(state: IncidentState, fields: Sequence[str]) -> dict[str, Any]:
    """The incident's values of the fingerprint *fields* (None where it has none)."""
    return {f: _known(_value(state, f)) for f in fields}


def unknown(fp: Mapping[str, Any]) -> list[str]:
    """The fields of *fp* that decide the kind of anomaly but have no value. The cause
    is not among them: an unknown one rules nothing out (see :func:`matches`)."""
    return [name for name, value in fp.items() if value is None and name != "cause"]


def matches(other: IncidentState, fp: Mapping[str, Any]) -> bool:
    """Whether *other* is the same kind of anomaly. An unknown cause (not yet
    confirmed, on either side) cannot rule it out; a different confirmed one does.
    Any other unknown value makes no kind: an incident without a place is not "at the
    same place" as another without one, so it matches nothing and nothing matches it."""
    if other.stage.value == "rejected" or unknown(fp):
        return False
    for name, want in fp.items():
        have = _known(_value(other, name))
        if name == "cause" and (want is None or have is None):
            continue
        if have != want:
            return False
    return True


def recurrences(store: Store, fp: Mapping[str, Any], start: datetime, end: datetime) -> list[IncidentState]:
    """Incidents of the fingerprint reported in [start, end), not rejected (none when
    the fingerprint has an unknown value: see :func:`matches`)."""
    if unknown(fp):
        return []
    query = IncidentQuery(category=fp.get("category"), place=fp.get("place"), reported_from=start,
                          reported_until=end)
    return [s for s in store.query(query) if matches(s, fp)]


def latest_done(state: IncidentState) -> datetime | None:
    done = [a.done_at for a in state.actions if a.done_at is not None]
    return max(done) if done else None


def _satisfaction(store: Store, incidents: Sequence[IncidentState], start: datetime, end: datetime) -> float | None:
    scores = []
    for s in incidents:
        for e in store.events(s.id):
            if e.type == SURVEY_RECORDED and start <= e.at < end and isinstance(e.data.get("score"), (int, float)):
                scores.append(float(e.data["score"]))
    return sum(scores) / len(scores) if scores else None


def _kpi(store: Store, m: MetricSpec, fp: Mapping[str, Any], start: datetime, end: datetime) -> float | None:
    assert m.projection and m.column
    columns = {m.column: "real", m.time_column: "real", **{c: "text" for c in m.same}}
    projection = Projection(m.projection, tuple(columns.items()))
    where = [Filter(m.time_column, ">=", start.timestamp()), Filter(m.time_column, "<", end.timestamp())]
    where += [Filter(c, "==", fp.get(c)) for c in m.same]
    measure = Measure(m.fn, None if m.fn == "count" else m.column)
    rows = store.aggregate(projection, measures=[measure], where=where)
    value = rows[0][0] if rows else None
    return float(value) if value is not None else None


def _judge(m: MetricSpec, baseline: float | None, after: float | None) -> tuple[R | None, str | None]:
    if after is None or (m.on == "ratio" and baseline is None):
        return None, "no data in a window"
    if m.on == "ratio" and baseline == 0 and after == 0:
        # 0 -> 0 is no change measured, not a change to zero: typically windows too short
        # to hold even the incident being verified.
        return None, "0 in both windows, nothing to compare yet"
    if m.on == "ratio":
        if baseline == 0:
            value = 0.0 if after == 0 else math.inf
        else:
            value = after / baseline  # type: ignore[operator]
    else:
        value = after
    assert m.effective is not None and m.partial is not None
    lower = m.better == "lower"
    if (value <= m.effective) if lower else (value >= m.effective):
        result = R.EFFECTIVE
    elif (value <= m.partial) if lower else (value >= m.partial):
        result = R.PARTIAL
    else:
        result = R.INEFFECTIVE
    shown = "inf" if math.isinf(value) else f"{value:.2f}"
    return result, f"{m.on} {shown}; effective {'≤' if lower else '≥'} {m.effective:g}, partial {'≤' if lower else '≥'} {m.partial:g}"


def measure(state: IncidentState, store: Store, settings: LoopSettings, now: datetime,
            done: datetime | None = None) -> Verification:
    """Measure every configured metric: the window after runs from the last action
    done to *now* (at most the observation window), the baseline is as long and ends
    where it starts. Before the last action is done nothing is measured, and a metric
    with no data, or 0 in both windows of a ratio, judges nothing ("no data")."""
    done = done or latest_done(state) or now
    if now <= done:  # the window after has not begun: whatever it counted would be the future's
        figures = [MetricFigure(m.name, m.kind, None, None, None, "nothing observed after the last action yet")
                   for m in settings.metrics]
        return Verification(result=R.PARTIAL, at=now, verifier=None, method="measured", note=_NOT_YET,
                            figures=figures, baseline_from=done, measured_from=done, after_until=done)
    span = max(min(now - done, settings.spec.verification.observe), timedelta(seconds=1))
    start, end = done - span, done + span
    fp = fingerprint(state, settings.spec.fingerprint)
    missing = unknown(fp)
    kindless = (f"the incident has no {' or '.join(missing)}, which the fingerprint needs to count incidents of "
                "its kind; verify by hand") if missing else None
    before = recurrences(store, fp, start, done)
    after = recurrences(store, fp, done, end)
    figures = []
    for m in settings.metrics:
        if kindless is not None and m.kind in ("recurrence", "satisfaction"):
            figures.append(MetricFigure(m.name, m.kind, None, None, None, kindless))
            continue
        if m.kind == "recurrence":
            b, a = float(len(before)), float(len(after))
        elif m.kind == "satisfaction":
            b, a = _satisfaction(store, before, start, done), _satisfaction(store, after, done, end)
        else:
            b, a = _kpi(store, m, fp, start, done), _kpi(store, m, fp, done, end)
        result, note = _judge(m, b, a)
        figures.append(MetricFigure(m.name, m.kind, b, a, result, note))
    judged = [f.result for f in figures if f.result is not None]
    if judged:
        overall = max(judged, key=_ORDER.__getitem__)
        note = None
    else:
        overall, note = R.PARTIAL, kindless or _NOT_YET
    return Verification(result=overall, at=end, verifier=None, method="measured", note=note, figures=figures,
                        baseline_from=start, measured_from=done, after_until=end)


#: The note of a measured verification no metric could judge.
_NOT_YET = "not enough data yet: no metric had data in both windows; measure again later, or verify by hand"


def figures_text(verification: Verification) -> str:
    """``recurrence 3 → 4 (ineffective); satisfaction 4.1 → 3.8 (ineffective)``."""
    parts = [f"{f.metric} {_num(f.baseline)} → {_num(f.after)} ({f.result.value if f.result else 'no data'})"
             for f in verification.figures]
    parts += [f"{k}={v}" for k, v in verification.metrics.items()]
    return "; ".join(parts) or verification.result.value


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"
