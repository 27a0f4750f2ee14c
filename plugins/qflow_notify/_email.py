"""E-mail over SMTP with the standard library's smtplib: STARTTLS or implicit TLS,
login from environment variables, a timeout on every connection.

The idempotency key becomes the ``Message-ID``, so a mail server or client that sees
the same message twice (a retry after a lost answer) can drop the copy.
"""

from __future__ import annotations

import enum
import smtplib
import ssl
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from typing import Any

import attrs

import qflow
from qflow_notify._base import BackendBase, Check
from qflow_notify._http import DeliveryError
from qflow_notify._secrets import resolve

__all__ = ["EmailBackend", "EmailConfig", "Security"]


class Security(enum.Enum):
    STARTTLS = "starttls"
    SSL = "ssl"
    NONE = "none"


_PORTS = {Security.STARTTLS: 587, Security.SSL: 465, Security.NONE: 25}


@attrs.frozen
class EmailConfig:
    """An SMTP server and the fixed addresses every message goes to (besides the
    resolved recipients that have an e-mail address)."""

    host: str
    sender: str
    to: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    cc: tuple[str, ...] = attrs.field(default=(), converter=tuple)
    port: int | None = None
    security: Security = Security.STARTTLS
    username: str | None = None
    password: str | None = None
    timeout: timedelta = timedelta(seconds=15)
    ca_file: str | None = None  # a private CA (or a test server's certificate)
    verify: bool = True


def _address(text: str) -> bool:
    return "@" in text or "${" in text


def _login(smtp: smtplib.SMTP, user: str, password: str) -> None:
    """Log in with one mechanism: after a refusal ``SMTP.login`` goes on to the next
    one, and what the ops person then sees is that mechanism's error, not the 535."""
    smtp.ehlo_or_helo_if_needed()
    offered = smtp.esmtp_features.get("auth", "").upper().split()
    for mechanism in ("PLAIN", "LOGIN"):
        if mechanism in offered:
            smtp.user, smtp.password = user, password
            smtp.auth(mechanism, getattr(smtp, f"auth_{mechanism.lower()}"))
            return
    smtp.login(user, password)


class EmailBackend(BackendBase):
    name = "email"
    kind = "email"
    config_type = EmailConfig
    secret_fields = ("password",)
    doc = "SMTP e-mail (STARTTLS or SSL, login from environment variables)"

    def check(self, config: EmailConfig) -> Sequence[Check]:
        out: list[Check] = []
        if not _address(config.sender):
            out.append(("sender", f"sender '{config.sender}' is not an e-mail address",
                        "write an address such as qflow@hotel.example"))
        for field in ("to", "cc"):
            for i, a in enumerate(getattr(config, field)):
                if not _address(a):
                    out.append((f"{field}[{i}]", f"'{a}' is not an e-mail address",
                                "write an address such as quality@hotel.example"))
        if config.port is not None and not 0 < config.port < 65536:
            out.append(("port", f"port {config.port} is out of range", "use 1-65535; 587 for STARTTLS, 465 for SSL"))
        if config.password is not None and config.username is None:
            out.append(("username", "a password without a username", "add 'username: ${env:SMTP_USER}'"))
        return out

    def compose(self, message: qflow.OutboxMessage, config: EmailConfig, now: datetime,
                env: Mapping[str, str] | None) -> EmailMessage:
        p = message.payload
        to = list(dict.fromkeys([*config.to, *(r["email"] for r in p.get("recipients", ()) if r.get("email"))]))
        if env is not None:
            to = [resolve(a, env) for a in to]
        if not to and not config.cc:
            raise DeliveryError(f"no e-mail address to send {message.id[:12]} to; add 'to:' to channel "
                                f"'{message.channel}' or an email to the recipients' directory entries")
        mail = EmailMessage()
        mail["From"] = resolve(config.sender, env) if env is not None else config.sender
        if to:
            mail["To"] = ", ".join(to)
        if config.cc:
            mail["Cc"] = ", ".join(config.cc)
        mail["Subject"] = str(p.get("subject", "")) or message.incident_id
        mail["Date"] = format_datetime(now)
        domain = mail["From"].rsplit("@", 1)[-1].strip("> ") or "qflow"
        mail["Message-ID"] = f"<{message.id}@{domain}>" if message.id else make_msgid()
        mail["X-Qflow-Incident"] = message.incident_id
        mail["X-Qflow-Topic"] = str(p.get("topic", ""))
        mail.set_content(str(p.get("body", "")), charset="utf-8")
        return mail

    def _context(self, config: EmailConfig) -> ssl.SSLContext:
        ctx = ssl.create_default_context(cafile=config.ca_file)
        if not config.verify:
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        return ctx

    def send(self, message: qflow.OutboxMessage, config: EmailConfig, *, env: Mapping[str, str], now: datetime) -> None:
        mail = self.compose(message, config, now, env)
        port = config.port or _PORTS[config.security]
        timeout = config.timeout.total_seconds()
        host = resolve(config.host, env) or ""
        try:
            smtp: Any
            if config.security is Security.SSL:
                smtp = smtplib.SMTP_SSL(host, port, timeout=timeout, context=self._context(config))
            else:
                smtp = smtplib.SMTP(host, port, timeout=timeout)
            with smtp:
                if config.security is Security.STARTTLS:
                    smtp.starttls(context=self._context(config))
                if config.username:
                    _login(smtp, resolve(config.username, env) or "", resolve(config.password, env) or "")
                refused = smtp.send_message(mail)
        except smtplib.SMTPAuthenticationError as exc:
            raise DeliveryError(f"SMTP login to {host}:{port} refused ({exc.smtp_code}); "
                                "check the username and password variables") from None
        except smtplib.SMTPNotSupportedError as exc:
            raise DeliveryError(f"SMTP server {host}:{port} does not support {exc}; "
                                "set security: ssl or none to match the server") from None
        except smtplib.SMTPRecipientsRefused as exc:
            raise DeliveryError(f"SMTP server {host}:{port} refused every recipient: "
                                f"{', '.join(sorted(exc.recipients))}") from None
        except (smtplib.SMTPException, ssl.SSLError) as exc:
            raise DeliveryError(f"SMTP {host}:{port}: {type(exc).__name__}: {exc}") from None
        except (TimeoutError, OSError) as exc:
            raise DeliveryError(f"cannot reach SMTP server {host}:{port}: {exc or type(exc).__name__}") from None
        if refused:
            raise DeliveryError(f"SMTP server {host}:{port} refused: {', '.join(sorted(refused))}")

    def preview(self, message: qflow.OutboxMessage, config: EmailConfig, *, now: datetime) -> str:
        try:
            mail = self.compose(message, config, now, None)
        except DeliveryError as exc:
            return f"email -> {message.channel}: would fail: {exc}\n"
        port = config.port or _PORTS[config.security]
        return f"SMTP {config.host}:{port} ({config.security.value})\n{mail.as_string()}"
