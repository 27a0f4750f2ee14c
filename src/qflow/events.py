"""The event log: what each event type means, and the state as a fold over events.

Events are the source of truth; :class:`~qflow.model.IncidentState` is derived. The
same events always fold to the same state, whatever store kept them.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import attrs
import cattrs

from qflow._convert import make_converter
from qflow.errors import QflowError
from qflow.model import (
    Action,
    ActionStatus,
    Attachment,
    Cause,
    Decision,
    Event,
    Incident,
    IncidentState,
    LedgerEntry,
    Stage,
    Trace,
    Verification,
)

__all__ = [
    "ACTION_LOGGED",
    "ACTION_PLANNED",
    "ACTION_REMINDED",
    "ACTION_UPDATED",
    "CAUSE_CONFIRMED",
    "EVIDENCE_ADDED",
    "KNOWN_ERRORS_SUGGESTED",
    "LOOP_EVENTS",
    "PROBLEM_LINKED",
    "RECURRENCE_CHECKED",
    "RESPONSIBILITY_CONFIRMED",
    "AuditSequenceError",
    "CAUSE_RECORDED",
    "DECISION_MADE",
    "INCIDENT_REPORTED",
    "NOTIFICATION_FAILED",
    "NOTIFICATION_DEAD_LETTERED",
    "ACKNOWLEDGED",
    "REASSIGNED",
    "REPORT_ATTACHED",
    "RESPONDED",
    "SEVERITY_CHANGED",
    "STATUS_CHANGED",
    "SURVEY_RECORDED",
    "STAGE_CHANGED",
    "VERIFICATION_RECORDED",
    "apply",
    "decision_data",
    "fold",
]

INCIDENT_REPORTED = "IncidentReported"  #: data: the incident
DECISION_MADE = "DecisionMade"  #: data: the decision (without its trace)
STAGE_CHANGED = "StageChanged"  #: data: from, to, reason
CAUSE_RECORDED = "CauseRecorded"  #: data: the cause
ACTION_PLANNED = "ActionPlanned"  #: data: the action
ACTION_UPDATED = "ActionUpdated"  #: data: id, status, done_at
VERIFICATION_RECORDED = "VerificationRecorded"  #: data: the verification
NOTIFICATION_FAILED = "NotificationFailed"  #: data: topic, plugin, error
NOTIFICATION_DEAD_LETTERED = "NotificationDeadLettered"  #: data: message, channel, backend, topic, attempts, error, fallback, fallback_message
REPORT_ATTACHED = "ReportAttached"  #: data: the further report (an incident), channel, dedup_key
SEVERITY_CHANGED = "SeverityChanged"  #: data: from, to, reason (escalation or a person)
REASSIGNED = "Reassigned"  #: data: team, owner, reason (None keeps the field)
ACKNOWLEDGED = "Acknowledged"  #: data: note
RESPONDED = "Responded"  #: data: message, channel (the first answer to the customer stops `respond`)
STATUS_CHANGED = "StatusChanged"  #: data: from, to, reason (working, waiting_customer, waiting_vendor ...)
SURVEY_RECORDED = "SurveyRecorded"  #: data: score, scale, nps, comment, channel, respondent, self_rated
# The improvement loop (see qflow._loop and the qflow_loop plugin).
RESPONSIBILITY_CONFIRMED = "ResponsibilityConfirmed"  #: data: responsibility, team, owner, note
CAUSE_CONFIRMED = "CauseConfirmed"  #: data: id (the one confirmed cause; the others become candidates)
EVIDENCE_ADDED = "EvidenceAdded"  #: data: cause, evidence (an attachment with added_by)
ACTION_LOGGED = "ActionLogged"  #: data: id, entry (a ledger entry; an adjustment may move the due date)
ACTION_REMINDED = "ActionReminded"  #: data: id, step, due, owner (before, at and after the due date)
PROBLEM_LINKED = "ProblemLinked"  #: data: problem, fingerprint, opened, count, window
KNOWN_ERRORS_SUGGESTED = "KnownErrorsSuggested"  #: data: suggestions (known_error, score, reason, workaround)
RECURRENCE_CHECKED = "RecurrenceChecked"  #: data: fingerprint, count, window, problem (None or its id), opened
LOOP_EVENTS = (RESPONSIBILITY_CONFIRMED, CAUSE_CONFIRMED, EVIDENCE_ADDED, ACTION_LOGGED, ACTION_REMINDED,
               PROBLEM_LINKED, KNOWN_ERRORS_SUGGESTED, RECURRENCE_CHECKED)


class AuditSequenceError(QflowError):
    """An event's ``seq`` is not the previous one plus one: the log has a gap or a fork."""

    def __init__(self, got: int, expected: int) -> None:
        super().__init__(f"event seq {got} does not follow the log; expected {expected}")
        self.got, self.expected = got, expected


def decision_data(conv: cattrs.Converter, decision: Decision) -> dict[str, Any]:
    """The data of a DecisionMade event: the decision without its (derivable) trace.

    The trace is left out before unstructuring, not after: it is lazy, and writing it
    out would work it out (the whole explanation of the decision, most of a report's
    cost) only to drop it."""
    data = conv.unstructure(attrs.evolve(decision, trace=_NO_TRACE))
    data.pop("trace", None)
    return data


_NO_TRACE = Trace(())


def apply(state: IncidentState | None, event: Event, conv: cattrs.Converter | None = None) -> IncidentState:
    """Return the state after *event*. Unknown event types (from plugins) only move ``seq``."""
    conv = conv or _CONVERTER
    expected = 1 if state is None else state.seq + 1
    if event.seq != expected:
        raise AuditSequenceError(event.seq, expected)
    if state is None:
        if event.type != INCIDENT_REPORTED:
            raise QflowError(f"the first event of {event.incident_id} must be {INCIDENT_REPORTED}, not {event.type}")
        incident = conv.structure(dict(event.data), Incident)
        return IncidentState(incident=incident, stage=Stage.REPORTED, seq=1, updated_at=event.at)
    if event.type not in _FOLDED:
        # A plugin's event (an escalation step, a notification failure): the common
        # case in a tick, told in one look instead of a comparison per kind below.
        return _evolve(state, {"seq": event.seq, "updated_at": event.at})
    changes: dict[str, Any] = {"seq": event.seq, "updated_at": event.at}
    data = event.data
    if event.type == DECISION_MADE:
        changes["decision"] = conv.structure(dict(data), Decision)
    elif event.type == STAGE_CHANGED:
        target = Stage(data["to"])
        changes["stage"] = target
        if target is Stage.REJECTED:
            changes["rejected_reason"] = data.get("reason")
        elif target is Stage.REOPENED:
            changes["rejected_reason"] = None
    elif event.type == CAUSE_RECORDED:
        changes["causes"] = state.causes + (conv.structure(dict(data), Cause),)
    elif event.type == ACTION_PLANNED:
        changes["actions"] = state.actions + (conv.structure(dict(data), Action),)
    elif event.type == ACTION_UPDATED:
        done_at = conv.structure(data["done_at"], datetime) if data.get("done_at") else None
        status = ActionStatus(data["status"])
        changes["actions"] = tuple(
            attrs.evolve(a, status=status, done_at=done_at) if a.id == data["id"] else a
            for a in state.actions
        )
    elif event.type == VERIFICATION_RECORDED:
        changes["verifications"] = state.verifications + (conv.structure(dict(data), Verification),)
    elif event.type == SEVERITY_CHANGED and state.decision is not None:
        changes["decision"] = attrs.evolve(state.decision, severity=data["to"])
    elif event.type == REASSIGNED and state.decision is not None:
        changes["decision"] = attrs.evolve(
            state.decision,
            team=data.get("team") or state.decision.team,
            owner=data.get("owner") if data.get("owner") is not None else state.decision.owner)
    elif event.type == ACKNOWLEDGED and state.acknowledged_at is None:
        changes["acknowledged_at"] = event.at
    elif event.type == RESPONDED and state.responded_at is None:
        changes["responded_at"] = event.at
    elif event.type == STATUS_CHANGED:
        changes["status"] = data["to"]
    elif event.type == REPORT_ATTACHED:
        changes["reports"] = state.reports + 1
    elif event.type in LOOP_EVENTS:
        changes.update(_apply_loop(state, event, conv))
    return _evolve(state, changes)


#: The event types :func:`apply` changes more than ``seq`` and ``updated_at`` for.
_FOLDED = frozenset({DECISION_MADE, STAGE_CHANGED, CAUSE_RECORDED, ACTION_PLANNED, ACTION_UPDATED,
                     VERIFICATION_RECORDED, SEVERITY_CHANGED, REASSIGNED, ACKNOWLEDGED, RESPONDED,
                     STATUS_CHANGED, REPORT_ATTACHED, *LOOP_EVENTS})

# ``attrs.evolve`` looks every field up by name on each call; a fold makes one state
# per event, so the fields are read in one go and the state is built positionally.
_FIELDS = attrs.fields(IncidentState)
_POSITION = {f.name: i for i, f in enumerate(_FIELDS)}
_READ_ALL = operator.attrgetter(*_POSITION)
_POSITIONAL = all(f.init and f.alias == f.name and not f.kw_only for f in _FIELDS)


def _evolve(state: IncidentState, changes: dict[str, Any]) -> IncidentState:
    if not _POSITIONAL or type(state) is not IncidentState:  # pragma: no cover - a field added that
        return attrs.evolve(state, **changes)  # cannot be passed by position, or a subclass
    values = list(_READ_ALL(state))
    for name, value in changes.items():
        values[_POSITION[name]] = value
    return IncidentState(*values)


def _apply_loop(state: IncidentState, event: Event, conv: cattrs.Converter) -> dict[str, Any]:
    data = event.data
    if event.type == RESPONSIBILITY_CONFIRMED and state.decision is not None:
        d = state.decision
        return {"decision": attrs.evolve(
            d, responsibility=data.get("responsibility") or d.responsibility,
            team=data.get("team") or d.team, owner=data.get("owner") or d.owner)}
    if event.type == CAUSE_CONFIRMED:
        return {"causes": tuple(attrs.evolve(c, confirmed=c.id == data["id"]) for c in state.causes)}
    if event.type == EVIDENCE_ADDED:
        evidence = conv.structure(dict(data["evidence"]), Attachment)
        return {"causes": tuple(attrs.evolve(c, evidence=c.evidence + (evidence,)) if c.id == data["cause"] else c
                                for c in state.causes)}
    if event.type == ACTION_LOGGED:
        entry = conv.structure(dict(data["entry"]), LedgerEntry)
        return {"actions": tuple(
            attrs.evolve(a, ledger=a.ledger + (entry,), due=entry.due or a.due) if a.id == data["id"] else a
            for a in state.actions)}
    if event.type in (PROBLEM_LINKED, RECURRENCE_CHECKED) and data.get("problem"):
        return {"problem": data["problem"]}
    return {}


def fold(events: Iterable[Event], conv: cattrs.Converter | None = None) -> IncidentState:
    """The state an incident's events add up to."""
    state: IncidentState | None = None
    for event in events:
        state = apply(state, event, conv)
    if state is None:
        raise QflowError("no events to fold")
    return state


_CONVERTER = make_converter()
