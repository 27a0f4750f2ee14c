"""Backends that need no network: log, console, and a recording backend for tests
and dry runs."""

from __future__ import annotations

import enum
import logging
import sys
import threading
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

import attrs

import qflow
from qflow_notify._base import BackendBase

__all__ = ["ConsoleBackend", "LogBackend", "RecordingBackend"]


class Level(enum.Enum):
    DEBUG = "debug"
    INFO = "info"
    WARNING = "warning"
    ERROR = "error"


@attrs.frozen
class LogConfig:
    """Write each notification as one log line."""

    level: Level = Level.INFO
    logger: str = "qflow.notify"


class LogBackend(BackendBase):
    name = "log"
    kind = "log"
    config_type = LogConfig
    doc = "one line per notification on a Python logger"

    def send(self, message: qflow.OutboxMessage, config: LogConfig, *, env: Mapping[str, str], now: datetime) -> None:
        p = message.payload
        who = ", ".join(r.get("name") or r.get("email") or r.get("mobile") or "?" for r in p.get("recipients", ()))
        logging.getLogger(config.logger).log(
            getattr(logging, config.level.name), "%s %s [%s] %s%s", message.incident_id, p.get("topic", ""),
            message.id[:12], p.get("subject", ""), f" -> {who}" if who else "")


class Stream(enum.Enum):
    STDOUT = "stdout"
    STDERR = "stderr"


@attrs.frozen
class ConsoleConfig:
    """Print each notification (subject and body) to the terminal."""

    stream: Stream = Stream.STDOUT


class ConsoleBackend(BackendBase):
    name = "console"
    kind = "log"
    config_type = ConsoleConfig
    doc = "subject and body printed to stdout or stderr"

    def send(self, message: qflow.OutboxMessage, config: ConsoleConfig, *, env: Mapping[str, str],
             now: datetime) -> None:
        out = sys.stdout if config.stream is Stream.STDOUT else sys.stderr
        out.write(self.preview(message, config, now=now))
        out.flush()


@attrs.frozen
class RecordingConfig:
    """Nothing to configure: the recording backend keeps what it is given."""

    note: str | None = None


class RecordingBackend(BackendBase):
    """Keeps every message it is asked to send, and fails on demand. Not installed by
    default: create one, register ``backend.plugin()``, and read ``sent``.

    ``fail(n, error)`` makes the next *n* sends raise *error*.
    """

    config_type = RecordingConfig
    doc = "keeps messages in memory (tests and dry runs)"

    def __init__(self, name: str = "recording", kind: str = "chat") -> None:
        self.name = name
        self.kind = kind
        self.sent: list[qflow.OutboxMessage] = []
        self.tries: list[tuple[str, datetime]] = []
        self._failures: list[Exception] = []
        self._lock = threading.Lock()

    def fail(self, times: int = 1, error: Exception | None = None) -> None:
        with self._lock:
            self._failures.extend([error or ConnectionError("recording backend told to fail")] * times)

    def send(self, message: qflow.OutboxMessage, config: Any, *, env: Mapping[str, str], now: datetime) -> None:
        with self._lock:
            self.tries.append((message.id, now))
            if self._failures:
                raise self._failures.pop(0)
            self.sent.append(message)

    def plugin(self) -> Any:
        """A plugin object providing this backend (``make_plugin_manager(plugins=[...])``)."""
        backend = self

        class _Plugin:
            @qflow.hookimpl
            def qflow_backends(self) -> Sequence[Any]:
                return [backend]

        return _Plugin()
