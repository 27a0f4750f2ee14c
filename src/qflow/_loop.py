"""The commands of the improvement loop: confirm or reject, analyse causes, plan and
track actions, verify, close, reopen; problems, known errors and risk points.
Mixed into :class:`qflow.Engine`.

Every command checks everything first (the order of stages, the shape of what it
records, then the plugins' ``qflow_transition_guard`` and ``qflow_command_guard``)
and records through ``Engine._record_many``, so a command is one store transaction
and a refused command leaves the incident exactly as it was. Policy (which guards,
fishbone branches, evidence kinds, reminders, metrics) belongs to plugins; the
built-in one is ``qflow_loop``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar
from zoneinfo import ZoneInfo

import attrs
from cattrs.errors import BaseValidationError

from qflow import events as ev
from qflow import lifecycle
from qflow._convert import ShapeError, structure_errors
from qflow.diagnostics import did_you_mean, json_path
from qflow.errors import InputError, TransitionError
from qflow.model import (
    Action,
    ActionStatus,
    Attachment,
    Cause,
    Command,
    IncidentState,
    KnownError,
    LedgerEntry,
    LedgerKind,
    Notification,
    Problem,
    RiskPoint,
    Stage,
    Suggestion,
    Verification,
    VerificationResult,
)
from qflow.store import IncidentQuery
from qflow._results import A_SENTENCE, A_VERIFICATION, SUGGESTIONS

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["LoopCommands", "METHODS"]

log = logging.getLogger("qflow.loop")

_V = TypeVar("_V")

#: How a cause may have been found.
METHODS = ("five_why", "fishbone", "note")
#: Stages in which causes may be recorded (confirmed and reopened move to analysing).
_CAUSE_STAGES = (Stage.CONFIRMED, Stage.REOPENED, Stage.ANALYSING)
#: Stages in which actions may be planned: containment right after confirmation.
_ACTION_STAGES = (Stage.CONFIRMED, Stage.REOPENED, Stage.ANALYSING, Stage.ACTING)
_VERBS = {Stage.CONFIRMED: "confirm", Stage.REJECTED: "reject", Stage.CLOSED: "close", Stage.REOPENED: "reopen"}

Item = tuple[str, Mapping[str, Any], "str | None"]


class LoopCommands(_Base):
    # -- moving between stages ------------------------------------------------------------

    def transition(self, incident_id: str, target: Stage | str, *, actor: str | None = None,
                   reason: str | None = None) -> IncidentState:
        """Move an incident to *target*, if the lifecycle and every guard allow it.

        :raises TransitionError: naming every reason it may not move yet.
        """
        if not isinstance(target, Stage):
            try:
                target = Stage(target)
            except ValueError:
                stages = [s.value for s in Stage]
                hint = did_you_mean(target, stages) or f"the stages are: {', '.join(stages)}"
                raise TransitionError(f"cannot move {incident_id} to {target!r}: there is no such stage ({hint})"
                                      ) from None
        state = self._load(incident_id)
        items = [self._move(state, target, reason, f"move {incident_id} to {target.value}")]
        return self._commit(state, items, actor=actor)

    def confirm(self, incident_id: str, *, actor: str | None = None, responsibility: str | None = None,
                team: str | None = None, owner: str | None = None, note: str | None = None) -> IncidentState:
        """Confirm the anomaly as real, with its responsibility class and whose it is.

        Known errors that may explain it are looked up and recorded with it."""
        state = self._load(incident_id)
        verb = f"confirm {incident_id}"
        problems = self._vocabulary_problems(responsibility, team)
        if problems:
            raise InputError(f"cannot {verb}: " + "; ".join(problems))
        items = [self._move(state, Stage.CONFIRMED, note, verb)]
        if responsibility or team or owner:
            items.append((ev.RESPONSIBILITY_CONFIRMED,
                          {"responsibility": responsibility, "team": team, "owner": owner, "note": note}, None))
        self._guard_command(state, Command("confirm", actor, None, {"responsibility": responsibility, "team": team,
                                                                     "owner": owner}), verb)
        suggestions = self.suggest_known_errors(incident_id)
        seen = [e for e in self.store.events(incident_id) if e.type == ev.KNOWN_ERRORS_SUGGESTED]
        if seen and [x["known_error"] for x in seen[-1].data["suggestions"]] == [x.known_error for x in suggestions]:
            suggestions = []  # already suggested as it arrived; the archive has nothing new for it
        if suggestions:
            items.append((ev.KNOWN_ERRORS_SUGGESTED,
                          {"suggestions": [self._conv.unstructure(s) for s in suggestions]}, "known-errors"))
        return self._commit(state, items, actor=actor)

    def reject(self, incident_id: str, reason: str | None, *, actor: str | None = None) -> IncidentState:
        """Reject the report as not an anomaly; it stays in the archive (and in the KPIs) as rejected."""
        state = self._load(incident_id)
        return self._commit(state, [self._move(state, Stage.REJECTED, reason, f"reject {incident_id}")], actor=actor)

    def act(self, incident_id: str, *, actor: str | None = None, reason: str | None = None) -> IncidentState:
        """Start working the planned actions: analysing (or reopened) to acting, once
        the guards allow it (a confirmed cause, when the ruleset asks for one)."""
        state = self._load(incident_id)
        return self._commit(state, [self._move(state, Stage.ACTING, reason, f"act on {incident_id}")], actor=actor)

    def close(self, incident_id: str, *, actor: str | None = None, reason: str | None = None) -> IncidentState:
        """Close the incident (the loop's last stage), if the lifecycle and the guards allow
        it. Not to be confused with closing the engine's store: ``engine.store.close()``.

        :raises TransitionError: naming every reason it may not close yet.
        """
        state = self._load(incident_id)
        return self._commit(state, [self._move(state, Stage.CLOSED, reason, f"close {incident_id}")], actor=actor)

    def reopen(self, incident_id: str, reason: str | None, *, actor: str | None = None) -> IncidentState:
        state = self._load(incident_id)
        return self._commit(state, [self._move(state, Stage.REOPENED, reason, f"reopen {incident_id}")], actor=actor)

    def reassign(self, incident_id: str, *, team: str | None = None, owner: str | None = None,
                 reason: str | None = None, actor: str | None = None) -> IncidentState:
        """Give the incident to another team or owner; the reason is part of the log."""
        state = self._load(incident_id)
        verb = f"reassign {incident_id}"
        problems = []
        if state.stage in lifecycle.FINISHED:
            problems.append(f"it is {state.stage.value}")
        if not team and not owner:
            problems.append("name the new team or owner")
        if not (reason or "").strip():
            problems.append("give the reason for reassigning it")
        problems += self._vocabulary_problems(None, team)
        if problems:
            raise InputError(f"cannot {verb}: " + "; ".join(problems))
        self._guard_command(state, Command("reassign", actor, None, {"team": team, "owner": owner}), verb)
        d = state.decision
        data = {"team": team, "owner": owner, "reason": reason,
                "from_team": d.team if d else None, "from_owner": d.owner if d else None}
        return self._commit(state, [(ev.REASSIGNED, data, None)], actor=actor)

    # -- causes -----------------------------------------------------------------------------

    def record_cause(self, incident_id: str, cause: Cause | Mapping[str, Any], *,
                     actor: str | None = None) -> IncidentState:
        """Record a (candidate) cause (a :class:`Cause`, or a mapping of its fields). A
        confirmed or reopened incident moves to analysing with it; a cause recorded as
        confirmed makes the others candidates again."""
        cause = self._given(cause, Cause, "cause")
        state = self._load(incident_id)
        verb = f"record a cause on {incident_id}"
        if state.stage not in _CAUSE_STAGES:
            hint = "; go back to analysing first" if state.stage in (Stage.ACTING, Stage.VERIFYING) else ""
            raise TransitionError(f"cannot {verb}: it is {state.stage.value}, not analysing{hint}")
        if cause.recorded_by is None and actor is not None:
            cause = attrs.evolve(cause, recorded_by=actor)
        if any(e.added_by is None for e in cause.evidence) and actor is not None:
            cause = attrs.evolve(cause, evidence=[e if e.added_by else attrs.evolve(e, added_by=actor)
                                                  for e in cause.evidence])
        problems = _cause_problems(cause, state)
        if cause.responsibility is not None:
            problems += self._vocabulary_problems(cause.responsibility, None)
        if problems:
            raise InputError(f"cannot {verb}: " + "; ".join(problems))
        items: list[Item] = []
        if state.stage is not Stage.ANALYSING:
            items.append(self._move(state, Stage.ANALYSING, f"cause {cause.id} recorded", verb))
        self._guard_command(state, Command("record_cause", actor, cause), verb)
        items.append((ev.CAUSE_RECORDED, self._conv.unstructure(cause), None))
        if cause.confirmed and any(c.confirmed for c in state.causes):
            items.append((ev.CAUSE_CONFIRMED, {"id": cause.id}, None))
        return self._commit(state, items, actor=actor)

    def confirm_cause(self, incident_id: str, cause_id: str, *, actor: str | None = None) -> IncidentState:
        """Confirm one candidate as the root cause; the others stay as candidates."""
        state = self._load(incident_id)
        verb = f"confirm cause {cause_id} of {incident_id}"
        self._cause(state, cause_id, verb)
        if state.stage is not Stage.ANALYSING:
            raise TransitionError(f"cannot {verb}: it is {state.stage.value}, not analysing")
        self._guard_command(state, Command("confirm_cause", actor, None, {"id": cause_id}), verb)
        return self._commit(state, [(ev.CAUSE_CONFIRMED, {"id": cause_id}, None)], actor=actor)

    def add_evidence(self, incident_id: str, cause_id: str, evidence: Attachment | Mapping[str, Any], *,
                     actor: str | None = None) -> IncidentState:
        """Add a reference to evidence (photo, system log, video, interview notes) to a cause."""
        evidence = self._given(evidence, Attachment, "evidence")
        state = self._load(incident_id)
        verb = f"add evidence to cause {cause_id} of {incident_id}"
        self._cause(state, cause_id, verb)
        if state.stage in lifecycle.FINISHED:
            raise TransitionError(f"cannot {verb}: it is {state.stage.value}")
        if not evidence.ref.strip():
            raise InputError(f"cannot {verb}: the evidence needs a reference (a path, URL or document id)")
        if evidence.added_by is None:
            evidence = attrs.evolve(evidence, added_by=actor)
        self._guard_command(state, Command("add_evidence", actor, evidence, {"cause": cause_id}), verb)
        return self._commit(state, [(ev.EVIDENCE_ADDED, {"cause": cause_id,
                                                          "evidence": self._conv.unstructure(evidence)}, None)],
                            actor=actor)

    # -- actions ----------------------------------------------------------------------------

    def plan_action(self, incident_id: str, action: Action | Mapping[str, Any], *,
                    actor: str | None = None) -> IncidentState:
        """Plan a correction, corrective or preventive action (an :class:`Action`, or a
        mapping of its fields) with its owner and due date."""
        action = self._given(action, Action, "action")
        state = self._load(incident_id)
        verb = f"plan an action on {incident_id}"
        if state.stage not in _ACTION_STAGES:
            if state.stage in lifecycle.FINISHED:
                raise TransitionError(f"cannot {verb}: it is {state.stage.value}")
            raise TransitionError(f"cannot {verb}: it is {state.stage.value}; go back to analysing first")
        if any(a.id == action.id for a in state.actions):
            raise InputError(f"{incident_id} already has an action {action.id}; choose another id")
        now = self.clock.now()
        problems = []
        if not action.id.strip():
            problems.append("the action needs an id")
        if not action.description.strip():
            problems.append(f"action {action.id} needs a description")
        if not action.owner.strip():
            problems.append(f"action {action.id} needs an owner")
        if action.due <= now:
            problems.append(f"action {action.id} is due {self._when(action.due)}, which is already past; "
                            f"give a due date after {self._when(now)}")
        if action.status is not ActionStatus.PLANNED or action.done_at is not None or action.ledger:
            problems.append(f"a new action is planned, not {action.status.value}; record progress with update_action")
        if action.cause is not None and not any(c.id == action.cause for c in state.causes):
            known = ", ".join(c.id for c in state.causes) or "none yet"
            problems.append(f"action {action.id} aims at cause {action.cause}, which {incident_id} does not have; "
                            f"its causes: {known}")
        if problems:
            raise InputError(f"cannot {verb}: " + "; ".join(problems))
        self._guard_command(state, Command("plan_action", actor, action), verb)
        note = Notification(incident_id=incident_id, topic="action.planned", at=now, recipients=(action.owner,),
                            subject=f"{incident_id} {action.id}: {action.description}",
                            body=f"due {self._when(action.due)}; target: {action.target or '-'}",
                            data={"action": action.id, "due": action.due.isoformat(), "kind": action.kind.value})
        after = self._commit(state, [(ev.ACTION_PLANNED, self._conv.unstructure(action), None)], actor=actor,
                             notifications=(note,))
        self._hooks_action_planned(after, action, now)
        return after

    def log_action(self, incident_id: str, action_id: str, kind: LedgerKind | str, note: str, *,
                   actor: str | None = None, percent: int | None = None, due: datetime | None = None) -> IncidentState:
        """Write a line of the action's tracking ledger: progress, a deviation, or an
        adjustment (which may move the due date). Progress on a planned action starts it."""
        state = self._load(incident_id)
        verb = f"log on action {action_id} of {incident_id}"
        action = self._action(state, action_id, verb)
        kind = _ledger_kind(kind, verb)
        now = self.clock.now()
        problems = []
        if not action.open:
            problems.append(f"action {action_id} is already {action.status.value}")
        if not note.strip():
            problems.append("say what happened (the note is empty)")
        if percent is not None and not 0 <= percent <= 100:
            problems.append(f"percent {percent} is not between 0 and 100")
        if due is not None:
            if kind is not LedgerKind.ADJUSTMENT:
                problems.append("only an adjustment moves the due date")
            elif due <= now:
                problems.append(f"the new due date {self._when(due)} is already past; give one after {self._when(now)}")
        if problems:
            raise InputError(f"cannot {verb}: " + "; ".join(problems))
        entry = LedgerEntry(at=now, kind=kind, note=note, by=actor, percent=percent, due=due)
        self._guard_command(state, Command("log_action", actor, entry, {"id": action_id}), verb)
        items: list[Item] = [(ev.ACTION_LOGGED, {"id": action_id, "entry": self._conv.unstructure(entry)}, None)]
        if kind is LedgerKind.PROGRESS and action.status is ActionStatus.PLANNED:
            items.append((ev.ACTION_UPDATED, {"id": action_id, "status": ActionStatus.IN_PROGRESS.value,
                                              "done_at": None}, None))
        return self._commit(state, items, actor=actor)

    def update_action(self, incident_id: str, action_id: str, status: ActionStatus | str, *,
                      actor: str | None = None, note: str | None = None) -> IncidentState:
        """Start, finish or cancel an action (a cancellation needs its reason)."""
        state = self._load(incident_id)
        verb = f"update action {action_id} of {incident_id}"
        action = self._action(state, action_id, verb)
        try:
            status = ActionStatus(status)
        except ValueError:
            choices = ", ".join(s.value for s in ActionStatus)
            raise InputError(f"cannot {verb}: '{status}' is not one of: {choices}") from None
        if not action.open:
            raise InputError(f"cannot {verb}: it is already {action.status.value}")
        if status is ActionStatus.CANCELLED and not (note or "").strip():
            raise InputError(f"cannot {verb}: give the reason for cancelling it")
        if status is ActionStatus.PLANNED and action.status is not ActionStatus.PLANNED:
            raise InputError(f"cannot {verb}: it is {action.status.value} and cannot go back to planned")
        self._guard_command(state, Command("update_action", actor, action, {"status": status.value, "note": note}),
                            verb)
        done_at = self.clock.now().isoformat() if status is ActionStatus.DONE else None
        data: dict[str, Any] = {"id": action_id, "status": status.value, "done_at": done_at}
        if note:
            data["note"] = note
        return self._commit(state, [(ev.ACTION_UPDATED, data, None)], actor=actor)

    # -- verification -----------------------------------------------------------------------

    def record_verification(self, incident_id: str, verification: Verification | Mapping[str, Any], *,
                            actor: str | None = None) -> IncidentState:
        """Record whether the measures worked (a :class:`Verification`, or a mapping of
        its fields). An acting incident whose actions are all done moves to verifying
        with it; an ineffective result sends it back to analysing at once, with the
        figures."""
        verification = self._given(verification, Verification, "verification")
        state = self._load(incident_id)
        verb = f"verify {incident_id}"
        items: list[Item] = []
        if state.stage is Stage.ACTING:
            items.append(self._move(state, Stage.VERIFYING, "verification recorded", verb))
        elif state.stage is not Stage.VERIFYING:
            raise TransitionError(f"cannot {verb}: it is {state.stage.value}, not verifying")
        if verification.verifier is None and actor is not None and verification.method == "manual":
            verification = attrs.evolve(verification, verifier=actor)
        problems = []
        if not verification.metrics and not verification.figures:
            problems.append("a verification needs at least one metric; say what was measured "
                            "(e.g. repeats=0, satisfaction=4.6)")
        if verification.method == "manual" and not verification.verifier:
            problems.append("a manual verification needs its verifier")
        if problems:
            raise InputError(f"cannot {verb}: " + "; ".join(problems))
        self._guard_command(state, Command("record_verification", actor, verification), verb)
        items.extend(self.verification_items(verification))
        return self._commit(state, items, actor=actor)

    def verification_items(self, verification: Verification) -> list[Item]:
        """The events that record *verification* in verifying: the verification, and
        for an ineffective one the way back to analysing with its figures."""
        data = self._conv.unstructure(verification)
        items: list[Item] = [(ev.VERIFICATION_RECORDED, data, None)]
        if verification.result is VerificationResult.INEFFECTIVE:
            items.append((ev.STAGE_CHANGED, {
                "from": Stage.VERIFYING.value, "to": Stage.ANALYSING.value,
                "reason": f"verification ineffective: {figures_text(verification)}",
                "figures": data["figures"], "metrics": data["metrics"]}, "lifecycle"))
        return items

    def measure_effect(self, incident_id: str, now: datetime | None = None) -> Verification | None:
        """What the configured metrics say now about the incident's measures (nothing recorded)."""
        state = self._load(incident_id)
        return self._hooks._first("qflow_measure_effect", ("state", "store", "ruleset", "now"),  # type: ignore[no-any-return]
                                  (state, self.store, self.ruleset, now or self.clock.now()), A_VERIFICATION)

    # -- known errors, problems, risk points ------------------------------------------------------

    def known_errors(self) -> list[KnownError]:
        return [self._conv.structure(dict(data), KnownError) for _, _, data in self.store.documents("known_error")]

    def suggest_known_errors(self, incident_id: str) -> list[Suggestion]:
        """Known errors that may explain the incident, best first (``qflow_suggest_known_errors``)."""
        state = self._load(incident_id)
        return self._suggestions(state.incident, self.known_errors())

    def _suggestions(self, incident: Any, candidates: Sequence[KnownError]) -> list[Suggestion]:
        if not candidates:
            return []
        found = self._hooks._collect("qflow_suggest_known_errors", ("incident", "candidates", "ruleset"),
                                     (incident, tuple(candidates), self.ruleset), SUGGESTIONS)
        best: dict[str, Suggestion] = {}
        for suggestions in found:
            for s in suggestions or ():
                if s.known_error not in best or s.score > best[s.known_error].score:
                    best[s.known_error] = s
        return sorted(best.values(), key=lambda s: (-s.score, s.known_error))

    def archive_known_error(self, incident_id: str, *, workaround: str, actor: str | None = None,
                            known_error_id: str | None = None, keywords: Sequence[str] = ()) -> KnownError:
        """Keep the incident's confirmed root cause, with its workaround, in the known-error archive."""
        state = self._load(incident_id)
        confirmed = [c for c in state.causes if c.confirmed]
        if not confirmed:
            raise InputError(f"cannot archive a known error from {incident_id}: it has no confirmed cause; "
                             "confirm one first")
        if not workaround.strip():
            raise InputError(f"cannot archive a known error from {incident_id}: give the workaround")
        cause = confirmed[-1]
        known = {i for i, _, _ in self.store.documents("known_error")}
        kid = known_error_id or _next_id("KE", known)
        if known_error_id in known:
            raise InputError(f"known error {kid} already exists; choose another id")
        d = state.decision
        ke = KnownError(id=kid, summary=cause.root_cause, workaround=workaround, cause_code=cause.code,
                        category=d.category if d else state.incident.category, place=state.incident.place,
                        asset=state.incident.asset, keywords=tuple(keywords), incidents=(incident_id,),
                        recorded_at=self.clock.now())
        self.store.save_document("known_error", kid, self._conv.unstructure(ke), version=1)
        if state.problem is not None:
            doc = self.store.document("problem", state.problem)
            if doc is not None:
                version, data = doc
                self.store.save_document("problem", state.problem,
                                         {**data, "status": "known_error", "known_error": kid}, version=version + 1)
        return ke

    def problems(self) -> list[Problem]:
        """Every problem record, in id order."""
        return [self._conv.structure(dict(data), Problem) for _, _, data in self.store.documents("problem")]

    def risk_points(self, now: datetime | None = None, window: timedelta = timedelta(days=30), *,
                    min_count: int = 2) -> list[RiskPoint]:
        """Places, categories and confirmed causes with more incidents in the last
        *window* than in the window before (and at least *min_count*), most first."""
        now = now or self.clock.now()
        current = self.store.query(IncidentQuery(reported_from=now - window, reported_until=now))
        previous = self.store.query(IncidentQuery(reported_from=now - 2 * window, reported_until=now - window))
        counted_now, counted_before = _dimensions(current), _dimensions(previous)
        out = [RiskPoint(dim, value, n, counted_before.get((dim, value), 0))
               for (dim, value), n in counted_now.items()
               if n >= min_count and n > counted_before.get((dim, value), 0)]
        return sorted(out, key=lambda r: (-(r.count - r.previous), -r.count, r.dimension, r.value))

    # -- the pieces ---------------------------------------------------------------------------

    def _given(self, value: Any, cls: type[_V], what: str) -> _V:
        """*value* as a *cls*: itself, or structured from a mapping of its fields (every
        problem in one :class:`InputError`, located as in a report)."""
        if isinstance(value, cls):
            return value
        if not isinstance(value, Mapping):
            raise TypeError(f"{what} must be a qflow.{cls.__name__} or a mapping of its fields, got "
                            f"{type(value).__name__} {value!r}")
        try:
            return self._conv.structure(dict(value), cls)  # type: ignore[no-any-return]
        except (BaseValidationError, ShapeError, ValueError, TypeError) as exc:
            problems = structure_errors(exc, cls) or [((), "QF402", str(exc), None, "value")]
            lines = [f"{msg}{f' ({hint})' if hint else ''} @ {json_path(path[:-1] if at == 'parent' else path)}"
                     for path, _code, msg, hint, at in problems]
            raise InputError(f"{what} is not a qflow.{cls.__name__}: " + "; ".join(lines)) from None

    def _move(self, state: IncidentState, target: Stage, reason: str | None, verb: str) -> Item:
        """The StageChanged item for *state* → *target*, or TransitionError with every reason."""
        reasons = lifecycle.refusals(state, target)
        if not reasons:
            reasons = self._hooks.guard(state, target, self.ruleset, self.clock.now())
        needs_reason = target in (Stage.REJECTED, Stage.REOPENED)
        if needs_reason and not (reason or "").strip() and not reasons:
            reasons = [f"give the reason for {'rejecting' if target is Stage.REJECTED else 'reopening'} it"]
        if reasons:
            raise TransitionError(f"cannot {verb}: " + "; ".join(reasons))
        return (ev.STAGE_CHANGED, {"from": state.stage.value, "to": target.value, "reason": reason}, "lifecycle")

    def _guard_command(self, state: IncidentState, command: Command, verb: str) -> None:
        found = self._hooks._collect("qflow_command_guard", ("state", "command", "ruleset", "now"),
                                     (state, command, self.ruleset, self.clock.now()), A_SENTENCE)
        reasons = [r for r in found if r]
        if reasons:
            raise TransitionError(f"cannot {verb}: " + "; ".join(reasons))

    def _commit(self, state: IncidentState, items: Sequence[Item], *, actor: str | None,
                notifications: Sequence[Notification] = (), now: datetime | None = None) -> IncidentState:
        """Record *items* in one transaction, then tell the stage observers about every
        stage change among them, each with the states just before and after it."""
        after = self._record_many(state, items, actor=actor, notifications=notifications, now=now)
        if any(t == ev.STAGE_CHANGED for t, _, _ in items):
            before = state
            for event in self.store.events(state.id)[state.seq:after.seq]:
                step = ev.apply(before, event, self._conv)
                if event.type == ev.STAGE_CHANGED:
                    self._hooks.stage_changed(before, step, event.at)
                before = step
        return after

    def _hooks_action_planned(self, state: IncidentState, action: Action, now: datetime) -> None:
        # Observers run after the action is stored; one failing must not stop the others.
        for impl in reversed(self._hooks.pm.hook.qflow_action_planned.get_hookimpls()):
            kwargs = {"state": state, "action": action, "ruleset": self.ruleset, "now": now}
            try:
                impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
            except Exception:
                log.exception("plugin %s failed in qflow_action_planned for %s", impl.plugin_name, state.id)

    def _cause(self, state: IncidentState, cause_id: str, verb: str) -> Cause:
        for c in state.causes:
            if c.id == cause_id:
                return c
        known = ", ".join(c.id for c in state.causes) or "none"
        raise InputError(f"cannot {verb}: {state.id} has no cause {cause_id}; its causes: {known}")

    def _action(self, state: IncidentState, action_id: str, verb: str) -> Action:
        for a in state.actions:
            if a.id == action_id:
                return a
        known = ", ".join(a.id for a in state.actions) or "none"
        raise InputError(f"cannot {verb}: {state.id} has no action {action_id}; its actions: {known}")

    def _vocabulary_problems(self, responsibility: str | None, team: str | None) -> list[str]:
        problems = []
        for kind, name in (("responsibility", responsibility), ("team", team)):
            names = [str(n) for n in self.ruleset.names(kind)]
            if name is None or not names or name in names:
                continue
            hint = did_you_mean(name, names)
            problems.append(f"unknown {kind} '{name}' ({hint + ' ' if hint else ''}the ruleset has: {', '.join(names)})")
        return problems

    def _when(self, dt: datetime) -> str:
        return dt.astimezone(ZoneInfo(self.ruleset.timezone)).strftime("%Y-%m-%d %H:%M")


def _cause_problems(cause: Cause, state: IncidentState) -> list[str]:
    problems = []
    who = f"cause {cause.id}"
    if not cause.id.strip():
        problems.append("the cause needs an id")
    if any(c.id == cause.id for c in state.causes):
        problems.append(f"{state.id} already has a cause {cause.id}; choose another id")
    if not cause.summary.strip():
        problems.append(f"{who} needs a summary")
    if cause.method not in METHODS:
        problems.append(f"{who}: method '{cause.method}' is not one of: {', '.join(METHODS)}")
    if cause.method == "five_why":
        if not cause.whys:
            problems.append(f"{who}: a 5-Why chain needs at least one why → because step")
        else:
            for n, step in enumerate(cause.whys, 1):
                if not step.why.strip() or not step.because.strip():
                    problems.append(f"{who}: step {n} of the 5-Why chain needs both a why and a because")
            roots = [n for n, s in enumerate(cause.whys, 1) if s.root]
            if not cause.whys[-1].root:
                problems.append(f"{who}: the 5-Why chain has no root cause; mark its last step as the root (root: true)")
            early = [n for n in roots if n != len(cause.whys)]
            if early:
                problems.append(f"{who}: only the last step of a 5-Why chain is the root cause "
                                f"(step {early[0]} of {len(cause.whys)} is marked root)")
    elif cause.whys:
        problems.append(f"{who}: only a five_why cause has a why → because chain (method is {cause.method})")
    if cause.method == "fishbone" and not cause.branch:
        problems.append(f"{who}: a fishbone cause needs its branch (man, machine, method, material, "
                        "measurement, environment)")
    return problems


def _ledger_kind(kind: LedgerKind | str, verb: str) -> LedgerKind:
    try:
        return LedgerKind(kind)
    except ValueError:
        raise InputError(f"cannot {verb}: '{kind}' is not one of: "
                         f"{', '.join(k.value for k in LedgerKind)}") from None


def figures_text(verification: Verification) -> str:
    """``recurrence 3 → 4 (ineffective); satisfaction 4.1 → 3.8 (ineffective)``."""
    parts = []
    for f in verification.figures:
        parts.append(f"{f.metric} {_num(f.baseline)} → {_num(f.after)} ({f.result.value if f.result else 'no data'})")
    parts += [f"{k}={v}" for k, v in verification.metrics.items()]
    return "; ".join(parts) or verification.result.value


def _num(value: float | None) -> str:
    if value is None:
        return "-"
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def _next_id(prefix: str, known: set[str]) -> str:
    n = len(known) + 1
    while f"{prefix}-{n}" in known:
        n += 1
    return f"{prefix}-{n}"


def _dimensions(states: Sequence[IncidentState]) -> dict[tuple[str, str], int]:
    counts: dict[tuple[str, str], int] = {}
    for s in states:
        d = s.decision
        category = (d.category if d else None) or s.incident.category
        cause = next((c.code or c.summary for c in reversed(s.causes) if c.confirmed), None)
        for dim, value in (("place", s.incident.place), ("category", category), ("cause", cause)):
            if value:
                counts[(dim, value)] = counts.get((dim, value), 0) + 1
    return counts
