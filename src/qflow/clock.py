"""Time is injected: the only place qflow reads the wall clock is :class:`SystemClock`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Protocol, runtime_checkable

__all__ = ["Clock", "FakeClock", "SystemClock"]


@runtime_checkable
class Clock(Protocol):
    """Anything with ``now()`` returning an aware datetime."""

    def now(self) -> datetime: ...


class SystemClock:
    """The real time, in UTC or in *tz* (the worker's is the ruleset's, so what it
    records reads in the zone of everything else)."""

    def __init__(self, tz: tzinfo | None = None) -> None:
        self._tz = tz if tz is not None else timezone.utc

    def now(self) -> datetime:
        return datetime.now(self._tz)

    def __repr__(self) -> str:
        return "SystemClock()" if self._tz is timezone.utc else f"SystemClock({self._tz})"


class FakeClock:
    """A clock for tests and replays that only moves when told, and only forward."""

    def __init__(self, start: datetime) -> None:
        if start.utcoffset() is None:
            raise ValueError("FakeClock needs an aware datetime; add tzinfo")
        self._now = start

    def now(self) -> datetime:
        return self._now

    def advance(self, delta: timedelta) -> datetime:
        if delta < timedelta(0):
            raise ValueError("time can't go backwards")
        self._now += delta
        return self._now

    def set(self, when: datetime) -> datetime:
        if when < self._now:
            raise ValueError("time can't go backwards")
        self._now = when
        return self._now

    def __repr__(self) -> str:
        return f"FakeClock({self._now.isoformat()})"
