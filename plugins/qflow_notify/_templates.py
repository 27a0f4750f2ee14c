"""Message templates: Jinja2 in its immutable sandbox, over plain data only.

The context is dicts, lists, text and numbers built from the incident (``context``),
never live objects, so a template cannot walk attributes into the program; the
sandbox also refuses unsafe attributes and changing the data. Names a template uses
are checked against the context's fields when the ruleset loads.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta, tzinfo
from typing import Any

import jinja2
from jinja2 import meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

import qflow

__all__ = ["DEFAULTS", "FIELDS", "KINDS", "LANGS", "compile_template", "context", "duration", "environment",
           "unknown_names"]

KINDS = ("log", "email", "webhook", "chat")

#: Every field a template may name, with what it holds.
FIELDS: dict[str, str] = {
    "id": "the incident id",
    "topic": "what happened (incident.reported, escalation.warning ...)",
    "at": "when the notification was raised",
    "lang": "the channel's language",
    "via": "the notification channel's name",
    "subject": "the subject the notification came with",
    "text": "the text the notification came with",
    "recipients": "whom it is for (names)",
    "data": "what the plugin that raised it adds (rule, step, clock, trigger, occurrence, skipped ...)",
    "title": "the incident's title", "description": "what was reported", "place": "where",
    "asset": "the equipment concerned", "category": "the decided category", "channel": "how it was reported",
    "scope": "the impact scope", "impact": "impact level", "urgency": "urgency level",
    "reported_at": "when it was reported", "occurred_at": "when it happened",
    "reporter": "who reported it", "customer": "the customer (name, tier)", "tags": "tags", "extra": "extra fields",
    "severity": "the severity", "severity_name": "the severity's display name", "priority": "the priority",
    "team": "the team", "team_name": "the team's display name", "team_lead": "the team's lead",
    "owner": "the owner", "responsibility": "the responsibility class",
    "respond_by": "the respond deadline", "resolve_by": "the resolve deadline",
    "deadlines": "every deadline (clock, due, business)",
    "stage": "the stage in the loop", "status": "the status within the stage", "reports": "how many reports",
}

# Escalation and release subjects are said from the data the notification carries
# (``data.trigger``, ``data.held`` ...), so each language says them in its own words;
# the en text is word for word the plugin's own subject.
_EN_STEP = ("{% set t = data.trigger %}[{{ data.severity }}] {{ id }} "
            "{% if t.kind == 'used' %}{{ t.percent }}% of {{ data.clock }} used"
            "{% elif t.kind == 'remaining' %}{{ t.seconds | duration('en') }} left on {{ data.clock }}"
            "{% elif t.kind == 'overdue' %}{{ data.clock }} overdue by {{ t.seconds | duration('en') }}"
            "{% else %}{{ data.clock }} breached{% endif %}"
            "{% if data.reached %}{% if data.reached.kind == 'jump' %}; jumped to {{ data.step }}"
            "{% else %}; nobody available at {{ data.reached.from }}, passed to {{ data.step }}{% endif %}{% endif %}"
            "{% if data.skipped %} (repeat {{ data.occurrence }}; {{ data.skipped }} missed while down){% endif %}")
_EN_RELEASE = ("[{{ data.severity or '?' }}] {{ id }}{% if data.category %} {{ data.category }}{% endif %}: "
               "still open; {{ data.held }} notification{{ '' if data.held == 1 else 's' }} held while "
               "{{ data.by }} was open ({{ data.topics | join(', ') }}), and {{ data.by }} is {{ data.holder_stage }}")
_ZH_CLOCKS = "{'respond': '响应', 'resolve': '解决', 'acknowledge': '确认'}"
_ZH_TOPICS = ("{'incident.reported': '事件报告', 'escalation.warning': '升级预警', 'escalation.breach': '超时升级', "
              "'action.planned': '纠正措施'}")
_ZH_STEP = ("{% set t = data.trigger %}{% set c = " + _ZH_CLOCKS + ".get(data.clock, data.clock) %}"
            "【{{ (severity_name if severity == data.severity else none) or data.severity or '未定' }}】{{ id }} "
            "{% if t.kind == 'used' %}{{ c }}时限已用 {{ t.percent }}%"
            "{% elif t.kind == 'remaining' %}距{{ c }}期限还剩 {{ t.seconds | duration('zh') }}"
            "{% elif t.kind == 'overdue' %}{{ c }}已超时 {{ t.seconds | duration('zh') }}"
            "{% else %}{{ c }}已超时{% endif %}"
            "{% if data.reached %}{% if data.reached.kind == 'jump' %}，跳级至 {{ data.step }}"
            "{% else %}，{{ data.reached.from }} 无人可联系，转至 {{ data.step }}{% endif %}{% endif %}"
            # Unlike the en subject, every repeat says which it is: two identical lines read as one sent twice.
            "{% if data.occurrence %}（第{{ data.occurrence }}次重复提醒"
            "{% if data.skipped %}；停机期间漏发{{ data.skipped }}次{% endif %}）{% endif %}")
_ZH_RELEASE = ("【{{ severity_name or data.severity or '未定' }}】{{ id }}{% if data.category %} {{ data.category }}"
               "{% endif %}：仍未关闭；{{ data.by }} 未关闭期间暂缓了 {{ data.held }} 条通知（"
               "{% for x in data.topics %}{{ " + _ZH_TOPICS + ".get(x, x) }}{{ '、' if not loop.last }}{% endfor %}），"
               "{{ data.by }} 现{{ {'closed': '已关闭', 'rejected': '已驳回', 'missing': '已不存在'}"
               ".get(data.holder_stage, data.holder_stage) }}")
# A step's and a release's notifications carry these; any other keeps the subject it came with.
_IS_STEP = "data.trigger is mapping and data.clock"
_IS_RELEASE = "topic == 'incident.released' and data.by and data.held"

#: The built-in templates (subject, body) per language, used where a ruleset has none.
DEFAULTS: dict[str, tuple[str, str]] = {
    "zh": ("{% if " + _IS_STEP + " %}" + _ZH_STEP + "{% elif " + _IS_RELEASE + " %}" + _ZH_RELEASE +
           "{% elif subject and topic != 'incident.reported' %}{{ subject }}{% else %}"
           "【{{ severity_name or severity or '未定' }}】{{ id }} {{ title or category or '' }}{% endif %}",
           "{{ text or description }}\n"
           "{% if place %}地点：{{ place }}\n{% endif %}"
           "{% if team %}团队：{{ team_name or team }}{% if owner %}，负责人：{{ owner }}{% endif %}\n{% endif %}"
           "{% if respond_by %}响应期限：{{ respond_by }}\n{% endif %}"
           "{% if resolve_by %}解决期限：{{ resolve_by }}\n{% endif %}"
           "事件：{{ topic }}"),
    "en": ("{% if " + _IS_STEP + " %}" + _EN_STEP + "{% elif " + _IS_RELEASE + " %}" + _EN_RELEASE +
           "{% elif subject and topic != 'incident.reported' %}{{ subject }}{% else %}"
           "[{{ severity or 'unset' }}] {{ id }} {{ title or category or '' }}{% endif %}",
           "{{ text or description }}\n"
           "{% if place %}Place: {{ place }}\n{% endif %}"
           "{% if team %}Team: {{ team_name or team }}{% if owner %}, owner: {{ owner }}{% endif %}\n{% endif %}"
           "{% if respond_by %}Respond by: {{ respond_by }}\n{% endif %}"
           "{% if resolve_by %}Resolve by: {{ resolve_by }}\n{% endif %}"
           "Event: {{ topic }}"),
}


#: The languages a channel, a template or a preview may name: those of the built-ins.
LANGS = tuple(DEFAULTS)


def environment() -> jinja2.Environment:
    """A fresh sandbox: no autoescape (chat markdown and mail are not HTML), with the
    ``duration`` filter."""
    env = ImmutableSandboxedEnvironment(autoescape=False, undefined=jinja2.Undefined, keep_trailing_newline=False)
    env.filters["duration"] = duration
    return env


_ZH_UNITS = (("天", 86400), ("小时", 3600), ("分钟", 60), ("秒", 1))


def duration(seconds: Any, lang: str = "en") -> str:
    """*seconds* said in *lang*: ``1h30m`` as a ruleset writes it, ``1小时30分钟`` in zh."""
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        return "" if seconds is None else str(seconds)
    if lang != "zh":
        return qflow.format_duration(timedelta(seconds=seconds))
    total, parts = abs(int(seconds)), []
    for unit, size in _ZH_UNITS:
        n, total = divmod(total, size)
        if n:
            parts.append(f"{n}{unit}")
    return ("-" if seconds < 0 else "") + ("".join(parts) or "0秒")


def compile_template(env: jinja2.Environment, source: str) -> tuple[jinja2.Template | None, set[str], str | None]:
    """The compiled template, the names it reads, or the syntax error's message."""
    try:
        ast = env.parse(source)
    except jinja2.TemplateSyntaxError as exc:
        return None, set(), f"{exc.message} (template line {exc.lineno})"
    return env.from_string(ast), set(meta.find_undeclared_variables(ast)), None


def unknown_names(names: set[str]) -> list[str]:
    return sorted(n for n in names if n not in FIELDS)


def _fmt(value: datetime | None, tz: tzinfo) -> str | None:
    if value is None:
        return None
    local = value.astimezone(tz)
    off = local.strftime("%z")
    return local.strftime("%Y-%m-%d %H:%M ") + (f"{off[:3]}:{off[3:]}" if off else "")


def _plain(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, datetime):
        return value.isoformat()
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    return str(value)


def context(note: qflow.Notification, state: qflow.IncidentState, ruleset: qflow.Ruleset, *,
            tz: tzinfo, lang: str, via: str) -> dict[str, Any]:
    """The plain data a template sees (exactly the keys of :data:`FIELDS`)."""
    inc, d = state.incident, state.decision
    teams = ruleset.sections.get("teams") or {}
    team = teams.get(d.team) if d and d.team else None
    severities = ruleset.sections.get("severities") or {}
    sev = severities.get(d.severity) if d and d.severity else None
    return {
        "id": state.id, "topic": note.topic, "at": _fmt(note.at, tz), "lang": lang, "via": via,
        "subject": note.subject, "text": note.body, "recipients": list(note.recipients), "data": _plain(note.data),
        "title": inc.title, "description": inc.description, "place": inc.place, "asset": inc.asset,
        "category": d.category if d and d.category else inc.category, "channel": inc.channel, "scope": inc.scope,
        "impact": inc.impact, "urgency": inc.urgency,
        "reported_at": _fmt(inc.reported_at, tz), "occurred_at": _fmt(inc.occurred_at, tz),
        "reporter": inc.reporter.name if inc.reporter else None,
        "customer": {"name": inc.customer.name, "tier": inc.customer.tier} if inc.customer else {},
        "tags": list(inc.tags), "extra": _plain(inc.extra),
        "severity": d.severity if d else None, "severity_name": getattr(sev, "name", None),
        "priority": d.priority if d else None, "team": d.team if d else None,
        "team_name": getattr(team, "name", None), "team_lead": getattr(team, "lead", None),
        "owner": d.owner if d else None, "responsibility": d.responsibility if d else None,
        "respond_by": _fmt(d.respond_by, tz) if d else None, "resolve_by": _fmt(d.resolve_by, tz) if d else None,
        "deadlines": [{"clock": x.clock, "due": _fmt(x.due, tz), "business": qflow.format_duration(x.business),
                       "calendar": x.calendar} for x in (d.deadlines if d else ())],
        "stage": state.stage.value, "status": state.status, "reports": state.reports,
    }
