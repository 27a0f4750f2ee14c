"""Rows to values and back: JSON text for free-form data, ISO text plus epoch seconds
for times. Shared by the store's write and read paths."""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import datetime
from typing import Any

import attrs
import qflow
from qflow import FrozenDict
from qflow.model import Decision, IncidentState, Trace

__all__ = ["STATE_FIELDS", "dumps", "incident_order", "loads", "state_json", "state_from"]


def _default(value: Any) -> Any:
    if type(value) is FrozenDict:
        return value.as_dict()  # nested FrozenDicts come back here, one level at a time
    if isinstance(value, Mapping):
        return dict(value)
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"cannot store a {type(value).__name__} as JSON ({value!r}); give plain data")


#: Compact JSON, UTF-8 kept as is; FrozenDicts and times are written as plain data.
dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, default=_default).encode
loads = json.loads

_CONV = qflow.make_converter()
_NO_TRACE = Trace(())
#: Every state field but the incident (kept in the log's first event) and the trace.
STATE_FIELDS = tuple(f.name for f in attrs.fields(IncidentState) if f.name != "incident")


def state_json(state: IncidentState, decision_json: str | None = None) -> str:
    """The state without its incident, as JSON; the decision's trace is left out (it is
    worked out again from the decision's inputs when needed). *decision_json* is the
    decision as the DecisionMade event of the same write already holds it: spliced in
    as it is, so a batch of reports serialises each decision once."""
    out: dict[str, Any] = {}
    unstructure = _CONV.unstructure
    for name in STATE_FIELDS:
        value = getattr(state, name)
        if value is None or value == ():
            out[name] = value if value is None else []
        elif isinstance(value, Decision):
            if decision_json is not None:
                continue
            data = unstructure(attrs.evolve(value, trace=_NO_TRACE))
            data.pop("trace", None)
            out[name] = data
        else:
            out[name] = unstructure(value)
    text = dumps(out)
    if decision_json is not None and state.decision is not None:
        text = f'{text[:-1]},"decision":{decision_json}}}' if out else f'{{"decision":{decision_json}}}'
    return text


def state_from(state_text: str, incident: Mapping[str, Any]) -> IncidentState:
    data = loads(state_text)
    data["incident"] = incident
    return _CONV.structure(data, IncidentState)


def incident_order(incident_id: str) -> int:
    """The number in an id (``INC-12`` -> 12), so listings sort INC-9 before INC-10."""
    tail = incident_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def incident_json(state: IncidentState) -> str:
    return dumps(_CONV.unstructure(state.incident))
