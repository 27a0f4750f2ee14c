"""Outbox delivery: ``deliver(now)`` sends what is waiting. Mixed into :class:`qflow.Engine`.

Notifications are written to the outbox in the transaction of the event that caused
them (``qflow_plan_delivery``); this module sends them, at least once. Each try is
recorded; a failure is retried with exponential backoff and jitter; after the last
try the message is dead, a ``NotificationDeadLettered`` event goes on the incident
and the fallback channel (if any) gets a new message, all in one transaction. A
backend that raises delays a notification; it never stops the engine or loses one.

The kernel knows no backend: backends (``qflow_backends``) and the channels a ruleset
defines (``qflow_channels``) come from plugins.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import os
import random
import re
import urllib.parse
from collections.abc import Iterator, Mapping
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import attrs

from qflow import events as ev
from qflow.clock import given_time
from qflow.errors import ConcurrencyError
from qflow.model import Event
from qflow.store import DeliveryAttempt, OutboxMessage

if TYPE_CHECKING:
    from qflow.engine import Engine as _Base
else:
    _Base = object

__all__ = ["Backend", "Channel", "Delivery", "DeliveryReport", "RetryPolicy", "env_refs", "redact"]

log = logging.getLogger("qflow.delivery")


@runtime_checkable
class Backend(Protocol):
    """A way of sending notifications (the port; adapters live in plugins).

    ``name`` is what a channel's ``backend:`` says; ``kind`` (``log``, ``email``,
    ``webhook``, ``chat``) picks the message templates; ``config_type`` is the attrs
    class the channel's options are structured into when the ruleset loads.
    ``send`` raises on any failure (the message is then retried); ``preview`` returns
    what would be sent, secrets not resolved. ``now`` is passed in because signatures
    carry the time and nothing in qflow reads the wall clock.
    """

    name: str
    kind: str
    config_type: type

    def send(self, message: OutboxMessage, config: Any, *, env: Mapping[str, str], now: datetime) -> None: ...

    def preview(self, message: OutboxMessage, config: Any, *, now: datetime) -> str: ...


@attrs.frozen
class RetryPolicy:
    """How often and how patiently to try: ``attempts`` tries in all, the n-th retry
    after ``backoff * 2**(n-1)`` (at most ``max``), each delay shortened by up to
    ``jitter`` (a fraction) so that many failed messages do not retry in lockstep."""

    attempts: int = 5
    backoff: timedelta = timedelta(seconds=30)
    max: timedelta = timedelta(hours=1)
    jitter: float = 0.2

    def delay(self, failures: int, rng: random.Random) -> timedelta:
        """The wait after the *failures*-th failed try."""
        base = min(self.max, self.backoff * (2 ** (failures - 1)))
        return base * (1 - self.jitter * rng.random())


@attrs.frozen
class Channel:
    """A named way to reach people: a backend with its checked configuration."""

    name: str
    backend: str
    config: Any
    retry: RetryPolicy = RetryPolicy()
    fallback: str | None = None


@attrs.frozen
class DeliveryReport:
    """What one ``deliver`` call did."""

    claimed: int = 0
    delivered: int = 0
    retrying: int = 0
    dead: int = 0
    fallbacks: int = 0
    #: Tries recorded after this worker's claim had passed to another (its lease ran
    #: out during the send): kept as attempts, the message left as the other made it.
    stale: int = 0


# -- secrets in text -------------------------------------------------------------------

_ENV_REF = re.compile(r"\$\{env:([A-Za-z_][A-Za-z0-9_]*)\}")
_SECRET_KEYS = r"(?i)([?&;](?:key|token|access_token|accesstoken|secret|sign|signature|sig|password|passwd|apikey|api_key|code|auth)=)"
_SECRET_QUERY = re.compile(_SECRET_KEYS + r"([^&\s#'\"<>]+)")
# Outside a URL a value ends at the sentence's punctuation, and one starred already stays.
_BARE_QUERY = re.compile(_SECRET_KEYS + r"(?!\*\*\*)([^&\s#'\"<>:,;)]+)")
_USERINFO = re.compile(r"(?i)(\b[a-z][a-z0-9+.-]*://[^/\s:@]+:)[^@\s/]+@")
# Chat webhooks put the secret in the path (Slack, Feishu, Teams): a long segment
# with letters and digits is a token, never a word of a readable path.
_TOKEN_SEGMENT = re.compile(r"(?<=/)(?=[A-Za-z0-9_@.-]*\d)(?=[A-Za-z0-9_@.-]*[A-Za-z])[A-Za-z0-9_@.-]{20,}")
_URL = re.compile(r"(?i)\b[a-z][a-z0-9+.-]*://[^\s'\"<>]*[^\s'\"<>.,:;)]")  # not the sentence's punctuation


def _strings(value: Any) -> Iterator[str]:
    """The strings in *value* (attrs, mappings, lists)."""
    if isinstance(value, str):
        yield value
    elif attrs.has(type(value)):
        for a in attrs.fields(type(value)):
            yield from _strings(getattr(value, a.name))
    elif isinstance(value, Mapping):
        for x in value.values():
            yield from _strings(x)
    elif isinstance(value, (list, tuple)):
        for x in value:
            yield from _strings(x)


def env_refs(value: Any) -> dict[str, None]:
    """The ``${env:NAME}`` names in the strings of *value* (attrs, mappings, lists)."""
    return {m.group(1): None for v in _strings(value) for m in _ENV_REF.finditer(v)}


def _url_secrets(text: str) -> set[str]:
    """What :func:`redact` stars in the URLs of *text*, each part on its own: a
    receiver may echo its path and query, or the ``Authorization`` header a URL's
    ``user:password@`` becomes, without the URL around them."""
    found: set[str] = set()
    for m in _URL.finditer(text):
        try:
            parts = urllib.parse.urlsplit(m.group(0))
        except ValueError:
            continue
        userinfo, at, _host = parts.netloc.rpartition("@")
        user, colon, password = userinfo.partition(":")
        if at and colon and password:
            plain = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
            found |= {password, urllib.parse.unquote(password), base64.b64encode(plain.encode()).decode()}
        for q in _SECRET_QUERY.finditer("?" + parts.query):
            found |= {q.group(2), urllib.parse.unquote_plus(q.group(2))}
        found |= {t.group(0) for t in _TOKEN_SEGMENT.finditer(parts.path)}
    return found


def redact(text: str, *, config: Any = None, env: Mapping[str, str] | None = None) -> str:
    """*text* with secrets taken out: the values of every ``${env:NAME}`` that *config*
    refers to (shown as the reference), the secret parts of the URLs those make
    wherever they appear alone (an error body echoing the path) and secret query
    parameters outside URLs; and in URLs passwords, secret query parameters
    (``key=``, ``access_token=``, ``sign=`` ...) and token path segments."""
    if config is not None and env is not None:
        refs = env_refs(config)
        values = sorted(((env[n], n) for n in refs if len(env.get(n, "")) >= 4), key=lambda p: -len(p[0]))
        # The URL a channel sends to is its option with the references resolved.
        resolved = [_ENV_REF.sub(lambda m: env.get(m.group(1), ""), v) for v in _strings(config) if _ENV_REF.search(v)]
        parts = {p for v in resolved for p in _url_secrets(v) if len(p) >= 4}
        for value, name in values:
            text = text.replace(value, "${env:" + name + "}")
        for part in sorted(parts, key=len, reverse=True):
            text = text.replace(part, "***")
        # A query echoed without its URL (``bad request to /send?access_token=...&sign=...``)
        # is still a query: the parameters a backend adds at send time are in no option.
        text = _BARE_QUERY.sub(r"\1***", text)

    def url(m: re.Match[str]) -> str:
        u = _USERINFO.sub(r"\1***@", m.group(0))
        u = _SECRET_QUERY.sub(r"\1***", u)
        return _TOKEN_SEGMENT.sub("***", u)

    return _URL.sub(url, text)


# -- the mixin -------------------------------------------------------------------------


class Delivery(_Base):
    #: Where ``${env:NAME}`` is read at send time (None: the process environment).
    delivery_env: Mapping[str, str] | None = None
    #: The source of retry jitter; tests inject a seeded ``random.Random``.
    delivery_random: random.Random | None = None

    def deliver(self, now: datetime | None = None, *, worker: str | None = None, limit: int = 100,
                lease: timedelta = timedelta(minutes=5), env: Mapping[str, str] | None = None,
                rng: random.Random | None = None) -> DeliveryReport:
        """Send the outbox messages due at *now* (default: the clock's now).

        Each message is claimed for *lease*, sent through its channel's backend and the
        attempt recorded. A failure is retried later; the last failure makes the
        message dead, records ``NotificationDeadLettered`` on the incident and queues
        the fallback channel's message, in one transaction. *worker* names the claims
        (default: ``engine.worker_name``); calls that run at the same time need
        different names.
        """
        now = self.clock.now() if now is None else given_time(now)
        if worker is None:
            worker = self.worker_name
        if env is None:
            env = self.delivery_env if self.delivery_env is not None else os.environ
        if rng is None:
            if self.delivery_random is None:
                self.delivery_random = random.Random()
            rng = self.delivery_random
        messages = self.store.claim_outbox(now, worker=worker, limit=limit, lease_until=now + lease)
        if not messages:
            return DeliveryReport()
        backends = self.backends()
        channels = self.channels()
        counts = {"delivered": 0, "retrying": 0, "dead": 0, "fallbacks": 0, "stale": 0}
        for message in messages:
            outcome = self._deliver_one(message, backends, channels, env, rng, now, worker)
            for key in outcome:
                counts[key] += 1
        return DeliveryReport(claimed=len(messages), **counts)

    def backends(self) -> Mapping[str, Backend]:
        """Every installed backend by name (from ``qflow_backends``)."""
        found: dict[str, Backend] = {}
        for group in self.plugins.hook.qflow_backends():
            for b in group or ():
                found.setdefault(b.name, b)
        return found

    def channels(self) -> Mapping[str, Channel]:
        """The channels of this engine's ruleset by name (from ``qflow_channels``)."""
        cached = getattr(self, "_channel_cache", None)
        if cached is not None and cached[0] is self.ruleset:
            return cached[1]
        found: dict[str, Channel] = {}
        for group in self.plugins.hook.qflow_channels(ruleset=self.ruleset):
            for c in group or ():
                found.setdefault(c.name, c)
        self._channel_cache = (self.ruleset, found)
        return found

    def _deliver_one(self, message: OutboxMessage, backends: Mapping[str, Backend],
                     channels: Mapping[str, Channel], env: Mapping[str, str], rng: random.Random,
                     now: datetime, worker: str) -> tuple[str, ...]:
        channel = channels.get(message.channel)
        backend = backends.get(message.backend)
        number = message.attempts + 1
        error: str | None = None
        if backend is None:
            error = (f"no installed plugin provides the backend '{message.backend}'; "
                     "install it, or the message waits and is retried")
        elif channel is None:
            error = (f"the ruleset has no channel '{message.channel}' any more; "
                     "put it back, or the message dies after its last try")
        else:
            try:
                backend.send(message, channel.config, env=env, now=now)
            except Exception as exc:  # any failure of a backend is a failed try, never a crash
                error = redact(f"{type(exc).__name__}: {exc}", config=channel.config, env=env)
        if error is None:
            done = attrs.evolve(message, status="delivered", attempts=number, last_error=None)
            if not self.store.record_delivery(done, DeliveryAttempt(message.id, number, now, True, None, worker)):
                return self._stale(message, worker)
            log.info("delivered %s to %s (%s), try %d", message.id[:12], message.channel, message.backend, number)
            return ("delivered",)
        policy = channel.retry if channel is not None else RetryPolicy()
        attempt = DeliveryAttempt(message.id, number, now, False, error, worker)
        if number < policy.attempts:
            wait = policy.delay(number, rng)
            later = attrs.evolve(message, attempts=number, last_error=error, next_attempt_at=now + wait)
            if not self.store.record_delivery(later, attempt):
                return self._stale(message, worker)
            log.warning("delivery of %s to %s failed (try %d of %d, next in %ds): %s", message.id[:12],
                        message.channel, number, policy.attempts, int(wait.total_seconds()), error)
            return ("retrying",)
        dead = attrs.evolve(message, status="dead", attempts=number, last_error=error)
        fallback = self._fallback(message, channels, now)
        for _race in range(3):
            write = self._dead_letter_write(message, dead, error, fallback, now)
            try:
                if not self.store.record_delivery(dead, attempt, write):
                    return self._stale(message, worker)  # no dead letter, no fallback
                break
            except ConcurrencyError:
                log.info("deliver: %s changed under us; reading it again", message.incident_id)
        else:
            raise ConcurrencyError(f"{message.incident_id}: could not record the dead letter of {message.id}; "
                                   "the message stays claimed and is tried again when its lease ends")
        log.error("delivery of %s to %s failed for good after %d tries: %s%s", message.id[:12], message.channel,
                  number, error, f"; falling back to {fallback.channel}" if fallback else "")
        return ("dead", "fallbacks") if fallback else ("dead",)

    @staticmethod
    def _stale(message: OutboxMessage, worker: str) -> tuple[str, ...]:
        log.warning("%s: the claim on %s to %s ran out during the send and another worker took it; "
                    "this try is recorded as stale and the message left as that worker made it",
                    worker, message.id[:12], message.channel)
        return ("stale",)

    def _fallback(self, message: OutboxMessage, channels: Mapping[str, Channel],
                  now: datetime) -> OutboxMessage | None:
        name = message.fallback
        tried = tuple(message.payload.get("fallback_of", ())) + (message.channel,)
        if not name or name in tried:
            return None
        channel = channels.get(name)
        if channel is None:
            log.error("fallback channel %s of %s is not in the ruleset; nothing more to try", name, message.channel)
            return None
        # The planner renders the fallback's own message (its templates) ahead of
        # time; without one, the same content goes out the other way.
        planned = message.payload.get("fallback")
        payload = dict(planned) if isinstance(planned, Mapping) else {
            k: v for k, v in message.payload.items() if k != "fallback"}
        payload["fallback_of"] = list(tried)
        key = hashlib.sha256(f"{message.id}\0fallback\0{name}".encode()).hexdigest()
        return OutboxMessage(
            id=key, incident_id=message.incident_id, channel=name, backend=channel.backend,
            created_at=now, next_attempt_at=now, payload=payload,
            fallback=channel.fallback if channel.fallback not in tried else None,
        )

    def _dead_letter_write(self, message: OutboxMessage, dead: OutboxMessage, error: str,
                           fallback: OutboxMessage | None, now: datetime) -> Any:
        state = self.store.get(message.incident_id)
        if state is None:
            return None
        data = {
            "message": message.id, "channel": message.channel, "backend": message.backend,
            "topic": message.payload.get("topic"), "attempts": dead.attempts, "error": error,
            "fallback": fallback.channel if fallback else None,
            "fallback_message": fallback.id if fallback else None,
        }
        event = Event(state.id, state.seq + 1, now, ev.NOTIFICATION_DEAD_LETTERED, actor=None,
                      source="delivery", ruleset=self.ruleset.ref, data=data)
        after = ev.apply(state, event, self._conv)
        history = self.store.events(state.id) + (event,)
        write = self._write(history, (event,), after, (), now)
        if fallback is not None:
            write = attrs.evolve(write, outbox=tuple(write.outbox) + (fallback,))
        return write
