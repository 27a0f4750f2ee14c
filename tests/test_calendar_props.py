"""Properties of business-time arithmetic, on calendars with windows, holidays,
make-up days and DST changes."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

import qflow
from qflow_sla import business_calendar

RULESET = """\
qflow: 1
timezone: Asia/Shanghai
calendars:
  office:
    hours: {mon-fri: ["09:00-12:00", "13:30-18:00"]}
    holidays: CN
  new-york: {timezone: America/New_York, hours: {mon-fri: ["08:00-12:00", "13:00-17:00"], sat: ["01:00-03:00"]}}
  london: {timezone: Europe/London, hours: {mon-sun: ["00:30-02:30", "22:00-24:00"]}, holidays: GB}
"""
RS = qflow.load_ruleset_text(RULESET, file="p.yaml", plugins=qflow.make_plugin_manager(autoload=False))
CALENDARS = [business_calendar(RS, n) for n in ("office", "new-york", "london", "24x7")]
ZERO = timedelta(0)

calendars = st.sampled_from(CALENDARS)
offsets = st.sampled_from([timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5))])
moments = st.builds(
    lambda us, tz: (datetime(2024, 1, 1, tzinfo=timezone.utc) + timedelta(microseconds=us)).astimezone(tz),
    st.integers(0, 3 * 366 * 86400 * 10**6), offsets)
durations = st.integers(0, 300 * 3600 * 10**6).map(lambda us: timedelta(microseconds=us))
props = settings(max_examples=150, deadline=None)


@props
@given(calendars, moments, durations)
def test_between_undoes_add(cal, a, d):
    assert cal.between(a, cal.add(a, d)) == d


@props
@given(calendars, moments, moments)
def test_business_time_never_exceeds_calendar_time(cal, a, b):
    a, b = min(a, b), max(a, b)
    used = cal.between(a, b)
    assert ZERO <= used <= b - a
    assert cal.between(b, a) == -used


@props
@given(calendars, moments, moments, durations)
def test_add_is_monotonic_in_the_start_and_never_early(cal, a, b, d):
    a, b = min(a, b), max(a, b)
    assert cal.add(a, d) <= cal.add(b, d)
    assert cal.add(a, d) - a >= d  # a deadline is never sooner than its business time


@props
@given(calendars, moments, durations, durations)
def test_add_in_two_steps_is_add_at_once(cal, a, d1, d2):
    assert cal.add(cal.add(a, d1), d2) == cal.add(a, d1 + d2)


@props
@given(calendars, moments, durations, durations, durations)
def test_a_pause_moves_the_deadline_by_the_working_time_it_took(cal, a, run, pause, d):
    """A clock that runs *run*, pauses for *pause* (calendar time), then resumes, runs
    out where the working time before and after the pause adds up to *d*."""
    p = a + run
    q = p + pause
    before = cal.between(a, p)
    if before >= d:
        return
    due = cal.add(q, d - before)
    assert due >= cal.add(a, d)
    assert cal.between(a, p) + cal.between(q, due) == d


@props
@given(calendars, moments)
def test_next_open_is_open_or_the_start_of_a_window(cal, t):
    nxt = cal.next_open(t)
    assert nxt >= t
    assert cal.is_open(nxt)
    assert cal.between(t, nxt) == ZERO


@pytest.mark.slow
@settings(max_examples=3000, deadline=None)
@given(calendars, moments, durations)
def test_between_undoes_add_long(cal, a, d):
    assert cal.between(a, cal.add(a, d)) == d


ZONED = st.sampled_from([timezone.utc, timezone(timedelta(hours=8)), timezone(timedelta(hours=-5)),
                         ZoneInfo("America/New_York")])


@props
@given(st.integers(0, 3 * 366 * 86400 * 10**6), st.integers(0, 3 * 366 * 86400 * 10**6), ZONED, ZONED)
# Both in one ZoneInfo across a DST change: Python subtracts those as wall clocks.
@example(0, 5_986_800_000_000, ZoneInfo("America/New_York"), ZoneInfo("America/New_York"))
def test_round_the_clock_between_is_the_elapsed_microseconds(us_a, us_b, tz_a, tz_b):
    # 24x7 takes the difference of the two moments; it must agree with counting
    # microseconds from the epoch, across zones and DST changes.
    epoch = datetime(1970, 1, 1, tzinfo=timezone.utc)
    base = datetime(2024, 1, 1, tzinfo=timezone.utc)
    a = (base + timedelta(microseconds=us_a)).astimezone(tz_a)
    b = (base + timedelta(microseconds=us_b)).astimezone(tz_b)
    always = business_calendar(RS, "24x7")
    assert always.between(a, b) == timedelta(microseconds=(b - epoch) // timedelta(microseconds=1)
                                             - (a - epoch) // timedelta(microseconds=1))


def test_round_the_clock_between_still_refuses_a_moment_without_a_zone():
    always = business_calendar(RS, "24x7")
    aware = datetime(2026, 11, 20, 9, tzinfo=timezone.utc)
    for a, b in ((aware, aware.replace(tzinfo=None)), (aware.replace(tzinfo=None), aware)):
        with pytest.raises(ValueError) as info:
            always.between(a, b)
        assert str(info.value) == "2026-11-20T09:00:00 has no time zone; add an offset such as +08:00 or Z"
