"""States, decisions and events built straight from the plain JSON shapes qflow writes.

Structuring through cattrs's generated functions (with their per-field error
collection) costs more than the rest of reading an incident. The shapes the stores
write (SQLite's short state rows, PostgreSQL's whole unstructured bodies, either's
events) are built here directly, with the converter's own checks and parsers, so the
values are the same. Anything unexpected (an unknown key, a type the hooks would
refuse or convert) raises :class:`Unusual`, and the caller hands the data to cattrs,
which builds it or says exactly what is wrong, as before.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from qflow._convert import make_converter, parse_duration, parse_time
from qflow._frozen import FrozenDict
from qflow.model import Action, Cause, Deadline, Decision, Event, Incident, IncidentState, Stage, Trace, Verification

__all__ = ["Unusual", "plain_decision", "plain_event", "plain_state"]


class Unusual(Exception):
    """Data the direct path leaves to cattrs."""


_CONV = make_converter()
_structure = _CONV.structure
_STAGES = {s.value: s for s in Stage}
_DURATIONS: dict[str, timedelta] = {}  # the few budgets a ruleset has, parsed once
_NO_TRACE = Trace(())
_NO_DATA = FrozenDict()


def _time_or_none(value: Any) -> datetime | None:
    if value is None:
        return None
    if value.__class__ is not str:
        raise Unusual
    return parse_time(value)


def _text_or_none(value: Any) -> Any:
    if value is not None and value.__class__ is not str:
        raise Unusual
    return value


def _texts(value: Any) -> tuple[str, ...]:
    if value.__class__ is not list:
        raise Unusual
    for v in value:
        if v.__class__ is not str:
            raise Unusual
    return tuple(value)


def _duration(value: Any) -> timedelta:
    if value.__class__ is not str:
        raise Unusual
    out = _DURATIONS.get(value)
    if out is None:
        out = parse_duration(value)
        if len(_DURATIONS) < 1024:
            _DURATIONS[value] = out
    return out


_DEADLINE_KEYS = frozenset(("clock", "start", "due", "business", "calendar", "warnings"))


def _deadline(data: Any) -> Deadline:
    if data.__class__ is not dict or not _DEADLINE_KEYS.issuperset(data):
        raise Unusual
    clock, calendar = data["clock"], data.get("calendar", "24x7")
    if clock.__class__ is not str or calendar.__class__ is not str:
        raise Unusual
    start, due = data["start"], data["due"]
    if start.__class__ is not str or due.__class__ is not str:
        raise Unusual
    warnings = data.get("warnings")
    return Deadline(clock, parse_time(start), parse_time(due), _duration(data["business"]), calendar,
                    () if warnings is None else _texts(warnings))


_DECISION_TEXT = ("category", "severity", "priority", "team", "owner", "responsibility")
_DECISION_KEYS = frozenset(("incident_id", "decided_at", "ruleset", "deadlines", "matched", "sources", "trace",
                            *_DECISION_TEXT))


def plain_decision(data: Any) -> Decision:
    """A Decision from its unstructured data (a DecisionMade event's, a state's)."""
    if data.__class__ is not dict or not _DECISION_KEYS.issuperset(data):
        raise Unusual
    ruleset, decided_at = data["ruleset"], data["decided_at"]
    if ruleset.__class__ is not str or decided_at.__class__ is not str:
        raise Unusual
    kw: dict[str, Any] = {name: _text_or_none(data[name]) for name in _DECISION_TEXT if name in data}
    if "deadlines" in data:
        deadlines = data["deadlines"]
        if deadlines.__class__ is not list:
            raise Unusual
        kw["deadlines"] = tuple(map(_deadline, deadlines))
    if "matched" in data:
        kw["matched"] = _texts(data["matched"])
    if "sources" in data:
        sources = data["sources"]
        if sources.__class__ is not dict:
            raise Unusual
        kw["sources"] = FrozenDict(sources)
    if "trace" in data:
        trace = data["trace"]
        kw["trace"] = _NO_TRACE if trace == [] else _structure(trace, Trace)
    return Decision(_text_or_none(data["incident_id"]), parse_time(decided_at), ruleset, **kw)


_LISTS = {"causes": tuple[Cause, ...], "actions": tuple[Action, ...], "verifications": tuple[Verification, ...]}
_STATE_TEXT = ("rejected_reason", "status", "problem")
_STATE_TIMES = ("acknowledged_at", "responded_at")
_STATE_KEYS = frozenset(("updated_at", "decision", "reports", "incident", "stage", "seq", *_LISTS, *_STATE_TEXT,
                         *_STATE_TIMES))


def plain_state(data: dict[str, Any], incident: Any, stage: str, seq: int, decision: Any) -> IncidentState:
    """An IncidentState from its unstructured *data*, with the *incident* and the
    *decision* (None: the one in *data*, if any) as unstructured data, and *stage* and
    *seq* given apart (a store may keep them in columns of their own)."""
    if not _STATE_KEYS.issuperset(data) or seq.__class__ is not int:
        raise Unusual
    kw: dict[str, Any] = {}
    if decision is None:
        decision = data.get("decision")
    if decision is not None:
        kw["decision"] = plain_decision(decision)
    for name, typ in _LISTS.items():
        value = data.get(name)
        if value:  # the rare rich state: its lists through the converter, field by field
            kw[name] = _structure(value, typ)
        elif value is not None and value.__class__ is not list:
            raise Unusual
    for name in _STATE_TEXT:
        if name in data:
            kw[name] = _text_or_none(data[name])
    for name in _STATE_TIMES:
        if name in data:
            kw[name] = _time_or_none(data[name])
    if "reports" in data:
        reports = data["reports"]
        if reports.__class__ is not int:
            raise Unusual
        kw["reports"] = reports
    updated_at = data["updated_at"]
    if updated_at.__class__ is not str or stage.__class__ is not str or stage not in _STAGES:
        raise Unusual
    return IncidentState(_structure(incident, Incident), _STAGES[stage], seq, parse_time(updated_at), **kw)


_EVENT_KEYS = frozenset(("incident_id", "seq", "at", "type", "actor", "source", "ruleset", "data"))


def plain_event(data: Any) -> Event:
    """An Event from its unstructured data, which it takes over: *data*'s ``data`` is
    frozen in place (see :meth:`FrozenDict.adopt_plain`), so nothing else may hold it."""
    if data.__class__ is not dict or not _EVENT_KEYS.issuperset(data):
        raise Unusual
    iid, seq, at, kind = data["incident_id"], data["seq"], data["at"], data["type"]
    if iid.__class__ is not str or seq.__class__ is not int or at.__class__ is not str or kind.__class__ is not str:
        raise Unusual
    actor, source, ruleset = (_text_or_none(data.get("actor")), _text_or_none(data.get("source")),
                              _text_or_none(data.get("ruleset")))
    when = parse_time(at)
    payload = data.get("data", _NO_DATA)
    if payload.__class__ is dict:
        payload = FrozenDict.adopt_plain(payload)  # the last step: nothing is changed unless it is built
    elif payload is not _NO_DATA:
        raise Unusual
    return Event(iid, seq, when, kind, actor=actor, source=source, ruleset=ruleset, data=payload)
