"""The commands of the improvement loop: move between stages, record causes, actions
and verifications. Mixed into :class:`qflow.Engine`; every command records through
``Engine._record_many``, so each is one store transaction."""

from __future__ import annotations

from typing import TYPE_CHECKING

from qflow import events as ev
from qflow import lifecycle
from qflow.errors import InputError, TransitionError
from qflow.model import Action, ActionStatus, Cause, IncidentState, Stage, Verification

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["LoopCommands"]


class LoopCommands(_Base):
    def transition(self, incident_id: str, target: Stage | str, *, actor: str | None = None,
                   reason: str | None = None) -> IncidentState:
        """Move an incident to *target*, if the lifecycle and every guard allow it.

        :raises TransitionError: naming every reason it may not move yet.
        """
        target = Stage(target)
        state = self._load(incident_id)
        now = self.clock.now()
        reasons = lifecycle.refusals(state, target)
        if not reasons:
            reasons = self._hooks.guard(state, target, self.ruleset, now)
        if target is Stage.REJECTED and not reason and not reasons:
            reasons = ["give the reason for rejecting it"]
        if reasons:
            raise TransitionError(f"cannot move {incident_id} to {target.value}: " + "; ".join(reasons))
        after = self._record(state, ev.STAGE_CHANGED,
                             {"from": state.stage.value, "to": target.value, "reason": reason},
                             actor=actor, source="lifecycle")
        self._hooks.stage_changed(state, after, now)
        return after

    def record_cause(self, incident_id: str, cause: Cause, *, actor: str | None = None) -> IncidentState:
        state = self._load(incident_id)
        if state.stage is not Stage.ANALYSING:
            raise TransitionError(f"cannot record a cause on {incident_id}: it is {state.stage.value}, not analysing")
        return self._record(state, ev.CAUSE_RECORDED, self._conv.unstructure(cause), actor=actor)

    def plan_action(self, incident_id: str, action: Action, *, actor: str | None = None) -> IncidentState:
        state = self._load(incident_id)
        if state.stage in (Stage.REJECTED, Stage.CLOSED):
            raise TransitionError(f"cannot plan an action on {incident_id}: it is {state.stage.value}")
        if any(a.id == action.id for a in state.actions):
            raise InputError(f"{incident_id} already has an action {action.id}; choose another id")
        return self._record(state, ev.ACTION_PLANNED, self._conv.unstructure(action), actor=actor)

    def update_action(self, incident_id: str, action_id: str, status: ActionStatus | str, *,
                      actor: str | None = None) -> IncidentState:
        state = self._load(incident_id)
        if not any(a.id == action_id for a in state.actions):
            known = ", ".join(a.id for a in state.actions) or "none"
            raise InputError(f"{incident_id} has no action {action_id}; its actions: {known}")
        status = ActionStatus(status)
        done_at = self.clock.now().isoformat() if status is ActionStatus.DONE else None
        return self._record(state, ev.ACTION_UPDATED, {"id": action_id, "status": status.value, "done_at": done_at},
                            actor=actor)

    def record_verification(self, incident_id: str, verification: Verification, *,
                            actor: str | None = None) -> IncidentState:
        state = self._load(incident_id)
        if state.stage is not Stage.VERIFYING:
            raise TransitionError(f"cannot verify {incident_id}: it is {state.stage.value}, not verifying")
        return self._record(state, ev.VERIFICATION_RECORDED, self._conv.unstructure(verification), actor=actor)

