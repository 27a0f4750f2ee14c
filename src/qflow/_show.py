"""What ``qflow show`` prints: an incident's timeline and its outbox, every time in
one zone, so "who was told, and did it arrive" is read off one screen."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone, tzinfo
from typing import IO, Any

from qflow._frozen import thaw
from qflow._render import _plural
from qflow.model import Event, IncidentState
from qflow.store import DeliveryAttempt, OutboxMessage

__all__ = ["parse_zone", "recipients_text", "write_show"]

_OFFSET = re.compile(r"^([+-])(\d{2}):(\d{2})$")


def parse_zone(text: str) -> tzinfo | None:
    """The zone *text* names (an IANA name, ``UTC``, or an offset ``+08:00``), or None."""
    m = _OFFSET.match(text)
    if m:
        sign, hours, minutes = m.groups()
        delta = timedelta(hours=int(hours), minutes=int(minutes))
        if delta >= timedelta(hours=24):
            return None
        return timezone(-delta if sign == "-" else delta)
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        return ZoneInfo(text)
    except (ZoneInfoNotFoundError, ValueError):
        return None


def recipients_text(recipients: Sequence[Any]) -> str:
    """The people a planned message goes to, as its payload names them."""
    return ", ".join(r.get("name") or r.get("email") or r.get("mobile") or "?" for r in recipients)


def write_show(out: IO[str], state: IncidentState, events: Sequence[Event],
               messages: Sequence[tuple[OutboxMessage, Sequence[DeliveryAttempt]]], tz: tzinfo) -> None:
    d = state.decision
    out.write(f"{state.id}  {state.stage.value}  {(d.severity if d else None) or '-'}"
              f"  team {(d.team if d else None) or '-'}  owner {(d.owner if d else None) or '-'}"
              f"  reports {state.reports}\n")
    out.write(f"  {state.incident.title or state.incident.description}\n")
    out.write(f"timeline (times in {tz}):\n")
    for e in events:
        out.write(f"  {e.seq:>3}  {_at(e.at, tz)}  {e.type:<24} by {e.actor or '-'}"
                  f"  source {e.source or '-'}  ruleset {e.ruleset or '-'}\n")
        summary = _summary(e.type, thaw(e.data), tz)
        if summary:
            out.write(f"       {summary}\n")
    if not messages:
        out.write("outbox: no messages\n")
        return
    out.write(f"outbox ({_plural(len(messages), 'message')}):\n")
    for m, attempts in messages:
        p = m.payload
        who = recipients_text(p.get("recipients") or ()) or "(the channel itself)"
        out.write(f"  {_at(m.created_at, tz)}  {p.get('topic') or '-'}  on {m.channel} ({m.backend})"
                  f"  to {who}  {_status(m, tz)}\n")
        out.write(f"       id {m.id[:12]}  subject {p.get('subject') or '-'}\n")
        for a in attempts:
            result = "ok" if a.ok else f"failed: {a.error or '-'}"
            out.write(f"       attempt {a.number}  {_at(a.at, tz)}  by {a.worker or '-'}  {result}\n")


def _at(dt: datetime, tz: tzinfo) -> str:
    return dt.astimezone(tz).isoformat(timespec="seconds")


def _status(m: OutboxMessage, tz: tzinfo) -> str:
    tried = _plural(m.attempts, "attempt")
    if m.status == "delivered":
        return f"delivered ({tried})"
    if m.status == "dead":
        return f"dead after {tried}" + (f", fell back to {m.fallback}" if m.fallback else "")
    if m.attempts:
        return f"pending ({tried} failed, next {_at(m.next_attempt_at, tz)})"
    return "pending"


def _time(value: Any, tz: tzinfo) -> str:
    # Times inside event data are ISO text; shown in the one zone like the rest.
    if isinstance(value, str):
        try:
            return _at(datetime.fromisoformat(value), tz)
        except ValueError:
            return value
    return "-" if value is None else str(value)


def _names(values: Any) -> str:
    return ", ".join(str(v) for v in values or ())


def _summary(kind: str, data: Any, tz: tzinfo) -> str:
    get = data.get
    if kind == "IncidentReported":
        return f"channel {get('channel') or '-'}, category {get('category') or '-'}, place {get('place') or '-'}"
    if kind == "DecisionMade":
        return (f"category {get('category') or '-'}, severity {get('severity') or '-'}, "
                f"team {get('team') or '-'}, owner {get('owner') or '-'}")
    if kind == "ReportAttached":
        return f"a further report by {get('channel') or '-'} (dedup key {get('dedup_key')})"
    if kind in ("StageChanged", "StatusChanged", "SeverityChanged"):
        return f"{get('from') or '-'} -> {get('to') or '-'}" + (f": {get('reason')}" if get("reason") else "")
    if kind == "Reassigned":
        moved = [f"{k} {get(k)}" for k in ("team", "owner") if get(k) is not None]
        return f"to {', '.join(moved) or 'the same'}" + (f": {get('reason')}" if get("reason") else "")
    if kind == "Acknowledged":
        return get("note") or ""
    if kind == "Responded":
        return f"{get('message') or '-'}" + (f" (by {get('channel')})" if get("channel") else "")
    if kind == "EscalationStepFired":
        text = (f"{get('ladder')}/{get('step')} (level {get('level')}, {get('clock')} clock): {get('when')}; "
                f"occurrence {get('occurrence')}, skipped {get('skipped')}; "
                f"to {_names(get('recipients')) or 'nobody available'}")
        if get("unavailable"):
            text += f"; unavailable {_names(get('unavailable'))}"
        return text + (f"; via {get('via')}" if get("via") else "")
    if kind == "EscalationStepSkipped":
        return (f"{get('ladder')}/{get('step')} (level {get('level')}, {get('clock')} clock) skipped"
                + (f": {get('reason')}" if get("reason") else ""))
    if kind == "DeadlineBreached":
        text = (f"{get('clock')} was due {_time(get('due'), tz)} "
                f"(target {get('target') or '-'}, calendar {get('calendar') or '-'})")
        if get("breached_at") is not None and get("breached_at") != get("due"):
            text += f", breached at {_time(get('breached_at'), tz)}"
        return text
    if kind == "NotificationSuppressed":
        return (f"{get('topic')} to {_names(get('recipients')) or '-'} held: {get('reason')} by {get('by')}"
                + (f" (rule {get('rule')})" if get("rule") else ""))
    if kind == "NotificationsReleased":
        return (f"{_plural(get('held') or 0, 'held notification')} released ({_names(get('topics')) or '-'}): "
                f"{get('by')} is {get('holder_stage')} ({get('reason')})")
    if kind == "NotificationDeadLettered":
        text = (f"{get('topic')} on {get('channel')} ({get('backend')}) dead after "
                f"{_plural(get('attempts') or 0, 'attempt')}, message {str(get('message') or '-')[:12]}: "
                f"{get('error') or '-'}")
        if get("fallback"):
            text += f"; falls back to {get('fallback')}, message {str(get('fallback_message') or '-')[:12]}"
        return text
    if kind == "NotificationFailed":
        return f"{get('topic')}: {get('plugin')} failed: {get('error')}"
    # Other events: their data whole, never cut (a cut hides the value that matters).
    return json.dumps(data, ensure_ascii=False, default=str, sort_keys=True)
