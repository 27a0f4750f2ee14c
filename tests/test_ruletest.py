"""``qflow test``: ruleset test cases in YAML, run on a virtual clock.

The outputs are asserted as full strings: what an ops person reads when a case fails
or a tests file is wrong is the product.
"""

from __future__ import annotations

import io
import json
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

import qflow
from qflow import Effect, Timer, hookimpl
from qflow._cli_authoring import _test_text
from qflow._ruletest import TestRunner, find_test_files, parse_test_file
from qflow._ruletest import tests_file_for as _tests_file_for
from qflow.cli import main
from qflow.store import OutboxMessage

from tests.conftest import BASE

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture
def desk(tmp_path: Path) -> Path:
    (tmp_path / "desk.yaml").write_text(BASE, encoding="utf-8")
    return tmp_path


def write_tests(folder: Path, body: str, name: str = "desk.tests.yaml") -> str:
    path = folder / name
    path.write_text(textwrap.dedent(body), encoding="utf-8")
    return str(path)


def run_cli(*args: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    import sys

    old = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = out, err
    try:
        status = main(list(args))
    finally:
        sys.stdout, sys.stderr = old
    return status, out.getvalue(), err.getvalue()


def ref_of(folder: Path, name: str = "desk.yaml") -> str:
    return qflow.load_ruleset(folder / name, plugins=qflow.make_plugin_manager(autoload=False)).ref


def render(results) -> str:
    out = io.StringIO()
    _test_text(results, out, False)
    return out.getvalue()


GOOD = """\
ruleset: desk.yaml
now: 2026-11-20T23:10:00+08:00
tests:
  - name: a gold guest's phone complaint is high
    incident:
      channel: phone
      category: complaint
      customer: {tier: gold}
    expect:
      severity: high
      team: front-office
      respond_by: 2026-11-21T00:10:00+08:00
  - name: smoke is critical
    incident: {description: 走廊有烟}
    expect:
      category: safety
      severity: critical
      set_by: {severity: safety}
      deadlines:
        respond: {business: 15m, calendar: 24x7}
        resolve:
          due: 2026-11-21T03:10:00+08:00
"""


def test_a_passing_file_prints_one_line_and_exits_0(desk):
    path = write_tests(desk, GOOD)
    status, out, err = run_cli("test", "--no-plugins", path)
    assert (status, err) == (0, "")
    assert out == f"{path}: 2 passed ({ref_of(desk)})\n2 passed in 1 file\n"


def test_a_failing_case_shows_each_field_expected_and_got_with_its_line(desk):
    path = write_tests(desk, """\
        ruleset: desk.yaml
        tests:
          - name: a complaint at the front desk
            now: 2026-11-20T23:10:00+08:00
            incident:
              channel: onsite
              category: complaint
            expect:
              severity: high
              team: front-office
              owner: 王芳
              respond_by: 2026-11-21T00:10:00+08:00
              matched: [vip-complaint]
        """)
    status, out, _ = run_cli("test", "--no-plugins", path)
    assert status == 1
    assert out == (
        f"FAIL  {path}:3: a complaint at the front desk\n"
        "  severity (line 9)\n"
        "    expected high\n"
        "    got      normal  (set by classify:default)\n"
        "  owner (line 11)\n"
        "    expected 王芳\n"
        "    got      (unset)  (no rule set it)\n"
        "  respond_by (line 12)\n"
        "    expected 2026-11-21T00:10:00+08:00\n"
        "    got      2026-11-21T03:10:00+08:00  (4h on 24x7, calendar time 4h)\n"
        "  matched (line 13)\n"
        "    expected [vip-complaint]\n"
        "    got      [classify:default, route:default]\n"
        f"{path}: 0 passed, 1 failed ({ref_of(desk)})\n"
        "0 passed, 1 failed in 1 file\n"
    )


def test_every_mistake_in_a_tests_file_is_located_and_nothing_runs_wrongly(desk):
    path = write_tests(desk, """\
        ruleset: desk.yaml
        tets: []
        tests:
          - name: one
            now: 2026-11-20 23:10
            incident: {chanel: phone}
            expect: {severty: high}
          - name: two
            now: 2026-11-20T23:10:00+08:00
            incident: {channel: phone}
            steps:
              - {at: "2026-11-20T23:00:00+08:00", acknowledge: 王芳}
              - {acknowledge: 王芳, respond: ok}
              - {transition: closd}
            expect: {team: frontoffice}
          - name: three
            now: 2026-11-20T23:10:00+08:00
            incident: {channel: phone}
            expect: {team: frontoffice, deadlines: {respond: {business: 1hr}}}
          - name: three
            incident: {channel: phone}
            expect: {stage: closed}
        """)
    status, out, _ = run_cli("test", "--no-plugins", path)
    assert status == 1
    assert out.splitlines() == [
        f"{path}:2:1: QF602 unknown key 'tets' in a tests file (did you mean 'tests'?) @ $.tets",
        f"{path}:5:10: QF605 '2026-11-20 23:10' has no time zone (add an offset such as +08:00 or Z) @ $.tests[0].now",
        f"{path}:6:16: QF606 incident: unknown key 'chanel' (did you mean 'channel'?) @ $.tests[0].incident.chanel",
        f"{path}:7:14: QF602 unknown expectation 'severty' (did you mean 'severity'?) @ $.tests[0].expect.severty",
        f"{path}:12:14: QF609 step at 2026-11-20T23:00:00+08:00 is before the one before it (2026-11-20T23:10:00+08:00)"
        " (list the steps in time order; the clock only moves forward) @ $.tests[1].steps[0].at",
        f"{path}:13:9: QF611 a step does one thing, this one has 2: acknowledge, respond (split it into several steps)"
        " @ $.tests[1].steps[1]",
        f"{path}:14:22: QF604 'closd' is not a stage (did you mean 'closed'?) @ $.tests[1].steps[2].transition",
        f"{path}:19:65: QF605 '1hr' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m)"
        " @ $.tests[2].expect.deadlines.respond.business",
        f"{path}:20:5: QF603 the case has no time (give 'now:' (when it is reported) here or at the top of the file)"
        " @ $.tests[3]",
        f"{path}: 0 passed, 9 errors ({ref_of(desk)})",
        "0 passed, 9 errors in 1 file",
    ]


def test_a_bad_time_is_one_diagnostic_however_many_things_read_it(desk):
    # The case's time falls back to its incident's reported_at, and the incident is read
    # as well: one bad date, one diagnostic. A bad file-level now is not also "no time"
    # for every case that relies on it.
    path = write_tests(desk, """\
        ruleset: desk.yaml
        now: 2026-11-20 23:10
        tests:
          - name: reported without a zone
            incident: {channel: phone, reported_at: "2026-11-21 08:00"}
            expect: {severity: normal}
          - name: reported on a day that does not exist
            incident: {channel: phone, reported_at: "2026-11-31T08:00:00+08:00"}
            expect: {severity: normal}
          - name: relies on the file's time
            incident: {channel: phone}
            expect: {severity: normal}
          - name: has its own time
            now: 2026-11-21T09:00:00+08:00
            incident: {channel: phone}
            expect: {severity: normal}
        """)
    status, out, _ = run_cli("test", "--no-plugins", path)
    assert status == 1
    assert out.splitlines() == [
        f"{path}:2:6: QF605 '2026-11-20 23:10' has no time zone (add an offset such as +08:00 or Z) @ $.now",
        f"{path}:5:45: QF606 incident: '2026-11-21 08:00' has no time zone (add an offset such as +08:00 or Z)"
        " @ $.tests[0].incident.reported_at",
        f"{path}:8:45: QF606 incident: '2026-11-31T08:00:00+08:00' is not a date and time"
        " (use ISO 8601 such as 2026-11-20T23:10:00+08:00) @ $.tests[1].incident.reported_at",
        f"{path}: 1 passed, 3 errors ({ref_of(desk)})",
        "1 passed, 3 errors in 1 file",
    ]


def test_an_expected_name_the_ruleset_does_not_define_is_a_located_error(desk):
    path = write_tests(desk, """\
        ruleset: desk.yaml
        now: 2026-11-20T23:10:00+08:00
        tests:
          - name: routed to the front office
            incident: {channel: phone}
            expect:
              team: frontoffice
              severity: normal
          - name: still runs
            incident: {channel: phone}
            expect: {severity: normal}
        """)
    status, out, _ = run_cli("test", "--no-plugins", path)
    assert status == 1
    assert out == (
        f"{path}:7:13: QF608 expected team 'frontoffice' is not a team of test-desk (did you mean 'front-office'?)"
        " @ $.tests[0].expect.team\n"
        f"{path}: 1 passed, 1 error ({ref_of(desk)})\n"
        "1 passed, 1 error in 1 file\n"
    )


def test_a_tests_file_whose_ruleset_is_missing_or_broken(tmp_path):
    missing = write_tests(tmp_path, "ruleset: nowhere.yaml\ntests: []\n", "a.tests.yaml")
    (tmp_path / "bad.yaml").write_text("qflow: 1\nseverities:\n  high: {respond: 1hr}\n", encoding="utf-8")
    broken = write_tests(tmp_path, "ruleset: bad.yaml\ntests: []\n", "bad.tests.yaml")
    status, out, _ = run_cli("test", "--no-plugins", missing, broken)
    bad = str(tmp_path / "bad.yaml")
    assert status == 1
    assert out == (
        f"{missing}:1:10: QF607 ruleset '{tmp_path / 'nowhere.yaml'}' does not exist"
        " (the path is relative to the tests file) @ $.ruleset\n"
        f"{missing}:2:8: QF603 the file has no cases (add at least one '- name: ...' item) @ $.tests\n"
        f"{missing}: broken, 2 errors; no case ran\n"
        f"{broken}:1:10: QF607 ruleset '{bad}' does not load (1 error) (run 'qflow check {bad}') @ $.ruleset\n"
        f"{broken}:2:8: QF603 the file has no cases (add at least one '- name: ...' item) @ $.tests\n"
        f"{bad}:3:19: QF105 '1hr' is not a duration (use 15m, 1h, 2d, 1w or a sum like 1h30m)"
        " @ $.severities.high.respond\n"
        f"{broken}: broken, 3 errors; no case ran\n"
        "0 passed, 2 broken files in 2 files\n"
    )


def test_not_yaml_and_not_a_mapping(tmp_path):
    a = write_tests(tmp_path, "ruleset: [\n", "a.tests.yaml")
    b = write_tests(tmp_path, "- just a list\n", "b.tests.yaml")
    c = write_tests(tmp_path, "", "c.tests.yaml")
    _, out, _ = run_cli("test", "--no-plugins", str(tmp_path))
    assert out.splitlines() == [
        f"{a}:2:1: QF001 not valid YAML: did not find expected node content (while parsing a flow node)"
        " (check the indentation and quoting on this line) @ $",
        f"{a}: broken, 1 error; no case ran",
        f"{b}:1:1: QF601 a tests file must be a mapping with 'ruleset:' and 'tests:'"
        " (start it with 'ruleset: NAME.yaml' and list the cases under 'tests:') @ $",
        f"{b}: broken, 1 error; no case ran",
        f"{c}:1:1: QF601 the tests file is empty (start it with 'ruleset: NAME.yaml' and 'tests:') @ $",
        f"{c}: broken, 1 error; no case ran",
        "0 passed, 3 broken files in 3 files",
    ]


def test_paths_name_tests_files_rulesets_or_folders(desk):
    tests = write_tests(desk, GOOD)
    ruleset = str(desk / "desk.yaml")
    assert find_test_files([tests]) == ([tests], [])
    assert find_test_files([ruleset]) == ([tests], [])
    assert find_test_files([str(desk), tests]) == ([tests], [])
    assert _tests_file_for("rulesets/hotel.yaml") == Path("rulesets/hotel.tests.yaml")


def test_usage_errors_exit_2_with_a_hint(desk, tmp_path):
    (tmp_path / "lonely.yaml").write_text(BASE, encoding="utf-8")
    status, out, err = run_cli("test", str(tmp_path / "nothing-here.yaml"))
    assert (status, out) == (2, "")
    assert err == (f"qflow: error: no such file or folder: '{tmp_path / 'nothing-here.yaml'}'\n"
                   "hint: give a tests file (NAME.tests.yaml), a ruleset with one beside it, or a folder that holds some\n")
    status, _, err = run_cli("test", str(tmp_path / "lonely.yaml"))
    assert status == 2
    assert err.splitlines()[0] == (f"qflow: error: ruleset '{tmp_path / 'lonely.yaml'}' has no tests file "
                                   f"(expected '{tmp_path / 'lonely.tests.yaml'}')")


def test_select_by_name_and_override_the_ruleset(desk, tmp_path):
    path = write_tests(desk, GOOD)
    status, out, _ = run_cli("test", "--no-plugins", "-v", "-k", "SMOKE", path)
    assert status == 0
    assert out.splitlines()[0] == f"ok    {path}:13: smoke is critical"
    assert out.splitlines()[-1] == "1 passed in 1 file"
    # The proposed ruleset makes smoke merely high: the deployed cases catch it.
    proposed = tmp_path / "proposed.yaml"
    proposed.write_text(BASE.replace("set: {category: safety, severity: critical}",
                                     "set: {category: safety, severity: high}"), encoding="utf-8")
    status, out, _ = run_cli("test", "--no-plugins", "--ruleset", str(proposed), path)
    assert status == 1
    assert out.splitlines()[:8] == [
        f"FAIL  {path}:13: smoke is critical",
        "  severity (line 17)",
        "    expected critical",
        "    got      high  (set by classify:safety)",
        "  deadlines (line 19)",
        "    expected respond: business=15m calendar=24x7",
        "             resolve: due=2026-11-21T03:10:00+08:00",
        "    got      respond: business=1h calendar=24x7",
    ]


def test_json_and_github_formats(desk):
    path = write_tests(desk, GOOD.replace("severity: high\n", "severity: normal\n", 1))
    status, out, _ = run_cli("test", "--no-plugins", "--format", "json", path)
    data = json.loads(out)
    assert status == 1
    assert data["summary"] == {"passed": 1, "failed": 1, "skipped": 0, "errors": 0, "broken_files": 0}
    assert data["files"][0]["cases"][0]["mismatches"] == [
        {"field": "severity", "line": 10, "expected": ["normal"], "got": ["high  (set by classify:vip-complaint)"]}]
    status, out, _ = run_cli("test", "--no-plugins", "--format", "github", path)
    assert out == (f"::error file={path},line=10,title=qflow test::a gold guest's phone complaint is high: "
                   "severity: expected normal, got high  (set by classify:vip-complaint)\n"
                   "1 passed, 1 failed in 1 file\n")


def test_a_refused_step_fails_the_case_with_the_reason(desk):
    path = write_tests(desk, """\
        ruleset: desk.yaml
        now: 2026-11-20T23:10:00+08:00
        tests:
          - name: closing straight away is refused
            incident: {channel: phone}
            steps:
              - at: 2026-11-20T23:20:00+08:00
                transition: closed
            expect: {stage: closed}
        """)
    status, out, _ = run_cli("test", "--no-plugins", path)
    assert status == 1
    assert out.splitlines()[:2] == [
        f"FAIL  {path}:4: closing straight away is refused",
        "  step at line 7 (transition) was refused: cannot move INC-1 to closed: reported cannot move to closed;"
        " from reported it can move to: confirmed, rejected",
    ]


def test_events_expected_in_order_show_each_got_event_once(desk):
    path = write_tests(desk, """\
        ruleset: desk.yaml
        now: 2026-11-20T23:10:00+08:00
        tests:
          - name: a rejection that never happens
            incident: {channel: phone}
            expect: {events: [{type: DecisionMade}, {type: StageChanged, to: rejected}]}
        """)
    status, out, _ = run_cli("test", "--no-plugins", path)
    assert status == 1
    assert out.splitlines()[:5] == [
        f"FAIL  {path}:4: a rejection that never happens",
        "  events (line 6)",
        "    expected #2 type=StageChanged to=rejected (and the ones after it, in order)",
        "    got      type=IncidentReported",
        "             type=DecisionMade",
    ]


def test_decision_only_cases_are_decided_without_a_store(desk):
    tests, diags = parse_test_file(write_tests(desk, GOOD))
    assert diags == []
    assert [c.needs_store for c in tests.cases] == [False, False]


# -- escalation and notifications through plugins, on the virtual clock -----------------


class Ladder:
    """A two-step respond ladder: 30m and 60m after the report, unless acknowledged.
    Each step is scheduled only once the one before has fired, as a real ladder does."""

    @hookimpl
    def qflow_schedule(self, state, events):
        if any(e.type == "Acknowledged" for e in events):
            return []
        fired = sum(1 for e in events if e.type == "EscalationStepFired")
        if fired >= 2:
            return []
        return [Timer(state.id, "clock:respond", state.incident.reported_at + timedelta(minutes=30 * (fired + 1)))]

    @hookimpl
    def qflow_due(self, state, events, timers):
        fired = sum(1 for e in events if e.type == "EscalationStepFired")
        note = qflow.Notification(state.id, "escalated", timers[0].at, recipients=("王芳",))
        return [Effect("EscalationStepFired", "ladder:default", {"clock": "respond", "step": fired + 1,
                                                                "notify": ["team.lead"]}, (note,))]

    @hookimpl
    def qflow_plan_delivery(self, notification, now):
        return [OutboxMessage(f"{notification.incident_id}:{notification.topic}:{now.isoformat()}",
                              notification.incident_id, "front-office-chat", "recording", now, now,
                              {"topic": notification.topic})]


LADDER_CASES = """\
ruleset: desk.yaml
now: 2026-11-20T23:10:00+08:00
tests:
  - name: nobody answers, the ladder climbs
    incident: {channel: phone}
    steps:
      - at: 2026-11-20T23:45:00+08:00
        expect:
          escalations: [{step: 1, at: "2026-11-20T23:40:00+08:00"}]
    at: 2026-11-21T02:00:00+08:00
    expect:
      escalations:
        - {step: 1, clock: respond, at: "2026-11-20T23:40:00+08:00"}
        - {step: 2, clock: respond, at: "2026-11-21T00:10:00+08:00", notify: [team.lead]}
      notifications:
        - {channel: front-office-chat, topic: incident.reported}
        - {channel: front-office-chat, topic: escalated}
        - {channel: front-office-chat, topic: escalated}
      suppressed: []
  - name: an acknowledgement stops the ladder
    incident: {channel: phone}
    steps:
      - {at: "2026-11-20T23:50:00+08:00", acknowledge: 王芳}
    at: 2026-11-21T02:00:00+08:00
    expect:
      escalations: [{step: 1}]
      acknowledged_at: 2026-11-20T23:50:00+08:00
"""


def ladder_runner() -> TestRunner:
    return TestRunner(qflow.make_plugin_manager(autoload=False, plugins=[(Ladder(), "ladder")]))


def test_escalation_steps_fire_in_order_on_the_virtual_clock(desk):
    path = write_tests(desk, LADDER_CASES)
    result = ladder_runner().run_file(path)
    assert [r.outcome for r in result.results] == ["passed", "passed"], render([result])


def test_a_wrong_ladder_shows_the_steps_expected_and_fired(desk):
    path = write_tests(desk, LADDER_CASES.replace('at: "2026-11-21T00:10:00+08:00", notify', 'at: "2026-11-21T00:40:00+08:00", notify')
                       .replace("escalations: [{step: 1}]", "escalations: []"))
    assert render([ladder_runner().run_file(path)]).splitlines()[:12] == [
        f"FAIL  {path}:4: nobody answers, the ladder climbs",
        "  escalations (line 12)",
        "    expected 2 items",
        "             #2 step=2 clock=respond at=2026-11-21T00:40:00+08:00 notify=[team.lead]",
        "    got      2 items",
        "             #2 step=2 clock=respond at=2026-11-21T00:10:00+08:00 notify=[team.lead]",
        f"FAIL  {path}:20: an acknowledgement stops the ladder",
        "  escalations (line 26)",
        "    expected 0 items",
        "    got      1 item",
        "             #1 type=EscalationStepFired at=2026-11-20T23:40:00+08:00 clock=respond step=1 notify=[team.lead]",
        f"{path}: 0 passed, 2 failed ({ref_of(desk)})",
    ]


def test_the_shipped_rulesets_pass_their_tests():
    files, missing = find_test_files([str(REPO / "rulesets")])
    assert missing == []
    assert sorted(Path(f).name for f in files) == ["hotel-front-desk.tests.yaml", "support-centre.tests.yaml"]
    runner = TestRunner(qflow.make_plugin_manager(autoload=False))
    results = [runner.run_file(f) for f in files]
    assert all(not r.broken for r in results), render(results)
    assert [r.outcome for fr in results for r in fr.results if r.outcome != "passed"] == [], render(results)
    assert sum(len(fr.results) for fr in results) >= 40


REAL_LADDER = BASE + """\
escalation:
  ladders:
    default:
      - at: {clock: respond, used: 50%}
        notify: [assignee]
      - at: {clock: respond, used: 100%}
        notify: [team.lead]
"""


def test_the_escalation_plugin_fires_its_ladder_under_qflow_test(tmp_path):
    """With the built-in escalation plugin: steps are EscalationStepFired events, matched
    on the fields a case names."""
    pm = qflow.make_plugin_manager(autoload=False)
    qflow.load_ruleset_text(REAL_LADDER, file="desk.yaml", plugins=pm)  # the built-in escalation plugin reads it
    (tmp_path / "desk.yaml").write_text(REAL_LADDER, encoding="utf-8")
    path = write_tests(tmp_path, """\
        ruleset: desk.yaml
        now: 2026-11-20T23:10:00+08:00
        tests:
          - name: a normal incident nobody answers
            incident: {channel: email}
            steps:
              - at: 2026-11-21T01:00:00+08:00
                expect:
                  escalations:
                    - {level: 1, clock: respond, at: "2026-11-21T01:10:00+08:00"}
            at: 2026-11-21T08:00:00+08:00
            expect:
              escalations:
                - {level: 1, clock: respond, at: "2026-11-21T01:10:00+08:00"}
                - {level: 2, clock: respond, at: "2026-11-21T03:10:00+08:00"}
          - name: an acknowledgement in time does not stop the respond clock
            incident: {channel: email}
            steps:
              - {at: "2026-11-21T00:00:00+08:00", acknowledge: 王芳}
            at: 2026-11-21T02:00:00+08:00
            expect:
              escalations: [{level: 1}]
        """)
    result = TestRunner(pm).run_file(path)
    text = render([result])
    # The first step must not have fired by 01:00 (it is due at 01:10): the checkpoint fails.
    assert text.splitlines()[:5] == [
        f"FAIL  {path}:4: a normal incident nobody answers",
        "  escalations (line 9)",
        "    expected 1 item",
        "             #1 level=1 clock=respond at=2026-11-21T01:10:00+08:00",
        "    got      0 items",
    ]
    assert [r.outcome for r in result.results] == ["failed", "passed"]
    assert [m.field for m in result.results[0].mismatches] == ["escalations"]


WITH_NOTIFY = REAL_LADDER + """\
notify:
  channels:
    desk-log: {backend: log}
  routes:
    - {channels: [desk-log]}
"""


def test_notifications_planned_by_the_notify_plugin_are_outbox_messages(tmp_path):
    pm = qflow.make_plugin_manager(autoload=False)
    qflow.load_ruleset_text(WITH_NOTIFY, file="desk.yaml", plugins=pm)  # the built-in notify plugin reads it
    (tmp_path / "desk.yaml").write_text(WITH_NOTIFY, encoding="utf-8")
    path = write_tests(tmp_path, """\
        ruleset: desk.yaml
        now: 2026-11-20T23:10:00+08:00
        tests:
          - name: the report, then the warning step, go to the desk's log
            incident: {channel: email}
            at: 2026-11-21T02:00:00+08:00
            expect:
              notifications:
                - {channel: desk-log, backend: log, topic: incident.reported}
                - {channel: desk-log, topic: escalation.step}
        """)
    result = TestRunner(pm).run_file(path)
    assert result.results[0].mismatches[0].expected == ("2 items", "#2 channel=desk-log topic=escalation.step")
    assert result.results[0].mismatches[0].got[0] == "2 items"
    assert result.results[0].mismatches[0].got[1].startswith("#2 channel=desk-log topic=escalation.")


def test_a_case_that_expects_nothing_is_an_error(desk):
    path = write_tests(desk, "ruleset: desk.yaml\nnow: 2026-11-20T23:10:00+08:00\n"
                             "tests:\n  - name: empty\n    incident: {channel: phone}\n    expect: {}\n")
    status, out, _ = run_cli("test", "--no-plugins", path)
    assert status == 1
    assert out.splitlines()[0] == (f"{path}:6:13: QF603 the case expects nothing, so it cannot fail "
                                   "(say what must come out: severity, team, respond_by ...) @ $.tests[0].expect")


# -- whatever a tests file holds, qflow test reports; it never crashes -------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEYS = ["ruleset", "now", "tests", "name", "incident", "expect", "steps", "at", "severity", "team",
         "deadlines", "respond", "due", "business", "escalations", "events", "transition", "acknowledge",
         "report", "channel", "category", "stage", "set_by", "matched", "defaults", "skip", "x"]
_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.sampled_from(
    ["desk.yaml", "2026-11-20T23:10:00+08:00", "2026-11-20", "1h", "1hr", "high", "front-office", "closed",
     "phone", "", "王芳"]))
_DOCS = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(_KEYS), inner, max_size=5)), max_leaves=25)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(_DOCS, st.fixed_dictionaries(
    {"ruleset": st.just("desk.yaml"), "tests": st.lists(st.dictionaries(st.sampled_from(_KEYS), _DOCS, max_size=6),
                                                        max_size=3)})))
def test_any_tests_file_gives_results_or_located_diagnostics(desk, doc):
    path = str(desk / "random.tests.yaml")
    result = TestRunner(qflow.make_plugin_manager(autoload=False)).run_file(path, json.dumps(doc, ensure_ascii=False))
    for d in result.diagnostics:
        assert d.line >= 1 and d.col >= 1 and d.code.startswith("QF")
    assert result.broken or result.results or result.errors or not doc.get("tests")
    render([result])  # and the report renders
