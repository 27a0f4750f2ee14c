"""The ``calendars`` section: what an ops person writes, checked and turned into
:class:`~qflow_sla._calendar.BusinessCalendar` values.

The vocabulary follows Alertmanager's ``time_intervals`` (weekdays, days of month,
months, times) with a shorthand for the common case::

    office:
      timezone: Asia/Shanghai                 # default: the ruleset's time zone
      hours: {mon-fri: ["09:00-12:00", "13:30-18:00"], sat: ["09:00-12:00"]}
      intervals:                              # more windows, on some days only
        - {months: [december], days_of_month: ["-7:-1"], times: ["18:00-20:00"]}
      holidays: CN                            # national holidays and make-up days (调休)
      extra_holidays: [2026-12-24, 12-31]     # one day, or the same day every year
      extra_workdays: [2026-12-27]
"""

from __future__ import annotations

import re
import zoneinfo
from collections.abc import Callable, Mapping
from datetime import date, timedelta
from functools import lru_cache
from typing import Any

import attrs
import holidays as holidays_lib

from qflow import CompileContext
from qflow.diagnostics import did_you_mean
from qflow_sla._calendar import BusinessCalendar, DayRule, Window, merged
from qflow_sla._salvage import salvaged

__all__ = ["ROUND_THE_CLOCK", "CalendarSpec", "Calendars", "Interval", "compile_calendars"]

ROUND_THE_CLOCK = "24x7"


@attrs.frozen
class Interval:
    """Working windows on the days that match every given filter (Alertmanager style)."""

    times: Any = None  # ["09:00-12:00", {start_time: "13:30", end_time: "18:00"}]
    weekdays: Any = None  # ["monday:friday", sat]
    days_of_month: Any = None  # [1, "1:7", -1] (negative counts from the month's end)
    months: Any = None  # ["jan:mar", 12]


@attrs.frozen
class CalendarSpec:
    """When the clocks run. ``hours: 24x7`` runs them always."""

    hours: Any = None  # "24x7" or {weekdays: [windows]}
    intervals: list[Interval] = attrs.field(factory=list)
    timezone: str | None = None
    holidays: str | None = None  # a country code, with a subdivision: "US-NY"
    extra_holidays: list[Any] = attrs.field(factory=list)
    extra_workdays: list[Any] = attrs.field(factory=list)
    name: str | None = None


class Calendars(Mapping[str, BusinessCalendar]):
    """The compiled section: calendar name -> :class:`BusinessCalendar` (``24x7`` built in)."""

    def __init__(self, calendars: Mapping[str, BusinessCalendar], specs: Mapping[str, CalendarSpec]) -> None:
        self._calendars = dict(calendars)
        self.specs = dict(specs)

    def __getitem__(self, name: str) -> BusinessCalendar:
        return self._calendars[name]

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self._calendars)

    def __len__(self) -> int:
        return len(self._calendars)


_DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
_MONTHS = ("january", "february", "march", "april", "may", "june", "july", "august",
           "september", "october", "november", "december")
_TIME = re.compile(r"^(\d{1,2}):(\d{2})$")
_WINDOW = re.compile(r"^\s*([^-\s]+)\s*-\s*([^-\s]+)\s*$")
_MONTH_DAY = re.compile(r"^(\d{1,2})-(\d{1,2})$")

Path = tuple[str | int, ...]


def _name_index(text: str, names: tuple[str, ...]) -> int | None:
    t = text.strip().lower()
    for i, n in enumerate(names):
        if t == n or (len(t) >= 3 and n.startswith(t)):
            return i
    return None


def _minute(text: str) -> int | None:
    m = _TIME.match(text.strip())
    if not m:
        return None
    h, mi = int(m.group(1)), int(m.group(2))
    if mi > 59 or h > 24 or (h == 24 and mi):
        return None
    return h * 60 + mi


_TIME_HINT = "write a window as \"09:00-12:00\", on the 24-hour clock; 24:00 ends the day"


def _window(raw: Any, ctx: CompileContext, path: Path) -> Window | None:
    if isinstance(raw, Mapping) and set(raw) <= {"start_time", "end_time"}:
        parts = (raw.get("start_time"), raw.get("end_time"))
        if not all(isinstance(p, str) for p in parts):
            ctx.error(path, "QF701", "a window needs start_time and end_time as text",
                      hint="write start_time: \"09:00\" and end_time: \"12:00\"")
            return None
        text = f"{parts[0]}-{parts[1]}"
    elif isinstance(raw, str):
        text = raw
    else:
        ctx.error(path, "QF701", f"{_show(raw)} is not a working window", hint=_TIME_HINT)
        return None
    m = _WINDOW.match(text)
    bounds = (_minute(m.group(1)), _minute(m.group(2))) if m else (None, None)
    if bounds[0] is None or bounds[1] is None or bounds[0] == 1440:
        ctx.error(path, "QF701", f"'{text}' is not a working window", hint=_TIME_HINT)
        return None
    start, end = bounds
    if end <= start:
        hint = ("a window cannot cross midnight: split it into two windows, e.g. "
                "\"22:00-24:00\" and \"00:00-06:00\" on the next day" if end < start
                else "give the window a length, e.g. \"09:00-12:00\"")
        ctx.error(path, "QF702", f"the window '{text}' is empty: it ends before or when it starts", hint=hint)
        return None
    return (start, end)


def _windows(raw: Any, ctx: CompileContext, path: Path) -> tuple[Window, ...] | None:
    items = [raw] if isinstance(raw, (str, Mapping)) else raw
    if not isinstance(items, list) or not items:
        ctx.error(path, "QF701", "expected a list of working windows", hint=_TIME_HINT)
        return None
    found: list[tuple[Window, int]] = []
    for i, item in enumerate(items):
        w = _window(item, ctx, path + (i,) if items is raw else path)
        if w is not None:
            found.append((w, i))
    if len(found) < len(items) or _check_overlap(found, ctx, lambda i: path + (i,) if items is raw else path, ""):
        return None
    return tuple(w for w, _ in found)


def _check_overlap(found: list[tuple[Window, Any]], ctx: CompileContext, where: Callable[[Any], Path],
                   day: str) -> bool:
    """Report windows that overlap an earlier one (of another source, when *day* is
    given: the same list is checked on its own); True when there was one."""
    ordered = sorted(found, key=lambda f: f[0])
    bad = False
    for k, (b, at) in enumerate(ordered):
        for a, other in ordered[:k]:
            if b[0] < a[1] and (not day or other != at):
                ctx.error(where(at), "QF703", f"the window '{_fmt(b)}' overlaps '{_fmt(a)}'{day}",
                          hint="windows of one day must not overlap; join them into one window or shorten one")
                bad = True
                break
    return bad


def _fmt(w: Window) -> str:
    return f"{w[0] // 60:02d}:{w[0] % 60:02d}-{w[1] // 60:02d}:{w[1] % 60:02d}"


def _show(value: Any) -> str:
    if isinstance(value, str):
        return f"'{value}'"
    if isinstance(value, Mapping):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    return f"the value {value!r}"


def _split(text: str) -> tuple[str, str]:
    t = text.strip()
    if ":" in t:
        head, _, tail = t.partition(":")
        return head, tail
    if "-" in t[1:]:  # a leading '-' is a day counted from the month's end
        i = t.index("-", 1)
        return t[:i], t[i + 1:]
    return t, t


def _ranges(raw: Any, ctx: CompileContext, path: Path, what: str, parse: Callable[[str], int | None],
            hint: str, empty: Callable[[int, int], bool] | None = None) -> list[tuple[int, int]]:
    """Read ``[mon-fri, sat]`` or ``["1:7", -1]`` into inclusive (first, last) pairs;
    *empty* tells a range that can match nothing."""
    items = raw if isinstance(raw, list) else [raw]
    out: list[tuple[int, int]] = []
    for i, item in enumerate(items):
        at = path + (i,) if isinstance(raw, list) else path
        first = last = None
        if isinstance(item, (str, int)) and not isinstance(item, bool):
            head, tail = _split(str(item))
            first, last = parse(head), parse(tail)
        if first is None or last is None:
            ctx.error(at, "QF704", f"{_show(item)} is not a {what}", hint=hint)
            continue
        if empty is not None and empty(first, last):
            ctx.error(at, "QF704", f"the range {_show(item)} matches no day of any month: its first day comes "
                      "after its last", hint="write the earlier day first, e.g. \"5:10\"; -1 is the month's last day")
            continue
        out.append((first, last))
    return out


def _weekday(text: str) -> int | None:
    return _name_index(text, _DAYS)


def _month(text: str) -> int | None:
    t = text.strip()
    if t.isdigit():
        n = int(t)
        return n if 1 <= n <= 12 else None
    i = _name_index(t, _MONTHS)
    return None if i is None else i + 1


def _day_of_month(text: str) -> int | None:
    t = text.strip()
    if re.match(r"^-?\d+$", t):
        n = int(t)
        return n if 1 <= abs(n) <= 31 else None
    return None


def _no_day(first: int, last: int) -> bool:
    """True when the days *first* to *last* (negative: from the month's end) match no
    day of a month of any length: "10:5", or "25:-10" (the 25th is past the 10th last)."""
    return all(lo > hi for lo, hi in (_day_range(first, last, length) for length in (28, 29, 30, 31)))


def _day_range(first: int, last: int, length: int) -> tuple[int, int]:
    """The days *first* to *last* in a month of *length* days, clamped to the month."""
    a, b = (first if first > 0 else length + 1 + first), (last if last > 0 else length + 1 + last)
    return max(a, 1), min(b, length)


_WEEKDAY_HINT = "use mon, tue, ... sun, or a range such as mon-fri or monday:friday"


def _weekday_set(raw: Any, ctx: CompileContext, path: Path) -> frozenset[int] | None:
    if raw is None:
        return None
    found = _ranges(raw, ctx, path, "weekday or weekday range", _weekday, _WEEKDAY_HINT)
    days: set[int] = set()
    for a, b in found:
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


def _weekdays_key(key: Any) -> frozenset[int] | None:
    """The weekdays a key of ``hours`` names: ``mon-fri``, ``sat,sun``, ``monday``."""
    if not isinstance(key, str):
        return None
    days: set[int] = set()
    for part in key.split(","):
        head, tail = _split(part)
        a, b = _weekday(head), _weekday(tail)
        if a is None or b is None:
            return None
        days.update(range(a, b + 1) if a <= b else [*range(a, 7), *range(0, b + 1)])
    return frozenset(days)


@attrs.frozen
class _Pattern:
    windows: tuple[Window, ...]
    weekdays: frozenset[int] | None = None
    days: tuple[tuple[int, int], ...] | None = None
    months: frozenset[int] | None = None

    def matches(self, day: date) -> bool:
        return self.matches_on(day.weekday(), day.month, day.day, _month_length(day))

    def matches_on(self, weekday: int, month: int, n: int, last: int) -> bool:
        """Whether the pattern holds on day *n* of *month* (of *last* days), a *weekday*."""
        if self.weekdays is not None and weekday not in self.weekdays:
            return False
        if self.months is not None and month not in self.months:
            return False
        if self.days is not None:
            for a, b in self.days:
                a2, b2 = (a if a > 0 else last + 1 + a), (b if b > 0 else last + 1 + b)
                if a2 <= n <= b2:
                    break
            else:
                return False
        return True


def _month_length(day: date) -> int:
    nxt = date(day.year + (day.month == 12), day.month % 12 + 1, 1)
    return (nxt - date(day.year, day.month, 1)).days


_LENGTHS = ((31,), (28, 29), (31,), (30,), (31,), (30,), (31,), (31,), (30,), (31,), (30,), (31,))


def _opens(patterns: list[_Pattern], closed: frozenset[tuple[int, int]]) -> bool:
    """Whether the weekly *patterns* open on some date that is not one of the yearly
    *closed* (month, day) dates, in some year. Exact and cheap: every date falls on
    every weekday in some year, and February has 28 days or 29, so these are all the
    days there are."""
    for month, lengths in enumerate(_LENGTHS, 1):
        for last in lengths:
            for n in range(1, last + 1):
                if (month, n) in closed:
                    continue
                if any(p.windows and p.matches_on(wd, month, n, last) for p in patterns for wd in range(7)):
                    return True
    return False


def _patterns(spec: CalendarSpec, key: str, ctx: CompileContext, partial: bool) -> tuple[list[_Pattern], bool] | None:
    """The weekly patterns of *spec*; the flag says it runs round the clock. A
    *partial* spec (keys left out) is not told what it lacks."""
    base: Path = ("calendars", key)
    patterns: list[_Pattern] = []
    always = broken = False
    hours = spec.hours
    if hours is None and not spec.intervals:
        if not partial:
            ctx.error(base, "QF707", f"calendar '{key}' has no working hours",
                      hint="add hours: 24x7, or hours: {mon-fri: [\"09:00-18:00\"]}")
        return None
    if isinstance(hours, str):
        if hours.strip().lower() != ROUND_THE_CLOCK:
            ctx.error(base + ("hours",), "QF701", f"hours '{hours}' is not 24x7 or a mapping of weekdays to windows",
                      hint="write hours: 24x7, or hours: {mon-fri: [\"09:00-12:00\", \"13:30-18:00\"]}")
            return None
        if spec.intervals:
            ctx.error(base + ("intervals",), "QF709", "a 24x7 calendar cannot have intervals as well",
                      hint="drop the intervals, or replace hours: 24x7 by the windows")
        always = True
    elif isinstance(hours, Mapping):
        per_day: dict[int, list[tuple[Window, Any]]] = {}
        for days_key, raw in hours.items():
            days = _weekdays_key(days_key)
            if days is None:
                ctx.error(base + ("hours", days_key), "QF704", f"{_show(days_key)} is not a weekday or weekday range",
                          hint=_WEEKDAY_HINT, at="key")
                broken = True
                continue
            windows = _windows(raw, ctx, base + ("hours", days_key))
            if windows is None:
                broken = True
                continue
            for d in days:
                per_day.setdefault(d, []).extend((w, days_key) for w in windows)
            patterns.append(_Pattern(merged(windows), weekdays=days))
        reported: set[tuple[Window, Any]] = set()
        for d, found in sorted(per_day.items()):
            if len({k for _, k in found}) > 1:
                fresh = [f for f in found if f not in reported]
                if _check_overlap(fresh, ctx, lambda k: base + ("hours", k), f" on {_DAYS[d]}"):
                    reported.update(found)
                    broken = True
    elif hours is not None:
        ctx.error(base + ("hours",), "QF701", f"{_show(hours)} is not 24x7 or a mapping of weekdays to windows",
                  hint="write hours: 24x7, or hours: {mon-fri: [\"09:00-18:00\"]}")
        return None
    for i, interval in enumerate(spec.intervals):
        path = base + ("intervals", i)
        windows = None
        if interval.times is not None:
            windows = _windows(interval.times, ctx, path + ("times",))
        elif not partial:
            ctx.error(path, "QF102", "missing required key 'times'", hint=_TIME_HINT)
        weekdays = _weekday_set(interval.weekdays, ctx, path + ("weekdays",))
        days = None
        if interval.days_of_month is not None:
            days = tuple(_ranges(interval.days_of_month, ctx, path + ("days_of_month",), "day of the month or range",
                                 _day_of_month, "use 1 to 31, -1 for the last day, or a range such as \"1:7\"",
                                 empty=_no_day))
        months = None
        if interval.months is not None:
            found = _ranges(interval.months, ctx, path + ("months",), "month or month range", _month,
                            "use 1 to 12, jan ... dec, or a range such as jan:mar")
            months = frozenset(m for a, b in found for m in (range(a, b + 1) if a <= b else [*range(a, 13), *range(1, b + 1)]))
        if windows is None or any(x is not None and not x for x in (weekdays, days, months)):
            broken = True
        else:
            patterns.append(_Pattern(merged(windows), weekdays, days, months))
    return None if broken else (patterns, always)


def _regular(patterns: list[_Pattern], always: bool) -> Callable[[date], tuple[Window, ...]]:
    if always:
        whole = ((0, 1440),)
        return lambda _day: whole
    cache: dict[tuple[int, int, int, int], tuple[Window, ...]] = {}

    def regular(day: date) -> tuple[Window, ...]:
        # The answer depends on weekday, month and position in the month only.
        last = _month_length(day)
        key = (day.weekday(), day.month, day.day, last)
        found = cache.get(key)
        if found is None:
            found = merged([w for p in patterns if p.matches(day) for w in p.windows])
            cache[key] = found
        return found

    return regular


@lru_cache(maxsize=1)
def _countries() -> Mapping[str, tuple[str, ...]]:
    return {code: tuple(subs) for code, subs in holidays_lib.list_supported_countries().items()}


class _National:
    """A country's holidays and make-up working days, year by year, from ``holidays``."""

    def __init__(self, country: str, subdiv: str | None) -> None:
        self.country, self.subdiv = country, subdiv
        self._years: dict[int, tuple[frozenset[date], frozenset[date]]] = {}
        self._by_notice: bool | None = None

    def year(self, y: int) -> tuple[frozenset[date], frozenset[date]]:
        """The days off and the make-up working days of year *y*."""
        found = self._years.get(y)
        if found is None:
            h = holidays_lib.country_holidays(self.country, subdiv=self.subdiv, years=(y - 1, y, y + 1))
            work = frozenset(getattr(h, "weekend_workdays", ()))
            off = set(h)
            if work:
                # A notice gives the break as a block (春节 2/15-2/23 in 2026); the
                # package lists only its weekdays, so the weekend days that join the
                # holidays are days off too, even for calendars that work weekends.
                weekend = getattr(h, "weekend", {5, 6})
                edge = list(off)
                while edge:
                    d = edge.pop()
                    for n in (d - timedelta(days=1), d + timedelta(days=1)):
                        if n.weekday() in weekend and n not in off and n not in work:
                            off.add(n)
                            edge.append(n)
            found = (frozenset(d for d in off if d.year == y), frozenset(d for d in work if d.year == y))
            self._years[y] = found
        return found

    @property
    def by_notice(self) -> bool:
        """Whether the country publishes its schedule year by year with make-up working
        days (China does): only then can a year be 'not published yet'."""
        if self._by_notice is None:
            self._by_notice = any(self.year(y)[1] for y in range(2016, 2026))
        return self._by_notice

    def published(self, y: int) -> bool:
        return not self.by_notice or bool(self.year(y)[1])

    def note(self, calendar: str, y: int) -> str | None:
        if self.published(y):
            return None
        return (f"calendar '{calendar}': the {self.country} holiday schedule for {y} is not published in "
                f"holidays {holidays_lib.__version__}; {y} is counted on its fixed and lunar holidays "
                f"without make-up working days (调休)")


def _dates(raw: list[Any], ctx: CompileContext, path: Path) -> tuple[frozenset[date], frozenset[tuple[int, int]]]:
    one_off: set[date] = set()
    yearly: set[tuple[int, int]] = set()
    for i, item in enumerate(raw):
        if isinstance(item, date):
            one_off.add(item)
            continue
        if isinstance(item, str):
            text = item.strip()
            try:
                one_off.add(date.fromisoformat(text))
                continue
            except ValueError:
                m = _MONTH_DAY.match(text)
                if m:
                    try:
                        date(2024, int(m.group(1)), int(m.group(2)))  # a leap year: 02-29 is a date
                        yearly.add((int(m.group(1)), int(m.group(2))))
                        continue
                    except ValueError:
                        pass
        ctx.error(path + (i,), "QF706", f"{_show(item)} is not a date",
                  hint="use YYYY-MM-DD for one day, e.g. 2026-12-24, or MM-DD for every year, e.g. 12-31")
    return frozenset(one_off), frozenset(yearly)


def _compile_one(key: str, spec: CalendarSpec, ctx: CompileContext, partial: bool = False) -> BusinessCalendar | None:
    base: Path = ("calendars", key)
    tz: Any = ctx.timezone
    if spec.timezone is not None:
        try:
            tz = zoneinfo.ZoneInfo(spec.timezone)
        except (zoneinfo.ZoneInfoNotFoundError, ValueError):
            ctx.error(base + ("timezone",), "QF700", f"unknown time zone '{spec.timezone}'",
                      hint=did_you_mean(spec.timezone, zoneinfo.available_timezones())
                      or "use an IANA name such as Asia/Shanghai or Europe/London")
            tz = None
    found = _patterns(spec, key, ctx, partial)
    national = None
    if spec.holidays is not None:
        code, _, subdiv = spec.holidays.strip().partition("-")
        countries = _countries()
        if code.upper() not in countries:
            ctx.error(base + ("holidays",), "QF705", f"the holidays package knows no country '{spec.holidays}'",
                      hint=did_you_mean(code.upper(), countries) or "use an ISO 3166 code such as CN, US or GB")
        elif subdiv and subdiv.upper() not in countries[code.upper()]:
            subs = countries[code.upper()]
            ctx.error(base + ("holidays",), "QF705",
                      f"{code.upper()} has no subdivision '{subdiv}' in the holidays package",
                      hint=did_you_mean(subdiv.upper(), subs) or (f"use one of: {', '.join(subs[:12])}"
                                                                 + (" ..." if len(subs) > 12 else "")
                                                                 if subs else f"write holidays: {code.upper()}"))
        else:
            national = _National(code.upper(), subdiv.upper() or None)
    off, off_yearly = _dates(spec.extra_holidays, ctx, base + ("extra_holidays",))
    work, work_yearly = _dates(spec.extra_workdays, ctx, base + ("extra_workdays",))
    if national is not None:
        for field, items in (("extra_holidays", spec.extra_holidays), ("extra_workdays", spec.extra_workdays)):
            for i, item in enumerate(items):
                y = item.year if isinstance(item, date) else _year_of(item)
                if y is not None and not national.published(y):
                    ctx.warn(base + (field, i), "QF708",
                             f"the {national.country} holiday schedule for {y} is not published in holidays "
                             f"{holidays_lib.__version__}; {y} counts estimated holidays without make-up days",
                             hint="upgrade the holidays package once the official notice is out")
    if found is None or tz is None or partial:
        return None
    patterns, always = found
    if always and national is None and not off and not off_yearly:
        return BusinessCalendar(key, tz)
    if not always and not any(p.windows for p in patterns):
        ctx.error(base, "QF707", f"calendar '{key}' has no working hours",
                  hint="give at least one window, e.g. hours: {mon-fri: [\"09:00-18:00\"]}")
        return None
    if not always and not _opens(patterns, frozenset()):
        ctx.error(base, "QF707", f"calendar '{key}' never opens: no date matches its weekdays, days of the month "
                  "and months", hint="check the intervals: February has no 30th, and a weekday filter narrows "
                  "the days of the month too")
        return None
    if not always and not work and not work_yearly and not _opens(patterns, off_yearly):
        # Only an extra working day can open a day the weekly pattern leaves shut.
        ctx.error(base + ("extra_holidays",), "QF707", f"calendar '{key}' never opens: every date it has working "
                  "hours is one of its extra_holidays", hint="drop those extra_holidays, or add working hours")
        return None
    nat = national

    def is_holiday(day: date) -> bool:
        if day in off or (day.month, day.day) in off_yearly:
            return True
        return nat is not None and day in nat.year(day.year)[0]

    def is_workday(day: date) -> bool:
        if day in work or (day.month, day.day) in work_yearly:
            return True
        if nat is None or day in off or (day.month, day.day) in off_yearly:
            return False
        return day in nat.year(day.year)[1]

    # Only a country's schedule can be unpublished, so only then are there notes.
    note = (lambda y: nat.note(key, y)) if nat is not None else None
    return BusinessCalendar(key, tz, DayRule(_regular(patterns, always), is_holiday, is_workday, note))


def _year_of(item: Any) -> int | None:
    if isinstance(item, str):
        try:
            return date.fromisoformat(item.strip()).year
        except ValueError:
            return None
    return None


def compile_calendars(calendars: Mapping[str, CalendarSpec] | None, ctx: CompileContext) -> Calendars:
    ctx.define("calendar", ROUND_THE_CLOCK, ())
    compiled = {ROUND_THE_CLOCK: BusinessCalendar(ROUND_THE_CLOCK, ctx.timezone)}
    for key, spec in (calendars or {}).items():
        if key == ROUND_THE_CLOCK:
            ctx.error(("calendars", key), "QF202", f"calendar '{key}' is built in",
                      hint="choose another name, or use '24x7' without defining it", at="key")
            continue
        ctx.define("calendar", key, ("calendars", key))
        cal = _compile_one(key, spec, ctx)
        if cal is not None:
            compiled[key] = cal
    # An entry with a mistake is still a calendar the ruleset names (for the hints of
    # references), and its other keys are still checked.
    for key, (spec, partial) in salvaged("calendars", calendars or {}, CalendarSpec, ctx).items():
        if key != ROUND_THE_CLOCK:
            ctx.define("calendar", key, ("calendars", key))
            _compile_one(key, spec, ctx, partial)
    return Calendars(compiled, {ROUND_THE_CLOCK: CalendarSpec(hours=ROUND_THE_CLOCK), **(calendars or {})})
