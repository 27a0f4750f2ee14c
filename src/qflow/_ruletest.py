"""Ruleset tests: "given this incident at this time, expect this decision".

A tests file sits next to its ruleset (``hotel.yaml`` → ``hotel.tests.yaml``)::

    ruleset: hotel.yaml              # relative to this file
    now: 2026-11-20T23:10:00+08:00   # optional default time for every case
    defaults: {channel: phone}       # optional: merged into every case's incident
    tests:
      - name: a gold guest's phone complaint is high
        now: 2026-11-20T23:10:00+08:00
        incident: {category: complaint, customer: {tier: gold}}
        expect: {severity: high, team: front-office, respond_by: 2026-11-21T00:10:00+08:00}
      - name: nobody answers: the ladder climbs
        incident: {...}
        steps:                       # in time order, each at a time on the virtual clock
          - {at: 2026-11-20T23:20:00+08:00, acknowledge: 王芳}
          - {at: 2026-11-20T23:40:00+08:00, expect: {escalations: [{step: 1}]}}
        at: 2026-11-21T02:00:00+08:00   # then run the clock to here
        expect: {escalations: [...], notifications: [...], stage: reported}

A case whose expectations concern only the decision is decided (``Engine.decide``,
pure, nothing stored); the others are reported into a fresh in-memory store on a
:class:`~qflow.FakeClock`, and the clock is run step by step with ``Engine.tick`` at
every due timer, as a worker polling often would.

Every problem in a tests file is a located :class:`~qflow.Diagnostic` (QF600-QF649);
a failing case lists, per field, what was expected and what came out.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import attrs
from cattrs.errors import BaseValidationError

from qflow import events as ev
from qflow._convert import ShapeError, format_duration, make_converter, parse_duration, parse_time, structure_errors
from qflow._yaml import Mark, YMap, YSeq, load_yaml, locate
from qflow.clock import FakeClock
from qflow.diagnostics import Diagnostic, RulesetError, did_you_mean, json_path, sort_diagnostics
from qflow.engine import Engine
from qflow.errors import QflowError
from qflow.model import Decision, Event, Incident, IncidentState, Stage
from qflow.ruleset import Ruleset, load_ruleset
from qflow.store import MemoryStore

__all__ = [
    "Case", "CaseResult", "FileResult", "Mismatch", "TESTS_SUFFIX", "TestFile", "TestRunner",
    "find_test_files", "parse_test_file", "tests_file_for",
]

TESTS_SUFFIX = ".tests.yaml"

#: The event the escalation plugin records for each step it fires.
ESCALATION_EVENT = "EscalationStepFired"

_TOP_KEYS = ("ruleset", "now", "defaults", "tests", "description")
_CASE_KEYS = ("name", "now", "incident", "steps", "at", "expect", "skip", "note")
_STEP_ACTIONS = ("acknowledge", "respond", "set_status", "transition", "change_severity", "reassign",
                 "report", "event")
_STEP_KEYS = ("at", "expect", "note", *_STEP_ACTIONS)

_DECISION_FIELDS = ("category", "severity", "priority", "team", "owner", "responsibility")
_NAMED = {"category": "category", "severity": "severity", "team": "team", "responsibility": "responsibility"}
_DEADLINE_SHORT = {"respond_by": "respond", "resolve_by": "resolve"}
_STATE_FIELDS = ("stage", "status", "acknowledged_at", "responded_at")
_LIST_FIELDS = ("escalations", "notifications", "suppressed", "events")
_EXPECT_FIELDS = (*_DECISION_FIELDS, *_DEADLINE_SHORT, "deadlines", "matched", "set_by", "would_match",
                  *_STATE_FIELDS, *_LIST_FIELDS)
_DEADLINE_KEYS = ("due", "start", "business", "calendar_time", "calendar")
#: Expectations that need the incident recorded and its log read (not just decided).
_NEEDS_STORE = frozenset((*_STATE_FIELDS, *_LIST_FIELDS))

_CONVERTER = make_converter()

P = tuple[str | int, ...]


# ---------------------------------------------------------------------------
# What a tests file holds
# ---------------------------------------------------------------------------


@attrs.frozen
class Check:
    """One expected field, where it was written."""

    field: str
    expected: Any
    line: int
    col: int = 1
    path: str = "$"


@attrs.frozen
class Step:
    """Something that happens to the case's incidents at a time, then what to expect."""

    action: str | None  # None: only let the clock run to ``at``
    value: Any
    at: datetime | None
    line: int
    checks: tuple[Check, ...] = ()


@attrs.frozen
class Case:
    name: str
    file: str
    line: int
    now: datetime
    incident: Incident
    steps: tuple[Step, ...] = ()
    until: datetime | None = None
    checks: tuple[Check, ...] = ()
    skip: str | None = None

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    @property
    def needs_store(self) -> bool:
        return bool(self.steps) or self.until is not None or any(c.field in _NEEDS_STORE for c in self.checks)


@attrs.frozen
class TestFile:
    path: str
    ruleset: str  # the path of the ruleset, as the tests file names it, joined to its folder
    ruleset_mark: Mark
    cases: tuple[Case, ...]


@attrs.frozen
class Mismatch:
    """One field that did not come out as expected: rendered lines of each side."""

    field: str
    line: int
    expected: tuple[str, ...]
    got: tuple[str, ...]


@attrs.frozen
class CaseResult:
    case: Case
    outcome: str  # passed, failed, skipped, error
    mismatches: tuple[Mismatch, ...] = ()
    error: str | None = None


@attrs.frozen
class FileResult:
    path: str
    ruleset: str | None  # name@hash that ran, None when the file or the ruleset is broken
    diagnostics: tuple[Diagnostic, ...] = ()
    results: tuple[CaseResult, ...] = ()

    @property
    def broken(self) -> bool:
        """No case ran: the file or its ruleset could not be read."""
        return self.ruleset is None

    @property
    def errors(self) -> int:
        """Problems in the file (located diagnostics) and cases that crashed."""
        return sum(1 for d in self.diagnostics if d.severity == "error") + self.count("error")

    def count(self, outcome: str) -> int:
        return sum(1 for r in self.results if r.outcome == outcome)


# ---------------------------------------------------------------------------
# Finding tests files
# ---------------------------------------------------------------------------


def tests_file_for(ruleset: str | os.PathLike[str]) -> Path:
    """Where the tests of *ruleset* live: ``x.yaml`` → ``x.tests.yaml`` beside it."""
    p = Path(ruleset)
    stem = p.name[: -len(p.suffix)] if p.suffix in (".yaml", ".yml") else p.name
    return p.with_name(stem + TESTS_SUFFIX)


def find_test_files(paths: Sequence[str]) -> tuple[list[str], list[str]]:
    """The tests files *paths* name (files, rulesets or folders), and the paths that
    name none, each with why."""
    found: list[str] = []
    missing: list[str] = []
    for raw in paths:
        p = Path(raw)
        if p.is_dir():
            inside = sorted(str(f) for f in p.rglob("*" + TESTS_SUFFIX) if f.is_file())
            if inside:
                found.extend(inside)
            else:
                missing.append(f"no *{TESTS_SUFFIX} files under '{raw}'")
        elif p.name.endswith(TESTS_SUFFIX):
            if p.is_file():
                found.append(raw)
            else:
                missing.append(f"no such tests file: '{raw}'")
        elif p.is_file():
            tests = tests_file_for(p)
            if tests.is_file():
                found.append(str(tests))
            else:
                missing.append(f"ruleset '{raw}' has no tests file (expected '{tests}')")
        else:
            missing.append(f"no such file or folder: '{raw}'")
    seen: set[str] = set()
    unique = [f for f in found if not (os.path.realpath(f) in seen or seen.add(os.path.realpath(f)))]
    return unique, missing


# ---------------------------------------------------------------------------
# Parsing, with every problem located
# ---------------------------------------------------------------------------


class _Parser:
    def __init__(self, path: str, root: Any) -> None:
        self.path = path
        self.root = root
        self.diags: list[Diagnostic] = []

    def mark(self, path: P, at: str = "value") -> Mark:
        return locate(self.root, path, at=at) or Mark(self.path, 0, 0)

    def line(self, path: P, at: str = "value") -> int:
        return self.mark(path, at).line + 1

    def error(self, path: P, code: str, message: str, hint: str | None = None, *, at: str = "value",
              severity: str = "error") -> None:
        m = self.mark(path, at)
        self.diags.append(Diagnostic(m.file, m.line + 1, m.col + 1, code, message, json_path(path), hint,
                                     severity=severity))  # type: ignore[arg-type]

    def unknown_keys(self, node: YMap, path: P, known: Sequence[str], what: str) -> None:
        for key in node:
            if key not in known:
                hint = did_you_mean(key, known) or f"the keys of {what} are: {', '.join(known)}"
                self.error(path + (str(key),), "QF602", f"unknown key '{key}' in {what}", hint, at="key")

    def time(self, value: Any, path: P) -> datetime | None:
        try:
            return parse_time(value)
        except ShapeError as exc:
            self.error(path, "QF605", exc.message, exc.hint)
            return None

    def duration(self, value: Any, path: P) -> timedelta | None:
        if isinstance(value, timedelta):
            return value
        try:
            return parse_duration(value)
        except ShapeError as exc:
            self.error(path, "QF605", exc.message, exc.hint)
            return None


def parse_test_file(path: str, text: str | None = None) -> tuple[TestFile | None, list[Diagnostic]]:
    """Read the tests file at *path*; return it (None when it cannot run) and every problem."""
    if text is None:
        try:
            text = Path(path).read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            return None, [Diagnostic(path, 1, 1, "QF003", f"file '{path}' is not UTF-8 text (at byte {exc.start})",
                                     hint="save the file as UTF-8")]
        except OSError as exc:
            return None, [Diagnostic(path, 1, 1, "QF003", f"file '{path}' cannot be read ({exc.strerror})")]
    doc, problems = load_yaml(text, path)
    problems = [_flow_hint(d) for d in problems]
    if doc is None and not problems:
        problems = [Diagnostic(path, 1, 1, "QF601", "the tests file is empty",
                               hint="start it with 'ruleset: NAME.yaml' and 'tests:'")]
    if doc is None:
        return None, problems
    p = _Parser(path, doc)
    p.diags.extend(problems)
    if not isinstance(doc, YMap):
        p.error((), "QF601", "a tests file must be a mapping with 'ruleset:' and 'tests:'",
                "start it with 'ruleset: NAME.yaml' and list the cases under 'tests:'")
        return None, p.diags
    p.unknown_keys(doc, (), _TOP_KEYS, "a tests file")
    ruleset = doc.get("ruleset")
    ok = True
    if ruleset is None:
        guess = Path(path).name[: -len(TESTS_SUFFIX)] + ".yaml" if path.endswith(TESTS_SUFFIX) else "NAME.yaml"
        p.error((), "QF603", "missing key 'ruleset'", f"name the ruleset these cases test: 'ruleset: {guess}'")
        ok = False
    elif not isinstance(ruleset, str) or not ruleset.strip():
        p.error(("ruleset",), "QF604", "ruleset must be the path of a ruleset file",
                "write it relative to this file, e.g. 'ruleset: hotel.yaml'")
        ok = False
    file_now = p.time(doc["now"], ("now",)) if "now" in doc else None
    defaults = doc.get("defaults")
    if defaults is not None and not isinstance(defaults, dict):
        p.error(("defaults",), "QF604", "defaults must be a mapping of incident fields",
                "e.g. 'defaults: {channel: phone}'")
        defaults = None
    tests = doc.get("tests")
    cases: list[Case] = []
    if tests is None:
        p.error((), "QF603", "missing key 'tests'", "list the cases under 'tests:', one '- name: ...' each")
        ok = False
    elif not isinstance(tests, YSeq):
        p.error(("tests",), "QF604", "tests must be a list of cases", "write one '- name: ...' item per case")
        ok = False
    else:
        if not tests:
            p.error(("tests",), "QF603", "the file has no cases", "add at least one '- name: ...' item")
        names: dict[str, int] = {}
        for i, raw in enumerate(tests):
            case = _parse_case(p, ("tests", i), raw, file_now, defaults or {}, file_has_now="now" in doc)
            if case is None:
                continue
            if case.name in names:
                p.error(("tests", i, "name"), "QF610", f"case name '{case.name}' is used twice",
                        f"first at line {names[case.name]}; give each case its own name", severity="warning")
            names.setdefault(case.name, case.line)
            cases.append(case)
    if not ok:
        return None, p.diags
    folder = os.path.dirname(path)
    return TestFile(path, os.path.normpath(os.path.join(folder, ruleset)), p.mark(("ruleset",)), tuple(cases)), p.diags


def _flow_hint(d: Diagnostic) -> Diagnostic:
    # The C parser reads YAML 1.1, where a ':' inside {...} always ends a key: the
    # times tests are full of trip over it. Say how to write them.
    if d.code == "QF001" and "found unexpected ':'" in d.message:
        return attrs.evolve(d, hint="inside {...} put a time in quotes, at: \"2026-11-20T23:10:00+08:00\", "
                                    "or write the mapping one key per line")
    return d


def _parse_case(p: _Parser, path: P, raw: Any, file_now: datetime | None, defaults: Mapping[str, Any], *,
                file_has_now: bool = False) -> Case | None:
    if not isinstance(raw, YMap):
        p.error(path, "QF604", "a case must be a mapping with name, incident and expect",
                "write '- name: ...' and indent incident: and expect: below it")
        return None
    p.unknown_keys(raw, path, _CASE_KEYS, "a case")
    errors_before = _errors(p)
    name = raw.get("name")
    if name is None:
        p.error(path, "QF603", "missing key 'name'", "say in a sentence what the case shows")
        name = f"case {path[-1] + 1}"
    elif not isinstance(name, str) or not name.strip():
        p.error(path + ("name",), "QF604", "name must be non-empty text")
        name = f"case {path[-1] + 1}"
    data = raw.get("incident")
    if data is None:
        p.error(path, "QF603", "missing key 'incident'", "give the incident as it is reported: channel, category, ...")
    elif not isinstance(data, dict):
        p.error(path + ("incident",), "QF604", "incident must be a mapping of incident fields")
        data = None
    now = p.time(raw["now"], path + ("now",)) if "now" in raw else None
    reported = isinstance(data, dict) and "reported_at" in data
    if now is None and "now" not in raw and reported:
        # A bad reported_at is the incident's mistake: reading the incident says so (QF606).
        now = _time_or_none(data["reported_at"])
    if now is None and "now" not in raw:
        now = file_now
        # A bad file-level now has been reported once, not again for each case using it.
        if now is None and not reported and not file_has_now:
            p.error(path, "QF603", "the case has no time", "give 'now:' (when it is reported) here or at the top of the file")
    incident = _parse_incident(p, path + ("incident",), data, defaults, now) if data is not None else None
    until = p.time(raw["at"], path + ("at",)) if "at" in raw else None
    if "expect" not in raw:
        p.error(path, "QF603", "missing key 'expect'", "say what the decision must be: severity, team, respond_by ...")
        checks: tuple[Check, ...] = ()
    else:
        checks = _parse_expect(p, path + ("expect",), raw["expect"])
        if not checks and isinstance(raw["expect"], YMap) and not raw["expect"] and "steps" not in raw:
            p.error(path + ("expect",), "QF603", "the case expects nothing, so it cannot fail",
                    "say what must come out: severity, team, respond_by ...")
    steps = _parse_steps(p, path + ("steps",), raw.get("steps"), now, until, defaults) if "steps" in raw else ()
    if until is not None and now is not None and until < now:
        p.error(path + ("at",), "QF609", f"at {until.isoformat()} is before the case's time {now.isoformat()}",
                "the clock only moves forward; give a later time")
    skip = raw.get("skip")
    if skip is not None and not isinstance(skip, str):
        skip = "skipped" if skip else None
    if _errors(p) > errors_before or incident is None or now is None:
        return None
    return Case(str(name), p.path, p.line(path), now, incident, steps, until, checks, skip)


def _time_or_none(value: Any) -> datetime | None:
    try:
        return parse_time(value)
    except ShapeError:
        return None


def _errors(p: _Parser) -> int:
    return sum(1 for d in p.diags if d.severity == "error")


def _parse_incident(p: _Parser, path: P, data: Mapping[str, Any], defaults: Mapping[str, Any],
                    now: datetime | None) -> Incident | None:
    merged = {**defaults, **data}
    if "reported_at" not in merged and now is not None:
        merged["reported_at"] = now
    try:
        return _CONVERTER.structure(merged, Incident)
    except (BaseValidationError, ShapeError, ValueError, TypeError) as exc:
        problems = structure_errors(exc, Incident) or [((), "QF606", str(exc), None, "value")]
        for sub, _code, msg, hint, where in problems:
            at_path = path + sub[:-1] if where == "parent" else path + sub
            p.error(at_path, "QF606", f"incident: {msg}", hint, at="key" if where == "key" else "value")
        return None


def _parse_steps(p: _Parser, path: P, raw: Any, now: datetime | None, until: datetime | None,
                 defaults: Mapping[str, Any]) -> tuple[Step, ...]:
    if not isinstance(raw, YSeq):
        p.error(path, "QF604", "steps must be a list", "one '- at: ...' item per step, in time order")
        return ()
    out = []
    last = now
    for i, item in enumerate(raw):
        here = path + (i,)
        if not isinstance(item, YMap):
            p.error(here, "QF604", "a step must be a mapping such as '{at: TIME, acknowledge: NAME}'")
            continue
        p.unknown_keys(item, here, _STEP_KEYS, "a step")
        at = p.time(item["at"], here + ("at",)) if "at" in item else None
        if at is not None and last is not None and at < last:
            p.error(here + ("at",), "QF609", f"step at {at.isoformat()} is before the one before it ({last.isoformat()})",
                    "list the steps in time order; the clock only moves forward")
        last = at or last
        actions = [k for k in item if k in _STEP_ACTIONS]
        if len(actions) > 1:
            p.error(here, "QF611", f"a step does one thing, this one has {len(actions)}: {', '.join(actions)}",
                    "split it into several steps")
            continue
        if not actions and "at" not in item and "expect" not in item:
            p.error(here, "QF611", "the step does nothing",
                    f"give one of {', '.join(_STEP_ACTIONS)}, or 'at:' to let the clock run")
            continue
        action = actions[0] if actions else None
        value = item[action] if action else None
        if action == "report":
            if not isinstance(value, dict):
                p.error(here + ("report",), "QF604", "report must be an incident (a mapping)")
                continue
            value = _parse_incident(p, here + ("report",), value, defaults, at or now)
            if value is None:
                continue
        elif action is not None and not _step_value_ok(p, here + (action,), action, value):
            continue
        checks = _parse_expect(p, here + ("expect",), item["expect"]) if "expect" in item else ()
        out.append(Step(action, value, at, p.line(here), checks))
    if until is not None and last is not None and until < last:
        p.error(path[:-1] + ("at",), "QF609", f"at {until.isoformat()} is before the last step ({last.isoformat()})",
                "the clock only moves forward; give a later time")
    return tuple(out)


_STEP_SHAPES: dict[str, tuple[str, tuple[str, ...]]] = {
    # action: (the key a bare value means, the keys a mapping may have)
    "acknowledge": ("by", ("by", "note")),
    "respond": ("message", ("message", "channel", "by")),
    "set_status": ("to", ("to", "reason", "by")),
    "transition": ("to", ("to", "reason", "by")),
    "change_severity": ("to", ("to", "reason", "by")),
    "reassign": ("team", ("team", "owner", "reason", "by")),
    "event": ("type", ("type", "data", "source", "by")),
}


def _step_value_ok(p: _Parser, path: P, action: str, value: Any) -> bool:
    main, keys = _STEP_SHAPES[action]
    if isinstance(value, dict):
        before = _errors(p)
        p.unknown_keys(value, path, keys, f"'{action}'")
        if action in ("set_status", "transition", "change_severity", "event") and main not in value:
            p.error(path, "QF603", f"missing key '{main}'")
        if action == "transition" and isinstance(value.get("to"), str):
            _stage_ok(p, path + ("to",), value["to"])
        return _errors(p) == before
    if isinstance(value, str) or (value is None and action == "acknowledge"):
        return action != "transition" or _stage_ok(p, path, value)
    p.error(path, "QF604", f"{action} takes a text ({main}) or a mapping of {', '.join(keys)}")
    return False


def _stage_ok(p: _Parser, path: P, value: Any) -> bool:
    names = [s.value for s in Stage]
    if value in names:
        return True
    p.error(path, "QF604", f"'{value}' is not a stage",
            did_you_mean(value, names) or f"the stages are: {', '.join(names)}")
    return False


def _parse_expect(p: _Parser, path: P, raw: Any) -> tuple[Check, ...]:
    if not isinstance(raw, YMap):
        p.error(path, "QF604", "expect must be a mapping of fields to expected values",
                "e.g. 'expect: {severity: high, team: front-office}'")
        return ()
    checks = []
    for key, value in raw.items():
        here = path + (str(key),)
        if key not in _EXPECT_FIELDS:
            p.error(here, "QF602", f"unknown expectation '{key}'",
                    did_you_mean(key, _EXPECT_FIELDS) or f"expect one of: {', '.join(_EXPECT_FIELDS)}", at="key")
            continue
        parsed = _parse_expected_value(p, here, str(key), value)
        if parsed is not _BAD:
            m = p.mark(here)
            checks.append(Check(str(key), parsed, p.line(here, "key"), m.col + 1, json_path(here)))
    return tuple(checks)


_BAD = object()


def _parse_expected_value(p: _Parser, path: P, field: str, value: Any) -> Any:
    before = _errors(p)
    result: Any = value
    if field in _DECISION_FIELDS or field == "status":
        if value is not None and not isinstance(value, (str, int)):
            p.error(path, "QF604", f"{field} must be a name (or null for unset)")
        result = None if value is None else str(value)
    elif field == "stage":
        if _stage_ok(p, path, value):
            result = str(value)
    elif field in _DEADLINE_SHORT or field in ("acknowledged_at", "responded_at"):
        result = None if value is None else p.time(value, path)
    elif field == "deadlines":
        result = _parse_deadlines(p, path, value)
    elif field in ("matched", "would_match"):
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            p.error(path, "QF604", f"{field} must be a list of rule ids", "e.g. [vip-complaint, default]")
        else:
            result = tuple(value)
    elif field == "set_by":
        if not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values()):
            p.error(path, "QF604", "set_by must map fields to the rule that set them",
                    "e.g. {severity: classify:vip-complaint}")
        else:
            for key in value:
                if key not in _DECISION_FIELDS:
                    p.error(path + (str(key),), "QF602", f"'{key}' is not a decided field",
                            did_you_mean(key, _DECISION_FIELDS) or f"use one of: {', '.join(_DECISION_FIELDS)}", at="key")
            result = dict(value)
    elif field in _LIST_FIELDS:
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            p.error(path, "QF604", f"{field} must be a list of mappings (or [] for none)",
                    "e.g. [{channel: front-office-chat, topic: incident.reported}]")
        else:
            result = tuple(_plain_times(p, path + (i,), dict(v)) for i, v in enumerate(value))
    return _BAD if _errors(p) > before else result


def _plain_times(p: _Parser, path: P, item: dict[str, Any]) -> dict[str, Any]:
    for key in ("at", "due"):
        if key in item and item[key] is not None:
            item[key] = p.time(item[key], path + (key,))
    return item


def _parse_deadlines(p: _Parser, path: P, value: Any) -> Any:
    if not isinstance(value, dict):
        p.error(path, "QF604", "deadlines must map a clock to its due time or to {due, business, calendar_time, calendar}",
                "e.g. {respond: {due: 2026-11-21T00:10:00+08:00, business: 1h}}")
        return None
    out: dict[str, Any] = {}
    for clock, spec in value.items():
        here = path + (str(clock),)
        if spec is None:
            out[str(clock)] = None
        elif isinstance(spec, dict):
            p.unknown_keys(spec, here, _DEADLINE_KEYS, "a deadline")
            parsed: dict[str, Any] = {}
            for key, v in spec.items():
                if key in ("due", "start"):
                    parsed[key] = p.time(v, here + (key,))
                elif key in ("business", "calendar_time"):
                    parsed[key] = p.duration(v, here + (key,))
                elif key == "calendar":
                    parsed[key] = str(v)
            out[str(clock)] = parsed
        else:
            out[str(clock)] = {"due": p.time(spec, here)}
    return out


# ---------------------------------------------------------------------------
# Running
# ---------------------------------------------------------------------------


class TestRunner:
    """Runs tests files; loads each ruleset once, however many files and cases use it.

    *ruleset* overrides the ruleset every file names (test a proposed change against
    the cases written for the deployed one).
    """

    __test__ = False  # not a pytest class

    def __init__(self, plugins: Any, *, ruleset: str | None = None, select: str | None = None) -> None:
        self.plugins = plugins
        self.override = ruleset
        self.select = select
        self._loaded: dict[str, Ruleset | RulesetError] = {}
        self._engines: dict[str, Engine] = {}

    def load(self, path: str) -> Ruleset | RulesetError:
        key = os.path.realpath(path)
        if key not in self._loaded:
            try:
                self._loaded[key] = load_ruleset(path, plugins=self.plugins)
            except RulesetError as exc:
                self._loaded[key] = exc
        return self._loaded[key]

    def run_file(self, path: str, text: str | None = None) -> FileResult:
        tests, diags = parse_test_file(path, text)
        if tests is None:
            return FileResult(path, None, sort_diagnostics(diags))
        ruleset_path = self.override or tests.ruleset
        m = tests.ruleset_mark
        if not os.path.isfile(ruleset_path):
            where = "--ruleset" if self.override else "ruleset"
            diags.append(Diagnostic(m.file, m.line + 1, m.col + 1, "QF607",
                                    f"{where} '{ruleset_path}' does not exist", "$.ruleset",
                                    "the path is relative to the tests file" if not self.override else None))
            return FileResult(path, None, sort_diagnostics(diags))
        loaded = self.load(ruleset_path)
        if isinstance(loaded, RulesetError):
            n = sum(1 for d in loaded.diagnostics if d.severity == "error")
            diags.append(Diagnostic(m.file, m.line + 1, m.col + 1, "QF607",
                                    f"ruleset '{ruleset_path}' does not load ({n} error{'s' if n != 1 else ''})",
                                    "$.ruleset", f"run 'qflow check {ruleset_path}'"))
            return FileResult(path, None, sort_diagnostics([*diags, *loaded.diagnostics]))
        cases = [c for c in tests.cases if self.select is None or self.select.lower() in c.name.lower()]
        results = []
        for case in cases:
            wrong = _check_names(case, loaded)
            if wrong:
                diags.extend(wrong)  # the case does not run: its diagnostic says why and where
                continue
            results.append(self.run_case(case, loaded))
        return FileResult(path, loaded.ref, sort_diagnostics(diags), tuple(results))

    def _engine(self, ruleset: Ruleset) -> Engine:
        engine = self._engines.get(ruleset.ref)
        if engine is None:
            engine = self._engines[ruleset.ref] = Engine(ruleset, plugins=self.plugins)
        return engine

    def run_case(self, case: Case, ruleset: Ruleset) -> CaseResult:
        if case.skip:
            return CaseResult(case, "skipped", error=case.skip)
        try:
            if not case.needs_store:
                decision = self._engine(ruleset).decide(case.incident, case.now)
                seen = _Seen(ruleset, decision, None, (), ())
                mismatches = compare(case.checks, seen)
            else:
                mismatches = self._run_recorded(case, ruleset)
        except _StepFailed as exc:
            return CaseResult(case, "failed", error=str(exc))
        except Exception as exc:  # a plugin bug must not hide the other cases
            return CaseResult(case, "error", error=f"{type(exc).__name__}: {exc}")
        return CaseResult(case, "failed" if mismatches else "passed", tuple(mismatches))

    def _run_recorded(self, case: Case, ruleset: Ruleset) -> list[Mismatch]:
        clock = FakeClock(case.now)
        engine = Engine(ruleset, plugins=self.plugins, store=MemoryStore(), clock=clock)
        first = engine.report(case.incident)
        ids = [first.id]
        mismatches: list[Mismatch] = []
        for step in case.steps:
            if step.at is not None:
                _run_clock(engine, clock, step.at)
            if step.action is not None:
                try:
                    made = _perform(engine, ids[0], step)
                except QflowError as exc:
                    raise _StepFailed(f"step at line {step.line} ({step.action}) was refused: {exc}") from None
                if made is not None and made not in ids:
                    ids.append(made)
            if step.checks:
                mismatches.extend(compare(step.checks, _observe(engine, ruleset, ids)))
        if case.until is not None:
            _run_clock(engine, clock, case.until)
        mismatches.extend(compare(case.checks, _observe(engine, ruleset, ids)))
        return mismatches


class _StepFailed(Exception):
    pass


def _check_names(case: Case, ruleset: Ruleset) -> list[Diagnostic]:
    """An expected team, severity, category or responsibility the ruleset does not define
    is a mistake in the test, not a failure of the ruleset."""
    out = []
    for check in (*case.checks, *(c for s in case.steps for c in s.checks)):
        kind = _NAMED.get(check.field)
        if kind is None or check.expected is None:
            continue
        names = [str(n) for n in ruleset.names(kind)]
        if names and check.expected not in names:
            hint = did_you_mean(check.expected, names) or f"the ruleset's {kind} names are: {', '.join(names)}"
            out.append(Diagnostic(case.file, check.line, check.col, "QF608",
                                  f"expected {check.field} '{check.expected}' is not a {kind} of {ruleset.name}",
                                  check.path, hint))
    return out


def _run_clock(engine: Engine, clock: FakeClock, until: datetime) -> None:
    """Move the clock to *until*, ticking at every timer that falls due on the way, so
    a ladder whose next step is scheduled by the step before fires in order."""
    store = engine.store
    last: tuple[Any, ...] | None = None
    for _ in range(10_000):
        due = sorted((t for t in store.timers() if t.at <= until), key=lambda t: t.at)
        if not due:
            break
        fingerprint = tuple((t.incident_id, t.key, t.at) for t in due)
        if fingerprint == last:
            break  # nothing fired and nothing moved: the plugin has nothing more to do
        last = fingerprint
        if due[0].at > clock.now():
            clock.set(due[0].at)
        engine.tick(clock.now())
    if until > clock.now():
        clock.set(until)


def _perform(engine: Engine, main: str, step: Step) -> str | None:
    """Apply *step*; return the id of an incident it reported."""
    action, value = step.action, step.value
    if action == "report":
        return engine.report(value).id
    spec = value if isinstance(value, dict) else {_STEP_SHAPES[action or ""][0]: value}
    by = spec.get("by")
    if action == "transition":
        engine.transition(main, str(spec["to"]), actor=by, reason=spec.get("reason"))
        return None
    state = engine.get(main)
    if action == "acknowledge":
        engine._record(state, ev.ACKNOWLEDGED, {"note": spec.get("note")}, actor=by)
    elif action == "respond":
        engine._record(state, ev.RESPONDED, {"message": spec.get("message"), "channel": spec.get("channel")}, actor=by)
    elif action == "set_status":
        engine._record(state, ev.STATUS_CHANGED, {"from": state.status, "to": str(spec["to"]),
                                                  "reason": spec.get("reason")}, actor=by)
    elif action == "change_severity":
        before = state.decision.severity if state.decision else None
        engine._record(state, ev.SEVERITY_CHANGED, {"from": before, "to": str(spec["to"]),
                                                    "reason": spec.get("reason")}, actor=by)
    elif action == "reassign":
        engine._record(state, ev.REASSIGNED, {"team": spec.get("team"), "owner": spec.get("owner"),
                                              "reason": spec.get("reason")}, actor=by)
    elif action == "event":
        engine._record(state, str(spec["type"]), dict(spec.get("data") or {}), actor=by, source=spec.get("source"))
    return None


# ---------------------------------------------------------------------------
# Comparing
# ---------------------------------------------------------------------------


@attrs.frozen
class _Seen:
    """What came out: the decision, and for recorded cases the state and the logs."""

    ruleset: Ruleset
    decision: Decision | None
    state: IncidentState | None
    events: tuple[Event, ...]
    outbox: tuple[Any, ...]


def _observe(engine: Engine, ruleset: Ruleset, ids: Sequence[str]) -> _Seen:
    state = engine.get(ids[0])
    events = tuple(e for iid in ids for e in engine.events(iid))
    outbox = tuple(m for iid in ids for m in engine.store.outbox(incident_id=iid))
    return _Seen(ruleset, state.decision, state, events, outbox)


def compare(checks: Iterable[Check], seen: _Seen) -> list[Mismatch]:
    """Every check that does not hold, as a mismatch with both sides rendered."""
    tz = ZoneInfo(seen.ruleset.timezone)
    out = []
    for check in checks:
        found = _COMPARE[_kind(check.field)](check, seen, tz)
        if found is not None:
            out.append(found)
    return out


def _kind(field: str) -> str:
    if field in _DECISION_FIELDS:
        return "decision"
    if field in _DEADLINE_SHORT:
        return "due"
    if field in _STATE_FIELDS:
        return "state"
    if field in _LIST_FIELDS:
        return "list"
    return field


def _mismatch(check: Check, expected: Iterable[str], got: Iterable[str]) -> Mismatch:
    return Mismatch(check.field, check.line, tuple(expected), tuple(got))


def _cmp_decision(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    d = seen.decision
    got = getattr(d, check.field) if d is not None else None
    if got == check.expected:
        return None
    source = d.sources.get(check.field) if d is not None else None
    why = f"  (set by {source})" if source else "  (no rule set it)" if got is None else ""
    return _mismatch(check, [show(check.expected, tz)], [show(got, tz) + why])


def _cmp_due(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    clock = _DEADLINE_SHORT[check.field]
    dl = seen.decision.deadline(clock) if seen.decision else None
    got = dl.due if dl else None
    if got == check.expected:
        return None
    return _mismatch(check, [show(check.expected, tz)], [_show_deadline(dl, tz) if dl else show(None, tz)])


def _cmp_deadlines(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    expected_lines, got_lines = [], []
    for clock, spec in check.expected.items():
        dl = seen.decision.deadline(clock) if seen.decision else None
        if spec is None:
            if dl is not None:
                expected_lines.append(f"{clock}: none")
                got_lines.append(f"{clock}: {_show_deadline(dl, tz)}")
            continue
        got = {"due": dl.due, "start": dl.start, "business": dl.business, "calendar_time": dl.elapsed,
               "calendar": dl.calendar} if dl else {}
        if dl is None or any(got[k] != v for k, v in spec.items()):
            expected_lines.append(f"{clock}: " + " ".join(f"{k}={show(v, tz)}" for k, v in spec.items()))
            got_lines.append(f"{clock}: " + (" ".join(f"{k}={show(got[k], tz)}" for k in spec) if dl else "none"))
    if not expected_lines:
        return None
    return _mismatch(check, expected_lines, got_lines)


def _cmp_names(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    got = tuple(seen.decision.matched) if seen.decision else ()
    if len(got) == len(check.expected) and all(_same_rule(e, g) for e, g in zip(check.expected, got, strict=True)):
        return None
    return _mismatch(check, [show(list(check.expected), tz)], [show(list(got), tz)])


def _same_rule(expected: str, got: str) -> bool:
    # "vip-complaint" stands for "classify:vip-complaint": the rule id alone is enough.
    return expected == got or (":" not in expected and got.split(":", 1)[-1] == expected)


def _cmp_would_match(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    steps = seen.decision.trace.steps if seen.decision else ()
    got = tuple(s.rule for s in steps if s.outcome == "would have matched" and s.rule)
    if got == check.expected:
        return None
    return _mismatch(check, [show(list(check.expected), tz)], [show(list(got), tz)])


def _cmp_set_by(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    sources = seen.decision.sources if seen.decision else {}
    exp, got = [], []
    for f, want in check.expected.items():
        have = sources.get(f)
        if not (have and _same_rule(want, have)):
            exp.append(f"{f}: {want}")
            got.append(f"{f}: {have or '(nothing)'}")
    return _mismatch(check, exp, got) if exp else None


def _cmp_state(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    state = seen.state
    got = getattr(state, check.field) if state is not None else None
    if isinstance(got, Stage):
        got = got.value
    if got == check.expected:
        return None
    return _mismatch(check, [show(check.expected, tz)], [show(got, tz)])


def _cmp_list(check: Check, seen: _Seen, tz: ZoneInfo) -> Mismatch | None:
    got = _items(check.field, seen)
    expected: tuple[dict[str, Any], ...] = check.expected
    if check.field == "events":
        # A subsequence: the listed events happen in this order, others may come between.
        i = 0
        for item in got:
            if i < len(expected) and _matches(expected[i], item):
                i += 1
        if i == len(expected):
            return None
        keys = list(expected[i])
        return _mismatch(check, [f"#{i + 1} {_render_item(expected[i], keys, tz)} (and the ones after it, in order)"],
                         [f"{_render_item(g, ['type', *(k for k in keys if k != 'type')], tz)}" for g in got] or ["no events"])
    if len(got) == len(expected) and all(_matches(e, g) for e, g in zip(expected, got, strict=True)):
        return None
    exp_lines, got_lines = [f"{len(expected)} item{'s' if len(expected) != 1 else ''}"], \
        [f"{len(got)} item{'s' if len(got) != 1 else ''}"]
    default_keys = list(expected[0]) if expected else None
    for i in range(max(len(expected), len(got))):
        e = expected[i] if i < len(expected) else None
        g = got[i] if i < len(got) else None
        if e is not None and g is not None and _matches(e, g):
            continue
        keys = list(e) if e is not None else default_keys
        if e is not None:
            exp_lines.append(f"#{i + 1} " + _render_item(e, list(e), tz))
        got_lines.append(f"#{i + 1} " + (_render_item(g, keys, tz) if g is not None else "nothing"))
    return _mismatch(check, exp_lines, got_lines)


def _items(field: str, seen: _Seen) -> list[dict[str, Any]]:
    if field == "notifications":
        return [{"incident": m.incident_id, "channel": m.channel, "backend": m.backend, "at": m.created_at,
                 "status": m.status, **dict(m.payload)} for m in seen.outbox]
    events = seen.events
    if field == "escalations":
        events = tuple(e for e in events if e.type == ESCALATION_EVENT)
    elif field == "suppressed":
        events = tuple(e for e in events if e.type.endswith("Suppressed"))
    return [{"incident": e.incident_id, "type": e.type, "at": e.at, "source": e.source, "actor": e.actor,
             **dict(e.data)} for e in events]


def _matches(expected: Mapping[str, Any], got: Mapping[str, Any]) -> bool:
    return all(k in got and _same(v, got[k]) for k, v in expected.items())


def _same(expected: Any, got: Any) -> bool:
    if isinstance(got, datetime) and isinstance(expected, str):
        try:
            expected = parse_time(expected)
        except ShapeError:
            return False
    if isinstance(expected, datetime) and isinstance(got, str):
        try:
            got = parse_time(got)
        except ShapeError:
            return False
    if isinstance(got, timedelta) and isinstance(expected, str):
        try:
            expected = parse_duration(expected)
        except ShapeError:
            return False
    if isinstance(expected, Mapping):
        return isinstance(got, Mapping) and _matches(expected, got)
    if isinstance(expected, list):
        return (isinstance(got, (list, tuple)) and len(got) == len(expected)
                and all(_same(e, g) for e, g in zip(expected, got, strict=True)))
    if expected == got:
        return True
    return isinstance(got, (str, int, float)) and not isinstance(expected, (datetime, Mapping, list)) \
        and str(expected) == str(got)


def _render_item(item: Mapping[str, Any] | None, keys: Sequence[str] | None, tz: ZoneInfo) -> str:
    if item is None:
        return "nothing"
    use = [k for k in (keys or [k for k in item if k not in ("incident", "actor", "source")]) if k in item] \
        or [k for k in item if k not in ("incident", "actor")]
    return " ".join(f"{k}={show(item[k], tz)}" for k in use)


def show(value: Any, tz: ZoneInfo) -> str:
    """A value as a test file would write it."""
    if value is None:
        return "(unset)"
    if isinstance(value, datetime):
        return value.astimezone(tz).isoformat()
    if isinstance(value, timedelta):
        return format_duration(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(show(v, tz) for v in value) + "]"
    if isinstance(value, Mapping):
        return "{" + ", ".join(f"{k}: {show(v, tz)}" for k, v in value.items()) + "}"
    return str(value)


def _show_deadline(dl: Any, tz: ZoneInfo) -> str:
    return (f"{show(dl.due, tz)}  ({format_duration(dl.business)} on {dl.calendar}, "
            f"calendar time {format_duration(dl.elapsed)})")


_COMPARE: dict[str, Callable[[Check, _Seen, ZoneInfo], Mismatch | None]] = {
    "decision": _cmp_decision,
    "due": _cmp_due,
    "deadlines": _cmp_deadlines,
    "matched": _cmp_names,
    "would_match": _cmp_would_match,
    "set_by": _cmp_set_by,
    "state": _cmp_state,
    "list": _cmp_list,
}
