"""Rows to values and back. Bodies are stored as ``json`` (not ``jsonb``) so a value
comes back with its keys in the order it was written, as ``qflow show`` prints them."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import Any

import attrs

import qflow
from qflow import DeliveryAttempt, Event, IncidentState, OutboxMessage, Timer, Trace
from qflow._shapes import plain_event, plain_state
from qflow.store import Due
from qflow_postgres._errors import StoreError

__all__ = ["Codec", "local", "offset"]

CLOSED = ("closed", "rejected")
#: How many states read for a command a codec remembers (see ``read_state``).
REMEMBERED = 4096


class Codec:
    """One converter per store (no global state)."""

    def __init__(self) -> None:
        self.conv = qflow.make_converter()
        # What get and read_many handed out: incident id -> (seq, decision, closed). The
        # decision is held, so its identity means the very object that was read.
        self._read: dict[str, tuple[int, Any, bool]] = {}

    def dumps(self, value: Any, what: str = "a value") -> str:
        try:
            return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
        except ValueError:
            # Said before anything is sent: PostgreSQL's own refusal names a JSON token,
            # not the incident, and only at COMMIT in pipeline mode.
            raise StoreError(f"{what} holds NaN or an infinity, which PostgreSQL's json type cannot keep; "
                             "give a number or null") from None

    # -- incidents ---------------------------------------------------------------------

    def state_row(self, state: IncidentState, dues: Sequence[Due] | None = None) -> dict[str, Any]:
        d = state.decision
        if d is not None:
            # The trace is derivable and lazy; unstructuring it would compute it.
            state = attrs.evolve(state, decision=attrs.evolve(d, trace=Trace(())))
        inc = state.incident
        deadlines = () if d is None else d.deadlines
        stage = state.stage.value
        return {
            "id": state.id, "seq": state.seq, "stage": stage, "open": stage not in CLOSED,
            "team": d.team if d else None, "severity": d.severity if d else None,
            "category": d.category if d else None, "owner": d.owner if d else None,
            "place": inc.place, "reported_at": inc.reported_at, "updated_at": state.updated_at,
            "sort_at": inc.reported_at or state.updated_at, "sort_n": _number(state.id),
            "min_due": (min((x.due for x in deadlines), default=None) if dues is None
                        else min((x.at for x in dues), default=None)),
            "clock_dues": dues is not None,
            "dedup_key": inc.dedup_key,
            "external_id": inc.external_id,
            "body": self.dumps(self.conv.unstructure(state), f"{state.id}: the state"),
        }

    def state(self, body: Any) -> IncidentState:
        data = _loaded(body)
        if data.__class__ is dict:
            try:
                return plain_state(data, data.get("incident"), data.get("stage"), data.get("seq"), None)
            except Exception:  # noqa: BLE001 - cattrs builds it, or says exactly what is wrong
                pass
        return self.conv.structure(data, IncidentState)

    def read_state(self, body: Any) -> IncidentState:
        """A state read for a command (``get``, ``read_many``), remembered for
        :meth:`same_clocks` when the command writes it back."""
        state = self.state(body)
        if len(self._read) >= REMEMBERED:
            self._read.clear()
        self._read[state.id] = (state.seq, state.decision, state.stage.value in CLOSED)
        return state

    def same_clocks(self, state: IncidentState, stored_seq: int | None) -> bool:
        """Whether the deadline rows stored for *state*'s incident are those *state*
        has: the state read at *stored_seq* (what is stored now) had the very same
        decision object and was as open or closed. The rows are a function of the
        state, and a state of the seq: a write checks that its events follow it."""
        seen = self._read.get(state.id)
        return (seen is not None and seen[0] == stored_seq and state.decision is seen[1]
                and (state.stage.value in CLOSED) == seen[2])

    # -- events ------------------------------------------------------------------------

    def event_row(self, e: Event) -> tuple[Any, ...]:
        return (e.incident_id, e.seq, e.at, e.type,
                self.dumps(self.conv.unstructure(e), f"{e.incident_id}: event {e.seq} ({e.type})"))

    def event(self, body: Any) -> Event:
        data = _loaded(body)
        try:
            return plain_event(data)
        except Exception:  # noqa: BLE001 - cattrs builds it, or says exactly what is wrong
            return self.conv.structure(data, Event)

    # -- timers, outbox ----------------------------------------------------------------

    @staticmethod
    def timer(row: tuple[Any, ...]) -> Timer:
        return Timer(row[0], row[1], local(row[2], row[3]))

    def outbox_row(self, m: OutboxMessage) -> dict[str, Any]:
        return {
            "id": m.id, "incident_id": m.incident_id, "channel": m.channel, "backend": m.backend,
            "created_at": m.created_at, "next_attempt_at": m.next_attempt_at, "status": m.status,
            "attempts": m.attempts, "body": self.dumps(self.conv.unstructure(m)),
        }

    def outbox(self, body: Any) -> OutboxMessage:
        return self.conv.structure(_loaded(body), OutboxMessage)

    def attempt_row(self, a: DeliveryAttempt) -> tuple[Any, ...]:
        return (a.message_id, a.number, a.at, a.ok, self.dumps(self.conv.unstructure(a)))

    def attempt(self, body: Any) -> DeliveryAttempt:
        return self.conv.structure(_loaded(body), DeliveryAttempt)


def _number(incident_id: str) -> int:
    # Ids of one store sort by their number (INC-9 before INC-10), as the memory store does.
    tail = incident_id.rsplit("-", 1)[-1]
    return int(tail) if tail.isdigit() else 0


def _loaded(body: Any) -> Any:
    return json.loads(body) if isinstance(body, (str, bytes)) else body


def offset(value: datetime) -> int:
    off = value.utcoffset()
    return 0 if off is None else int(off.total_seconds())


def local(value: datetime, seconds: int) -> datetime:
    """*value* (from a timestamptz column) at the UTC offset it was written with."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone(timedelta(seconds=seconds)) if seconds else timezone.utc)
