"""Built-in plugin: reliable notifications.

Section ``notify`` (channels, routes, recipients, people, templates); the built-in
backends (log, console, e-mail over SMTP, a Standard Webhooks signed webhook, WeCom,
DingTalk, Feishu/Lark, Slack, Microsoft Teams); planning each notification into
rendered, keyed outbox messages (``qflow_plan_delivery``), which ``Engine.deliver``
sends. Registered through the ``qflow`` entry-point group as ``notify``.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import qflow
from qflow import hookimpl
from qflow_notify._basic import ConsoleBackend, LogBackend, RecordingBackend
from qflow_notify._email import EmailBackend, EmailConfig
from qflow_notify._http import DeliveryError
from qflow_notify._plan import idempotency_key, plan, resolve_default
from qflow_notify._section import Compiled, NotifySpec, compile_notify
from qflow_notify._webhooks import (
    DingTalkBackend,
    FeishuBackend,
    LarkBackend,
    SlackBackend,
    TeamsBackend,
    WebhookBackend,
    WeComBackend,
    sign_dingtalk,
    sign_feishu,
    sign_standard,
)

__all__ = [
    "Compiled", "ConsoleBackend", "DeliveryError", "DingTalkBackend", "EmailBackend", "EmailConfig",
    "FeishuBackend", "LarkBackend", "LogBackend", "NotifySpec", "RecordingBackend", "SlackBackend",
    "TeamsBackend", "WeComBackend", "WebhookBackend", "builtin_backends", "idempotency_key",
    "sign_dingtalk", "sign_feishu", "sign_standard",
]

_BUILTIN = (LogBackend, ConsoleBackend, EmailBackend, WebhookBackend, WeComBackend, DingTalkBackend,
            FeishuBackend, LarkBackend, SlackBackend, TeamsBackend)


def builtin_backends() -> list[Any]:
    """Fresh instances of the built-in backends (they hold no state)."""
    return [cls() for cls in _BUILTIN]


@hookimpl
def qflow_ruleset_sections() -> Sequence[qflow.Section]:
    return [qflow.Section("notify", NotifySpec, compile_notify,
                          doc="notification channels, routes, recipients and templates")]


@hookimpl
def qflow_backends() -> Sequence[Any]:
    return builtin_backends()


@hookimpl
def qflow_channels(ruleset: qflow.Ruleset) -> Sequence[qflow.Channel]:
    compiled: Compiled | None = ruleset.compiled("notify")
    return list(compiled.channels.values()) if compiled else []


@hookimpl(trylast=True)
def qflow_recipients(name: str, state: qflow.IncidentState, ruleset: qflow.Ruleset) -> Sequence[str]:
    return resolve_default(name, state, ruleset)


@hookimpl
def qflow_plan_delivery(notification: qflow.Notification, state: qflow.IncidentState, ruleset: qflow.Ruleset,
                        now: datetime) -> Sequence[qflow.OutboxMessage]:
    return plan(notification, state, ruleset, now)
