"""A tiny local plugin for the store, worker and fault tests.

Each incident gets the timers ``step:1`` .. ``step:N`` (one minute apart after its
report). When one is due, ``qflow_due`` records one ``StepFired`` event for its key,
unless the log already has it, with one notification; ``qflow_plan_delivery`` turns
that into one outbox message whose id (the idempotency key) is ``INC-n/step:k``,
delivered by the ``testfile`` backend, which appends the id to a file and fsyncs it.
The real escalation plugin is written elsewhere; this one has just enough to tell
whether a step fired twice or a notification got lost.
"""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

import attrs

import qflow
from qflow import Effect, Notification, OutboxMessage, Timer, hookimpl

STEP_FIRED = "StepFired"
CHANNEL = "test-file"


def fired(events: Any) -> set[str]:
    return {e.data["key"] for e in events if e.type == STEP_FIRED}


@attrs.frozen
class FileConfig:
    path: str


class FileBackend:
    name = "testfile"
    kind = "log"
    config_type = FileConfig

    def send(self, message: OutboxMessage, config: FileConfig, *, env: Any, now: Any) -> None:
        fd = os.open(config.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{message.id}\n".encode())
            os.fsync(fd)
        finally:
            os.close(fd)

    def preview(self, message: OutboxMessage, config: FileConfig, *, now: Any) -> str:
        return message.id


class StepPlugin:
    def __init__(self, steps: int = 1, receiver: str | None = None) -> None:
        self.steps = steps
        self.receiver = receiver

    @hookimpl
    def qflow_schedule(self, state: Any, events: Any) -> list[Timer]:
        if state.stage.value in ("closed", "rejected") or state.incident.reported_at is None:
            return []
        done = fired(events)
        at = state.incident.reported_at
        return [Timer(state.id, f"step:{i}", at + timedelta(minutes=i))
                for i in range(1, self.steps + 1) if f"step:{i}" not in done]

    @hookimpl
    def qflow_due(self, state: Any, events: Any, timers: Any, now: Any) -> list[Effect]:
        done = fired(events)
        return [Effect(STEP_FIRED, "plugin:step", {"key": t.key},
                       notifications=(Notification(state.id, "step", now, data={"key": t.key}),))
                for t in timers if t.key.startswith("step:") and t.key not in done]

    @hookimpl
    def qflow_plan_delivery(self, notification: Notification, state: Any, now: Any) -> list[OutboxMessage]:
        if notification.topic != "step":
            return []
        key = notification.data["key"]
        return [OutboxMessage(id=f"{state.id}/{key}", incident_id=state.id, channel=CHANNEL, backend="testfile",
                              created_at=now, next_attempt_at=now, payload={"key": key, "topic": "step"})]

    @hookimpl
    def qflow_backends(self) -> list[Any]:
        return [FileBackend()]

    @hookimpl
    def qflow_channels(self) -> list[Any]:
        if self.receiver is None:
            return []
        channel = getattr(qflow, "Channel", None)
        if channel is None:
            from qflow._delivery import Channel as channel
        return [channel(CHANNEL, "testfile", FileConfig(self.receiver))]
