"""Every extension point of qflow.

Each hook receives frozen values and returns new ones; none may change its arguments.
Hooks are called with keyword arguments, so an implementation accepts only the
arguments it uses. New arguments may be added to a spec in a later version;
existing ones are deprecated through ``warn_on_impl_args`` before they go.

The per-incident hooks (classify, route, deadline) are called once per decision, never
once per rule: plugins compile their rules when the ruleset loads
(:func:`qflow_ruleset_sections`) and only run the compiled form per incident.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from qflow.conditions import ConditionFunction
    from qflow.diagnostics import Diagnostic
    from qflow.model import (
        Assignment,
        Classification,
        Deadline,
        IncidentState,
        Incident,
        Notification,
        Stage,
        TraceStep,
    )
    from qflow.ruleset import Ruleset, Section
    from qflow.model import Effect, Event
    from qflow.model import Action, Command, KnownError, Suggestion, Verification
    from qflow.store import OutboxMessage, Projection, Store, Timer
    from qflow._delivery import Backend, Channel

PROJECT = "qflow"
hookspec = pluggy.HookspecMarker(PROJECT)

# -------------------------------------------------------------------------
# Ruleset hooks: called once when a ruleset loads
# -------------------------------------------------------------------------


@hookspec
def qflow_ruleset_sections() -> Sequence[Section]:
    """Return the ruleset sections this plugin reads.

    Each :class:`~qflow.ruleset.Section` names a top-level key of the ruleset, the attrs
    class its YAML is structured into (every error located as ``file:line:col``), and a
    ``compile`` function that turns the structured value into what the plugin uses per
    incident. A section name may be claimed by one plugin only.

    :returns: the sections, possibly empty.

    All implementations are called and their lists joined.

    .. versionadded:: 0.1
    """


@hookspec
def qflow_condition_functions() -> Sequence[ConditionFunction]:
    """Return operators and predicates that rulesets may use in conditions.

    A field operator is used as ``description: {has_keyword: [...]}``; a predicate
    with ``whole_incident=True`` as ``fn: {name: arg}``. Both are compiled when the
    ruleset loads: ``compile(arg)`` validates the argument (raise ``ValueError`` with
    a message for the ops person) and returns the predicate run per incident.

    :returns: the functions, possibly empty.

    All implementations are called and their lists joined; two functions with one
    name are an error at load.

    .. versionadded:: 0.1
    """


@hookspec
def qflow_lint(ruleset: Ruleset) -> Sequence[Diagnostic]:
    """Return warnings about a ruleset that loads but may not do what its author meant.

    Called by ``qflow lint`` after the kernel's own checks (names defined and never
    used, conditions that always or never hold, regexes that match the empty text).
    A plugin reports what only it can know about its sections, e.g. a rule that an
    earlier rule always shadows. Use ``severity="warning"`` and codes under a prefix of
    the plugin's own (``NS101``; the ``QF`` codes are qflow's and its built-in
    plugins', listed in docs/diagnostics.md); positions come from what the section's
    ``compile`` kept (``ctx.mark(path)``, ``Condition.where``).

    :param ruleset: the loaded ruleset; ``ruleset.compiled(name)`` is each section's
        compiled form.
    :returns: the warnings, possibly empty.

    All implementations are called and their lists joined.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_notification_topics(sections: Mapping[str, Any]) -> Sequence[str]:
    """Return the topics of the notifications this plugin raises (``escalation.breach``,
    ``action.overdue`` ...).

    ``qflow check`` warns (QF780) about a notification route or template whose topic
    pattern matches none of the topics all plugins return and looks meant for one of
    them: a near miss of a topic, or a topic under a prefix (the part before the first
    dot, ``escalation``) that some plugin's topics use. A topic under a prefix nobody
    returns is taken as written, so a plugin that does not implement this hook causes no
    warning; one that raises topics under another plugin's prefix must return them.

    :param sections: the ruleset's structured sections (section name -> value, None
        when absent), for topics a ruleset chooses (an escalation step's ``topic``).
    :returns: the topic names, possibly empty.

    All implementations are called and their lists joined.

    .. versionadded:: 0.2
    """


# -------------------------------------------------------------------------
# Decision hooks: called once per decision, in this order
# -------------------------------------------------------------------------


@hookspec
def qflow_classify(
    incident: Incident, view: Mapping[str, Any], ruleset: Ruleset, now: datetime
) -> Classification | None:
    """Say what kind of incident this is and how urgent it is.

    :param incident: the incident as reported.
    :param view: the incident as plain data (what conditions read); do not change it.
    :param ruleset: the loaded ruleset; ``ruleset.compiled(name)`` gives a section.
    :param now: the moment of the decision.
    :returns: a :class:`~qflow.model.Classification`, or None for no opinion.

    All implementations are called. For each field, the first non-None value in call
    order wins, so a ``tryfirst`` plugin overrides the built-in rules field by field.
    A severity or priority must be one the ruleset defines (``ruleset.names("severity")``):
    another is refused with a :class:`~qflow.errors.PluginError` naming the source.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def qflow_route(
    incident: Incident,
    view: Mapping[str, Any],
    classification: Classification,
    ruleset: Ruleset,
    now: datetime,
) -> Assignment | None:
    """Decide whose incident this is: team, owner and responsibility class.

    :param incident: the incident as reported.
    :param view: the incident as plain data, with the decided ``category``,
        ``severity`` and ``priority``.
    :param classification: the merged result of :func:`qflow_classify`.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the decision.
    :returns: an :class:`~qflow.model.Assignment`, or None to let the next plugin decide.

    Stops at the first non-None result; the built-in router is ``trylast``.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def qflow_deadline(
    incident: Incident,
    classification: Classification,
    assignment: Assignment,
    ruleset: Ruleset,
    now: datetime,
) -> Sequence[Deadline] | None:
    """Compute the committed deadlines (``respond``, ``resolve``, ...).

    :param incident: the incident as reported; clocks start at ``reported_at``.
    :param classification: the merged classification (severity, priority).
    :param assignment: the routing result.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the decision (used when ``reported_at`` is unset).
    :returns: the deadlines, or None to let the next plugin decide.
    :raises qflow.DecisionError: when a deadline cannot be worked out for this
        incident (its calendar has no working time left within reach).

    Stops at the first non-None result; the built-in deadlines are ``trylast``.

    .. versionadded:: 0.1
    """


@hookspec
def qflow_explain(
    incident: Incident,
    view: Mapping[str, Any],
    classification: Classification,
    assignment: Assignment,
    ruleset: Ruleset,
    now: datetime,
) -> Sequence[TraceStep]:
    """Explain, rule by rule, what this plugin decides for *incident* and why.

    Called only when someone reads ``Decision.trace``, never on the hot path. The
    steps must agree with what the plugin's decision hooks return for the same inputs.

    :param incident: the incident as reported.
    :param view: the incident as plain data, as classification saw it.
    :param classification: the merged classification the decision used.
    :param assignment: the routing result the decision used.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the decision.
    :returns: the steps, in the order the plugin considered its rules.

    All implementations are called; the trace is their steps in call order.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------
# Lifecycle hooks: called when an incident moves between stages
# -------------------------------------------------------------------------


@hookspec
def qflow_transition_guard(
    state: IncidentState, target: Stage, ruleset: Ruleset, now: datetime
) -> str | None:
    """Refuse a stage change that must not happen yet.

    :param state: the incident as it stands.
    :param target: the stage it is asked to move to.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the change.
    :returns: None to allow, or a sentence saying why not and what to do, e.g.
        ``"hygiene incidents need a photo before closing; attach one"``.

    All implementations are called; any refusal stops the change and every refusal
    is reported.

    .. versionadded:: 0.1
    """


@hookspec
def qflow_stage_exit(state: IncidentState, target: Stage, now: datetime) -> None:
    """Observe an incident leaving its stage for *target*.

    :param state: the incident before the change.
    :param target: the stage it moves to.
    :param now: the moment of the change.

    All implementations are called after the change is recorded; return values are
    ignored and an exception is logged, never undoing the recorded change.

    .. versionadded:: 0.1
    """


@hookspec
def qflow_stage_enter(state: IncidentState, previous: Stage, now: datetime) -> None:
    """Observe an incident entering its new stage.

    :param state: the incident after the change.
    :param previous: the stage it left.
    :param now: the moment of the change.

    All implementations are called after the change is recorded; return values are
    ignored and an exception is logged, never undoing the recorded change.

    .. versionadded:: 0.1
    """


# -------------------------------------------------------------------------
# Effects: notifications and storage
# -------------------------------------------------------------------------


@hookspec
def qflow_notify(notification: Notification, now: datetime) -> None:
    """Deliver *notification* (log, e-mail, webhook, chat ...).

    :param notification: what to say, to whom, about which incident.
    :param now: the moment of delivery.

    A broadcast: all implementations are called and return values are ignored. An
    implementation that raises is logged and recorded on the incident as a
    ``NotificationFailed`` event; the others still run.

    .. versionadded:: 0.1
    """


@hookspec(firstresult=True)
def qflow_open_store(url: str, create: bool) -> Store | None:
    """Open the store that *url* names (``memory://``, ``sqlite:///path`` ...).

    :param url: the store URL the application was given.
    :param create: whether a store that is not there yet may be made. False for
        commands that only read or look after a store (``qflow ls``, ``db backup``,
        ``worker``): refuse a missing file with a :class:`~qflow.store.StoreError`
        rather than make an empty store where a path was mistyped.
    :returns: a :class:`~qflow.store.Store`, or None when the scheme is not yours.

    Stops at the first non-None result.

    .. versionadded:: 0.1
    .. versionchanged:: 0.2
       The *create* parameter.
    """


@hookspec(firstresult=True)
def qflow_open_async_store(url: str) -> Any:
    """Open the asyncio store that *url* names, for :class:`qflow.aio.AsyncEngine`.

    :param url: the store URL the application was given.
    :returns: a :class:`qflow.aio.AsyncStore` (every ``Store`` method as a coroutine;
        it may connect lazily, on its first call inside the running loop), or None
        when the scheme is not yours or its driver has no asyncio API; the async
        engine then runs the sync store in a thread.

    Stops at the first non-None result.

    .. versionadded:: 0.2
    """


# -------------------------------------------------------------------------
# Scheduling and delivery: timers and the outbox
# -------------------------------------------------------------------------


@hookspec
def qflow_schedule(
    state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime
) -> Sequence[Timer]:
    """Say when something will next be due for this incident.

    Called in the transaction of every command that records events, with the
    incident's whole log; the store replaces the incident's timers with the joined
    result and keeps them indexed by time, so ``tick`` finds what is due without
    scanning open incidents.

    :param state: the incident after the command.
    :param events: its whole event log, oldest first, including the new events.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the command.
    :returns: the :class:`~qflow.store.Timer` values, possibly empty.

    All implementations are called and their lists joined.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def qflow_clock_dues(
    state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime
) -> Mapping[str, datetime | None] | None:
    """Say when each of the incident's clocks runs out, as it stands after a command.

    Called in the transaction of every command that records events, with the
    incident's whole log, like :func:`qflow_schedule`; the store keeps the moments
    indexed, and they are what ``IncidentQuery.overdue_at`` (``qflow ls --overdue``)
    and ``Store.due`` read until the incident's next write, so "overdue" agrees with
    the clocks escalation reads: a paused clock is not overdue, a reset one counts
    from its reset, a changed severity moves its moment.

    :param state: the incident after the command.
    :param events: its whole event log, oldest first, including the new events.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the command.
    :returns: ``{clock name: moment}``, the moment None for a clock that is not
        running towards its target now (paused, stopped, met, not started); a clock
        left out keeps its decision's deadline while that waits for what it promises
        (acknowledged, responded, confirmed, closed). None for no opinion.

    Stops at the first non-None result; the SLA plugin's is ``trylast``. Without
    one, every clock keeps its decision's deadline.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_plan_delivery(
    notification: Notification, state: IncidentState, ruleset: Ruleset, now: datetime
) -> Sequence[OutboxMessage]:
    """Turn a notification into outbox messages: one per channel, rendered, each with
    its idempotency key as ``id``.

    :param notification: what happened and whom it concerns.
    :param state: the incident as the command leaves it.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the command.
    :returns: the :class:`~qflow.store.OutboxMessage` values, possibly empty.

    All implementations are called and their lists joined; the messages are written
    in the same transaction as the events that caused them.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_backends() -> Sequence[Backend]:
    """Return the notification backends this plugin provides (log, e-mail, webhook,
    chat ...).

    Each :class:`~qflow.Backend` names itself (what a channel's ``backend:`` says),
    declares the attrs class of its configuration (structured and checked when the
    ruleset loads, every mistake located), sends an outbox message (raising on
    failure) and previews one without sending.

    :returns: the backends, possibly empty.

    All implementations are called and their lists joined; two backends with one
    name are an error at load.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_channels(ruleset: Ruleset) -> Sequence[Channel]:
    """Return the delivery channels *ruleset* defines: each a name, a backend, the
    backend's checked configuration, a retry policy and an optional fallback.

    :param ruleset: the loaded ruleset.
    :returns: the :class:`~qflow.Channel` values, possibly empty.

    All implementations are called and their lists joined; ``Engine.deliver`` sends
    each outbox message through the channel it names.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def qflow_recipients(name: str, state: IncidentState, ruleset: Ruleset) -> Sequence[str] | None:
    """Resolve a symbolic recipient (``assignee``, ``team.lead``,
    ``role:quality-manager``) into people or addresses, e.g. from a directory or an
    on-call schedule.

    :param name: the recipient as a notification names it.
    :param state: the incident the notification is about.
    :param ruleset: the loaded ruleset.
    :returns: people (names the ruleset's directory knows) or addresses, or None to
        let the next plugin decide.

    Stops at the first non-None result; the built-in resolver (``assignee``, team
    leads, roles and fixed addresses from the ruleset) is ``trylast``.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_due(
    state: IncidentState, events: Sequence[Event], timers: Sequence[Timer], ruleset: Ruleset, now: datetime,
    store: Store, plugins: pluggy.PluginManager,
) -> Sequence[Effect]:
    """Act on what has fallen due for an incident: fire escalation steps, remind action
    owners, start a scheduled verification.

    Called by ``Engine.tick(now)`` once per incident that has due timers, never once
    per missed tick (again in the same tick, up to three calls, when what was recorded
    left a timer due at *now*): after downtime, a plugin fires each step once and records that
    it did, so the same log never fires it again. What is recorded is read back from
    the log (``events``), which makes each step fire once per incident even when two
    workers race (the second one's append fails its sequence check and it re-reads).

    :param state: the incident as it stands.
    :param events: its whole event log, oldest first.
    :param timers: its timers that are due at *now* (any plugin's; look at ``key``).
    :param ruleset: the loaded ruleset.
    :param now: the moment of the tick.
    :param store: the engine's store, to read other incidents and documents (a
        scheduled verification counts recurrences); write only documents, never
        incidents: the effects are the incident's changes.
    :param plugins: the plugin manager, to ask other hooks (escalation asks
        :func:`qflow_available` before it notifies someone).
    :returns: the :class:`~qflow.model.Effect` values to record, possibly empty.

    All implementations are called and their lists joined; the effects are recorded
    in one transaction, their notifications in the outbox, and the incident's timers
    are then scheduled anew.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def qflow_available(recipient: str, state: IncidentState, now: datetime) -> bool | None:
    """Say whether *recipient* can be reached now (on shift, not on leave, on call).

    An escalation step skips a recipient that is not available, and when nobody of
    the step is left it goes on to the next level at once.

    :param recipient: the recipient as a ladder step names it (``assignee``,
        ``team.lead``, ``role:quality-manager``, an address).
    :param state: the incident being escalated.
    :param now: the moment of the step.
    :returns: True or False, or None to let the next plugin decide (nobody
        deciding means available).

    Stops at the first non-None result.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_hold_notifications(
    notifications: Sequence[Notification], state: IncidentState, events: Sequence[Event], ruleset: Ruleset,
    now: datetime, store: Store,
) -> Sequence[Effect]:
    """Hold back notifications that must not go out (grouping, suppression).

    Called in the transaction of every command that has notifications, before
    :func:`qflow_plan_delivery`. For each notification to hold, return an
    :class:`~qflow.model.Effect` whose ``notifications`` name it: the kernel records
    the effect's event (e.g. ``NotificationSuppressed`` naming the incident that holds
    it) in the same transaction and plans no delivery for it. Holding changes nothing
    else: the incident is recorded, decided and timed as usual.

    :param notifications: what the command would notify.
    :param state: the incident after the command.
    :param events: its whole event log, oldest first, including the new events.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the command.
    :param store: the engine's store, to read other incidents (the open one that
        suppresses this, the first of a burst); read only.
    :returns: the effects, possibly empty.

    All implementations are called and their lists joined; a notification named by
    any of them is held.

    .. versionadded:: 0.2
    """


# -------------------------------------------------------------------------
# The improvement loop: commands, actions, known errors, effect
# -------------------------------------------------------------------------


@hookspec
def qflow_command_guard(state: IncidentState, command: Command, ruleset: Ruleset, now: datetime) -> str | None:
    """Refuse a loop command (record a cause, plan an action, verify ...) that the
    site's rules do not allow, before anything is recorded.

    :param state: the incident as it stands.
    :param command: the :class:`~qflow.model.Command`: its name, actor and the value
        it would record.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the command.
    :returns: None to allow, or a sentence saying why not and what to do, e.g.
        ``"hygiene causes need photo evidence; add a photo"``.

    All implementations are called; any refusal stops the command, every refusal is
    reported and the incident stays as it was.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_action_planned(state: IncidentState, action: Action, ruleset: Ruleset, now: datetime) -> None:
    """Observe a newly planned action, e.g. to open a maintenance ticket in the site's
    own system when an equipment action is planned.

    :param state: the incident after the action was recorded.
    :param action: the planned action.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the command.

    A broadcast: all implementations are called after the action is recorded; return
    values are ignored and an exception is logged, never undoing the action.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_suggest_known_errors(
    incident: Incident, candidates: Sequence[KnownError], ruleset: Ruleset
) -> Sequence[Suggestion]:
    """Match an incident against the known-error archive.

    :param incident: the incident as reported.
    :param candidates: every :class:`~qflow.model.KnownError` in the archive.
    :param ruleset: the loaded ruleset.
    :returns: :class:`~qflow.model.Suggestion` values (score 0..1 with a reason),
        possibly empty.

    All implementations are called and their lists joined; for each known error the
    best score is kept and suggestions are listed best first. The built-in matcher
    (category, place, asset, keywords) is ``trylast``.

    .. versionadded:: 0.2
    """


@hookspec(firstresult=True)
def qflow_measure_effect(state: IncidentState, store: Store, ruleset: Ruleset, now: datetime) -> Verification | None:
    """Measure whether the measures of an incident worked, now.

    :param state: the incident (its actions done).
    :param store: the store, to count recurrences and read surveys and KPIs.
    :param ruleset: the loaded ruleset.
    :param now: the end of the window after the measures.
    :returns: a measured :class:`~qflow.model.Verification` (figures over the
        baseline window and the window after), or None when this plugin has no
        metrics for the incident.

    Stops at the first non-None result; the built-in loop plugin is ``trylast``.

    .. versionadded:: 0.2
    """


# -------------------------------------------------------------------------
# Projections: per-incident rows for figures aggregated in the database
# -------------------------------------------------------------------------


@hookspec
def qflow_projections() -> Sequence[Projection]:
    """Declare the projections this plugin keeps: tables of one row per incident
    with typed columns, aggregated by the store (``Store.aggregate``) for reports.

    :returns: the :class:`~qflow.store.Projection` values, possibly empty.

    All implementations are called and their lists joined; stores create the tables.

    .. versionadded:: 0.2
    """


@hookspec
def qflow_project(
    state: IncidentState, events: Sequence[Event], ruleset: Ruleset, now: datetime
) -> Mapping[str, Any]:
    """Compute this plugin's projection rows for one incident after a command.

    :param state: the incident after the command.
    :param events: its whole event log, oldest first.
    :param ruleset: the loaded ruleset.
    :param now: the moment of the command.
    :returns: ``{projection name: rows}`` where rows is one row (a mapping of column
        names to values), a list of rows, or None for none; they replace the
        incident's previous rows in that projection.

    All implementations are called; the rows are written in the same transaction as
    the events, so a figure never counts an event that was not stored.

    .. versionadded:: 0.2
    """


# -------------------------------------------------------------------------
# The command line
# -------------------------------------------------------------------------


@hookspec
def qflow_commands(subparsers: Any, common: Any) -> Mapping[str, Any]:
    """Add this plugin's ``qflow`` subcommands.

    :param subparsers: the ``argparse`` subparsers action of the ``qflow`` command;
        add parsers with ``subparsers.add_parser(name, parents=[common], ...)``.
    :param common: the parent parser holding the options every command takes
        (``--no-plugins``, ``--block``).
    :returns: ``{command name: handler}``; a handler takes ``(args, out, err)`` and
        returns the exit status. Raise ``qflow.cli.UsageError`` for a usage mistake.

    All implementations are called and their mappings joined; a name already taken
    is an error.

    .. versionadded:: 0.2
    """


# -------------------------------------------------------------------------
# Assessment
# -------------------------------------------------------------------------


@hookspec
def qflow_site_metrics(ruleset: Ruleset) -> Sequence[Any]:
    """Return a site's own KPIs, so they show up in every report and slice.

    :param ruleset: the loaded ruleset.
    :returns: ``qflow_assess.KPI`` values: a name, titles, a unit, written
        definitions, and the measures they need over the ``incident_facts`` (or
        ``action_facts``) projection with the function that turns them into a figure.

    All implementations are called and their lists joined; a name that a built-in
    KPI or another site metric already has is an error.

    .. versionadded:: 0.2
    """
