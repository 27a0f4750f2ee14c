"""Reporting periods in the organisation's time zone: months, quarters, years and
rolling windows, with the period before and the same period a year earlier."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, tzinfo

import attrs

__all__ = ["Period", "parse_period"]


@attrs.frozen
class Period:
    """``[start, end)`` in the organisation's time zone."""

    kind: str  # month, quarter, year, rolling
    label: str
    start: datetime
    end: datetime
    days: int = 0  # rolling windows only

    def previous(self) -> Period:
        if self.kind == "rolling":
            return _rolling(self.end - timedelta(days=self.days), self.days)
        return _calendar(self.kind, _shift(self.start, -_months(self.kind)))

    def last_year(self) -> Period:
        if self.kind == "rolling":
            return _rolling(_shift(self.end, -12), self.days)
        return _calendar(self.kind, _shift(self.start, -12))

    def contains(self, at: datetime) -> bool:
        return self.start <= at < self.end


def _months(kind: str) -> int:
    return {"month": 1, "quarter": 3, "year": 12}[kind]


def _shift(at: datetime, months: int) -> datetime:
    """The same wall-clock moment *months* later (day clamped to the month's end)."""
    y, m = divmod(at.month - 1 + months, 12)
    year, month = at.year + y, m + 1
    day = min(at.day, [31, 29 if year % 4 == 0 and (year % 100 or year % 400 == 0) else 28, 31, 30, 31, 30,
                       31, 31, 30, 31, 30, 31][month - 1])
    return at.replace(year=year, month=month, day=day)


def _calendar(kind: str, start: datetime) -> Period:
    # Wall-clock arithmetic, then fold the zone again: a month that holds a DST change
    # is still midnight to midnight as people lived it.
    tz = start.tzinfo
    start = datetime(start.year, start.month, 1, tzinfo=tz)
    end = _shift(start, _months(kind))
    if kind == "month":
        label = f"{start.year}-{start.month:02d}"
    elif kind == "quarter":
        label = f"{start.year}-Q{(start.month - 1) // 3 + 1}"
    else:
        label = str(start.year)
    return Period(kind, label, start, end)


def _rolling(end: datetime, days: int) -> Period:
    # Named by the last day it holds: a window ending at midnight on 3 April is "to 2 April".
    start = end - timedelta(days=days)
    last = (end - timedelta(days=1)).date()
    return Period("rolling", f"{days} days to {last.isoformat()}", start, end, days)


_MONTH = re.compile(r"^(\d{4})-(\d{2})$")
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$", re.I)
_YEAR = re.compile(r"^(\d{4})$")
_ROLLING = re.compile(r"^(?:rolling-?)?(\d+)d$", re.I)

PERIOD_HINT = "use a month (2026-11), a quarter (2026-Q4), a year (2026) or a rolling window (30d, 90d)"


def parse_period(text: str, tz: tzinfo, now: datetime) -> Period:
    """Read ``2026-11``, ``2026-Q4``, ``2026``, ``30d`` (rolling, ending at midnight
    after *now*'s day in *tz*)."""
    text = text.strip()
    if m := _MONTH.match(text):
        year, month = int(m[1]), int(m[2])
        if not 1 <= month <= 12:
            raise ValueError(f"'{text}' has no month {month}; {PERIOD_HINT}")
        return _calendar("month", datetime(year, month, 1, tzinfo=tz))
    if m := _QUARTER.match(text):
        return _calendar("quarter", datetime(int(m[1]), 3 * int(m[2]) - 2, 1, tzinfo=tz))
    if m := _YEAR.match(text):
        return _calendar("year", datetime(int(m[1]), 1, 1, tzinfo=tz))
    if m := _ROLLING.match(text):
        days = int(m[1])
        if days < 1:
            raise ValueError(f"'{text}' is an empty window; {PERIOD_HINT}")
        local = now.astimezone(tz)
        end = datetime(local.year, local.month, local.day, tzinfo=tz) + timedelta(days=1)
        return _rolling(end, days)
    raise ValueError(f"'{text}' is not a period; {PERIOD_HINT}")
