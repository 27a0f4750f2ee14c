"""The ``qflow`` command: check rulesets, decide and explain incidents, run the demo.

Every command builds its plugin manager, ruleset and engine once and then works
through its input. Input mistakes end with a one-line ``qflow: error: ...`` and a
hint on stderr (exit 2); a broken ruleset prints its diagnostics (exit 1). A Python
traceback means a bug in qflow or a plugin, never a mistake in what was typed.
"""

from __future__ import annotations

import argparse
import importlib
import json
import os
import re
import sys
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import IO, Any, NoReturn
from zoneinfo import ZoneInfo

import orjson

import qflow
from qflow._convert import ShapeError, parse_time
from qflow._render import COLLAPSE_AFTER, _iso, _plural, render_explanation
from qflow.clock import FakeClock, SystemClock
from qflow.diagnostics import FORMATS, Diagnostic, RulesetError, did_you_mean, format_diagnostics
from qflow.engine import Engine, parse_incident
from qflow.errors import DecisionError, InputError, PluginError, QflowError
from qflow.model import (
    Decision,
    Incident,
)
from qflow.ruleset import Ruleset, load_ruleset

__all__ = ["add_format_option", "main", "print_diagnostics"]

PROG = "qflow"
COMMANDS = ("check", "decide", "explain", "demo")

#: Modules that add command groups. Each has ``add_commands(sub, common)`` that adds its
#: subparsers (with ``parents=[common]``) and returns ``{name: handler}``; a handler
#: is ``(args, out, err) -> exit status``. Shared pieces (UsageError, _load, _plugins
#: ...) are imported from this module.
COMMAND_MODULES = (
    "qflow._cli_authoring",  # test, replay, graph, init
    "qflow._cli_lint",       # lint, schema
    "qflow._cli_store",      # db, import, ls, show
    "qflow._cli_worker",     # worker
    "qflow._cli_notify",     # notify test, notify preview
    "qflow._cli_loop",       # confirm, reject, cause, action, act, verify, close, reopen, problems, risks
)
DEMO_RULESET = "rulesets/hotel-front-desk.yaml"
DEMO_INCIDENTS = "rulesets/hotel-front-desk.incidents.jsonl"


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

    commands: tuple[str, ...] = ()

    def error(self, message: str) -> NoReturn:
        found = re.search(r"invalid choice: '?([^' ]*)'? \(choose from", message)
        if found and message.startswith(("argument command", "argument COMMAND")):
            name = found.group(1)
            names = self.commands or COMMANDS
            hint = did_you_mean(name, names)
            raise UsageError(f"unknown command '{name}'",
                             f"{hint + ' ' if hint else ''}run '{PROG} --help' for all {len(names)} commands")
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
respond_by, resolve_by, matched, ruleset; then "warnings" when a deadline is an
estimate: {{"resolve": ["why"]}} per clock (a year whose holiday schedule is not
published). A line that is not a valid incident, or whose deadlines cannot be worked
out (QF403), gives {{"line": N, "error": "..."}} and the others go on; the exit
status is 1 when any line failed. Times are ISO 8601 in the ruleset's time zone.

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
Reports the shipped incidents in time order on a fake clock into an SQLite store,
explains the first critical one, walks one incident through the whole loop, lists
what falls due in the next 24 hours, then builds six months of the same desk's
history and writes its report (HTML in English and Chinese, an XLSX workbook) and
the process forms for one incident. Everything goes under --out (default .demo/),
made anew each run.

examples:
  {PROG} demo
  {PROG} demo --ruleset my.yaml --incidents my.incidents.jsonl --out /tmp/qflow-demo
"""


def _plugin_words(words: Sequence[str]) -> tuple[bool, list[str]]:
    """``--no-plugins`` and every ``--block NAME`` (or ``--block=NAME``), wherever they stand."""
    blocked = []
    for i, w in enumerate(words):
        if w == "--block" and i + 1 < len(words):
            blocked.append(words[i + 1])
        elif w.startswith("--block="):
            blocked.append(w.split("=", 1)[1])
    return "--no-plugins" in words, blocked


def _build_parser(pm: Any = None) -> tuple[_Parser, dict[str, Callable[[argparse.Namespace, IO[str], IO[str]], int]]]:
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
    add_format_option(p)

    p = sub.add_parser("decide", parents=[common], formatter_class=_FORMATTER, epilog=_DECIDE_EPILOG,
                       help="decide incidents from a JSON Lines file",
                       description="Decide every incident of a JSON Lines file; one JSON object out per line.")
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    p.add_argument("--input", "-i", required=True, metavar="FILE",
                   help="incidents, one JSON object per line ('-' reads stdin)")
    _now_option(p)
    add_format_option(p)

    p = sub.add_parser("explain", parents=[common], formatter_class=_FORMATTER, epilog=_EXPLAIN_EPILOG,
                       help="explain the decision for one incident, rule by rule",
                       description="Decide one incident and show why, rule by rule.")
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    p.add_argument("--incident", required=True, metavar="JSON|FILE",
                   help="the incident as a JSON object, or a file holding one ('-' reads stdin)")
    _now_option(p)
    p.add_argument("--all", action="store_true",
                   help=f"show every rule, also long runs (more than {COLLAPSE_AFTER}) that did not match")
    add_format_option(p)

    p = sub.add_parser("demo", parents=[common], formatter_class=_FORMATTER, epilog=_DEMO_EPILOG,
                       help="run the whole loop on the shipped hotel front-desk example",
                       description="The main job end to end on the shipped ruleset and incidents.")
    p.add_argument("--ruleset", metavar="PATH", help=f"the ruleset (default {DEMO_RULESET})")
    p.add_argument("--incidents", metavar="PATH",
                   help="the incidents, JSON Lines (default: the ruleset's name with .incidents.jsonl)")
    p.add_argument("--out", metavar="DIR", default=".demo",
                   help="where the demo's stores, report and forms go (default .demo)")
    handlers = dict(_COMMANDS)
    for module_name in COMMAND_MODULES:
        handlers.update(importlib.import_module(module_name).add_commands(sub, common))
    # Plugins add their own commands (the built-in assess plugin adds report, survey ...);
    # a name already taken is the plugin's mistake, never a silent take-over.
    if pm is not None:
        for impl in pm.hook.qflow_commands.get_hookimpls():  # the built-ins first: they keep their names
            handlers.update(_plugin_commands(impl, sub, common, handlers))
    parser.commands = tuple(handlers)
    return parser, handlers


def _plugin_commands(impl: Any, sub: Any, common: argparse.ArgumentParser,
                     taken: Mapping[str, Any]) -> Mapping[str, Any]:
    """The commands one ``qflow_commands`` implementation adds; one whose name is
    taken (by qflow or an earlier plugin) is a :class:`PluginError` naming both."""
    plugin = impl.plugin_name
    kwargs = {"subparsers": sub, "common": common}
    try:
        found = impl.function(**{k: v for k, v in kwargs.items() if k in impl.argnames}) or {}
    except argparse.ArgumentError as exc:
        raise PluginError(f"plugin {plugin} adds a command qflow already has ({exc}); rename its command") from None
    clash = sorted(set(found) & set(taken))
    if clash:
        raise PluginError(f"plugin {plugin} adds the command {', '.join(map(repr, clash))}, which qflow already "
                          "has; rename its command")
    return found  # type: ignore[no-any-return]


def _plugin_options(parser: argparse.ArgumentParser, *, suppress: bool) -> None:
    default: Any = argparse.SUPPRESS if suppress else None
    suffix = "_sub" if suppress else ""
    group = parser.add_argument_group("plugins")
    group.add_argument("--no-plugins", action="store_true", dest="no_plugins" + suffix,
                       default=argparse.SUPPRESS if suppress else False,
                       help="load only qflow's built-in plugins, no third-party ones")
    group.add_argument("--block", action="append", metavar="NAME", dest="block" + suffix, default=default,
                       help="never load the plugin NAME (repeatable)")


def add_format_option(parser: argparse.ArgumentParser) -> None:
    """Add ``--format text|json|github`` to a command that reports diagnostics.

    Every command that prints ruleset (or other located) problems takes it; command
    modules call this on their subparsers and print with :func:`print_diagnostics`.
    A ruleset that fails to load through :func:`_load` is printed in the chosen
    format by :func:`main` (on stderr, exit 1).
    """
    parser.add_argument("--format", choices=FORMATS, default="text", dest="format",
                        help="how to print problems: text (file:line:col: CODE message ...), json (one "
                             "array of objects with file, line, col, code, severity, message, hint, path, "
                             "rule) or github (::error file=...,line=...,col=...,title=QFxxx::message)")


def print_diagnostics(diagnostics: Iterable[Diagnostic], fmt: str, out: IO[str]) -> None:
    """Print *diagnostics* to *out* in *fmt* (``text``, ``json`` or ``github``; see
    :func:`add_format_option`). json prints one array, also when there are none."""
    out.write(format_diagnostics(diagnostics, fmt))


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
            # One plugin manager per run: it lists the plugins' commands before parsing,
            # so it reads the plugin options (--no-plugins, --block) from the raw words.
            no_plugins, blocked = _plugin_words(args_list)
            pm = qflow.make_plugin_manager(autoload=not no_plugins, blocked=blocked)
            parser, handlers = _build_parser(pm)
            args, extra = parser.parse_known_args(args_list)
            args.plugin_manager = pm
        except SystemExit as exc:  # --help and --version
            return int(exc.code or 0)
        if args.command is None:
            raise UsageError("choose a command", f"e.g. '{PROG} check RULESET'; run '{PROG} --help' for all "
                                                 f"{len(handlers)} commands")
        if extra:
            raise UsageError(f"unrecognized arguments: {' '.join(extra)}",
                             f"run '{PROG} {args.command} --help' for usage and examples")
        args.no_plugins = args.no_plugins or getattr(args, "no_plugins_sub", False)
        args.block = (args.block or []) + (getattr(args, "block_sub", None) or [])
        status = handlers[args.command](args, out, err)
        out.flush()
        return status
    except UsageError as exc:
        _error(err, exc.message, exc.hint)
        return 2
    except PluginError as exc:
        _error(err, str(exc), "run with --no-plugins, or --block NAME, to leave a plugin out")
        return 2
    except _RulesetFailed as exc:
        fmt = getattr(args, "format", "text") if "args" in locals() else "text"
        print_diagnostics(exc.error.diagnostics, fmt if fmt in FORMATS else "text", err)
        if fmt != "json":
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
    except QflowError as exc:
        # A command that does not catch one of ours itself still ends in one line, not a
        # traceback; a store that does not answer says what was tried and what to check.
        _error(err, str(exc), None)
        return 1


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
    pm = getattr(args, "plugin_manager", None)
    if pm is not None:
        return pm
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


def _cmd_check(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    for path in args.rulesets:
        _existing_file(path, "ruleset file")
    pm = _plugins(args)
    fmt = args.format
    # text interleaves the summary lines with the problems; json and github keep
    # stdout for the machine and put the summary on stderr.
    summary = out if fmt == "text" else err
    errors, failed = 0, 0
    seen: set[Diagnostic] = set()
    found: list[Diagnostic] = []
    for path in args.rulesets:
        try:
            ruleset = load_ruleset(path, plugins=pm)
        except RulesetError as exc:
            failed += 1
            new = [d for d in exc.diagnostics if d not in seen]
            seen.update(new)
            errors += sum(d.severity == "error" for d in new)
            found += new
            if fmt == "text":
                print_diagnostics(new, fmt, out)
            continue
        warnings = [d for d in ruleset.warnings if d not in seen]
        seen.update(warnings)
        found += warnings
        tail = f", {_plural(len(warnings), 'warning')}" if warnings else ""
        summary.write(f"{path}: ok ({_counts(ruleset)}){tail}\n")
        if fmt == "text":
            print_diagnostics(warnings, fmt, out)
    if fmt != "text":
        print_diagnostics(found, fmt, out)
    if failed:
        summary.write(f"{_plural(errors, 'error')} in {_plural(failed, 'file')}\n")
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
            try:
                d = engine.decide(incident, now)
            except DecisionError as exc:
                bad += 1
                write(dumps({"line": number, "error": f"QF403 {exc}"}) + "\n")
                continue
            write(dumps({
                "line": number, "id": incident.id, "category": d.category, "severity": d.severity,
                "priority": d.priority, "team": d.team, "owner": d.owner, "responsibility": d.responsibility,
                "respond_by": _iso(d.respond_by, tz), "resolve_by": _iso(d.resolve_by, tz),
                "matched": list(d.matched), "ruleset": ref, **_warnings(d),
            }) + "\n")
    out.flush()
    if bad:
        err.write(f"{PROG}: {bad} of {_plural(total, 'line')} failed; see the objects with \"error\"\n")
        return 1
    return 0


def _warnings(d: Decision) -> dict[str, Any]:
    """``{"warnings": {clock: [why]}}`` for the deadlines that are estimates; nothing
    when none is."""
    found = {dl.clock: list(dl.warnings) for dl in d.deadlines if dl.warnings}
    return {"warnings": found} if found else {}


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


# orjson parses a line about three times as fast as json, but turns integers past 64
# bits into floats and rejects what json accepts (NaN, Infinity, 1e400, lone surrogate
# escapes): such lines, and every line orjson rejects, go to json, whose results and
# error messages are the contract.
_LONG_DIGITS = re.compile(r"[0-9]{19}")


def _json_message(exc: json.JSONDecodeError) -> str:
    # Some of json's messages end in "at" (they expect ": line L column C" after them),
    # which would read "at at column C" before ours.
    return exc.msg.removesuffix(" at")


def _parse_line(text: str) -> Incident | str:
    try:
        if _LONG_DIGITS.search(text) is not None:
            raise ValueError("may hold an integer past 64 bits")
        data = orjson.loads(text)
    except ValueError:  # orjson.JSONDecodeError is one
        data = _NO_DATA
    if data is _NO_DATA:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            return f"QF401 not valid JSON: {_json_message(exc)} at column {exc.colno}"
        except RecursionError:
            return "QF401 not valid JSON: nested too deeply"
    if not isinstance(data, dict):
        return f"QF401 expected a JSON object, got {_json_kind(data)}"
    try:
        return parse_incident(data)
    except InputError as exc:
        return f"QF402 {exc}"


_NO_DATA = object()


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
    try:
        decision = engine.decide(incident, now)
    except DecisionError as exc:
        _error(err, f"QF403 {exc}", None)
        return 1
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
        raise UsageError(f"{where}: QF401 not valid JSON: {_json_message(exc)} at line {exc.lineno} column {exc.colno}",
                         _ONE_OBJECT) from None
    if not isinstance(data, dict):
        raise UsageError(f"{where}: QF401 expected a JSON object, got {_json_kind(data)}", _ONE_OBJECT)
    return data


_ONE_OBJECT = "give one JSON object such as '{\"category\": \"complaint\"}', or a file holding one"


def _cmd_demo(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._demo import run_demo  # the tour is loaded only when asked for

    return run_demo(args, out, err)


_COMMANDS: dict[str, Callable[[argparse.Namespace, IO[str], IO[str]], int]] = {
    "check": _cmd_check,
    "decide": _cmd_decide,
    "explain": _cmd_explain,
    "demo": _cmd_demo,
}
