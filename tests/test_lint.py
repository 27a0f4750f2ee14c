"""qflow lint: every finding as an exact line, exit codes, plugins' references count."""

from __future__ import annotations

import json

import pytest

import qflow
from qflow._lint import implies, logic, never_holds
from qflow.cli import main

PM = qflow.make_plugin_manager(autoload=False)

HEAD = """\
qflow: 1
teams: {desk: {}, hsk: {}}
severities:
  high: {respond: 1h, resolve: 1d}
  normal: {respond: 4h, resolve: 3d}
"""
CLEAN_TAIL = """\
route:
  - {id: hyg, when: {category: hygiene}, assign: {team: hsk}}
  - {id: d, assign: {team: desk}}
"""


def lint(tmp_path, capsys, body: str, *args: str) -> tuple[int, list[str]]:
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + body, encoding="utf-8")
    status = main(["--no-plugins", "lint", str(path), *args])
    out = capsys.readouterr().out.replace(str(tmp_path) + "/", "")
    return status, out.splitlines()


def test_a_clean_ruleset(tmp_path, capsys):
    body = "classify:\n  - {id: vip, when: {customer.tier: gold}, set: {severity: high}}\n" \
           "  - {id: d, set: {severity: normal}}\n" + CLEAN_TAIL
    assert lint(tmp_path, capsys, body) == (0, ["1 file clean"])
    assert lint(tmp_path, capsys, body, "--strict") == (0, ["1 file clean"])


def test_every_kind_of_finding(tmp_path, capsys):
    body = """\
classify:
  - {id: wide, when: {category: [complaint, billing]}, set: {severity: high}}
  - {id: narrow, when: 'category == "complaint" and channel == "phone"', set: {severity: high}}
  - {id: contra, when: {category: a, all: [{category: b}]}, set: {severity: high}}
  - {id: always, when: {any: [{channel: phone}, {channel: {ne: phone}}]}, set: {category: x}}
  - {id: empty-re, when: {description: {matches: "fire|"}}, set: {severity: high}}
  - {id: range, when: 'impact > 5 and impact < 3', set: {severity: high}}
  - {id: d1, set: {severity: normal}}
  - {id: d2, set: {severity: high}}
route:
  mode: first
  rules:
    - {id: everything, assign: {team: desk}}
    - {id: later, when: {category: hygiene}, assign: {team: hsk}}
"""
    status, lines = lint(tmp_path, capsys, body)
    assert status == 0
    assert lines == [
        "r.yaml:8:5: QF650 rule 'narrow' can never take effect: whenever it matches, 'wide' (line 7) already set severity (first match per field) (move it above 'wide', narrow the earlier rule, or remove this one) @ $.classify[1] (rule 'narrow')",
        "r.yaml:9:24: QF653 the condition can never hold: category cannot be 'a' and 'b' at once (the rule never applies; correct the values or remove the rule) @ $.classify[2].when (rule 'contra')",
        "r.yaml:10:24: QF654 the condition always holds: channel is either one of the values or not one of them (remove 'when' to make the rule a default, or narrow the condition) @ $.classify[3].when (rule 'always')",
        "r.yaml:11:50: QF655 the regular expression 'fire|' can match the empty text, so it matches every text of description (remove the empty alternative (a trailing '|') or use + instead of *) @ $.classify[4].when (rule 'empty-re')",
        "r.yaml:12:23: QF653 the condition can never hold: impact cannot be more than 5 and less than 3 (the rule never applies; correct the values or remove the rule) @ $.classify[5].when (rule 'range')",
        "r.yaml:14:5: QF650 default 'd2' can never take effect: the earlier default 'd1' (line 13) already sets severity (keep one default per field) @ $.classify[7] (rule 'd2')",
        "r.yaml:19:7: QF650 rule 'later' can never match: rule 'everything' (line 18) matches whenever it does and stops there (mode first) (move it above 'everything', or give 'everything' 'continue: true') @ $.route.rules[1] (rule 'later')",
        "7 warnings in 1 file",
    ]
    status, _ = lint(tmp_path, capsys, body, "--strict")
    assert status == 1


def test_mode_all_overridden_rules_and_no_default_in_a_list(tmp_path, capsys):
    body = """\
classify:
  - {id: vip, when: {customer.tier: gold}, set: {severity: high}}
route:
  mode: all
  rules:
    - {id: hyg, when: {category: hygiene, place: lobby}, assign: {team: hsk}}
    - {id: desk, when: {category: hygiene}, assign: {team: desk}}
  default: {team: desk}
"""
    assert lint(tmp_path, capsys, body) == (0, [
        "r.yaml:5:11: QF652 severity 'normal' is defined and never used (nothing refers to it; remove it, or use it "
        "in a rule) @ $.severities.normal",
        "r.yaml:6:1: QF651 classify has no default: when no rule matches, severity stays unset (add a last rule "
        "without 'when' that sets a value for each) @ $.classify",
        "r.yaml:11:7: QF656 rule 'hyg' is always overridden: whenever it matches, 'desk' (line 12) matches too and "
        "sets team (mode all: later rules win) (remove it, or move it below them) @ $.route.rules[0] (rule 'hyg')",
        "3 warnings in 1 file",
    ])


def test_a_broken_ruleset_reports_its_errors_and_exits_1(tmp_path, capsys):
    status, lines = lint(tmp_path, capsys, "route:\n  - {id: a, assign: {team: dsk}}\n")
    assert (status, lines) == (1, [
        "r.yaml:7:28: QF201 unknown team 'dsk' (did you mean 'desk'?) @ $.route[0].assign.team (rule 'a')",
        "1 error in 1 file"])


def test_json_and_github_formats(tmp_path, capsys):
    path = tmp_path / "r.yaml"
    path.write_text(HEAD + CLEAN_TAIL + "classify:\n  - {id: d, set: {severity: normal}}\n", encoding="utf-8")
    assert main(["--no-plugins", "lint", "--format", "json", str(path)]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [{"file": str(path), "line": 4, "col": 9, "code": "QF652", "severity": "warning",
                                "message": "severity 'high' is defined and never used",
                                "hint": "nothing refers to it; remove it, or use it in a rule",
                                "path": "$.severities.high", "rule": None}]
    assert err == "1 warning in 1 file\n"
    assert main(["--no-plugins", "lint", "--format", "github", "--strict", str(path)]) == 1
    out, _ = capsys.readouterr()
    assert out == (f"::warning file={str(path).replace(':', '%3A')},line=4,col=9,title=QF652::severity 'high' is "
                   "defined and never used (nothing refers to it; remove it, or use it in a rule) @ $.severities.high\n")


def test_references_from_any_plugin_count():
    class Uses:
        @qflow.hookimpl
        def qflow_ruleset_sections(self):
            def compile_(value, ctx):
                ctx.refer("team", value["team"], ("pager", "team"))
                return value
            return [qflow.Section("pager", dict[str, str], compile_)]

    pm = qflow.make_plugin_manager(autoload=False, plugins=[(Uses(), "uses")])
    from qflow._lint import lint_ruleset

    text = HEAD + "pager: {team: hsk}\nclassify:\n  - {id: d, set: {severity: normal}}\n" \
                  "route:\n  - {id: d, assign: {team: desk}}\n"
    found = [d.code + " " + d.message for d in lint_ruleset(qflow.load_ruleset_text(text, plugins=pm), pm)]
    assert found == ["QF652 severity 'high' is defined and never used"]


def test_shipped_rulesets_lint_without_errors(capsys):
    assert main(["lint", "rulesets/hotel-front-desk.yaml", "rulesets/support-centre.yaml"]) == 0
    capsys.readouterr()


@pytest.mark.parametrize(("b", "a", "expected"), [
    ({"category": "x", "channel": "phone"}, {"category": ["x", "y"]}, True),
    ({"category": ["x", "z"]}, {"category": ["x", "y"]}, False),
    ({"impact": {"ge": 3}}, {"impact": {"gt": 2}}, True),
    ({"impact": {"ge": 2}}, {"impact": {"gt": 2}}, False),
    ({"impact": [3, 4]}, {"impact": {"between": [2, 4]}}, True),
    ({"any": [{"category": "x"}, {"category": "y"}]}, {"category": ["x", "y"]}, True),
    ({"category": "x"}, {"any": [{"channel": "a"}, {"category": "x"}]}, True),
    ({"category": "x"}, {"category": {"ne": "y"}}, True),
    ({"category": "x"}, {"category": {"exists": True}}, True),
    ({"description": {"matches": "a"}}, {"description": {"exists": True}}, True),
    ({"category": True}, {"category": 1}, False),
    ('category == "x" and impact >= 3', {"category": "x"}, True),
])
def test_implication(b, a, expected):
    assert implies(logic(b), logic(a)) is expected


@pytest.mark.parametrize(("spec", "why"), [
    ({"category": "a", "all": [{"category": "b"}]}, "category cannot be 'a' and 'b' at once"),
    ({"category": {"in": ["a"], "not_in": ["a"]}}, "category must be 'a' and also must not be"),
    ({"tier": {"exists": False, "matches": "x"}}, "tier must be missing, yet another test needs a value"),
    ({"impact": {"ge": 3, "lt": 3}}, "impact cannot be at least 3 and less than 3"),
    ({"impact": [1, 2], "all": [{"impact": {"gt": 4}}]}, "impact must be one of 1, 2, and more than 4"),
    ({"any": [{"category": "a", "all": [{"category": "b"}]}, {"x": {"in": [1], "not_in": [1]}}]},
     "none of the alternatives under 'any' can hold"),
    ({"not": {"any": [{"x": 1}, {"x": {"ne": 1}}]}},
     "'not' excludes a condition that always holds (x is either one of the values or not one of them)"),
    ({"impact": {"ge": 3}, "category": "a"}, None),
])
def test_never(spec, why):
    assert never_holds(logic(spec)) == why
