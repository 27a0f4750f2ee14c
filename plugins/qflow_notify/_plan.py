"""From a notification to outbox messages: route, resolve recipients, render.

Planning runs inside the transaction of the command that raised the notification,
so it never raises: a template that fails at render time falls back to the built-in
one (and says so in the payload) rather than losing the notification or the event.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from datetime import datetime
from typing import Any

import qflow
from qflow_notify import _templates as tpl
from qflow_notify._section import Compiled

__all__ = ["contact", "idempotency_key", "plan", "resolve_default"]

log = logging.getLogger("qflow.notify")

_MOBILE = re.compile(r"^\+?\d[\d -]{5,}$")


def idempotency_key(note: qflow.Notification, state: qflow.IncidentState, channel: str) -> str:
    """The same notification of the same command on the same channel: the same key,
    in every process (a retried command is dropped by the outbox).

    Incident ids and seqs restart at INC-1 in every store, and again in a store
    restored from a backup, while a receiver may serve several stores: so the key
    also carries what identifies the report (when it was reported, and what) and the
    moment the notification was raised. None of that changes when the same message is
    planned again, so retries keep their key."""
    inc = state.incident
    report = [inc.reported_at, inc.occurred_at, inc.channel, inc.category, inc.place, inc.asset, inc.title,
              inc.description, inc.external_id, inc.dedup_key, inc.reporter.name if inc.reporter else None,
              inc.customer.name if inc.customer else None]
    raw = json.dumps(tpl._plain([note.incident_id, state.seq, note.topic, channel, sorted(note.recipients),
                                 note.subject, note.data, note.at, report]),
                     ensure_ascii=False, sort_keys=True, default=str)
    return hashlib.sha256(raw.encode("utf-8")).hexdigest()


def resolve_default(name: str, state: qflow.IncidentState, ruleset: qflow.Ruleset) -> list[str]:
    """``assignee`` (the owner, else the team lead), ``team.lead``, ``team`` (its contact
    or members), ``role:X`` / a role name, ``team:X`` / a team name, ``person:X`` (X);
    anything else as written."""
    compiled: Compiled | None = ruleset.compiled("notify")
    roles = compiled.recipients if compiled else {}
    teams = ruleset.sections.get("teams") or {}
    d = state.decision
    team = teams.get(d.team) if d and d.team else None

    def lead_of(t: Any) -> list[str]:
        return [t.lead] if t is not None and getattr(t, "lead", None) else []

    if name in ("assignee", "owner"):
        return [d.owner] if d and d.owner else lead_of(team)
    if name in ("team.lead", "lead"):
        return lead_of(team)
    if name == "team":
        if team is None:
            return []
        return [team.contact] if getattr(team, "contact", None) else list(getattr(team, "members", ())) or lead_of(team)
    if name.startswith("person:"):
        return [name[7:].strip()]
    role = name[5:].strip() if name.startswith("role:") else name
    if role in roles:
        return list(roles[role])
    if name.startswith("role:"):
        log.warning("notification for %s names role '%s', which notify.recipients does not define", state.id, role)
        return []
    if name.startswith("team:"):
        key = name[5:].strip()
        if key not in teams:
            log.warning("notification for %s names team '%s', which teams does not define", state.id, key)
            return []
        name = key
    if name in teams:
        t = teams[name]
        return [t.contact] if getattr(t, "contact", None) else lead_of(t)
    return [name]


def contact(who: str, compiled: Compiled) -> dict[str, str]:
    """How to reach *who*: the directory entry, or what the text itself is."""
    person = compiled.people.get(who)
    if person is not None:
        out = {"name": person.name or who}
        for field in ("email", "mobile", "chat"):
            if getattr(person, field):
                out[field] = getattr(person, field)
        return out
    if "@" in who:
        return {"email": who}
    if _MOBILE.match(who):
        return {"mobile": re.sub(r"[ -]", "", who)}
    return {"name": who}


def _recipients(note: qflow.Notification, state: qflow.IncidentState, ruleset: qflow.Ruleset,
                compiled: Compiled) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    pending = [(n, 0) for n in note.recipients]
    seen: set[str] = set()
    while pending:
        name, depth = pending.pop(0)
        if name in seen:
            continue
        seen.add(name)
        found = None
        if compiled.hook is not None:
            found = compiled.hook.qflow_recipients(name=name, state=state, ruleset=ruleset)
            if found is not None and (isinstance(found, str) or not isinstance(found, (list, tuple))
                                      or not all(isinstance(who, str) for who in found)):
                # Text would be read as a list of its characters, each a recipient.
                raise qflow.PluginError(f"a plugin returned {type(found).__name__} {found!r} from qflow_recipients "
                                        f"for '{name}'; return a list of people or addresses ([{found!r}] for one), "
                                        "or None to let the next plugin decide")
        if found is None:
            found = resolve_default(name, state, ruleset)
        for who in found:
            # A role may name symbolic recipients (team.lead) in turn: one more level.
            if who != name and depth < 3 and who not in compiled.people and (
                    who in compiled.recipients or who.startswith(("role:", "team:"))
                    or who in ("assignee", "team.lead", "team")):
                pending.append((who, depth + 1))
                continue
            c = contact(who, compiled)
            if c not in out:
                out.append(c)
    return out


def _render(compiled: Compiled, channel: str, note: qflow.Notification, state: qflow.IncidentState,
            ruleset: qflow.Ruleset, recipients: list[dict[str, str]]) -> dict[str, Any]:
    # A notification may ask for a language (``data.lang``; `qflow notify preview --lang`).
    kind, lang = compiled.kinds[channel], str(note.data.get("lang") or compiled.langs[channel])
    ctx = tpl.context(note, state, ruleset, tz=compiled.timezone, lang=lang, via=channel)
    subject_t, body_t = compiled.template(note.topic, kind, lang)
    payload: dict[str, Any] = {"topic": note.topic, "lang": lang, "kind": kind}
    try:
        subject, body = subject_t.render(ctx), body_t.render(ctx)
    except Exception as exc:  # a template is the ops person's text: never lose the notification to it
        default = compiled.defaults.get(lang) or compiled.defaults["en"]
        subject, body = default[0].render(ctx), default[1].render(ctx)
        payload["render_error"] = f"{type(exc).__name__}: {exc}"
        log.warning("template for %s on %s failed (%s); sent with the built-in one", note.topic, channel, exc)
    payload.update(subject=" ".join(subject.split()), body=body.strip(), recipients=recipients, context=ctx)
    return payload


def plan(note: qflow.Notification, state: qflow.IncidentState, ruleset: qflow.Ruleset,
         now: datetime) -> list[qflow.OutboxMessage]:
    compiled: Compiled | None = ruleset.compiled("notify")
    if compiled is None or not compiled.channels:
        return []
    d = state.decision
    names = compiled.route(note.topic, d.severity if d else None, d.team if d else None)
    if not names:
        return []
    try:
        recipients = _recipients(note, state, ruleset, compiled)
    except Exception:
        log.exception("resolving the recipients of %s for %s failed; sending to the channels alone", note.topic,
                      state.id)
        recipients = []
    out = []
    for name in names:
        channel = compiled.channels.get(name)
        if channel is None:
            continue
        try:
            payload = _render(compiled, name, note, state, ruleset, recipients)
        except Exception as exc:
            log.exception("rendering %s for %s on %s failed; sending the notification's own text", note.topic,
                          state.id, name)
            payload = {"topic": note.topic, "lang": compiled.langs.get(name), "kind": compiled.kinds.get(name),
                       "subject": note.subject or f"{state.id} {note.topic}", "body": note.body,
                       "recipients": recipients, "render_error": f"{type(exc).__name__}: {exc}"}
        # The fallback chain is rendered now, each with its own channel's templates,
        # so a dead message can fall back without the ruleset at hand.
        tail, seen, nxt = payload, {name}, channel.fallback
        while nxt is not None and nxt in compiled.channels and nxt not in seen:
            seen.add(nxt)
            try:
                tail["fallback"] = _render(compiled, nxt, note, state, ruleset, recipients)
            except Exception:
                log.exception("rendering the fallback %s of %s failed; it will reuse this content", nxt, name)
                break
            tail, nxt = tail["fallback"], compiled.channels[nxt].fallback
        # The payload is plain data built here for this message alone: frozen in place.
        out.append(qflow.OutboxMessage(
            id=idempotency_key(note, state, name), incident_id=state.id, channel=name, backend=channel.backend,
            created_at=now, next_attempt_at=now, payload=qflow.FrozenDict.adopt_plain(payload), fallback=channel.fallback))
    return out

