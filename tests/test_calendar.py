"""Business calendars: working windows, China's holidays and make-up days (调休),
DST, and the located errors of the calendars section."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import holidays
import pytest

import qflow
from qflow_sla import business_calendar

SH = ZoneInfo("Asia/Shanghai")
NY = ZoneInfo("America/New_York")
LDN = ZoneInfo("Europe/London")
H = timedelta(hours=1)
UTC = timezone.utc

RULESET = """\
qflow: 1
timezone: Asia/Shanghai
calendars:
  office:
    name: 办公时间 Office hours
    hours: {mon-fri: ["09:00-12:00", "13:30-18:00"]}
    holidays: CN
    extra_holidays: [2026-12-24, 12-31]
    extra_workdays: [2026-12-27]
  month-end:
    hours: {mon-fri: ["09:00-17:00"]}
    intervals:
      - {days_of_month: [-1], times: ["17:00-20:00"]}
      - {months: [dec], weekdays: [sat], times: ["10:00-12:00"]}
  new-york: {timezone: America/New_York, hours: {mon-fri: ["09:00-17:00"]}}
  ny-days: {timezone: America/New_York, hours: {mon-sun: ["00:00-24:00"]}}
  london-night: {timezone: Europe/London, hours: {sun: ["00:30-02:30"]}}
  hotline: {hours: 24x7, holidays: CN}
"""


@pytest.fixture(scope="module")
def ruleset():
    return qflow.load_ruleset_text(RULESET, file="cal.yaml", plugins=qflow.make_plugin_manager(autoload=False))


def at(day: str, hm: str = "00:00", tz: ZoneInfo = SH) -> datetime:
    y, m, d = map(int, day.split("-"))
    h, mi = map(int, hm.split(":"))
    return datetime(y, m, d, h, mi, tzinfo=tz)


# -- China: the package's data, checked by hand against the State Council notices --------

# 国务院办公厅关于2026年部分节假日安排的通知: 元旦 1/1-1/3 (1/4 Sunday worked);
# 春节 2/15-2/23 (2/14 and 2/28 Saturdays worked); 清明 4/4-4/6; 劳动节 5/1-5/5 (5/9
# Saturday worked); 端午 6/19-6/21; 中秋 9/25-9/27; 国庆 10/1-10/7 (9/20 Sunday and
# 10/10 Saturday worked).
MAKE_UP_DAYS = {
    2024: {date(2024, 2, 4), date(2024, 2, 18), date(2024, 4, 7), date(2024, 4, 28), date(2024, 5, 11),
           date(2024, 9, 14), date(2024, 9, 29), date(2024, 10, 12)},
    2025: {date(2025, 1, 26), date(2025, 2, 8), date(2025, 4, 27), date(2025, 9, 28), date(2025, 10, 11)},
    2026: {date(2026, 1, 4), date(2026, 2, 14), date(2026, 2, 28), date(2026, 5, 9), date(2026, 9, 20),
           date(2026, 10, 10)},
}


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_the_holidays_package_has_chinas_make_up_days(year):
    cn = holidays.country_holidays("CN", years=year)
    assert {d for d in cn.weekend_workdays if d.year == year} == MAKE_UP_DAYS[year]


@pytest.mark.parametrize("year", [2024, 2025, 2026])
def test_make_up_days_are_worked_with_a_weekdays_windows(ruleset, year):
    office = business_calendar(ruleset, "office")
    for day in MAKE_UP_DAYS[year]:
        assert day.weekday() >= 5
        assert [(a.time().isoformat("minutes"), b.time().isoformat("minutes")) for a, b in office.windows(day)] == [
            ("09:00", "12:00"), ("13:30", "18:00")], day


def test_spring_festival_2026_is_closed_from_the_15th_to_the_23rd(ruleset):
    office = business_calendar(ruleset, "office")
    closed = [date(2026, 2, d) for d in range(15, 24)]
    assert [d for d in closed if office.windows(d)] == []
    cn = holidays.country_holidays("CN", years=2026, language="zh_CN")
    assert cn[date(2026, 2, 17)] == "春节"
    assert cn[date(2026, 2, 20)] == "休息日（由 2026-02-14 调休）"
    assert cn[date(2026, 2, 23)] == "休息日（由 2026-02-28 调休）"
    # Friday 13th 17:00 + 2h: one hour on Friday, one on the make-up Saturday.
    assert office.add(at("2026-02-13", "17:00"), 2 * H) == at("2026-02-14", "10:00")
    # From the make-up Saturday's last half hour, over the nine days off.
    assert office.add(at("2026-02-14", "17:30"), H) == at("2026-02-24", "09:30")
    assert office.between(at("2026-02-14", "17:30"), at("2026-02-24", "09:30")) == H
    # The Saturday after is worked too.
    assert office.is_open(at("2026-02-28", "10:00"))
    assert not office.is_open(at("2026-02-21", "10:00"))


def test_national_day_2026_and_its_make_up_sunday_and_saturday(ruleset):
    office = business_calendar(ruleset, "office")
    assert office.add(at("2026-09-30", "17:00"), 2 * H) == at("2026-10-08", "10:00")
    assert office.is_open(at("2026-09-20", "09:00"))  # a Sunday, worked
    assert office.is_open(at("2026-10-10", "17:59"))  # a Saturday, worked
    assert not office.is_open(at("2026-10-07", "10:00"))
    assert office.next_open(at("2026-10-01", "08:00")) == at("2026-10-08", "09:00")


def test_lunch_break_weekend_and_next_open(ruleset):
    office = business_calendar(ruleset, "office")
    assert office.is_open(at("2026-11-20", "11:59"))
    assert not office.is_open(at("2026-11-20", "12:00"))  # a window's end is not in it
    assert office.next_open(at("2026-11-20", "12:30")) == at("2026-11-20", "13:30")
    assert office.next_open(at("2026-11-20", "10:00")) == at("2026-11-20", "10:00")
    assert office.next_open(at("2026-11-20", "18:00")) == at("2026-11-23", "09:00")
    assert office.add(at("2026-11-20", "11:00"), 2 * H) == at("2026-11-20", "14:30")
    assert office.add(at("2026-11-20", "19:00"), timedelta(hours=7, minutes=30)) == at("2026-11-23", "18:00")
    assert office.add(at("2026-11-20", "19:00"), 8 * H) == at("2026-11-24", "09:30")
    assert office.between(at("2026-11-20", "08:00"), at("2026-11-23", "08:00")) == timedelta(hours=7, minutes=30)
    # add(0) is the start itself, even when closed; a window's end is the earliest due.
    assert office.add(at("2026-11-21", "10:00"), timedelta(0)) == at("2026-11-21", "10:00")
    assert office.add(at("2026-11-20", "09:00"), 3 * H) == at("2026-11-20", "12:00")


def test_extra_holidays_one_off_and_yearly_and_extra_workdays(ruleset):
    office = business_calendar(ruleset, "office")
    assert office.windows(date(2026, 12, 24)) == ()  # one-off
    assert office.windows(date(2026, 12, 31)) == ()  # every year
    assert office.windows(date(2025, 12, 31)) == ()
    assert len(office.windows(date(2026, 12, 27))) == 2  # a Sunday the company works
    assert office.add(at("2026-12-23", "17:00"), 2 * H) == at("2026-12-25", "10:00")


def test_days_of_month_months_and_weekdays(ruleset):
    cal = business_calendar(ruleset, "month-end")
    spans = [(a.strftime("%H:%M"), b.strftime("%H:%M")) for a, b in cal.windows(date(2026, 11, 30))]
    assert spans == [("09:00", "20:00")]  # touching windows are one
    assert [(a.strftime("%H:%M"), b.strftime("%H:%M")) for a, b in cal.windows(date(2026, 11, 27))] == [
        ("09:00", "17:00")]
    assert [(a.strftime("%H:%M"), b.strftime("%H:%M")) for a, b in cal.windows(date(2026, 12, 5))] == [
        ("10:00", "12:00")]
    assert cal.windows(date(2026, 11, 28)) == ()  # a Saturday outside December


def test_24x7_with_holidays_closes_only_the_holidays(ruleset):
    hotline = business_calendar(ruleset, "hotline")
    # 国庆 2026 is 10/1-10/7: the Sunday in the block is off too; 30 Sep and 8 Oct count.
    assert hotline.between(at("2026-09-30"), at("2026-10-09")) == timedelta(days=2)
    assert hotline.between(at("2026-02-14"), at("2026-02-25")) == timedelta(days=2)  # 春节 2/15-2/23
    always = business_calendar(ruleset, "24x7")
    assert always.always
    assert always.add(at("2026-09-30"), timedelta(days=9)) == at("2026-10-09")


# -- DST ----------------------------------------------------------------------------------


def test_new_york_spring_forward_2026(ruleset):
    days = business_calendar(ruleset, "ny-days")
    assert days.between(at("2026-03-08", tz=NY), at("2026-03-09", tz=NY)) == timedelta(hours=23)
    assert days.add(at("2026-03-08", tz=NY), timedelta(hours=23)) == at("2026-03-09", tz=NY)
    office = business_calendar(ruleset, "new-york")
    start = at("2026-03-06", "16:00", NY)  # Friday, EST
    due = office.add(start, 2 * H)
    assert due == at("2026-03-09", "10:00", NY) and due.utcoffset() == timedelta(hours=-4)
    assert office.between(start, due) == 2 * H
    # Asked in Shanghai time, answered in Shanghai time.
    assert office.add(start.astimezone(SH), 2 * H).isoformat() == "2026-03-09T22:00:00+08:00"


def test_london_fall_back_2026_the_repeated_hour_is_worked(ruleset):
    night = business_calendar(ruleset, "london-night")
    (start, end), = night.windows(date(2026, 10, 25))
    # 00:30 BST to 02:30 GMT (subtracting two London times would give wall-clock time)
    assert end.astimezone(UTC) - start.astimezone(UTC) == timedelta(hours=3)
    assert night.between(at("2026-10-24", tz=LDN), at("2026-10-26", tz=LDN)) == timedelta(hours=3)
    assert night.add(at("2026-10-25", tz=LDN), 2 * H).isoformat() == "2026-10-25T01:30:00+00:00"


# -- years without a published schedule -----------------------------------------------------


def test_a_deadline_in_2027_carries_a_warning(ruleset):
    office = business_calendar(ruleset, "office")
    assert office.warnings(at("2026-12-30"), at("2026-12-30")) == ()
    assert office.warnings(at("2026-12-30"), at("2027-01-05")) == (
        f"calendar 'office': the CN holiday schedule for 2027 is not published in holidays "
        f"{holidays.__version__}; 2027 is counted on its fixed and lunar holidays without make-up working "
        "days (调休)",)
    assert business_calendar(ruleset, "new-york").warnings(at("2027-01-01"), at("2027-01-05")) == ()


def test_explicit_dates_in_an_unpublished_year_warn_at_load():
    text = ("qflow: 1\ncalendars:\n  office:\n    hours: {mon-fri: [\"09:00-18:00\"]}\n    holidays: CN\n"
            "    extra_workdays: [2027-02-06]\n")
    rs = qflow.load_ruleset_text(text, file="r.yaml", plugins=qflow.make_plugin_manager(autoload=False))
    assert [str(d) for d in rs.warnings] == [
        f"r.yaml:6:22: QF708 the CN holiday schedule for 2027 is not published in holidays {holidays.__version__}; "
        "2027 counts estimated holidays without make-up days (upgrade the holidays package once the official "
        "notice is out) @ $.calendars.office.extra_workdays[0]"]


# -- located errors ---------------------------------------------------------------------------


def errors(text: str) -> list[str]:
    with pytest.raises(qflow.RulesetError) as info:
        qflow.load_ruleset_text(text, file="r.yaml", plugins=qflow.make_plugin_manager(autoload=False))
    return [str(d) for d in info.value.diagnostics]


def test_calendar_mistakes_are_located():
    text = """\
qflow: 1
timezone: Asia/Shanghai
calendars:
  a: {timezone: Asia/Shangai, hours: {mon-fri: ["09:00-12:00"]}}
  b:
    hours:
      mon-fri: ["09:00-12:00", "11:00-13:00"]
      funday: ["09:00-10:00"]
  c: {hours: {mon: ["18:00-09:00", "10:00-10:00", "9am-5pm"]}}
  d: {hours: 24x7, intervals: [{times: ["09:00-10:00"]}]}
  e: {hours: {mon-fri: ["09:00-18:00"]}, holidays: XX, extra_holidays: ["2026-13-01", 12-31, "x"]}
  f: {hours: {mon-fri: ["09:00-18:00"]}, holidays: US-ZZ}
  h: {intervals: [{times: ["09:00-10:00"], weekdays: [someday], months: [smarch], days_of_month: [32]}]}
  i: {}
  j: {hours: office}
  k:
    hours:
      mon-fri: ["09:00-12:00"]
      fri: ["11:30-14:00"]
"""
    assert errors(text) == [
        "r.yaml:4:17: QF700 unknown time zone 'Asia/Shangai' (did you mean 'Asia/Shanghai'?) @ $.calendars.a.timezone",
        "r.yaml:7:32: QF703 the window '11:00-13:00' overlaps '09:00-12:00' (windows of one day must not overlap; "
        "join them into one window or shorten one) @ $.calendars.b.hours.mon-fri[1]",
        "r.yaml:8:7: QF704 'funday' is not a weekday or weekday range (use mon, tue, ... sun, or a range such as "
        "mon-fri or monday:friday) @ $.calendars.b.hours.funday",
        "r.yaml:9:21: QF702 the window '18:00-09:00' is empty: it ends before or when it starts (a window cannot "
        "cross midnight: split it into two windows, e.g. \"22:00-24:00\" and \"00:00-06:00\" on the next day) "
        "@ $.calendars.c.hours.mon[0]",
        "r.yaml:9:36: QF702 the window '10:00-10:00' is empty: it ends before or when it starts (give the window "
        "a length, e.g. \"09:00-12:00\") @ $.calendars.c.hours.mon[1]",
        "r.yaml:9:51: QF701 '9am-5pm' is not a working window (write a window as \"09:00-12:00\", on the 24-hour "
        "clock; 24:00 ends the day) @ $.calendars.c.hours.mon[2]",
        "r.yaml:10:31: QF709 a 24x7 calendar cannot have intervals as well (drop the intervals, or replace "
        "hours: 24x7 by the windows) @ $.calendars.d.intervals",
        "r.yaml:11:52: QF705 the holidays package knows no country 'XX' (use an ISO 3166 code such as CN, US or "
        "GB) @ $.calendars.e.holidays",
        "r.yaml:11:73: QF706 '2026-13-01' is not a date (use YYYY-MM-DD for one day, e.g. 2026-12-24, or MM-DD "
        "for every year, e.g. 12-31) @ $.calendars.e.extra_holidays[0]",
        "r.yaml:11:94: QF706 'x' is not a date (use YYYY-MM-DD for one day, e.g. 2026-12-24, or MM-DD for every "
        "year, e.g. 12-31) @ $.calendars.e.extra_holidays[2]",
        "r.yaml:12:52: QF705 US has no subdivision 'ZZ' in the holidays package (use one of: AK, AL, AR, AS, AZ, "
        "CA, CO, CT, DC, DE, FL, GA ...) @ $.calendars.f.holidays",
        "r.yaml:13:55: QF704 'someday' is not a weekday or weekday range (use mon, tue, ... sun, or a range such "
        "as mon-fri or monday:friday) @ $.calendars.h.intervals[0].weekdays[0]",
        "r.yaml:13:74: QF704 'smarch' is not a month or month range (use 1 to 12, jan ... dec, or a range such "
        "as jan:mar) @ $.calendars.h.intervals[0].months[0]",
        "r.yaml:13:99: QF704 the value 32 is not a day of the month or range (use 1 to 31, -1 for the last day, "
        "or a range such as \"1:7\") @ $.calendars.h.intervals[0].days_of_month[0]",
        "r.yaml:14:6: QF707 calendar 'i' has no working hours (add hours: 24x7, or hours: {mon-fri: "
        "[\"09:00-18:00\"]}) @ $.calendars.i",
        "r.yaml:15:14: QF701 hours 'office' is not 24x7 or a mapping of weekdays to windows (write hours: 24x7, "
        "or hours: {mon-fri: [\"09:00-12:00\", \"13:30-18:00\"]}) @ $.calendars.j.hours",
        "r.yaml:19:12: QF703 the window '11:30-14:00' overlaps '09:00-12:00' on friday (windows of one day must "
        "not overlap; join them into one window or shorten one) @ $.calendars.k.hours.fri",
    ]


def test_an_unknown_calendar_in_a_severity_lists_the_defined_ones():
    text = "qflow: 1\ncalendars:\n  office: {hours: {mon-fri: [\"09:00-18:00\"]}}\nseverities:\n  high: {respond: 1h, calendar: offce}\n"
    assert errors(text) == [
        "r.yaml:5:33: QF201 unknown calendar 'offce' (did you mean 'office'?) @ $.severities.high.calendar"]


def test_a_calendar_that_never_opens_and_a_backward_day_range_are_located():
    text = """\
qflow: 1
calendars:
  feb-30:
    intervals:
      - {days_of_month: [30], months: [feb], times: ["09:00-18:00"]}
  backward:
    intervals:
      - {days_of_month: ["10:5", "25:-10", "-1:-7", "5:10"], times: ["09:00-18:00"]}
  christmas:
    intervals:
      - {days_of_month: [25], months: [dec], times: ["09:00-18:00"]}
    extra_holidays: [12-25]
"""
    assert errors(text) == [
        "r.yaml:4:5: QF707 calendar 'feb-30' never opens: no date matches its weekdays, days of the month and "
        "months (check the intervals: February has no 30th, and a weekday filter narrows the days of the month "
        "too) @ $.calendars.feb-30",
        "r.yaml:8:26: QF704 the range '10:5' matches no day of any month: its first day comes after its last "
        "(write the earlier day first, e.g. \"5:10\"; -1 is the month's last day) "
        "@ $.calendars.backward.intervals[0].days_of_month[0]",
        "r.yaml:8:34: QF704 the range '25:-10' matches no day of any month: its first day comes after its last "
        "(write the earlier day first, e.g. \"5:10\"; -1 is the month's last day) "
        "@ $.calendars.backward.intervals[0].days_of_month[1]",
        "r.yaml:8:44: QF704 the range '-1:-7' matches no day of any month: its first day comes after its last "
        "(write the earlier day first, e.g. \"5:10\"; -1 is the month's last day) "
        "@ $.calendars.backward.intervals[0].days_of_month[2]",
        "r.yaml:12:21: QF707 calendar 'christmas' never opens: every date it has working hours is one of its "
        "extra_holidays (drop those extra_holidays, or add working hours) @ $.calendars.christmas.extra_holidays",
    ]


def test_calendars_that_open_rarely_are_accepted():
    # Each opens on a few days only, and must load: the check may never refuse them.
    text = """\
qflow: 1
timezone: Asia/Shanghai
calendars:
  leap-sunday:
    intervals: [{days_of_month: [29], months: [feb], weekdays: [sun], times: ["09:00-10:00"]}]
  feb-from-the-end:
    intervals: [{days_of_month: ["-28:1"], months: [feb], times: ["09:00-10:00"]}]
  first-monday-in-feb:
    intervals: [{days_of_month: ["1:7"], weekdays: [mon], months: [feb], times: ["09:00-10:00"]}]
  christmas-once:
    intervals: [{days_of_month: [25], months: [dec], times: ["09:00-18:00"]}]
    extra_holidays: [12-25]
    extra_workdays: [2026-12-25]
"""
    rs = qflow.load_ruleset_text(text, file="r.yaml", plugins=qflow.make_plugin_manager(autoload=False))
    h = timedelta(minutes=30)
    assert business_calendar(rs, "leap-sunday").add(at("2026-01-01"), h) == at("2032-02-29", "09:30")
    assert business_calendar(rs, "feb-from-the-end").add(at("2026-01-01"), h) == at("2026-02-01", "09:30")
    assert business_calendar(rs, "first-monday-in-feb").add(at("2026-01-01"), h) == at("2026-02-02", "09:30")
    assert business_calendar(rs, "christmas-once").add(at("2026-01-01"), h) == at("2026-12-25", "09:30")


def test_no_working_time_within_reach_is_a_decision_error():
    # A calendar that opens, but only on a day China always has off: found when counting.
    text = ("qflow: 1\ntimezone: Asia/Shanghai\ncalendars:\n  new-year:\n"
            "    intervals: [{days_of_month: [1], months: [jan], times: [\"09:00-18:00\"]}]\n    holidays: CN\n")
    rs = qflow.load_ruleset_text(text, file="r.yaml", plugins=qflow.make_plugin_manager(autoload=False))
    with pytest.raises(qflow.DecisionError) as info:
        business_calendar(rs, "new-year").add(at("2026-02-13", "17:00"), timedelta(hours=4))
    assert str(info.value) == (
        "calendar 'new-year' has no 4h of working time after 2026-02-13T17:00:00+08:00 within 30 years; check "
        "its hours, intervals and holidays, or shorten the committed time")


def test_a_misspelt_key_or_a_bad_value_does_not_hide_the_other_mistakes_of_the_entry():
    text = """\
qflow: 1
calendars:
  office:
    timezon: Europe/Berlin
    hours:
      mon-fry: ["09:00-12:00"]
      sat: [{start_time: "09:00", end_time: "08:00"}]
    holidays: XX
  shop:
    timezone: 8
    hour: {mon-fri: ["09:00-18:00"]}
    intervals:
      - {time: ["09:00-10:00"], weekdays: [funday]}
priorities:
  P1: {respond: 1hr, calendar: offfice}
severities:
  normal: {respond: 4hr, calendar: offce}
"""
    # Nothing about what the entries lack once the mistakes are left out: shop's
    # missing hours and its interval's missing times are the misspelt keys.
    assert errors(text) == [
        "r.yaml:4:5: QF101 unknown key 'timezon' (did you mean 'timezone'?) @ $.calendars.office.timezon",
        "r.yaml:6:7: QF704 'mon-fry' is not a weekday or weekday range (use mon, tue, ... sun, or a range such as "
        "mon-fri or monday:friday) @ $.calendars.office.hours.mon-fry",
        "r.yaml:7:13: QF702 the window '09:00-08:00' is empty: it ends before or when it starts (a window cannot "
        "cross midnight: split it into two windows, e.g. \"22:00-24:00\" and \"00:00-06:00\" on the next day) "
        "@ $.calendars.office.hours.sat[0]",
        "r.yaml:8:15: QF705 the holidays package knows no country 'XX' (use an ISO 3166 code such as CN, US or "
        "GB) @ $.calendars.office.holidays",
        "r.yaml:10:15: QF103 expected text, got the number 8 (put the value in quotes) @ $.calendars.shop.timezone",
        "r.yaml:11:5: QF101 unknown key 'hour' (did you mean 'hours'?) @ $.calendars.shop.hour",
        "r.yaml:13:10: QF101 unknown key 'time' (did you mean 'times'?) @ $.calendars.shop.intervals[0].time",
        "r.yaml:13:44: QF704 'funday' is not a weekday or weekday range (use mon, tue, ... sun, or a range such as "
        "mon-fri or monday:friday) @ $.calendars.shop.intervals[0].weekdays[0]",
        "r.yaml:15:17: QF105 '1hr' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m) "
        "@ $.priorities.P1.respond",
        "r.yaml:15:32: QF201 unknown calendar 'offfice' (did you mean 'office'?) @ $.priorities.P1.calendar",
        "r.yaml:17:21: QF105 '4hr' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m) "
        "@ $.severities.normal.respond",
        "r.yaml:17:36: QF201 unknown calendar 'offce' (did you mean 'office'?) @ $.severities.normal.calendar",
    ]
