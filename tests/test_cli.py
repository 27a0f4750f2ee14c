"""The ``qflow`` command line: check, decide, explain, demo, and its errors.

End-to-end tests run ``python -m qflow`` in a subprocess from the repository root;
the others call ``main([...])`` in-process. Every test passes ``--now``: none reads
the wall clock.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import qflow
from qflow.cli import _build_parser
from qflow import _render
from qflow.cli import main

#: Every command, built-in and from plugins: the usage hints count them.
N_COMMANDS = len(_build_parser(qflow.make_plugin_manager())[1])

REPO = Path(__file__).resolve().parents[1]
DATA = "tests/data/cli"
DESK = f"{DATA}/desk.yaml"
BROKEN = f"{DATA}/broken.yaml"
INCIDENTS = f"{DATA}/incidents.jsonl"
NOW = "2026-11-21T08:00:00+08:00"

GOLD_CALL = {"id": "A-1", "reported_at": "2026-11-20T23:10:00+08:00", "channel": "phone",
             "category": "complaint", "customer": {"tier": "gold"}, "description": "前台办理入住等待超过30分钟"}

BROKEN_DIAGNOSTICS = [
    f"{BROKEN}:6:19: QF105 '1hr' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m)"
    " @ $.severities.high.respond",
    f"{BROKEN}:10:20: QF201 unknown team 'enginering' (did you mean 'engineering'?)"
    " @ $.route[0].assign.team (rule 'kaput')",
]


def run(*args: str, stdin: str | None = None, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONIOENCODING": "utf-8"}
    return subprocess.run([sys.executable, "-m", "qflow", *args], cwd=cwd, input=stdin, capture_output=True,
                          text=True, encoding="utf-8", env=env, timeout=60)


@pytest.fixture(autouse=True)
def _at_repo(monkeypatch):
    """In-process tests see the same relative paths as the subprocess ones."""
    monkeypatch.chdir(REPO)


def ref_of(path: str) -> str:
    return qflow.load_ruleset(path, plugins=qflow.make_plugin_manager(autoload=False)).ref


@pytest.fixture
def ref() -> str:
    # The hash covers the path as given (relative to the repository root here).
    return ref_of(DESK)


def decided(line: int, id_: str | None, category: str | None, severity: str | None, team: str | None,
            responsibility: str | None, respond_by: str, resolve_by: str, matched: list[str], ref: str) -> dict:
    return {"line": line, "id": id_, "category": category, "severity": severity, "priority": None,
            "team": team, "owner": None, "responsibility": responsibility, "respond_by": respond_by,
            "resolve_by": resolve_by, "matched": matched, "ruleset": ref}


# ---------------------------------------------------------------------------
# qflow check
# ---------------------------------------------------------------------------


def test_check_ok_end_to_end():
    result = run("check", DESK)
    assert (result.returncode, result.stdout, result.stderr) == (
        0, f"{DESK}: ok (9 rules, 3 teams, 3 severities)\n", "")


def test_check_reports_every_diagnostic_end_to_end():
    result = run("check", DESK, BROKEN)
    assert result.returncode == 1
    assert result.stderr == ""
    assert result.stdout.splitlines() == [
        f"{DESK}: ok (9 rules, 3 teams, 3 severities)",
        *BROKEN_DIAGNOSTICS,
        "2 errors in 1 file",
    ]


def test_check_counts_errors_over_files_and_reports_a_shared_include_once(write, capsys):
    common = write("common/teams.yaml", """\
        qflow: 1
        teams:
          front-office: {name: 1}
    """)
    one = write("one.yaml", """\
        qflow: 1
        include: [common/teams.yaml]
        severities:
          high: {respond: 1h, resolve: 1d}
    """)
    two = write("two.yaml", """\
        qflow: 1
        include: [common/teams.yaml]
        severities:
          high: {respond: 2h, resolve: 1h}
    """)
    assert main(["check", one, two]) == 1
    assert capsys.readouterr().out.splitlines() == [
        f"{common}:3:24: QF103 expected text, got the number 1 (put the value in quotes) @ $.teams.front-office.name",
        f"{two}:4:19: QF104 respond (2h) is longer than resolve (1h) (an answer cannot come after the fix;"
        " shorten respond or lengthen resolve) @ $.severities.high.respond",
        "2 errors in 2 files",
    ]


def test_check_singular_counts(write, capsys):
    path = write("tiny.yaml", """\
        qflow: 1
        teams: {desk: {}}
        severities: {only: {respond: 1h}}
        route: [{id: all, assign: {team: desk}}]
    """)
    assert main(["check", path]) == 0
    assert capsys.readouterr().out == f"{path}: ok (1 rule, 1 team, 1 severity)\n"


def test_check_without_the_rules_plugin_names_its_sections(capsys):
    assert main(["--block", "rules", "check", DESK]) == 1
    hint = "(no installed plugin reads it; check the spelling or install the plugin)"
    assert capsys.readouterr().out.splitlines() == [
        f"{DESK}:13:1: QF101 unknown section 'classify' {hint} @ $.classify",
        f"{DESK}:36:1: QF101 unknown section 'route' {hint} @ $.route",
        "2 errors in 1 file",
    ]


class Legacy:
    """A local plugin whose section only warns."""

    @qflow.hookimpl
    def qflow_ruleset_sections(self):
        def compile_(value, ctx):
            ctx.warn(("legacy",), "QF104", "'legacy' is ignored since 0.1", hint="remove it")
            return value

        return [qflow.Section("legacy", bool, compile_)]


def test_check_prints_warnings_under_the_ok_line(write, monkeypatch, capsys):
    real = qflow.make_plugin_manager
    monkeypatch.setattr(qflow, "make_plugin_manager", lambda **kw: real(**kw, plugins=[(Legacy(), "legacy")]))
    path = write("old.yaml", """\
        qflow: 1
        legacy: true
    """)
    assert main(["check", path]) == 0
    assert capsys.readouterr().out.splitlines() == [
        f"{path}: ok (0 rules, 0 teams, 0 severities), 1 warning",
        f"{path}:2:9: QF104 'legacy' is ignored since 0.1 (remove it) @ $.legacy",
    ]


# ---------------------------------------------------------------------------
# qflow decide
# ---------------------------------------------------------------------------


def expected_decisions(ref: str) -> list[dict]:
    return [
        decided(1, "A-1", "complaint", "high", "front-office", None, "2026-11-21T00:10:00+08:00",
                "2026-11-21T23:10:00+08:00", ["classify:vip-complaint", "route:default"], ref),
        # No reported_at: the clocks start at --now.
        decided(3, "A-2", "equipment", "normal", "engineering", "equipment", "2026-11-21T12:00:00+08:00",
                "2026-11-24T08:00:00+08:00", ["classify:equipment", "classify:default", "route:broken-equipment"],
                ref),
        {"line": 4, "error": "QF401 not valid JSON: Expecting value at column 1"},
        {"line": 5, "error": "QF401 expected a JSON object, got an array"},
        {"line": 6, "error": "QF402 expected a whole number, got 'high' @ $.impact; "
                             "unknown key 'categroy' (did you mean 'category'?) @ $.categroy"},
        # Reported in UTC, shown in the ruleset's time zone.
        decided(7, "A-4", "safety", "critical", "front-office", None, "2026-11-20T23:15:00+08:00",
                "2026-11-21T03:00:00+08:00", ["classify:safety", "route:default"], ref),
    ]


def test_decide_goes_on_after_bad_lines_end_to_end(ref):
    result = run("decide", DESK, "--input", INCIDENTS, "--now", NOW)
    assert result.returncode == 1
    assert [json.loads(line) for line in result.stdout.splitlines()] == expected_decisions(ref)
    assert result.stderr == 'qflow: 3 of 6 lines failed; see the objects with "error"\n'


def test_decide_keeps_the_key_order_and_chinese_text(ref):
    result = run("decide", DESK, "--input", INCIDENTS, "--now", NOW)
    first = result.stdout.splitlines()[0]
    assert first == (
        '{"line": 1, "id": "A-1", "category": "complaint", "severity": "high", "priority": null, '
        '"team": "front-office", "owner": null, "responsibility": null, '
        '"respond_by": "2026-11-21T00:10:00+08:00", "resolve_by": "2026-11-21T23:10:00+08:00", '
        f'"matched": ["classify:vip-complaint", "route:default"], "ruleset": "{ref}"}}'
    )


def test_decide_reads_stdin_end_to_end(ref):
    lines = [json.dumps(GOLD_CALL, ensure_ascii=False), "", json.dumps({"category": "hygiene"})]
    result = run("decide", DESK, "--input", "-", "--now", NOW, stdin="\n".join(lines) + "\n")
    assert (result.returncode, result.stderr) == (0, "")
    assert [json.loads(line) for line in result.stdout.splitlines()] == [
        decided(1, "A-1", "complaint", "high", "front-office", None, "2026-11-21T00:10:00+08:00",
                "2026-11-21T23:10:00+08:00", ["classify:vip-complaint", "route:default"], ref),
        decided(3, None, "hygiene", "normal", "housekeeping", "human", "2026-11-21T12:00:00+08:00",
                "2026-11-24T08:00:00+08:00", ["classify:hygiene", "classify:default", "route:cleanliness"], ref),
    ]


def test_decide_skips_blank_lines_and_a_bom_and_reports_bad_bytes(tmp_path, capsys, ref):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"category": "equipment"}\n   \n{"description": "caf\xe9"}\n'
                     b'{"reported_at": "2026-11-21T09:00"}\n')
    assert main(["decide", DESK, "--input", str(path), "--now", NOW]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        decided(1, None, "equipment", "normal", "engineering", "equipment", "2026-11-21T12:00:00+08:00",
                "2026-11-24T08:00:00+08:00", ["classify:equipment", "classify:default", "route:broken-equipment"],
                ref),
        {"line": 3, "error": "QF401 not UTF-8 text (byte 21); save the file as UTF-8"},
        {"line": 4, "error": "QF402 '2026-11-21T09:00' has no time zone (add an offset such as +08:00 or Z)"
                             " @ $.reported_at"},
    ]
    assert err == 'qflow: 2 of 3 lines failed; see the objects with "error"\n'


def test_decide_an_empty_input_is_fine(tmp_path, capsys):
    path = tmp_path / "empty.jsonl"
    path.write_text("\n\n", encoding="utf-8")
    assert main(["decide", DESK, "--input", str(path), "--now", NOW]) == 0
    assert capsys.readouterr() == ("", "")


# A calendar that opens one minute a week: 1000h of working time lie beyond the 30
# years a deadline is looked for in. Web reports get a severity without that deadline.
SHORT_WEEK = """\
qflow: 1
name: short-week
timezone: Asia/Shanghai
teams: {desk: {}}
calendars:
  tiny: {hours: {mon: ["09:00-09:01"]}}
severities:
  slow: {respond: 1000h, calendar: tiny}
  quick: {respond: 4h}
classify:
  - {id: web, when: {channel: web}, set: {severity: quick}}
  - {id: default, set: {severity: slow}}
route: [{id: all, assign: {team: desk}}]
"""
NO_TIME = ("QF403 calendar 'tiny' has no 41d16h of working time after 2026-02-13T17:00:00+08:00 within 30 "
           "years; check its hours, intervals and holidays, or shorten the committed time")


def test_decide_reports_a_deadline_without_working_time_on_its_line_and_goes_on(write, tmp_path, capsys):
    ruleset = write("short.yaml", SHORT_WEEK)
    path = tmp_path / "in.jsonl"
    path.write_text('{"channel": "phone", "reported_at": "2026-02-13T17:00:00+08:00"}\n'
                    '{"channel": "web", "reported_at": "2026-02-13T17:00:00+08:00"}\n', encoding="utf-8")
    assert main(["decide", ruleset, "--input", str(path), "--now", NOW]) == 1
    out, err = capsys.readouterr()
    assert [json.loads(line) for line in out.splitlines()] == [
        {"line": 1, "error": NO_TIME},
        {"line": 2, "id": None, "category": None, "severity": "quick", "priority": None, "team": "desk",
         "owner": None, "responsibility": None, "respond_by": "2026-02-13T21:00:00+08:00", "resolve_by": None,
         "matched": ["classify:web", "route:all"], "ruleset": ref_of(ruleset)},
    ]
    assert err == 'qflow: 1 of 2 lines failed; see the objects with "error"\n'


def test_explain_says_in_one_line_that_a_deadline_has_no_working_time(write, capsys):
    ruleset = write("short.yaml", SHORT_WEEK)
    incident = '{"channel": "phone", "reported_at": "2026-02-13T17:00:00+08:00"}'
    assert main(["explain", ruleset, "--incident", incident, "--now", NOW]) == 1
    assert capsys.readouterr() == ("", f"qflow: error: {NO_TIME}\n")


def test_decide_carries_the_warnings_of_a_deadline_in_an_unpublished_year(write, tmp_path, capsys):
    import holidays

    ruleset = write("office.yaml", """\
        qflow: 1
        timezone: Asia/Shanghai
        teams: {desk: {}}
        calendars:
          office: {hours: {mon-fri: ["09:00-12:00", "13:30-18:00"]}, holidays: CN}
        severities:
          normal: {respond: 4h, resolve: 22h30m, calendar: office}
        classify: [{id: default, set: {severity: normal}}]
        route: [{id: all, assign: {team: desk}}]
        """)
    path = tmp_path / "in.jsonl"
    path.write_text('{"reported_at": "2026-12-30T17:00:00+08:00"}\n'
                    '{"reported_at": "2026-12-01T09:00:00+08:00"}\n', encoding="utf-8")
    # Decided after both were reported, as deadlines count from reported_at whenever it is.
    assert main(["decide", ruleset, "--input", str(path), "--now", "2026-12-30T17:05:00+08:00"]) == 0
    first, second = (json.loads(line) for line in capsys.readouterr().out.splitlines())
    note = (f"calendar 'office': the CN holiday schedule for 2027 is not published in holidays "
            f"{holidays.__version__}; 2027 is counted on its fixed and lunar holidays without make-up working "
            "days (调休)")
    assert (first["respond_by"], first["resolve_by"]) == ("2026-12-31T12:00:00+08:00", "2027-01-05T17:00:00+08:00")
    assert first["warnings"] == {"resolve": [note]}
    assert "warnings" not in second


def test_decide_with_a_broken_ruleset_prints_diagnostics_to_stderr(capsys):
    assert main(["decide", BROKEN, "--input", INCIDENTS, "--now", NOW]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        *BROKEN_DIAGNOSTICS,
        f"qflow: 2 errors in {BROKEN}; run 'qflow check {BROKEN}' after fixing",
    ]


def test_decide_stops_quietly_when_the_reader_goes_away(tmp_path):
    path = tmp_path / "many.jsonl"
    path.write_text((json.dumps(GOLD_CALL) + "\n") * 5000, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "qflow", "decide", DESK, "--input", str(path), "--now", NOW],
                            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    assert proc.stdout is not None and proc.stderr is not None
    first = proc.stdout.readline()
    proc.stdout.close()
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert json.loads(first)["line"] == 1
    assert err == b""
    assert proc.returncode == 1


def test_decide_handles_many_lines(tmp_path, capsys):
    path = tmp_path / "many.jsonl"
    path.write_text((json.dumps(GOLD_CALL) + "\n") * 2000, encoding="utf-8")
    assert main(["decide", DESK, "--input", str(path), "--now", NOW]) == 0
    assert len(capsys.readouterr().out.splitlines()) == 2000


# ---------------------------------------------------------------------------
# qflow explain
# ---------------------------------------------------------------------------


EXPLAIN_GOLD_CALL = """\
incident:   A-1
reported:   2026-11-20 23:10 +08:00
facts:      channel phone, category complaint, customer tier gold
says:       前台办理入住等待超过30分钟
decided at: 2026-11-21 08:00 +08:00
ruleset:    REF (Asia/Shanghai)

decision:
  category        complaint     from classify:vip-complaint
  severity        high          from classify:vip-complaint
  priority        -             not set: no rule sets it
  team            front-office  from route:default
  owner           -             not set: no rule sets it
  responsibility  -             not set: no rule sets it

deadlines:
  clock    due                      left           business time  calendar time  counted from
  respond  2026-11-21 00:10 +08:00  7h50m overdue  1h on 24x7     1h             2026-11-20 23:10 +08:00
  resolve  2026-11-21 23:10 +08:00  in 15h10m      1d on 24x7     1d             2026-11-20 23:10 +08:00

why:
  classify
    no match     safety            none hold: category is 'complaint', not 'safety'; description is '前台办理入住等待超过30分钟', not matching '(?i)fire|smoke|火|烟'
    matched      vip-complaint     all hold: channel is 'phone'; category is 'complaint'; customer.tier is 'gold'; sets category=complaint, severity=high
    not reached                    3 later rule(s) not considered: every field is set (first match wins)
    not reached  default           default not needed: every field is set
  route
    no match     cleanliness       category is 'complaint', not 'hygiene'
    no match     broken-equipment  category is 'complaint', not 'equipment'
    matched      default           default (no conditions); sets team=front-office
    unset                          no rule set owner, responsibility; add a default rule (one without 'when') to set it
  severities
    info         high              respond 1h (due 2026-11-21T00:10:00+08:00), resolve 1d (due 2026-11-21T23:10:00+08:00); counted on 24x7 from 2026-11-20T23:10:00+08:00
"""


def test_explain_end_to_end(ref):
    result = run("explain", DESK, "--incident", json.dumps(GOLD_CALL, ensure_ascii=False), "--now", NOW)
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == EXPLAIN_GOLD_CALL.replace("REF", ref)


def test_explain_reads_a_file_or_stdin(tmp_path, monkeypatch, capsys, ref):
    path = tmp_path / "incident.json"
    path.write_text(json.dumps(GOLD_CALL, indent=2, ensure_ascii=False), encoding="utf-8")
    assert main(["explain", DESK, "--incident", str(path), "--now", NOW]) == 0
    assert capsys.readouterr() == (EXPLAIN_GOLD_CALL.replace("REF", ref), "")
    monkeypatch.setattr("sys.stdin", __import__("io").StringIO(json.dumps(GOLD_CALL)))
    assert main(["explain", DESK, "--incident", "-", "--now", NOW]) == 0
    assert capsys.readouterr() == (EXPLAIN_GOLD_CALL.replace("REF", ref), "")


@pytest.fixture
def many_rules(write) -> str:
    rules = "".join(f"  - id: r{i:02d}\n    when: {{place: room-{i:02d}}}\n    set: {{severity: high}}\n"
                    for i in range(1, 21))
    return write("many.yaml", "qflow: 1\nname: many\nteams: {desk: {}}\n"
                 "severities: {high: {respond: 1h}, normal: {respond: 4h}}\n"
                 f"classify:\n{rules}  - id: fallback\n    set: {{severity: normal}}\n"
                 "route: [{id: all, assign: {team: desk}}]\n")


def test_explain_folds_long_runs_of_non_matching_rules(many_rules, capsys):
    assert main(["explain", many_rules, "--incident", '{"place": "lobby"}', "--now", NOW]) == 0
    lines = capsys.readouterr().out.splitlines()
    why = lines[lines.index("why:"):]
    assert why[:4] == [
        "why:",
        "  classify",
        "    no match  20 rules  'r01' … 'r20' did not match (--all lists them)",
        "    matched   fallback  default (no conditions); sets severity=normal",
    ]


def test_explain_all_shows_every_rule(many_rules, capsys):
    assert main(["explain", many_rules, "--incident", '{"place": "lobby"}', "--now", NOW, "--all"]) == 0
    lines = capsys.readouterr().out.splitlines()
    classify = [line.split()[:3] for line in lines[lines.index("  classify") + 1:] if line.startswith("    ")]
    assert classify[:21] == [["no", "match", f"r{i:02d}"] for i in range(1, 21)] + [["matched", "fallback", "default"]]


def test_explain_a_run_of_fifteen_is_not_folded(write, capsys):
    rules = "".join(f"  - id: r{i:02d}\n    when: {{place: room-{i:02d}}}\n    set: {{severity: high}}\n"
                    for i in range(1, 16))
    path = write("fifteen.yaml", "qflow: 1\nteams: {desk: {}}\nseverities: {high: {respond: 1h}}\n"
                 f"classify:\n{rules}route: [{{id: all, assign: {{team: desk}}}}]\n")
    assert main(["explain", path, "--incident", '{"place": "lobby"}', "--now", NOW]) == 0
    out = capsys.readouterr().out
    assert "did not match (--all lists them)" not in out
    assert sum(1 for line in out.splitlines() if line.startswith("    no match  r")) == 15


# ---------------------------------------------------------------------------
# qflow demo
# ---------------------------------------------------------------------------

DEMO_DESK = """\
qflow demo: REF; times in Asia/Shanghai (UTC+08:00), dates in 2026
ruleset:   tests/data/cli/desk.yaml
incidents: tests/data/cli/desk.incidents.jsonl (7 incidents)
store:     sqlite:///OUT/demo.sqlite3 (kept: 'qflow ls --store sqlite:///OUT/demo.sqlite3' lists it)

1. Reported 7 incidents in time order (the clock set to each reported_at)

  id     reported     category   severity  team          respond by   resolve by
  INC-1  11-20 07:40  hygiene    normal    housekeeping  11-20 11:40  11-23 07:40
  INC-2  11-20 08:05  complaint  high      front-office  11-20 09:05  11-21 08:05
  INC-3  11-20 09:30  hygiene    normal    housekeeping  11-20 13:30  11-23 09:30
  INC-4  11-20 10:15  equipment  normal    engineering   11-20 14:15  11-23 10:15
  INC-5  11-20 11:02  safety     critical  front-office  11-20 11:17  11-20 15:02
  INC-6  11-20 13:45  complaint  normal    front-office  11-20 17:45  11-23 13:45
  INC-7  11-20 16:20  complaint  high      front-office  11-20 17:20  11-21 16:20

2. Why INC-5 is critical (what 'qflow explain' shows)

  incident:   INC-5
  reported:   2026-11-20 11:02 +08:00
  facts:      channel onsite, place corridor 3F
  says:       走廊有烟味 smoke smell near the linen room
  decided at: 2026-11-20 11:02 +08:00
  ruleset:    REF (Asia/Shanghai)

  decision:
    category        safety        from classify:safety
    severity        critical      from classify:safety
    priority        -             not set: no rule sets it
    team            front-office  from route:default
    owner           -             not set: no rule sets it
    responsibility  -             not set: no rule sets it

  deadlines:
    clock    due                      left    business time  calendar time  counted from
    respond  2026-11-20 11:17 +08:00  in 15m  15m on 24x7    15m            2026-11-20 11:02 +08:00
    resolve  2026-11-20 15:02 +08:00  in 4h   4h on 24x7     4h             2026-11-20 11:02 +08:00

  why:
    classify
      matched      safety            description is '走廊有烟味 smoke smell near the linen room', matching '(?i)fire|smoke|火|烟'; sets category=safety, severity=critical
      not reached                    4 later rule(s) not considered: every field is set (first match wins)
      not reached  default           default not needed: every field is set
    route
      no match     cleanliness       category is 'safety', not 'hygiene'
      no match     broken-equipment  category is 'safety', not 'equipment'
      matched      default           default (no conditions); sets team=front-office
      unset                          no rule set owner, responsibility; add a default rule (one without 'when') to set it
    severities
      info         critical          respond 15m (due 2026-11-20T11:17:00+08:00), resolve 4h (due 2026-11-20T15:02:00+08:00); counted on 24x7 from 2026-11-20T11:02:00+08:00

3. INC-5 through the loop: confirm, analyse, act, verify, close (now closed)

  seq  at           event                 by       what
  1    11-20 11:02  IncidentReported      -        onsite, corridor 3F: 走廊有烟味 smoke smell near the linen …
  2    11-20 11:02  DecisionMade          qflow    critical, team front-office, respond by 11-20 11:17, resolve by 11-20 15:02
  3    11-20 11:12  StageChanged          王芳     reported → confirmed (checked on site: the anomaly is real)
  4    11-20 11:22  StageChanged          王芳     confirmed → analysing
  5    11-20 12:02  CauseRecorded         quality  five_why: the shift checklist does not cover this check (3 whys)
  6    11-20 12:12  StageChanged          王芳     analysing → acting
  7    11-20 12:17  ActionPlanned         王芳     A1 corrective: add the check to the shift checklist and brief every shift, owner 王芳, due 11-22 12:17
  8    11-20 15:02  ActionUpdated         王芳     A1 is done
  9    11-20 15:07  StageChanged          quality  acting → verifying
  10   11-20 16:02  VerificationRecorded  quality  effective (repeats 0, checks passed 12/12)
  11   11-20 16:07  StageChanged          quality  verifying → closed (verified effective)

4. Due in the 24 hours after the last report (11-20 16:20 to 11-21 16:20): 4 deadlines

  due         | in        | incident | clock   | team
  11-20 17:20 | in 1h     | INC-7    | respond | front-office
  11-20 17:45 | in 1h25m  | INC-6    | respond | front-office
  11-21 08:05 | in 15h45m | INC-2    | resolve | front-office
  11-21 16:20 | in 1d     | INC-7    | resolve | front-office
  already passed: 4 deadlines of 4 open incidents (the demo answers none but the one above)

7 incidents: 1 critical, 2 high, 4 normal

5. Nobody answers INC-7 (high, front-office) until 11-20 20:20: the worker's ticks

  tick at 11-20 16:50: 18 effects on 6 incidents, 22 delivered
  tick at 11-20 17:20: 3 effects on 2 incidents, 2 delivered
  tick at 11-20 18:20: 3 effects on 2 incidents, 2 delivered
  tick at 11-20 20:20: 5 effects on 5 incidents, 5 delivered
  (the first tick catches up on every incident above: the demo answers none of them)

  what the ticks recorded on INC-7:
  at           event                step                                                who is told
  11-20 16:50  EscalationStepFired  standard/warn (50% of respond used)                 assignee: 王芳
  11-20 17:20  DeadlineBreached     respond was due 11-20 17:20                         -
  11-20 17:20  EscalationStepFired  standard/breach (respond breached)                  team.lead: 王芳
  11-20 18:20  EscalationStepFired  standard/overdue (respond overdue by 1h)            role:duty-manager: 值班经理
  11-20 20:20  EscalationStepFired  standard/overdue (respond overdue by 1h, repeat 1)  role:duty-manager: 值班经理

  what engine.deliver() sent for it (the log backend: one line each in the worker's log):
  11-20 16:50  desk-log  【high】INC-7 响应时限已用 50% -> 王芳
  11-20 17:20  desk-log  【high】INC-7 响应已超时 -> 王芳
  11-20 18:20  desk-log  【high】INC-7 响应已超时 1小时 -> 值班经理
  11-20 20:20  desk-log  【high】INC-7 响应已超时 1小时（第1次重复提醒） -> 值班经理

6. Six months of the same desk (2026-06 to 2026-11), and its report for 2026-11

  history: 27 incidents answered, analysed, acted on, verified and surveyed, in OUT/history.sqlite3
  2026-11: on time 83.3% answered, 100.0% resolved; median first answer 20m, resolution 1h20m; CSAT 100.0%; recurrence 0.0%
  wrote figures.json, report.html, report.zh.html, report.xlsx, form-report.html, form-cause.html, form-actions.html, form-verification.html in OUT/
  (the forms are those of INC-26; 'qflow report --help' makes others)
"""


def test_durations_are_written_to_the_minute_as_reports_and_the_demo_show_them():
    from qflow._convert import duration_to_the_minute
    from qflow_assess._format import duration

    seconds = (45, 1200, 4800, 2 * 86400 - 60, 86400 + 300, 86400 + 59)
    assert [duration_to_the_minute(s) for s in seconds] == ["45s", "20m", "1h20m", "1d23h59m", "1d0h05m", "1d"]
    assert [duration(s) for s in (*seconds, None)] == ["45s", "20m", "1h20m", "1d23h59m", "1d0h05m", "1d", "—"]


def test_demo_end_to_end_on_a_small_ruleset(ref, tmp_path):
    result = run("demo", "--ruleset", DESK, "--out", str(tmp_path))
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == DEMO_DESK.replace("REF", ref).replace("OUT", str(tmp_path))
    # What it says it wrote is there: the stores, the report in three forms, the forms.
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "demo.sqlite3", "figures.json", "form-actions.html", "form-cause.html", "form-report.html",
        "form-verification.html", "history.sqlite3", "report.html", "report.xlsx", "report.zh.html"]
    assert "问题清单" in (tmp_path / "report.zh.html").read_text(encoding="utf-8")
    # The demo's store holds the incidents it reported, for 'qflow ls' and 'qflow show'.
    store = qflow.engine.open_store(f"sqlite:///{tmp_path / 'demo.sqlite3'}", qflow.make_plugin_manager())
    assert len(store.query(qflow.IncidentQuery())) == 7
    store.close()


def test_demo_finds_its_files_in_the_current_directory_first(tmp_path, monkeypatch, capsys, ref):
    (tmp_path / "rulesets").mkdir()
    shutil.copy(REPO / DESK, tmp_path / "rulesets" / "hotel-front-desk.yaml")
    shutil.copy(REPO / DATA / "desk.incidents.jsonl", tmp_path / "rulesets" / "hotel-front-desk.incidents.jsonl")
    monkeypatch.chdir(tmp_path)
    assert main(["demo"]) == 0
    out = capsys.readouterr().out
    expected = DEMO_DESK.replace("REF", ref_of("rulesets/hotel-front-desk.yaml")).replace(DESK, "rulesets/hotel-front-desk.yaml").replace(
        f"{DATA}/desk.incidents.jsonl", "rulesets/hotel-front-desk.incidents.jsonl").replace("OUT", ".demo")
    assert out == expected


def test_demo_on_a_ruleset_without_escalation_says_nothing_falls_due(tmp_path, capsys):
    text = (REPO / DESK).read_text(encoding="utf-8")
    plain = tmp_path / "plain.yaml"
    plain.write_text(text[:text.index("escalation:")], encoding="utf-8")
    assert main(["demo", "--ruleset", str(plain), "--incidents", DATA + "/desk.incidents.jsonl",
                 "--out", str(tmp_path / "out")]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert f"5. Escalation: nothing falls due ({ref_of(str(plain))} has no escalation ladder for the incidents " \
           "still open)" in lines
    assert not any(line.startswith("  tick at ") for line in lines)


def test_demo_refuses_bad_incident_lines(capsys):
    assert main(["demo", "--ruleset", DESK, "--incidents", INCIDENTS]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.splitlines() == [
        f"{INCIDENTS}:4:1: QF401 not valid JSON: Expecting value at column 1",
        f"{INCIDENTS}:5:1: QF401 expected a JSON object, got an array",
        f"{INCIDENTS}:6:1: QF402 expected a whole number, got 'high' @ $.impact; "
        "unknown key 'categroy' (did you mean 'category'?) @ $.categroy",
        f"qflow: 3 bad lines in {INCIDENTS}; fix them or run 'qflow decide' to see all",
    ]


SHIPPED = REPO / "rulesets" / "hotel-front-desk.incidents.jsonl"


@pytest.mark.skipif(not SHIPPED.exists(), reason="the shipped demo incidents are not written yet")
def test_demo_runs_on_the_shipped_ruleset_from_anywhere(tmp_path):
    result = run("demo", cwd=tmp_path)
    assert (tmp_path / ".demo" / "report.html").is_file()
    assert (result.returncode, result.stderr) == (0, "")
    ruleset = REPO / "rulesets" / "hotel-front-desk.yaml"
    count = sum(1 for line in SHIPPED.read_text(encoding="utf-8").splitlines() if line.strip())
    lines = result.stdout.splitlines()
    assert lines[:4] == [
        f"qflow demo: {ref_of(str(ruleset))}; times in Asia/Shanghai (UTC+08:00), dates in 2026",
        f"ruleset:   {ruleset}",
        f"incidents: {SHIPPED} ({count} incidents)",
        "store:     sqlite:///.demo/demo.sqlite3 (kept: 'qflow ls --store sqlite:///.demo/demo.sqlite3' lists it)",
    ]
    headings = [line for line in lines if line[:2] in ("1.", "2.", "3.", "4.", "5.", "6.")]
    assert [h.split(" ")[0] for h in headings] == ["1.", "2.", "3.", "4.", "5.", "6."]
    assert headings[0] == f"1. Reported {count} incidents in time order (the clock set to each reported_at)"
    assert headings[1].endswith(" is critical (what 'qflow explain' shows)")
    assert headings[2].endswith("through the loop: confirm, analyse, act, verify, close (now closed)")
    assert headings[3].startswith("4. Due in the 24 hours after the last report (")
    summary = lines[lines.index(headings[4]) - 2]
    assert summary.startswith(f"{count} incidents: ") and " critical, " in summary
    # The shipped ruleset escalates: nobody answers the last incident, and its ladder
    # climbs from the warning through the breach to the duty manager.
    assert headings[4].startswith("5. Nobody answers ") and headings[4].endswith(": the worker's ticks")
    section = lines[lines.index(headings[4]):lines.index(headings[5])]
    steps = [line.split()[3] for line in section if line.split()[2:3] == ["EscalationStepFired"]]
    assert [s.split("/")[1] for s in steps] == ["warn", "breach", "overdue", "overdue"]
    sent = [line for line in section if "  duty-log  " in line]
    assert len(sent) == 4 and sent[-1].endswith(" -> 值班经理")
    assert headings[5].startswith("6. Six months of the same desk (")


# ---------------------------------------------------------------------------
# Usage errors, plugins, help
# ---------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "stderr"), [
    (["deicde", DESK], "qflow: error: unknown command 'deicde'\n"
                       f"hint: did you mean 'decide'? run 'qflow --help' for all {N_COMMANDS} commands\n"),
    (["decide", DESK, "--input", INCIDENTS, "--now", "2026-11-21T08:00"],
     "qflow: error: argument --now: '2026-11-21T08:00' has no time zone\n"
     "hint: add an offset such as +08:00 or Z\n"),
    (["explain", DESK, "--incident", "{}", "--now", "tomorrow"],
     "qflow: error: argument --now: 'tomorrow' is not a date and time\n"
     "hint: use ISO 8601 such as 2026-11-20T23:10:00+08:00\n"),
    (["check", "missing.yaml"], "qflow: error: no such ruleset file: 'missing.yaml'\n"
                                "hint: check the path and the current directory\n"),
    (["decide", DESK, "--input", "missing.jsonl", "--now", NOW],
     "qflow: error: no such input file: 'missing.jsonl'\nhint: check the path and the current directory\n"),
    (["decide", DESK, "--input", "tests", "--now", NOW],
     "qflow: error: 'tests' is a directory, not a file\nhint: give the path of the input file\n"),
    (["decide", DESK, "--now", NOW], "qflow: error: the following arguments are required: --input/-i\n"
                                     "hint: run 'qflow decide --help' for usage and examples\n"),
    (["check", DESK, "--frobnicate"], "qflow: error: unrecognized arguments: --frobnicate\n"
                                      "hint: run 'qflow check --help' for usage and examples\n"),
    ([], f"qflow: error: choose a command\nhint: e.g. 'qflow check RULESET'; run 'qflow --help' for all {N_COMMANDS} commands\n"),
])
def test_usage_errors_end_to_end(args, stderr):
    result = run(*args)
    assert (result.returncode, result.stdout, result.stderr) == (2, "", stderr)


@pytest.mark.parametrize(("incident", "stderr"), [
    ("{bad", "qflow: error: --incident: QF401 not valid JSON: Expecting property name enclosed in double quotes"
             " at line 1 column 2\n"
             "hint: give one JSON object such as '{\"category\": \"complaint\"}', or a file holding one\n"),
    ("[1]", "qflow: error: --incident: QF401 expected a JSON object, got an array\n"
            "hint: give one JSON object such as '{\"category\": \"complaint\"}', or a file holding one\n"),
    ('{"urgency": "now"}', "qflow: error: --incident: QF402 expected a whole number, got 'now' @ $.urgency\n"
                           "hint: see the incident fields in the ruleset format\n"),
    (INCIDENTS, f"qflow: error: --incident {INCIDENTS}: more than one JSON value\n"
                "hint: explain takes one incident; for a JSON Lines file use 'qflow decide'\n"),
    ("nowhere.json", "qflow: error: no such incident file: 'nowhere.json'\n"
                     "hint: check the path and the current directory\n"),
])
def test_explain_input_errors(incident, stderr, capsys):
    assert main(["explain", DESK, "--incident", incident, "--now", NOW]) == 2
    assert capsys.readouterr() == ("", stderr)


def test_explain_refuses_stdin_that_is_not_utf8():
    result = subprocess.run([sys.executable, "-m", "qflow", "explain", DESK, "--incident", "-", "--now", NOW],
                            cwd=REPO, input=b'{"description": "caf\xe9"}', capture_output=True, timeout=60)
    assert (result.returncode, result.stdout, result.stderr.decode()) == (
        2, b"", "qflow: error: --incident (stdin): not UTF-8 text\nhint: send the incident as UTF-8\n")


def test_demo_without_an_incidents_file_next_to_the_ruleset(capsys):
    assert main(["demo", "--ruleset", BROKEN]) == 2
    assert capsys.readouterr() == ("", f"qflow: error: no incidents file next to the ruleset (looked for "
                                       f"'{DATA}/broken.incidents.jsonl')\nhint: pass --incidents PATH\n")


def test_plugin_options_reach_the_plugin_manager(monkeypatch, capsys):
    calls = []
    real = qflow.make_plugin_manager

    def spy(**kwargs):
        calls.append(kwargs)
        return real(**kwargs)

    monkeypatch.setattr(qflow, "make_plugin_manager", spy)
    assert main(["--no-plugins", "--block", "slack", "check", DESK, "--block", "pager"]) == 0
    assert main(["check", DESK]) == 0
    assert calls == [{"autoload": False, "blocked": ["slack", "pager"]}, {"autoload": True, "blocked": []}]
    capsys.readouterr()


def test_a_plugin_error_exits_2_with_its_message(monkeypatch, capsys):
    def broken(**kwargs):
        raise qflow.PluginError("plugin 'slack' (qflow_slack) failed to import: ImportError: no slack_sdk; "
                                "fix or uninstall it, or block it with QFLOW_BLOCKED_PLUGINS=slack")

    monkeypatch.setattr(qflow, "make_plugin_manager", broken)
    assert main(["check", DESK]) == 2
    assert capsys.readouterr() == ("", (
        "qflow: error: plugin 'slack' (qflow_slack) failed to import: ImportError: no slack_sdk; "
        "fix or uninstall it, or block it with QFLOW_BLOCKED_PLUGINS=slack\n"
        "hint: run with --no-plugins, or --block NAME, to leave a plugin out\n"))


class _TakesCheck:
    @qflow.hookimpl
    def qflow_commands(self, subparsers, common):
        return {"check": lambda args, out, err: 0}


class _AddsReport:
    @qflow.hookimpl
    def qflow_commands(self, subparsers, common):
        subparsers.add_parser("report", parents=[common])
        return {"report": lambda args, out, err: 0}


@pytest.mark.parametrize(("plugin", "message"), [
    (_TakesCheck, "plugin site adds the command 'check', which qflow already has; rename its command"),
    (_AddsReport, "plugin site adds a command qflow already has (argument COMMAND: conflicting subparser: report); "
                  "rename its command"),
])
def test_a_plugin_command_under_a_taken_name_is_refused_not_a_silent_take_over(monkeypatch, capsys, plugin, message):
    real = qflow.make_plugin_manager
    monkeypatch.setattr(qflow, "make_plugin_manager",
                        lambda **kwargs: real(plugins=[(plugin(), "site")], **kwargs))
    assert main(["check", DESK]) == 2
    assert capsys.readouterr() == ("", f"qflow: error: {message}\n"
                                       "hint: run with --no-plugins, or --block NAME, to leave a plugin out\n")


def test_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == f"qflow {qflow.__version__}\n"


@pytest.mark.parametrize(("args", "example"), [
    ([], "  qflow demo\n"),
    (["check"], "  qflow check rulesets/*.yaml\n"),
    (["decide"], "  cat incidents.jsonl | qflow decide rulesets/hotel-front-desk.yaml --input - | head -3\n"),
    (["explain"], "  qflow explain rulesets/hotel-front-desk.yaml --incident incident.json\n"),
    (["demo"], "  qflow demo --ruleset my.yaml --incidents my.incidents.jsonl --out /tmp/qflow-demo\n"),
])
def test_help_has_examples(args, example, capsys):
    assert main([*args, "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"usage: qflow{' ' + args[0] if args else ''} ")
    assert example in out


def test_tables_align_chinese_text():
    assert _render._table([("id", "team"), ("A-1", "前厅部"), ("A-22", "x")], indent="  ") == [
        "  id    team",
        "  A-1   前厅部",
        "  A-22  x",
    ]
    assert _render._table([("前厅部", "a"), ("x", "b")]) == ["前厅部  a", "x       b"]


def test_explanation_text_lines_have_no_trailing_spaces():
    text = textwrap.dedent(EXPLAIN_GOLD_CALL)
    assert all(line == line.rstrip() for line in text.splitlines())
