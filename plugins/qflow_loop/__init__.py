"""Built-in plugin: the policy of the improvement loop.

Section ``loop`` (every key optional): which guards gate the stages, the fishbone
branches and their responsibility classes, the evidence kinds, what an action must
state, reminders before/at/after an action's due date, how and when the effect is
verified, and when many incidents with one fingerprint open a problem.

Time-driven work goes through the engine's timers (``qflow_schedule``) and
``Engine.tick`` (``qflow_due``): action reminders (keys ``action:<id>:<step>``), the
verification after the observation window (key ``verify``) and the recurrence check
of an arriving incident (key ``loop:arrival``). Each step is read back from the log,
so it fires once however late or often ``tick`` runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

import qflow
from qflow import (
    Command,
    Effect,
    Event,
    IncidentState,
    KnownError,
    Notification,
    Ruleset,
    Section,
    Stage,
    Store,
    Suggestion,
    Timer,
    Verification,
    VerificationResult,
    format_duration,
    hookimpl,
)
from qflow import events as ev
from qflow import lifecycle
from qflow.diagnostics import did_you_mean
from qflow.model import Cause, Problem

from qflow_loop._measure import figures_text, fingerprint, latest_done, matches, measure, recurrences, unknown
from qflow_loop._spec import LoopSettings, LoopSpec, compile_loop

__all__ = ["fingerprint", "fishbone", "measure", "responsibility_of", "settings"]

_CONV = qflow.make_converter()
SOURCE = "plugin:loop"
#: The notification topics this plugin raises.
TOPICS = ("action.reminder", "action.due", "action.overdue", "verification.due",
          *(f"verification.{r.value}" for r in VerificationResult), "problem.opened")


def settings(ruleset: Ruleset) -> LoopSettings:
    """The compiled ``loop`` section of *ruleset* (defaults when it has none)."""
    found = ruleset.compiled("loop")
    if found is None:  # a ruleset compiled without this plugin: the defaults
        found = compile_loop(LoopSpec(), qflow.CompileContext(root={}, main_file="", timezone=_tz(ruleset),
                                                        functions={}, diagnostics=[]))
    return found


def _tz(ruleset: Ruleset) -> Any:
    from zoneinfo import ZoneInfo

    return ZoneInfo(ruleset.timezone)


def responsibility_of(cause: Cause, ruleset: Ruleset) -> str | None:
    """The responsibility class a cause points to: its own, else its fishbone branch's."""
    return cause.responsibility or (settings(ruleset).branches.get(cause.branch) if cause.branch else None)


def fishbone(state: IncidentState, ruleset: Ruleset) -> dict[str, list[Cause]]:
    """The incident's fishbone causes by branch, every configured branch present."""
    out: dict[str, list[Cause]] = {b: [] for b in settings(ruleset).branches}
    for c in state.causes:
        if c.method == "fishbone" and c.branch:
            out.setdefault(c.branch, []).append(c)
    return out


# -- the section -----------------------------------------------------------------------------


@hookimpl
def qflow_ruleset_sections() -> Sequence[Section]:
    return [Section("loop", LoopSpec, compile_loop, default=LoopSpec,
                    doc="the improvement loop: guards, fishbone branches, evidence, actions, reminders, "
                        "verification metrics, problems")]


@hookimpl
def qflow_notification_topics() -> Sequence[str]:
    return TOPICS


# -- guards ----------------------------------------------------------------------------------


@hookimpl
def qflow_transition_guard(state: IncidentState, target: Stage, ruleset: Ruleset) -> str | None:
    s = settings(ruleset)
    reasons = lifecycle.guard_refusals(state, target, s.policy, s.tz)
    return "; ".join(reasons) or None


@hookimpl
def qflow_command_guard(state: IncidentState, command: Command, ruleset: Ruleset) -> str | None:
    s = settings(ruleset)
    problems: list[str] = []
    subject = command.subject
    if command.name == "record_cause":
        if subject.method == "fishbone" and subject.branch and subject.branch not in s.branches:
            hint = did_you_mean(subject.branch, list(s.branches))
            problems.append(f"cause {subject.id}: '{subject.branch}' is not a fishbone branch "
                            f"({hint + ' ' if hint else ''}the branches are: {', '.join(s.branches)})")
        problems += _evidence_problems(subject.evidence, s)
    elif command.name == "add_evidence":
        problems += _evidence_problems((subject,), s)
    elif command.name == "plan_action":
        if s.spec.actions.require_target and not (subject.target or "").strip():
            problems.append(f"action {subject.id} needs a measurable target (e.g. 'no repeat in 30 days')")
        if s.spec.actions.require_feasibility and not (subject.feasibility or "").strip():
            problems.append(f"action {subject.id} needs its feasibility judged first")
    elif command.name == "record_verification":
        if subject.method == "manual" and not s.spec.verification.manual:
            problems.append("this ruleset verifies by measurement only (loop.verification.manual is false)")
        problems += _evidence_problems(subject.evidence, s)
    return "; ".join(problems) or None


def _evidence_problems(evidence: Sequence[Any], s: LoopSettings) -> list[str]:
    kinds = s.spec.evidence_kinds
    out = []
    for e in evidence:
        if e.kind not in kinds:
            hint = did_you_mean(e.kind, kinds)
            out.append(f"evidence '{e.ref}' is of kind '{e.kind}' ({hint + ' ' if hint else ''}"
                       f"the kinds are: {', '.join(kinds)})")
    return out


# -- timers ----------------------------------------------------------------------------------

_ACTIVE = (Stage.CONFIRMED, Stage.REOPENED, Stage.ANALYSING, Stage.ACTING, Stage.VERIFYING)


def _planned_at(events: Sequence[Event]) -> dict[str, datetime]:
    return {e.data["id"]: e.at for e in events if e.type == ev.ACTION_PLANNED}


def _reminded(events: Sequence[Event]) -> dict[str, list[tuple[str, str]]]:
    out: dict[str, list[tuple[str, str]]] = {}
    for e in events:
        if e.type == ev.ACTION_REMINDED:
            out.setdefault(e.data["id"], []).append((e.data["step"], e.data["due"]))
    return out


def _steps(due: datetime, planned: datetime, s: LoopSettings) -> list[tuple[str, datetime]]:
    r = s.spec.reminders
    steps = [(f"before:{format_duration(b)}", due - b) for b in r.before if due - b > planned]
    if r.at_due:
        steps.append(("due", due))
    if r.every is not None:
        steps += [(f"overdue:{k}", due + k * r.every) for k in range(1, r.limit + 1)]
    return sorted(steps, key=lambda x: x[1])


def _pending_steps(action: Any, planned: datetime, sent: list[tuple[str, str]], s: LoopSettings) -> list[tuple[str, datetime]]:
    """The steps after the last one sent for the action's current due date."""
    steps = _steps(action.due, planned, s)
    done_for_due = {step for step, due in sent if due == action.due.isoformat()}
    last = max((t for name, t in steps if name in done_for_due), default=None)
    return [(name, t) for name, t in steps if last is None or t > last]


def _verify_at(state: IncidentState, s: LoopSettings) -> datetime | None:
    if state.stage not in (Stage.ACTING, Stage.VERIFYING) or not state.actions:
        return None
    if any(a.open for a in state.actions):
        return None
    done = latest_done(state)
    if done is None:
        return None
    if any(v.at >= done for v in state.verifications):
        return None
    if not s.spec.verification.auto and state.stage is Stage.VERIFYING:
        return None  # waiting for a verifier
    return done + s.spec.verification.observe


def _arrival_pending(state: IncidentState, events: Sequence[Event], s: LoopSettings) -> bool:
    return s.spec.problems is not None and not any(e.type == ev.RECURRENCE_CHECKED for e in events) \
        and state.stage is not Stage.REJECTED


@hookimpl
def qflow_schedule(state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime) -> list[Timer]:
    s = settings(ruleset)
    timers = []
    if _arrival_pending(state, events, s):
        timers.append(Timer(state.id, "loop:arrival", state.incident.reported_at or now))
    if state.stage not in _ACTIVE:
        return timers
    planned, reminded = _planned_at(events), _reminded(events)
    for a in state.actions:
        if not a.open:
            continue
        pending = _pending_steps(a, planned.get(a.id, now), reminded.get(a.id, []), s)
        if pending:
            name, at = pending[0]
            timers.append(Timer(state.id, f"action:{a.id}:{name}", at))
    at = _verify_at(state, s)
    if at is not None:
        timers.append(Timer(state.id, "verify", at))
    return timers


@hookimpl
def qflow_due(state: IncidentState, events: Sequence[Event], timers: Sequence[Timer], ruleset: Ruleset,
              now: datetime, store: Store) -> list[Effect]:
    s = settings(ruleset)
    keys = {t.key for t in timers}
    effects: list[Effect] = []
    if "loop:arrival" in keys and _arrival_pending(state, events, s):
        effects += _arrival(state, store, s, now)
    if any(k.startswith("action:") for k in keys) and state.stage in _ACTIVE:
        effects += _reminders(state, events, s, now)
    if "verify" in keys:
        effects += _verification(state, store, s, now)
    return effects


def _recipients(state: IncidentState, *extra: str) -> tuple[str, ...]:
    d = state.decision
    names = [x for x in ((d.owner, d.team) if d else ()) if x]
    return tuple(dict.fromkeys([*names, *extra]))


def _reminders(state: IncidentState, events: Sequence[Event], s: LoopSettings, now: datetime) -> list[Effect]:
    planned, reminded = _planned_at(events), _reminded(events)
    r = s.spec.reminders
    out = []
    for a in state.actions:
        if not a.open:
            continue
        ripe = [(n, t) for n, t in _pending_steps(a, planned.get(a.id, now), reminded.get(a.id, []), s) if t <= now]
        if not ripe:
            continue
        step, _at = ripe[-1]  # after a pause, the latest step only: one message, not a burst
        overdue = now - a.due
        recipients = [a.owner]
        if step.startswith("overdue") and r.escalate_after is not None and overdue >= r.escalate_after:
            recipients += list(r.escalate_to)
        topic = "action.overdue" if step.startswith("overdue") else ("action.due" if step == "due" else "action.reminder")
        local_due = a.due.astimezone(s.tz).strftime("%Y-%m-%d %H:%M")
        when = (f"overdue by {format_duration(overdue)}" if overdue > timedelta(0)
                else f"due {local_due}" if step == "due" else f"due in {format_duration(-overdue)}")
        data = {"id": a.id, "step": step, "due": a.due.isoformat(), "owner": a.owner,
                "overdue": format_duration(overdue) if overdue > timedelta(0) else None}
        note = Notification(incident_id=state.id, topic=topic, at=now, recipients=tuple(dict.fromkeys(recipients)),
                            subject=f"{state.id} action {a.id} {when}: {a.description}",
                            body=f"owner {a.owner}; due {local_due}; target: {a.target or '-'}", data=data)
        out.append(Effect(ev.ACTION_REMINDED, SOURCE, data, (note,)))
    return out


def _verification(state: IncidentState, store: Store, s: LoopSettings, now: datetime) -> list[Effect]:
    at = _verify_at(state, s)
    if at is None or at > now:
        return []
    out = []
    window = format_duration(s.spec.verification.observe)
    if state.stage is Stage.ACTING:
        out.append(Effect(ev.STAGE_CHANGED, SOURCE, {
            "from": "acting", "to": "verifying",
            "reason": f"every action done; the observation window of {window} is over"}))
    if not s.spec.verification.auto:
        note = Notification(incident_id=state.id, topic="verification.due", at=now,
                            recipients=_recipients(state, *s.spec.verification.notify),
                            subject=f"{state.id} is ready to verify", body=f"observed for {window} after the last action")
        return [attrs.evolve(out[0], notifications=(note,))] if out else []
    verification = measure(state, store, s, at)
    out += verification_effects(state, verification, s, now)
    return out


def verification_effects(state: IncidentState, verification: Verification, s: LoopSettings,
                         now: datetime) -> list[Effect]:
    """Record *verification*; an ineffective one goes back to analysing with its figures."""
    data = _CONV.unstructure(verification)
    text = figures_text(verification)
    note = Notification(incident_id=state.id, topic=f"verification.{verification.result.value}", at=now,
                        recipients=_recipients(state, *s.spec.verification.notify),
                        subject=f"{state.id} verification {verification.result.value}", body=text,
                        data={"figures": data["figures"]})
    out = [Effect(ev.VERIFICATION_RECORDED, SOURCE, data, (note,))]
    if verification.result is VerificationResult.INEFFECTIVE:
        out.append(Effect(ev.STAGE_CHANGED, SOURCE, {
            "from": "verifying", "to": "analysing", "reason": f"verification ineffective: {text}",
            "figures": data["figures"], "metrics": data["metrics"]}))
    return out


def _arrival(state: IncidentState, store: Store, s: LoopSettings, now: datetime) -> list[Effect]:
    """Count the incidents like this one in the window; open or join a problem."""
    p = s.spec.problems
    assert p is not None
    at = state.incident.reported_at or now
    fp = fingerprint(state, s.problem_fingerprint)
    like = recurrences(store, fp, at - p.window, at + timedelta(microseconds=1))
    ids = sorted({x.id for x in like} | {state.id}, key=_id_key)
    fp_data = {k: v for k, v in fp.items()}
    kindless = bool(unknown(fp))  # no place is no place they share: counted alone, never a problem
    problem = None if kindless else _open_problem(store, fp_data)
    opened = False
    if problem is None and not kindless and len(ids) >= p.threshold:
        known = {i for i, _, _ in store.documents("problem")}
        n = len(known) + 1
        while f"PRB-{n}" in known:
            n += 1
        problem = Problem(id=f"PRB-{n}", fingerprint=fp_data, opened_at=now, incidents=tuple(ids),
                          reason=f"{len(ids)} incidents with {_fp_text(fp_data)} within {format_duration(p.window)}")
        store.save_document("problem", problem.id, _CONV.unstructure(problem), version=1)
        opened = True
    elif problem is not None and state.id not in problem.incidents:
        version = store.document("problem", problem.id)[0]  # type: ignore[index]
        problem = attrs.evolve(problem, incidents=problem.incidents + (state.id,))
        store.save_document("problem", problem.id, _CONV.unstructure(problem), version=version + 1)
    data = {"fingerprint": fp_data, "count": len(ids), "window": format_duration(p.window),
            "problem": problem.id if problem else None, "opened": opened}
    notes: tuple[Notification, ...] = ()
    if opened:
        assert problem is not None
        notes = (Notification(incident_id=state.id, topic="problem.opened", at=now, recipients=tuple(p.notify),
                              subject=f"problem {problem.id}: {problem.reason}",
                              body=", ".join(problem.incidents), data={"problem": problem.id}),)
    return [Effect(ev.RECURRENCE_CHECKED, SOURCE, data, notes)]


def _open_problem(store: Store, fp: dict[str, Any]) -> Problem | None:
    for _id, _version, data in store.documents("problem"):
        problem = _CONV.structure(dict(data), Problem)
        if problem.status != "closed" and dict(problem.fingerprint) == fp:
            return problem
    return None


def _fp_text(fp: dict[str, Any]) -> str:
    return ", ".join(f"{k} {v}" for k, v in fp.items())


def _id_key(iid: str) -> tuple[str, int]:
    head, _, tail = iid.rpartition("-")
    return (head, int(tail)) if tail.isdigit() else (iid, 0)


# -- effect and known errors -----------------------------------------------------------------------


@hookimpl(trylast=True)
def qflow_measure_effect(state: IncidentState, store: Store, ruleset: Ruleset, now: datetime) -> Verification | None:
    return measure(state, store, settings(ruleset), now)


@hookimpl(trylast=True)
def qflow_suggest_known_errors(incident: qflow.Incident, candidates: Sequence[KnownError],
                               ruleset: Ruleset) -> list[Suggestion]:
    """Category, place and asset in common, and keywords found in the text."""
    text = f"{incident.title or ''} {incident.description}".lower()
    out = []
    for ke in candidates:
        score, why = 0.0, []
        if ke.category and ke.category == incident.category:
            score += 0.4
            why.append(f"same category '{ke.category}'")
        if ke.place and ke.place == incident.place:
            score += 0.2
            why.append(f"same place '{ke.place}'")
        if ke.asset and ke.asset == incident.asset:
            score += 0.2
            why.append(f"same asset '{ke.asset}'")
        hits = [k for k in ke.keywords if k.lower() in text]
        if hits:
            score += 0.2 * len(hits) / len(ke.keywords)
            why.append("mentions " + ", ".join(f"'{k}'" for k in hits))
        if score >= 0.4:
            out.append(Suggestion(ke.id, round(min(score, 1.0), 2), "; ".join(why), ke.workaround, SOURCE))
    return out


__all__ += ["matches", "recurrences", "verification_effects"]
