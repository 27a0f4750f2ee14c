"""The commands that move the SLA clocks without moving the stage: acknowledge, answer
the customer, and say whom the incident waits on. Mixed into :class:`qflow.Engine`;
every command records through ``Engine._record_many``, so each is one store
transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qflow import events as ev
from qflow.errors import InputError, TransitionError
from qflow.model import IncidentState, Stage

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["ContactCommands"]

_ENDED = (Stage.CLOSED, Stage.REJECTED)


class ContactCommands(_Base):
    def acknowledge(self, incident_id: str, *, actor: str, note: str | None = None) -> IncidentState:
        """Record that *actor* has seen the incident (stops the ``acknowledge`` clock).

        A second acknowledgement is recorded too (its note is kept); the first one
        is the moment that counts.
        """
        state = self._open(incident_id, "acknowledge")
        return self._record(state, ev.ACKNOWLEDGED, {"note": note}, actor=actor, source="contact")

    def respond(self, incident_id: str, message: str, *, actor: str, channel: str | None = None) -> IncidentState:
        """Record an answer to the customer; the first one stops the ``respond`` clock."""
        if not isinstance(message, str) or not message.strip():
            raise InputError(f"a response to {incident_id} needs a message; say what the customer was told")
        state = self._open(incident_id, "respond to")
        return self._record(state, ev.RESPONDED, {"message": message, "channel": channel},
                            actor=actor, source="contact")

    def set_status(self, incident_id: str, status: str, *, actor: str, reason: str | None = None) -> IncidentState:
        """Say what the incident waits on within its stage (``working``,
        ``waiting_customer``, ``waiting_vendor`` ...); clocks pause and resume on it."""
        if not isinstance(status, str) or not status.strip():
            raise InputError(f"a status for {incident_id} must be a name such as working or waiting_customer")
        state = self._open(incident_id, "change the status of")
        if state.status == status:
            raise InputError(f"{incident_id} is already {status}; nothing to change")
        return self._record(state, ev.STATUS_CHANGED, {"from": state.status, "to": status, "reason": reason},
                            actor=actor, source="contact")

    def _open(self, incident_id: str, what: str) -> IncidentState:
        state = self._load(incident_id)
        if state.stage in _ENDED:
            raise TransitionError(f"cannot {what} {incident_id}: it is {state.stage.value}; reopen it first")
        return state
