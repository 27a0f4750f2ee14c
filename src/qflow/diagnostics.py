"""One diagnostic format for everything qflow reports about a ruleset or an input.

``path:line:col: CODE message (hint) @ $.json.path (rule 'id')``

Codes are stable: tools and people grep for them. ``CODES`` is the table the docs
print; a test keeps the two in step.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from typing import Literal

import attrs

__all__ = [
    "CODES",
    "FORMATS",
    "Diagnostic",
    "RulesetError",
    "as_github",
    "as_json",
    "did_you_mean",
    "format_diagnostics",
    "json_path",
]

#: Every diagnostic code qflow emits, with a one-line meaning.
CODES: dict[str, str] = {
    "QF001": "the file is not valid YAML",
    "QF002": "a key appears twice in one mapping",
    "QF003": "a file cannot be read (missing, not UTF-8, a directory)",
    "QF004": "an include cycle",
    "QF005": "the format version `qflow:` is missing or not supported",
    "QF101": "an unknown key",
    "QF102": "a required key is missing",
    "QF103": "a value has the wrong type",
    "QF104": "a value is not one of the allowed choices or out of range",
    "QF105": "a duration cannot be read",
    "QF106": "a time zone, date or time of day cannot be read",
    "QF201": "a reference to something not defined (team, severity, calendar, ...)",
    "QF202": "an id or name defined twice",
    "QF301": "a condition names a field incidents do not have",
    "QF302": "a condition uses an unknown operator or function",
    "QF303": "a condition operator has an argument it cannot use",
    "QF304": "a regular expression does not compile",
    "QF305": "a regular expression can backtrack catastrophically (nested repeats, or overlapping repeats side by side)",
    "QF306": "an expression string has a character or word it cannot read (a quote not closed, '=' for '==')",
    "QF307": "an expression string is incomplete or has something unexpected where a test, operator or value belongs",
    "QF308": "an expression string starts a test with a value instead of a field",
    "QF309": "an expression string's parentheses or brackets do not match",
    "QF310": "an expression string is empty",
    "QF311": "a list in an expression string holds a list",
    "QF401": "an input line is not valid JSON or not an object",
    "QF402": "an input incident does not fit the incident format",
    "QF403": "an input incident cannot be decided: a deadline finds no working time on its calendar within 30 years",
    "QF501": "a plugin failed while loading its ruleset section",
    "QF601": "a tests file is empty or not a mapping with `ruleset:` and `tests:`",
    "QF602": "a tests file has an unknown key, expectation or step action",
    "QF603": "a tests file or case misses a required key (ruleset, tests, name, incident, expect, a time)",
    "QF604": "a value in a tests file has the wrong shape",
    "QF605": "a time or duration in a tests file cannot be read",
    "QF606": "a test case's incident does not fit the incident format",
    "QF607": "the ruleset a tests file names does not exist or does not load",
    "QF608": "an expectation names a team, severity, category or responsibility the ruleset does not define",
    "QF609": "a test case's steps go back in time",
    "QF610": "two test cases in one file have the same name",
    "QF611": "a test step does nothing, or more than one thing",
    "QF650": "lint: a rule can never take effect (an earlier rule with the same or a weaker condition sets all it sets)",
    "QF651": "lint: a rule section has no default (nothing is set when no rule matches)",
    "QF652": "lint: a name (team, calendar, template, severity ...) is defined and never used",
    "QF653": "lint: a condition can never hold",
    "QF654": "lint: a condition always holds",
    "QF655": "lint: a regular expression can match the empty string, so it matches every text",
    "QF656": "lint: a rule is always overridden by a later rule (mode all)",
    "QF657": "'continue' has no effect where it is written (warning)",
    "QF700": "a calendar's time zone is not an IANA time zone",
    "QF701": "a working window or time of day cannot be read",
    "QF702": "a working window is empty (it ends before or when it starts)",
    "QF703": "working windows of one day overlap",
    "QF704": "a weekday, day of the month or month cannot be read, or a day-of-month range matches no day (\"10:5\")",
    "QF705": "a holiday country or subdivision is not known to the holidays package",
    "QF706": "a holiday or working date cannot be read",
    "QF707": "a calendar has no working hours, or never opens (no date matches its intervals, or every one is an extra holiday)",
    "QF708": "a date falls in a year whose national holiday schedule is not published yet (warning)",
    "QF709": "a calendar's keys contradict each other (24x7 with intervals)",
    "QF710": "a clock name is not one of the SLA clocks",
    "QF711": "a clock trigger cannot work (not a mapping, never starts, pauses without resuming)",
    "QF712": "a clock trigger names an unknown stage",
    "QF713": "a clock trigger names an event type no built-in records (warning)",
    "QF740": "an escalation step names a clock that no severity using its ladder, nor any priority, sets a target for",
    "QF741": "an escalation step needs exactly one of `used`, `remaining` or `overdue`",
    "QF742": "an escalation step's percentage or duration cannot be used (not N%, 0% or less, not longer than 0)",
    "QF743": "an escalation step with `used` above 100% can never fire (use `overdue`)",
    "QF744": "an escalation step's `remaining` is not shorter than any target of its clock it can run against, so it can never fire",
    "QF745": "a severity is mapped to an unknown escalation ladder",
    "QF747": "an escalation step jumps to an unknown step or back to an earlier level",
    "QF749": "an escalation step repeats with no interval or no repeats",
    "QF750": "an escalation step raises severity by less than one level",
    "QF751": "incidents are grouped, counted or compared by a field the store cannot filter on",
    "QF752": "an escalation step's recipient names nobody, or a role `notify.recipients` does not define (a warning when a `qflow_recipients` plugin may resolve it)",
    "QF753": "an escalation step does nothing (no notify, raise, reassign or jump), or reassigns to nobody",
    "QF754": "an escalation step's count condition cannot work (negative count, empty window)",
    "QF755": "an escalation ladder has no steps",
    "QF756": "an escalation ladder is used by no severity (warning)",
    "QF757": "a grouping has no fields or no window",
    "QF758": "a suppress rule lacks its source or target condition",
    "QF770": "a notification channel names a backend no installed plugin provides",
    "QF771": "a backend's configuration cannot work (e.g. a URL that is not http or https)",
    "QF772": "a message template names a field notifications do not have",
    "QF773": "a message template does not compile",
    "QF774": "a fallback channel is unknown, or fallbacks go round in a circle",
    "QF775": "a notification route names an unknown channel",
    "QF776": "a secret is written into the ruleset instead of `${env:NAME}`",
    "QF777": "an `${env:...}` reference is malformed",
    "QF778": "two plugins provide notification backends with the same name",
    "QF779": "a retry policy cannot work (no tries, backoff longer than its maximum, jitter outside 0..1)",
    "QF780": "a notification route or template names a topic no installed plugin raises (warning)",
    "QF800": "a loop fingerprint names a field incidents do not have, or is empty",
    "QF801": "the loop allows no evidence kind",
    "QF802": "a loop guard has a value it cannot use",
    "QF803": "loop reminders that would send nothing after the due date",
    "QF804": "a verification with no metric",
    "QF805": "a verification metric that cannot be measured or judged (kind, thresholds, KPI projection)",
    "QF806": "a problem threshold that would make every incident a problem",
    "QF901": "an assessment time zone cannot be read",
    "QF902": "an assessment setting is out of range (min_n, fingerprint field, CSAT mark, criterion scale, weight)",
    "QF903": "a scorecard weight names no KPI or criterion",
    "QF904": "a duration KPI is weighted in a scorecard without a target",
}

#: The ``--format`` choices of every command that reports diagnostics.
FORMATS: tuple[str, ...] = ("text", "json", "github")

_PLAIN_KEY = re.compile(r"^[^\W\d][\w-]*$")


def json_path(parts: Iterable[str | int]) -> str:
    """Render ``("route", 1, "assign", "team")`` as ``$.route[1].assign.team``."""
    out = ["$"]
    for part in parts:
        if isinstance(part, int):
            out.append(f"[{part}]")
        elif _PLAIN_KEY.match(part):
            out.append(f".{part}")
        else:
            escaped = part.replace("\\", "\\\\").replace("'", "\\'")
            out.append(f"['{escaped}']")
    return "".join(out)


def did_you_mean(name: object, candidates: Iterable[str]) -> str | None:
    """Return ``did you mean 'x'?`` for the closest candidate, or None."""
    if not isinstance(name, str):
        return None
    pool = sorted(set(candidates))
    close = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not close:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            close = [lowered[name.lower()]]
    return f"did you mean '{close[0]}'?" if close else None


@attrs.frozen(order=False)
class Diagnostic:
    """One located problem. ``line`` and ``col`` are 1-based."""

    file: str
    line: int
    col: int
    code: str
    message: str
    path: str = "$"
    hint: str | None = None
    rule: str | None = None
    severity: Literal["error", "warning"] = "error"

    def sort_key(self) -> tuple[str, int, int, str, str]:
        return (self.file, self.line, self.col, self.code, self.message)

    def __str__(self) -> str:
        text = f"{self.file}:{self.line}:{self.col}: {self.code} {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        text += f" @ {self.path}"
        if self.rule is not None:
            text += f" (rule '{self.rule}')"
        return text


def as_json(d: Diagnostic) -> dict[str, object]:
    """One diagnostic as the object ``--format json`` prints (keys in this order)."""
    return {"file": d.file, "line": d.line, "col": d.col, "code": d.code, "severity": d.severity,
            "message": d.message, "hint": d.hint, "path": d.path, "rule": d.rule}


def _github_escape(text: str, *, prop: bool = False) -> str:
    # The workflow-command escapes: % CR LF always, and : , in properties.
    text = text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")
    if prop:
        text = text.replace(":", "%3A").replace(",", "%2C")
    return text


def as_github(d: Diagnostic) -> str:
    """One diagnostic as a GitHub Actions annotation:
    ``::error file=F,line=L,col=C,title=QFxxx::message (hint) @ $.path (rule 'id')``."""
    kind = "warning" if d.severity == "warning" else "error"
    text = d.message + (f" ({d.hint})" if d.hint else "") + f" @ {d.path}"
    if d.rule is not None:
        text += f" (rule '{d.rule}')"
    return (f"::{kind} file={_github_escape(d.file, prop=True)},line={d.line},col={d.col},"
            f"title={d.code}::{_github_escape(text)}")


def format_diagnostics(diagnostics: Iterable[Diagnostic], fmt: str) -> str:
    """All of *diagnostics* in *fmt* (``text``, ``json`` or ``github``), newline-terminated;
    json is one array (``[]`` for none)."""
    items = list(diagnostics)
    if fmt == "json":
        import json

        return json.dumps([as_json(d) for d in items], ensure_ascii=False, indent=2) + "\n"
    if fmt == "github":
        return "".join(as_github(d) + "\n" for d in items)
    return "".join(f"{d}\n" for d in items)


def sort_diagnostics(diagnostics: Iterable[Diagnostic]) -> tuple[Diagnostic, ...]:
    """Sort by position and drop exact repeats (one mistake, one line)."""
    return tuple(sorted(set(diagnostics), key=Diagnostic.sort_key))


class RulesetError(Exception):
    """A ruleset (or an input) has errors; ``diagnostics`` lists all of them, sorted."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = sort_diagnostics(diagnostics)
        super().__init__("\n".join(str(d) for d in self.diagnostics))
