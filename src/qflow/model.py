"""The values qflow works with. All frozen; change them with ``attrs.evolve``.

The model knows nothing about converters, YAML or storage (see ``_convert.py``).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

import attrs

from qflow._frozen import FrozenDict, frozen_map

__all__ = [
    "Action",
    "ActionKind",
    "ActionStatus",
    "Assignment",
    "Attachment",
    "Cause",
    "Classification",
    "Command",
    "Customer",
    "Deadline",
    "Decision",
    "Effect",
    "Event",
    "Incident",
    "IncidentState",
    "KnownError",
    "LedgerEntry",
    "LedgerKind",
    "MetricFigure",
    "Notification",
    "Person",
    "Problem",
    "RiskPoint",
    "Stage",
    "Suggestion",
    "Trace",
    "TraceStep",
    "Verification",
    "VerificationResult",
    "WhyStep",
]




def _aware(instance: Any, attribute: attrs.Attribute[Any], value: datetime | None) -> None:
    # An invariant, not a shape: a naive time is ambiguous across sites and DST.
    if value is not None and value.utcoffset() is None:
        raise ValueError(
            f"{attribute.name} {value.isoformat()} has no time zone; "
            "add an offset such as +08:00 or Z"
        )


def _key(value: Any) -> Any:
    # A blank key would make unrelated reports retries or duplicates of each other.
    if isinstance(value, str) and not value.strip():
        return None
    return value


class Stage(str, enum.Enum):
    """Where an incident stands in the closed loop (see ``qflow.lifecycle``)."""

    REPORTED = "reported"
    CONFIRMED = "confirmed"
    REJECTED = "rejected"
    ANALYSING = "analysing"
    ACTING = "acting"
    VERIFYING = "verifying"
    CLOSED = "closed"
    REOPENED = "reopened"

    def __str__(self) -> str:
        return self.value


@attrs.frozen
class Person:
    """Someone who reports, owns, verifies or is notified."""

    id: str | None = None
    name: str | None = None
    contact: str | None = None


@attrs.frozen
class Customer:
    """The customer affected; ``tier`` drives many rules (gold, platinum, ...)."""

    id: str | None = None
    name: str | None = None
    tier: str | None = None
    contact: str | None = None
    extra: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)


@attrs.frozen
class Attachment:
    """A reference to evidence kept elsewhere (photo, video, log, interview notes)."""

    ref: str
    kind: str = "file"
    name: str | None = None
    added_by: str | None = None


@attrs.frozen
class Incident:
    """One reported anomaly: the facts as the reporter gave them.

    What qflow concludes (category, severity, team, deadlines) is a :class:`Decision`;
    where the incident stands is its :class:`IncidentState`.
    """

    #: ``id``, ``external_id`` and ``dedup_key`` are keys: a blank one ("" or spaces,
    #: as many senders write a field they have no value for) is no key (None).
    id: str | None = attrs.field(default=None, converter=_key)
    reported_at: datetime | None = attrs.field(default=None, validator=_aware)
    occurred_at: datetime | None = attrs.field(default=None, validator=_aware)
    channel: str | None = None
    category: str | None = None
    place: str | None = None
    asset: str | None = None
    title: str | None = None
    description: str = ""
    scope: str | None = None
    impact: int | None = None
    urgency: int | None = None
    reporter: Person | None = None
    customer: Customer | None = None
    attachments: tuple[Attachment, ...] = attrs.field(default=(), converter=tuple)
    tags: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    #: The sending system's id of the report: a report repeating a recorded one is a
    #: retry and records nothing.
    external_id: str | None = attrs.field(default=None, converter=_key)
    #: The same anomaly through another channel carries the same key; within the
    #: ruleset's ``intake.dedup_window`` it attaches to the open incident.
    dedup_key: str | None = attrs.field(default=None, converter=_key)
    extra: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)


@attrs.frozen
class WhyStep:
    """One link of a 5-Why chain: *why* did it happen, *because* of what. The last
    link of a chain is marked ``root``: its *because* is the root cause."""

    why: str
    because: str
    root: bool = False


@attrs.frozen
class Cause:
    """A (candidate) root cause with how it was found.

    ``code`` is a stable name for the root cause (``rota-gap``) that recurrence
    fingerprints and the known-error archive match on; ``responsibility`` is the class
    it points to (from the fishbone ``branch`` when not given)."""

    id: str
    summary: str
    method: str = "note"  # five_why, fishbone, note
    branch: str | None = None  # 6M branch for a fishbone: man, machine, method, ...
    whys: tuple[WhyStep, ...] = attrs.field(default=(), converter=tuple)
    evidence: tuple[Attachment, ...] = attrs.field(default=(), converter=tuple)
    confirmed: bool = False
    recorded_by: str | None = None
    code: str | None = None
    responsibility: str | None = None

    @property
    def root_cause(self) -> str:
        """The root cause in words: the last *because* of a 5-Why chain, else the summary."""
        return self.whys[-1].because if self.whys and self.whys[-1].root else self.summary


class ActionKind(str, enum.Enum):
    CORRECTION = "correction"
    CORRECTIVE = "corrective"
    PREVENTIVE = "preventive"


class ActionStatus(str, enum.Enum):
    PLANNED = "planned"
    IN_PROGRESS = "in_progress"
    DONE = "done"
    CANCELLED = "cancelled"


class LedgerKind(str, enum.Enum):
    """What a tracking-ledger (台账) entry records."""

    PROGRESS = "progress"
    DEVIATION = "deviation"
    ADJUSTMENT = "adjustment"


@attrs.frozen
class LedgerEntry:
    """One line of an action's tracking ledger. An adjustment may move the due date."""

    at: datetime = attrs.field(validator=_aware)
    kind: LedgerKind
    note: str
    by: str | None = None
    percent: int | None = None  # how far along, for progress entries
    due: datetime | None = attrs.field(default=None, validator=_aware)  # the new due date of an adjustment


@attrs.frozen
class Action:
    """A measure with an owner, a due date and a measurable target; ``feasibility``
    and ``expected_effect`` are judged before it is planned."""

    id: str
    description: str
    owner: str
    due: datetime = attrs.field(validator=_aware)
    kind: ActionKind = ActionKind.CORRECTIVE
    target: str | None = None
    status: ActionStatus = ActionStatus.PLANNED
    done_at: datetime | None = attrs.field(default=None, validator=_aware)
    feasibility: str | None = None
    expected_effect: str | None = None
    cause: str | None = None  # the id of the cause it aims at
    ledger: tuple[LedgerEntry, ...] = attrs.field(default=(), converter=tuple)

    @property
    def open(self) -> bool:
        return self.status not in (ActionStatus.DONE, ActionStatus.CANCELLED)


class VerificationResult(str, enum.Enum):
    EFFECTIVE = "effective"
    PARTIAL = "partial"
    INEFFECTIVE = "ineffective"


@attrs.frozen
class MetricFigure:
    """One measured metric of a verification: its value over the baseline window
    before the measures and over the equal window after, and what that means."""

    metric: str
    kind: str  # recurrence, satisfaction, kpi
    baseline: float | None
    after: float | None
    result: VerificationResult | None = None  # None: no data in a window
    note: str | None = None


@attrs.frozen
class Verification:
    """Whether the measures worked, with the figures that say so.

    ``method`` is ``manual`` (a verifier judged, with evidence) or ``measured`` (the
    configured metrics over ``baseline_from``–``after_until``)."""

    result: VerificationResult
    at: datetime = attrs.field(validator=_aware)
    verifier: str | None = None
    method: str = "manual"
    metrics: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)
    note: str | None = None
    figures: tuple[MetricFigure, ...] = attrs.field(default=(), converter=tuple)
    evidence: tuple[Attachment, ...] = attrs.field(default=(), converter=tuple)
    baseline_from: datetime | None = attrs.field(default=None, validator=_aware)
    measured_from: datetime | None = attrs.field(default=None, validator=_aware)  # end of baseline, start of after
    after_until: datetime | None = attrs.field(default=None, validator=_aware)


@attrs.frozen
class Command:
    """A loop command about to be recorded, as ``qflow_command_guard`` sees it.

    ``name`` is ``confirm``, ``reject``, ``reassign``, ``record_cause``,
    ``confirm_cause``, ``add_evidence``, ``plan_action``, ``log_action``,
    ``update_action`` or ``record_verification``; ``subject`` the value it records
    (a Cause, Action, LedgerEntry, Verification, Attachment) or None; ``data`` the
    other arguments."""

    name: str
    actor: str | None = None
    subject: Any = None
    data: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)


@attrs.frozen
class Suggestion:
    """A known error that may explain an incident (``qflow_suggest_known_errors``)."""

    known_error: str
    score: float
    reason: str
    workaround: str | None = None
    source: str | None = None


@attrs.frozen
class KnownError:
    """A confirmed root cause with its workaround, kept in the known-error archive
    (store documents of kind ``known_error``) and matched against new incidents."""

    id: str
    summary: str
    workaround: str | None = None
    cause_code: str | None = None
    category: str | None = None
    place: str | None = None
    asset: str | None = None
    keywords: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    incidents: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    recorded_at: datetime | None = attrs.field(default=None, validator=_aware)


@attrs.frozen
class Problem:
    """An ITIL problem record: the one underlying issue behind many incidents with
    the same fingerprint (store documents of kind ``problem``)."""

    id: str
    fingerprint: FrozenDict = attrs.field(converter=frozen_map)
    opened_at: datetime = attrs.field(validator=_aware)
    incidents: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    status: str = "open"  # open, known_error, closed
    reason: str | None = None
    known_error: str | None = None


@attrs.frozen
class RiskPoint:
    """A place, category or cause whose recurrence is rising."""

    dimension: str  # place, category, cause
    value: str
    count: int  # in the current window
    previous: int  # in the window before


@attrs.frozen
class Event:
    """One entry of an incident's append-only log.

    ``seq`` starts at 1 and grows by exactly one per incident. ``source`` names the
    rule or plugin that decided it (``classify:vip-complaint``, ``plugin:qflow_sla``);
    ``ruleset`` the ruleset version (``name@hash``) in force.
    """

    incident_id: str
    seq: int
    at: datetime = attrs.field(validator=_aware)
    type: str
    actor: str | None = None
    source: str | None = None
    ruleset: str | None = None
    data: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)


@attrs.frozen
class Classification:
    """What a ``qflow_classify`` implementation concludes; None means "no opinion".

    ``source`` names the rule or plugin behind every field; ``sources`` overrides it
    per field (``{"severity": "classify:vip-complaint"}``)."""

    category: str | None = None
    severity: str | None = None
    priority: str | None = None
    source: str | None = None
    matched: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    sources: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)


@attrs.frozen
class Assignment:
    """What a ``qflow_route`` implementation concludes: whose incident this is."""

    team: str | None = None
    owner: str | None = None
    responsibility: str | None = None
    source: str | None = None
    matched: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    sources: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)


@attrs.frozen
class Deadline:
    """When the named clock (``respond``, ``resolve``, ...) runs out.

    ``business`` is the committed time counted on ``calendar``; ``due - start`` is the
    same span in calendar time. ``warnings`` says why ``due`` is an estimate (it
    counts through a year whose holiday schedule is not published yet).
    """

    clock: str
    start: datetime = attrs.field(validator=_aware)
    due: datetime = attrs.field(validator=_aware)
    business: timedelta
    calendar: str = "24x7"
    warnings: tuple[str, ...] = attrs.field(default=(), converter=tuple)

    @property
    def elapsed(self) -> timedelta:
        """The calendar time between start and due."""
        return self.due - self.start


@attrs.frozen
class TraceStep:
    """One rule considered while deciding, and why it matched or not."""

    section: str
    rule: str | None
    outcome: str  # matched, no match, would have matched, not reached, set, info
    reason: str
    source: str | None = None


class Trace:
    """The steps behind a decision, computed on first use.

    ``decide`` is pure, so the trace can be rebuilt from the same inputs whenever it is
    read; keeping it lazy means a decision costs nothing extra when nobody asks why.
    """

    __slots__ = ("_steps", "_thunk")

    def __init__(
        self,
        steps: tuple[TraceStep, ...] | None = None,
        thunk: Callable[[], tuple[TraceStep, ...]] | None = None,
    ) -> None:
        self._steps = tuple(steps) if steps is not None else None
        self._thunk = thunk

    @property
    def steps(self) -> tuple[TraceStep, ...]:
        if self._steps is None:
            self._steps = tuple(self._thunk()) if self._thunk else ()
            self._thunk = None
        return self._steps

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.steps)

    def __len__(self) -> int:
        return len(self.steps)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Trace):
            return self.steps == other.steps
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.steps)

    def __repr__(self) -> str:
        return "Trace(<lazy>)" if self._steps is None else f"Trace({self._steps!r})"


@attrs.frozen
class Decision:
    """What qflow decides for an incident at a moment, with the reasons.

    ``sources`` maps each decided field to the rule or plugin that set it.
    ``ruleset`` is ``name@hash`` of the ruleset that decided.
    """

    incident_id: str | None
    decided_at: datetime = attrs.field(validator=_aware)
    ruleset: str
    category: str | None = None
    severity: str | None = None
    priority: str | None = None
    team: str | None = None
    owner: str | None = None
    responsibility: str | None = None
    deadlines: tuple[Deadline, ...] = attrs.field(default=(), converter=tuple)
    matched: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    sources: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)
    trace: Trace = attrs.field(factory=Trace, eq=False, repr=False)

    def deadline(self, clock: str) -> Deadline | None:
        for d in self.deadlines:
            if d.clock == clock:
                return d
        return None

    @property
    def respond_by(self) -> datetime | None:
        d = self.deadline("respond")
        return d.due if d else None

    @property
    def resolve_by(self) -> datetime | None:
        d = self.deadline("resolve")
        return d.due if d else None


@attrs.frozen
class Notification:
    """A message to send about an incident; delivered by ``qflow_notify`` plugins."""

    incident_id: str
    topic: str
    at: datetime = attrs.field(validator=_aware)
    recipients: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    subject: str = ""
    body: str = ""
    data: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)


@attrs.frozen
class Effect:
    """What a plugin wants recorded when something falls due (``qflow_due``): one
    event, and the notifications it causes (written to the outbox with it)."""

    type: str
    source: str
    data: FrozenDict = attrs.field(factory=FrozenDict, converter=frozen_map)
    notifications: tuple[Notification, ...] = attrs.field(default=(), converter=tuple)


@attrs.frozen
class IncidentState:
    """Where an incident stands now: the fold of its events (see ``qflow.events``)."""

    incident: Incident
    stage: Stage
    seq: int
    updated_at: datetime = attrs.field(validator=_aware)
    decision: Decision | None = None
    causes: tuple[Cause, ...] = attrs.field(default=(), converter=tuple)
    actions: tuple[Action, ...] = attrs.field(default=(), converter=tuple)
    verifications: tuple[Verification, ...] = attrs.field(default=(), converter=tuple)
    rejected_reason: str | None = None
    status: str | None = None  # within a stage: working, waiting_customer, waiting_vendor ...
    acknowledged_at: datetime | None = attrs.field(default=None, validator=_aware)
    responded_at: datetime | None = attrs.field(default=None, validator=_aware)
    reports: int = 1  # how many reports (channels, repeats) this incident gathers
    problem: str | None = None  # the problem record this incident is linked to

    @property
    def id(self) -> str:
        assert self.incident.id is not None
        return self.incident.id

    def with_data(self, **changes: Any) -> IncidentState:
        return attrs.evolve(self, **changes)


