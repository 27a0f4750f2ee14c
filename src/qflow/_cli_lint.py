"""The commands ``qflow lint`` and ``qflow schema``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import IO, Any

from qflow.cli import _FORMATTER, PROG, UsageError, _existing_file, _plugins, add_format_option, print_diagnostics
from qflow.diagnostics import Diagnostic, RulesetError
from qflow.ruleset import load_ruleset

__all__ = ["add_commands"]

_LINT_EPILOG = f"""\
Loads each ruleset like 'check' (its errors are reported the same way) and then
looks for what is legal but likely a mistake, each as a warning with a stable code:

  QF650  a rule that can never take effect (an earlier rule shadows it)
  QF651  a rule section without a default
  QF652  a team, calendar, template or severity defined and never used
  QF653  a condition that can never hold      QF654  one that always holds
  QF655  a regular expression that matches the empty text (so every text)
  QF656  a rule always overridden by a later one (mode all)

exit status: 0 no errors (warnings are printed but do not fail), 1 errors, or
warnings with --strict; 2 a usage error.

examples:
  {PROG} lint rulesets/hotel-front-desk.yaml
  {PROG} lint --strict --format github rulesets/*.yaml
"""

_SCHEMA_EPILOG = f"""\
Writes a JSON Schema (draft-07) of the ruleset format: the kernel's keys and every
section of every installed plugin, each with its description, so an editor (the
YAML language server, in VS Code, vim, emacs ...) completes keys and flags mistakes
as you type. Point a ruleset at it with a first line:

  # yaml-language-server: $schema=qflow.schema.json

examples:
  {PROG} schema -o rulesets/qflow.schema.json
  {PROG} schema --no-plugins | jq '.properties | keys'
"""


def add_commands(sub: Any, common: argparse.ArgumentParser) -> dict[str, Any]:
    p = sub.add_parser("lint", parents=[common], formatter_class=_FORMATTER, epilog=_LINT_EPILOG,
                       help="warn about rules that never apply, unused names, conditions that always hold ...",
                       description="Check each ruleset, then warn about what is legal but likely a mistake.")
    p.add_argument("rulesets", nargs="+", metavar="RULESET", help="ruleset files (YAML)")
    p.add_argument("--strict", action="store_true", help="exit 1 when there are warnings")
    add_format_option(p)
    p = sub.add_parser("schema", parents=[common], formatter_class=_FORMATTER, epilog=_SCHEMA_EPILOG,
                       help="write the JSON Schema of the ruleset format, for editors",
                       description="Write a JSON Schema (draft-07) of the ruleset format, plugins' sections included.")
    p.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of stdout")
    return {"lint": _cmd_lint, "schema": _cmd_schema}


def _cmd_lint(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._lint import lint_ruleset

    for path in args.rulesets:
        _existing_file(path, "ruleset file")
    pm = _plugins(args)
    fmt = args.format
    summary = out if fmt == "text" else err
    found: list[Diagnostic] = []
    seen: set[Diagnostic] = set()
    errors = warnings = 0
    for path in args.rulesets:
        try:
            ruleset = load_ruleset(path, plugins=pm)
        except RulesetError as exc:
            diags = exc.diagnostics
        else:
            diags = lint_ruleset(ruleset, pm)
        new = [d for d in diags if d not in seen]
        seen.update(new)
        found += new
        errors += sum(d.severity == "error" for d in new)
        warnings += sum(d.severity == "warning" for d in new)
        if fmt == "text":
            print_diagnostics(new, fmt, out)
    if fmt != "text":
        print_diagnostics(found, fmt, out)
    files = len(args.rulesets)
    noun = "file" if files == 1 else "files"
    if errors or warnings:
        parts = [f"{n} {w}{'' if n == 1 else 's'}" for n, w in ((errors, "error"), (warnings, "warning")) if n]
        summary.write(f"{' and '.join(parts)} in {files} {noun}\n")
    else:
        summary.write(f"{files} {noun} clean\n")
    return 1 if errors or (args.strict and warnings) else 0


def _cmd_schema(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow._schema import ruleset_schema

    text = json.dumps(ruleset_schema(_plugins(args)), ensure_ascii=False, indent=2) + "\n"
    if args.output is None:
        out.write(text)
        return 0
    target = Path(args.output)
    if target.is_dir():
        raise UsageError(f"'{args.output}' is a directory", "give a file name, e.g. qflow.schema.json")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write '{args.output}': {exc.strerror}", "check the path and its permissions") from None
    err.write(f"{PROG}: wrote {args.output}\n")
    return 0
