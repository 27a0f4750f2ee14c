"""The ``qflow`` command: check rulesets, decide and explain incidents, run the demo.

Every command builds its plugin manager, ruleset and engine once and then works
through its input. Input mistakes end with a one-line ``qflow: error: ...`` and a
hint on stderr (exit 2); a broken ruleset prints its diagnostics (exit 1). A Python
traceback means a bug in qflow or a plugin, never a mistake in what was typed.
"""

from __future__ import annotations

import argparse
import enum
import functools
import json
import os
import re
import sys
import unicodedata
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn
from zoneinfo import ZoneInfo

import qflow
from qflow._convert import ShapeError, format_duration, parse_time
from qflow.clock import FakeClock, SystemClock
from qflow.diagnostics import Diagnostic, RulesetError, did_you_mean
from qflow.engine import Engine, parse_incident
from qflow.errors import InputError, PluginError, QflowError, TransitionError
from qflow.model import (
    Action,
    ActionKind,
    ActionStatus,
    Cause,
    Decision,
    Event,
    Incident,
    Stage,
    Verification,
    VerificationResult,
    WhyStep,
)
from qflow.ruleset import Ruleset, load_ruleset

__all__ = ["main"]

PROG = "qflow"
COMMANDS = ("check", "decide", "explain", "demo")
DEMO_RULESET = "rulesets/hotel-front-desk.yaml"
DEMO_INCIDENTS = "rulesets/hotel-front-desk.incidents.jsonl"
#: Runs of more non-matching rules than this are folded into one line by ``explain``.
COLLAPSE_AFTER = 15


# ---------------------------------------------------------------------------
# Errors and the parser
# ---------------------------------------------------------------------------


class UsageError(Exception):
    """A mistake in the command line or its inputs: exit 2 with a message and a hint."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class _Parser(argparse.ArgumentParser):
    """argparse, but errors are one line plus a hint and raise instead of exiting."""

    def error(self, message: str) -> NoReturn:
        found = re.search(r"invalid choice: '?([^' ]*)'? \(choose from", message)
        if found and message.startswith(("argument command", "argument COMMAND")):
            name = found.group(1)
            hint = did_you_mean(name, COMMANDS)
            raise UsageError(f"unknown command '{name}'",
                             f"{hint + ' ' if hint else ''}the commands are {', '.join(COMMANDS)}; "
                             f"run '{PROG} --help'")
        raise UsageError(message, f"run '{self.prog} --help' for usage and examples")


_FORMATTER = argparse.RawDescriptionHelpFormatter

_MAIN_EPILOG = f"""\
examples:
  {PROG} check rulesets/hotel-front-desk.yaml
  {PROG} decide rulesets/hotel-front-desk.yaml --input incidents.jsonl --now 2026-11-20T23:10:00+08:00
  {PROG} explain rulesets/hotel-front-desk.yaml --incident '{{"channel": "phone", "category": "complaint"}}'
  {PROG} demo

exit status: 0 ok, 1 a ruleset or an input has errors, 2 a usage error.
environment: QFLOW_DISABLE_PLUGIN_AUTOLOAD=1, QFLOW_BLOCKED_PLUGINS=a,b
"""

_CHECK_EPILOG = f"""\
Prints one line per valid file, or every problem as
'file:line:col: CODE message (hint) @ $.path (rule 'id')' and a count.

examples:
  {PROG} check rulesets/hotel-front-desk.yaml
  {PROG} check rulesets/*.yaml
"""

_DECIDE_EPILOG = f"""\
Prints one JSON object per input line, keys in this order:
line, id, category, severity, priority, team, owner, responsibility,
respond_by, resolve_by, matched, ruleset. A line that is not a valid incident
gives {{"line": N, "error": "..."}} and the others go on; the exit status is 1
when any line failed. Times are ISO 8601 in the ruleset's time zone.

examples:
  {PROG} decide rulesets/hotel-front-desk.yaml --input incidents.jsonl --now 2026-11-20T23:10:00+08:00
  cat incidents.jsonl | {PROG} decide rulesets/hotel-front-desk.yaml --input - | head -3
"""

_EXPLAIN_EPILOG = f"""\
Shows the decided fields with the rule that set each one, the deadlines with
their business and calendar durations, and every rule considered, by section.

examples:
  {PROG} explain rulesets/hotel-front-desk.yaml --incident incident.json
  {PROG} explain rulesets/hotel-front-desk.yaml --now 2026-11-20T23:10:00+08:00 \\
      --incident '{{"channel": "phone", "category": "complaint", "customer": {{"tier": "gold"}}}}'
"""

_DEMO_EPILOG = f"""\
Reports the shipped incidents in time order on a fake clock, explains the first
critical one, walks one incident through the whole loop, and lists what falls due
in the next 24 hours. Nothing is written anywhere.

examples:
  {PROG} demo
  {PROG} demo --ruleset my.yaml --incidents my.incidents.jsonl
"""


def _build_parser() -> _Parser:
    parser = _Parser(
        prog=PROG, formatter_class=_FORMATTER, epilog=_MAIN_EPILOG,
        description="Rules and plugins for service-quality anomalies: classify, route, "
                    "commit deadlines, close the loop.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {qflow.__version__}")
    _plugin_options(parser, suppress=False)

    # The same plugin options after the command: `qflow check --no-plugins x.yaml`.
    common = _Parser(add_help=False)
    _plugin_options(common, suppress=True)

    sub = parser.add_subparsers(dest="command", metavar="COMMAND", title="commands", parser_class=_Parser)

    p = sub.add_parser("check", parents=[common], formatter_class=_FORMATTER, epilog=_CHECK_EPILOG,
                       help="check rulesets and report every problem",
                       description="Load and check each ruleset; report every problem at once.")
    p.add_argument("rulesets", nargs="+", metavar="RULESET", help="ruleset files (YAML)")

    p = sub.add_parser("decide", parents=[common], formatter_class=_FORMATTER, epilog=_DECIDE_EPILOG,
                       help="decide incidents from a JSON Lines file",
                       description="Decide every incident of a JSON Lines file; one JSON object out per line.")
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    p.add_argument("--input", "-i", required=True, metavar="FILE",
                   help="incidents, one JSON object per line ('-' reads stdin)")
    _now_option(p)

    p = sub.add_parser("explain", parents=[common], formatter_class=_FORMATTER, epilog=_EXPLAIN_EPILOG,
                       help="explain the decision for one incident, rule by rule",
                       description="Decide one incident and show why, rule by rule.")
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    p.add_argument("--incident", required=True, metavar="JSON|FILE",
                   help="the incident as a JSON object, or a file holding one ('-' reads stdin)")
    _now_option(p)
    p.add_argument("--all", action="store_true",
                   help=f"show every rule, also long runs (more than {COLLAPSE_AFTER}) that did not match")

    p = sub.add_parser("demo", parents=[common], formatter_class=_FORMATTER, epilog=_DEMO_EPILOG,
                       help="run the whole loop on the shipped hotel front-desk example",
                       description="The main job end to end on the shipped ruleset and incidents.")
    p.add_argument("--ruleset", metavar="PATH", help=f"the ruleset (default {DEMO_RULESET})")
    p.add_argument("--incidents", metavar="PATH",
                   help="the incidents, JSON Lines (default: the ruleset's name with .incidents.jsonl)")
    return parser


def _plugin_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    suffix = "_sub" if suppress else ""
    group = parser.add_argument_group("plugins")
    group.add_argument("--no-plugins", action="store_true", dest="no_plugins" + suffix,
                       default=argparse.SUPPRESS if suppress else False,
                       help="load only qflow's built-in plugins, no third-party ones")
    group.add_argument("--block", action="append", metavar="NAME", dest="block" + suffix, default=default,
                       help="never load the plugin NAME (repeatable)")


def _now_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--now", metavar="ISO",
                        help="the decision time, ISO 8601 with a time zone, e.g. 2026-11-20T23:10:00+08:00 "
                             "(default: the current time)")


# ---------------------------------------------------------------------------
# Entry point
# ---------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``qflow`` command with *argv* (default ``sys.argv[1:]``); return the exit status."""
    args_list = list(sys.argv[1:] if argv is None else argv)
    out, err = sys.stdout, sys.stderr
    try:
        try:
            args, extra = _build_parser().parse_known_args(args_list)
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0)
        if args.command is None:
            raise UsageError("choose a command", f"the commands are {', '.join(COMMANDS)}; run '{PROG} --help'")
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}",
                             f"run '{PROG} {args.command} --help' for usage and examples")
        args.no_plugins = args.no_plugins or getattr(args, "no_plugins_sub", False)
        args.block = (args.block or []) + (getattr(args, "block_sub", None) or [])
        status = _COMMANDS[args.command](args, out, err)
        out.flush()
        return status
    except UsageError as exc:
        _error(err, exc.message, exc.hint)
        return 2
    except PluginError as exc:
        _error(err, str(exc), "run with --no-plugins, or --block NAME, to leave a plugin out")
        return 2
    except _RulesetFailed as exc:
        for d in exc.error.diagnostics:
            err.write(f"{d}\n")
        n = sum(1 for d in exc.error.diagnostics if d.severity == "error")
        err.write(f"{PROG}: {_plural(n, 'error')} in {exc.path}; run '{PROG} check {exc.path}' after fixing\n")
        return 1
    except BrokenPipeError:
        # The reader went away (`qflow decide ... | head`): stop quietly, and keep
        # Python from complaining again when it flushes stdout at exit.
        try:
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        except (OSError, ValueError):
            pass
        return 1
    except KeyboardInterrupt:
        err.write(f"{PROG}: interrupted\n")
        return 130


def _error(err: IO[str], message: str, hint: str | None) -> None:
    err.write(f"{PROG}: error: {message}\n")
    if hint:
        err.write(f"hint: {hint}\n")


class _RulesetFailed(Exception):
    def __init__(self, path: str, error: RulesetError) -> None:
        super().__init__(path)
        self.path = path
        self.error = error


# ---------------------------------------------------------------------------
# Shared pieces
# ---------------------------------------------------------------------------


def _plugins(args: argparse.Namespace) -> Any:
    return qflow.make_plugin_manager(autoload=not args.no_plugins, blocked=args.block)


def _existing_file(path: str, what: str = "file") -> str:
    p = Path(path)
    if not p.exists():
        raise UsageError(f"no such {what}: '{path}'", "check the path and the current directory")
    if p.is_dir():
        raise UsageError(f"'{path}' is a directory, not a file", f"give the path of the {what}")
    return path


def _load(path: str, pm: Any) -> Ruleset:
    _existing_file(path, "ruleset file")
    try:
        return load_ruleset(path, plugins=pm)
    except RulesetError as exc:
        raise _RulesetFailed(path, exc) from None


def _parse_now(text: str | None) -> datetime:
    if text is None:
        return SystemClock().now()
    try:
        return parse_time(text)
    except ShapeError as exc:
        raise UsageError(f"argument --now: {exc.message}", exc.hint) from None


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" if n == 1 else f"{n} {word}s"


def _width(text: str) -> int:
    """Columns *text* takes in a terminal (CJK characters take two)."""
    if text.isascii():
        return len(text)
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 0 if unicodedata.combining(c) else 1
               for c in text)


def _pad(text: str, width: int) -> str:
    return text + " " * max(0, width - _width(text))


def _table(rows: Sequence[Sequence[str]], *, sep: str = "  ", indent: str = "") -> list[str]:
    """Align *rows* (the first is the header) into columns; the last column is not padded."""
    if not rows:
        return []
    widths = [max(_width(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = []
    for r in rows:
        cells = [_pad(c, widths[i]) for i, c in enumerate(r[:-1])] + [r[-1]]
        lines.append((indent + sep.join(cells)).rstrip())
    return lines


def _iso(dt: datetime | None, tz: ZoneInfo) -> str | None:
    return None if dt is None else dt.astimezone(tz).isoformat()


def _short(text: str, n: int) -> str:
    text = " ".join(text.split())
    return text if _width(text) <= n else _cut(text, n - 1) + "…"


def _cut(text: str, n: int) -> str:
    out, used = [], 0
    for c in text:
        w = _width(c)
        if used + w > n:
            break
        out.append(c)
        used += w
    return "".join(out)


def _show(value: Any) -> str:
    return "-" if value is None else str(value)


# ---------------------------------------------------------------------------
# qflow check
# ---------------------------------------------------------------------------


def _cmd_check(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    for path in args.rulesets:
        _existing_file(path, "ruleset file")
    pm = _plugins(args)
    errors, failed = 0, 0
    seen: set[Diagnostic] = set()
    for path in args.rulesets:
        try:
            ruleset = load_ruleset(path, plugins=pm)
        except RulesetError as exc:
            failed += 1
            for d in exc.diagnostics:
                if d in seen:
                    continue
                seen.add(d)
                errors += d.severity == "error"
                out.write(f"{d}\n")
            continue
        warnings = [d for d in ruleset.warnings if d not in seen]
        seen.update(warnings)
        tail = f", {_plural(len(warnings), 'warning')}" if warnings else ""
        out.write(f"{path}: ok ({_counts(ruleset)}){tail}\n")
        for d in warnings:
            out.write(f"{d}\n")
    if failed:
        out.write(f"{_plural(errors, 'error')} in {_plural(failed, 'file')}\n")
        return 1
    return 0


def _counts(ruleset: Ruleset) -> str:
    rules = sum(len(names) for kind, names in ruleset.symbols.items() if kind.endswith(" rule"))
    return ", ".join((_plural(rules, "rule"), _plural(len(ruleset.names("team")), "team"),
                      _plural(len(ruleset.names("severity")), "severity").replace("severitys", "severities")))


# ---------------------------------------------------------------------------
# qflow decide
# ---------------------------------------------------------------------------


def _cmd_decide(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    now = _parse_now(args.now)
    if args.input != "-":
        _existing_file(args.input, "input file")
    pm = _plugins(args)
    ruleset = _load(args.ruleset, pm)
    engine = Engine(ruleset, plugins=pm, clock=FakeClock(now))
    tz = ZoneInfo(ruleset.timezone)
    ref = ruleset.ref
    dumps = json.JSONEncoder(ensure_ascii=False).encode
    bad = total = 0
    write = out.write
    with _open_input(args.input) as lines:
        for number, incident in _incidents(lines):
            total += 1
            if isinstance(incident, str):
                bad += 1
                write(dumps({"line": number, "error": incident}) + "\n")
                continue
            d = engine.decide(incident, now)
            write(dumps({
                "line": number, "id": incident.id, "category": d.category, "severity": d.severity,
                "priority": d.priority, "team": d.team, "owner": d.owner, "responsibility": d.responsibility,
                "respond_by": _iso(d.respond_by, tz), "resolve_by": _iso(d.resolve_by, tz),
                "matched": list(d.matched), "ruleset": ref,
            }) + "\n")
    out.flush()
    if bad:
        err.write(f"{PROG}: {bad} of {_plural(total, 'line')} failed; see the objects with \"error\"\n")
        return 1
    return 0


class _open_input:
    """The input as binary lines: a file, or stdin for '-'."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._file: IO[bytes] | None = None

    def __enter__(self) -> Iterable[bytes]:
        if self.name == "-":
            buffer = getattr(sys.stdin, "buffer", None)
            if buffer is not None:
                return buffer
            return (line.encode("utf-8") for line in sys.stdin)
        try:
            self._file = open(self.name, "rb")  # noqa: SIM115 - closed in __exit__
        except OSError as exc:
            raise UsageError(f"cannot read '{self.name}': {exc.strerror}",
                             "check the path and its permissions") from None
        return self._file

    def __exit__(self, *exc: object) -> None:
        if self._file is not None:
            self._file.close()


def _incidents(lines: Iterable[bytes]) -> Iterator[tuple[int, Incident | str]]:
    """Number every non-blank line and parse it: an Incident, or the error text."""
    for number, raw in enumerate(lines, 1):
        if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
            raw = raw[3:]
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            yield number, f"QF401 not UTF-8 text (byte {exc.start + 1}); save the file as UTF-8"
            continue
        if not text.strip():
            continue
        yield number, _parse_line(text)


def _parse_line(text: str) -> Incident | str:
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return f"QF401 not valid JSON: {exc.msg} at column {exc.colno}"
    except RecursionError:
        return "QF401 not valid JSON: nested too deeply"
    if not isinstance(data, dict):
        return f"QF401 expected a JSON object, got {_json_kind(data)}"
    try:
        return parse_incident(data)
    except InputError as exc:
        return f"QF402 {exc}"


def _json_kind(value: Any) -> str:
    if isinstance(value, list):
        return "an array"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    return "null"


# ---------------------------------------------------------------------------
# qflow explain
# ---------------------------------------------------------------------------


def _cmd_explain(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    now = _parse_now(args.now)
    data = _read_incident_arg(args.incident)
    try:
        incident = parse_incident(data)
    except InputError as exc:
        raise UsageError(f"--incident: QF402 {exc}", "see the incident fields in the ruleset format") from None
    pm = _plugins(args)
    ruleset = _load(args.ruleset, pm)
    engine = Engine(ruleset, plugins=pm, clock=FakeClock(now))
    decision = engine.decide(incident, now)
    for line in render_explanation(incident, decision, ruleset, show_all=args.all):
        out.write(line + "\n")
    return 0


def _read_incident_arg(value: str) -> Any:
    where = "--incident"
    if value == "-":
        where = "--incident (stdin)"
        buffer = getattr(sys.stdin, "buffer", None)
        try:
            text = buffer.read().decode("utf-8-sig") if buffer is not None else sys.stdin.read()
        except UnicodeDecodeError:
            raise UsageError(f"{where}: not UTF-8 text", "send the incident as UTF-8") from None
    elif value.lstrip().startswith(("{", "[")):
        text = value
    else:
        path = _existing_file(value, "incident file")
        try:
            text = Path(path).read_text(encoding="utf-8-sig")
        except UnicodeDecodeError:
            raise UsageError(f"cannot read '{value}': not UTF-8 text", "save the file as UTF-8") from None
        except OSError as exc:
            raise UsageError(f"cannot read '{value}': {exc.strerror}", "check the path and its permissions") from None
        where = f"--incident {value}"
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        if exc.msg == "Extra data":
            raise UsageError(f"{where}: more than one JSON value",
                             f"explain takes one incident; for a JSON Lines file use '{PROG} decide'") from None
        raise UsageError(f"{where}: QF401 not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                         _ONE_OBJECT) from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: QF401 expected a JSON object, got {_json_kind(data)}", _ONE_OBJECT)
    return data


_ONE_OBJECT = "give one JSON object such as '{\"category\": \"complaint\"}', or a file holding one"
_DECIDED = ("category", "severity", "priority", "team", "owner", "responsibility")


def render_explanation(incident: Incident, decision: Decision, ruleset: Ruleset, *,
                       show_all: bool = False) -> list[str]:
    """The decision for *incident* and its trace, as lines a person reads top to bottom."""
    tz = ZoneInfo(ruleset.timezone)
    lines: list[str] = []
    head = [("incident", incident.id or "(no id)")]
    if incident.reported_at is not None:
        head.append(("reported", _when(incident.reported_at, tz)))
    tier = incident.customer.tier if incident.customer else None
    facts = ", ".join(f"{k} {v}" for k, v in (("channel", incident.channel), ("category", incident.category),
                                                ("place", incident.place), ("customer tier", tier)) if v)
    if facts:
        head.append(("facts", facts))
    text = incident.title or incident.description
    if text:
        head.append(("says", _short(text, 72)))
    head += [("decided at", _when(decision.decided_at, tz)), ("ruleset", f"{decision.ruleset} ({ruleset.timezone})")]
    lines += _table([(f"{k}:", v) for k, v in head], sep=" ")

    lines += ["", "decision:"]
    rows: list[tuple[str, ...]] = []
    for field in _DECIDED:
        value = getattr(decision, field)
        source = decision.sources.get(field)
        if value is None:
            why = "not set: no rule sets it"
        elif source:
            why = f"from {source}"
        else:
            why = "as reported" if field == "category" and value == incident.category else ""
        rows.append((field, _show(value), why))
    lines += _table(rows, indent="  ")

    lines += ["", "deadlines:"]
    if decision.deadlines:
        rows = [("clock", "due", "left", "business time", "calendar time", "counted from")]
        for d in decision.deadlines:
            rows.append((d.clock, _when(d.due, tz), _left(d.due - decision.decided_at),
                         f"{format_duration(d.business)} on {d.calendar}", format_duration(d.elapsed),
                         _when(d.start, tz)))
        lines += _table(rows, indent="  ")
    else:
        lines.append("  none: the severity has no committed times" if decision.severity
                     else "  none: no severity was decided")

    lines += ["", "why:"]
    steps = list(decision.trace.steps)
    sections: dict[str, list[Any]] = {}
    for step in steps:
        sections.setdefault(step.section, []).append(step)
    # Sections whose rules decided something first (classify, route ...), notes last.
    ordered = sorted(sections.items(), key=lambda kv: all(s.outcome == "info" for s in kv[1]))
    rule_w = min(28, max((_width(s.rule or "") for s in steps), default=0))
    out_w = max((_width(s.outcome) for s in steps), default=0)
    for section, group in ordered:
        lines.append(f"  {section}")
        for kind, item in _runs(group, show_all):
            if kind == "fold":
                first, last = item[0].rule or "?", item[-1].rule or "?"
                lines.append(f"    {_pad('no match', out_w)}  {_pad(f'{len(item)} rules', rule_w)}  "
                             f"'{first}' … '{last}' did not match (--all lists them)")
            else:
                lines.append(f"    {_pad(item.outcome, out_w)}  {_pad(item.rule or '', rule_w)}  {item.reason}"
                             .rstrip())
    if not steps:
        lines.append("  no plugin explained this decision")
    return lines


def _runs(steps: Sequence[Any], show_all: bool) -> Iterator[tuple[str, Any]]:
    """Steps one by one, with runs of more than COLLAPSE_AFTER non-matches folded."""
    i = 0
    while i < len(steps):
        j = i
        while j < len(steps) and steps[j].outcome == "no match":
            j += 1
        if j - i > COLLAPSE_AFTER and not show_all:
            yield "fold", steps[i:j]
            i = j
            continue
        end = max(j, i + 1)
        for s in steps[i:end]:
            yield "step", s
        i = end


def _left(delta: timedelta) -> str:
    """``in 1h30m`` or ``2h overdue``."""
    if delta < timedelta(0):
        return f"{format_duration(-delta)} overdue"
    return f"in {format_duration(delta)}"


def _when(dt: datetime, tz: ZoneInfo) -> str:
    """``2026-11-20 23:10 +08:00`` (seconds only when there are some)."""
    local = dt.astimezone(tz)
    fmt = "%Y-%m-%d %H:%M:%S" if local.second or local.microsecond else "%Y-%m-%d %H:%M"
    return f"{local.strftime(fmt)} {_offset(local)}"


def _offset(dt: datetime) -> str:
    off = dt.utcoffset() or timedelta(0)
    sign = "-" if off < timedelta(0) else "+"
    minutes = abs(int(off.total_seconds())) // 60
    return f"{sign}{minutes // 60:02d}:{minutes % 60:02d}"


# ---------------------------------------------------------------------------
# qflow demo
# ---------------------------------------------------------------------------


def _cmd_demo(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    ruleset_path = _find_demo_file(args.ruleset, DEMO_RULESET, "ruleset")
    if args.incidents is not None:
        incidents_path = _find_demo_file(args.incidents, DEMO_INCIDENTS, "incidents file")
    elif args.ruleset is not None:
        guess = re.sub(r"\.ya?ml$", "", ruleset_path) + ".incidents.jsonl"
        if not Path(guess).is_file():
            raise UsageError(f"no incidents file next to the ruleset (looked for '{guess}')",
                             "pass --incidents PATH")
        incidents_path = guess
    else:
        incidents_path = _find_demo_file(None, DEMO_INCIDENTS, "incidents file")

    pm = _plugins(args)
    ruleset = _load(ruleset_path, pm)
    incidents = _read_demo_incidents(incidents_path, err)
    if incidents is None:
        return 1
    if not incidents:
        raise UsageError(f"'{incidents_path}' holds no incidents", "give a JSON Lines file with one incident a line")
    Demo(ruleset, pm, incidents, ruleset_path, incidents_path, out).run()
    return 0


def _find_demo_file(given: str | None, default: str, what: str) -> str:
    if given is not None:
        return _existing_file(given, what)
    if Path(default).is_file():
        return default
    root = Path(qflow.__file__).resolve().parents[2]
    candidate = root / default
    if candidate.is_file():
        try:
            shown = os.path.relpath(candidate)
        except ValueError:  # another drive on Windows
            return str(candidate)
        return shown if not shown.startswith("..") else str(candidate)
    raise UsageError(f"cannot find the demo {what} '{default}' here or in {root}",
                     f"run from the qflow repository, or pass --{'ruleset' if what == 'ruleset' else 'incidents'}"
                     " PATH")


def _read_demo_incidents(path: str, err: IO[str]) -> list[tuple[int, Incident]] | None:
    good: list[tuple[int, Incident]] = []
    bad = 0
    with _open_input(path) as lines:
        for number, item in _incidents(lines):
            if isinstance(item, str):
                bad += 1
                err.write(f"{path}:{number}:1: {item}\n")
            else:
                good.append((number, item))
    if bad:
        err.write(f"{PROG}: {_plural(bad, 'bad line')} in {path}; fix them or run '{PROG} decide' to see all\n")
        return None
    return good


# The loop walked for one incident: (minutes after its report, step).
_LOOP = (
    (10, "confirm"), (20, "analyse"), (60, "cause"), (70, "act"), (75, "plan"),
    (240, "done"), (245, "verify"), (300, "verification"), (305, "close"),
)


_WHYS = (
    WhyStep("why did it happen?", "nobody checked before it was noticed"),
    WhyStep("why did nobody check?", "the shift checklist has no such step"),
    WhyStep("why is the step missing?", "the checklist was not updated after the last change"),
)


class Demo:
    """The demo, one section after another, printed to *out*."""

    def __init__(self, ruleset: Ruleset, pm: Any, incidents: list[tuple[int, Incident]],
                 ruleset_path: str, incidents_path: str, out: IO[str]) -> None:
        self.ruleset = ruleset
        self.tz = ZoneInfo(ruleset.timezone)
        self.pm = pm
        self.incidents = incidents
        self.paths = (ruleset_path, incidents_path)
        self.out = out
        self.states: dict[str, Any] = {}
        self.order: list[str] = []
        self.notes: list[str] = []

    def say(self, line: str = "") -> None:
        self.out.write(line + "\n")

    def run(self) -> None:
        ruleset, tz = self.ruleset, self.tz
        reported = [i.reported_at for _, i in self.incidents if i.reported_at is not None]
        start = min(reported) if reported else datetime(2026, 1, 1, tzinfo=tz)
        self.clock = FakeClock(start)
        self.engine = Engine(ruleset, plugins=self.pm, clock=self.clock)
        times = [i.reported_at or start for _, i in self.incidents]
        self.year_known = len({t.astimezone(tz).year for t in times}) == 1

        year = f", dates in {start.astimezone(tz).year}" if self.year_known else ""
        self.say(f"qflow demo: {ruleset.ref}; times in {ruleset.timezone} "
                 f"(UTC{_offset(start.astimezone(tz))}){year}")
        self.say(f"ruleset:   {self.paths[0]}")
        self.say(f"incidents: {self.paths[1]} ({_plural(len(self.incidents), 'incident')})")
        self.say("store:     in memory (the SQLite store comes later; nothing is kept after the demo)")
        self.say()

        # Pick the incident to explain and the one to walk through the loop before
        # replaying, so the loop's steps can interleave with later reports.
        # The first incident (in time) of the most urgent severity decided: the first
        # critical one with the usual severities.
        order = list(ruleset.names("severity"))
        rank = {name: n for n, name in enumerate(order)}
        severities = [d.severity for d in self._predecide()]
        focus = min(range(len(self.incidents)),
                    key=lambda k: (rank.get(severities[k], len(order)), times[k], k))

        schedule: list[tuple[datetime, int, int, Callable[[], None]]] = []
        for k, (_, inc) in enumerate(self.incidents):
            at = inc.reported_at or start
            schedule.append((at, 0, k, functools.partial(self._report, k)))
        focus_at = self.incidents[focus][1].reported_at or start
        for n, (minutes, step) in enumerate(_LOOP):
            schedule.append((focus_at + timedelta(minutes=minutes), 1, n, functools.partial(self._loop, step)))
        schedule.sort(key=lambda s: (s[0], s[1], s[2]))
        self.focus = focus
        self.focus_id: str | None = None
        self.loop_log: list[str] = []
        self.loop_stopped = False
        self.last_report = max(times)
        for at, _, _, do in schedule:
            self.clock.set(max(at, self.clock.now()))
            do()

        self._table()
        self._explain()
        self._timeline()
        self._due()
        self._summary()

    # -- replay --------------------------------------------------------------------

    def _predecide(self) -> list[Decision]:
        engine = Engine(self.ruleset, plugins=self.pm, clock=FakeClock(datetime(2000, 1, 1, tzinfo=self.tz)))
        return [engine.decide(i, i.reported_at or engine.clock.now()) for _, i in self.incidents]

    def _report(self, k: int) -> None:
        number, incident = self.incidents[k]
        try:
            state = self.engine.report(incident, actor=incident.reporter.name if incident.reporter else None)
        except QflowError as exc:
            self.notes.append(f"line {number}: not reported: {exc}")
            return
        if state.id not in self.states:
            self.order.append(state.id)
        self.states[state.id] = state
        if k == self.focus:
            self.focus_id = state.id

    def _loop(self, step: str) -> None:
        iid = self.focus_id
        if iid is None or self.loop_stopped:
            return
        engine = self.engine
        now = self.clock.now()
        state = engine.get(iid)
        team = state.decision.team if state.decision else None
        lead = self._lead(team) or "supervisor"
        try:
            if step == "confirm":
                engine.transition(iid, Stage.CONFIRMED, actor=lead, reason="checked on site: the anomaly is real")
            elif step == "analyse":
                engine.transition(iid, Stage.ANALYSING, actor=lead)
            elif step == "cause":
                engine.record_cause(iid, Cause(
                    id="C1", summary="the shift checklist does not cover this check", method="five_why",
                    whys=_WHYS,  # type: ignore[arg-type]  # mypy reads attrs' converter=tuple wrongly
                    confirmed=True, recorded_by="quality"), actor="quality")
            elif step == "act":
                engine.transition(iid, Stage.ACTING, actor=lead)
            elif step == "plan":
                engine.plan_action(iid, Action(
                    id="A1", description="add the check to the shift checklist and brief every shift",
                    owner=lead, due=now + timedelta(days=2), kind=ActionKind.CORRECTIVE,
                    target="no repeat of this anomaly in 30 days"), actor=lead)
            elif step == "done":
                engine.update_action(iid, "A1", ActionStatus.DONE, actor=lead)
            elif step == "verify":
                engine.transition(iid, Stage.VERIFYING, actor="quality")
            elif step == "verification":
                engine.record_verification(iid, Verification(
                    result=VerificationResult.EFFECTIVE, at=now, verifier="quality", method="spot check",
                    metrics={"repeats": 0, "checks passed": "12/12"}, note="checklist followed on every shift"),
                    actor="quality")
            elif step == "close":
                engine.transition(iid, Stage.CLOSED, actor="quality", reason="verified effective")
        except (TransitionError, InputError) as exc:
            self.loop_log.append(f"stopped at '{step}': {exc}")
            self.loop_stopped = True
            return
        self.states[iid] = engine.get(iid)

    def _lead(self, team: str | None) -> str | None:
        teams = self.ruleset.sections.get("teams") or {}
        spec = teams.get(team) if team else None
        return getattr(spec, "lead", None)

    # -- output --------------------------------------------------------------------

    def _t(self, dt: datetime | None) -> str:
        if dt is None:
            return "-"
        local = dt.astimezone(self.tz)
        return local.strftime("%m-%d %H:%M" if self.year_known else "%Y-%m-%d %H:%M")

    def _table(self) -> None:
        self.say(f"1. Reported {_plural(len(self.order), 'incident')} in time order "
                 "(the clock set to each reported_at)")
        self.say()
        rows = [("id", "reported", "category", "severity", "team", "respond by", "resolve by")]
        for iid in self.order:
            state = self.engine.get(iid)
            d = state.decision
            assert d is not None  # every reported incident is decided
            rows.append((iid, self._t(state.incident.reported_at), _show(d.category), _show(d.severity),
                         _show(d.team), self._t(d.respond_by), self._t(d.resolve_by)))
        for line in _table(rows, indent="  "):
            self.say(line)
        for note in self.notes:
            self.say(f"  {note}")
        self.say()

    def _explain(self) -> None:
        iid = self.focus_id
        if iid is None:
            return
        state = self.engine.get(iid)
        decision = self.engine.decide(state.incident, state.decision.decided_at if state.decision else None)
        self.say(f"2. Why {iid} is {decision.severity} (what 'qflow explain' shows)")
        self.say()
        for line in render_explanation(state.incident, decision, self.ruleset):
            self.say(f"  {line}" if line else "")
        self.say()

    def _timeline(self) -> None:
        iid = self.focus_id
        if iid is None:
            return
        state = self.engine.get(iid)
        self.say(f"3. {iid} through the loop: confirm, analyse, act, verify, close (now {state.stage.value})")
        self.say()
        rows = [("seq", "at", "event", "by", "what")]
        for e in self.engine.events(iid):
            by = e.actor or ("qflow" if e.type == "DecisionMade" else "-")
            rows.append((str(e.seq), self._t(e.at), e.type, by, _event_text(e, self)))
        for line in _table(rows, indent="  "):
            self.say(line)
        for line in self.loop_log:
            self.say(f"  {line}")
        self.say()

    def _due(self) -> None:
        # What falls due in the 24 hours after the last report; the deadlines that
        # already passed (nobody answers the incidents in this demo) are only counted.
        now = self.last_report
        until = now + timedelta(hours=24)
        due = self.engine.due(until)
        coming = [item for item in due if item.at > now]
        passed = [item for item in due if item.at <= now]
        self.say(f"4. Due in the 24 hours after the last report ({self._t(now)} to {self._t(until)}): "
                 f"{_plural(len(coming), 'deadline')}")
        self.say()
        if not coming:
            self.say("  nothing falls due")
        else:
            rows = [("due", "in", "incident", "clock", "team")]
            for item in coming:
                state = self.engine.get(item.incident_id)
                rows.append((self._t(item.at), _left(item.at - now), item.incident_id, item.clock,
                             _show(state.decision.team if state.decision else None)))
            for line in _table(rows, sep=" | ", indent="  "):
                self.say(line)
        if passed:
            self.say(f"  already passed: {_plural(len(passed), 'deadline')} of "
                     f"{_plural(len({p.incident_id for p in passed}), 'open incident')} "
                     "(the demo answers none but the one above)")
        self.say()

    def _summary(self) -> None:
        counts = Counter(s.decision.severity if s.decision else None for s in
                         (self.engine.get(i) for i in self.order))
        order = [s for s in self.ruleset.names("severity") if counts.get(s)]
        order += sorted((s for s in counts if s not in order and s is not None), key=str)
        parts = [f"{counts[s]} {s}" for s in order]
        if counts.get(None):
            parts.append(f"{counts[None]} without severity")
        self.say(f"{_plural(len(self.order), 'incident')}: {', '.join(parts) or 'none decided'}")


def _event_text(e: Event, demo: Demo) -> str:
    data = {k: _plain(v) for k, v in e.data.items()}
    if e.type == "IncidentReported":
        bits = [data.get("channel"), data.get("category"), data.get("place")]
        text = data.get("title") or data.get("description") or ""
        return _short(", ".join(str(b) for b in bits if b) + (f": {text}" if text else ""), 60)
    if e.type == "DecisionMade":
        return (f"{data.get('severity')}, team {data.get('team')}, "
                f"respond by {_t_iso(data, 'respond', demo)}, resolve by {_t_iso(data, 'resolve', demo)}")
    if e.type == "StageChanged":
        reason = f" ({data['reason']})" if data.get("reason") else ""
        return f"{data.get('from')} → {data.get('to')}{reason}"
    if e.type == "CauseRecorded":
        return f"{data.get('method')}: {data.get('summary')} ({len(data.get('whys') or ())} whys)"
    if e.type == "ActionPlanned":
        due = data.get("due")
        due_text = demo._t(datetime.fromisoformat(due)) if isinstance(due, str) else _show(due)
        return (f"{data.get('id')} {data.get('kind')}: {data.get('description')}, "
                f"owner {data.get('owner')}, due {due_text}")
    if e.type == "ActionUpdated":
        return f"{data.get('id')} is {data.get('status')}"
    if e.type == "VerificationRecorded":
        metrics = ", ".join(f"{k} {v}" for k, v in (data.get("metrics") or {}).items())
        return f"{data.get('result')}" + (f" ({metrics})" if metrics else "")
    if e.type == "NotificationFailed":
        return f"{data.get('plugin')}: {data.get('error')}"
    return _short(json.dumps(dict(data), ensure_ascii=False, default=str), 60)


def _plain(value: Any) -> Any:
    # Event data may hold enum members (str enums) rather than their values.
    return value.value if isinstance(value, enum.Enum) else value


def _t_iso(data: Any, clock: str, demo: Demo) -> str:
    for d in data.get("deadlines") or ():
        if d.get("clock") == clock:
            return demo._t(datetime.fromisoformat(d["due"]))
    return "-"


_COMMANDS: dict[str, Callable[[argparse.Namespace, IO[str], IO[str]], int]] = {
    "check": _cmd_check,
    "decide": _cmd_decide,
    "explain": _cmd_explain,
    "demo": _cmd_demo,
}
