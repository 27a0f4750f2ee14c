"""The renderers lay out a Report without computing anything: a self-contained HTML
page (no script, no external file) with the four charts and the problem list, CSV
with its fixed columns, and the terminal table; on the hand-computed history of
test_kpis."""

from __future__ import annotations

import csv
import io
import re

import pytest

from qflow_assess._render import render_csv, render_html, rows
from qflow_assess._report import build_report
from tests.test_kpis import AS_OF, build


@pytest.fixture(scope="module")
def report():
    engine, ids = build()
    return build_report(engine.store, engine.ruleset, "2026-10", as_of=AS_OF, now=AS_OF, dimensions=("team",)), ids


def test_html_is_self_contained(report):
    rep, _ = report
    for lang in ("en", "zh"):
        html = render_html(rep, lang=lang)
        assert "<script" not in html.lower() and "<link" not in html.lower() and "@import" not in html
        urls = set(re.findall(r"(?:https?:)?//[\w.-]+", html))
        assert urls == {"http://www.w3.org"}  # the SVG namespace only, never fetched
        assert not re.search(r'\b(?:src|href)="', html)


def test_html_has_the_four_charts_and_the_problem_list(report):
    rep, ids = report
    html = render_html(rep)
    charts = re.findall(r'<figure><figcaption>(.*?)</figcaption><svg [^>]*aria-label="([^"]*)"', html)
    assert [label for _, label in charts] == ["On-time rate by month", "Resolution time (business hours)",
                                              "Causes by 6M branch (Pareto)", "Recurrence by place"]
    trend, histogram, pareto, places = re.findall(r"<svg .*?</svg>", html)
    # six months up to October; both on-time lines drawn, September and October with points
    months = ("2026-05", "2026-06", "2026-07", "2026-08", "2026-09", "2026-10")
    assert tuple(sl.period.label for sl in rep.trend) == months and all(f">{m}<" in trend for m in months)
    assert [sl.whole()["on_time_respond"].value for sl in rep.trend] == [None, None, None, None, 0.5, 7 / 11]
    assert trend.count("<path ") == 2
    # resolved in October by business hours: 7200 -> 1-4h; 16200, 19800, 21600, 21600, 23400 -> 4-8h; 36000 -> 8-24h
    assert dict(rep.histogram) == {"0-1h": 0, "1-4h": 1, "4-8h": 5, "8-24h": 1, "24-72h": 0, "72-168h": 0, ">168h": 0}
    # causes of October's incidents: I3 machine, I8 method, I9 man, I12 material (one each)
    assert sorted(rep.pareto) == [("machine", 1), ("man", 1), ("material", 1), ("method", 1)]
    assert [b for b in ("Man", "Machine", "Method", "Material") if f">{b}<" in pareto] == [
        "Man", "Machine", "Method", "Material"]
    # recurrence: 1203 (I2, I5), desk (I1, I10), lift (I3, I8), lobby (I6, I7) one repeat each
    assert {p: r for p, _n, r in rep.recurrence_by_place if r} == {"1203": 1, "desk": 1, "lift": 1, "lobby": 1}
    assert ">1 / 2 incidents<" in places
    # the problem list: open first (pending before in progress), then resolved, with owners and due dates
    lines = re.findall(r"<tr><td>(INC-\d+)</td><td>([^<]*)</td>", html)
    # closed: I1 I2 I3 I6 I7 I9 I10; analysing or acting: I8 I12; reported: I5 I11 (rejected I4 left out)
    assert dict(rep.problem_counts) == {"resolved": 7, "in progress": 2, "pending": 2}
    statuses = [s for _, s in lines]
    assert statuses == sorted(statuses, key=["pending", "in progress", "resolved"].index)
    assert (ids["I11"], "pending") in lines and (ids["I12"], "in progress") in lines
    i12 = next(p for p in rep.problems if p.incident_id == ids["I12"])
    assert (i12.owner, i12.due.isoformat()) == ("Owner", "2026-10-19T16:00:00+00:00")  # its earliest open action
    assert "resolved 7 · in progress 2 · pending 2" in html


def test_html_in_chinese_names_the_branches_and_labels(report):
    rep, _ = report
    html = render_html(rep, lang="zh")
    for text in ("按月及时率", "原因帕累托（6M）", "各地点再发", "问题清单", ">人<", ">机<", ">法<", ">料<",
                 "时长按工作时间计算"):
        assert text in html, text
    assert "Durations are business" not in html


def test_csv_columns_and_views(report):
    rep, _ = report
    buf = io.StringIO()
    render_csv(rep, buf)
    records = list(csv.DictReader(io.StringIO(buf.getvalue())))
    assert list(records[0])[:11] == ["view", "period", "group", "kpi", "unit", "value", "n", "numerator",
                                     "denominator", "low_confidence", "not_as_of"]
    assert len(records) == len(list(rows(rep)))
    views = {(r["view"], r["period"]) for r in records}
    assert views == {("period", "2026-10"), ("previous", "2026-09"), ("last_year", "2025-10"), ("by team", "2026-10")}
    backlog = next(r for r in records if (r["view"], r["kpi"]) == ("period", "backlog"))
    assert (backlog["value"], backlog["extra.age 7-30d"]) == ("4", "3")


def test_empty_charts_say_no_data():
    from qflow_assess import _svg

    svg = _svg.bars([("a", 0)], title="t", empty="no data")
    assert ">no data<" in svg and "<rect" not in svg
    assert ">无数据<" in _svg.hbars([], title="t", empty="无数据")


def test_slices_show_the_names_people_know_in_the_rulesets_order(report):
    from qflow_assess._render import render_text

    rep, _ = report
    assert rep.names["team"] == {"front-office": "Front office", "housekeeping": "Housekeeping",
                                 "engineering": "Engineering"}
    out = io.StringIO()
    render_text(rep, out, width=160)
    table = out.getvalue().split("by team")[1]
    assert [line.split("│")[0].strip() for line in table.splitlines() if "│" in line] == [
        "Front office", "Housekeeping", "Engineering"]
    html = render_html(rep)
    assert re.findall(r'<tr><td title="([^"]+)">([^<]+)</td>', html) == [
        ("front-office", "Front office"), ("housekeeping", "Housekeeping"), ("engineering", "Engineering")]
    # machines keep the ids
    assert {r["group"] for r in rows(rep) if r["view"] == "by team"} == {"front-office", "housekeeping", "engineering"}


def test_durations_read_to_the_minute_beyond_a_day():
    from qflow_assess._format import duration

    seconds = (None, 0, 45, 3599, 3600, 3900, 86400, 86400 + 300, 86400 + 5 * 3600, 2 * 86400 - 60, 2 * 86400 - 1,
               9 * 86400 + 3 * 3600 + 7 * 60)
    assert [duration(s) for s in seconds] == ["—", "0s", "45s", "59m", "1h", "1h05m", "1d", "1d0h05m", "1d5h",
                                              "1d23h59m", "1d23h59m", "9d3h07m"]
