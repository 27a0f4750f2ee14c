"""The closed loop: which stage may follow which, and what must be true first.

``reported → confirmed | rejected → analysing → acting → verifying → closed``, with
``verifying → analysing`` when the effect is not good enough and ``reopened`` after a
close (or a wrong rejection). The kernel's guards are below; plugins add theirs with
the ``qflow_transition_guard`` hook.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from qflow.model import ActionStatus, IncidentState, Stage, VerificationResult

__all__ = ["TRANSITIONS", "allowed", "kernel_guards", "refusals"]

S = Stage

#: Every stage and the stages that may follow it.
TRANSITIONS: Mapping[Stage, frozenset[Stage]] = {
    S.REPORTED: frozenset({S.CONFIRMED, S.REJECTED}),
    S.CONFIRMED: frozenset({S.ANALYSING, S.ACTING}),
    S.REJECTED: frozenset({S.REOPENED}),
    S.ANALYSING: frozenset({S.ACTING}),
    S.ACTING: frozenset({S.VERIFYING, S.ANALYSING}),
    S.VERIFYING: frozenset({S.CLOSED, S.ANALYSING}),
    S.CLOSED: frozenset({S.REOPENED}),
    S.REOPENED: frozenset({S.CONFIRMED, S.ANALYSING}),
}


def allowed(source: Stage, target: Stage) -> bool:
    return target in TRANSITIONS[source]


def _acting(state: IncidentState) -> str | None:
    # A correction (immediate containment) may start straight from confirmation, but
    # corrective action after analysis needs a cause to aim at.
    if state.stage is S.ANALYSING and not state.causes:
        return "record a cause first (no acting without a cause)"
    if state.stage is S.REJECTED:
        return "a rejected incident cannot gather actions"
    return None


def _verifying(state: IncidentState) -> str | None:
    if not state.actions:
        return "plan at least one action first"
    open_ = [a for a in state.actions if a.status not in (ActionStatus.DONE, ActionStatus.CANCELLED)]
    if open_:
        a = open_[0]
        more = f" (and {len(open_) - 1} more)" if len(open_) > 1 else ""
        return f"action {a.id} is still {a.status.value}, due {a.due.date().isoformat()}{more}"
    return None


def _closing(state: IncidentState) -> str | None:
    if not state.verifications:
        return "record a verification first (no closing without one)"
    last = state.verifications[-1]
    if last.result is not VerificationResult.EFFECTIVE:
        return f"the last verification was {last.result.value}; go back to analysing"
    open_ = [a for a in state.actions if a.status not in (ActionStatus.DONE, ActionStatus.CANCELLED)]
    if open_:
        return f"action {open_[0].id} is still {open_[0].status.value}, due {open_[0].due.date().isoformat()}"
    return None



#: The kernel's guards, by target stage: each returns None or why not.
kernel_guards: Mapping[Stage, Callable[[IncidentState], str | None]] = {
    S.ACTING: _acting,
    S.VERIFYING: _verifying,
    S.CLOSED: _closing,
}


def refusals(state: IncidentState, target: Stage) -> list[str]:
    """Why *state* may not move to *target*, as sentences; empty when it may."""
    if not allowed(state.stage, target):
        nexts = ", ".join(sorted(s.value for s in TRANSITIONS[state.stage]))
        return [f"{state.stage.value} cannot move to {target.value}; from {state.stage.value} it can move to: {nexts}"]
    guard = kernel_guards.get(target)
    reason = guard(state) if guard else None
    return [reason] if reason else []
