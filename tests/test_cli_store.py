"""qflow db, import, ls and show against a real SQLite file."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from qflow.cli import main

ROOT = Path(__file__).resolve().parents[1]
RULESET = str(ROOT / "rulesets/hotel-front-desk.yaml")
NOW = "2026-11-24T09:00:00+08:00"
#: After the last report of the shipped incidents file: an intake before a report is refused.
AFTER_ALL = "2026-11-26T09:00:00+08:00"


def run(*argv: str) -> tuple[int, str, str]:
    import sys

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = main(list(argv))
    finally:
        sys.stdout, sys.stderr = old
    return status, out.getvalue(), err.getvalue()


@pytest.fixture
def url(tmp_path, monkeypatch):
    monkeypatch.delenv("QFLOW_STORE", raising=False)
    return f"sqlite:///{tmp_path / 'site.sqlite3'}"


def _made(url: str) -> str:
    """*url* with an empty store made at it (the read commands refuse a missing one)."""
    from qflow_sqlite import SQLiteStore, parse_url

    SQLiteStore(parse_url(url)[0]).close()
    return url


def _lines(tmp_path: Path, *lines: str) -> str:
    path = tmp_path / "in.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return str(path)


GOOD = json.dumps({"external_id": "crm-1", "channel": "phone", "category": "complaint", "title": "邻房喧哗",
                   "description": "隔壁喧哗", "dedup_key": "1512-noise"}, ensure_ascii=False)


def test_import_records_good_lines_and_lists_the_rejected_ones(tmp_path, url):
    path = _lines(tmp_path, GOOD, "{not json", json.dumps({"channel": 5}), GOOD,
                  json.dumps({"channel": "email", "category": "complaint", "dedup_key": "1512-noise"}))
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert status == 1
    assert out == (f"imported 1 incident from {path} into {url} "
                   "(1 attached to open incidents, 1 retries of recorded ones)\n")
    assert err.splitlines() == [
        f"{path}:2:1: QF401 not valid JSON: Expecting property name enclosed in double quotes at column 2",
        f"{path}:3:1: QF402 expected text, got the number 5 (put the value in quotes) @ $.channel",
        "qflow: 2 lines rejected: 2, 3; fix them and import those lines again",
    ]
    status, out, _ = run("ls", "--store", url, "--format", "json")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["id"], r["reports"]) for r in rows] == [("INC-1", 2)]


def test_ls_filters_and_show_prints_the_timeline(tmp_path, url):
    incidents = str(ROOT / "rulesets/hotel-front-desk.incidents.jsonl")
    assert run("import", incidents, RULESET, "--store", url, "--now", AFTER_ALL)[0] == 0
    status, out, _ = run("ls", "--store", url, "--format", "json", "--severity", "critical")
    rows = [json.loads(line) for line in out.splitlines()]
    assert rows and {r["severity"] for r in rows} == {"critical"}
    _, out, _ = run("ls", "--store", url, "--format", "json", "--overdue", "--now", "2026-11-24T02:31:00+08:00")
    overdue = [json.loads(line) for line in out.splitlines()]
    assert [r["id"] for r in overdue][:2] == ["FD-20261124-01", "FD-20261124-02"]
    # What makes each overdue: its clocks due before --now (the smoke alarm's respond, 15m)
    assert [(r["id"], r["overdue"]) for r in overdue][:2] == [
        ("FD-20261124-01", [{"clock": "respond", "due": "2026-11-24T01:40+08:00"}]),
        ("FD-20261124-02", [{"clock": "respond", "due": "2026-11-24T02:30+08:00"}])]
    _, table, _ = run("ls", "--store", url, "--overdue", "--now", "2026-11-24T02:31:00+08:00", "--limit", "2")
    header, *lines = table.splitlines()
    start, end = header.index("overdue since"), header.index("title")  # columns padded by characters
    assert [line[start:end].strip() for line in lines[:2]] == [
        "respond 2026-11-24T01:40+08:00", "respond 2026-11-24T02:30+08:00"]
    _, table, _ = run("ls", "--store", url, "--open", "--team", "security")
    assert table.splitlines()[0].split() == ["id", "stage", "severity", "team", "owner", "reported_at",
                                             "respond_by", "title"]
    status, out, _ = run("show", "FD-20261124-02", "--store", url)
    assert status == 0
    lines = out.splitlines()
    assert lines[0].startswith("FD-20261124-02  reported  critical  team security")
    assert lines[2] == "timeline (times in UTC+08:00):"
    assert lines[3].split()[:3] == ["1", "2026-11-26T09:00:00+08:00", "IncidentReported"]
    assert "ruleset hotel-front-desk@" in lines[3]
    assert lines[5].split()[2] == "DecisionMade"


def test_show_of_an_unknown_id_says_how_to_list(url):
    status, _, err = run("show", "INC-9", "--store", _made(url))
    assert status == 2
    assert err == (f"qflow: error: no incident 'INC-9' in {url}\n"
                   f"hint: list them with 'qflow ls --store {url}'\n")


def test_db_upgrade_and_backup(tmp_path, url):
    assert run("db", "upgrade", "--store", _made(url)) == (0, f"{url}: schema version 6, up to date\n", "")
    dest = tmp_path / "copy.sqlite3"
    assert run("db", "backup", "--store", url, str(dest)) == (0, f"{url}: backed up to {dest}\n", "")
    status, _, err = run("db", "backup", "--store", url, str(dest))
    assert status == 2
    assert err.splitlines()[0] == f"qflow: error: cannot back up to {dest}: the file exists; give a new path"


def test_the_store_comes_from_the_environment(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'env.sqlite3'}"
    monkeypatch.setenv("QFLOW_STORE", url)
    path = _lines(tmp_path, GOOD)
    assert run("import", path, RULESET, "--now", NOW)[:2] == (
        0, f"imported 1 incident from {path} into {url} (0 attached to open incidents, 0 retries of recorded ones)\n")
    assert run("db", "upgrade") == (0, f"{url}: schema version 6, up to date\n", "")


def test_a_file_that_is_not_a_store_is_a_usage_error(tmp_path):
    bad = tmp_path / "notes.txt"
    bad.write_text("hello, not a database\n" * 100)
    status, _, err = run("ls", "--store", f"sqlite:///{bad}")
    assert status == 2
    assert err.splitlines()[0] == (f"qflow: error: {bad} is damaged or not a qflow store: file is not a database; "
                                   "give the path of a qflow store or of a new file; to restore a damaged store, "
                                   "stop every qflow process using it, move it away with its -wal and -shm files, "
                                   "and copy a backup made by 'qflow db backup' to its path")


@pytest.mark.parametrize("argv", [
    ("ls",), ("show", "INC-1"), ("db", "upgrade"), ("db", "backup", "DEST"),
    ("worker", RULESET, "--once"), ("risks", RULESET), ("confirm", RULESET, "INC-1", "--by", "王芳"),
    ("report", RULESET, "--period", "2026-11"),
])
def test_commands_that_read_a_store_refuse_a_missing_file_and_make_none(tmp_path, url, argv):
    path = tmp_path / "site.sqlite3"
    argv = tuple(str(tmp_path / "copy.sqlite3") if a == "DEST" else a for a in argv)
    status, out, err = run(*argv, "--store", url)
    assert (status, out) == (2, "")
    assert err.splitlines()[0] == (f"qflow: error: no store at {path} (the file does not exist); check the path, "
                                   "or create the store with 'qflow import' (or 'qflow demo')")
    assert not path.exists() and not (tmp_path / "copy.sqlite3").exists()


def test_an_empty_file_is_no_store_either_and_stays_empty(tmp_path, url):
    path = tmp_path / "site.sqlite3"
    path.touch()
    status, _, err = run("ls", "--store", url)
    assert status == 2
    assert err.splitlines() == [f"qflow: error: no store at {path} (the file is empty); check the path, or create "
                                "the store with 'qflow import' (or 'qflow demo')", f"hint: check --store (now {url})"]
    assert path.read_bytes() == b""


def test_a_negative_limit_is_a_usage_error(url):
    assert run("ls", "--store", _made(url), "--limit", "-1") == (
        2, "", "qflow: error: argument --limit must be at least 1\nhint: leave it out to list every incident\n")


def test_import_makes_the_store_it_is_given(tmp_path, url):
    assert run("import", _lines(tmp_path, GOOD), RULESET, "--store", url, "--now", NOW)[0] == 0
    assert run("ls", "--store", url)[0] == 0


def test_import_with_its_two_files_the_wrong_way_round_says_so(tmp_path, url):
    lines = _lines(tmp_path, GOOD)
    assert run("import", RULESET, lines, "--store", url) == (
        2, "", f"qflow: error: {lines} looks like the incidents and {RULESET} like the ruleset\n"
               f"hint: the incidents file comes first: qflow import {lines} {RULESET}\n")


def test_a_database_that_does_not_answer_is_one_error_line_not_a_traceback(monkeypatch):
    # A real refused connection (nothing listens on port 1), retried without pausing.
    import qflow_postgres
    from qflow_postgres._sync import PostgresStore

    monkeypatch.setattr(qflow_postgres, "open_store",
                        lambda url, **kw: PostgresStore(qflow_postgres._target(url), retries=1, sleep=lambda s: None))
    status, out, err = run("ls", "--store", "postgresql://nobody@127.0.0.1:1/x")
    assert (status, out) == (1, "")
    assert err.splitlines()[-1] == (
        'qflow: error: the database at postgresql://nobody@127.0.0.1:1/x did not answer after 2 tries (connection '
        'failed: connection to server at "127.0.0.1", port 1 failed: Connection refused); nothing was written: '
        "check that the server runs and the URL, then try again")


def test_import_takes_a_blank_external_id_or_dedup_key_as_no_key(tmp_path, url):
    ac = {"channel": "phone", "category": "equipment", "description": "1203房空调不制冷"}
    fire = {"channel": "email", "category": "safety", "description": "厨房起火"}
    path = _lines(tmp_path, *(json.dumps({**r, "external_id": blank, "dedup_key": blank}, ensure_ascii=False)
                              for blank in ("", " ") for r in (ac, fire)))
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert (status, err) == (0, "")
    assert out == (f"imported 4 incidents from {path} into {url} "
                   "(0 attached to open incidents, 0 retries of recorded ones)\n")


def test_a_line_out_of_the_calendar_or_with_a_lone_surrogate_is_rejected_and_the_others_go_on(tmp_path, url):
    path = _lines(tmp_path, GOOD,
                  '{"description": "x", "reported_at": "9999-12-31T23:59:59+00:00"}',
                  '{"description": "bad \\ud800", "channel": "phone"}',
                  json.dumps({"channel": "email", "description": "空调", "occurred_at": "0001-01-01T00:00:00+08:00"}),
                  json.dumps({"channel": "email", "description": "前台排队"}, ensure_ascii=False))
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert status == 1
    assert out == (f"imported 2 incidents from {path} into {url} "
                   "(0 attached to open incidents, 0 retries of recorded ones)\n")
    assert err.splitlines() == [
        f"{path}:2:1: QF402 '9999-12-31T23:59:59+00:00' is out of range (use a time from the year 2 to 9998: "
        "deadlines and time zones need room before the calendar ends) @ $.reported_at",
        f"{path}:3:1: QF402 a lone surrogate (a \\ud800-\\udfff escape without its pair) is no character; "
        "send the text as UTF-8 @ $.description",
        f"{path}:4:1: QF402 '0001-01-01T00:00:00+08:00' is out of range (use a time from the year 2 to 9998: "
        "deadlines and time zones need room before the calendar ends) @ $.occurred_at",
        "qflow: 3 lines rejected: 2, 3, 4; fix them and import those lines again",
    ]


def test_a_line_reported_too_far_ahead_of_the_intake_is_rejected_and_the_others_go_on(tmp_path, url):
    path = _lines(tmp_path, GOOD,
                  json.dumps({"channel": "phone", "description": "x", "reported_at": "2026-11-24T11:00:00+08:00"}),
                  json.dumps({"channel": "email", "description": "y", "reported_at": "2026-11-24T09:03:00+08:00"}))
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert status == 1
    assert out == (f"imported 2 incidents from {path} into {url} "
                   "(0 attached to open incidents, 0 retries of recorded ones)\n")
    assert err.splitlines() == [
        f"{path}:2:1: QF402 reported_at 2026-11-24T11:00:00+08:00 is 2h ahead of qflow's clock "
        "(2026-11-24T09:00:00+08:00), more than the 5m a sender's clock may be ahead (intake.clock_skew); correct "
        "the sender's clock, or leave reported_at out to report the incident as of now @ $.reported_at",
        "qflow: 1 line rejected: 2; fix them and import those lines again",
    ]


def test_importing_a_file_again_records_nothing_twice(tmp_path, url):
    incidents = ROOT / "rulesets/hotel-front-desk.incidents.jsonl"
    assert run("import", str(incidents), RULESET, "--store", url, "--now", AFTER_ALL)[0] == 0
    status, out, err = run("import", str(incidents), RULESET, "--store", url, "--now", "2026-11-27T09:00:00+08:00")
    assert (status, err) == (0, "")
    assert out == (f"imported 0 incidents from {incidents} into {url} "
                   "(0 attached to open incidents, 40 retries of recorded ones)\n")
    first = json.loads(incidents.read_text(encoding="utf-8").splitlines()[0])
    path = _lines(tmp_path, json.dumps({**first, "place": "15楼 1514房"}, ensure_ascii=False))
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert status == 1
    assert err.splitlines()[0] == (
        f"{path}:1:1: QF402 incident FD-20261124-01 is already recorded with another report (place differs); "
        "a retry must repeat the recorded report, and a new incident needs an id of its own (or none)")
    _, out, _ = run("ls", "--store", url, "--format", "json")
    assert len(out.splitlines()) == 40


def _failing_writes(monkeypatch, fail_at: int, path: str) -> None:
    """Make the SQLite store's *fail_at*-th write fail as on a full disk."""
    from qflow_sqlite._store import SQLiteStore

    from qflow.store import StoreError

    write = SQLiteStore.write
    calls = []

    def full(self, writes):
        calls.append(len(writes))
        if len(calls) == fail_at:
            raise StoreError(f"the store {path} failed: database or disk is full; free space on the disk and "
                             "retry; what was committed before is kept")
        return write(self, writes)

    monkeypatch.setattr(SQLiteStore, "write", full)


def test_a_store_failing_part_way_says_which_lines_are_in_and_the_import_goes_on_from_there(tmp_path, url,
                                                                                             monkeypatch):
    import qflow._cli_store

    monkeypatch.setattr(qflow._cli_store, "BATCH", 2)
    lines = [json.dumps({"channel": "phone", "description": f"room {n}"}) for n in range(1, 8)]
    lines[2] = "{not json"
    path = _lines(tmp_path, *lines)
    db = url.removeprefix("sqlite:///")
    _failing_writes(monkeypatch, 2, db)
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert status == 1
    assert out == (f"imported 2 incidents from {path} into {url} "
                   "(0 attached to open incidents, 0 retries of recorded ones)\n")
    assert err.splitlines() == [
        f"{path}:3:1: QF401 not valid JSON: Expecting property name enclosed in double quotes at column 2",
        f"qflow: error: the store {db} failed: database or disk is full; free space on the disk and retry; "
        "what was committed before is kept",
        f"hint: lines 1–3 of {path} are imported (1 line rejected, listed above); once the store works again, "
        "run the same import with --from-line 4 to go on without recording them twice",
    ]
    monkeypatch.undo()
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW, "--from-line", "4")
    assert (status, err) == (0, "")
    assert out == (f"imported 4 incidents from {path} into {url} "
                   "(0 attached to open incidents, 0 retries of recorded ones)\n")
    _, out, _ = run("ls", "--store", url, "--format", "json")
    assert sorted(json.loads(r)["title"] for r in out.splitlines()) == [f"room {n}" for n in (1, 2, 4, 5, 6, 7)]


def test_a_store_failing_at_once_says_nothing_is_in(tmp_path, url, monkeypatch):
    path = _lines(tmp_path, json.dumps({"channel": "phone", "description": "room 1"}))
    db = url.removeprefix("sqlite:///")
    _failing_writes(monkeypatch, 1, db)
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW, "--from-line", "1")
    assert status == 1
    assert err.splitlines()[-1] == (f"hint: nothing from line 1 of {path} on is imported; once the store works "
                                    "again, run the same import with --from-line 1 to go on without recording "
                                    "them twice")
    status, _, err = run("import", path, RULESET, "--store", url, "--from-line", "0")
    assert (status, err) == (2, "qflow: error: argument --from-line: 0 is not a line number\n"
                                "hint: lines count from 1\n")


def test_the_summary_counts_this_imports_own_lines_while_another_writer_records(tmp_path, url, monkeypatch):
    from qflow_sqlite._store import SQLiteStore

    import qflow

    other = qflow.Engine.from_path(RULESET, store=url)
    write = SQLiteStore.write

    def busy(self, writes):
        if self is not other.store:  # another desk reports just before each of the import's writes
            other.report({"channel": "wechat", "description": "另一个前台的报告"})
        return write(self, writes)

    monkeypatch.setattr(SQLiteStore, "write", busy)
    path = _lines(tmp_path, GOOD, json.dumps({"channel": "email", "description": "邮件", "dedup_key": "1512-noise"}),
                  GOOD, json.dumps({"channel": "phone", "description": "room 2"}))
    status, out, _ = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert status == 0
    assert out == (f"imported 2 incidents from {path} into {url} "
                   "(1 attached to open incidents, 1 retries of recorded ones)\n")
    other.store.close()


@pytest.mark.parametrize("store", ["memory://", "memory:"])
def test_commands_that_record_refuse_a_store_that_keeps_nothing(tmp_path, store):
    incidents = str(ROOT / "rulesets/hotel-front-desk.incidents.jsonl")
    status, out, err = run("import", incidents, RULESET, "--store", store)
    assert (status, out) == (2, "")
    assert err == (f"qflow: error: 'qflow import' would record into {store}, which keeps nothing after the command "
                   "ends\nhint: give a store that keeps its data, e.g. --store sqlite:///qflow.sqlite3\n")
    status, _, err = run("confirm", RULESET, "INC-1", "--store", store)
    assert (status, err.splitlines()[0]) == (
        2, f"qflow: error: 'qflow confirm' would record into {store}, which keeps nothing after the command ends")
    status, _, err = run("survey", "record", "INC-1", RULESET, "--store", store, "--score", "3")
    assert (status, err.splitlines()[0]) == (
        2, f"qflow: error: 'qflow survey record' would record into {store}, which keeps nothing after the command "
           "ends")
    status, _, err = run("score", "record", RULESET, "--store", store, "--subject", "front-office",
                         "--criterion", "courtesy", "--score", "4", "--method", "mystery-guest")
    assert (status, err.splitlines()[0]) == (
        2, f"qflow: error: 'qflow score record' would record into {store}, which keeps nothing after the command "
           "ends")
    assert run("problems", RULESET, "--store", store)[0] == 0  # reading an empty store is harmless


def test_an_interrupted_import_says_which_lines_are_in_and_goes_on_from_there(tmp_path, url, monkeypatch):
    import qflow._cli_store
    from qflow_sqlite import SQLiteStore

    monkeypatch.setattr(qflow._cli_store, "BATCH", 2)
    lines = [json.dumps({"channel": "phone", "description": f"room {n}"}) for n in range(1, 8)]
    lines[2] = "{not json"
    path = _lines(tmp_path, *lines)
    write, calls = SQLiteStore.write, []

    def ctrl_c(self, writes):
        calls.append(len(writes))
        if len(calls) == 2:  # in the second batch (lines 4 and 5), as Ctrl-C or SIGTERM would
            raise KeyboardInterrupt
        return write(self, writes)

    monkeypatch.setattr(SQLiteStore, "write", ctrl_c)
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert status == 130
    assert out == (f"imported 2 incidents from {path} into {url} "
                   "(0 attached to open incidents, 0 retries of recorded ones)\n")
    assert err.splitlines() == [
        f"{path}:3:1: QF401 not valid JSON: Expecting property name enclosed in double quotes at column 2",
        "qflow: interrupted",
        f"hint: lines 1–3 of {path} are imported (1 line rejected, listed above); "
        "run the same import with --from-line 4 to go on without recording them twice",
    ]
    monkeypatch.undo()
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW, "--from-line", "4")
    assert (status, err) == (0, "")
    _, out, _ = run("ls", "--store", url, "--format", "json")
    assert sorted(json.loads(r)["title"] for r in out.splitlines()) == [f"room {n}" for n in (1, 2, 4, 5, 6, 7)]


def test_sigterm_interrupts_an_import_as_ctrl_c_does(tmp_path, url, monkeypatch):
    import os
    import signal

    from qflow_sqlite import SQLiteStore

    path = _lines(tmp_path, *(json.dumps({"channel": "phone", "description": f"room {n}"}) for n in (1, 2)))
    write, calls = SQLiteStore.write, []

    def terminated(self, writes):
        calls.append(len(writes))
        if len(calls) == 1:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler raises here, in the main thread
        return write(self, writes)

    monkeypatch.setattr(SQLiteStore, "write", terminated)
    before = signal.getsignal(signal.SIGTERM)
    status, out, err = run("import", path, RULESET, "--store", url, "--now", NOW)
    assert (status, err) == (130, f"qflow: interrupted\nhint: nothing from line 1 of {path} on is imported; "
                                  "run the same import with --from-line 1 to go on without recording them twice\n")
    assert signal.getsignal(signal.SIGTERM) == before


def test_rows_written_before_due_moments_were_recorded_are_named_until_db_upgrade_records_them(tmp_path, url):
    import sqlite3

    path = _lines(tmp_path, GOOD)
    run("import", path, RULESET, "--store", url, "--now", NOW)
    con = sqlite3.connect(tmp_path / "site.sqlite3")
    with con:  # what a store of schema version 5 upgraded to 6 holds: no due moments yet
        con.execute("UPDATE incidents SET dues = NULL")
    con.close()
    status, out, err = run("ls", "--store", url, "--overdue", "--now", "2026-12-24T09:00:00+08:00",
                           "--format", "json")
    assert (status, [json.loads(line)["id"] for line in out.splitlines()]) == (0, ["INC-1"])
    assert err == ("qflow: warning: 1 open incident written before qflow recorded the clocks' due moments: until "
                   "their next change, overdue reads their decision's deadlines, which know no pause, reset or "
                   "severity change\n"
                   f"hint: record them with 'qflow db upgrade --store {url} RULESET'\n")
    assert run("db", "upgrade", "--store", url, RULESET) == (
        0, f"{url}: schema version 6, up to date\n{url}: recorded the clocks' due moments of 1 open incident\n", "")
    status, out, err = run("ls", "--store", url, "--overdue", "--now", "2026-12-24T09:00:00+08:00",
                           "--format", "json")
    assert (status, [json.loads(line)["id"] for line in out.splitlines()], err) == (0, ["INC-1"], "")
