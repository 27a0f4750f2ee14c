"""``qflow init``: a ready ruleset with its tests and example incidents for a kind of site.

The templates are package data (``qflow/templates/<kind>/``); ``__NAME__`` in them
becomes the ruleset's name. A scaffold passes ``qflow check`` and ``qflow test`` as
written (tests/test_init.py checks every kind), so an ops person starts from green.
"""

from __future__ import annotations

import argparse
import re
from importlib import resources
from pathlib import Path
from typing import IO

__all__ = ["KINDS", "render_scaffold", "run_init"]

#: Kind of site -> (template folder, default name).
KINDS = {
    "hotel": ("hotel", "hotel-front-desk"),
    "support": ("support", "support-centre"),
    "field-service": ("field-service", "field-service"),
}
_FILES = (("ruleset.yaml", "{name}.yaml"), ("tests.yaml", "{name}.tests.yaml"),
          ("incidents.jsonl", "{name}.incidents.jsonl"))
_NAME = re.compile(r"^[^\W_][\w.-]*$")


def render_scaffold(kind: str, name: str) -> dict[str, str]:
    """File name -> text of the scaffold for *kind* named *name*."""
    folder = resources.files("qflow").joinpath("templates", KINDS[kind][0])
    return {target.format(name=name): folder.joinpath(source).read_text(encoding="utf-8").replace("__NAME__", name)
            for source, target in _FILES}


def run_init(args: argparse.Namespace, out: IO[str], err: IO[str]) -> int:
    from qflow.cli import PROG, UsageError

    name = args.name or KINDS[args.kind][1]
    if not _NAME.match(name) or name.endswith((".yaml", ".yml")):
        raise UsageError(f"--name '{name}' cannot be a ruleset name",
                         "use letters, digits, '-', '_' and '.', without .yaml, e.g. --name harbour-hotel")
    folder = Path(args.dir)
    if folder.exists() and not folder.is_dir():
        raise UsageError(f"'{args.dir}' is a file, not a folder", "give the folder to write the ruleset into")
    files = render_scaffold(args.kind, name)
    taken = [str(folder / f) for f in files if (folder / f).exists()]
    if taken:
        raise UsageError(f"{taken[0]} already exists" + (f" (and {len(taken) - 1} more)" if len(taken) > 1 else ""),
                         "qflow init never overwrites a file; choose another --name or folder")
    try:
        folder.mkdir(parents=True, exist_ok=True)
        for file, text in files.items():
            (folder / file).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write into '{args.dir}': {exc.strerror}", "check the folder's permissions") from None
    ruleset, tests, incidents = (folder / f for f in files)
    cases = files[tests.name].count("\n  - name:")
    lines = sum(1 for line in files[incidents.name].splitlines() if line.strip())
    out.write(f"wrote {ruleset} (the ruleset), {tests} ({cases} test cases), {incidents} ({lines} example incidents)\n")
    out.write("next:\n")
    for command in (f"check {ruleset}", f"test {ruleset}", f"graph {ruleset} -o {folder / name}.mmd",
                    f"decide {ruleset} --input {incidents}"):
        out.write(f"  {PROG} {command}\n")
    return 0
