"""Time is injected: the only place qflow reads the wall clock is :class:`SystemClock`."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone, tzinfo
from typing import Protocol, runtime_checkable

from qflow.errors import InputError

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


def given_time(when: object, name: str = "now") -> datetime:
    """*when* as given to an engine command, checked: an aware datetime. A naive one
    (or anything else) is refused here, naming the argument, rather than failing
    later in a comparison with the aware times qflow keeps."""
    if not isinstance(when, datetime):
        raise InputError(f"{name} must be a datetime with a time zone, got {type(when).__name__} {when!r}")
    if when.utcoffset() is None:
        raise InputError(f"{name} {when.isoformat()} has no time zone; give an aware datetime, e.g. "
                         f"{name}=datetime({when.year}, {when.month}, {when.day}, {when.hour}, {when.minute}, "
                         "tzinfo=ZoneInfo('Asia/Shanghai')), or leave it out for the engine's clock")
    return when
