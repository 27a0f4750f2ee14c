"""Business-time arithmetic: how much working time lies between two moments, and
when a given amount of working time runs out.

A calendar is turned, a few years at a time, into one sorted table of working
intervals in epoch microseconds with the business time used before each one. Every
question is then two bisections and some integer arithmetic, whatever the windows,
weekends, holidays or DST changes: wall-clock windows are converted to instants day
by day through the calendar's zone, so a 09:00-18:00 window on the day the clocks
change is as long as it really is. Integers, not floats, so that
``between(a, add(a, d)) == d`` holds to the microsecond.
"""

from __future__ import annotations

import threading
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Sequence
from typing import Any
from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import attrs

from qflow import DecisionError, format_duration

__all__ = ["BusinessCalendar", "DayRule", "NoWorkingTimeError", "Window"]

_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
_US = timedelta(microseconds=1)
_DAY = timedelta(days=1)
_ZERO = timedelta(0)
#: How far ahead to look for working time before saying there is none.
_HORIZON_YEARS = 30

_REACH = "check its hours, intervals and holidays, or shorten the committed time"

Window = tuple[int, int]  # minutes after local midnight: [start, end), end <= 1440


class NoWorkingTimeError(DecisionError, ValueError):
    """The calendar has no working time where the arithmetic needs some."""


@attrs.frozen
class DayRule:
    """Which working windows a calendar has on a given local date.

    ``regular(day)`` gives the windows of the weekly pattern (weekdays, days of month,
    months); ``holidays`` close a day, ``workdays`` open one with the windows of the
    last regular working day before it (a make-up day, 调休, works like a weekday).
    ``notes(year)`` says why a year's holidays are a guess (None when they are not);
    no ``notes`` at all when they never are.
    """

    regular: Callable[[date], tuple[Window, ...]]
    holidays: Callable[[date], bool] = lambda _d: False
    workdays: Callable[[date], bool] = lambda _d: False
    notes: Callable[[int], str | None] | None = None

    def windows(self, day: date) -> tuple[Window, ...]:
        if self.workdays(day):
            return self._stand_in(day)
        if self.holidays(day):
            return ()
        return self.regular(day)

    def _stand_in(self, day: date) -> tuple[Window, ...]:
        own = self.regular(day)
        if own and day.weekday() < 5:
            return own
        for back in range(1, 15):
            other = day - timedelta(days=back)
            if other.weekday() < 5 and not self.holidays(other) and not self.workdays(other):
                found = self.regular(other)
                if found:
                    return found
        return own


@attrs.frozen
class _Table:
    first_year: int
    last_year: int
    lo: int  # epoch µs of the first local midnight covered
    hi: int  # epoch µs of the local midnight after the last day covered
    starts: tuple[int, ...]
    ends: tuple[int, ...]
    before: tuple[int, ...]  # business µs used before interval i
    through: tuple[int, ...]  # business µs used at the end of interval i


def _instant(us: int, tz: Any) -> datetime:
    sec, micro = divmod(us, 1_000_000)
    found = datetime.fromtimestamp(sec, tz)
    return found.replace(microsecond=micro) if micro else found


def _us(t: datetime) -> int:
    if t.utcoffset() is None:
        raise ValueError(f"{t.isoformat()} has no time zone; add an offset such as +08:00 or Z")
    return (t - _EPOCH) // _US


class BusinessCalendar:
    """Working time on one calendar: ``add``, ``between``, ``is_open``, ``next_open``.

    A calendar without a :class:`DayRule` runs round the clock (``24x7``). Results are
    given in the time zone of the argument (the calendar's zone is ``tz``); every
    argument must be time-zone aware.
    """

    def __init__(self, name: str, tz: ZoneInfo | timezone, rule: DayRule | None = None) -> None:
        self.name = name
        self.tz = tz
        self.rule = rule
        self._lock = threading.Lock()
        self._table: _Table | None = None

    @property
    def always(self) -> bool:
        """True when the calendar runs round the clock with no holidays."""
        return self.rule is None

    def __repr__(self) -> str:
        return f"BusinessCalendar({self.name!r}, {self.tz})"

    # -- the table -------------------------------------------------------------------

    def _local_midnight(self, day: date) -> int:
        return _us(datetime(day.year, day.month, day.day, tzinfo=self.tz))

    def _build(self, first_year: int, last_year: int) -> _Table:
        assert self.rule is not None
        windows = self.rule.windows
        starts: list[int] = []
        ends: list[int] = []
        day = date(first_year, 1, 1)
        stop = date(last_year + 1, 1, 1)
        tz = self.tz
        while day < stop:
            for s, e in windows(day):
                a = _us(datetime(day.year, day.month, day.day, s // 60, s % 60, tzinfo=tz))
                if e >= 1440:
                    nxt = day + _DAY
                    b = _us(datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz))
                else:
                    b = _us(datetime(day.year, day.month, day.day, e // 60, e % 60, tzinfo=tz))
                if b <= a:  # a window swallowed by a DST change
                    continue
                if ends and a <= ends[-1]:
                    # Touching windows (12:00-13:00 after 09:00-12:00, or across
                    # midnight) become one interval.
                    ends[-1] = max(ends[-1], b)
                else:
                    starts.append(a)
                    ends.append(b)
            day += _DAY
        before, through, used = [], [], 0
        for a, b in zip(starts, ends, strict=True):
            before.append(used)
            used += b - a
            through.append(used)
        return _Table(first_year, last_year, self._local_midnight(date(first_year, 1, 1)),
                      self._local_midnight(stop), tuple(starts), tuple(ends), tuple(before), tuple(through))

    def _cover(self, *moments: int, ahead: int = 0) -> _Table:
        """The table, grown (a few years at a time) to cover *moments*."""
        table = self._table
        if table is not None and not ahead and all(table.lo <= m < table.hi for m in moments):
            return table
        with self._lock:
            table = self._table
            years = [datetime.fromtimestamp(m / 1e6, self.tz).year for m in moments]
            first, last = min(years) - 1, max(years) + 1 + ahead
            if table is not None:
                if table.first_year <= first and last <= table.last_year:
                    return table
                first, last = min(first, table.first_year), max(last, table.last_year)
            table = self._build(first, last)
            self._table = table
            return table

    # -- arithmetic ------------------------------------------------------------------

    def _position(self, table: _Table, t: int) -> int:
        i = bisect_right(table.ends, t)
        if i == len(table.ends):
            return table.through[-1] if table.through else 0
        s = table.starts[i]
        return table.before[i] + (t - s if t > s else 0)

    def between(self, a: datetime, b: datetime) -> timedelta:
        """The working time from *a* to *b* (negative when *b* is before *a*)."""
        if self.rule is None:
            if type(a.tzinfo) is timezone and type(b.tzinfo) is timezone:
                # Fixed offsets subtract exactly. Not two times in one ZoneInfo: Python
                # subtracts those as wall clocks, an hour out across a DST change.
                return b - a
            return timedelta(microseconds=_us(b) - _us(a))
        ta, tb = (a - _EPOCH) // _US, (b - _EPOCH) // _US
        table = self._table
        if table is None or not (table.lo <= ta < table.hi and table.lo <= tb < table.hi):
            table = self._cover(ta, tb)
        return timedelta(microseconds=self._position(table, tb) - self._position(table, ta))

    def add(self, start: datetime, duration: timedelta) -> datetime:
        """The earliest moment at which *duration* of working time after *start* is used.

        ``add(start, 0)`` is *start* itself, open or not.

        :raises NoWorkingTimeError: when the calendar has no more working time within
            thirty years.
        """
        if duration < _ZERO:
            raise ValueError(f"cannot add a negative duration ({duration}) of working time")
        tz = start.tzinfo
        if self.rule is None or not duration:
            if type(tz) is timezone:
                return start + duration  # a fixed offset: wall-clock and elapsed time agree
            return _instant(_us(start) + duration // _US, tz)
        # The hot path: inlined, because at 200,000 deadlines a second every call counts.
        t = (start - _EPOCH) // _US
        want = duration // _US
        table = self._table
        if table is None or not table.lo <= t < table.hi:
            table = self._cover(t)
        ahead = 0
        while True:
            ends = table.ends
            i = bisect_right(ends, t)
            if i == len(ends):
                target = (table.through[-1] if ends else 0) + want
            else:
                s = table.starts[i]
                target = table.before[i] + (t - s if t > s else 0) + want
            through = table.through
            j = bisect_left(through, target)
            if j < len(through):
                return _instant(table.starts[j] + (target - table.before[j]), tz)
            ahead = ahead * 2 + 2
            if ahead > _HORIZON_YEARS:
                raise NoWorkingTimeError(
                    f"calendar '{self.name}' has no {format_duration(duration)} of working time after "
                    f"{start.isoformat()} within {_HORIZON_YEARS} years; {_REACH}")
            table = self._cover(t, ahead=ahead)

    def is_open(self, t: datetime) -> bool:
        """True when *t* falls inside a working window (a window's end is not in it)."""
        if self.rule is None:
            return True
        m = _us(t)
        table = self._cover(m)
        i = bisect_right(table.ends, m)
        return i < len(table.ends) and table.starts[i] <= m

    def next_open(self, t: datetime) -> datetime:
        """*t* when the calendar is open then, else the start of the next working window."""
        if self.rule is None:
            return t
        m = _us(t)
        table = self._cover(m)
        ahead = 0
        while True:
            i = bisect_right(table.ends, m)
            if i < len(table.ends):
                s = table.starts[i]
                return t if s <= m else _instant(s, t.tzinfo)
            ahead = ahead * 2 + 2
            if ahead > _HORIZON_YEARS:
                raise NoWorkingTimeError(f"calendar '{self.name}' does not open within {_HORIZON_YEARS} years "
                                         f"after {t.isoformat()}; {_REACH}")
            table = self._cover(m, ahead=ahead)

    def windows(self, day: date) -> tuple[tuple[datetime, datetime], ...]:
        """The working windows of local *day* as aware datetimes in the calendar's zone."""
        start = datetime(day.year, day.month, day.day, tzinfo=self.tz)
        end = start + _DAY  # wall-clock midnight; zoneinfo arithmetic is wall time
        if self.rule is None:
            return ((start, end),)
        lo, hi = _us(start), _us(end)
        table = self._cover(lo)
        i = bisect_right(table.ends, lo)
        out = []
        while i < len(table.starts) and table.starts[i] < hi:
            a, b = max(table.starts[i], lo), min(table.ends[i], hi)
            out.append((_instant(a, self.tz), _instant(b, self.tz)))
            i += 1
        return tuple(out)

    def warnings(self, a: datetime, b: datetime) -> tuple[str, ...]:
        """Why the working time between *a* and *b* is an estimate (years whose national
        holiday schedule is not published yet), one sentence per year."""
        notes = self.rule.notes if self.rule is not None else None
        if notes is None:
            return ()
        lo, hi = sorted((a.astimezone(self.tz).year, b.astimezone(self.tz).year))
        return tuple(n for n in map(notes, range(lo, hi + 1)) if n)


def merged(windows: Sequence[Window]) -> tuple[Window, ...]:
    """Sorted windows with touching and overlapping ones joined."""
    out: list[list[int]] = []
    for s, e in sorted(windows):
        if out and s <= out[-1][1]:
            out[-1][1] = max(out[-1][1], e)
        else:
            out.append([s, e])
    return tuple((s, e) for s, e in out)
