"""The engine: decide (pure), report, move through the loop. Effects go to the store.

One engine holds one ruleset, one plugin manager, one store and one clock, all passed
in; there is no global state, so several engines live side by side in one process.
"""

from __future__ import annotations

import logging
import os
import secrets
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from zoneinfo import ZoneInfo
from operator import itemgetter
from typing import Any, TypeVar

import attrs
import pluggy
from cattrs.errors import BaseValidationError

from qflow import events as ev
from qflow._convert import ShapeError, lone_surrogate, make_converter, structure_errors
from qflow._manager import make_plugin_manager
from qflow._view import incident_view
from qflow.clock import Clock, SystemClock, given_time
from qflow.diagnostics import did_you_mean, json_path
from qflow._frozen import FrozenDict
from qflow.errors import ConcurrencyError, IncidentNotFoundError, InputError, PluginError, QflowError
from qflow.model import (
    Assignment,
    Classification,
    Decision,
    Effect,
    Event,
    Incident,
    IncidentState,
    Notification,
    Stage,
    Trace,
    TraceStep,
)
from qflow.ruleset import Ruleset, load_ruleset
from qflow.store import (Due, IncidentQuery, MemoryStore, OutboxMessage, Projection, Store, StoreError, Timer, Write,
                         clock_dues)
from qflow._loop import LoopCommands
from qflow._delivery import Delivery
from qflow._tick import Scheduling
from qflow._intake import Intake, report_differences, within_calendar
from qflow._versions import Versions
from qflow._contact import ContactCommands
from qflow._results import (
    A_CLASSIFICATION,
    A_SENTENCE,
    AN_ASSIGNMENT,
    DEADLINES,
    DUE_MOMENTS,
    EFFECTS,
    MESSAGES,
    ROWS,
    TIMERS,
    TRACE_STEPS,
    Expect,
)
from qflow._survey import SurveyCommands

__all__ = ["Engine", "open_store", "parse_incident"]

log = logging.getLogger("qflow")

_T = TypeVar("_T")

#: How many times a report runs in all when other writers keep getting in first (see
#: ``Engine._again_after_races``): a lost race is settled by the next run, except
#: for many writers attaching to one incident at the same moment, one per round.
_RACES = 16

_CLASSIFY_ARGS = ("incident", "view", "ruleset", "now")
_ROUTE_ARGS = ("incident", "view", "classification", "ruleset", "now")
_DEADLINE_ARGS = ("incident", "classification", "assignment", "ruleset", "now")
_SCHEDULE_ARGS = _PROJECT_ARGS = ("state", "events", "ruleset", "now")
_PLAN_DELIVERY_ARGS = ("notification", "state", "ruleset", "now")
_DUE_ARGS = ("state", "events", "timers", "ruleset", "now", "store", "plugins")
_HOLD_ARGS = ("notifications", "state", "events", "ruleset", "now", "store")
_EXPLAIN_ARGS = ("incident", "view", "classification", "assignment", "ruleset", "now")
_GUARD_ARGS = ("state", "target", "ruleset", "now")


def _picker(idx: tuple[int, ...]) -> Callable[[tuple[Any, ...]], tuple[Any, ...]]:
    """The arguments one implementation takes, picked from a hook's full argument tuple
    (an itemgetter picks in C what a list comprehension would in a frame of its own)."""
    if len(idx) > 1:
        return itemgetter(*idx)
    if idx:
        i = idx[0]
        return lambda values: (values[i],)
    return lambda values: ()


class _Hooks:
    """The typed facade the engine calls plugins through (keyword arguments only).

    The three per-decision hooks, and the per-incident hooks of a command's write
    (schedule, hold, plan delivery, project) and of a tick (due), are called through a
    plan built from pluggy's own implementation list, in pluggy's order and with its
    semantics (collect all, or stop at the first non-None result): pluggy's generic
    call costs about 1.5 µs per hook, as much as the rules themselves. The plan is
    rebuilt whenever the list of implementations changes; a hook with wrappers goes
    through pluggy as usual.
    """

    def __init__(self, pm: pluggy.PluginManager, store: Store | None = None) -> None:
        self.pm = pm
        self.store = store  # handed to hooks that read other incidents (qflow_due)
        self._hook = pm.hook
        #: hook name -> (pluggy's live list, the copy the plan was built from, the plan)
        self._plans: dict[str, tuple[list[Any] | None, list[Any], Any]] = {}

    def _plan(self, name: str, args: tuple[str, ...]) -> Any:
        # pluggy changes its own list in place as plugins come and go: comparing it
        # item by item with the copy the plan was built from is the whole check.
        cached = self._plans.get(name)
        if cached is not None and cached[0] is not None and cached[0] == cached[1]:
            return cached[2]
        return self._replan(name, args, cached)

    def _replan(self, name: str, args: tuple[str, ...], cached: tuple[Any, list[Any], Any] | None) -> Any:
        caller = getattr(self._hook, name)
        live = getattr(caller, "_hookimpls", None)
        impls = list(live) if live is not None else caller.get_hookimpls()  # get_hookimpls() copies
        if cached is not None and cached[1] == impls:
            return cached[2]
        if any(i.hookwrapper or i.wrapper for i in impls):
            plan = None
        else:
            plan = tuple((i.function, _picker(tuple(args.index(a) for a in i.argnames))) for i in reversed(impls))
        self._plans[name] = (live, impls, plan)
        return plan

    def classify(self, incident: Incident, view: dict[str, Any], ruleset: Ruleset, now: datetime) -> list[Classification]:
        return self._collect("qflow_classify", _CLASSIFY_ARGS, (incident, view, ruleset, now), A_CLASSIFICATION)

    def route(self, incident: Incident, view: dict[str, Any], classification: Classification,
              ruleset: Ruleset, now: datetime) -> Assignment | None:
        return self._first("qflow_route", _ROUTE_ARGS, (incident, view, classification, ruleset, now),
                           AN_ASSIGNMENT)

    def deadline(self, incident: Incident, classification: Classification, assignment: Assignment,
                 ruleset: Ruleset, now: datetime) -> Sequence[Any] | None:
        return self._first("qflow_deadline", _DEADLINE_ARGS, (incident, classification, assignment, ruleset, now),
                           DEADLINES)

    def explain(self, incident: Incident, view: dict[str, Any], classification: Classification,
                assignment: Assignment, ruleset: Ruleset, now: datetime) -> tuple[TraceStep, ...]:
        parts = self._collect("qflow_explain", _EXPLAIN_ARGS, (incident, view, classification, assignment, ruleset,
                                                               now), TRACE_STEPS)
        return tuple(step for steps in parts for step in steps)

    def guard(self, state: IncidentState, target: Stage, ruleset: Ruleset, now: datetime) -> list[str]:
        return [r for r in self._collect("qflow_transition_guard", _GUARD_ARGS, (state, target, ruleset, now),
                                         A_SENTENCE) if r]

    def stage_changed(self, before: IncidentState, after: IncidentState, now: datetime) -> None:
        # Observers run after the change is stored; one failing must not stop the others.
        for name, kwargs in (("qflow_stage_exit", {"state": before, "target": after.stage, "now": now}),
                             ("qflow_stage_enter", {"state": after, "previous": before.stage, "now": now})):
            for impl in reversed(getattr(self._hook, name).get_hookimpls()):
                try:
                    impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames})
                except Exception:
                    log.exception("plugin %s failed in %s for %s", impl.plugin_name, name, after.id)

    def notify(self, notification: Notification, now: datetime) -> list[tuple[str, str]]:
        failures = []
        for impl in reversed(self._hook.qflow_notify.get_hookimpls()):
            try:
                impl.function(**{k: v for k, v in {"notification": notification, "now": now}.items()
                                 if k in impl.argnames})
            except Exception as exc:
                log.exception("plugin %s failed to deliver %s", impl.plugin_name, notification.topic)
                failures.append((impl.plugin_name, f"{type(exc).__name__}: {exc}"))
        return failures

    def _first(self, name: str, args: tuple[str, ...], values: tuple[Any, ...],
               expect: Expect | None = None) -> Any:
        """The first implementation's non-None result, in pluggy's order (a
        ``firstresult`` hook). *expect* says what a result must be."""
        plan = self._plan(name, args)
        if plan is None:
            result = self._through_pluggy(name, args, values)
            if result is not None and expect is not None and not expect.fits(result):
                raise self._wrong(name, None, result, expect)
            return result
        try:
            for fn, pick in plan:
                result = fn(*pick(values))
                if result is not None:
                    if expect is not None and not expect.fits(result):
                        raise self._wrong(name, fn, result, expect)
                    return result
        except QflowError:
            raise  # says what is wrong already (an input, a decision, a store)
        except Exception as exc:
            raise self._failed(name, fn, exc) from exc
        return None

    def _collect(self, name: str, args: tuple[str, ...], values: tuple[Any, ...],
                 expect: Expect | None = None) -> list[Any]:
        """Every implementation's non-None result, in pluggy's order (a hook that is
        not ``firstresult``). *expect* says what each result must be."""
        plan = self._plan(name, args)
        if plan is None:
            results = self._through_pluggy(name, args, values)
            for result in results:
                if result is not None and expect is not None and not expect.fits(result):
                    raise self._wrong(name, None, result, expect)
            return results  # type: ignore[no-any-return]
        out = []
        try:
            for fn, pick in plan:
                result = fn(*pick(values))
                if result is not None:
                    if expect is not None and not expect.fits(result):
                        raise self._wrong(name, fn, result, expect)
                    out.append(result)
        except QflowError:
            raise
        except Exception as exc:
            raise self._failed(name, fn, exc) from exc
        return out

    def _through_pluggy(self, name: str, args: tuple[str, ...], values: tuple[Any, ...]) -> Any:
        """The hook called by pluggy (it has wrappers); a plugin's failure named as on the plan's path."""
        try:
            return getattr(self._hook, name)(**dict(zip(args, values, strict=True)))
        except QflowError:
            raise
        except Exception as exc:
            raise self._failed(name, None, exc) from exc

    def _plugin_of(self, name: str, fn: Any, exc: BaseException | None = None) -> str:
        """The plugin an implementation of hook *name* belongs to: the one that is *fn*,
        else the innermost one in *exc*'s traceback."""
        impls = getattr(self._hook, name).get_hookimpls()
        if fn is not None:
            return next((i.plugin_name for i in impls if i.function is fn), "?")
        codes = {i.function.__code__: i.plugin_name for i in impls if hasattr(i.function, "__code__")}
        found, tb = "?", exc.__traceback__ if exc is not None else None
        while tb is not None:
            found = codes.get(tb.tb_frame.f_code, found)
            tb = tb.tb_next
        return found

    def _failed(self, name: str, fn: Any, exc: Exception) -> PluginError:
        """A plugin's own failure, named: which plugin, in which hook, what it raised."""
        return PluginError(f"plugin {self._plugin_of(name, fn, exc)} failed in {name}: {type(exc).__name__}: {exc}")

    def _wrong(self, name: str, fn: Any, result: Any, expect: Expect) -> PluginError:
        """A plugin's result that is not what the hook returns, named like a failure."""
        plugin = self._plugin_of(name, fn) if fn is not None else "?"
        who = f"plugin {plugin}" if plugin != "?" else "a plugin"
        shown = repr(result)
        if len(shown) > 60:
            shown = shown[:57] + "..."
        return PluginError(f"{who} returned {type(result).__name__} {shown} from {name}; return {expect.what}")

    def schedule(self, state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime) -> list[Timer]:
        found = self._collect("qflow_schedule", _SCHEDULE_ARGS, (state, tuple(events), ruleset, now), TIMERS)
        return [t for timers in found for t in timers]

    def clock_dues(self, state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
                   now: datetime) -> tuple[Due, ...]:
        moments = self._first("qflow_clock_dues", _SCHEDULE_ARGS, (state, tuple(events), ruleset, now), DUE_MOMENTS)
        return clock_dues(state, moments)

    def plan_delivery(self, notification: Notification, state: IncidentState, ruleset: Ruleset,
                      now: datetime) -> list[OutboxMessage]:
        found = self._collect("qflow_plan_delivery", _PLAN_DELIVERY_ARGS, (notification, state, ruleset, now),
                              MESSAGES)
        return [m for messages in found for m in messages]

    def due(self, state: IncidentState, events: Sequence[Event], timers: Sequence[Timer], ruleset: Ruleset,
            now: datetime) -> list[Sequence[Effect]]:
        return self._collect("qflow_due", _DUE_ARGS,
                             (state, tuple(events), tuple(timers), ruleset, now, self.store, self.pm), EFFECTS)

    def hold_notifications(self, notifications: Sequence[Notification], state: IncidentState,
                           events: Sequence[Event], ruleset: Ruleset, now: datetime) -> list[Effect]:
        found = self._collect("qflow_hold_notifications", _HOLD_ARGS,
                              (tuple(notifications), state, tuple(events), ruleset, now, self.store), EFFECTS)
        return [e for effects in found for e in effects]

    def projections(self) -> list[Projection]:
        return [p for found in self._hook.qflow_projections() for p in found or ()]

    def project(self, state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
                now: datetime) -> FrozenDict:
        rows: dict[str, Any] = {}
        for found in self._collect("qflow_project", _PROJECT_ARGS, (state, tuple(events), ruleset, now), ROWS):
            rows.update(found or {})
        return FrozenDict.adopt(rows)  # what a Write holds: built here, so frozen without a copy

    def open_store(self, url: str, create: bool) -> Store | None:
        return self._hook.qflow_open_store(url=url, create=create)


def open_store(url: str, plugins: pluggy.PluginManager, *, create: bool = True) -> Store:
    """Open the store *url* names: ``memory://`` here, others through plugins. With
    *create* False a store that is not there yet is refused, not made."""
    if url in ("memory://", "memory:", "memory"):
        return MemoryStore()
    store = _Hooks(plugins).open_store(url, create)
    if store is None:
        scheme, sep, _ = url.partition("://")
        if not sep:  # a bare path: most likely an SQLite file
            raise StoreError(f"'{url}' is not a store URL (it names no scheme); "
                             f"for an SQLite file write sqlite:///{url}")
        raise StoreError(f"no installed plugin opens '{scheme}://' store URLs; use memory://, sqlite:///PATH or "
                         f"postgresql://USER@HOST/DB, or install the plugin for {scheme}")
    return store


def parse_incident(data: Any, *, converter: Any = None) -> Incident:
    """Build an :class:`Incident` from JSON-like data; :class:`InputError` lists every problem."""
    conv = converter or _CONVERTER
    if not isinstance(data, Mapping):
        raise InputError("an incident must be a JSON object")
    where = lone_surrogate(data)
    if where is not None:
        raise InputError("a lone surrogate (a \\ud800-\\udfff escape without its pair) is no character; "
                         f"send the text as UTF-8 @ {json_path(where)}")
    try:
        return conv.structure(dict(data), Incident)
    except (BaseValidationError, ShapeError, ValueError, TypeError) as exc:
        problems = structure_errors(exc, Incident) or [((), "QF402", str(exc), None, "value")]
        lines = []
        for path, _code, msg, hint, where in problems:
            shown = json_path(path[:-1] if where == "parent" else path)
            lines.append(f"{msg}{f' ({hint})' if hint else ''} @ {shown}")
        raise InputError("; ".join(lines)) from None


class Engine(LoopCommands, ContactCommands, SurveyCommands, Scheduling, Delivery, Versions, Intake):
    """Decides and records incidents under one ruleset.

    The commands of the improvement loop live in ``_loop.py``, ``tick`` in ``_tick.py``
    and outbox delivery in ``_delivery.py``; they record through :meth:`_record_many`,
    the one write path.
    """

    def __init__(
        self,
        ruleset: Ruleset,
        *,
        plugins: pluggy.PluginManager | None = None,
        store: Store | str | None = None,
        clock: Clock | None = None,
    ) -> None:
        _check_arguments(ruleset, store, clock)
        self.plugins = plugins or make_plugin_manager()
        self.ruleset = ruleset
        # The real time in the ruleset's zone (as the worker's): what is recorded then
        # reads in the zone of everything else the ruleset shows.
        self.clock: Clock = clock or SystemClock(ZoneInfo(ruleset.timezone))
        self.store: Store = open_store(store, self.plugins) if isinstance(store, str) else (store or MemoryStore())
        self._hooks = _Hooks(self.plugins, self.store)
        self.store.declare(self._hooks.projections())
        self._conv = _CONVERTER
        self._classified: dict[tuple[int, str | None], Any] = {}
        self._assigned: dict[tuple[int, int], Any] = {}
        #: The name ``tick`` and ``deliver`` claim timers and messages under when no
        #: ``worker=`` is given: HOST-PID plus a random part, so two engines (two
        #: processes, or two in one) never share claims. A fixed default made every
        #: embedding process one worker: they took each other's claims and sent
        #: messages twice.
        self.worker_name = f"{socket.gethostname()}-{os.getpid()}-{secrets.token_hex(3)}"

    @classmethod
    def from_path(
        cls,
        path: str | os.PathLike[str],
        *,
        plugins: Iterable[object] = (),
        blocked: Iterable[str] = (),
        autoload: bool = True,
        store: Store | str | None = None,
        clock: Clock | None = None,
    ) -> Engine:
        """Load the ruleset at *path* with the installed plugins plus *plugins*."""
        pm = make_plugin_manager(autoload=autoload, blocked=blocked, plugins=plugins)
        return cls(load_ruleset(path, plugins=pm), plugins=pm, store=store, clock=clock)

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        """Leaving ``with Engine(...) as engine:`` closes the store (``engine.store.close()``;
        ``engine.close(id)`` is the loop's command that closes an incident)."""
        self.store.close()

    # -- deciding ----------------------------------------------------------------------

    def decide(self, incident: Incident | Mapping[str, Any], now: datetime | None = None) -> Decision:
        """What the ruleset decides for *incident* at *now*; changes nothing.

        *incident* is an :class:`Incident` or, as for :meth:`report`, plain data
        (:class:`InputError` lists what does not fit). The decision's ``trace`` is
        worked out when first read, from the same inputs.
        """
        if now is None:
            now = self.clock.now()
        elif now.__class__ is not datetime or now.tzinfo is None:
            now = given_time(now)
        if incident.__class__ is not Incident and not isinstance(incident, Incident):
            incident = parse_incident(incident, converter=self._conv)
        ruleset = self.ruleset
        hooks = self._hooks
        view = incident_view(incident)
        results = hooks.classify(incident, view, ruleset, now)
        if len(results) == 1:
            # The common case, one classifier: its answer is the classification, with
            # the reported category standing where it left the category open. Rules
            # answer with prebuilt objects, so what follows from one is remembered.
            c = results[0]
            key = (id(c), incident.category if c.category is None else None)
            known = self._classified.get(key)
            if known is None or known[0] is not c:
                known = self._classified_memo(key, c, incident)
            _, classification, sources, matched = known
        else:
            classification, sources, matched = _merge(results, incident)
            _defined(ruleset, classification, ("severity", "priority"), sources)
            known = None
        category, severity, priority = classification.category, classification.severity, classification.priority
        # Routing sees what classification decided (the view is ours, made for this call).
        view["category"], view["severity"], view["priority"] = category, severity, priority
        assignment = hooks.route(incident, view, classification, ruleset, now) or _NO_ASSIGNMENT
        if known is not None:
            key2 = (id(classification), id(assignment))
            done = self._assigned.get(key2)
            if done is None or done[0] is not classification or done[1] is not assignment:
                done = self._assigned_memo(key2, classification, assignment, sources, matched)
            _, _, sources, matched = done
        elif assignment is not _NO_ASSIGNMENT:
            sources.update(_sources(assignment, _ASSIGNED))
            matched.extend(assignment.matched)
        deadlines = hooks.deadline(incident, classification, assignment, ruleset, now) or ()

        def explain() -> tuple[TraceStep, ...]:
            return hooks.explain(incident, incident_view(incident), classification, assignment, ruleset, now)

        return Decision(
            incident_id=incident.id, decided_at=now, ruleset=ruleset.ref,
            category=category, severity=severity, priority=priority,
            team=assignment.team, owner=assignment.owner, responsibility=assignment.responsibility,
            deadlines=deadlines, matched=matched, sources=sources, trace=Trace(thunk=explain),
        )

    # Memo bounds: rules return the same few objects, a plugin may return fresh ones
    # on every call; past this many entries a memo starts over.
    _MEMO_MAX = 4096

    def _classified_memo(self, key: tuple[int, str | None], c: Classification,
                         incident: Incident) -> tuple[Classification, Classification, dict[str, str], tuple[str, ...]]:
        """The classification, sources and matched rules one classifier's answer *c*
        stands for (with the reported category where *c* leaves it open)."""
        sources = _sources(c, _CLASSIFIED)
        _defined(self.ruleset, c, ("severity", "priority"), sources)
        classification = c
        if c.category is None and incident.category is not None:
            sources["category"] = "report"
            classification = Classification(incident.category, c.severity, c.priority, c.source, c.matched,
                                            sources)
        memo = self._classified
        if len(memo) >= self._MEMO_MAX:
            memo.clear()
        # The entry holds *c*, so its id cannot be reused while the entry lives.
        entry = memo[key] = (c, classification, sources, tuple(c.matched))
        return entry

    def _assigned_memo(self, key: tuple[int, int], classification: Classification, assignment: Assignment,
                       sources: dict[str, str], matched: tuple[str, ...]) -> tuple[Any, Any, FrozenDict, tuple[str, ...]]:
        """The decision's sources and matched rules for *classification* routed to
        *assignment*, frozen once (classification's fields first, then routing's)."""
        merged = dict(sources)
        if assignment is not _NO_ASSIGNMENT:
            merged.update(_sources(assignment, _ASSIGNED))
            matched = matched + tuple(assignment.matched)
        memo = self._assigned
        if len(memo) >= self._MEMO_MAX:
            memo.clear()
        entry = memo[key] = (classification, assignment, FrozenDict(merged), matched)
        return entry

    # -- recording ---------------------------------------------------------------------

    def report(self, incident: Incident | Mapping[str, Any], *, actor: str | None = None) -> IncidentState:
        """Record a new incident and what the ruleset decides for it.

        A report that repeats the ``external_id`` of a recorded one (a retry) returns
        the recorded incident and records nothing, and so does one that repeats a
        recorded incident's ``id`` with the same facts; one whose ``dedup_key`` names an
        open incident within ``intake.dedup_window`` is attached to it (see ``_intake.py``).
        A blank ``id``, ``external_id`` or ``dedup_key`` is no key. When another writer
        records the incident this report repeats while it is being written (workers
        racing on one retry or one anomaly), the report is run again and gets that
        incident, as a sequential retry would.
        """
        if not isinstance(incident, Incident):
            incident = parse_incident(incident, converter=self._conv)
        given = incident
        state, tell = self._again_after_races(lambda: self._report(given, actor))
        tell()  # observers hear of a recorded report once, whatever races it took
        return state

    def _again_after_races(self, run: Callable[[], _T]) -> _T:
        """*run*, run again while the store refuses its write because another writer
        changed what it read (``ConcurrencyError``: nothing of it was written). Each
        run reads anew, so a lost race ends as a retry or an attachment; a crowd of
        writers attaching to one incident at once may take several rounds."""
        attempt = 1
        while True:
            try:
                return run()
            except ConcurrencyError:
                if attempt >= _RACES:
                    raise
                attempt += 1

    def _report(self, incident: Incident, actor: str | None) -> tuple[IncidentState, Callable[[], None]]:
        """The recorded state, and what tells the observers (after any rerun: a race
        lost after the write must not record the report twice)."""
        now = self.clock.now()
        if incident.external_id is not None:
            known = self.store.find_external(incident.external_id)
            if known is not None:
                state = self.store.get(known)
                assert state is not None
                return state, _nothing_to_tell
        if incident.id is not None:
            recorded = self.store.get(incident.id)
            if recorded is not None:
                return self._same_report(incident, recorded), _nothing_to_tell
        self._not_ahead(incident, now)  # a new report: its time must have come
        if incident.dedup_key is not None:  # the same anomaly through another channel
            attached = self._attach_duplicate(incident, now, actor)
            if attached is not None:
                return attached, _nothing_to_tell
        changes: dict[str, Any] = {}
        if incident.id is None:
            changes["id"] = self.store.next_id()
        if incident.reported_at is None:
            changes["reported_at"] = now
        if changes:
            incident = attrs.evolve(incident, **changes)
        assert incident.id is not None
        with within_calendar(incident):
            decision = self.decide(incident, now)
            events = tuple(self._arrival(incident, decision, now, actor, self.known_errors()))
            state = ev.fold(events, self._conv) if len(events) > 2 else IncidentState(
                incident=incident, stage=Stage.REPORTED, seq=2, updated_at=now, decision=decision)
            note = self._notification(state, "incident.reported", now)
            write = self._write(events, events, state, (note,), now, dedup_since=self._dedup_since(incident))
        self.store.write([write])
        if write.state.seq != state.seq:  # a held notification goes to no observer either
            return write.state, _nothing_to_tell
        return write.state, lambda: self._broadcast(write.state, note, now)

    def _same_report(self, incident: Incident, recorded: IncidentState) -> IncidentState:
        """*recorded*, when *incident* (which names its id) repeats its report: a retry.
        Another report under a taken id is refused."""
        differ = report_differences(incident, recorded.incident)
        if not differ:
            return recorded
        raise InputError(f"incident {recorded.id} is already recorded with another report ({', '.join(differ)} "
                         f"differ{'s' * (len(differ) == 1)}); a retry must repeat the recorded report, and a new "
                         "incident needs an id of its own (or none)")

    def _arrival(self, incident: Incident, decision: Decision, now: datetime, actor: str | None,
                 known_errors: Sequence[Any]) -> list[Event]:
        """The events a new report starts its log with: the report, the decision and,
        when the known-error archive has candidates for it, the suggestions — searched
        as the incident arrives, in the same transaction."""
        assert incident.id is not None
        ref = decision.ruleset  # the ruleset that decided, even if swapped since
        out = [
            Event(incident.id, 1, now, ev.INCIDENT_REPORTED, actor=actor, source="report", ruleset=ref,
                  data=self._conv.unstructure(incident)),
            Event(incident.id, 2, now, ev.DECISION_MADE, actor=None, source=_source_summary(decision),
                  ruleset=ref, data=ev.decision_data(self._conv, decision)),
        ]
        suggestions = self._suggestions(incident, known_errors) if known_errors else []
        if suggestions:
            out.append(Event(incident.id, 3, now, ev.KNOWN_ERRORS_SUGGESTED, source="known-errors", ruleset=ref,
                             data={"suggestions": [self._conv.unstructure(s) for s in suggestions]}))
        return out

    def _notification(self, state: IncidentState, topic: str, now: datetime) -> Notification:
        d = state.decision
        recipients = tuple(x for x in (d.team, d.owner) if x) if d else ()
        return Notification(
            incident_id=state.id, topic=topic, at=now, recipients=recipients,
            subject=f"[{(d.severity if d else None) or '?'}] {state.id} {(d.category if d else None) or ''}".strip(),
            body=state.incident.description,
        )

    def _broadcast(self, state: IncidentState, note: Notification, now: datetime) -> None:
        """Tell in-process ``qflow_notify`` observers; a failure becomes an event."""
        failures = self._hooks.notify(note, now)
        if failures:
            latest = self.store.get(state.id) or state
            self._record_many(latest, [(ev.NOTIFICATION_FAILED, {"topic": note.topic, "plugin": plugin, "error": error},
                                        f"plugin:{plugin}") for plugin, error in failures])

    def _load(self, incident_id: str) -> IncidentState:
        state = self.store.get(incident_id)
        if state is None:
            raise IncidentNotFoundError(f"no incident '{incident_id}' in this store")
        return state

    def _record(self, state: IncidentState, type_: str, data: Mapping[str, Any], *, actor: str | None,
                source: str | None = None) -> IncidentState:
        return self._record_many(state, [(type_, data, source)], actor=actor)

    def _record_many(self, state: IncidentState, items: Sequence[tuple[str, Mapping[str, Any], str | None]], *,
                     actor: str | None = None, notifications: Sequence[Notification] = (),
                     now: datetime | None = None) -> IncidentState:
        """Append events after *state* in one store transaction, with the incident's new
        timers and the outbox messages for *notifications*; return the new state."""
        if now is None:
            now = self.clock.now()
        new = [Event(state.id, state.seq + i + 1, now, type_, actor=actor, source=source,
                     ruleset=self.ruleset.ref, data=data)
               for i, (type_, data, source) in enumerate(items)]
        after = state
        for event in new:
            after = ev.apply(after, event, self._conv)
        history = self.store.events(state.id) + tuple(new)
        write = self._write(history, new, after, notifications, now)
        self.store.write([write])
        return write.state

    def _write(self, history: Sequence[Event], new: Sequence[Event], after: IncidentState,
               notifications: Sequence[Notification], now: datetime, *,
               dedup_since: datetime | None = None) -> Write:
        """What one command writes: *new* events, the state they fold to, the timers
        plugins schedule from the whole *history*, the outbox messages plugins plan
        for *notifications*, and the clocks' due moments."""
        if notifications:
            notifications, new, after, history = self._hold(history, new, after, notifications, now)
        history = tuple(history)  # one object for every hook: plugins keep their reads of it by identity
        timers = self._hooks.schedule(after, history, self.ruleset, now)
        outbox = [m for n in notifications for m in self._hooks.plan_delivery(n, after, self.ruleset, now)]
        rows = self._hooks.project(after, history, self.ruleset, now)
        dues = self._hooks.clock_dues(after, history, self.ruleset, now)
        return Write(tuple(new), after, tuple(timers), tuple(outbox), rows, dedup_since, dues)

    def _hold(self, history: Sequence[Event], new: Sequence[Event], after: IncidentState,
              notifications: Sequence[Notification], now: datetime) -> tuple[Any, Any, IncidentState, Any]:
        """Drop the notifications ``qflow_hold_notifications`` holds, recording its
        events (``NotificationSuppressed``) after *new* in the same write."""
        effects = self._hooks.hold_notifications(notifications, after, history, self.ruleset, now)
        if not effects:
            return notifications, new, after, history
        held = [n for e in effects for n in e.notifications]
        kept = [n for n in notifications if n not in held]
        extra = [Event(after.id, after.seq + i + 1, now, e.type, source=e.source, ruleset=self.ruleset.ref,
                       data=e.data) for i, e in enumerate(effects)]
        for event in extra:
            after = ev.apply(after, event, self._conv)
        return kept, tuple(new) + tuple(extra), after, tuple(history) + tuple(extra)

    # -- reading -----------------------------------------------------------------------

    def get(self, incident_id: str) -> IncidentState:
        return self._load(incident_id)

    def events(self, incident_id: str) -> tuple[Event, ...]:
        return self.store.events(incident_id)

    def query(self, query: IncidentQuery | None = None, **filters: Any) -> list[IncidentState]:
        """The incidents that *query* (an :class:`~qflow.IncidentQuery`) or *filters*, its
        fields as keywords, match: ``stages``, ``team``, ``severity``, ``category``,
        ``owner``, ``place``, ``open_only``, ``reported_from``, ``reported_until``,
        ``overdue_at``, ``limit``; ``engine.query(open_only=True, team="housekeeping")``.
        """
        if query is None:
            unknown = sorted(set(filters) - _QUERY_FIELDS)
            if unknown:
                hint = did_you_mean(unknown[0], _QUERY_FIELDS) or f"use {', '.join(sorted(_QUERY_FIELDS))}"
                raise TypeError(f"query() has no filter {', '.join(map(repr, unknown))} ({hint})")
            query = IncidentQuery(**filters)
        elif filters:
            raise TypeError("give query() an IncidentQuery or filters as keywords, not both")
        return self.store.query(query)

    def due(self, until: datetime) -> list[Due]:
        """The moments at or before *until* at which a clock of an open incident runs
        out, as its last write recorded them (``qflow_clock_dues``; what ``qflow ls
        --overdue`` and ``IncidentQuery.overdue_at`` read): a clock paused (waiting on
        the customer) or met (acknowledged, answered, confirmed, closed, in time or
        late) is not listed; one reset by a reopening counts from the reopening."""
        return self.store.due(given_time(until, "until"))

    def record_dues(self) -> int:
        """Record the clocks' due moments of the store's open incidents, read from their
        clocks as they stand, when any of them was last written without them
        (``Store.without_dues``: before qflow recorded them); return how many open
        incidents were written (0 when none lacked them). ``qflow db upgrade`` with a
        ruleset runs this. Nothing is added to any log, no timer is changed."""
        if not self.store.without_dues():
            return 0
        now = self.clock.now()
        done = 0
        for state in self.store.query(IncidentQuery(open_only=True)):
            history = self.store.events(state.id)
            if not history or history[-1].seq != state.seq:
                continue  # moved on meanwhile: its write recorded them
            write = Write((), state, None, (), dues=self._hooks.clock_dues(state, history, self.ruleset, now))
            try:
                self.store.write([write])
            except ConcurrencyError:
                continue  # written meanwhile, with its moments
            done += 1
        return done


_NO_ASSIGNMENT = Assignment()
_QUERY_FIELDS = frozenset(a.name for a in attrs.fields(IncidentQuery))


def _check_arguments(ruleset: Any, store: Any, clock: Any) -> None:
    """Refuse what an :class:`Engine` cannot run on, at once and saying what to give,
    rather than at its first command with an ``AttributeError``."""
    if not isinstance(ruleset, Ruleset):
        hint = ("; to load a file use Engine.from_path(path), or qflow.load_ruleset(path)"
                if isinstance(ruleset, (str, os.PathLike)) else "; load one with qflow.load_ruleset(path)")
        raise TypeError(f"Engine needs a loaded qflow.Ruleset, got {type(ruleset).__name__} {ruleset!r}{hint}")
    if store is not None and not isinstance(store, (str, Store)):
        raise TypeError(f"store must be a store URL (memory://, sqlite:///PATH, postgresql://...) or a "
                        f"qflow.Store, got {type(store).__name__} {store!r}")
    if clock is not None and not isinstance(clock, Clock):
        raise TypeError(f"clock must have a now() that returns an aware datetime (qflow.SystemClock(), "
                        f"qflow.FakeClock(start)), got {type(clock).__name__} {clock!r}")


def _nothing_to_tell() -> None:
    """Nothing to tell observers (a retry, an attachment)."""
_CLASSIFIED = ("category", "severity", "priority")
_ASSIGNED = ("team", "owner", "responsibility")


def _sources(result: Classification | Assignment, fields: tuple[str, ...]) -> dict[str, str]:
    """Which rule or plugin set each field *result* sets."""
    own, default = result.sources, result.source or "?"
    return {f: own.get(f) or default for f in fields if getattr(result, f) is not None}


def _defined(ruleset: Ruleset, result: Classification, fields: tuple[str, ...], sources: Mapping[str, str]) -> None:
    """Refuse a severity or priority the ruleset does not define: a plugin's answer
    the rules never checked would go on without deadlines or a ladder. (A team a
    site plugin routes to may come from its own directory: not checked here.)"""
    for f in fields:
        value = getattr(result, f)
        known = ruleset.names(f)
        if value is not None and known and value not in known:
            who = sources.get(f) or result.source
            raise PluginError(f"{who if who and who != '?' else 'a plugin'} decided {f} '{value}', which ruleset "
                              f"{ruleset.name} does not define (it has: {', '.join(map(str, known))}); return one "
                              f"of those, or define '{value}' in the ruleset")


def _merge(results: Sequence[Classification], incident: Incident) -> tuple[Classification, dict[str, str], list[str]]:
    """Several classifiers: per field, the first non-None value in call order wins."""
    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    matched: list[str] = []
    for c in results:
        for f, src in _sources(c, _CLASSIFIED).items():
            if f not in values:
                values[f] = getattr(c, f)
                sources[f] = src
        matched.extend(c.matched)
    if "category" not in values and incident.category is not None:
        # What the reporter said stands unless a rule or plugin says otherwise.
        values["category"] = incident.category
        sources["category"] = "report"
    return Classification(**values, sources=sources, matched=matched), sources, matched
_CONVERTER = make_converter()


def _source_summary(decision: Decision) -> str:
    return ",".join(decision.matched) or "defaults"
