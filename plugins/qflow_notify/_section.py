"""The ``notify:`` section: channels, routes, recipients, people, templates.

Checked and compiled once at load. A channel's own options are typed by its
backend's config class (from any plugin's ``qflow_backends``), so a webhook without
its URL is a located error in ``qflow check``, not a failure at 3 a.m.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from collections.abc import Mapping
from typing import Any
from zoneinfo import ZoneInfo

import attrs
import jinja2

import qflow
from qflow import Channel, CompileContext, RetryPolicy
from qflow_notify import _templates as tpl
from qflow_notify._secrets import malformed

__all__ = ["Compiled", "NotifySpec", "PersonSpec", "RouteSpec", "TemplateSpec", "compile_notify"]

#: Channel keys every backend shares; the rest are the backend's options.
COMMON = ("backend", "fallback", "retry", "lang")


@attrs.frozen
class RouteSpec:
    """Which notifications go to which channels. Every route that matches adds its
    channels; ``topics`` are glob patterns (``escalation.*``)."""

    channels: tuple[str, ...] = attrs.field(converter=tuple)
    topics: tuple[str, ...] = attrs.field(default=("*",), converter=tuple)
    severities: tuple[str, ...] | None = None
    teams: tuple[str, ...] | None = None
    id: str | None = None


@attrs.frozen
class TemplateSpec:
    """A subject and body for notifications whose topic matches ``topic`` (a glob),
    on channels of ``kind`` (log, email, webhook, chat; any when absent) in ``lang``
    (any when absent). The first template that matches wins."""

    topic: str = "*"
    kind: str | None = None
    lang: str | None = None
    subject: str | None = None
    body: str | None = None


@attrs.frozen
class PersonSpec:
    """How to reach someone: e-mail, mobile (chat @mentions), chat user id."""

    email: str | None = None
    mobile: str | None = None
    chat: str | None = None
    name: str | None = None


@attrs.frozen
class NotifySpec:
    channels: dict[str, Any] = attrs.field(factory=dict)  # options typed by each backend, at compile
    routes: list[RouteSpec] = attrs.field(factory=list)
    templates: list[TemplateSpec] = attrs.field(factory=list)
    recipients: dict[str, list[str]] = attrs.field(factory=dict)
    people: dict[str, PersonSpec] = attrs.field(factory=dict)
    lang: str = "zh"


@attrs.frozen
class _Template:
    topic: str
    kind: str | None
    lang: str | None
    subject: jinja2.Template | None
    body: jinja2.Template | None


@attrs.frozen
class Compiled:
    """What planning reads per notification."""

    channels: Mapping[str, Channel]
    kinds: Mapping[str, str]  # channel -> backend kind
    langs: Mapping[str, str]  # channel -> language
    routes: tuple[RouteSpec, ...]
    templates: tuple[_Template, ...]
    defaults: Mapping[str, tuple[jinja2.Template, jinja2.Template]]
    recipients: Mapping[str, tuple[str, ...]]
    people: Mapping[str, PersonSpec]
    lang: str
    timezone: ZoneInfo
    hook: Any = attrs.field(eq=False, repr=False)

    def route(self, topic: str, severity: str | None, team: str | None) -> list[str]:
        """The channels a notification goes to (no routes: every channel that is not
        only someone's fallback)."""
        if not self.routes:
            fallbacks = {c.fallback for c in self.channels.values()}
            return [n for n in self.channels if n not in fallbacks]
        out: list[str] = []
        for r in self.routes:
            if not any(fnmatch.fnmatchcase(topic, t) for t in r.topics):
                continue
            if r.severities is not None and severity not in r.severities:
                continue
            if r.teams is not None and team not in r.teams:
                continue
            out.extend(c for c in r.channels if c not in out)
        return out

    def template(self, topic: str, kind: str, lang: str) -> tuple[jinja2.Template, jinja2.Template]:
        default = self.defaults.get(lang) or self.defaults["en"]
        for t in self.templates:
            if (t.kind in (None, kind) and t.lang in (None, lang) and fnmatch.fnmatchcase(topic, t.topic)):
                return t.subject or default[0], t.body or default[1]
        return default


def _backends(ctx: CompileContext) -> dict[str, Any]:
    from qflow_notify import builtin_backends

    groups = ctx.hook.qflow_backends() if ctx.hook is not None else [builtin_backends()]
    found: dict[str, Any] = {}
    for group in groups:
        for b in group or ():
            if b.name in found and found[b.name] is not b:
                ctx.error(("notify",), "QF778", f"two plugins provide a backend named '{b.name}'",
                          hint="block one of them with QFLOW_BLOCKED_PLUGINS", at="key")
                continue
            found[b.name] = b
    return found


_TOKENISH = re.compile(r"[?&](key|token|access_token|secret|sign|sig|password)=", re.I)


def _check_secrets(ctx: CompileContext, path: tuple[Any, ...], backend: Any, config: Any) -> None:
    for a in attrs.fields(type(config)):
        value = getattr(config, a.name)
        values = value if isinstance(value, (tuple, list)) else [value]
        for v in values:
            if isinstance(v, str) and (bad := malformed(v)) is not None:
                ctx.error(path + (a.name,), "QF777", f"'{bad}' is not an environment reference",
                          hint="write '${env:NAME}' with NAME in letters, digits and _")
    for field in getattr(backend, "secret_fields", ()):
        value = getattr(config, field, None)
        if not isinstance(value, str) or "${" in value:
            continue
        if field == "url" and qflow.redact(value) == value and not _TOKENISH.search(value):
            continue  # a URL without a token in it (an internal receiver) may be written out
        ctx.error(path + (field,), "QF776", f"the {field} of this channel is written into the ruleset",
                  hint="put it in an environment variable and write '${env:NAME}'; rulesets are not secret")


def _compile_channels(spec: NotifySpec, ctx: CompileContext, backends: Mapping[str, Any]) -> tuple[
        dict[str, Channel], dict[str, str], dict[str, str]]:
    channels: dict[str, Channel] = {}
    kinds: dict[str, str] = {}
    langs: dict[str, str] = {}
    names = ", ".join(sorted(backends))
    for name, raw in spec.channels.items():
        path = ("notify", "channels", name)
        ctx.define("channel", name, path)
        if not isinstance(raw, Mapping):
            ctx.error(path, "QF103", "a channel must be a mapping", hint="write 'backend: NAME' and its options below it")
            continue
        backend_name = raw.get("backend")
        if backend_name is None:
            ctx.error(path, "QF102", "missing required key 'backend'", hint=f"one of: {names}")
            continue
        if not isinstance(backend_name, str):
            ctx.error(path + ("backend",), "QF103", "backend must be a name", hint=f"one of: {names}")
            continue
        backend = backends.get(backend_name)
        if backend is None:
            from qflow.diagnostics import did_you_mean

            ctx.error(path + ("backend",), "QF770", f"unknown backend '{backend_name}'",
                      hint=did_you_mean(backend_name, list(backends)) or f"the installed backends are: {names}")
            continue
        retry = RetryPolicy()
        if "retry" in raw:
            got = ctx.structure(path + ("retry",), ctx.raw(path + ("retry",)), RetryPolicy)
            if got is not None:
                retry = got
                _check_retry(ctx, path + ("retry",), retry)
        fallback = raw.get("fallback")
        if fallback is not None and not isinstance(fallback, str):
            ctx.error(path + ("fallback",), "QF103", "fallback must be a channel name")
            fallback = None
        lang = raw.get("lang", spec.lang)
        if not isinstance(lang, str):
            ctx.error(path + ("lang",), "QF103", "lang must be a language code such as zh or en")
            lang = spec.lang
        elif "lang" in raw:
            _check_lang(ctx, path + ("lang",), lang)
        options = {k: v for k, v in (ctx.raw(path) or {}).items() if k not in COMMON}
        config = ctx.structure(path, options, backend.config_type)
        if config is None:
            continue
        for field, message, hint in backend.check(config):
            ctx.error(path + tuple(_field_path(field)), "QF771", message, hint=hint)
        _check_secrets(ctx, path, backend, config)
        channels[name] = Channel(name, backend_name, config, retry, fallback)
        kinds[name] = backend.kind
        langs[name] = lang
    return channels, kinds, langs


def _check_lang(ctx: CompileContext, path: tuple[Any, ...], lang: str, rule: str | None = None) -> None:
    # Rendering falls back to English for a language without built-in templates, so a
    # typo would go unseen until someone reads the message.
    if lang not in tpl.LANGS:
        from qflow.diagnostics import did_you_mean

        ctx.error(path, "QF104", f"unknown language '{lang}'", rule=rule,
                  hint=did_you_mean(lang, tpl.LANGS) or f"use one of: {', '.join(tpl.LANGS)}")


def _field_path(field: str) -> list[str | int]:
    out: list[str | int] = []
    for part in re.findall(r"[^.\[\]]+|\[\d+\]", field):
        out.append(int(part[1:-1]) if part.startswith("[") else part)
    return out


def _check_retry(ctx: CompileContext, path: tuple[Any, ...], r: RetryPolicy) -> None:
    if r.attempts < 1:
        ctx.error(path + ("attempts",), "QF779", f"attempts is {r.attempts}, so nothing would ever be sent",
                  hint="give 1 or more tries in all, e.g. attempts: 5")
    if r.backoff > r.max:
        ctx.error(path + ("backoff",), "QF779",
                  f"backoff ({qflow.format_duration(r.backoff)}) is longer than max ({qflow.format_duration(r.max)})",
                  hint="the first wait cannot exceed the longest; shorten backoff or raise max")
    if not 0 <= r.jitter <= 1:
        ctx.error(path + ("jitter",), "QF779", f"jitter {r.jitter:g} is outside 0..1",
                  hint="a fraction of each wait, e.g. 0.2")


def _check_fallbacks(ctx: CompileContext, spec: NotifySpec, channels: Mapping[str, Channel]) -> None:
    from qflow.diagnostics import did_you_mean

    for name, ch in channels.items():
        if ch.fallback is None:
            continue
        path = ("notify", "channels", name, "fallback")
        if ch.fallback not in spec.channels:
            ctx.error(path, "QF774", f"unknown fallback channel '{ch.fallback}'",
                      hint=did_you_mean(ch.fallback, list(spec.channels)) or "name a channel of this section")
            continue
        seen = [name]
        nxt: str | None = ch.fallback
        while nxt is not None and nxt in channels:
            if nxt in seen:
                ctx.error(path, "QF774", f"fallbacks go round in a circle: {' -> '.join(seen + [nxt])}",
                          hint="end the chain at a channel without a fallback")
                break
            seen.append(nxt)
            nxt = channels[nxt].fallback


def _compile_templates(spec: NotifySpec, ctx: CompileContext, env: jinja2.Environment) -> list[_Template]:
    from qflow.diagnostics import did_you_mean

    out = []
    for i, t in enumerate(spec.templates):
        path = ("notify", "templates", i)
        if t.kind is not None and t.kind not in tpl.KINDS:
            ctx.error(path + ("kind",), "QF104", f"'{t.kind}' is not one of: {', '.join(tpl.KINDS)}",
                      hint=did_you_mean(t.kind, tpl.KINDS))
        if t.lang is not None:
            _check_lang(ctx, path + ("lang",), t.lang)
        if t.subject is None and t.body is None:
            ctx.error(path, "QF102", "the template has neither subject nor body", hint="give at least one of them")
        parts: dict[str, jinja2.Template | None] = {}
        for part in ("subject", "body"):
            source = getattr(t, part)
            if source is None:
                parts[part] = None
                continue
            compiled, names, problem = tpl.compile_template(env, source)
            if problem is not None:
                ctx.error(path + (part,), "QF773", f"the {part} template does not compile: {problem}",
                          hint="check the {{ }} and {% %} pairs")
            for unknown in tpl.unknown_names(names):
                ctx.error(path + (part,), "QF772", f"the {part} template names an unknown field '{unknown}'",
                          hint=did_you_mean(unknown, tpl.FIELDS) or "see 'qflow notify preview --help' for the fields")
            parts[part] = compiled
        out.append(_Template(t.topic, t.kind, t.lang, parts["subject"], parts["body"]))
    return out


def _check_topics(ctx: CompileContext, spec: NotifySpec) -> None:
    """Warn (QF780) about a route or template topic that no plugin raises and that looks
    meant for one that some plugin does (see ``qflow_notification_topics``)."""
    if ctx.hook is None:
        return
    known = sorted({t for group in ctx.hook.qflow_notification_topics(sections=ctx.sections()) for t in group or ()})
    for i, r in enumerate(spec.routes):
        for j, pattern in enumerate(r.topics):
            _check_topic(ctx, ("notify", "routes", i, "topics", j), pattern, known, r.id)
    for i, t in enumerate(spec.templates):
        _check_topic(ctx, ("notify", "templates", i, "topic"), t.topic, known, None)


def _check_topic(ctx: CompileContext, path: tuple[Any, ...], pattern: str, known: list[str],
                 rule: str | None) -> None:
    if any(fnmatch.fnmatchcase(t, pattern) for t in known):
        return
    prefix, _, rest = pattern.partition(".")
    ours = [t for t in known if t.partition(".")[0] == prefix]
    if ours:
        meant = _closest(rest, {t.partition(".")[2]: t for t in ours})
    else:
        # A prefix no plugin declares may belong to a plugin that does not implement
        # qflow_notification_topics: only a near miss of a declared prefix counts.
        near = _closest(prefix, {t.partition(".")[0]: t.partition(".")[0] for t in known})
        if near is None:
            return
        ours = [t for t in known if t.partition(".")[0] == near]
        meant = near + pattern[len(prefix):]
        meant = meant if any(fnmatch.fnmatchcase(t, meant) for t in known) else None
    where = ours[0].partition(".")[0]
    ctx.warn(path, "QF780", f"no installed plugin raises a topic matching '{pattern}'", rule=rule,
             hint=f"did you mean '{meant}'?" if meant else f"the {where} topics are: {', '.join(ours)}")


def _closest(name: str, candidates: Mapping[str, str]) -> str | None:
    """The candidate whose key is closest to *name* (as ``did_you_mean`` picks), or None."""
    close = difflib.get_close_matches(name, sorted(candidates), n=1, cutoff=0.6)
    return candidates[close[0]] if close else None


def compile_notify(spec: NotifySpec | None, ctx: CompileContext) -> Compiled | None:
    if spec is None:
        return None
    backends = _backends(ctx)
    _check_lang(ctx, ("notify", "lang"), spec.lang)
    channels, kinds, langs = _compile_channels(spec, ctx, backends)
    _check_fallbacks(ctx, spec, channels)
    for i, r in enumerate(spec.routes):
        path = ("notify", "routes", i)
        for j, c in enumerate(r.channels):
            if c not in spec.channels:
                from qflow.diagnostics import did_you_mean

                ctx.error(path + ("channels", j), "QF775", f"unknown channel '{c}'", rule=r.id,
                          hint=did_you_mean(c, list(spec.channels)) or "name a channel of notify.channels")
        for j, s in enumerate(r.severities or ()):
            ctx.refer("severity", s, path + ("severities", j), rule=r.id)
        for j, team in enumerate(r.teams or ()):
            ctx.refer("team", team, path + ("teams", j), rule=r.id)
    _check_topics(ctx, spec)
    env = tpl.environment()
    templates = _compile_templates(spec, ctx, env)
    defaults = {lang: (env.from_string(s), env.from_string(b)) for lang, (s, b) in tpl.DEFAULTS.items()}
    for role in spec.recipients:
        ctx.define("recipient role", role, ("notify", "recipients", role))
    return Compiled(
        channels=channels, kinds=kinds, langs=langs, routes=tuple(spec.routes), templates=tuple(templates),
        defaults=defaults, recipients={k: tuple(v) for k, v in spec.recipients.items()},
        people=dict(spec.people), lang=spec.lang, timezone=ctx.timezone, hook=ctx.hook,
    )

