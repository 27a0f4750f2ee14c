"""The facts every figure is computed from: one row per incident, derived from its log.

A row is rebuilt from the whole event log after every command and written in the
same transaction (``qflow_project``), so the figures never see an event the store
did not keep, and the same log gives the same row whatever order it arrived in.
Times are epoch seconds; period columns are in the organisation's time zone, so a
month is the month the people in it lived through, DST and all.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timezone, tzinfo
from typing import Any
from zoneinfo import ZoneInfo

from qflow import Event, IncidentState, Projection, Ruleset, Stage
from qflow import events as ev

__all__ = ["ACTIONS", "FACTS", "action_rows", "facts_row", "period_keys"]

_T, _I, _R = "text", "int", "real"
_ENDED = (Stage.CLOSED.value, Stage.REJECTED.value)
_RETARGET = (ev.DECISION_MADE, ev.SEVERITY_CHANGED)  # events that change a clock's target
#: The events that are the moment a clock measures (a close also stops respond and
#: acknowledge, but is neither an answer nor an acknowledgement).
_COUNTS = {"acknowledge": (ev.ACKNOWLEDGED,), "respond": (ev.RESPONDED,), "resolve": (ev.STAGE_CHANGED,)}

#: The projection behind every KPI (see docs/kpis.md for what each column means).
FACTS = Projection("incident_facts", (
    ("reported_at", _R), ("reported_day", _T), ("reported_month", _T), ("reported_quarter", _T),
    ("reported_year", _T),
    ("team", _T), ("owner", _T), ("category", _T), ("severity", _T), ("priority", _T), ("channel", _T),
    ("place", _T), ("fingerprint", _T),
    ("stage", _T), ("is_open", _I), ("rejected", _I),
    ("acknowledged_at", _R), ("ack_s", _R), ("ack_bs", _R),
    ("responded_at", _R), ("respond_s", _R), ("respond_bs", _R), ("respond_due", _R), ("respond_met", _I),
    ("resolved_at", _R), ("resolved_month", _T), ("resolved_quarter", _T), ("resolved_year", _T),
    ("resolve_s", _R), ("resolve_bs", _R), ("resolve_due", _R), ("resolve_met", _I), ("resolve_target_met", _I),
    ("closed_at", _R), ("reopens", _I), ("reopened", _I), ("reassigned", _I), ("reports", _I),
    ("responses", _I), ("fcr", _I),
    ("surveyed", _I), ("csat", _R), ("csat_satisfied", _I), ("nps", _I), ("promoter", _I), ("detractor", _I),
    ("actions", _I),
    ("verified", _I), ("verified_effective", _I), ("verification", _T),
    ("responsibility", _T), ("cause_branch", _T),
), doc="one row per incident: who, what, when, and how each commitment went")

#: One row per action (cancelled ones left out), for the action on-time rate.
ACTIONS = Projection("action_facts", (
    ("incident_id", _T), ("action_id", _T), ("kind", _T), ("owner", _T), ("team", _T), ("category", _T),
    ("severity", _T), ("channel", _T), ("place", _T),
    ("due", _R), ("due_month", _T), ("due_quarter", _T), ("due_year", _T), ("done_at", _R), ("on_time", _I),
), doc="one row per action: its owner, due date and when it was done")


def _fingerprint(values: Sequence[Any]) -> str | None:
    """The kind of anomaly (``billing|desk``), or None when one of its values is unknown
    (no value, or blank text): an incident without a place is not "at the same place"
    as another without one, so it is no kind at all, never a repeat and never repeated
    (the recurrence rate counts the incidents with a fingerprint)."""
    if any(v is None or (isinstance(v, str) and not v.strip()) for v in values):
        return None
    return "|".join(str(v) for v in values)


def period_keys(at: datetime, tz: tzinfo) -> tuple[str, str, str, str]:
    """Day, month, quarter and year of *at* as lived in *tz*."""
    local = at.astimezone(tz)
    day = (local.year, local.month, local.day)
    found = _PERIODS.get(day)
    if found is None:
        found = (local.strftime("%Y-%m-%d"), local.strftime("%Y-%m"),
                 f"{local.year}-Q{(local.month - 1) // 3 + 1}", str(local.year))
        if len(_PERIODS) < 100_000:  # a few centuries of days: never unbounded
            _PERIODS[day] = found
    return found


#: Local day -> its period keys (formatting dates costs more than the rest of a row).
_PERIODS: dict[tuple[int, int, int], tuple[str, str, str, str]] = {}


_UTC = timezone.utc


def _epoch(at: datetime | None) -> float | None:
    return at.timestamp() if at is not None else None


def _seconds(a: datetime | None, b: datetime | None) -> float | None:
    # In UTC, not b - a: two times with the same tzinfo (a clock in Europe/Berlin)
    # subtract as wall-clock times, an hour off across a DST change.
    return (b.astimezone(_UTC) - a.astimezone(_UTC)).total_seconds() if a is not None and b is not None else None


def facts_row(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, settings: Any) -> dict[str, Any]:
    """The facts of one incident, rebuilt from its whole log."""
    tz: tzinfo = ZoneInfo(settings.timezone or ruleset.timezone)
    inc, d = state.incident, state.decision
    reported = inc.reported_at or events[0].at
    day, month, quarter, year = period_keys(reported, tz)

    # A rejection that a reopening undid was a mistake, not an end: the figures read
    # the log without it (and without that reopening), so the guest's wait runs on to
    # the first real answer and close, and coming back from it is no reopening.
    events = _without_undone_rejections(events)
    # Where each clock's first run stopped: the first answer, the first acknowledgement,
    # the first close (or rejection, which ends every clock). A reopening starts a new
    # run of resolve; the figures count the first one, and the reopen rate the rest.
    stop: dict[str, int] = {}
    closed = None
    reopens = reassigned = responses = 0
    surveyed = False
    rated: Mapping[str, Any] | None = None  # the latest survey the customer gave a score in
    recommended: int | None = None  # the latest NPS answer the customer gave
    for i, e in enumerate(events):
        t = e.type
        if t == ev.RESPONDED:
            responses += 1
            stop.setdefault("respond", i)
        elif t == ev.ACKNOWLEDGED:
            stop.setdefault("acknowledge", i)
        elif t == ev.STAGE_CHANGED:
            to = e.data.get("to")
            if to in _ENDED:
                for clock in ("respond", "acknowledge", "resolve"):
                    stop.setdefault(clock, i)
                if to == _CLOSED_VALUE:
                    closed = e.at
            elif to == _REOPENED_VALUE:
                reopens += 1
                closed = None
        elif t == ev.REASSIGNED:
            reassigned += 1
        elif t == ev.SURVEY_RECORDED and not e.data.get("self_rated"):
            # Of each kind of answer the customer's latest counts: a later survey that asks
            # only the NPS question leaves the earlier score as it is, and the other way round.
            surveyed = True
            if e.data.get("score") is not None:
                rated = e.data
            if e.data.get("nps") is not None:
                recommended = e.data["nps"]

    row: dict[str, Any] = {
        "reported_at": reported.timestamp(), "reported_day": day, "reported_month": month,
        "reported_quarter": quarter, "reported_year": year,
        "team": d.team if d else None, "owner": d.owner if d else None,
        "category": d.category if d else inc.category, "severity": d.severity if d else None,
        "priority": d.priority if d else None, "channel": inc.channel, "place": inc.place,
        "stage": state.stage.value,
        "is_open": int(state.stage not in _FINISHED),
        "rejected": int(state.stage is _REJECTED),
        "closed_at": _epoch(closed), "reopens": reopens, "reopened": int(reopens > 0),
        "reassigned": int(reassigned > 0), "reports": state.reports, "responses": responses,
    }
    clocks = _clocks(state, events, ruleset, stop)
    for clock, at_name, s_name, bs_name, due_name, met_name in _MEASURED:
        i = stop.get(clock)
        # Stopped by a rejection is not an answer, an acknowledgement or a fix; stopped by a
        # close, the respond and acknowledge clocks are kept or broken, but nobody answered.
        stopped = events[i].at if i is not None and events[i].data.get("to") != _REJECTED_VALUE else None
        counted = stopped if stopped is not None and events[i].type in _COUNTS[clock] else None
        row[at_name] = _epoch(counted)
        # A report may arrive a little ahead of qflow's clock (intake.clock_skew): an
        # answer in those minutes came at once, not before the report.
        waited = _seconds(reported, counted)
        row[s_name] = max(waited, 0.0) if waited is not None else None
        business, due, met = clocks.get(clock, _NONE3)
        if business is None and counted is not None:
            # No committed time for this clock, so no SLA clock: still business time, on
            # the severity's calendar (calendar time only without the SLA plugin).
            business = _business_seconds(ruleset, d, reported, counted)
        row[bs_name] = (business if business is not None else row[s_name]) if counted else None
        if due_name is not None:
            if due is None and met is None:  # no SLA plugin: the decision's deadline
                found = d.deadline(clock) if d is not None else None
                due = found.due.timestamp() if found is not None else None
                met = int(stopped <= found.due) if found is not None and stopped is not None else None
            row[due_name], row[met_name] = due, met if stopped is not None else None
    row["fingerprint"] = _fingerprint([row.get(f) for f in settings.fingerprint])
    target = settings.resolve_target
    row["resolve_target_met"] = (int(row["resolve_bs"] <= target.total_seconds())
                                 if target is not None and row["resolve_bs"] is not None else row["resolve_met"])
    resolved = events[stop["resolve"]].at if row["resolved_at"] is not None else None
    if resolved is not None:
        _, row["resolved_month"], row["resolved_quarter"], row["resolved_year"] = period_keys(resolved, tz)
    else:
        row["resolved_month"] = row["resolved_quarter"] = row["resolved_year"] = None
    # First-contact resolution: resolved with one report, one answer, no hand-over and
    # no reopening. Not "closed within N minutes": speed is what respond_s measures.
    row["fcr"] = (int(reopens == 0 and reassigned == 0 and state.reports == 1 and responses <= 1)
                  if resolved is not None and not row["rejected"] else None)
    row["surveyed"] = int(surveyed)
    if rated is not None:
        row["csat"], row["csat_satisfied"] = _on_our_scale(rated["score"], rated.get("scale"), settings)
    else:
        row["csat"] = row["csat_satisfied"] = None
    row["nps"] = recommended
    row["promoter"] = int(recommended >= 9) if recommended is not None else None
    row["detractor"] = int(recommended <= 6) if recommended is not None else None
    row["actions"] = sum(1 for a in state.actions if _status(a) != "cancelled") if state.actions else 0
    row["responsibility"] = d.responsibility if d else None
    confirmed = [c for c in state.causes if getattr(c, "confirmed", False)] if state.causes else None
    cause = confirmed[-1] if confirmed else (state.causes[-1] if state.causes else None)
    row["cause_branch"] = getattr(cause, "branch", None) if cause is not None else None
    last = state.verifications[-1] if state.verifications else None
    row["verified"] = int(last is not None)
    row["verification"] = getattr(last.result, "value", None) if last is not None else None
    row["verified_effective"] = int(row["verification"] == "effective") if last is not None else None
    return row


def _on_our_scale(score: float, scale: int | None, settings: Any) -> tuple[float, int]:
    """A score of 1..*scale* on the ruleset's 1..``csat_scale``, and whether it is
    satisfied. The scales are mapped end to end, lowest on lowest and highest on
    highest: 8 of 10 is 1 + 7 x 4/9 = 4.11 of 5 (not 8/10 x 5 = 4.0, which would put
    1 of 10 at 0.5, below any score of 5). Satisfied is compared without rounding:
    (score - 1)(ours - 1) >= (satisfied - 1)(scale - 1)."""
    ours = settings.csat_scale
    scale = scale or ours
    mapped = float(score) if scale == ours else 1 + (score - 1) * (ours - 1) / (scale - 1)
    return mapped, int((score - 1) * (ours - 1) >= (settings.csat_satisfied - 1) * (scale - 1))


#: The clocks a row measures and their columns: the moment it stopped, seconds and
#: business seconds to it, and (but for acknowledge) when it was due and whether met.
_MEASURED = (("acknowledge", "acknowledged_at", "ack_s", "ack_bs", None, None),
             ("respond", "responded_at", "respond_s", "respond_bs", "respond_due", "respond_met"),
             ("resolve", "resolved_at", "resolve_s", "resolve_bs", "resolve_due", "resolve_met"))
_NONE3 = (None, None, None)
_FINISHED = (Stage.CLOSED, Stage.REJECTED)
_REJECTED = Stage.REJECTED
_REJECTED_VALUE, _CLOSED_VALUE, _REOPENED_VALUE = Stage.REJECTED.value, Stage.CLOSED.value, Stage.REOPENED.value


def _without_undone_rejections(events: Sequence[Event]) -> Sequence[Event]:
    """*events* less each rejection that a reopening followed, and that reopening."""
    undone: set[int] | None = None
    rejection = None
    for i, e in enumerate(events):
        if e.type == ev.STAGE_CHANGED:
            to = e.data.get("to")
            if to == _REJECTED_VALUE:
                rejection = i
            else:
                if to == _REOPENED_VALUE and rejection is not None:
                    undone = (undone or set()) | {rejection, i}
                rejection = None
    if undone is None:
        return events
    return tuple(e for i, e in enumerate(events) if i not in undone)


def _status(action: Any) -> str:
    return getattr(action.status, "value", action.status)


def action_rows(state: IncidentState, ruleset: Ruleset, settings: Any) -> list[dict[str, Any]]:
    tz: tzinfo = ZoneInfo(settings.timezone or ruleset.timezone)
    d = state.decision
    rows = []
    for a in state.actions:
        if _status(a) == "cancelled":
            continue
        _, month, quarter, year = period_keys(a.due, tz)
        rows.append({
            "incident_id": state.id, "action_id": a.id, "kind": getattr(a.kind, "value", a.kind), "owner": a.owner,
            "team": d.team if d else None, "category": d.category if d else None,
            "severity": d.severity if d else None, "channel": state.incident.channel, "place": state.incident.place,
            "due": a.due.timestamp(), "due_month": month, "due_quarter": quarter, "due_year": year,
            "done_at": _epoch(a.done_at), "on_time": int(a.done_at <= a.due) if a.done_at is not None else None,
        })
    return rows


_SLA: list[Any] = []  # the SLA plugin's clock_states, once looked up (None without the plugin)


def _sla_clock_states() -> Any:
    if not _SLA:
        try:
            from qflow_sla.clocks import clock_states  # the SLA plugin's public API
        except ImportError:
            clock_states = None
        _SLA.append(clock_states)
    return _SLA[0]


def _business_seconds(ruleset: Ruleset, decision: Any, start: datetime, end: datetime) -> float | None:
    """Business seconds from *start* to *end* on the calendar of the decision's severity
    (24x7 without one); None without the SLA plugin."""
    if _sla_clock_states() is None:
        return None
    from qflow_sla.clocks import business_calendar  # the SLA plugin's public API

    policies = ruleset.compiled("severities")
    severity = getattr(decision, "severity", None)
    found = policies.severities.get(severity) if policies is not None and severity is not None else None
    try:
        calendar = business_calendar(ruleset, found.calendar if found is not None else "24x7")
    except KeyError:
        return None
    return calendar.between(start, end).total_seconds()


def _clocks(state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
            stop: Mapping[str, int]) -> dict[str, tuple[float | None, float | None, int | None]]:
    """For acknowledge, respond and resolve: (business seconds used at the stop, the
    due time to count an open breach against, kept or not) from the SLA plugin's clocks,
    which know the calendars, the pauses and changed severities. Empty without it."""
    if len(events) <= 2 and not stop:
        return {}  # just reported: the decision's deadlines are the clocks (intake stays fast)
    clock_states = _sla_clock_states()
    if clock_states is None:
        return {}

    out: dict[str, tuple[float | None, float | None, int | None]] = {}
    # The whole log at its last event is the question the escalation plugin asks in the
    # same command, so the SLA plugin answers it once for both.
    now_states = clock_states(state, events, ruleset, events[-1].at)
    decided = retargeted = None  # read off the log when a clock stopped
    for clock in ("acknowledge", "respond", "resolve"):
        i = stop.get(clock)
        if i is not None:
            if retargeted is None:
                decided = any(e.type == ev.DECISION_MADE for e in events[:2])
                retargeted = max((k for k, e in enumerate(events) if e.type in _RETARGET), default=-1)
            found = now_states.get(clock)
            # A first run that stopped there, its target unchanged since: the whole
            # log's answer is the answer at the stop. Otherwise ask about the log then.
            if found is None or found.run != 1 or found.stopped_at != events[i].at or retargeted > i:
                prefix = events[: i + 1]
                # The clocks read the state only for a decision the log does not hold;
                # folding the prefix again would cost most of a command's time.
                then = state if decided else ev.fold(prefix)
                found = clock_states(then, prefix, ruleset, events[i].at).get(clock)
            if found is not None:
                due = found.breached_at or found.due
                # Stopped on the due moment is on time ("on or before"), although the SLA
                # plugin marks the target as reached then.
                met = int(found.breached_at is None or found.breached_at >= events[i].at)
                out[clock] = (found.elapsed.total_seconds(), _epoch(due), met)
            continue
        found = now_states.get(clock)
        if found is not None:
            # Still running: due is when it runs out (none while paused and not yet late).
            due = found.breached_at or (found.due if not found.paused else None)
            out[clock] = (None, _epoch(due), None)
    return out
