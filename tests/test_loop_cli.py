"""The loop from the command line, against a real SQLite store in a tmp dir."""

from __future__ import annotations

import json

import pytest

from qflow.cli import main
from tests.conftest import BASE

NOW = "2026-11-20T23:10:00+08:00"


@pytest.fixture
def site(tmp_path, monkeypatch):
    ruleset = tmp_path / "r.yaml"
    ruleset.write_text(BASE, encoding="utf-8")
    (tmp_path / "i.jsonl").write_text(json.dumps(
        {"description": "房间没有打扫", "category": "room_not_clean", "place": "1203"}, ensure_ascii=False) + "\n",
        encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    store = f"sqlite:///{tmp_path / 'site.sqlite3'}"
    assert main(["import", "i.jsonl", "r.yaml", "--store", store, "--now", NOW]) == 0
    return store


def run(capsys, *argv):
    status = main(list(argv))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_one_incident_through_the_loop(site, capsys):
    s = ("--store", site, "--now", NOW)
    steps = [
        ("confirm", "r.yaml", "INC-1", *s, "--responsibility", "human", "--owner", "李娜", "--by", "值班经理"),
        ("cause", "r.yaml", "INC-1", *s, "--id", "C-1", "--summary", "排班漏排", "--method", "five_why",
         "--why", "为什么没打扫 => 不在排班表", "--root", "为什么不在 => 排班表手工维护", "--code", "rota-gap",
         "--evidence", "photo:photos/1203.jpg", "--confirmed", "--by", "质检"),
        ("action", "add", "r.yaml", "INC-1", *s, "--id", "A-1", "--description", "系统排班", "--owner", "李娜",
         "--due", "2026-12-01T18:00:00+08:00", "--target", "30天零漏排"),
    ]
    for argv in steps:
        status, _out, err = run(capsys, *argv)
        assert (status, err) == (0, "")
    status, out, err = run(capsys, "close", "r.yaml", "INC-1", *s)
    assert (status, out) == (1, "")
    assert err == ("qflow: error: cannot close INC-1: analysing cannot move to closed; "
                   "from analysing it can move to: acting\n")
    status, out, err = run(capsys, "verify", "r.yaml", "INC-1", *s, "--result", "effective", "--metric", "repeats=0",
                           "--by", "质检")
    assert (status, err) == (1, "qflow: error: cannot verify INC-1: it is analysing, not verifying\n")
    assert run(capsys, "action", "progress", "r.yaml", "INC-1", "A-1", *s, "--note", "一半楼层", "--percent", "50")[0] == 0
    assert main(["confirm", "r.yaml", "INC-1", *s]) == 1  # already confirmed
    capsys.readouterr()
    status, out, err = run(capsys, "verify", "r.yaml", "INC-1", *s, "--result", "effective", "--metric", "repeats=0",
                           "--by", "质检")
    assert status == 1 and err == "qflow: error: cannot verify INC-1: it is analysing, not verifying\n"
    # The rest of the loop, all from the command line: act on the actions, finish them, verify, close.
    done = [run(capsys, *argv) for argv in (
        ("act", "r.yaml", "INC-1", *s, "--by", "李娜"),
        ("action", "done", "r.yaml", "INC-1", "A-1", *s),
        ("verify", "r.yaml", "INC-1", *s, "--result", "effective", "--metric", "repeats=0", "--by", "质检"),
        ("close", "r.yaml", "INC-1", *s))]
    assert [(status, err) for status, _, err in done] == [(0, "")] * 4
    assert [out.split(" (now ")[1].split(",")[0] for _, out, _ in done] == ["acting", "acting", "verifying", "closed"]
    assert done[0][1].startswith("INC-1 acting on its actions (now acting, event ")


def test_closing_with_an_open_action_is_refused_with_its_due_date(site, capsys):
    s = ("--store", site, "--now", NOW)
    for argv in [
        ("confirm", "r.yaml", "INC-1", *s),
        ("cause", "r.yaml", "INC-1", *s, "--id", "C-1", "--summary", "x", "--confirmed"),
        ("action", "add", "r.yaml", "INC-42", *s, "--id", "A-3", "--description", "d", "--owner", "o",
         "--due", "2026-12-01T18:00:00+08:00", "--target", "t"),
    ]:
        main(list(argv))
    out, err = capsys.readouterr()
    assert err == "qflow: error: no incident 'INC-42' in this store\n"
    main(["action", "add", "r.yaml", "INC-1", *s, "--id", "A-3", "--description", "d", "--owner", "o",
          "--due", "2026-12-01T18:00:00+08:00", "--target", "t"])
    main(["verify", "r.yaml", "INC-1", *s, "--result", "effective", "--metric", "repeats=0", "--by", "q"])
    out, err = capsys.readouterr()
    assert err == "qflow: error: cannot verify INC-1: it is analysing, not verifying\n"
    # acting, then verify: the open action is named with its due date in the ruleset's time zone
    from qflow import Engine, load_ruleset, make_plugin_manager

    pm = make_plugin_manager(autoload=False)
    engine = Engine(load_ruleset("r.yaml", plugins=pm), plugins=pm, store=site)
    engine.transition("INC-1", "acting")
    engine.store.close()
    status, out, err = run(capsys, "verify", "r.yaml", "INC-1", *s, "--result", "effective", "--metric", "repeats=0",
                           "--by", "q")
    assert (status, err) == (1, "qflow: error: cannot verify INC-1: action A-3 is still open, due 2026-12-01\n")
    assert run(capsys, "action", "done", "r.yaml", "INC-1", "A-3", *s)[0] == 0
    assert run(capsys, "verify", "r.yaml", "INC-1", *s, "--result", "effective", "--metric", "repeats=0",
               "--evidence", "photo:ok.jpg", "--by", "q")[1] == "INC-1 verified effective (now verifying, event 10)\n"
    assert run(capsys, "close", "r.yaml", "INC-1", *s)[1] == "INC-1 closed (now closed, event 11)\n"
    assert run(capsys, "reopen", "r.yaml", "INC-1", *s)[0] == 2  # --reason is required
    assert run(capsys, "reopen", "r.yaml", "INC-1", *s, "--reason", "又投诉了")[0] == 0


def test_verify_measure_too_early_records_nothing_and_says_there_is_not_enough_data_yet(site, capsys):
    s = ("--store", site, "--now", NOW)
    later = ("--store", site, "--now", "2026-11-22T10:00:00+08:00")
    for argv in [
        ("confirm", "r.yaml", "INC-1", *s),
        ("cause", "r.yaml", "INC-1", *s, "--id", "C-1", "--summary", "x", "--confirmed"),
        ("act", "r.yaml", "INC-1", *s),
        ("action", "add", "r.yaml", "INC-1", *s, "--id", "A-1", "--description", "d", "--owner", "o",
         "--due", "2026-12-01T18:00:00+08:00", "--target", "t"),
        ("action", "done", "r.yaml", "INC-1", "A-1", *later),
    ]:
        assert main(list(argv)) == 0
    capsys.readouterr()
    status, out, err = run(capsys, "verify", "r.yaml", "INC-1", "--store", site, "--now", "2026-11-22T11:00:00+08:00",
                           "--measure")
    assert (status, out) == (1, "")
    assert err == ("qflow: error: cannot verify INC-1: not enough data yet: no metric had data in both windows; "
                   "measure again later, or verify by hand with --result and --metric (recurrence 0 → 0 (no data))\n")
    status, out, _ = run(capsys, "show", "INC-1", "r.yaml", "--store", site)
    assert "VerificationRecorded" not in out and "verifying" not in out


def test_usage_mistakes_exit_2_with_a_hint(site, capsys):
    s = ("--store", site, "--now", NOW)
    main(["confirm", "r.yaml", "INC-1", *s])
    capsys.readouterr()
    status, out, err = run(capsys, "cause", "r.yaml", "INC-1", *s, "--id", "C-1", "--summary", "x", "--method",
                           "five_why", "--why", "no arrow")
    assert status == 2
    assert err == ("qflow: error: argument --why: 'no arrow' has no '=>'\n"
                   "hint: write 'WHY => BECAUSE', e.g. 'why not cleaned? => not on the rota'\n")
    status, out, err = run(capsys, "risks", "r.yaml", *s, "--window", "a month")
    assert status == 2 and err.startswith("qflow: error: argument --window: 'a month' is not a duration\n")
    status, out, err = run(capsys, "problems", "r.yaml", *s)
    assert (status, out) == (0, "no problem records\n")
    status, out, err = run(capsys, "risks", "r.yaml", *s)
    assert (status, out) == (0, "nothing rising over the last 30d\n")
