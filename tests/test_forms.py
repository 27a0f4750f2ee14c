"""The process's forms filled from the event log (anomaly report, cause analysis with
a drawn fishbone, action ledger, verification sheet), on the history of test_kpis."""

from __future__ import annotations

import re

import openpyxl
import pytest

from qflow import InputError
from qflow_assess._forms import render_form
from tests.test_kpis import _report, at, build


@pytest.fixture(scope="module")
def desk():
    return build()


def cells(html: str) -> list[str]:
    return re.findall(r"<t[hd]>([^<]*)</t[hd]>", html)


def test_report_form_states_what_when_where_and_whose(desk):
    engine, ids = desk
    html = render_form(engine, "report", incident=ids["I7"])
    c = cells(html)
    # London time: reported 24 Oct 23:30 UTC is 25 Oct 00:30 BST
    assert c[c.index("Reported") + 1] == "2026-10-25 00:30"
    assert c[c.index("Place") + 1] == "lobby" and c[c.index("Severity") + 1] == "high"
    assert c[c.index("Owner") + 1] == "Wang"  # reassigned
    assert c[c.index("Stage") + 1] == "closed"
    # 24x7: acknowledge 15m and respond 1h later, still BST; resolve 8 real hours after 00:30 BST is
    # 07:30 GMT: the wall clock shows only 7 of them (DST ended at 01:00 UTC)
    assert c[c.index("Clock"):c.index("Clock") + 8] == ["Clock", "Due", "acknowledge", "2026-10-25 00:45",
                                                        "respond", "2026-10-25 01:30", "resolve", "2026-10-25 07:30"]


def test_cause_sheet_draws_the_fishbone_with_the_cause_on_its_branch(desk):
    engine, ids = desk
    html = render_form(engine, "cause", incident=ids["I8"], lang="zh")
    assert "<h1>原因分析表 — " in html and "<h2>鱼骨图</h2>" in html
    svg = html[html.index("<svg"):html.index("</svg>")]
    for branch in ("人", "机", "料", "法", "环", "测"):
        assert f'font-weight="600">{branch}</text>' in svg
    assert 'font-weight="700">method cause</text>' in svg  # confirmed: bold
    assert cells(html)[5:10] == ["method cause", "fishbone", "method", "✓", "—"]


def test_action_ledger_and_verification_sheet(desk):
    engine, ids = desk
    html = render_form(engine, "actions", incident=ids["I12"])
    c = cells(html)
    rows = [c[i:i + 9] for i in range(9, len(c) - 8, 9)][:3]
    assert [r[0] for r in rows] == ["A-1 fix A-1", "A-2 fix A-2", "A-3 fix A-3"]
    assert [r[7] for r in rows] == ["planned", "planned", "cancelled"]
    assert rows[0][3] == "2026-10-19 17:00"  # due 16:00 UTC, 17:00 in London (BST)
    html = render_form(engine, "verification", incident=ids["I8"])
    c = cells(html)
    assert c[c.index("Result") + 1] == "ineffective" and c[c.index("Verifier") + 1] == "quality"
    assert "<p class=\"sign\">Signature / date: ____________________</p>" in html


def test_forms_of_a_period_as_a_workbook(desk, tmp_path):
    engine, ids = desk
    path = tmp_path / "ledger.xlsx"
    assert render_form(engine, "actions", period="2026-09", fmt="xlsx", path=str(path), lang="zh") is None
    wb = openpyxl.load_workbook(path)
    assert wb.sheetnames == [ids["P1"], ids["P2"]]
    ws = wb[ids["P1"]]
    assert ws["A1"].value == f"整改措施跟踪台账 — {ids['P1']}"
    assert [c.value for c in ws[4]][:4] == ["措施", "类型", "责任人", "期限"]
    assert ws["A5"].value == "无记录"


def test_unknown_form_and_incident():
    engine, _ = build(history=[(at(10, 5, 9), "Q", _report("room", "1203"))])
    with pytest.raises(InputError) as err:
        render_form(engine, "minutes", incident="INC-1")
    assert str(err.value) == "unknown form 'minutes'; the forms are: report, cause, actions, verification"
    with pytest.raises(InputError) as err:
        render_form(engine, "report", incident="INC-7")
    assert str(err.value) == "no incident 'INC-7' in this store"
