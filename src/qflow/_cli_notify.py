"""``qflow notify test`` and ``qflow notify preview``: try a channel, see a message.

Both go through the hooks only (``qflow_backends``, ``qflow_channels``,
``qflow_plan_delivery``), so they work the same for a third-party backend.
"""

from __future__ import annotations

import argparse
import hashlib
import os
from collections.abc import Sequence
from datetime import datetime, timezone
from typing import IO, Any

import attrs

from qflow._delivery import Channel, redact
from qflow.clock import FakeClock
from qflow.engine import Engine, parse_incident
from qflow.errors import InputError
from qflow.model import Incident, IncidentState, Notification, Stage
from qflow.store import OutboxMessage

__all__ = ["add_commands"]

#: The languages of the notify plugin's built-in templates (``qflow_notify._templates.LANGS``;
#: a test keeps the two equal). The kernel does not import the plugin.
LANGS = ("zh", "en")

_EPILOG = """\
test: send one test message through a channel of RULESET (its backend, options and
secrets, ${env:NAME} read from the environment now), or through a backend that
needs no options (log, console). --simulate prints the request instead of sending.

preview: decide the incident, raise a notification of TOPIC (default
incident.reported), and print every message the ruleset's routes and templates make
of it, channel by channel, as each backend would send it (secrets not resolved).
Nothing is sent and nothing is recorded.
With --store URL (or $QFLOW_STORE, for an --incident that is neither JSON nor a file)
--incident names a stored incident, taken as it stands. Without --topic the preview
is of what its next timer sends when it falls due (or what is due at --now): the
escalation step with its data, after the severity raises and reassignments it makes,
and saying which notifications grouping or suppression would hold. With --topic it
is that topic raised on the incident now (or at --now).

examples:
  qflow notify test duty-log rulesets/hotel-front-desk.yaml --simulate
  qflow notify test console rulesets/hotel-front-desk.yaml
  qflow notify preview rulesets/hotel-front-desk.yaml --topic escalation.warning --lang en \\
      --incident '{"channel": "phone", "category": "complaint", "description": "等待超过30分钟"}'
  qflow notify preview rulesets/hotel-front-desk.yaml --incident INC-1 --store sqlite:///qflow.sqlite3

exit status: 0 sent (or previewed), 1 the send failed or the ruleset has errors, 2 a usage error.
"""


def add_commands(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    from qflow.cli import _FORMATTER, _Parser

    p = sub.add_parser("notify", parents=[common], formatter_class=_FORMATTER, epilog=_EPILOG,
                       help="send a test notification, or preview the messages for an incident",
                       description="Try a notification channel, or preview rendered messages.")
    actions = p.add_subparsers(dest="notify_action", metavar="ACTION", parser_class=_Parser)
    t = actions.add_parser("test", parents=[common], formatter_class=_FORMATTER, epilog=_EPILOG,
                           help="send one test message through a channel or backend")
    t.add_argument("target", metavar="BACKEND|CHANNEL", help="a channel of the ruleset, or a backend name")
    t.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    t.add_argument("--simulate", action="store_true", help="print what would be sent; send nothing")
    t.add_argument("--now", metavar="ISO", help="the time to sign and stamp with (default: now)")
    v = actions.add_parser("preview", parents=[common], formatter_class=_FORMATTER, epilog=_EPILOG,
                           help="render the messages a notification would become")
    v.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    v.add_argument("--incident", required=True, metavar="JSON|FILE|ID",
                   help="the incident as JSON, a file, or with --store the id of a stored incident")
    v.add_argument("--store", metavar="URL",
                   help="the store --incident ID is read from (default: $QFLOW_STORE, else sqlite:///qflow.sqlite3)")
    v.add_argument("--topic", metavar="T",
                   help="the notification's topic (default incident.reported; for a stored incident, "
                        "what its next timer sends)")
    v.add_argument("--lang", metavar="LANG",
                   help=f"render in this language ({' or '.join(LANGS)}) instead of the channel's")
    v.add_argument("--recipient", action="append", default=None, metavar="NAME",
                   help="a recipient (assignee, team.lead, role:NAME, an address); repeatable")
    v.add_argument("--now", metavar="ISO", help="the time of the notification (default: now)")
    return {"notify": _cmd_notify}


def _cmd_notify(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow.cli import UsageError

    if args.notify_action == "test":
        return _test(args, out, err)
    if args.notify_action == "preview":
        return _preview(args, out, err)
    raise UsageError("choose an action: test or preview", "run 'qflow notify --help'")


def _engine(args: argparse.Namespace) -> tuple[Engine, datetime]:
    from qflow.cli import _load, _parse_now, _plugins

    now = _parse_now(args.now)
    pm = _plugins(args)
    return Engine(_load(args.ruleset, pm), plugins=pm, clock=FakeClock(now)), now


def _test(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow.cli import UsageError

    engine, now = _engine(args)
    channels, backends = engine.channels(), engine.backends()
    channel = channels.get(args.target)
    if channel is None:
        backend = backends.get(args.target)
        if backend is None:
            bare = sorted(b for b in backends if _bare_config(backends[b]) is not None)
            others = sorted(set(backends) - set(bare))
            raise UsageError(f"'{args.target}' is neither a channel of {args.ruleset} nor an installed backend",
                             f"use a channel ({', '.join(sorted(channels)) or 'the ruleset defines none'}) or a "
                             f"backend that needs no options ({', '.join(bare)})"
                             + (f"; {', '.join(others)} are tested through a channel that uses them" if others
                                else ""))
        config = _bare_config(backend)
        if config is None:
            users = [c.name for c in channels.values() if c.backend == backend.name]
            raise UsageError(f"backend '{backend.name}' needs its options (a URL, a server ...)",
                             f"test a channel that uses it: {', '.join(users)}" if users
                             else f"define a channel with backend: {backend.name} in the ruleset")
        channel = Channel(f"test-{backend.name}", backend.name, config)
    backend = backends.get(channel.backend)
    if backend is None:
        raise UsageError(f"no installed plugin provides the backend '{channel.backend}'",
                         "install the plugin that provides it")
    key = hashlib.sha256(f"notify-test\0{channel.name}\0{now.isoformat()}".encode()).hexdigest()
    subject = f"qflow notify test: {channel.name}"
    body = (f"这是一条测试消息 / This is a test message from qflow, ruleset {engine.ruleset.name}, "
            f"at {now.isoformat()}.")
    message = OutboxMessage(
        id=key, incident_id="TEST-1", channel=channel.name, backend=channel.backend, created_at=now,
        next_attempt_at=now, payload={"topic": "notify.test", "lang": "zh", "kind": getattr(backend, "kind", None),
                                      "subject": subject, "body": body, "recipients": [], "context": {}},
        fallback=None)
    if args.simulate:
        out.write(backend.preview(message, channel.config, now=now))
        return 0
    env = os.environ
    try:
        backend.send(message, channel.config, env=env, now=now)
    except Exception as exc:
        err.write(f"qflow: sending through {channel.name} ({channel.backend}) failed: "
                  f"{redact(f'{type(exc).__name__}: {exc}', config=channel.config, env=env)}\n")
        return 1
    out.write(f"sent a test message through {channel.name} ({channel.backend}), id {key[:12]}\n")
    return 0


def _bare_config(backend: Any) -> Any:
    """The backend's configuration with every option left out, or None when it needs some."""
    try:
        return backend.config_type()
    except TypeError:
        return None


def _preview(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow.cli import UsageError, _read_incident_arg

    if args.lang is not None and args.lang not in LANGS:
        raise UsageError(f"--lang: unknown language '{args.lang}'", f"use one of: {', '.join(LANGS)}")
    if _names_stored(args):
        return _preview_stored(args, out)
    engine, now = _engine(args)
    data = _read_incident_arg(args.incident)
    try:
        incident = parse_incident(data)
    except InputError as exc:
        raise UsageError(f"--incident: QF402 {exc}", "see the incident fields in the ruleset format") from None
    if incident.id is None:
        incident = attrs.evolve(incident, id="PREVIEW-1")
    if incident.reported_at is None:
        incident = attrs.evolve(incident, reported_at=now)
    decision = engine.decide(incident, now)
    state = IncidentState(incident=incident, stage=Stage.REPORTED, seq=2, updated_at=now, decision=decision)
    return _preview_topic(out, engine, args, state, now, "this incident")


def _preview_topic(out: IO[str], engine: Engine, args: argparse.Namespace, state: IncidentState, now: datetime,
                   which: str) -> int:
    """Print the messages --topic raised on *state* at *now* becomes (*which* names it)."""
    note = _note(args, state, now)
    messages = engine._hooks.plan_delivery(note, state, engine.ruleset, now)
    if not messages:
        out.write(f"no route sends '{note.topic}' for {which}; nothing would be sent\n")
        return 0
    _write_messages(out, engine, messages, now)
    return 0


def _note(args: argparse.Namespace, state: IncidentState, now: datetime) -> Notification:
    """The notification of --topic on *state*, to --recipient or its team and owner."""
    decision, incident = state.decision, state.incident
    assert decision is not None
    recipients = tuple(args.recipient) if args.recipient else tuple(x for x in (decision.team, decision.owner) if x)
    return Notification(incident_id=_id(incident), topic=args.topic or "incident.reported", at=now,
                        recipients=recipients,
                        subject=f"[{decision.severity or '?'}] {_id(incident)} {decision.category or ''}".strip(),
                        body=incident.description, data={"lang": args.lang} if args.lang else {})


def _names_stored(args: argparse.Namespace) -> bool:
    """Whether --incident is the id of a stored incident: not JSON (nor stdin), and
    --store is given, or it is no file and $QFLOW_STORE says where incidents are."""
    value = args.incident
    if value == "-" or value.lstrip().startswith(("{", "[")):
        return False
    if args.store:
        return True
    return not os.path.exists(value) and bool(os.environ.get("QFLOW_STORE"))


def _preview_stored(args: argparse.Namespace, out: IO[str]) -> int:
    from qflow._cli_store import _opened, store_url
    from qflow._show import _summary
    from qflow.cli import PROG, UsageError, _load, _parse_now, _plugins

    pm = _plugins(args)
    ruleset = _load(args.ruleset, pm)
    url = store_url(args)
    with _opened(args, pm, create=False) as store:
        state = store.get(args.incident)
        if state is None:
            raise UsageError(f"no incident '{args.incident}' in {url}", f"list them with '{PROG} ls --store {url}'")
        if state.decision is None:
            raise UsageError(f"{args.incident} has no decision to notify about",
                             f"see its timeline with '{PROG} show {args.incident} --store {url}'")
        events = store.events(args.incident)
        if args.topic is not None:
            now = _parse_now(args.now)
            engine = Engine(ruleset, plugins=pm, store=store, clock=FakeClock(now))
            return _preview_topic(out, engine, args, state, now, state.id)
        timers = store.timers(args.incident)
        if not timers:
            out.write(f"nothing is scheduled for {state.id} (stage {state.stage.value}); "
                      f"give --topic to preview a topic\n")
            return 0
        now = _parse_now(args.now) if args.now else timers[0].at
        due = [t for t in timers if t.at <= now]
        if not due:
            out.write(f"nothing of {state.id} is due at {_local(now, ruleset)}; its next timer, {timers[0].key}, "
                      f"is due at {_local(timers[0].at, ruleset)}\n")
            return 0
        engine = Engine(ruleset, plugins=pm, store=store, clock=FakeClock(now))
        # What a tick at now would write, as tick plans it; nothing is written.
        plan = engine._plan(state.id, due, now, (state, tuple(events)), lang=args.lang or None)
        assert plan is not None  # the state was read already
        messages, held = list(plan.write.outbox), list(plan.write.events[plan.effects:])
    out.write(f"{state.id} at {_local(now, ruleset)}: {', '.join(t.key for t in due)}\n")
    for e in held:
        out.write(f"held: {_summary(e.type, dict(e.data), now.tzinfo or timezone.utc)}\n")
    if not messages:
        out.write("nothing would be sent\n")
        return 0
    out.write("\n")
    _write_messages(out, engine, messages, now)
    return 0


def _local(at: datetime, ruleset: Any) -> str:
    from zoneinfo import ZoneInfo

    return at.astimezone(ZoneInfo(ruleset.timezone)).isoformat(timespec="seconds")


def _write_messages(out: IO[str], engine: Engine, messages: Sequence[OutboxMessage], now: datetime) -> None:
    from qflow._show import recipients_text

    backends, channels = engine.backends(), engine.channels()
    for m in messages:
        backend, channel = backends.get(m.backend), channels.get(m.channel)
        p = m.payload
        who = recipients_text(p.get("recipients", ()))
        out.write(f"== {m.channel} ({m.backend}, {p.get('lang')}) id {m.id[:12]}"
                  f"{f', falls back to {m.fallback}' if m.fallback else ''}\n")
        out.write(f"to:      {who or '(the channel itself)'}\nsubject: {p.get('subject', '')}\n")
        out.write("".join(f"  {line}\n" for line in str(p.get("body", "")).splitlines()))
        if p.get("render_error"):
            out.write(f"warning: the template failed ({p['render_error']}); the built-in one was used\n")
        if backend is not None and channel is not None:
            out.write("-- as sent:\n" + backend.preview(m, channel.config, now=now))
        out.write("\n")


def _id(incident: Incident) -> str:
    assert incident.id is not None
    return incident.id
