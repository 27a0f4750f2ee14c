"""The closed loop: which stage may follow which, and what must be true first.

``reported → confirmed | rejected → analysing → acting → verifying → closed``, with
``verifying → analysing`` when the effect is not good enough and ``reopened`` after a
close (or a wrong rejection).

The kernel enforces only the order of stages (:func:`refusals`). What must be true
before a stage may be entered is a :class:`GuardPolicy`: the guard functions below
are pure and the ``loop`` plugin applies them with the policy of the ruleset's
``loop.guards`` through the ``qflow_transition_guard`` hook, so a site can loosen or
tighten them, or add its own.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Mapping
from datetime import datetime, tzinfo

import attrs

from qflow.model import Action, IncidentState, Stage, VerificationResult

__all__ = [
    "TRANSITIONS", "CauseRule", "GuardPolicy", "allowed", "guard_refusals", "guards", "open_action_note",
    "refusals",
]

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

#: Stages in which an incident gathers no causes or actions.
FINISHED = frozenset({S.REJECTED, S.CLOSED})


class CauseRule(str, enum.Enum):
    """What ``acting`` needs: a confirmed cause, any recorded cause, or nothing."""

    CONFIRMED = "confirmed"
    ANY = "any"
    OFF = "off"


@attrs.frozen
class GuardPolicy:
    """Which guards are on. The defaults are the quality process of DOMAIN.md."""

    cause_before_acting: CauseRule = CauseRule.CONFIRMED
    actions_done_before_verifying: bool = True
    verification_before_closing: bool = True
    close_on_partial: bool = False
    actions_done_before_closing: bool = True
    no_actions_when_rejected: bool = True


def allowed(source: Stage, target: Stage) -> bool:
    return target in TRANSITIONS[source]


def _day(dt: datetime, tz: tzinfo | None) -> str:
    return (dt.astimezone(tz) if tz is not None else dt).date().isoformat()


def open_action_note(actions: tuple[Action, ...], tz: tzinfo | None = None) -> str | None:
    """``action A-3 is still open, due 2026-12-01`` for the first open action, or None."""
    open_ = [a for a in actions if a.open]
    if not open_:
        return None
    a = open_[0]
    more = f" (and {len(open_) - 1} more)" if len(open_) > 1 else ""
    return f"action {a.id} is still open, due {_day(a.due, tz)}{more}"


def _acting(state: IncidentState, policy: GuardPolicy, tz: tzinfo | None) -> str | None:
    rule = CauseRule(policy.cause_before_acting)
    if rule is CauseRule.OFF:
        return None
    if not state.causes:
        need = "a confirmed cause" if rule is CauseRule.CONFIRMED else "a cause"
        return f"record a cause first (no acting without {need})"
    if rule is CauseRule.CONFIRMED and not any(c.confirmed for c in state.causes):
        ids = ", ".join(c.id for c in state.causes)
        return f"confirm one of the causes first ({ids}): no acting without a confirmed cause"
    return None


def _verifying(state: IncidentState, policy: GuardPolicy, tz: tzinfo | None) -> str | None:
    if not policy.actions_done_before_verifying:
        return None
    if not state.actions:
        return "plan at least one action first"
    return open_action_note(state.actions, tz)


def _closing(state: IncidentState, policy: GuardPolicy, tz: tzinfo | None) -> str | None:
    if policy.verification_before_closing:
        if not state.verifications:
            return "record a verification first (no closing without one)"
        last = state.verifications[-1].result
        if last is VerificationResult.INEFFECTIVE:
            return "the last verification was ineffective; verify again or go back to analysing"
        if last is VerificationResult.PARTIAL and not policy.close_on_partial:
            return "the last verification was partial; verify again or go back to analysing"
    if policy.actions_done_before_closing:
        return open_action_note(state.actions, tz)
    return None


#: The guards, by target stage: each returns None or why not.
guards: Mapping[Stage, Callable[[IncidentState, GuardPolicy, tzinfo | None], str | None]] = {
    S.ACTING: _acting,
    S.VERIFYING: _verifying,
    S.CLOSED: _closing,
}


def refusals(state: IncidentState, target: Stage) -> list[str]:
    """Why *state* may not move to *target* by the order of stages; empty when it may."""
    if not allowed(state.stage, target):
        nexts = ", ".join(sorted(s.value for s in TRANSITIONS[state.stage]))
        return [f"{state.stage.value} cannot move to {target.value}; from {state.stage.value} it can move to: {nexts}"]
    return []


def guard_refusals(state: IncidentState, target: Stage, policy: GuardPolicy = GuardPolicy(),
                   tz: tzinfo | None = None) -> list[str]:
    """Why the guards of *policy* keep *state* out of *target*; dates shown in *tz*."""
    guard = guards.get(target)
    reason = guard(state, policy, tz) if guard else None
    return [reason] if reason else []
