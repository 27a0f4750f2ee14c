"""Commands for changing rules safely: ``test``, ``replay``, ``graph`` and ``init``.

Listed in ``qflow.cli.COMMAND_MODULES``; each handler is ``(args, out, err) -> exit
status`` and uses the shared pieces of :mod:`qflow.cli`.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import IO, Any

from qflow._render import _plural
from qflow.cli import _FORMATTER, PROG, UsageError, _plugins

__all__ = ["add_commands"]

Handler = Callable[[argparse.Namespace, IO[str], IO[str]], int]

_TEST_EPILOG = f"""\
Runs the cases of ruleset tests files ('NAME.tests.yaml' beside 'NAME.yaml'). A PATH
may be a tests file, a ruleset (its tests file is found beside it) or a folder
(every *.tests.yaml under it). Each failing case prints its file:line and, field by
field, what was expected and what came out; then one summary line.

exit status: 0 every case passed, 1 a case failed or a tests file is broken, 2 a usage error.

examples:
  {PROG} test rulesets/
  {PROG} test rulesets/hotel-front-desk.yaml -k gold
  {PROG} test rulesets/hotel-front-desk.tests.yaml --ruleset proposed/hotel-front-desk.yaml
  {PROG} test rulesets/ --format github     # annotations in a GitHub Actions log
"""

_REPLAY_EPILOG = f"""\
Decides every incident of the input with both rulesets, each at the time it was
reported, and reports what would change: per field, how many incidents and which
kinds of change, with examples. A line that is not a valid incident is reported with
its line number and the others go on.

exit status: 0 done, 1 some input lines were broken (or --fail-on-change and
something changed), 2 a usage error.

examples:
  {PROG} replay rulesets/hotel-front-desk.yaml proposed.yaml --input rulesets/hotel-front-desk.incidents.jsonl
  {PROG} replay deployed.yaml proposed.yaml --input past.jsonl --format json > changes.json
  {PROG} replay deployed.yaml proposed.yaml --store sqlite:///var/qflow/qflow.db
"""

_GRAPH_EPILOG = f"""\
Draws what the ruleset does: the stages of the improvement loop with the role
responsible at each, the routing of categories to teams, and the escalation ladder
per severity. Mermaid text pastes into a wiki page (GitLab, GitHub, Confluence with
the Mermaid macro); DOT is Graphviz's format; SVG and PNG need Graphviz 'dot' or
mermaid-cli 'mmdc' on the PATH.

examples:
  {PROG} graph rulesets/hotel-front-desk.yaml > hotel.mmd
  {PROG} graph rulesets/hotel-front-desk.yaml --format svg -o hotel.svg
"""

_INIT_EPILOG = f"""\
Writes a ready ruleset and its tests for a kind of site into DIR: NAME.yaml,
NAME.tests.yaml and NAME.incidents.jsonl. Both '{PROG} check' and '{PROG} test' pass on
the result as it is; change it from there. Existing files are never overwritten.

examples:
  {PROG} init rulesets/ --kind hotel --name harbour-hotel
  {PROG} init site/ --kind field-service
"""


def add_commands(sub: Any, common: argparse.ArgumentParser) -> dict[str, Handler]:
    p = sub.add_parser("test", parents=[common], formatter_class=_FORMATTER, epilog=_TEST_EPILOG,
                       help="run a ruleset's test cases",
                       description="Run ruleset test cases: given an incident at a time, expect a decision.")
    p.add_argument("paths", nargs="+", metavar="PATH", help="tests files, rulesets or folders")
    p.add_argument("-k", dest="select", metavar="TEXT", help="run only the cases whose name contains TEXT")
    p.add_argument("--ruleset", metavar="RULESET",
                   help="run the cases against this ruleset instead of the one each file names")
    p.add_argument("-v", "--verbose", action="store_true", help="list every case, not only the failing ones")
    p.add_argument("--format", choices=("text", "json", "github"), default="text",
                   help="text (default), json, or github (workflow annotations)")

    p = sub.add_parser("replay", parents=[common], formatter_class=_FORMATTER, epilog=_REPLAY_EPILOG,
                       help="show what a ruleset change would change on past incidents",
                       description="Run past incidents through two rulesets and report what would change.")
    p.add_argument("old", metavar="OLD", help="the ruleset in force")
    p.add_argument("new", metavar="NEW", help="the proposed ruleset")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--input", "-i", metavar="FILE", help="incidents, one JSON object per line ('-' reads stdin)")
    source.add_argument("--store", metavar="URL", help="read the reported incidents from this store")
    p.add_argument("--now", metavar="ISO",
                   help="the decision time for incidents without reported_at (ISO 8601 with a time zone)")
    p.add_argument("--examples", type=int, default=3, metavar="N", help="examples per kind of change (default 3)")
    p.add_argument("--format", choices=("text", "json"), default="text", help="text (default) or json")
    p.add_argument("--fail-on-change", action="store_true", help="exit 1 when any decision changes")
    p.add_argument("--jobs", "-j", type=int, metavar="N",
                   help="processes: 2 (default on a machine with two or more cores) replays each half of "
                        "an --input file in its own process, with the same report; 1 stays in one")

    p = sub.add_parser("graph", parents=[common], formatter_class=_FORMATTER, epilog=_GRAPH_EPILOG,
                       help="draw the ruleset as a flowchart (Mermaid, DOT, SVG, PNG)",
                       description="A flowchart of the ruleset: stages and roles, routing, escalation.")
    p.add_argument("ruleset", metavar="RULESET", help="the ruleset file")
    p.add_argument("--format", choices=("mermaid", "dot", "svg", "png"), default="mermaid",
                   help="mermaid (default), dot, svg or png")
    p.add_argument("-o", "--output", metavar="FILE", help="write here instead of standard output (needed for png)")

    p = sub.add_parser("init", parents=[common], formatter_class=_FORMATTER, epilog=_INIT_EPILOG,
                       help="scaffold a new ruleset with its tests",
                       description="Write a ruleset, its tests and example incidents for a kind of site.")
    p.add_argument("dir", metavar="DIR", help="the folder to write into (made if missing)")
    p.add_argument("--kind", required=True, choices=("hotel", "support", "field-service"),
                   help="the kind of site")
    p.add_argument("--name", metavar="NAME", help="the ruleset's name and file name (default: from the kind)")
    return {"test": _cmd_test, "replay": _cmd_replay, "graph": _cmd_graph, "init": _cmd_init}


# ---------------------------------------------------------------------------
# qflow test
# ---------------------------------------------------------------------------


def _cmd_test(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._ruletest import TestRunner, find_test_files

    files, missing = find_test_files(args.paths)
    if missing:
        raise UsageError(missing[0], "give a tests file (NAME.tests.yaml), a ruleset with one beside it, "
                                     "or a folder that holds some")
    if args.ruleset is not None:
        from qflow.cli import _existing_file

        _existing_file(args.ruleset, "ruleset file")
    runner = TestRunner(_plugins(args), ruleset=args.ruleset, select=args.select)
    results = [runner.run_file(f) for f in files]
    render = {"text": _test_text, "json": _test_json, "github": _test_github}[args.format]
    render(results, out, args.verbose)
    failed = any(r.broken or r.errors or r.count("failed") for r in results)
    return 1 if failed else 0


def _test_counts(results: list[Any]) -> str:
    ran = [r for r in results if not r.broken]
    parts = [f"{sum(r.count('passed') for r in ran)} passed"]
    failed = sum(r.count("failed") for r in ran)
    errors = sum(r.errors for r in ran)
    skipped = sum(r.count("skipped") for r in ran)
    broken = len(results) - len(ran)
    if failed:
        parts.append(f"{failed} failed")
    if errors:
        parts.append(_plural(errors, "error"))
    if skipped:
        parts.append(f"{skipped} skipped")
    if broken:
        parts.append(_plural(broken, "broken file"))
    return ", ".join(parts) + f" in {_plural(len(results), 'file')}"


def _test_text(results: list[Any], out: IO[str], verbose: bool) -> None:
    for fr in results:
        for d in fr.diagnostics:
            out.write(f"{d}\n")
        for r in fr.results:
            case = r.case
            if r.outcome == "passed":
                if verbose:
                    out.write(f"ok    {case.where}: {case.name}\n")
                continue
            if r.outcome == "skipped":
                if verbose:
                    out.write(f"skip  {case.where}: {case.name} ({r.error})\n")
                continue
            out.write(f"{'FAIL' if r.outcome == 'failed' else 'ERROR':<5} {case.where}: {case.name}\n")
            if r.error:
                out.write(f"  {r.error}\n")
            for m in r.mismatches:
                out.write(f"  {m.field} (line {m.line})\n")
                for label, lines in (("expected", m.expected), ("got", m.got)):
                    for i, line in enumerate(lines):
                        out.write(f"    {label if i == 0 else '':<9}{line}\n")
        if fr.broken:
            out.write(f"{fr.path}: broken, {_plural(fr.errors, 'error')}; no case ran\n")
        else:
            out.write(f"{fr.path}: {_file_counts(fr)} ({fr.ruleset})\n")
    out.write(_test_counts(results) + "\n")


def _file_counts(fr: Any) -> str:
    parts = [f"{fr.count('passed')} passed"]
    if fr.count("failed"):
        parts.append(f"{fr.count('failed')} failed")
    if fr.errors:
        parts.append(_plural(fr.errors, "error"))
    if fr.count("skipped"):
        parts.append(f"{fr.count('skipped')} skipped")
    return ", ".join(parts)


def _test_json(results: list[Any], out: IO[str], verbose: bool) -> None:
    files = []
    for fr in results:
        files.append({
            "path": fr.path, "ruleset": fr.ruleset, "broken": fr.broken, "errors": fr.errors,
            "diagnostics": [_diag_json(d) for d in fr.diagnostics],
            "cases": [{"name": r.case.name, "line": r.case.line, "outcome": r.outcome, "error": r.error,
                       "mismatches": [{"field": m.field, "line": m.line, "expected": list(m.expected),
                                       "got": list(m.got)} for m in r.mismatches]}
                      for r in fr.results],
        })
    summary = {o: sum(r.count(o) for r in results) for o in ("passed", "failed", "skipped")}
    summary["errors"] = sum(r.errors for r in results if not r.broken)
    summary["broken_files"] = sum(1 for r in results if r.broken)
    out.write(json.dumps({"files": files, "summary": summary}, ensure_ascii=False, indent=2) + "\n")


def _diag_json(d: Any) -> dict[str, Any]:
    return {"file": d.file, "line": d.line, "col": d.col, "code": d.code, "severity": d.severity,
            "message": d.message, "hint": d.hint, "path": d.path, "rule": d.rule}


def _gh(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _test_github(results: list[Any], out: IO[str], verbose: bool) -> None:
    for fr in results:
        for d in fr.diagnostics:
            level = "error" if d.severity == "error" else "warning"
            out.write(f"::{level} file={d.file},line={d.line},col={d.col},title={d.code}::"
                      f"{_gh(d.message + (f' ({d.hint})' if d.hint else ''))}\n")
        for r in fr.results:
            if r.outcome not in ("failed", "error"):
                continue
            lines = [r.error] if r.error else []
            lines += [f"{m.field}: expected {'; '.join(m.expected)}, got {'; '.join(m.got)}" for m in r.mismatches]
            line = r.mismatches[0].line if r.mismatches else r.case.line
            out.write(f"::error file={r.case.file},line={line},title=qflow test::"
                      f"{_gh(r.case.name + ': ' + ' | '.join(lines))}\n")
    out.write(_test_counts(results) + "\n")


# ---------------------------------------------------------------------------
# qflow replay, graph, init
# ---------------------------------------------------------------------------


def _cmd_replay(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._replay import run_replay

    return run_replay(args, out, err)


def _cmd_graph(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._graph import run_graph

    return run_graph(args, out, err)


def _cmd_init(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._scaffold import run_init

    return run_init(args, out, err)
