"""--format text|json|github on every command that reports diagnostics."""

from __future__ import annotations

import json

import pytest

from qflow.cli import main
from qflow.diagnostics import CODES, Diagnostic, as_github, format_diagnostics

BROKEN = "tests/data/cli/broken.yaml"
OBJECTS = [
    {"file": BROKEN, "line": 6, "col": 19, "code": "QF105", "severity": "error",
     "message": "'1hr' is not a duration", "hint": "use 15m, 1h, 2d, 1w or a sum like 1h30m",
     "path": "$.severities.high.respond", "rule": None},
    {"file": BROKEN, "line": 10, "col": 20, "code": "QF201", "severity": "error",
     "message": "unknown team 'enginering'", "hint": "did you mean 'engineering'?",
     "path": "$.route[0].assign.team", "rule": "kaput"},
]
GITHUB = (
    "::error file=tests/data/cli/broken.yaml,line=6,col=19,title=QF105::'1hr' is not a duration "
    "(use 15m, 1h, 2d, 1w or a sum like 1h30m) @ $.severities.high.respond\n"
    "::error file=tests/data/cli/broken.yaml,line=10,col=20,title=QF201::unknown team 'enginering' "
    "(did you mean 'engineering'?) @ $.route[0].assign.team (rule 'kaput')\n"
)


def test_check_json(capsys):
    assert main(["--no-plugins", "check", "--format", "json", BROKEN]) == 1
    out, err = capsys.readouterr()
    assert json.loads(out) == OBJECTS
    assert err == "2 errors in 1 file\n"


def test_check_github(capsys):
    assert main(["--no-plugins", "check", "--format", "github", BROKEN]) == 1
    assert capsys.readouterr() == (GITHUB, "2 errors in 1 file\n")


def test_check_json_of_a_valid_ruleset_is_an_empty_array(capsys):
    assert main(["--no-plugins", "check", "--format", "json", "tests/data/cli/desk.yaml"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out) == [] and err.startswith("tests/data/cli/desk.yaml: ok (")


@pytest.mark.parametrize("command", [
    ["decide", BROKEN, "--input", "tests/data/cli/incidents.jsonl", "--now", "2026-11-20T23:10:00+08:00"],
    ["explain", BROKEN, "--incident", "{}", "--now", "2026-11-20T23:10:00+08:00"],
])
def test_a_broken_ruleset_in_any_command_follows_the_format(command, capsys):
    assert main(["--no-plugins", *command, "--format", "json"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and json.loads(err) == OBJECTS
    assert main(["--no-plugins", *command, "--format", "github"]) == 1
    out, err = capsys.readouterr()
    assert out == "" and err == GITHUB + (
        f"qflow: 2 errors in {BROKEN}; run 'qflow check {BROKEN}' after fixing\n")


def test_github_escapes_what_would_break_the_line():
    d = Diagnostic("a,b:c.yaml", 1, 2, "QF103", "50% of\nit", severity="warning")
    assert as_github(d) == "::warning file=a%2Cb%3Ac.yaml,line=1,col=2,title=QF103::50%25 of%0Ait @ $"


def test_unknown_format_is_a_usage_error(capsys):
    assert main(["check", "--format", "xml", BROKEN]) == 2
    assert capsys.readouterr().err.startswith("qflow: error: argument --format: invalid choice: 'xml'")


def test_text_is_the_default_and_unchanged():
    d = Diagnostic("f.yaml", 3, 4, "QF101", "unknown key 'x'", "$.a.x", "did you mean 'y'?", "r")
    assert format_diagnostics([d], "text") == "f.yaml:3:4: QF101 unknown key 'x' (did you mean 'y'?) @ $.a.x (rule 'r')\n"
    assert format_diagnostics([], "json") == "[]\n"


def test_the_lint_codes_are_documented_as_warnings():
    for code in ("QF650", "QF651", "QF652", "QF653", "QF654", "QF655", "QF656"):
        assert CODES[code].startswith("lint: ")
