"""Rows to values and back: JSON for free-form data, ISO text plus epoch seconds for
times. Shared by the store's write and read paths.

Writing is the hot path of intake, so event data goes through orjson (UTF-8, stored
as a blob) with FrozenDicts, text, numbers, booleans, None and lists in it; a value
orjson does not write itself (a time, an unusual type) or refuses (an integer past
64 bits, a key that is not text) sends the whole value to the standard encoder, as
every value went before. Reading uses the standard decoder for every row, old or
new. NaN and the infinities, which JSON has no words for and orjson would write as
null, are seen by the FrozenDict that holds them (``FrozenDict.finite``): such data
goes to the standard encoder too, which writes NaN and Infinity and reads them back.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime, timedelta, timezone
from operator import attrgetter
from typing import Any

import attrs
import orjson
import qflow
from qflow import FrozenDict
from qflow._shapes import plain_state
from qflow.model import IncidentState, Stage, Trace
from qflow.store import CLOSED_STAGES, Due, Timer

__all__ = ["OPEN", "STAGE_TEXT", "dumps", "event_json", "incident_order", "loads", "state_from", "state_from_fast",
           "state_json", "due_timers_from", "timers_from", "timers_json", "timestamp"]


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


def _frozen(value: Any) -> Any:
    # orjson calls this for what it does not write itself: FrozenDicts give their
    # contents; anything else (times, unusual types) and a FrozenDict holding NaN or an
    # infinity (orjson would write null) goes to the standard encoder.
    if type(value) is FrozenDict and value.finite:
        return value.as_dict()
    raise TypeError


_ORJSON_OPTIONS = orjson.OPT_PASSTHROUGH_DATETIME | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_SUBCLASS
_orjson_dumps = orjson.dumps


def event_json(data: FrozenDict) -> bytearray | str:
    """An event's data as JSON: UTF-8 from orjson when that is exact, else text.

    A bytearray, not bytes: sqlite3 binds a bytearray straight away, while bytes go
    through its adapter look-up first, which costs more than the copy."""
    try:
        return bytearray(_orjson_dumps(data, default=_frozen, option=_ORJSON_OPTIONS))
    except orjson.JSONEncodeError:
        return dumps(data)


_WHOLE_MINUTES: dict[timezone, bool] = {}  # a fixed-offset zone -> its offset is whole minutes
#: Before this year some zones had offsets in seconds (Africa/Monrovia until 1972).
_MINUTE_OFFSETS_SINCE = 1973
#: A timer's, a due moment's ``(key, at)``, as the timers and dues columns pair them.
_KEY_AT = attrgetter("key", "at")
_CLOCK_AT = attrgetter("clock", "at")


def timers_json(timers: Sequence[Timer]) -> tuple[float, bytearray | str]:
    """An incident's timers as one row: the earliest time in epoch seconds, and JSON
    ``[[key, at], ...]`` with each time as ISO text with its offset.

    orjson writes the times (a tenth of the cost of ``isoformat``) except where it
    would not be exact: it drops the seconds of an offset, which only zones before
    1973 and odd fixed offsets have; those are written by ``isoformat``."""
    return _times_json(map(_KEY_AT, timers))


def _times_json(pairs: Iterable[tuple[str, datetime]]) -> tuple[float, bytearray | str]:
    items: list[tuple[str, Any]] = []
    first: datetime | None = None
    for key, at in pairs:
        tz = at.tzinfo
        if type(tz) is timezone:
            whole = _WHOLE_MINUTES.get(tz)
            if whole is None:
                whole = _WHOLE_MINUTES[tz] = not tz.utcoffset(None).seconds % 60
            items.append((key, at if whole else at.isoformat()))
        else:
            items.append((key, at if at.year >= _MINUTE_OFFSETS_SINCE else at.isoformat()))
        if first is None or at < first:
            first = at
    assert first is not None, "an incident without timers has no timers row"
    try:
        return timestamp(first), bytearray(_orjson_dumps(items))
    except orjson.JSONEncodeError:  # a key orjson refuses (a lone surrogate): escaped, read back as written
        return timestamp(first), json.dumps(items, separators=(",", ":"), default=_default)


def dues_json(dues: Sequence[Due]) -> tuple[float | None, bytearray | str]:
    """An incident's due moments (``Write.dues``) as the row keeps them: the earliest in
    epoch seconds (None for none), and JSON ``[[clock, at], ...]`` written as timers are
    (see :func:`timers_json`)."""
    if not dues:
        return None, "[]"
    return _times_json(map(_CLOCK_AT, dues))


def dues_from(incident_id: str, text: str | bytes, until: datetime | None = None) -> list[Due]:
    """An incident's due moments from its row (those at or before *until*, if given)."""
    parse = datetime.fromisoformat
    out = [Due(at, incident_id, clock) for clock, text_at in event_data(text) if (at := parse(text_at)) is not None]
    return out if until is None else [d for d in out if d.at <= until]


def timers_from(incident_id: str, text: str | bytes) -> list[Timer]:
    """An incident's timers from its row, earliest first (then by key)."""
    parse = datetime.fromisoformat
    out = [Timer(incident_id, key, parse(at)) for key, at in event_data(text)]
    if len(out) > 1:
        out.sort(key=_timer_order)
    return out


def due_timers_from(incident_id: str, text: str | bytes, until: datetime) -> list[Timer]:
    """Those of an incident's timers due at or before *until* (in the row's order)."""
    parse = datetime.fromisoformat
    return [Timer(incident_id, key, at) for key, text_at in event_data(text) if (at := parse(text_at)) <= until]


def _timer_order(t: Timer) -> tuple[datetime, str]:
    return (t.at, t.key)


_CONV = qflow.make_converter()
_unstructure = _CONV.unstructure
_NO_TRACE = Trace(())


def state_json(state: IncidentState, decision_in_event: bool, updated_at: str) -> bytearray | str:
    """The state as JSON, without what the row holds elsewhere: the incident (kept in
    the log's first event or the incident column), stage and seq (columns), the
    decision when *decision_in_event* (the DecisionMade event named by decision_seq
    holds it) and every field at its default (structuring fills defaults in). A
    decision kept here leaves out its trace (worked out again from its inputs when
    needed). *updated_at* is ``state.updated_at.isoformat()``, which the caller
    mostly has already (the time of the last event)."""
    d = state.decision
    if ((d is None or decision_in_event) and not state.causes and not state.actions and not state.verifications
            and state.rejected_reason is None and state.status is None and state.acknowledged_at is None
            and state.responded_at is None and state.reports == 1 and state.problem is None):
        return bytearray(b'{"updated_at":"%s"}' % updated_at.encode())  # the state of a fresh report
    out: dict[str, Any] = {"updated_at": updated_at}
    if d is not None and not decision_in_event:
        data = _unstructure(attrs.evolve(d, trace=_NO_TRACE))
        data.pop("trace", None)
        out["decision"] = data
    if state.causes:
        out["causes"] = _unstructure(state.causes)
    if state.actions:
        out["actions"] = _unstructure(state.actions)
    if state.verifications:
        out["verifications"] = _unstructure(state.verifications)
    if state.rejected_reason is not None:
        out["rejected_reason"] = state.rejected_reason
    if state.status is not None:
        out["status"] = state.status
    if state.acknowledged_at is not None:
        out["acknowledged_at"] = state.acknowledged_at.isoformat()
    if state.responded_at is not None:
        out["responded_at"] = state.responded_at.isoformat()
    if state.reports != 1:
        out["reports"] = state.reports
    if state.problem is not None:
        out["problem"] = state.problem
    return dumps(out)


_FIXED_OFFSETS: dict[timezone, int] = {}  # a fixed-offset zone -> minus its offset in microseconds
_EPOCH_ORDINAL = date(1970, 1, 1).toordinal()


def timestamp(value: datetime) -> float:
    """``value.timestamp()``, worked out directly for fixed-offset zones (the offsets
    incidents arrive with), where it is the same number at half the cost."""
    tz = value.tzinfo
    if type(tz) is not timezone:
        return value.timestamp()
    minus = _FIXED_OFFSETS.get(tz)
    if minus is None:
        minus = _FIXED_OFFSETS[tz] = -(tz.utcoffset(None) // _MICROSECOND)
    # The same integer microseconds and the same one division as timedelta.total_seconds.
    return ((((value.toordinal() - _EPOCH_ORDINAL) * 86400 + value.hour * 3600 + value.minute * 60 + value.second)
             * 1000000 + value.microsecond + minus) / 1000000)


_MICROSECOND = timedelta(microseconds=1)


def state_from(state_text: Any, incident: Mapping[str, Any], stage: str, seq: int,
               decision: Mapping[str, Any] | None, *, parsed: bool = False) -> IncidentState:
    """The state of a row: its JSON (of any schema version; older rows hold every
    field, stage, seq and their decision), with the columns and the decision of the
    DecisionMade event it names, if it names one. With *parsed*, *state_text* is
    the JSON already read (a dict this function may change)."""
    data = state_text if parsed else loads(state_text)
    data["incident"] = incident
    data["stage"] = stage
    data["seq"] = seq
    if decision is not None:
        data["decision"] = decision
    return _CONV.structure(data, IncidentState)


def incident_order(incident_id: str) -> int:
    """The number in an id (``INC-12`` -> 12), so listings sort INC-9 before INC-10."""
    tail = incident_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def incident_json(state: IncidentState) -> str:
    return dumps(_CONV.unstructure(state.incident))


#: 1 for a stage whose incident counts as open, else 0 (the ``open`` column).
OPEN = {s: int(s not in CLOSED_STAGES) for s in Stage}
#: A stage's text (``Stage.value`` is a descriptor call; this is a dict look-up).
STAGE_TEXT = {s: s.value for s in Stage}


def state_from_fast(state_text: str | bytes, incident_text: str | bytes | None, stage: str, seq: int,
                    decision_text: str | bytes | None, *, incident: Any = None,
                    decision: Any = None) -> IncidentState:
    """:func:`state_from` of a row's texts, the common shapes built directly (the
    same values; cattrs for anything else). *incident* and *decision* are their JSON
    already read (from the log read with the state), in place of the texts."""
    data = loads(state_text)
    if incident_text is not None:
        incident = loads(incident_text)
    if decision_text is not None:
        decision = loads(decision_text)
    if data.__class__ is dict:
        try:
            return plain_state(data, incident, stage, seq, decision)
        except Exception:  # noqa: BLE001 - cattrs builds it, or says exactly what is wrong
            pass
    return state_from(data if data.__class__ is not dict else dict(data), incident, stage, seq, decision,
                      parsed=True)


_orjson_loads = orjson.loads
_JSONDecodeError = orjson.JSONDecodeError


def event_data(text: str | bytes) -> Any:
    """An event's (or timers row's) stored data. A blob is orjson's writing and
    orjson reads it back exactly; text is the standard encoder's (older rows, and
    values orjson does not write: integers past 64 bits, NaN, times), which the
    standard decoder reads, as orjson would not: it reads an integer past 64 bits
    as a float."""
    if text.__class__ is bytes:
        try:
            return _orjson_loads(text)
        except _JSONDecodeError:  # not orjson's after all (a lone surrogate's escape): the standard way
            pass
    return loads(text)
