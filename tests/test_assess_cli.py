"""``qflow report``, ``qflow survey record``, ``qflow score record`` and ``qflow form``
through ``qflow.cli.main`` against a SQLite store holding the hand-computed history
of test_kpis (the figures asserted there come out of the database the same)."""

from __future__ import annotations

import csv
import io
import json

import openpyxl
import pytest

from qflow.cli import main
from tests.test_kpis import RULES, build

AS_OF = "2026-11-03T12:00:00Z"
CLI_RULES = RULES.replace("assessment:\n  min_n: 3\n", """assessment:
  min_n: 3
  criteria:
    attitude: {name: Service attitude, scale: [1, 5], standard: 3, category: complaint}
    hygiene: {name: Hygiene and safety, scale: [0, 10], standard: 6}
  scorecard:
    weights: {on_time_respond: 2, time_to_resolve: 1, reopen_rate: 1, nps: 1, attitude: 2, hygiene: 1}
    targets: {time_to_resolve: 4h}
""")
PERIOD_HINT = "use a month (2026-11), a quarter (2026-Q4), a year (2026) or a rolling window (30d, 90d)"


@pytest.fixture(scope="module")
def desk(tmp_path_factory):
    d = tmp_path_factory.mktemp("desk")
    rules = d / "kpi.yaml"
    rules.write_text(CLI_RULES, encoding="utf-8")
    url = f"sqlite:///{d / 'q.sqlite3'}"
    engine, ids = build(store=url, rules=CLI_RULES)
    engine.store.close()
    return str(rules), url, ids


@pytest.fixture
def fresh(tmp_path):
    """A store of its own, for the commands that write."""
    rules = tmp_path / "kpi.yaml"
    rules.write_text(CLI_RULES, encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'q.sqlite3'}"
    engine, ids = build(store=url, rules=CLI_RULES)
    engine.store.close()
    return str(rules), url, ids


def run(capsys, *argv):
    status = main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def report(capsys, desk, *more):
    rules, url, _ = desk
    return run(capsys, "report", rules, "--store", url, "--period", "2026-10", "--as-of", AS_OF, "--now", AS_OF,
               *more)


# -- qflow report ----------------------------------------------------------------------


def test_report_json_has_the_hand_computed_figures(capsys, desk):
    status, out, err = report(capsys, desk, "--format", "json")
    assert (status, err) == (0, "")
    records = json.loads(out)
    figures = {(r["view"], r["group"], r["kpi"]): r for r in records}
    assert {r["view"] for r in records} == {"period", "previous", "last_year", "by team", "by category",
                                            "by severity"}
    on_time = figures[("period", "", "on_time_respond")]
    assert (on_time["numerator"], on_time["denominator"], on_time["extra.open_breached"]) == (7, 11, 2)
    ttr = figures[("period", "", "time_to_resolve")]
    assert (ttr["value"], ttr["n"], ttr["extra.p90_calendar"]) == (21600, 7, 342000)
    assert figures[("period", "", "csat")]["value"] == 0.75
    assert figures[("period", "", "verification_effectiveness")]["low_confidence"] is True
    assert figures[("previous", "", "on_time_respond")]["value"] == 0.5
    assert figures[("by team", "housekeeping", "on_time_resolve")]["numerator"] == 2
    assert figures[("by team", "engineering", "time_to_resolve")]["value"] == 36000


def test_report_csv_columns(capsys, desk):
    status, out, _ = report(capsys, desk, "--format", "csv", "--by", "team")
    assert status == 0
    rows = list(csv.DictReader(io.StringIO(out)))
    head = out.splitlines()[0].split(",")
    assert head[:11] == ["view", "period", "group", "kpi", "unit", "value", "n", "numerator", "denominator",
                         "low_confidence", "not_as_of"]
    assert all(h.startswith("extra.") for h in head[11:]) and len(head) == len(set(head))
    row = next(r for r in rows if (r["view"], r["kpi"]) == ("period", "resolution_rate"))
    assert (row["numerator"], row["denominator"], row["value"]) == ("7", "11", str(7 / 11))
    assert {r["group"] for r in rows if r["view"] == "by team"} == {"engineering", "front-office", "housekeeping"}


def test_report_table(capsys, desk):
    status, out, _ = report(capsys, desk, "--by", "team")
    assert status == 0
    lines = out.splitlines()
    assert lines[0] == "KPI fixture desk — Period 2026-10 (as of 2026-11-03T12:00+00:00, time zone Europe/London)"
    row = next(line for line in lines if line.startswith("On-time rate: respond"))
    assert row.split("│")[1:] == ["   63.6% ", " 11 ", "    50.0% ", " +13.6 pt ", "     100.0% ", " -36.4 pt"]
    assert next(line for line in lines if line.startswith("Verification effectiveness")).split("│")[1] == " 50.0% * "
    assert "* low confidence: n < 3" in lines
    assert "Problem list: resolved 7, in progress 2, pending 2" in lines


def test_report_as_of_an_earlier_time_says_what_it_counts_as_it_stands(capsys, desk):
    rules, url, _ = desk
    status, out, err = run(capsys, "report", rules, "--store", url, "--period", "2026-10",
                           "--as-of", "2026-10-20T12:00:00Z", "--now", AS_OF, "--by", "team")
    assert (status, err) == (0, "")
    lines = out.splitlines()
    # reported by then: I1 I2 I3 I5 I6 I12 I9 (and the rejected I4); closed then: I1, I2 (closed
    # again on the 6th), I3, I6
    assert [c.strip() for c in next(ln for ln in lines if ln.startswith("Resolution rate")).split("│")[1:3]] == [
        "57.1%", "7"]
    assert next(line for line in lines if line.startswith("Customer satisfaction (CSAT) †"))
    assert [line for line in lines if line.startswith("†")] == [
        "† counted as the facts stood at 2026-11-03T12:00+00:00, not as of 2026-10-20T12:00+00:00: they keep no "
        "time of reopenings after a close; further answers, reports and hand-overs; surveys; verifications; "
        "actions planned, cancelled or rescheduled."]
    assert "Problem list: resolved 4, open 3" in lines


def test_report_html_to_a_file(capsys, desk, tmp_path):
    path = tmp_path / "r.html"
    status, out, err = report(capsys, desk, "--format", "html", "-o", str(path), "--lang", "zh")
    assert (status, out, err) == (0, "", f"wrote {path}\n")
    html = path.read_text(encoding="utf-8")
    assert html.startswith('<!doctype html><html lang="zh-CN">')
    assert "响应及时率" in html and "问题清单" in html


def test_report_xlsx_has_number_cells_frozen_headers_and_a_sheet_per_view(capsys, desk, tmp_path):
    path = tmp_path / "r.xlsx"
    status, _, err = report(capsys, desk, "--format", "xlsx", "-o", str(path))
    assert (status, err) == (0, f"wrote {path}\n")
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == ["Report", "Figures", "by team", "by category", "by severity", "Problem list",
                             "Scorecards", "Definitions"]
    for ws in wb.worksheets:
        assert ws.freeze_panes == "A2", ws.title
        assert ws["A1"].font.bold
    figures = wb["Figures"]
    header = [c.value for c in figures[1]]
    assert header == ["KPI", "unit", "value", "n", "numerator", "denominator", "previous", "a year ago",
                      "low confidence", "not as of"]
    by_name = {r[0].value: r for r in figures.iter_rows(min_row=2)}
    rate = by_name["On-time rate: respond"]
    assert (rate[2].value, rate[2].number_format, rate[3].value, rate[4].value, rate[5].value) == (
        pytest.approx(7 / 11), "0.0%", 11, 7, 11)
    assert rate[6].value == 0.5 and rate[8].value is False
    ttr = by_name["Time to resolve"]
    assert (ttr[1].value, ttr[2].value, ttr[2].data_type) == ("hours (business)", 6.0, "n")
    problems = wb["Problem list"]
    assert [c.value for c in problems[1]][:3] == ["incident", "status", "stage"]
    reported = [r[7].value for r in problems.iter_rows(min_row=2)]
    assert reported and all(r.__class__.__name__ == "datetime" for r in reported)
    team = wb["by team"]
    assert [c.value for c in team[1]][-1] == "low confidence"
    hk = next(r for r in team.iter_rows(min_row=2) if r[0].value == "housekeeping")
    assert all(c.data_type == "n" for c in hk[1:-1] if c.value is not None)
    # low confidence is flagged in every format, the workbook's slices too (min_n 3). Housekeeping
    # (I2 I5 I9 I12): acknowledged I5; resolved I2 I9 (time to resolve, first contact, reopen);
    # surveyed I9 (CSAT, NPS); one action due (I12 A-1); none verified. Answered: I2 I9 I12 (3, enough).
    header = [c.value for c in team[1]]
    csat = hk[header.index("Customer satisfaction (CSAT)")]
    assert (csat.value, csat.font.i) == (1, True)
    assert hk[-1].value == ("time_to_acknowledge, time_to_resolve, first_contact_resolution, reopen_rate, csat, "
                            "nps, action_on_time, verification_effectiveness")
    rate = hk[header.index("Resolution rate")]
    assert (rate.value, rate.font.i) == (0.5, False)


def test_a_rolling_window_is_named_by_its_last_day_in_every_format(capsys, desk, tmp_path):
    rules, url, _ = desk
    window = ("report", rules, "--store", url, "--period", "30d", "--as-of", AS_OF, "--now", AS_OF, "--by", "team")
    # 3 November 12:00 in London: the window is 5 October to 3 November, both days included
    _, out, _ = run(capsys, *window)
    assert out.splitlines()[0] == ("KPI fixture desk — Period 30 days to 2026-11-03 (as of 2026-11-03T12:00+00:00, "
                                   "time zone Europe/London)")
    labels = {"period": "30 days to 2026-11-03", "previous": "30 days to 2026-10-04",
              "last_year": "30 days to 2025-11-03", "by team": "30 days to 2026-11-03"}
    _, out, _ = run(capsys, *window, "--format", "json")
    assert {r["view"]: r["period"] for r in json.loads(out)} == labels
    _, out, _ = run(capsys, *window, "--format", "csv")
    assert {r["view"]: r["period"] for r in csv.DictReader(io.StringIO(out))} == labels
    _, out, _ = run(capsys, *window, "--format", "html")
    assert "<title>KPI fixture desk 30 days to 2026-11-03</title>" in out
    assert '<div class="meta">Period <b>30 days to 2026-11-03</b> · as of 2026-11-03T12:00+00:00' in out
    path = tmp_path / "r.xlsx"
    run(capsys, *window, "--format", "xlsx", "-o", str(path))
    about = {r[0].value: r[1].value for r in openpyxl.load_workbook(path)["Report"].iter_rows(min_row=2)}
    assert {k: about[k] for k in ("Period", "previous", "a year ago", "as of")} == {
        "Period": "30 days to 2026-11-03", "previous": "30 days to 2026-10-04", "a year ago": "30 days to 2025-11-03",
        "as of": "2026-11-03T12:00+00:00"}


@pytest.mark.parametrize(("args", "message"), [
    (["--period", "2026-13"], f"qflow: error: argument --period: '2026-13' has no month 13; {PERIOD_HINT}\n"),
    (["--period", "soon"], f"qflow: error: argument --period: 'soon' is not a period; {PERIOD_HINT}\n"),
    (["--period", "2026-10", "--by", "team,shoe"],
     "qflow: error: cannot slice by 'shoe'\nhint: use some of: team, owner, category, severity, channel, place\n"),
    (["--period", "2026-10", "--format", "xlsx"], "qflow: error: an XLSX workbook needs a file\nhint: add -o report.xlsx\n"),
    (["--period", "2026-10", "--as-of", "yesterday"],
     "qflow: error: argument --as-of: 'yesterday' is not a date and time\n"
     "hint: use ISO 8601 such as 2026-11-20T23:10:00+08:00\n"),
    (["--period", "2026-10", "--now", "today"],
     "qflow: error: argument --now: 'today' is not a date and time\n"
     "hint: use ISO 8601 such as 2026-11-20T23:10:00+08:00\n"),
])
def test_report_usage_errors(capsys, desk, args, message):
    rules, url, _ = desk
    status, out, err = run(capsys, "report", rules, "--store", url, *args)
    assert (status, out, err) == (2, "", message)


# -- qflow survey record ---------------------------------------------------------------


def test_survey_record_counts_in_the_next_report(capsys, fresh):
    rules, url, ids = fresh
    i10 = ids["I10"]
    status, out, err = run(capsys, "survey", "record", i10, rules, "--store", url, "--score", "2", "--nps", "3",
                           "--comment", "slow refund", "--channel", "sms")
    assert (status, out, err) == (0, f"recorded a survey on {i10} (event 9)\n", "")
    status, out, _ = report(capsys, fresh, "--format", "json", "--by", "team")
    figures = {(r["view"], r["group"], r["kpi"]): r for r in json.loads(out)}
    # 3 satisfied of 5 now; NPS: 2 promoters, 2 detractors of 4
    assert (figures[("period", "", "csat")]["numerator"], figures[("period", "", "csat")]["denominator"]) == (3, 5)
    assert figures[("period", "", "nps")]["value"] == 0
    status, _, _ = run(capsys, "survey", "record", i10, rules, "--store", url, "--score", "5", "--self-rated")
    status, out, _ = report(capsys, fresh, "--format", "json", "--by", "team")
    assert {(r["view"], r["kpi"]): r for r in json.loads(out)}[("period", "csat")]["denominator"] == 5


def test_survey_record_takes_the_ruleset_first_like_every_command_on_an_incident(capsys, fresh):
    # verify, confirm, cause ... take RULESET INCIDENT, and score record takes RULESET:
    # survey record too, with --by for the actor. The order it had (ID RULESET) and
    # --actor still work, so scripts written for it keep running.
    rules, url, ids = fresh
    i10 = ids["I10"]
    status, out, err = run(capsys, "survey", "record", rules, i10, "--store", url, "--score", "4", "--by", "desk")
    assert (status, out, err) == (0, f"recorded a survey on {i10} (event 9)\n", "")
    status, out, err = run(capsys, "survey", "record", i10, rules, "--store", url, "--score", "5", "--actor", "kiosk")
    assert (status, out, err) == (0, f"recorded a survey on {i10} (event 10)\n", "")
    surveys = [(e.data["score"], e.actor) for e in _events(url, i10) if e.type == "SurveyRecorded"]
    assert surveys == [(4, "desk"), (5, "kiosk")]
    status, out, err = run(capsys, "survey", "record", "nowhere.yaml", i10, "--store", url, "--score", "4")
    assert (status, out) == (2, "")
    assert err == "qflow: error: no such ruleset file: 'nowhere.yaml'\nhint: check the path and the current directory\n"


@pytest.mark.parametrize(("args", "message"), [
    (["INC-99", "--score", "4"], "no incident 'INC-99' in this store"),
    (["I5"], "a survey of I5 needs a score (1-5) or an NPS answer (0-10)"),
    (["I5", "--score", "7"], "score 7 is outside the scale 1-5"),
    (["I5", "--score", "4.5", "--scale", "4"], "score 4.5 is outside the scale 1-4"),
    (["I5", "--nps", "11"], "an NPS answer is a whole number from 0 to 10, not 11"),
    (["I5", "--score", "3", "--scale", "1"], "a survey scale must be a whole number of at least 2, not 1"),
])
def test_survey_record_errors_write_nothing(capsys, desk, args, message):
    rules, url, ids = desk
    iid = ids.get(args[0], args[0])
    message = message.replace("I5", iid)
    before = _events(url, ids["I5"])
    status, out, err = run(capsys, "survey", "record", iid, rules, "--store", url, *args[1:])
    assert (status, out, err) == (2, "", f"qflow: error: {message}\nhint: check the incident id and the values\n")
    assert _events(url, ids["I5"]) == before


def _events(url, iid):
    from qflow import make_plugin_manager
    from qflow.engine import open_store

    store = open_store(url, make_plugin_manager())
    try:
        return store.events(iid)
    finally:
        store.close()


# -- qflow score record ----------------------------------------------------------------


def test_score_record_and_a_finding_below_standard_opens_an_inspection_incident(capsys, fresh):
    rules, url, ids = fresh
    status, out, err = run(capsys, "score", "record", rules, "--store", url, "--subject", "housekeeping",
                           "--criterion", "attitude", "--score", "4", "--method", "inspection", "--period", "2026-10")
    assert (status, out, err) == (0, "recorded S-1: housekeeping attitude 4 (inspection)\n", "")
    status, out, err = run(capsys, "score", "record", rules, "--store", url, "--subject", "housekeeping",
                           "--criterion", "attitude", "--score", "2", "--method", "mystery_shopper", "--place", "1203",
                           "--assessor", "MS-7", "--note", "no greeting", "--period", "2026-10")
    assert (status, err) == (0, "")
    assert out == ("recorded S-2: housekeeping attitude 2 (mystery_shopper)\n"
                   "below standard: opened INC-16 through the inspection channel\n")
    from qflow import make_plugin_manager
    from qflow.engine import open_store

    store = open_store(url, make_plugin_manager())
    try:
        state = store.get("INC-16")
        _, doc = store.document("assessment_score", "S-2")
    finally:
        store.close()
    inc = state.incident
    assert (inc.channel, inc.category, inc.place, inc.title) == ("inspection", "complaint", "1203",
                                                                 "Service attitude: 2 below standard 3")
    assert inc.description == ("Service attitude scored 2 (standard 3, scale 1-5) by mystery_shopper (MS-7): "
                               "no greeting")
    assert dict(inc.extra) == {"score_id": "S-2", "subject": "housekeeping"}
    assert doc["incident_id"] == "INC-16" and doc["period"] == "2026-10"


@pytest.mark.parametrize(("args", "message"), [
    (["--subject", "housekeepin", "--criterion", "attitude", "--score", "2", "--method", "inspection"],
     "unknown team 'housekeepin' (did you mean 'housekeeping'?)"),
    (["--subject", "housekeeping", "--criterion", "atitude", "--score", "2", "--method", "inspection"],
     "unknown criterion 'atitude' (did you mean 'attitude'?)"),
    (["--subject", "housekeeping", "--criterion", "attitude", "--score", "9", "--method", "inspection"],
     "score 9 for attitude is outside its scale 1-5"),
    (["--subject", "housekeeping", "--criterion", "attitude", "--score", "2", "--method", "audit"],
     "unknown method 'audit' (the methods are: expert_review, inspection, mystery_shopper)"),
    (["--subject", "housekeeping", "--criterion", "attitude", "--score", "2", "--method", "inspection",
      "--period", "Oct"], f"the score's period: 'Oct' is not a period; {PERIOD_HINT}"),
    (["--subject", "housekeeping", "--criterion", "attitude", "--score", "2", "--method", "inspection",
      "--period", "30d"], "a score is for a month, a quarter or a year, not a rolling window like '30d'"),
])
def test_score_record_errors_write_nothing(capsys, desk, args, message):
    rules, url, _ = desk
    status, out, err = run(capsys, "score", "record", rules, "--store", url, *args)
    assert (status, out, err) == (2, "", f"qflow: error: {message}\nhint: see the assessment section of the ruleset\n")
    from qflow import make_plugin_manager
    from qflow.engine import open_store

    store = open_store(url, make_plugin_manager())
    try:
        assert store.documents("assessment_score") == [] and store.get("INC-16") is None
    finally:
        store.close()


# -- qflow form ------------------------------------------------------------------------

TITLES = {"report": ("Anomaly report form", "异常报告单"), "cause": ("Cause analysis sheet", "原因分析表"),
          "actions": ("Corrective action tracking ledger", "整改措施跟踪台账"),
          "verification": ("Effect verification sheet", "效果验证表")}


@pytest.mark.parametrize("kind", list(TITLES))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_form_html_for_one_incident(capsys, desk, kind, lang):
    rules, url, ids = desk
    status, out, err = run(capsys, "form", kind, rules, "--store", url, "--incident", ids["I3"], "--lang", lang)
    assert (status, err) == (0, "")
    title = TITLES[kind][lang == "zh"]
    assert out.startswith(f'<!doctype html><html lang="{"zh-CN" if lang == "zh" else "en"}"><head><meta charset="utf-8">'
                          f"<title>{title}</title>")
    assert f"<h1>{title}" in out and ids["I3"] in out
    assert "<script" not in out and "http://" not in out.replace("http://www.w3.org/2000/svg", "")
    if kind == "cause":
        assert "<svg" in out and ">machine cause<" in out  # the fishbone, the cause on its branch
    if kind == "actions":
        assert "fix A-1" in out and "no repeat in 30 days" in out
    if kind == "verification":
        assert ("effective" in out) and ("quality" in out)


@pytest.mark.parametrize("kind", list(TITLES))
@pytest.mark.parametrize("lang", ["en", "zh"])
def test_form_xlsx_for_a_period(capsys, desk, tmp_path, kind, lang):
    rules, url, ids = desk
    path = tmp_path / f"{kind}.xlsx"
    status, out, err = run(capsys, "form", kind, rules, "--store", url, "--period", "2026-10", "--lang", lang,
                           "--format", "xlsx", "-o", str(path))
    assert (status, out, err) == (0, "", f"wrote {path}\n")
    wb = openpyxl.load_workbook(path)
    october = [ids[k] for k in ("I1", "I2", "I3", "I4", "I5", "I6", "I7", "I8", "I9", "I10", "I11", "I12")]
    assert sorted(wb.sheetnames) == sorted(october)
    ws = wb[ids["I3"]]
    assert ws["A1"].value == f"{TITLES[kind][lang == 'zh']} — {ids['I3']}"
    assert ws.freeze_panes == "A2"


@pytest.mark.parametrize(("args", "message"), [
    (["--incident", "INC-99"], "qflow: error: no incident 'INC-99' in this store\nhint: check the incident id or the period\n"),
    (["--period", "2026-13"],
     f"qflow: error: '2026-13' has no month 13; {PERIOD_HINT}\nhint: check the incident id or the period\n"),
    (["--period", "2026-10", "--format", "xlsx"], "qflow: error: an XLSX form needs a file\nhint: add -o form.xlsx\n"),
])
def test_form_errors(capsys, desk, args, message):
    rules, url, _ = desk
    status, out, err = run(capsys, "form", "cause", rules, "--store", url, *args)
    assert (status, out, err) == (2, "", message)
