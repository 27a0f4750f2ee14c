"""Backends that POST JSON: a generic signed webhook (Standard Webhooks) and the
incoming-webhook APIs of WeCom, DingTalk, Feishu/Lark, Slack and Microsoft Teams.

Each builds its request from the rendered payload (``request``); ``send`` resolves
``${env:NAME}`` and signs at that moment, ``preview`` shows the same request with the
references unresolved, so a preview never holds a secret.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import urllib.parse
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

import attrs

import qflow
from qflow_notify._base import BackendBase, Check, dumps, plain, url_check
from qflow_notify._http import DeliveryError, json_answer, post_json
from qflow_notify._secrets import resolve

__all__ = ["DingTalkBackend", "FeishuBackend", "SlackBackend", "TeamsBackend", "WeComBackend", "WebhookBackend"]

_TIMEOUT = timedelta(seconds=10)


def _lines(payload: Mapping[str, Any]) -> tuple[str, str]:
    return str(payload.get("subject", "")), str(payload.get("body", ""))


def _recipients(payload: Mapping[str, Any], field: str) -> list[str]:
    out: list[str] = []
    for r in payload.get("recipients", ()):
        v = r.get(field)
        if v and v not in out:
            out.append(str(v))
    return out


class _Http(BackendBase):
    secret_fields: Sequence[str] = ("url", "secret")

    def request(self, message: qflow.OutboxMessage, config: Any, now: datetime,
                env: Mapping[str, str] | None) -> tuple[str, dict[str, str], bytes]:
        raise NotImplementedError

    def accept(self, status: int, body: bytes) -> None:
        """Raise when a 2xx answer still says the message was refused."""

    def check(self, config: Any) -> Sequence[Check]:
        return url_check(config.url)

    def send(self, message: qflow.OutboxMessage, config: Any, *, env: Mapping[str, str], now: datetime) -> None:
        url, headers, body = self.request(message, config, now, env)
        status, answer = post_json(url, None, raw=body, headers=headers, timeout=config.timeout.total_seconds())
        self.accept(status, answer)

    def preview(self, message: qflow.OutboxMessage, config: Any, *, now: datetime) -> str:
        url, headers, body = self.request(message, config, now, None)
        head = "".join(f"{k}: {v}\n" for k, v in headers.items())
        text = dumps(json.loads(body))
        return f"POST {qflow.redact(url)}\n{head}\n{text}\n"


def _secret(value: str | None, env: Mapping[str, str] | None) -> str | None:
    return value if env is None else resolve(value, env)


def _errcode(what: str, body: bytes, keys: Sequence[str]) -> None:
    answer = json_answer(200, body)
    if not isinstance(answer, Mapping):
        return
    for key in keys:
        code = answer.get(key)
        if code not in (None, 0):
            msg = answer.get("errmsg") or answer.get("msg") or answer.get("StatusMessage") or ""
            raise DeliveryError(f"{what} refused the message: {key} {code} {msg}".rstrip())


# -- Standard Webhooks -------------------------------------------------------------------


@attrs.frozen
class WebhookConfig:
    """A signed JSON POST (https://www.standardwebhooks.com): ``secret`` is the
    receiver's ``whsec_...`` key, from the environment."""

    url: str
    secret: str | None = None
    timeout: timedelta = _TIMEOUT
    headers: dict[str, str] = attrs.field(factory=dict)


def sign_standard(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """``v1,<base64 HMAC-SHA256 of "id.timestamp.body">`` keyed by the decoded secret."""
    raw = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        key = base64.b64decode(raw + "==", validate=False)
    except ValueError:
        raise DeliveryError("the webhook secret is not base64 after 'whsec_'; copy it again from the receiver") from None
    if not key:
        raise DeliveryError("the webhook secret is empty")
    mac = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


class WebhookBackend(_Http):
    name = "webhook"
    kind = "webhook"
    config_type = WebhookConfig
    doc = "JSON POST signed the Standard Webhooks way (webhook-id, -timestamp, -signature)"

    def request(self, message: qflow.OutboxMessage, config: WebhookConfig, now: datetime,
                env: Mapping[str, str] | None) -> tuple[str, dict[str, str], bytes]:
        p = message.payload
        subject, text = _lines(p)
        body = json.dumps({
            "type": p.get("topic", "notification"),
            "timestamp": now.isoformat(),
            "data": {"incident_id": message.incident_id, "channel": message.channel, "subject": subject,
                     "body": text, "lang": p.get("lang"), "recipients": plain(p.get("recipients", ())),
                     "incident": plain(p.get("context", {}))},
        }, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
        ts = int(now.timestamp())
        headers = {"webhook-id": message.id, "webhook-timestamp": str(ts), **config.headers}
        if config.secret:
            secret = _secret(config.secret, env)
            headers["webhook-signature"] = (sign_standard(secret, message.id, ts, body) if env is not None
                                            else "v1,<signed at send time>")
        return _secret(config.url, env), headers, body


# -- WeCom (企业微信) group robot ----------------------------------------------------------


@attrs.frozen
class WeComConfig:
    """A WeCom group robot: ``url`` is its webhook address (``...send?key=...``)."""

    url: str
    timeout: timedelta = _TIMEOUT
    markdown: bool = True
    mention_all: bool = False


class WeComBackend(_Http):
    name = "wecom"
    config_type = WeComConfig
    doc = "企业微信 group robot (markdown or text, @mentions by mobile)"

    def request(self, message: qflow.OutboxMessage, config: WeComConfig, now: datetime,
                env: Mapping[str, str] | None) -> tuple[str, dict[str, str], bytes]:
        subject, text = _lines(message.payload)
        mobiles = _recipients(message.payload, "mobile") + (["@all"] if config.mention_all else [])
        if config.markdown:
            users = "".join(f"<@{u}>" for u in _recipients(message.payload, "chat"))
            content = f"**{subject}**\n{text}" + (f"\n{users}" if users else "")
            body: dict[str, Any] = {"msgtype": "markdown", "markdown": {"content": content}}
        else:
            body = {"msgtype": "text", "text": {"content": f"{subject}\n{text}",
                                                "mentioned_mobile_list": mobiles}}
        return _secret(config.url, env), {}, json.dumps(body, ensure_ascii=False).encode("utf-8")

    def accept(self, status: int, body: bytes) -> None:
        _errcode("WeCom", body, ("errcode",))


# -- DingTalk (钉钉) custom robot ---------------------------------------------------------


@attrs.frozen
class DingTalkConfig:
    """A DingTalk custom robot: ``url`` carries ``access_token``; ``secret`` (``SEC...``)
    turns on its signature check."""

    url: str
    secret: str | None = None
    timeout: timedelta = _TIMEOUT
    mention_all: bool = False


def sign_dingtalk(secret: str, timestamp_ms: int) -> str:
    """DingTalk: base64 HMAC-SHA256 of "timestamp\\nsecret" keyed by the secret."""
    mac = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class DingTalkBackend(_Http):
    name = "dingtalk"
    config_type = DingTalkConfig
    doc = "钉钉 custom robot (markdown, @mentions by mobile, signed timestamp)"

    def request(self, message: qflow.OutboxMessage, config: DingTalkConfig, now: datetime,
                env: Mapping[str, str] | None) -> tuple[str, dict[str, str], bytes]:
        subject, text = _lines(message.payload)
        mobiles = _recipients(message.payload, "mobile")
        mentions = " ".join(f"@{m}" for m in mobiles)
        body = {"msgtype": "markdown",
                "markdown": {"title": subject, "text": f"### {subject}\n\n{text}" + (f"\n\n{mentions}" if mentions else "")},
                "at": {"atMobiles": mobiles, "isAtAll": config.mention_all}}
        url = _secret(config.url, env)
        if config.secret:
            ts = int(now.timestamp() * 1000)
            sign = sign_dingtalk(_secret(config.secret, env), ts) if env is not None else "<signed at send time>"
            sep = "&" if "?" in url else "?"
            url = f"{url}{sep}timestamp={ts}&sign={urllib.parse.quote_plus(sign)}"
        return url, {}, json.dumps(body, ensure_ascii=False).encode("utf-8")

    def accept(self, status: int, body: bytes) -> None:
        _errcode("DingTalk", body, ("errcode",))


# -- Feishu / Lark custom bot ------------------------------------------------------------


@attrs.frozen
class FeishuConfig:
    """A Feishu (飞书) or Lark custom bot: ``url`` is ``.../bot/v2/hook/...``;
    ``secret`` turns on its signature check."""

    url: str
    secret: str | None = None
    timeout: timedelta = _TIMEOUT


def sign_feishu(secret: str, timestamp: int) -> str:
    """Feishu/Lark: base64 HMAC-SHA256 of nothing, keyed by "timestamp\\nsecret"."""
    mac = hmac.new(f"{timestamp}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(mac).decode()


class FeishuBackend(_Http):
    name = "feishu"
    config_type = FeishuConfig
    doc = "飞书 / Lark custom bot (rich-text post, signed timestamp)"

    def request(self, message: qflow.OutboxMessage, config: FeishuConfig, now: datetime,
                env: Mapping[str, str] | None) -> tuple[str, dict[str, str], bytes]:
        subject, text = _lines(message.payload)
        lang = "en_us" if message.payload.get("lang") == "en" else "zh_cn"
        rows: list[list[dict[str, str]]] = [[{"tag": "text", "text": line}] for line in text.splitlines() or [""]]
        users = _recipients(message.payload, "chat")
        if users:
            rows.append([{"tag": "at", "user_id": u} for u in users])
        body: dict[str, Any] = {"msg_type": "post",
                                "content": {"post": {lang: {"title": subject, "content": rows}}}}
        if config.secret:
            ts = int(now.timestamp())
            body = {"timestamp": str(ts),
                    "sign": sign_feishu(_secret(config.secret, env), ts) if env is not None else "<signed at send time>",
                    **body}
        return _secret(config.url, env), {}, json.dumps(body, ensure_ascii=False).encode("utf-8")

    def accept(self, status: int, body: bytes) -> None:
        _errcode("Feishu", body, ("code", "StatusCode"))


class LarkBackend(FeishuBackend):
    name = "lark"
    doc = "Lark (international Feishu) custom bot"


# -- Slack incoming webhook --------------------------------------------------------------


@attrs.frozen
class SlackConfig:
    """A Slack incoming webhook (``https://hooks.slack.com/services/...``)."""

    url: str
    timeout: timedelta = _TIMEOUT


class SlackBackend(_Http):
    name = "slack"
    config_type = SlackConfig
    doc = "Slack incoming webhook (header and mrkdwn section blocks)"

    def request(self, message: qflow.OutboxMessage, config: SlackConfig, now: datetime,
                env: Mapping[str, str] | None) -> tuple[str, dict[str, str], bytes]:
        subject, text = _lines(message.payload)
        users = " ".join(f"<@{u}>" for u in _recipients(message.payload, "chat"))
        section = text + (f"\n{users}" if users else "")
        body = {"text": f"{subject}\n{section}",
                "blocks": [{"type": "header", "text": {"type": "plain_text", "text": subject[:150] or " "}},
                           {"type": "section", "text": {"type": "mrkdwn", "text": section[:3000] or " "}}]}
        return _secret(config.url, env), {}, json.dumps(body, ensure_ascii=False).encode("utf-8")

    def accept(self, status: int, body: bytes) -> None:
        text = body.decode("utf-8", "replace").strip()
        if text and text != "ok":
            raise DeliveryError(f"Slack refused the message: {text[:200]}")


# -- Microsoft Teams ---------------------------------------------------------------------


@attrs.frozen
class TeamsConfig:
    """A Microsoft Teams incoming webhook or Workflows (Power Automate) URL."""

    url: str
    timeout: timedelta = _TIMEOUT


class TeamsBackend(_Http):
    name = "teams"
    config_type = TeamsConfig
    doc = "Microsoft Teams webhook (an Adaptive Card message)"

    def request(self, message: qflow.OutboxMessage, config: TeamsConfig, now: datetime,
                env: Mapping[str, str] | None) -> tuple[str, dict[str, str], bytes]:
        subject, text = _lines(message.payload)
        card = {"$schema": "http://adaptivecards.io/schemas/adaptive-card.json", "type": "AdaptiveCard",
                "version": "1.4",
                "body": [{"type": "TextBlock", "text": subject, "weight": "Bolder", "size": "Medium", "wrap": True},
                         {"type": "TextBlock", "text": text, "wrap": True}]}
        body = {"type": "message", "attachments": [
            {"contentType": "application/vnd.microsoft.card.adaptive", "contentUrl": None, "content": card}]}
        return _secret(config.url, env), {}, json.dumps(body, ensure_ascii=False).encode("utf-8")
